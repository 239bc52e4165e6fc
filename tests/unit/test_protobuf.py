"""The Kubernetes protobuf body decoder: hand-built messages for the tricky shapes, kubectl's own bytes for the rest."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from arktos.api import protobuf
from arktos.api.errors import APIError

DATA = Path(__file__).parent / "data" / "protobuf"


# -- a tiny encoder for building test messages -----------------------------------------


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative numbers are 10-byte two's complement, as Go writes them
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def v(num: int, value: int) -> bytes:
    return varint(num << 3) + varint(value)


def ld(num: int, *parts: bytes | str) -> bytes:
    payload = b"".join(p.encode() if isinstance(p, str) else p for p in parts)
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def entry(num: int, key: str, value: bytes | str | None) -> bytes:
    return ld(num, ld(1, key), ld(2, value) if value is not None else b"")


def body(api_version: str, kind: str, raw: bytes) -> bytes:
    return protobuf.MAGIC + ld(1, ld(1, api_version), ld(2, kind)) + ld(2, raw) + ld(3, "") + ld(4, "")


def decode(api_version: str, kind: str, raw: bytes) -> dict:
    return protobuf.decode(body(api_version, kind, raw))


def meta(name: str, *more: bytes) -> bytes:
    # As Go writes ObjectMeta: every non-pointer field, empty ones included; a zero creationTimestamp.
    return ld(1, ld(1, name), ld(2, ""), ld(3, ""), ld(4, ""), ld(5, ""), ld(6, ""), v(7, 0), ld(8), *more)


def error_of(data: bytes) -> APIError:
    with pytest.raises(APIError) as info:
        protobuf.decode(data)
    return info.value


# -- shapes ------------------------------------------------------------------------------


def test_deployment_maps_repeated_nested_and_zero_pointers():
    container = ld(1, "web") + ld(2, "busybox") + ld(3, "sleep") + ld(3, "3600") + ld(5, "") + ld(
        6, ld(1, "") + v(2, 0) + v(3, 80) + ld(4, "TCP")) + ld(8, entry(1, "cpu", ld(1, "100m")) + entry(
            2, "memory", ld(1, "64Mi"))) + v(16, 0)
    template = ld(1, ld(8)) + ld(2, ld(2, container) + v(4, 30))
    spec = (v(1, 0) + ld(2, entry(1, "app", "web")) + ld(3, template) + ld(4, ld(1, "")) + v(5, 0)
            + v(7, 0))
    obj = decode("apps/v1", "Deployment", meta("web", entry(11, "app", "web"), entry(11, "tier", "")) + ld(2, spec)
                 + ld(3))
    assert obj == {
        "kind": "Deployment", "apiVersion": "apps/v1",
        "metadata": {"name": "web", "creationTimestamp": None, "labels": {"app": "web", "tier": ""}},
        "spec": {
            "replicas": 0,  # a pointer: an explicit 0 stays
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"creationTimestamp": None}, "spec": {
                "containers": [{"name": "web", "image": "busybox", "command": ["sleep", "3600"],
                                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                                "resources": {"limits": {"cpu": "100m"}, "requests": {"memory": "64Mi"}}}],
                "terminationGracePeriodSeconds": 30}},
            "strategy": {},  # an empty struct is still written, as in Go's JSON
        },
        "status": {},
    }


def test_secret_bytes_are_base64_and_empty_map_values_kept():
    obj = decode("v1", "Secret", meta("s") + entry(2, "a", b"\x00\xffhi") + entry(2, "empty", None)
                 + entry(4, "plain", "text") + ld(3, "Opaque") + v(5, 0))
    assert obj["data"] == {"a": "AP9oaQ==", "empty": ""}
    assert obj["stringData"] == {"plain": "text"}
    assert obj["type"] == "Opaque"
    assert obj["immutable"] is False  # *bool set to false


def test_intorstring_int_and_string_and_service_ports():
    port = lambda name, p, target: ld(1, ld(1, name) + ld(2, "TCP") + v(3, p) + ld(4, target) + v(5, 0))  # noqa: E731
    spec = port("http", 80, v(1, 0) + v(2, 8080) + ld(3, "")) + port("named", 443, v(1, 1) + v(2, 0) + ld(3, "https"))
    obj = decode("v1", "Service", meta("svc") + ld(2, spec + ld(4, "ClusterIP") + v(13, 0)) + ld(3, ld(1)))
    assert obj["spec"] == {"ports": [
        {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
        {"name": "named", "protocol": "TCP", "port": 443, "targetPort": "https"},
    ], "type": "ClusterIP"}
    assert obj["status"] == {"loadBalancer": {}}


def test_times_negative_numbers_packed_and_inline_fields():
    ts = ld(9, v(1, 1_700_000_000) + v(2, 5))
    sec = ld(14, v(2, 1000) + ld(4, varint(5) + varint(6)) + v(4, 7) + v(5, 2000))  # packed and unpacked int64s
    volume = ld(1, ld(1, "cfg") + ld(2, ld(19, ld(1, ld(1, "my-config")) + v(3, 0o644) + v(4, 0))))
    pod = decode("v1", "Pod", meta("p", ts, v(10, 0)) + ld(2, volume + sec + v(25, -5)))
    assert pod["metadata"]["deletionTimestamp"] == "2023-11-14T22:13:20Z"
    assert pod["metadata"]["deletionGracePeriodSeconds"] == 0
    assert pod["spec"]["securityContext"] == {"runAsUser": 1000, "supplementalGroups": [5, 6, 7], "fsGroup": 2000}
    assert pod["spec"]["priority"] == -5
    # ConfigMapVolumeSource embeds LocalObjectReference and Volume embeds VolumeSource: both inline in JSON.
    assert pod["spec"]["volumes"] == [{"name": "cfg", "configMap": {"name": "my-config", "defaultMode": 0o644,
                                                                   "optional": False}}]
    lease = decode("coordination.k8s.io/v1", "Lease", meta("l") + ld(2, ld(1, "me") + v(2, 15) + ld(
        4, v(1, 1_700_000_000) + v(2, 123_456_789)) + v(5, 0)))
    assert lease["spec"] == {"holderIdentity": "me", "leaseDurationSeconds": 15,
                             "renewTime": "2023-11-14T22:13:20.123456Z", "leaseTransitions": 0}


def test_managed_fields_extra_values_and_delete_options():
    mf = ld(17, ld(1, "kubectl") + ld(2, "Update") + ld(3, "v1") + ld(4, v(1, 0)) + ld(6, "FieldsV1")
            + ld(7, ld(1, b'{"f:data":{}}')))
    obj = decode("v1", "ConfigMap", meta("c", mf) + entry(2, "k", "v"))
    assert obj["metadata"]["managedFields"] == [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                                                 "time": "1970-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                                                 "fieldsV1": {"f:data": {}}}]
    review = decode("authentication.k8s.io/v1", "SelfSubjectReview", meta("") + ld(2, ld(1, ld(1, "alice") + ld(
        3, "devs") + ld(4, ld(1, "scopes") + ld(2, ld(1, "a") + ld(1, "b"))))))
    assert review["status"]["userInfo"] == {"username": "alice", "groups": ["devs"], "extra": {"scopes": ["a", "b"]}}
    # DeleteOptions comes in the group version of whatever is deleted.
    opts = decode("apps/v1", "DeleteOptions", v(1, 0) + ld(2, ld(1, "uid-1")) + ld(4, "Foreground") + ld(5, "All"))
    assert opts == {"kind": "DeleteOptions", "apiVersion": "apps/v1", "gracePeriodSeconds": 0,
                    "preconditions": {"uid": "uid-1"}, "propagationPolicy": "Foreground", "dryRun": ["All"]}
    eviction = decode("policy/v1", "Eviction", meta("p") + ld(2, v(1, 30)))
    assert eviction["deleteOptions"] == {"gracePeriodSeconds": 30}
    scale = decode("autoscaling/v1", "Scale", meta("web", ld(6, "42")) + ld(2, v(1, 0)) + ld(3, v(1, 0)))
    assert scale["spec"] == {} and scale["status"] == {"replicas": 0}  # ScaleSpec.replicas is omitempty, as in JSON
    assert scale["metadata"]["resourceVersion"] == "42"


def test_lists_without_omitempty_are_null():
    role = decode("rbac.authorization.k8s.io/v1", "ClusterRole", meta("agg") + ld(3, ld(1, entry(1, "x", "true"))))
    assert role["rules"] is None
    assert role["aggregationRule"] == {"clusterRoleSelectors": [{"matchLabels": {"x": "true"}}]}


# -- kubectl 1.33's own bytes for kinds this server does not serve yet -------------------------


@pytest.mark.parametrize("name", sorted(p.stem for p in DATA.glob("*.bin")))
def test_kubectl_bodies_decode_to_kubectls_json(name):
    """Each .bin is what kubectl 1.33 sent; each .json what it prints for --dry-run=client -o json."""
    assert protobuf.decode((DATA / f"{name}.bin").read_bytes()) == json.loads((DATA / f"{name}.json").read_text())


# -- refusals ---------------------------------------------------------------------------


def test_unknown_field_is_refused_with_its_place():
    err = error_of(body("apps/v1", "Deployment", meta("web") + ld(2, ld(3, ld(2, ld(99, "new"))))))
    assert err.code == 415 and err.reason == "UnsupportedMediaType"
    assert "field number 99 of PodSpec (at spec.template.spec)" in err.message and "Deployment" in err.message
    assert "JSON" in err.message


def test_unknown_kind_is_415():
    err = error_of(body("example.com/v1", "Widget", meta("w")))
    assert err.code == 415 and "Widget" in err.message and "JSON" in err.message


@pytest.mark.parametrize("data, detail", [
    (b"k8s\x01" + ld(1, ld(2, "Secret")), "prefix"),
    (body("v1", "Secret", meta("s"))[:-12], "malformed"),  # truncated in the middle of the object
    (body("v1", "Secret", ld(1, ld(1, "s")) + b"\x12\x80"), "malformed"),  # a length that never ends
    (body("v1", "Secret", ld(1, v(1, 5))), "wire type"),  # a varint where a string belongs
    (body("v1", "Secret", ld(1, ld(1, b"\xff\xfe"))), "UTF-8"),
    (body("v1", "Secret", ld(1, ld(9, v(1, 10**14)))), "out of range"),  # a Time past year 9999
    (body("v1", "Secret", b"\x0b\x0c"), "wire type 3"),  # groups
    (protobuf.MAGIC + ld(2, b""), "kind"),
    (body("v1", "Pod", ld(2, ld(2, ld(1, "c") + varint(8 << 3 | 1) + struct.pack("<d", 1.0)))), "wire type 1"),
])
def test_malformed_is_400(data, detail):
    err = error_of(data)
    assert err.code == 400 and err.reason == "BadRequest", err.message
    assert detail in err.message

