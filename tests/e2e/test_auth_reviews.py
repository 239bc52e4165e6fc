"""`kubectl auth can-i` (with --list), `kubectl auth whoami` and the review kinds behind them, tenant-aware.

Tenants here get the policy the tenant controller gives a new tenant (`tenant_policy`: the tenant admin
`admin`, the aggregated admin/edit/view roles, `system:basic-user` for everyone signed in), plus a
RoleBinding of `view` in `default` for the user `viewer`.  No review tells a tenant's user anything about
another tenant: the answers are compared while the other tenant's bindings change.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from arktos.api.policy import resource_of, tenant_policy
from tests.e2e.conftest import kubectl_binary
from tests.e2e.test_security import request

pytestmark = pytest.mark.kubectl

AUTHZ = "/apis/authorization.k8s.io/v1"
AUTHN = "/apis/authentication.k8s.io/v1"
RBAC = "/apis/rbac.authorization.k8s.io/v1"


def kubectl(kubeconfig: Path, *args: str, minor: int = 30, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([kubectl_binary(minor), "--kubeconfig", str(kubeconfig), "--cache-dir",
                           str(kubeconfig) + f".cache{minor}", *args], capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def ok(result: tuple[int, dict], *codes: int) -> dict:
    status, body = result
    assert status in (codes or (200, 201)), (status, body)
    return body


def binding(name: str, role: str, users: list[str], kind: str = "ClusterRole") -> dict:
    return {"metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": u} for u in users]}


def make_tenant(secure, name: str) -> None:
    """As the system admin: what the tenant controller creates, and `viewer` viewing `default`."""
    admin = secure.pki.admin
    ok(request(secure, "/api/v1/tenants", cert=admin, method="POST", body={"metadata": {"name": name}}), 201)
    ok(request(secure, f"/api/v1/tenants/{name}/namespaces", cert=admin, method="POST",
               body={"metadata": {"name": "default"}}), 201)
    for obj in tenant_policy(name):
        ok(request(secure, f"{RBAC}/tenants/{name}/{resource_of(obj)}", cert=admin, method="POST", body=obj), 201)
    ok(request(secure, f"{RBAC}/tenants/{name}/namespaces/default/rolebindings", cert=admin, method="POST",
               body=binding("viewer", "view", ["viewer"])), 201)


@pytest.fixture
def tenants(secure):
    run = uuid.uuid4().hex[:6]
    a, b = f"ra{run}", f"rb{run}"
    make_tenant(secure, a)
    make_tenant(secure, b)
    return a, b


def test_can_i_and_whoami_with_kubectl(secure, tenants):
    a, _ = tenants
    pki = secure.pki
    admin = secure.kubeconfig(f"admin-{a}", cert=pki.tenant_client(a, "admin"), tenant=a)
    viewer = secure.kubeconfig(f"viewer-{a}", cert=pki.tenant_client(a, "viewer", ["team"]), tenant=a)
    for minor in (30, 33):  # 1.33 sends the reviews as protobuf
        assert kubectl(admin, "auth", "can-i", "create", "pods", minor=minor).stdout.strip() == "yes"
        no = kubectl(viewer, "auth", "can-i", "create", "pods", minor=minor, check=False)
        assert (no.returncode, no.stdout.strip()) == (1, "no")
        assert kubectl(viewer, "auth", "can-i", "get", "pods", minor=minor).stdout.strip() == "yes"
        assert kubectl(viewer, "auth", "can-i", "get", "pods/log", minor=minor).stdout.strip() == "yes"
        assert kubectl(viewer, "auth", "can-i", "list", "deployments.apps", "--namespace", "default",
                       minor=minor).stdout.strip() == "yes"
        # The RoleBinding is in `default` only.
        elsewhere = kubectl(viewer, "auth", "can-i", "get", "pods", "--namespace", "kube-system", minor=minor,
                            check=False)
        assert (elsewhere.returncode, elsewhere.stdout.strip()) == (1, "no")
        assert kubectl(admin, "auth", "can-i", "delete", "pods", "-n", "kube-system",
                       minor=minor).stdout.strip() == "yes"
        # Outside tenants: a tenant admin's `*` does not reach nodes, as a real request would not.
        nodes = kubectl(admin, "auth", "can-i", "list", "nodes", minor=minor, check=False)
        assert nodes.returncode == 1 and nodes.stdout.startswith("no"), nodes.stdout

        listed = kubectl(viewer, "auth", "can-i", "--list", minor=minor).stdout
        lines = {" ".join(line.split()) for line in listed.splitlines()}
        assert "pods [] [] [get list watch]" in lines, listed
        assert "pods/log [] [] [get list watch]" in lines, listed
        assert "selfsubjectaccessreviews.authorization.k8s.io [] [] [create]" in lines, listed
        assert not any(line.startswith("pods ") and "create" in line for line in lines), listed
        in_system = kubectl(viewer, "auth", "can-i", "--list", "-n", "kube-system", minor=minor).stdout
        assert not any(line.split()[:1] == ["pods"] for line in in_system.splitlines()), in_system

        who = json.loads(kubectl(viewer, "auth", "whoami", "-o", "json", minor=minor).stdout)
        info = who["status"]["userInfo"]
        assert info["username"] == "viewer"
        assert set(info["groups"]) == {"team", "system:authenticated"}
        assert info["extra"]["arktos.io/tenant"] == [a]
        table = kubectl(viewer, "auth", "whoami", minor=minor).stdout
        assert "viewer" in table and "team" in table and a in table


def test_reviews_never_reveal_another_tenant(secure, tenants):
    a, b = tenants
    pki = secure.pki
    a_admin, a_viewer = pki.tenant_client(a, "admin"), pki.tenant_client(a, "viewer")
    b_path = f"{RBAC}/tenants/{b}/clusterrolebindings"

    def self_review(attrs: dict) -> dict:
        return ok(request(secure, f"{AUTHZ}/selfsubjectaccessreviews", cert=a_viewer, method="POST",
                          body={"spec": {"resourceAttributes": attrs}}), 201)["status"]

    def review(attrs: dict, cert=a_admin, extra: dict | None = None, path=f"{AUTHZ}/subjectaccessreviews"):
        spec = {"user": "viewer", "groups": ["system:authenticated"], "resourceAttributes": attrs}
        if extra is not None:
            spec["extra"] = extra
        return request(secure, path, cert=cert, method="POST", body={"spec": spec})

    # Inside its own tenant the tenant admin learns what its users may do.
    assert ok(review({"verb": "get", "resource": "pods", "namespace": "default"}), 201)["status"]["allowed"]
    denied = ok(review({"verb": "create", "resource": "pods", "namespace": "default"}), 201)["status"]
    assert denied["allowed"] is False and not denied.get("denied")
    local = ok(request(secure, f"{AUTHZ}/namespaces/default/localsubjectaccessreviews", cert=a_admin,
                       method="POST", body={"spec": {"user": "viewer", "resourceAttributes": {
                           "verb": "list", "resource": "pods"}}}), 201)
    assert local["status"]["allowed"] and local["spec"]["resourceAttributes"]["namespace"] == "default"

    # Another tenant's resources: the same answer before and after B grants everything to a "viewer" there,
    # and the same as for a tenant that does not exist.
    probes = [{"verb": "get", "resource": "pods", "namespace": "default", "tenant": b},
              {"verb": "list", "resource": "secrets", "tenant": b}]
    before = [self_review(p) for p in probes], [ok(review(p), 201)["status"] for p in probes]
    ghost = [self_review({**p, "tenant": "no-such-tenant"}) for p in probes]
    ok(request(secure, b_path, cert=pki.admin, method="POST",
               body=binding("open", "cluster-admin-ish", ["viewer", "admin"])), 201)
    ok(request(secure, f"{RBAC}/tenants/{b}/clusterroles", cert=pki.admin, method="POST", body={
        "metadata": {"name": "cluster-admin-ish"},
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}), 201)
    after = [self_review(p) for p in probes], [ok(review(p), 201)["status"] for p in probes]
    assert before == after
    for status in before[0] + before[1]:
        assert status["allowed"] is False and status["denied"] is True
    assert [json.dumps(s).replace("no-such-tenant", "X") for s in ghost] == [
        json.dumps(s).replace(b, "X") for s in before[0]]
    # Naming B's users, or posting to B's path: refused, whatever B holds.
    status, body = review({"verb": "get", "resource": "pods"}, extra={"arktos.io/tenant": [b]})
    assert status == 403 and b not in json.dumps(body).replace(f'"{b}"', "")
    assert review({"verb": "get", "resource": "pods"}, path=f"{AUTHZ}/tenants/{b}/subjectaccessreviews")[0] == 403
    # A user who may not create subjectaccessreviews is refused.
    status, body = review({"verb": "get", "resource": "pods"}, cert=a_viewer)
    assert status == 403 and body["reason"] == "Forbidden"

    # The system admin reviews any tenant: now B's viewer may do anything in B.
    sys_b = ok(review({"verb": "delete", "resource": "secrets", "namespace": "kube-system"}, cert=pki.admin,
                      path=f"{AUTHZ}/tenants/{b}/subjectaccessreviews"), 201)["status"]
    assert sys_b["allowed"] is True
    sys_a = ok(review({"verb": "delete", "resource": "secrets", "namespace": "kube-system"}, cert=pki.admin,
                      extra={"arktos.io/tenant": [a]}), 201)["status"]
    assert sys_a["allowed"] is False


def test_token_review_and_discovery(secure, tenants):
    a, _ = tenants
    pki = secure.pki
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": "alpha-token"}}
    got = ok(request(secure, f"{AUTHN}/tokenreviews", cert=pki.admin, method="POST", body=body), 201)
    assert got["status"]["authenticated"] is True
    user = got["status"]["user"]
    assert (user["username"], user["extra"]["arktos.io/tenant"]) == ("alice", ["alpha"])
    assert "system:authenticated" in user["groups"]
    bad = ok(request(secure, f"{AUTHN}/tokenreviews", cert=pki.admin, method="POST",
                     body={"spec": {"token": "not-a-token"}}), 201)
    assert bad["status"]["authenticated"] is False and "user" not in json.dumps(bad["status"]["error"])
    # Tenant identities (even a tenant's admin) may not check tokens: they could be anyone's.
    assert request(secure, f"{AUTHN}/tokenreviews", cert=pki.tenant_client(a, "admin"), method="POST",
                   body=body)[0] == 403
    # Create only: nothing is stored, nothing listed.
    assert request(secure, f"{AUTHZ}/selfsubjectaccessreviews", cert=pki.admin)[0] == 405
    viewer = secure.kubeconfig(f"viewer-d-{a}", cert=pki.tenant_client(a, "viewer"), tenant=a)
    out = kubectl(viewer, "api-resources", "--api-group=authorization.k8s.io", "-o", "name").stdout.split()
    assert set(out) == {"localsubjectaccessreviews.authorization.k8s.io",
                        "selfsubjectaccessreviews.authorization.k8s.io",
                        "selfsubjectrulesreviews.authorization.k8s.io", "subjectaccessreviews.authorization.k8s.io"}
    explained = kubectl(viewer, "explain", "selfsubjectaccessreviews.spec.resourceAttributes").stdout
    assert "tenant" in explained
