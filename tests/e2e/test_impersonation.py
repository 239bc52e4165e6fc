"""`kubectl --as`, `--as-group`, `--as-uid` and the Impersonate-* headers, tenant-aware (impersonation.py).

Tenants get what the tenant controller gives a new tenant (the tenant admin `admin` with `*` in its tenant,
admin/edit/view, discovery and basic-user for everyone signed in), plus `viewer` viewing `default` and `dev`
editing `default` (Kubernetes' edit role may impersonate the service accounts of its namespace).
"""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import kubectl_binary
from tests.e2e.test_auth_reviews import RBAC, binding, make_tenant, ok
from tests.e2e.test_security import request

pytestmark = pytest.mark.kubectl

POD = "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers: [{{name: c, image: busybox}}]\n"
TENANT_HEADER = "Impersonate-Extra-Arktos.io%2Ftenant"


def kubectl(kubeconfig: Path, *args: str, minor: int = 30, check: bool = True,
            input: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([kubectl_binary(minor), "--kubeconfig", str(kubeconfig), "--cache-dir",
                           str(kubeconfig) + f".cache{minor}", *args], input=input, capture_output=True, text=True,
                          timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def call(secure, path: str, cert, headers: list[tuple[str, str]], method: str = "GET") -> tuple[int, dict]:
    """One HTTPS request whose headers may repeat a name (Impersonate-Group once per group, as client-go sends
    them); (status, parsed body)."""
    ctx = ssl.create_default_context(cafile=str(secure.pki.ca.cert))
    ctx.load_cert_chain(str(cert.cert), str(cert.key))
    conn = http.client.HTTPSConnection("127.0.0.1", secure.server.port, context=ctx, timeout=10)
    try:
        conn.putrequest(method, path)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


@pytest.fixture
def tenants(secure):
    run = uuid.uuid4().hex[:6]
    a, b = f"ia{run}", f"ib{run}"
    for t in (a, b):
        make_tenant(secure, t)
        ok(request(secure, f"{RBAC}/tenants/{t}/namespaces/default/rolebindings", cert=secure.pki.admin,
                   method="POST", body=binding("dev", "edit", ["dev"])), 201)
    for t, pod in ((a, "a-pod"), (b, "b-secret")):
        ok(request(secure, f"/api/v1/tenants/{t}/namespaces/default/pods", cert=secure.pki.admin, method="POST",
                   body=yaml.safe_load(POD.format(name=pod))), 201)
    return a, b


def config(secure, tenant: str, user: str, groups: tuple[str, ...] = ()) -> Path:
    return secure.kubeconfig(f"{user}-{tenant}", cert=secure.pki.tenant_client(tenant, user, groups), tenant=tenant)


def test_kubectl_as_a_viewer_of_the_same_tenant(secure, tenants):
    a, _ = tenants
    admin = config(secure, a, "admin")
    for minor in (30, 33):  # 1.33 speaks protobuf
        names = kubectl(admin, "--as", "viewer", "get", "pods", "-o", "name", minor=minor).stdout.split()
        assert names == ["pod/a-pod"]
        made = kubectl(admin, "--as", "viewer", "create", "-f", "-", minor=minor, check=False, input=POD.format(
            name="nope"))
        assert made.returncode != 0 and 'User "viewer" cannot create resource "pods"' in made.stderr, made.stderr
        no = kubectl(admin, "auth", "can-i", "create", "pods", "--as", "viewer", minor=minor, check=False)
        assert (no.returncode, no.stdout.strip()) == (1, "no")
        assert kubectl(admin, "auth", "can-i", "list", "pods", "--as", "viewer", minor=minor).stdout.strip() == "yes"
        who = json.loads(kubectl(admin, "auth", "whoami", "--as", "viewer", "--as-group", "g1", "--as-uid", "u-1",
                                 "-o", "json", minor=minor).stdout)["status"]["userInfo"]
        assert (who["username"], who.get("uid")) == ("viewer", "u-1")
        assert sorted(who["groups"]) == ["g1", "system:authenticated"]
        assert who["extra"]["arktos.io/tenant"] == [a]
    # Nothing was created by the refused attempts.
    assert kubectl(admin, "get", "pods", "-o", "name").stdout.split() == ["pod/a-pod"]


def test_a_user_without_impersonate_rights_is_forbidden(secure, tenants):
    a, _ = tenants
    viewer = config(secure, a, "viewer")
    # kubectl's discovery fails first and prints "Forbidden: unknown" (its aggregated-discovery client does not
    # decode the Status; against Kubernetes too); the Status itself says it in Kubernetes' words.
    got = kubectl(viewer, "--as", "admin", "get", "pods", check=False)
    assert got.returncode != 0 and "Error from server (Forbidden)" in got.stderr, got.stderr
    cert = secure.pki.tenant_client(a, "viewer")
    status, body = call(secure, "/api/v1/namespaces/default/pods", cert, [("Impersonate-User", "admin")])
    assert (status, body["reason"], body["details"]) == (403, "Forbidden", {"kind": "users", "name": "admin"})
    assert body["message"].startswith('users "admin" is forbidden: User "viewer" cannot impersonate resource "users" '
                                      'in API group "" at the cluster scope'), body
    status, body = call(secure, "/api/v1/namespaces/default/pods", cert, [
        ("Impersonate-User", "viewer"), ("Impersonate-Group", "viewers"), ("Impersonate-Group", "system:masters")])
    assert status == 403 and body["message"].startswith('users "viewer" is forbidden'), body
    # Groups, extras or a uid without a user: 400, before any authorization.
    cert = secure.pki.tenant_client(a, "admin")
    for headers in ([("Impersonate-Group", "g1")], [("Impersonate-Uid", "1")], [("Impersonate-Extra-scopes", "x")],
                    [(TENANT_HEADER, a)]):
        status, body = call(secure, "/api/v1/namespaces/default/pods", cert, headers)
        assert (status, body.get("reason")) == (400, "BadRequest"), (headers, body)


def test_service_accounts_need_the_serviceaccounts_permission(secure, tenants):
    a, _ = tenants
    dev, viewer = config(secure, a, "dev"), config(secure, a, "viewer")
    # dev edits `default`: it may act as default's service accounts, which hold nothing here.
    who = json.loads(kubectl(dev, "auth", "whoami", "-o", "json", "--as",
                             "system:serviceaccount:default:builder").stdout)["status"]["userInfo"]
    assert sorted(who["groups"]) == ["system:authenticated", "system:serviceaccounts",
                                     "system:serviceaccounts:default"]
    got = kubectl(dev, "--as", "system:serviceaccount:default:builder", "get", "pods", check=False)
    assert 'User "system:serviceaccount:default:builder" cannot list resource "pods"' in got.stderr, got.stderr
    got = kubectl(dev, "--as", "system:serviceaccount:kube-system:builder", "get", "pods", check=False)
    assert ('serviceaccounts "builder" is forbidden: User "dev" cannot impersonate resource "serviceaccounts" in API '
            'group "" in the namespace "kube-system"') in got.stderr, got.stderr
    kubectl(viewer, "get", "pods")  # discovery cached as viewer itself, so kubectl shows the request's Status
    got = kubectl(viewer, "--as", "system:serviceaccount:default:builder", "get", "pods", check=False)
    assert 'cannot impersonate resource "serviceaccounts"' in got.stderr, got.stderr


def test_a_tenant_admin_cannot_impersonate_its_way_out(secure, tenants):
    a, b = tenants
    cert = secure.pki.tenant_client(a, "admin")
    own = "/api/v1/namespaces/default/pods"
    # Naming another tenant (or the system tenant, or none that exists), however the key is spelled: 403,
    # the same answer whether the tenant exists or not.
    answers = {}
    for spelling in ("Arktos.io%2Ftenant", "arktos.io%2ftenant", "ARKTOS%2EIO%2FTENANT", "arktos.io%2Ftenant"):
        for target in (b, "system", "no-such-tenant"):
            for path in (own, f"/api/v1/tenants/{b}/namespaces/default/pods", "/api/v1/tenants/all/pods"):
                status, body = call(secure, path, cert, [("Impersonate-User", "admin"),
                                                         (f"Impersonate-Extra-{spelling}", target)])
                assert status == 403, (spelling, target, path, body)
                assert "b-secret" not in json.dumps(body)
                answers.setdefault(path, set()).add(json.dumps(body).replace(target, "T"))
    assert all(len(v) == 1 for v in answers.values()), answers
    # Two values, one its own: the isolation rule first (403); its own tenant twice: a 400 then.
    status, _ = call(secure, own, cert, [("Impersonate-User", "admin"), (TENANT_HEADER, a), (TENANT_HEADER, b)])
    assert status == 403
    status, _ = call(secure, own, cert, [("Impersonate-User", "admin"), (TENANT_HEADER, a),
                                         ("Impersonate-Extra-arktos.io%2ftenant", a)])
    assert status == 400
    # Superuser and system names are the tenant's own identities: nothing outside the tenant.
    for headers in ([("Impersonate-User", "system:admin"), ("Impersonate-Group", "system:masters")],
                    [("Impersonate-User", "system:node:n1"), ("Impersonate-Group", "system:nodes")],
                    [("Impersonate-User", "system:kube-controller-manager")],
                    [("Impersonate-User", "system:serviceaccount:kube-system:generic-garbage-collector")],
                    [("Impersonate-User", "admin"), (TENANT_HEADER, a)]):
        for path in ("/api/v1/nodes", "/api/v1/tenants", f"/api/v1/tenants/{b}/namespaces/default/pods",
                     "/api/v1/tenants/all/pods", f"/api/v1/tenants/{b}/secrets"):
            status, body = call(secure, path, cert, headers)
            assert status == 403 and "b-secret" not in json.dumps(body), (headers, path, status, body)
        status, body = call(secure, "/api/v1/pods", cert, headers)
        assert status in (200, 403) and "b-secret" not in json.dumps(body), (headers, body)
    admin = config(secure, a, "admin")
    got = kubectl(admin, "--as", "system:admin", "--as-group", "system:masters", "get", "nodes", check=False)
    assert got.returncode != 0 and "Forbidden" in got.stderr, got.stderr
    # The system admin may be anyone, in any tenant; a kubeconfig's as-user-extra names the tenant.
    status, body = call(secure, own, secure.pki.admin, [("Impersonate-User", "viewer"), (TENANT_HEADER, b)])
    assert status == 200 and [p["metadata"]["name"] for p in body["items"]] == ["b-secret"]
    cfg = yaml.safe_load(secure.kubeconfig("sysadmin-as", cert=secure.pki.admin).read_text())
    cfg["users"][0]["user"].update({"as": "viewer", "as-user-extra": {"arktos.io/tenant": [b]}})
    path = secure.dir / f"sysadmin-as-{b}.kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    path.chmod(0o600)
    assert kubectl(path, "get", "pods", "-o", "name").stdout.split() == ["pod/b-secret"]
    who = json.loads(kubectl(path, "auth", "whoami", "-o", "json").stdout)["status"]["userInfo"]
    assert (who["username"], who["extra"]["arktos.io/tenant"]) == ("viewer", [b])
    no = kubectl(path, "auth", "can-i", "delete", "pods", check=False)
    assert no.stdout.strip() == "no"
