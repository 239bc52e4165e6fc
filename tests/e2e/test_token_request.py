"""TokenRequest (`serviceaccounts/{name}/token`) on the secure API server: bound tokens, their checks, and what a
node may ask for (its projected token volumes)."""

from __future__ import annotations

import subprocess
import uuid

from tests.e2e.conftest import kubectl_binary
from tests.e2e.test_auth_reviews import make_tenant, ok
from tests.e2e.test_security import request

AUTHN = "/apis/authentication.k8s.io/v1"


def test_bound_service_account_tokens(secure):
    pki = secure.pki
    run = uuid.uuid4().hex[:6]
    tenant, n1, n2 = f"tr{run}", f"tn1-{run}", f"tn2-{run}"
    make_tenant(secure, tenant)
    base = f"/api/v1/tenants/{tenant}/namespaces/default"
    ok(request(secure, f"{base}/serviceaccounts", cert=pki.admin, method="POST",
               body={"metadata": {"name": "runner"}}), 201)
    pod = ok(request(secure, f"{base}/pods", cert=pki.admin, method="POST", body={
        "metadata": {"name": "p"}, "spec": {"serviceAccountName": "runner", "nodeName": n1,
                                            "containers": [{"name": "c", "image": "busybox"}]}}), 201)
    uid = pod["metadata"]["uid"]

    def token_request(spec: dict, cert=pki.admin, sa: str = "runner"):
        return request(secure, f"{base}/serviceaccounts/{sa}/token", cert=cert, method="POST",
                       body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})

    bound = {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": uid}
    got = ok(token_request({"audiences": [], "expirationSeconds": 3607, "boundObjectRef": bound}), 201)
    assert got["kind"] == "TokenRequest" and got["status"]["expirationTimestamp"].endswith("Z")
    token = got["status"]["token"]
    # The token is the account's, in its tenant, bound to the pod; the API server takes it.
    review = ok(request(secure, f"{AUTHN}/tokenreviews", cert=pki.admin, method="POST",
                        body={"spec": {"token": token}}), 201)["status"]
    assert review["authenticated"] and review["user"]["username"] == "system:serviceaccount:default:runner"
    assert review["user"]["extra"]["authentication.kubernetes.io/pod-uid"] == [uid]
    assert review["user"]["extra"]["arktos.io/tenant"] == [tenant]
    who = ok(request(secure, f"{AUTHN}/selfsubjectreviews", token=token, method="POST", body={}), 201)
    assert who["status"]["userInfo"]["username"] == "system:serviceaccount:default:runner"
    # What Kubernetes refuses: a short lifetime, another pod's uid, a pod of another account.
    assert token_request({"expirationSeconds": 60})[0] == 422
    assert token_request({"boundObjectRef": {**bound, "uid": "not-the-uid"}})[0] == 409
    ok(request(secure, f"{base}/serviceaccounts", cert=pki.admin, method="POST",
               body={"metadata": {"name": "other"}}), 201)
    assert token_request({"boundObjectRef": bound}, sa="other")[0] == 400
    assert token_request({}, sa="nosuch")[0] == 404
    # Another audience's token is no good here.
    vault = ok(token_request({"audiences": ["vault"], "boundObjectRef": bound}), 201)["status"]["token"]
    assert request(secure, f"{AUTHN}/selfsubjectreviews", token=vault, method="POST", body={})[0] == 401
    # A node: tokens for the accounts of its own pods, bound to those pods; nothing else.
    assert token_request({"boundObjectRef": bound}, cert=pki.node_client(n1))[0] == 201
    assert token_request({"boundObjectRef": bound}, cert=pki.node_client(n2))[0] == 403
    assert token_request({}, cert=pki.node_client(n1))[0] == 403
    assert token_request({"boundObjectRef": bound}, cert=pki.node_client(n1), sa="other")[0] == 403
    # kubectl create token, as the tenant's admin, bound to the pod.
    cfg = secure.kubeconfig(f"admin-{tenant}", cert=pki.tenant_client(tenant, "admin"), tenant=tenant)
    made = subprocess.run([kubectl_binary(30), "--kubeconfig", str(cfg), "create", "token", "runner",
                           "--duration=20m", "--bound-object-kind=Pod", "--bound-object-name=p"],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    who = ok(request(secure, f"{AUTHN}/selfsubjectreviews", token=made.stdout.strip(), method="POST", body={}), 201)
    assert who["status"]["userInfo"]["extra"]["authentication.kubernetes.io/pod-name"] == ["p"]
    # The pod goes, and its tokens with it.
    ok(request(secure, f"{base}/pods/p?gracePeriodSeconds=0", cert=pki.admin, method="DELETE"))
    assert request(secure, f"{AUTHN}/selfsubjectreviews", token=token, method="POST", body={})[0] == 401
    ok(request(secure, f"/api/v1/tenants/{tenant}", cert=pki.admin, method="DELETE"), 200, 202)
