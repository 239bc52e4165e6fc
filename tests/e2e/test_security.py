"""The secure API server as users meet it: TLS, certificates, tokens, RBAC, tenant isolation."""

from __future__ import annotations

import datetime
import json
import os
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.e2e.conftest import kubectl_binary

pytestmark = pytest.mark.kubectl


def kubectl(kubeconfig: Path, *args: str, input: str | None = None, check: bool = True):
    proc = subprocess.run(
        [kubectl_binary(30), "--kubeconfig", str(kubeconfig), "--cache-dir", str(kubeconfig) + ".cache", *args],
        input=input, capture_output=True, text=True, timeout=60,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def request(secure, path: str, *, token: str | None = None, cert=None, method: str = "GET", body=None):
    """One HTTPS request; returns (status, parsed body)."""
    ctx = ssl.create_default_context(cafile=str(secure.pki.ca.cert))
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert), str(cert.key))
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(secure.url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def admin(secure) -> Path:
    return secure.kubeconfig("admin", cert=secure.pki.admin)


def make_tenant(secure, name: str, users: tuple[str, ...]) -> None:
    """As the system admin: a tenant and a tenant-wide admin binding for some of its users."""
    cfg = admin(secure)
    kubectl(cfg, "apply", "-f", "-", input=yaml.safe_dump({"apiVersion": "v1", "kind": "Tenant",
                                                         "metadata": {"name": name}}))
    ca_pem = secure.pki.ca.cert.read_text()
    for ns in ("default",):
        status, _ = request(secure, f"/api/v1/tenants/{name}/namespaces", cert=secure.pki.admin,
                            method="POST", body={"metadata": {"name": ns}})
        assert status in (201, 409)
        # What the controller manager (not run here) would add: the default service account and the cluster
        # CA, which the kube-api-access volume every pod gets is made of.
        for path, body in (("serviceaccounts", {"metadata": {"name": "default"}}),
                           ("configmaps", {"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": ca_pem}})):
            status, _ = request(secure, f"/api/v1/tenants/{name}/namespaces/{ns}/{path}", cert=secure.pki.admin,
                                method="POST", body=body)
            assert status in (201, 409), (path, status)
    role = {"metadata": {"name": "everything"}, "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}
    status, _ = request(secure, f"/apis/rbac.authorization.k8s.io/v1/tenants/{name}/clusterroles",
                        cert=secure.pki.admin, method="POST", body=role)
    assert status in (201, 409)
    binding = {"metadata": {"name": "everything"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "everything"},
               "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": u} for u in users]}
    status, _ = request(secure, f"/apis/rbac.authorization.k8s.io/v1/tenants/{name}/clusterrolebindings",
                        cert=secure.pki.admin, method="POST", body=binding)
    assert status in (201, 409)


POD = """
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  containers: [{{name: c, image: busybox}}]
"""


def test_plain_http_is_not_served_and_admin_works(secure):
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"http://127.0.0.1:{secure.server.port}/version", timeout=5)
    out = kubectl(admin(secure), "get", "namespaces", "-o", "name").stdout.split()
    assert {"namespace/default", "namespace/kube-system", "namespace/kube-public"} <= set(out)
    status, body = request(secure, "/api/v1/namespaces")
    assert status == 401 and body["reason"] == "Unauthorized"


