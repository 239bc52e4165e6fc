"""kubectl 1.32 and 1.33 send typed objects as protobuf: the same commands store the same objects as 1.30's JSON.

`kubectl create deployment|secret|...` in 1.32+ posts `application/vnd.kubernetes.protobuf`
and never falls back to JSON; kubectl 1.30 posts JSON.  Each command runs under each version
in a namespace (or with a name suffix) of its own, and the stored objects, read back, must be
equal but for what the server assigns (uid, timestamps, allocated IPs).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid

import pytest

pytestmark = pytest.mark.kubectl

VERSIONS = (30, 32, 33)  # 1.30 sends JSON: the reference

NAMESPACED = [
    ["deployment", "web", "--image=busybox:1.36", "--replicas=0", "--port=8080", "--", "sleep", "3600"],
    ["secret", "generic", "creds", "--from-literal=user=admin", "--from-literal=empty=", "--type=Opaque"],
    ["configmap", "settings", "--from-literal=mode=fast", "--from-literal=blank="],
    ["service", "clusterip", "front", "--tcp=80:8080", "--tcp=443"],
    ["serviceaccount", "robot"],
    ["role", "reader", "--verb=get,list", "--resource=pods,deployments.apps", "--resource-name=x"],
    ["rolebinding", "read", "--role=reader", "--user=alice", "--group=devs", "--serviceaccount=default:robot"],
]
NAMESPACED_KINDS = "deployments,secrets,configmaps,services,serviceaccounts,roles,rolebindings"


def cluster_scoped(sfx: str) -> list[list[str]]:
    return [
        ["namespace", f"pb-extra-{sfx}"],
        ["clusterrole", f"pb-view-{sfx}", "--verb=get", "--resource=pods", "--non-resource-url=/logs/*"],
        ["clusterrole", f"pb-agg-{sfx}", "--aggregation-rule=example.com/aggregate=true"],
        ["clusterrolebinding", f"pb-view-{sfx}", f"--clusterrole=pb-view-{sfx}", "--user=bob"],
    ]


def normalize(obj: dict, sfx: str, ns: str) -> dict:
    """What the client sent and the server derived from it, without what differs run to run."""
    meta = obj["metadata"]
    for key in ("uid", "resourceVersion", "creationTimestamp", "namespace", "hashKey", "generation", "selfLink"):
        meta.pop(key, None)
    for entry in meta.get("managedFields") or []:
        entry.pop("time", None)
    if obj["kind"] == "Service":
        obj["spec"].pop("clusterIP", None)
        obj["spec"].pop("clusterIPs", None)
    if obj["kind"] == "Namespace":
        meta.get("labels", {}).pop("kubernetes.io/metadata.name", None)
    return json.loads(json.dumps(obj).replace(sfx, "SFX").replace(ns, "NS"))


def test_typed_creates_store_what_json_stores(kubectl):
    run = uuid.uuid4().hex[:6]
    stored: dict[int, dict[str, dict]] = {}
    for minor in VERSIONS:
        sfx, ns = f"{run}v{minor}", f"pb-{run}-v{minor}"
        kubectl("create", "namespace", ns, minor=minor)
        for args in NAMESPACED:
            kubectl("create", "-n", ns, *args, minor=minor)
        for args in cluster_scoped(sfx):
            kubectl("create", *args, minor=minor)
        items = json.loads(kubectl("get", "-n", ns, NAMESPACED_KINDS, "-o", "json").stdout)["items"]
        names = [a[1] for a in cluster_scoped(sfx)]
        items += json.loads(kubectl("get", "namespace/" + names[0], "clusterrole/" + names[1],
                                    "clusterrole/" + names[2], "clusterrolebinding/" + names[3],
                                    "namespace/" + ns, "-o", "json").stdout)["items"]
        objs = [normalize(o, sfx, ns) for o in items]
        stored[minor] = {f"{o['kind']}/{o['metadata']['name']}": o for o in objs}
    reference = stored[30]
    assert len(reference) == len(NAMESPACED) + len(cluster_scoped("")) + 1
    assert reference["Deployment/web"]["spec"]["replicas"] == 0  # an explicit zero, kept through protobuf too
    assert reference["Secret/creds"]["data"] == {"user": "YWRtaW4=", "empty": ""}
    for minor in VERSIONS[1:]:
        assert sorted(stored[minor]) == sorted(reference), minor
        for key, obj in reference.items():
            assert stored[minor][key] == obj, f"kubectl 1.{minor}: {key} differs from what kubectl 1.30 stored"


@pytest.mark.parametrize("minor", [32, 33])
def test_scale_and_delete(kubectl, namespace, minor):
    kubectl("create", "-n", namespace, "deployment", "d", "--image=busybox:1.36", minor=minor)
    kubectl("scale", "-n", namespace, "deployment/d", "--replicas=3", minor=minor)
    assert json.loads(kubectl("get", "-n", namespace, "deployment/d", "-o", "json").stdout)["spec"]["replicas"] == 3
    kubectl("scale", "-n", namespace, "deployment/d", "--replicas=0", minor=minor)
    assert json.loads(kubectl("get", "-n", namespace, "deployment/d", "-o", "json").stdout)["spec"]["replicas"] == 0
    kubectl("delete", "-n", namespace, "deployment/d", "--wait=true", minor=minor)
    assert kubectl("get", "-n", namespace, "deployment/d", check=False, minor=minor).returncode != 0


# -- protobuf bodies straight over HTTP (kubectl's delete sends JSON DeleteOptions) --------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _ld(num: int, payload: bytes | str) -> bytes:
    payload = payload.encode() if isinstance(payload, str) else payload
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _pb(api_version: str, kind: str, raw: bytes) -> bytes:
    return b"k8s\x00" + _ld(1, _ld(1, api_version) + _ld(2, kind)) + _ld(2, raw)


def _send(method: str, url: str, data: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Content-Type": "application/vnd.kubernetes.protobuf", "Accept": "application/vnd.kubernetes.protobuf, */*"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_protobuf_delete_options_and_refusals(apiserver, kubectl, namespace):
    kubectl("create", "-n", namespace, "configmap", "gone", "--from-literal=a=b", minor=33)
    url = f"{apiserver.url}/api/v1/namespaces/{namespace}/configmaps/gone"
    # A precondition on another uid: the DeleteOptions were read, so the delete is refused.
    code, status = _send("DELETE", url, _pb("v1", "DeleteOptions", _ld(2, _ld(1, "not-its-uid"))))
    assert code == 409 and status["reason"] == "Conflict", status
    code, status = _send("DELETE", url, _pb("v1", "DeleteOptions", _varint(1 << 3) + _varint(0) + _ld(4, "Background")))
    assert code == 200, status
    assert kubectl("get", "-n", namespace, "configmap/gone", check=False).returncode != 0
    # Responses stay JSON whatever the Accept header prefers.
    create = f"{apiserver.url}/api/v1/namespaces/{namespace}/configmaps"
    meta = _ld(1, _ld(1, "made"))
    code, obj = _send("POST", create, _pb("v1", "ConfigMap", meta + _ld(2, _ld(1, "k") + _ld(2, "v"))))
    assert code == 201 and obj["data"] == {"k": "v"}, obj
    code, status = _send("POST", create, _pb("v1", "ConfigMap", meta + _ld(77, "future field")))
    assert code == 415 and status["reason"] == "UnsupportedMediaType" and "field number 77" in status["message"]
    code, status = _send("POST", create, _pb("v1", "ConfigMap", meta)[:-3])
    assert code == 400 and status["reason"] == "BadRequest", status
