"""`kubectl logs`, `exec`, `attach` and `port-forward` on the secure path: HTTPS API server, an agent
process on HTTPS with client certificates, tenants and RBAC.

The API server (the `secure` fixture) reaches the agent with its kubelet client certificate and
verifies the agent's serving certificate against the cluster CA; the agent (`arktos node-agent`
with --tls-cert-file/--tls-private-key-file/--client-ca-file, hollow runtime) answers only that
client.  Tenant users reach only their own tenant's pods, and pods/log and pods/exec go through
RBAC like any other request.
"""

from __future__ import annotations

import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from arktos.cluster.pki import create_ca
from tests.conftest import ComponentProc
from tests.e2e.conftest import kubectl_binary
from tests.e2e.test_security import make_tenant, request

pytestmark = pytest.mark.kubectl


def kubectl(kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([kubectl_binary(32), "--kubeconfig", str(kubeconfig), "--cache-dir",
                           str(kubeconfig) + ".cache", *args], capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def wait_for(check, timeout: float = 20.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"{what} not true after {timeout}s")


def agent_get(port: int, path: str, ca: Path, cert=None) -> tuple[int, bytes]:
    """A request straight to the agent's endpoint, as whoever `cert` is."""
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    try:
        with urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", context=ctx, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.mark.timeout(150)
def test_logs_and_exec_through_an_authenticated_agent_with_tenants_and_rbac(secure, tmp_path):
    run = uuid.uuid4().hex[:6]
    node, tenant, other = f"logs-{run}", f"lt{run}", f"lo{run}"
    pki = secure.pki
    serving = pki.node_serving(node, ["127.0.0.1"])
    # Where node leases live (the controller manager makes it in a full cluster; a node may not).
    assert request(secure, "/api/v1/namespaces", cert=pki.admin, method="POST",
                   body={"metadata": {"name": "kube-node-lease"}})[0] in (201, 409)
    agent = ComponentProc("node-agent", tmp_path / "agent.log", [
        "--kubeconfig", str(secure.kubeconfig(f"node-{node}", cert=pki.node_client(node))), "--node-name", node,
        "--runtimes", "hollow", "--root-dir", str(tmp_path / node), "--lease-renew-interval", "1",
        "--status-update-interval", "1", "--sync-frequency", "1", "--port", "0", "--address", "127.0.0.1",
        "--node-ip", "127.0.0.1", "--tls-cert-file", str(serving.cert), "--tls-private-key-file", str(serving.key),
        "--client-ca-file", str(pki.ca.cert)])
    try:
        agent.wait_for_log("serving logs and exec over HTTPS")

        def published():
            code, n = request(secure, f"/api/v1/nodes/{node}", cert=pki.admin)
            return n if code == 200 and n["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] else None

        port = wait_for(published, 20, "the node's endpoint published")["status"]["daemonEndpoints"][
            "kubeletEndpoint"]["Port"]

        make_tenant(secure, tenant, ("alice",))
        make_tenant(secure, other, ("bob",))
        code, body = request(secure, f"/api/v1/tenants/{tenant}/namespaces/default/pods", cert=pki.admin,
                             method="POST", body={"metadata": {"name": "web"}, "spec": {
                                 "nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}})
        assert code == 201, body
        path = f"/api/v1/tenants/{tenant}/namespaces/default/pods/web"
        wait_for(lambda: request(secure, path, cert=pki.admin)[1].get("status", {}).get("phase") == "Running",
                 20, "the pod running")

        # The tenant's user, plain kubectl, short paths: the log comes from the agent over HTTPS.
        alice = secure.kubeconfig(f"alice-{run}", cert=pki.tenant_client(tenant, "alice"), tenant=tenant)
        out = kubectl(alice, "logs", "web").stdout
        assert out.startswith("hollow container c started from image busybox")
        assert kubectl(alice, "logs", "web", "--tail=1", "-c", "c").stdout == out
        uid = request(secure, path, cert=pki.admin)[1]["metadata"]["uid"]

        # Another tenant's user gets what a missing pod gets: 403 on the tenant path, 404 on its own short path.
        bob = pki.tenant_client(other, "bob")
        for sub in ("log", "exec?command=true&stdout=1", "attach?stdout=1", "portforward?ports=80"):
            theirs = request(secure, f"{path}/{sub}", cert=bob)
            ghost = request(secure, f"/api/v1/tenants/{tenant}/namespaces/default/pods/ghost/{sub}", cert=bob)
            assert theirs[0] == ghost[0] == 403 and theirs[1]["reason"] == ghost[1]["reason"] == "Forbidden"
            mine = request(secure, f"/api/v1/namespaces/default/pods/web/{sub}", cert=bob)
            assert mine[0] == 404 and mine[1]["reason"] == "NotFound"
        bob_cfg = secure.kubeconfig(f"bob-{run}", cert=bob, tenant=other)
        denied = kubectl(bob_cfg, "logs", "web", check=False)
        assert denied.returncode != 0 and 'pods "web" not found' in denied.stderr

        # RBAC inside the tenant: pods/log needs get; WebSocket exec needs create as well as get.
        reader = {"metadata": {"name": "reader"}, "rules": [
            {"apiGroups": [""], "resources": ["pods", "pods/exec", "pods/attach", "pods/portforward"],
             "verbs": ["get", "list"]}]}
        assert request(secure, f"/apis/rbac.authorization.k8s.io/v1/tenants/{tenant}/namespaces/default/roles",
                       cert=pki.admin, method="POST", body=reader)[0] == 201
        binding = {"metadata": {"name": "reader"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                                               "kind": "Role", "name": "reader"},
                   "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "eve"}]}
        assert request(secure, f"/apis/rbac.authorization.k8s.io/v1/tenants/{tenant}/namespaces/default/rolebindings",
                       cert=pki.admin, method="POST", body=binding)[0] == 201
        eve = secure.kubeconfig(f"eve-{run}", cert=pki.tenant_client(tenant, "eve"), tenant=tenant)
        no_log = kubectl(eve, "logs", "web", check=False)
        assert no_log.returncode != 0 and 'cannot get resource "pods/log"' in no_log.stderr
        no_exec = kubectl(eve, "exec", "web", "--", "true", check=False)
        assert no_exec.returncode != 0 and 'cannot create resource "pods/exec"' in no_exec.stderr
        no_attach = kubectl(eve, "attach", "web", check=False)
        assert no_attach.returncode != 0 and 'cannot create resource "pods/attach"' in no_attach.stderr
        no_forward = kubectl(eve, "port-forward", "web", ":80", check=False)
        assert no_forward.returncode != 0 and 'cannot create resource "pods/portforward"' in no_forward.stderr
        # alice may exec; the hollow runtime has nothing to run it in, and says so through both hops.
        hollow = kubectl(alice, "exec", "web", "--", "true", check=False)
        assert hollow.returncode != 0 and "exec is not supported for hollow pods" in hollow.stderr, hollow.stderr
        hollow = kubectl(alice, "attach", "web", check=False)
        assert hollow.returncode != 0 and "attach is not supported for hollow pods" in hollow.stderr, hollow.stderr
        hollow = kubectl(alice, "port-forward", "web", ":80", check=False)
        assert hollow.returncode != 0 and "port-forward is not supported for hollow pods" in hollow.stderr, \
            hollow.stderr

        # The agent's endpoint itself: the API server's kubelet client only.
        logs = f"/containerLogs/{tenant}/default/web/c?podUID={uid}"
        kubelet_client = (pki.apiserver_kubelet_client.cert, pki.apiserver_kubelet_client.key)
        code, body = agent_get(port, logs, pki.ca.cert, kubelet_client)
        assert code == 200 and body.decode() == out
        code, body = agent_get(port, logs, pki.ca.cert)
        assert code == 401 and yaml.safe_load(body)["reason"] == "Unauthorized"
        code, body = agent_get(port, logs, pki.ca.cert, (pki.admin.cert, pki.admin.key))
        assert code == 403 and yaml.safe_load(body)["reason"] == "Forbidden"  # even system:masters
        code, _ = agent_get(port, f"/containerLogs/{tenant}/default/web/c?podUID=someone-else", pki.ca.cert,
                            kubelet_client)
        assert code == 404  # a pod with this name but another UID is not the one asked for
        stranger_ca = create_ca("stranger")
        cert_pem, key_pem = stranger_ca.issue_client("kube-apiserver-kubelet-client", ["system:masters"])
        (tmp_path / "s.crt").write_bytes(cert_pem)
        (tmp_path / "s.key").write_bytes(key_pem)
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            agent_get(port, logs, pki.ca.cert, (tmp_path / "s.crt", tmp_path / "s.key"))
    finally:
        agent.stop()
        request(secure, f"/api/v1/nodes/{node}", cert=pki.admin, method="DELETE")