def test_tenant_users_see_only_their_tenant_through_short_paths(secure):
    a, b = f"alpha{uuid.uuid4().hex[:5]}", f"beta{uuid.uuid4().hex[:5]}"
    make_tenant(secure, a, ("alice",))
    make_tenant(secure, b, ("bob",))
    alice = secure.kubeconfig(f"alice-{a}", cert=secure.pki.tenant_client(a, "alice"), tenant=a)
    bob = secure.kubeconfig(f"bob-{b}", cert=secure.pki.tenant_client(b, "bob"), tenant=b)
    kubectl(alice, "create", "-n", "default", "-f", "-", input=POD.format(name="secret-plans"))
    kubectl(bob, "create", "-n", "default", "-f", "-", input=POD.format(name="bobs-pod"))
    mine = kubectl(alice, "get", "pods", "-A", "-o", "json").stdout
    items = json.loads(mine)["items"]
    assert [(p["metadata"]["tenant"], p["metadata"]["name"]) for p in items] == [(a, "secret-plans")]
    # Bob can neither read, nor list, nor detect alice's pod, by any path.
    got = kubectl(bob, "get", "pod", "secret-plans", "-n", "default", check=False)
    assert got.returncode != 0 and "secret-plans" in got.stderr and "NotFound" in got.stderr
    bob_cert = secure.pki.tenant_client(b, "bob")
    for path in (f"/api/v1/tenants/{a}/namespaces/default/pods", f"/api/v1/tenants/{a}/pods",
                 "/api/v1/tenants/all/pods", "/api/v1/nodes"):
        status, body = request(secure, path, cert=bob_cert)
        assert status == 403, (path, body)
        assert "secret-plans" not in json.dumps(body)
    # Asking for it by name gets exactly the answer a name that does not exist gets.
    status, found = request(secure, f"/api/v1/tenants/{a}/namespaces/default/pods/secret-plans", cert=bob_cert)
    status2, missing = request(secure, f"/api/v1/tenants/{a}/namespaces/default/pods/no-such-pod", cert=bob_cert)
    assert status == status2 == 403
    assert json.dumps(found).replace("secret-plans", "X") == json.dumps(missing).replace("no-such-pod", "X")
    status, _ = request(secure, f"/api/v1/tenants/{a}/namespaces/default/pods/secret-plans", cert=bob_cert,
                        method="DELETE")
    assert status == 403
    # The system administrator sees both tenants.
    everything = request(secure, "/api/v1/tenants/all/pods", cert=secure.pki.admin)[1]["items"]
    assert {(a, "secret-plans"), (b, "bobs-pod")} <= {(p["metadata"]["tenant"], p["metadata"]["name"])
                                                      for p in everything}


def test_a_user_without_bindings_is_forbidden(secure):
    t = f"gamma{uuid.uuid4().hex[:5]}"
    make_tenant(secure, t, ("carol",))
    nobody = secure.pki.tenant_client(t, "dave")
    status, body = request(secure, "/api/v1/namespaces/default/pods", cert=nobody)
    assert status == 403 and body["reason"] == "Forbidden"


def test_tokens_authenticate_with_their_tenant_and_are_revocable(secure):
    status, body = request(secure, "/api/v1/tenants/all/pods", token="admin-token")
    assert status == 200
    make_tenant(secure, "alpha", ("alice",))
    status, body = request(secure, "/api/v1/namespaces/default/pods", token="alpha-token")
    assert status == 200 and all(p["metadata"]["tenant"] == "alpha" for p in body["items"])
    status, body = request(secure, "/api/v1/namespaces/default/pods", token="no-such-token")
    assert status == 401
    original = secure.token_file.read_text()
    try:
        secure.token_file.write_text("\n".join(line for line in original.splitlines()
                                               if not line.startswith("alpha-token")) + "\n")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if request(secure, "/api/v1/namespaces/default/pods", token="alpha-token")[0] == 401:
                break
            time.sleep(0.2)
        assert request(secure, "/api/v1/namespaces/default/pods", token="alpha-token")[0] == 401
    finally:
        secure.token_file.write_text(original)


def _cert(secure, tmp_path: Path, *, cn: str, orgs: list[str], expired: bool = False, foreign: bool = False):
    """A client certificate signed by the cluster CA (or a stranger's), possibly expired."""
    from arktos.cluster.pki import CertPair

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    if foreign:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stranger-ca")])
    else:
        ca_key = serialization.load_pem_private_key(Path(secure.pki.ca.key).read_bytes(), None)
        ca_name = x509.load_pem_x509_certificate(Path(secure.pki.ca.cert).read_bytes()).subject
    names = [x509.NameAttribute(NameOID.COMMON_NAME, cn)] + [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    start, end = (now - datetime.timedelta(days=10), now - datetime.timedelta(days=1)) if expired else (
        now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1))
    cert = (x509.CertificateBuilder().subject_name(x509.Name(names)).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    c, k = tmp_path / f"{cn}.crt", tmp_path / f"{cn}.key"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    os.chmod(k, 0o600)
    return CertPair(c, k)


def test_expired_and_foreign_certificates_are_refused(secure, tmp_path):
    expired = _cert(secure, tmp_path, cn="system:old-admin", orgs=["system:masters"], expired=True)
    status, body = request(secure, "/api/v1/namespaces", cert=expired)
    assert status == 401 and body["reason"] == "Unauthorized"
    foreign = _cert(secure, tmp_path, cn="system:fake-admin", orgs=["system:masters"], foreign=True)
    status, body = request(secure, "/api/v1/namespaces", cert=foreign)
    assert status == 401 and body["reason"] == "Unauthorized"
    # ... and a good certificate still works on the same server
    assert request(secure, "/api/v1/namespaces", cert=secure.pki.admin)[0] == 200


def test_a_node_reads_only_its_own_pods(secure):
    ns = "default"
    for pod, node in (("on-n1", "n1"), ("on-n2", "n2")):
        name = f"{pod}-{uuid.uuid4().hex[:5]}"
        status, _ = request(secure, f"/api/v1/namespaces/{ns}/pods", cert=secure.pki.admin, method="POST",
                            body={"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "x"}]}})
        assert status == 201
        status, _ = request(secure, f"/api/v1/namespaces/{ns}/pods/{name}/binding", cert=secure.pki.admin,
                            method="POST", body={"target": {"kind": "Node", "name": node}})
        assert status == 201
        if node == "n1":
            mine = name
        else:
            theirs = name
    n1 = secure.pki.node_client("n1")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and request(secure, f"/api/v1/namespaces/{ns}/pods/{mine}", cert=n1)[0] != 200:
        time.sleep(0.1)  # the node graph follows the watch cache
    assert request(secure, f"/api/v1/namespaces/{ns}/pods/{mine}", cert=n1)[0] == 200
    assert request(secure, f"/api/v1/namespaces/{ns}/pods/{theirs}", cert=n1)[0] == 403
    assert request(secure, "/api/v1/nodes/n2", cert=n1)[0] == 403


def test_a_tenants_custom_resources_exist_for_that_tenant_only(secure):
    owner, other = f"crdown{uuid.uuid4().hex[:5]}", f"crdother{uuid.uuid4().hex[:5]}"
    make_tenant(secure, owner, ("olga",))
    make_tenant(secure, other, ("oscar",))
    olga, oscar = secure.pki.tenant_client(owner, "olga"), secure.pki.tenant_client(other, "oscar")
    group = f"{owner}.example.com"
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": f"gadgets.{group}"},
           "spec": {"group": group, "scope": "Namespaced",
                    "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}
    status, body = request(secure, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", cert=olga,
                           method="POST", body=crd)
    assert status == 201, body
    path = f"/apis/{group}/v1/namespaces/default/gadgets"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and request(secure, path, cert=olga)[0] != 200:
        time.sleep(0.1)
    status, _ = request(secure, path, cert=olga, method="POST", body={
        "apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "g1"}})
    assert status == 201
    # The owner's discovery lists it; the other tenant's does not, and its requests find nothing.
    assert group in json.dumps(request(secure, "/apis", cert=olga)[1])
    assert group not in json.dumps(request(secure, "/apis", cert=oscar)[1])
    assert request(secure, path, cert=oscar)[0] == 404
    assert request(secure, f"/apis/{group}/v1", cert=oscar)[0] == 404
    assert group not in json.dumps(request(secure, "/openapi/v3", cert=oscar)[1])
    # Deleting the definition removes the owner's objects only.
    status, _ = request(secure, f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.{group}",
                        cert=olga, method="DELETE")
    assert status == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and request(secure, path, cert=olga)[0] != 404:
        time.sleep(0.1)
    assert request(secure, path, cert=olga)[0] == 404


def test_only_the_front_proxy_certificate_may_assert_identities(secure, tmp_path):
    def as_proxy(cert, user: str, group: str, tenant: str):
        ctx = ssl.create_default_context(cafile=str(secure.pki.ca.cert))
        ctx.load_cert_chain(str(cert.cert), str(cert.key))
        req = urllib.request.Request(secure.url + "/api/v1/tenants/all/pods", headers={
            "X-Remote-User": user, "X-Remote-Group": group, "X-Remote-Tenant": tenant})
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as err:
            return err.code

    foreign = _cert(secure, tmp_path, cn="front-proxy-client", orgs=[], foreign=True)
    assert as_proxy(foreign, "boss", "system:masters", "system") == 401
    # a client certificate of the cluster CA is a user, not a proxy: the headers mean nothing
    tenant_user = secure.pki.tenant_client("acme", "eve")
    assert as_proxy(tenant_user, "boss", "system:masters", "system") == 403
    # the real front proxy may
    assert as_proxy(secure.pki.front_proxy_client, "boss", "system:masters", "system") == 200
