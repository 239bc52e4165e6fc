"""Patch kinds of the API server: JSON patch, merge patch, strategic merge patch, server-side apply.

The schemas are small inline imitations of Kubernetes' OpenAPI v3 documents
(same extensions, same `$ref`/`allOf` shapes) so these tests do not depend on
the real schema tables.
"""

from __future__ import annotations

import copy
import json

import pytest

from arktos.api.errors import APIError
from arktos.api.patch import (
    json_patch,
    merge_patch,
    parse_apply_body,
    server_side_apply,
    strategic_merge_patch,
    update_managed_fields,
)

# ---------------------------------------------------------------------------
# A miniature OpenAPI v3 document
# ---------------------------------------------------------------------------


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def wrapped(name: str) -> dict:
    """How Kubernetes v3 refers to a struct-typed property."""
    return {"allOf": [ref(name)], "default": {}, "description": "..."}


STR = {"type": "string"}
INT = {"type": "integer"}

COMPONENTS: dict[str, dict] = {
    "ObjectMeta": {
        "type": "object",
        "properties": {
            "name": STR,
            "namespace": STR,
            "tenant": STR,
            "uid": STR,
            "resourceVersion": STR,
            "labels": {"type": "object", "additionalProperties": {"type": "string", "default": ""}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string", "default": ""}},
            "finalizers": {
                "type": "array",
                "items": {"type": "string", "default": ""},
                "x-kubernetes-list-type": "set",
                "x-kubernetes-patch-strategy": "merge",
            },
            "ownerReferences": {
                "type": "array",
                "items": {"allOf": [ref("OwnerReference")], "default": {}},
                "x-kubernetes-list-map-keys": ["uid"],
                "x-kubernetes-list-type": "map",
                "x-kubernetes-patch-merge-key": "uid",
                "x-kubernetes-patch-strategy": "merge",
            },
            "managedFields": {"type": "array", "items": {"type": "object"}},
        },
    },
    "OwnerReference": {"type": "object", "properties": {"uid": STR, "name": STR, "kind": STR}},
    "LabelSelector": {
        "type": "object",
        "properties": {"matchLabels": {"type": "object", "additionalProperties": STR}},
        "x-kubernetes-map-type": "atomic",
    },
    "Deployment": {
        "type": "object",
        "properties": {
            "apiVersion": STR,
            "kind": STR,
            "metadata": wrapped("ObjectMeta"),
            "spec": wrapped("DeploymentSpec"),
            "status": {"allOf": [ref("DeploymentStatus")], "default": {}},
        },
    },
    "DeploymentStatus": {"type": "object", "properties": {"replicas": INT}},
    "DeploymentSpec": {
        "type": "object",
        "properties": {
            "replicas": INT,
            "selector": wrapped("LabelSelector"),
            "template": wrapped("PodTemplateSpec"),
            "strategy": wrapped("DeploymentStrategy"),
        },
    },
    "DeploymentStrategy": {
        "type": "object",
        "properties": {
            "type": STR,
            "rollingUpdate": {
                "type": "object",
                "properties": {"maxSurge": {"x-kubernetes-int-or-string": True}},
            },
        },
    },
    "PodTemplateSpec": {
        "type": "object",
        "properties": {"metadata": wrapped("ObjectMeta"), "spec": wrapped("PodSpec")},
    },
    "PodSpec": {
        "type": "object",
        "properties": {
            "containers": {
                "type": "array",
                "items": {"allOf": [ref("Container")], "default": {}},
                "x-kubernetes-list-map-keys": ["name"],
                "x-kubernetes-list-type": "map",
                "x-kubernetes-patch-merge-key": "name",
                "x-kubernetes-patch-strategy": "merge",
            },
            "volumes": {
                "type": "array",
                "items": {"allOf": [ref("Volume")], "default": {}},
                "x-kubernetes-list-map-keys": ["name"],
                "x-kubernetes-list-type": "map",
                "x-kubernetes-patch-merge-key": "name",
                "x-kubernetes-patch-strategy": "merge,retainKeys",
            },
            "nodeSelector": {"type": "object", "additionalProperties": STR, "x-kubernetes-map-type": "atomic"},
            "tolerations": {"type": "array", "items": {"allOf": [ref("Toleration")], "default": {}}},
        },
    },
    "Toleration": {"type": "object", "properties": {"key": STR, "operator": STR}},
    "Volume": {
        "type": "object",
        "properties": {
            "name": STR,
            "emptyDir": {"type": "object", "properties": {"medium": STR}},
            "hostPath": {"type": "object", "properties": {"path": STR}},
            "configMap": {"type": "object", "properties": {"name": STR}},
        },
    },
    "Container": {
        "type": "object",
        "properties": {
            "name": STR,
            "image": STR,
            "args": {"type": "array", "items": STR, "x-kubernetes-list-type": "atomic"},
            "env": {
                "type": "array",
                "items": {"allOf": [ref("EnvVar")], "default": {}},
                "x-kubernetes-list-map-keys": ["name"],
                "x-kubernetes-list-type": "map",
                "x-kubernetes-patch-merge-key": "name",
                "x-kubernetes-patch-strategy": "merge",
            },
            "ports": {
                "type": "array",
                "items": {"allOf": [ref("ContainerPort")], "default": {}},
                "x-kubernetes-list-map-keys": ["containerPort", "protocol"],
                "x-kubernetes-list-type": "map",
                "x-kubernetes-patch-merge-key": "containerPort",
                "x-kubernetes-patch-strategy": "merge",
            },
            "resources": {
                "type": "object",
                "properties": {"limits": {"type": "object", "additionalProperties": STR}},
            },
        },
    },
    "EnvVar": {"type": "object", "properties": {"name": STR, "value": STR}},
    "ContainerPort": {
        "type": "object",
        "properties": {"containerPort": INT, "protocol": {"type": "string", "default": "TCP"}, "name": STR},
    },
}


def resolve(schema: dict) -> dict:
    """Follow `$ref` and one-element `allOf`, with the referring keys laid over the target."""
    for _ in range(10):
        if "$ref" in schema:
            target = COMPONENTS[schema["$ref"].rsplit("/", 1)[1]]
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        elif "allOf" in schema and len(schema["allOf"]) == 1 and "properties" not in schema:
            inner = schema["allOf"][0]
            schema = {**resolve(inner), **{k: v for k, v in schema.items() if k != "allOf"}}
        else:
            return schema
    raise AssertionError("ref loop")


DEPLOYMENT = COMPONENTS["Deployment"]
POD_SPEC = COMPONENTS["PodSpec"]
META_HOLDER = {"type": "object", "properties": {"metadata": wrapped("ObjectMeta")}}


def smp(doc: dict, patch: dict, schema: dict | None = POD_SPEC) -> dict:
    before = copy.deepcopy(doc)
    patch_before = copy.deepcopy(patch)
    out = strategic_merge_patch(doc, patch, schema, resolve)
    assert doc == before, "the live object must not be mutated"
    assert patch == patch_before, "the patch must not be mutated"
    return out


def containers(*specs: tuple[str, str]) -> dict:
    return {"containers": [{"name": n, "image": i} for n, i in specs]}


# ---------------------------------------------------------------------------
# JSON patch
# ---------------------------------------------------------------------------

DOC = {"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"replicas": 1, "items": ["p", "q"]}}


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        ([{"op": "replace", "path": "/spec/replicas", "value": 3}], {"replicas": 3, "items": ["p", "q"]}),
        ([{"op": "add", "path": "/spec/items/-", "value": "r"}], {"replicas": 1, "items": ["p", "q", "r"]}),
        ([{"op": "add", "path": "/spec/items/0", "value": "o"}], {"replicas": 1, "items": ["o", "p", "q"]}),
        ([{"op": "remove", "path": "/spec/items/0"}], {"replicas": 1, "items": ["q"]}),
        ([{"op": "move", "from": "/spec/replicas", "path": "/spec/count"}], {"items": ["p", "q"], "count": 1}),
        (
            [{"op": "copy", "from": "/spec/items/1", "path": "/spec/items/0"}],
            {"replicas": 1, "items": ["q", "p", "q"]},
        ),
        (
            [
                {"op": "test", "path": "/spec/replicas", "value": 1},
                {"op": "replace", "path": "/spec/replicas", "value": 2},
            ],
            {"replicas": 2, "items": ["p", "q"]},
        ),
        ([{"op": "test", "path": "/spec/replicas", "value": 1.0}], {"replicas": 1, "items": ["p", "q"]}),
        ([], {"replicas": 1, "items": ["p", "q"]}),
    ],
)
def test_json_patch_applies(ops: list, expected: dict) -> None:
    before = copy.deepcopy(DOC)
    out = json_patch(DOC, ops)
    assert out["spec"] == expected
    assert out["metadata"] == DOC["metadata"]
    assert before == DOC


def test_json_patch_escaped_pointer_into_labels() -> None:
    out = json_patch(DOC, [{"op": "add", "path": "/metadata/labels/app.kubernetes.io~1name", "value": "w"}])
    assert out["metadata"]["labels"] == {"x": "1", "app.kubernetes.io/name": "w"}


def test_json_patch_does_not_alias_the_patch_value() -> None:
    value = {"k": ["v"]}
    out = json_patch(DOC, [{"op": "add", "path": "/spec/extra", "value": value}])
    out["spec"]["extra"]["k"].append("changed")
    assert value == {"k": ["v"]}


@pytest.mark.parametrize(
    ("ops", "code", "fragment"),
    [
        ({"op": "add"}, 400, "JSON array"),
        ("nope", 400, "JSON array"),
        (["add"], 400, "operation 0 must be a JSON object"),
        ([{"op": "frob", "path": "/a"}], 400, 'unsupported "op" "frob"'),
        ([{"path": "/a"}], 400, "(missing)"),
        ([{"op": "add", "value": 1}], 400, '"path" must be a string'),
        ([{"op": "add", "path": "/a"}], 400, 'missing "value"'),
        ([{"op": "move", "path": "/a"}], 400, '"from" must be a string'),
        ([{"op": "test", "path": "/spec/replicas", "value": 2}], 422, "test failed: the value is 1, not 2"),
        ([{"op": "test", "path": "/spec/replicas", "value": True}], 422, "test failed"),
        ([{"op": "test", "path": "/spec/nothing", "value": 2}], 422, "does not exist"),
        ([{"op": "remove", "path": "/spec/nothing"}], 422, "operation 0 (remove /spec/nothing)"),
        ([{"op": "replace", "path": "/nope/deeper", "value": 1}], 422, "failed"),
        ([{"op": "add", "path": "/spec/items/9", "value": 1}], 422, "failed"),
        ([{"op": "add", "path": "spec", "value": 1}], 422, "failed"),
        ([{"op": "replace", "path": "", "value": [1]}], 422, "must be a JSON object"),
    ],
)
def test_json_patch_errors(ops: object, code: int, fragment: str) -> None:
    with pytest.raises(APIError) as info:
        json_patch(DOC, ops)  # type: ignore[arg-type]
    assert info.value.code == code
    assert info.value.reason == ("BadRequest" if code == 400 else "Invalid")
    assert fragment in info.value.message


def test_json_patch_second_op_failure_names_that_op_and_changes_nothing() -> None:
    ops = [
        {"op": "replace", "path": "/spec/replicas", "value": 5},
        {"op": "test", "path": "/metadata/name", "value": "other"},
    ]
    with pytest.raises(APIError) as info:
        json_patch(DOC, ops)
    assert "operation 1 (test /metadata/name)" in info.value.message
    assert DOC["spec"]["replicas"] == 1


# ---------------------------------------------------------------------------
# JSON merge patch
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "patch", "expected"),
    [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
        ({"a": {"b": 1}}, {"a": "x"}, {"a": "x"}),
        ({"a": "x"}, {"a": {"b": None, "c": 1}}, {"a": {"c": 1}}),
    ],
)
def test_merge_patch_rfc7386(doc: dict, patch: dict, expected: dict) -> None:
    before = copy.deepcopy(doc)
    assert merge_patch(doc, patch) == expected
    assert doc == before


@pytest.mark.parametrize("patch", [[1], "x", None, 3])
def test_merge_patch_must_be_an_object(patch: object) -> None:
    with pytest.raises(APIError) as info:
        merge_patch({"a": 1}, patch)
    assert info.value.code == 400


def test_merge_patch_does_not_alias_patch_values() -> None:
    patch = {"a": {"b": [1]}}
    out = merge_patch({}, patch)
    out["a"]["b"].append(2)
    assert patch == {"a": {"b": [1]}}


# ---------------------------------------------------------------------------
# Strategic merge patch
# ---------------------------------------------------------------------------

SMP_CASES = [
    pytest.param(
        containers(("a", "x:1"), ("b", "y:1")),
        {"containers": [{"name": "b", "image": "y:2"}]},
        containers(("a", "x:1"), ("b", "y:2")),
        id="containers merge by name",
    ),
    pytest.param(
        containers(("a", "x:1")),
        {"containers": [{"name": "b", "image": "y:1"}]},
        containers(("b", "y:1"), ("a", "x:1")),
        id="new item without setElementOrder goes first, like Kubernetes",
    ),
    pytest.param(
        containers(("a", "x:1"), ("b", "y:1")),
        {"containers": [{"name": "a", "$patch": "delete"}]},
        containers(("b", "y:1")),
        id="$patch delete in a list element",
    ),
    pytest.param(
        containers(("a", "x:1"), ("b", "y:1")),
        {"containers": [{"name": "c", "image": "z"}, {"$patch": "replace"}]},
        containers(("c", "z")),
        id="$patch replace in a list element",
    ),
    pytest.param(
        containers(("a", "x:1")),
        {"containers": [{"$patch": "replace"}]},
        {"containers": []},
        id="$patch replace alone empties the list",
    ),
    pytest.param(
        containers(("a", "x:1")),
        {"containers": [{"name": "a", "$patch": "merge", "args": ["-v"]}]},
        {"containers": [{"name": "a", "image": "x:1", "args": ["-v"]}]},
        id="$patch merge in a list element merges it",
    ),
    pytest.param(
        {"containers": [{"name": "a", "image": "x", "args": ["1", "2"]}]},
        {"containers": [{"name": "a", "args": ["3"]}]},
        {"containers": [{"name": "a", "image": "x", "args": ["3"]}]},
        id="list without merge strategy is replaced",
    ),
    pytest.param(
        {"tolerations": [{"key": "a"}, {"key": "b"}]},
        {"tolerations": [{"key": "c"}]},
        {"tolerations": [{"key": "c"}]},
        id="list of maps without strategy is replaced",
    ),
    pytest.param(
        {
            "containers": [
                {"name": "a", "image": "x", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
            ]
        },
        {"containers": [{"name": "a", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]}]},
        {
            "containers": [
                {
                    "name": "a",
                    "image": "x",
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
                }
            ]
        },
        id="nested env merge by name: a server item goes before the patch item it preceded",
    ),
    pytest.param(
        {"containers": [{"name": "a", "image": "x", "env": [{"name": "A", "value": "1"}]}]},
        {"containers": [{"name": "a", "image": None, "env": [{"name": "A", "value": None}]}]},
        {"containers": [{"name": "a", "env": [{"name": "A"}]}]},
        id="null deletes keys inside list items",
    ),
    pytest.param(
        {"containers": [{"name": "a", "ports": [{"containerPort": 80, "name": "http"}]}]},
        {"containers": [{"name": "a", "ports": [{"containerPort": 80, "name": "web"}, {"containerPort": 443}]}]},
        {"containers": [{"name": "a", "ports": [{"containerPort": 80, "name": "web"}, {"containerPort": 443}]}]},
        id="ports merge by containerPort",
    ),
    pytest.param(
        {"nodeSelector": {"a": "1", "b": "2"}, "x": 1},
        {"nodeSelector": {"c": "3"}},
        {"nodeSelector": {"a": "1", "b": "2", "c": "3"}, "x": 1},
        id="additionalProperties maps merge",
    ),
    pytest.param(
        {"nodeSelector": {"a": "1", "b": "2"}},
        {"nodeSelector": {"a": None}},
        {"nodeSelector": {"b": "2"}},
        id="null deletes a map key",
    ),
    pytest.param(
        {"nodeSelector": {"a": "1"}, "x": 1},
        {"nodeSelector": None},
        {"x": 1},
        id="null deletes a field",
    ),
    pytest.param(
        {"nodeSelector": {"a": "1", "b": "2"}},
        {"nodeSelector": {"$patch": "replace", "c": "3"}},
        {"nodeSelector": {"c": "3"}},
        id="$patch replace in a map",
    ),
    pytest.param(
        {"nodeSelector": {"a": "1"}, "x": 1},
        {"nodeSelector": {"$patch": "delete"}},
        {"nodeSelector": {}, "x": 1},
        id="$patch delete in a map leaves it empty (Kubernetes)",
    ),
    pytest.param(
        {"nodeSelector": {"a": "1"}},
        {"nodeSelector": {"$patch": "merge", "b": "2"}},
        {"nodeSelector": {"a": "1", "b": "2"}},
        id="$patch merge in a map is the default",
    ),
    pytest.param(
        {"volumes": [{"name": "v", "emptyDir": {}}]},
        {"volumes": [{"name": "v", "hostPath": {"path": "/d"}, "$retainKeys": ["name", "hostPath"]}]},
        {"volumes": [{"name": "v", "hostPath": {"path": "/d"}}]},
        id="$retainKeys clears the keys not listed",
    ),
    pytest.param(
        {"volumes": [{"name": "v", "emptyDir": {}}]},
        {
            "volumes": [
                {"name": "v", "emptyDir": None, "configMap": {"name": "c"}, "$retainKeys": ["configMap", "name"]}
            ]
        },
        {"volumes": [{"name": "v", "configMap": {"name": "c"}}]},
        id="$retainKeys with a null for the dropped key",
    ),
    pytest.param(
        {"new": 1},
        {
            "containers": [
                {"name": "a", "image": "x", "env": [{"name": "A", "value": None}, {"$patch": "delete", "name": "Z"}]}
            ]
        },
        {"new": 1, "containers": [{"name": "a", "image": "x", "env": [{"name": "A"}]}]},
        id="a new list is cleaned of directives and nulls",
    ),
    pytest.param(
        {},
        {"nodeSelector": {"$patch": "replace", "a": "1", "b": None}},
        {"nodeSelector": {"a": "1"}},
        id="a new map is cleaned of directives and nulls",
    ),
    pytest.param(
        {"containers": [{"name": "a", "image": "x"}]},
        {"containers": {"name": "oops"}},
        {"containers": {"name": "oops"}},
        id="type change replaces",
    ),
]


@pytest.mark.parametrize(("doc", "patch", "expected"), SMP_CASES)
def test_strategic_merge_patch(doc: dict, patch: dict, expected: dict) -> None:
    assert smp(doc, patch) == expected


META_SMP_CASES = [
    pytest.param(
        {"finalizers": ["a", "b"]},
        {"finalizers": ["c", "a"]},
        {"finalizers": ["c", "a", "b"]},
        id="primitive merge list is a union",
    ),
    pytest.param(
        {"finalizers": ["a", "b", "c"]},
        {"$deleteFromPrimitiveList/finalizers": ["b", "zz"]},
        {"finalizers": ["a", "c"]},
        id="$deleteFromPrimitiveList",
    ),
    pytest.param(
        {"labels": {"x": "1"}},
        {"$deleteFromPrimitiveList/finalizers": ["b"]},
        {"labels": {"x": "1"}},
        id="$deleteFromPrimitiveList on a missing list is a no-op",
    ),
    pytest.param(
        {"finalizers": ["a", "b"]},
        {"$setElementOrder/finalizers": ["b", "c", "a"], "finalizers": ["c"]},
        {"finalizers": ["b", "c", "a"]},
        id="$setElementOrder on a primitive list",
    ),
    pytest.param(
        {"finalizers": ["a", "b", "c"]},
        {"$setElementOrder/finalizers": ["c", "a"], "$deleteFromPrimitiveList/finalizers": ["b"]},
        {"finalizers": ["c", "a"]},
        id="$setElementOrder with $deleteFromPrimitiveList (kubectl apply removing one)",
    ),
    pytest.param(
        {"ownerReferences": [{"uid": "1", "name": "a"}, {"uid": "2", "name": "b"}]},
        {"ownerReferences": [{"uid": "2", "name": "B"}]},
        {"ownerReferences": [{"uid": "1", "name": "a"}, {"uid": "2", "name": "B"}]},
        id="ownerReferences merge by uid",
    ),
    pytest.param(
        {"labels": {"a": "1"}, "annotations": {"k": "v"}},
        {"labels": {"b": "2", "a": None}, "annotations": None},
        {"labels": {"b": "2"}},
        id="labels merge, null deletes",
    ),
]


@pytest.mark.parametrize(("meta", "patch", "expected"), META_SMP_CASES)
def test_strategic_merge_patch_metadata(meta: dict, patch: dict, expected: dict) -> None:
    out = smp({"metadata": meta}, {"metadata": patch}, META_HOLDER)
    assert out == {"metadata": expected}


def test_set_element_order_as_kubectl_apply_sends_it() -> None:
    """kubectl apply: config reorders containers, changes b, removes c, adds d; e was added by someone else."""
    live = {
        "containers": [
            {"name": "a", "image": "a:1"},
            {"name": "e", "image": "e:1"},
            {"name": "b", "image": "b:1", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]},
            {"name": "c", "image": "c:1"},
        ]
    }
    patch = {
        "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}, {"name": "d"}],
        "containers": [
            {
                "name": "b",
                "image": "b:2",
                "$setElementOrder/env": [{"name": "Y"}, {"name": "X"}],
            },
            {"name": "d", "image": "d:1"},
            {"name": "c", "$patch": "delete"},
        ],
    }
    out = smp(live, patch)
    assert [c["name"] for c in out["containers"]] == ["e", "b", "a", "d"]
    b = out["containers"][1]
    assert b["image"] == "b:2"
    assert [e["name"] for e in b["env"]] == ["Y", "X"]
    assert "$setElementOrder/env" not in b


def test_set_element_order_without_the_list_in_the_patch_only_reorders() -> None:
    live = containers(("a", "1"), ("b", "2"))
    out = smp(live, {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]})
    assert out == containers(("b", "2"), ("a", "1"))


def test_set_element_order_must_agree_with_the_patch_list() -> None:
    patch = {
        "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
        "containers": [{"name": "b", "image": "1"}, {"name": "a", "image": "2"}],
    }
    with pytest.raises(APIError) as info:
        smp(containers(("a", "0")), patch)
    assert info.value.code == 400
    assert "$setElementOrder/containers" in info.value.message


def test_strategic_merge_patch_without_schema_behaves_like_merge_patch() -> None:
    doc = {"spec": {"containers": [{"name": "a", "image": "1"}], "labels": {"x": "1"}}}
    patch = {"spec": {"containers": [{"name": "b"}], "labels": {"y": "2", "x": None}}}
    assert strategic_merge_patch(doc, patch, None, resolve) == merge_patch(doc, patch)


def test_strategic_merge_patch_through_refs_on_a_deployment() -> None:
    live = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": containers(("web", "nginx:1"), ("log", "busybox"))},
        },
    }
    patch = {
        "metadata": {"labels": {"tier": "front"}},
        "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}},
    }
    out = smp(live, patch, DEPLOYMENT)
    assert out["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert out["spec"]["replicas"] == 3
    assert out["spec"]["template"]["spec"] == containers(("web", "nginx:2"), ("log", "busybox"))


def test_unresolvable_ref_degrades_to_unknown_schema() -> None:
    def broken(schema: dict) -> dict:
        raise KeyError(schema["$ref"])

    schema = {"type": "object", "properties": {"spec": ref("Missing")}}
    out = strategic_merge_patch(
        {"spec": {"l": [1], "m": {"a": 1}}}, {"spec": {"l": [2], "m": {"b": 2}}}, schema, broken
    )
    assert out == {"spec": {"l": [2], "m": {"a": 1, "b": 2}}}


@pytest.mark.parametrize(
    ("doc", "patch", "code", "fragment"),
    [
        ({}, [], 400, "must be a JSON object"),
        ({"nodeSelector": {}}, {"nodeSelector": {"$patch": "explode"}}, 400, "unknown patch type"),
        (containers(("a", "1")), {"containers": [{"$patch": "explode"}]}, 400, "unknown patch type"),
        (containers(("a", "1")), {"containers": [{"image": "x"}]}, 400, "does not contain declared merge key: name"),
        (containers(("a", "1")), {"containers": [{"$patch": "delete"}]}, 400, "merge key"),
        (containers(("a", "1")), {"containers": ["x"]}, 400, "not identical"),
        (containers(("a", "1")), {"containers": [["x"]]}, 422, "lists of lists"),
        ({}, {"$setElementOrder": []}, 400, "$setElementOrder/<field>"),
        ({}, {"$setElementOrder/containers": "a"}, 400, "must be a list"),
        ({}, {"$deleteFromPrimitiveList/finalizers": "a"}, 400, "must be a list"),
        (
            {"volumes": [{"name": "v"}]},
            {"volumes": [{"name": "v", "hostPath": {}, "$retainKeys": ["name"]}]},
            422,
            "retainKeys",
        ),
        ({"volumes": [{"name": "v"}]}, {"volumes": [{"name": "v", "$retainKeys": "name"}]}, 400, "retainKeys"),
    ],
)
def test_strategic_merge_patch_errors(doc: dict, patch: object, code: int, fragment: str) -> None:
    with pytest.raises(APIError) as info:
        strategic_merge_patch(doc, patch, POD_SPEC, resolve)
    assert info.value.code == code
    assert fragment in info.value.message


# ---------------------------------------------------------------------------
# Server-side apply
# ---------------------------------------------------------------------------

T0, T1, T2 = "2024-01-01T00:00:00Z", "2024-01-01T00:01:00Z", "2024-01-01T00:02:00Z"


def deployment(replicas: int | None = 3, labels: dict | None = None, image: str = "nginx:1", **extra: object) -> dict:
    spec: dict = {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": image}]},
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    spec.update(extra)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": labels if labels is not None else {"app": "web"}},
        "spec": spec,
    }


def apply(live: dict | None, applied: dict, manager: str = "kubectl", force: bool = False, now: str = T0) -> dict:
    before = copy.deepcopy(live)
    applied_before = copy.deepcopy(applied)
    out = server_side_apply(live, applied, manager, force, DEPLOYMENT, resolve, now)
    assert live == before and applied == applied_before, "inputs must not be mutated"
    return out


def entry(obj: dict, manager: str, operation: str = "Apply") -> dict:
    found = [
        e for e in obj["metadata"].get("managedFields", []) if e["manager"] == manager and e["operation"] == operation
    ]
    assert len(found) == 1, obj["metadata"].get("managedFields")
    return found[0]


def managers(obj: dict) -> list[tuple[str, str]]:
    return [(e["manager"], e["operation"]) for e in obj["metadata"].get("managedFields", [])]


def test_apply_create_records_fieldsv1_like_kubernetes() -> None:
    out = apply(None, deployment())
    assert out["spec"]["replicas"] == 3
    assert out["metadata"]["name"] == "web"
    e = entry(out, "kubectl")
    assert e == {
        "manager": "kubectl",
        "operation": "Apply",
        "apiVersion": "apps/v1",
        "time": T0,
        "fieldsType": "FieldsV1",
        "fieldsV1": {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {
                        "f:containers": {'k:{"name":"web"}': {".": {}, "f:image": {}, "f:name": {}}},
                    },
                },
            },
        },
    }


def test_apply_fieldsv1_for_sets_multi_key_lists_and_empty_maps() -> None:
    applied = deployment()
    applied["metadata"]["finalizers"] = ["a/b"]
    applied["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 80}]
    applied["spec"]["template"]["spec"]["containers"][0]["resources"] = {}
    fields = entry(apply(None, applied), "kubectl")["fieldsV1"]
    assert fields["f:metadata"]["f:finalizers"] == {".": {}, 'v:"a/b"': {}} or fields["f:metadata"]["f:finalizers"] == {
        'v:"a/b"': {}
    }
    web = fields["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']
    # the defaulted protocol is part of the key, keys are sorted
    assert web["f:ports"] == {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}}
    assert web["f:resources"] == {}


def test_apply_update_merges_and_keeps_fields_of_others() -> None:
    live = apply(None, deployment())
    live["status"] = {"replicas": 3}
    live["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "DEFAULTED", "value": "1"}]
    out = apply(live, deployment(image="nginx:2"), now=T1)
    c = out["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "nginx:2"
    assert c["env"] == [{"name": "DEFAULTED", "value": "1"}], "fields nobody owns survive"
    assert out["status"] == {"replicas": 3}
    assert entry(out, "kubectl")["time"] == T1


def test_apply_removes_fields_the_manager_no_longer_applies() -> None:
    first = deployment(labels={"app": "web", "tier": "front"})
    first["spec"]["template"]["spec"]["containers"].append({"name": "log", "image": "busybox"})
    live = apply(None, first)
    out = apply(live, deployment(replicas=None), now=T1)
    assert "replicas" not in out["spec"]
    assert out["metadata"]["labels"] == {"app": "web"}
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["web"]
    fields = entry(out, "kubectl")["fieldsV1"]
    assert "f:replicas" not in fields["f:spec"]
    assert fields["f:metadata"] == {"f:labels": {"f:app": {}}}


def test_apply_removing_the_last_label_drops_the_map() -> None:
    live = apply(None, deployment(labels={"x": "1"}))
    out = apply(live, deployment(labels={}), now=T1)
    # the manager now owns an explicitly empty labels map, so it stays
    assert out["metadata"]["labels"] == {}
    applied = deployment()
    del applied["metadata"]["labels"]
    out = apply(live, applied, now=T1)
    assert "labels" not in out["metadata"]


def test_apply_keeps_omitted_fields_another_manager_also_owns() -> None:
    live = apply(None, deployment(replicas=3))
    live = apply(live, deployment(replicas=3), manager="other", now=T1)
    assert {"kubectl", "other"} <= {m for m, _ in managers(live)}
    out = apply(live, deployment(replicas=None), now=T2)
    assert out["spec"]["replicas"] == 3
    assert "f:replicas" not in entry(out, "kubectl")["fieldsV1"]["f:spec"]
    assert "f:replicas" in entry(out, "other")["fieldsV1"]["f:spec"]


def test_apply_keeps_a_list_item_when_another_manager_owns_part_of_it() -> None:
    live = apply(None, deployment())
    other = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "web", "args": ["-v"]}]}}},
    }
    live = apply(live, other, manager="sidecar-tool", now=T1)
    applied = deployment()
    applied["spec"]["template"]["spec"]["containers"] = [{"name": "other", "image": "o"}]
    out = apply(live, applied, now=T2)
    names = {c["name"]: c for c in out["spec"]["template"]["spec"]["containers"]}
    assert set(names) == {"web", "other"}
    assert names["web"] == {"name": "web", "args": ["-v"]}, "the key stays, the image kubectl owned goes"


def test_apply_conflict_with_an_updater_and_force() -> None:
    live = apply(None, deployment(replicas=3))
    scaled = copy.deepcopy(live)
    scaled["spec"]["replicas"] = 5
    live = update_managed_fields(live, scaled, "kubectl-scale", "Update", T1, schema=DEPLOYMENT, resolve=resolve)
    assert "f:replicas" not in entry(live, "kubectl")["fieldsV1"]["f:spec"]
    assert entry(live, "kubectl-scale", "Update")["fieldsV1"] == {"f:spec": {"f:replicas": {}}}

    with pytest.raises(APIError) as info:
        apply(live, deployment(replicas=3), now=T2)
    err = info.value
    assert (err.code, err.reason) == (409, "Conflict")
    assert err.message == 'Apply failed with 1 conflict: conflict with "kubectl-scale" using apps/v1: .spec.replicas'
    assert err.details == {
        "causes": [
            {
                "type": "FieldManagerConflict",
                "message": 'conflict with "kubectl-scale" using apps/v1',
                "field": ".spec.replicas",
            }
        ]
    }

    out = apply(live, deployment(replicas=3), force=True, now=T2)
    assert out["spec"]["replicas"] == 3
    assert "f:replicas" in entry(out, "kubectl")["fieldsV1"]["f:spec"]
    assert ("kubectl-scale", "Update") not in managers(out), "an updater left with nothing is dropped"


def test_apply_same_value_is_shared_not_a_conflict() -> None:
    live = apply(None, deployment(replicas=3), manager="a")
    out = apply(live, deployment(replicas=3), manager="b", now=T1)
    assert "f:replicas" in entry(out, "a")["fieldsV1"]["f:spec"]
    assert "f:replicas" in entry(out, "b")["fieldsV1"]["f:spec"]


def test_apply_conflicts_between_appliers_list_every_field() -> None:
    live = apply(None, deployment(replicas=3), manager="a")
    with pytest.raises(APIError) as info:
        apply(live, deployment(replicas=4, image="nginx:9"), manager="b", now=T1)
    msg = info.value.message
    assert msg.startswith('Apply failed with 2 conflicts: conflicts with "a":\n')
    assert "- .spec.replicas" in msg
    assert '- .spec.template.spec.containers[name="web"].image' in msg
    assert {c["field"] for c in info.value.details["causes"]} == {
        ".spec.replicas",
        '.spec.template.spec.containers[name="web"].image',
    }


def test_apply_atomic_map_conflicts_as_a_whole() -> None:
    live = apply(None, deployment(), manager="a")
    applied = deployment()
    applied["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(APIError) as info:
        apply(live, applied, manager="b", now=T1)
    assert info.value.message.endswith(": .spec.selector")


def test_apply_to_an_untracked_object_conflicts_with_before_first_apply() -> None:
    live = deployment(replicas=1)
    with pytest.raises(APIError) as info:
        apply(live, deployment(replicas=2))
    assert 'conflict with "before-first-apply" using apps/v1: .spec.replicas' in info.value.message
    out = apply(live, deployment(replicas=1))
    assert ("before-first-apply", "Update") in managers(out)


def test_apply_noop_keeps_the_timestamp() -> None:
    live = apply(None, deployment())
    again = apply(live, deployment(), now=T2)
    assert again == live


def test_apply_merges_env_by_key_and_orders_like_the_config() -> None:
    live = apply(None, deployment())
    c = live["spec"]["template"]["spec"]["containers"][0]
    c["env"] = [{"name": "B", "value": "1"}, {"name": "SERVER", "value": "x"}]
    applied = deployment()
    applied["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "A", "value": "0"},
        {"name": "B", "value": "2"},
    ]
    out = apply(live, applied, now=T1)
    env = out["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "A", "value": "0"}, {"name": "B", "value": "2"}, {"name": "SERVER", "value": "x"}]


def test_apply_atomic_list_is_replaced() -> None:
    applied = deployment()
    applied["spec"]["template"]["spec"]["containers"][0]["args"] = ["1", "2"]
    live = apply(None, applied)
    applied["spec"]["template"]["spec"]["containers"][0]["args"] = ["3"]
    out = apply(live, applied, now=T1)
    assert out["spec"]["template"]["spec"]["containers"][0]["args"] == ["3"]
    web = entry(out, "kubectl")["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']
    assert web["f:args"] == {}


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda o: o["metadata"].__setitem__("managedFields", [{"manager": "x"}]), "managedFields must be nil"),
        (lambda o: o.pop("apiVersion"), "apiVersion must be set"),
        (lambda o: o.pop("kind"), "kind must be set"),
        (lambda o: o.__setitem__("apiVersion", "apps/v2"), "Incorrect version specified in apply patch"),
    ],
)
def test_apply_rejects_bad_configurations(mutate, fragment: str) -> None:  # type: ignore[no-untyped-def]
    live = apply(None, deployment())
    applied = deployment()
    mutate(applied)
    with pytest.raises(APIError) as info:
        apply(live, applied)
    assert info.value.code == 400
    assert fragment in info.value.message


def test_apply_requires_a_field_manager() -> None:
    with pytest.raises(APIError) as info:
        server_side_apply(None, deployment(), "", False, DEPLOYMENT, resolve, T0)
    assert info.value.code == 400


def test_apply_ignore_fields_are_not_owned() -> None:
    applied = deployment()
    applied["status"] = {"replicas": 1}
    out = server_side_apply(None, applied, "kubectl", False, DEPLOYMENT, resolve, T0, ignore_fields=("status",))
    assert "f:status" not in entry(out, "kubectl")["fieldsV1"]


def test_apply_without_schema_tracks_maps_granularly_and_lists_atomically() -> None:
    applied = {"apiVersion": "x/v1", "kind": "Thing", "metadata": {"name": "t"}, "spec": {"a": {"b": 1}, "l": [1, 2]}}
    out = server_side_apply(None, applied, "m", False, None, None, T0)
    assert entry(out, "m")["fieldsV1"] == {"f:spec": {".": {}, "f:a": {".": {}, "f:b": {}}, "f:l": {}}}


# ---------------------------------------------------------------------------
# managedFields for ordinary writes
# ---------------------------------------------------------------------------


def test_update_managed_fields_on_create_owns_everything_with_containers() -> None:
    obj = deployment()
    out = update_managed_fields(None, obj, "kubectl-create", "Update", T0, schema=DEPLOYMENT, resolve=resolve)
    e = entry(out, "kubectl-create", "Update")
    assert e["apiVersion"] == "apps/v1" and e["time"] == T0
    assert e["fieldsV1"]["f:metadata"] == {"f:labels": {".": {}, "f:app": {}}}
    # structs are not members themselves, new maps, lists and list items are (the "." marker)
    assert "." not in e["fieldsV1"]["f:spec"]
    assert e["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"] == {
        ".": {},
        'k:{"name":"web"}': {".": {}, "f:image": {}, "f:name": {}},
    }
    assert out["spec"] == obj["spec"]


def test_update_managed_fields_moves_changed_fields_and_drops_removed_ones() -> None:
    live = apply(None, deployment(labels={"app": "web", "x": "1"}))
    new = copy.deepcopy(live)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    del new["metadata"]["labels"]["x"]
    out = update_managed_fields(live, new, "kubectl-edit", "Update", T1, schema=DEPLOYMENT, resolve=resolve)
    mine = entry(out, "kubectl-edit", "Update")["fieldsV1"]
    assert mine == {"f:spec": {"f:template": {"f:spec": {"f:containers": {'k:{"name":"web"}': {"f:image": {}}}}}}}
    applier = entry(out, "kubectl")["fieldsV1"]
    assert applier["f:metadata"] == {"f:labels": {"f:app": {}}}
    assert "f:image" not in applier["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']
    # entries are sorted like Kubernetes: Apply before Update
    assert managers(out) == [("kubectl", "Apply"), ("kubectl-edit", "Update")]


def test_update_managed_fields_keeps_stored_entries_when_request_omits_them() -> None:
    live = apply(None, deployment())
    new = copy.deepcopy(live)
    del new["metadata"]["managedFields"]
    new["spec"]["replicas"] = 4
    out = update_managed_fields(live, new, "ctl", "Update", T1, schema=DEPLOYMENT, resolve=resolve)
    assert ("kubectl", "Apply") in managers(out)
    assert entry(out, "ctl", "Update")["fieldsV1"] == {"f:spec": {"f:replicas": {}}}


@pytest.mark.parametrize("reset", [[], [{}]])
def test_update_managed_fields_reset(reset: list) -> None:
    live = apply(None, deployment())
    new = copy.deepcopy(live)
    new["metadata"]["managedFields"] = reset
    out = update_managed_fields(live, new, "ctl", "Update", T1, schema=DEPLOYMENT, resolve=resolve)
    assert "managedFields" not in out["metadata"]


def test_update_managed_fields_without_changes_adds_no_entry() -> None:
    live = apply(None, deployment())
    out = update_managed_fields(live, copy.deepcopy(live), "ctl", "Update", T1, schema=DEPLOYMENT, resolve=resolve)
    assert out == live


def test_update_managed_fields_caps_updaters() -> None:
    obj = deployment()
    obj["metadata"]["labels"] = {}
    live = obj
    for i in range(12):
        new = copy.deepcopy(live)
        new["metadata"]["labels"][f"l{i}"] = "v"
        live = update_managed_fields(live, new, f"m{i:02d}", "Update", f"2024-01-01T00:00:{i:02d}Z")
    names = [m for m, _ in managers(live)]
    assert len(names) == 10
    assert "ancient-changes" in names and "m00" not in names and "m11" in names
    ancient = entry(live, "ancient-changes", "Update")["fieldsV1"]["f:metadata"]["f:labels"]
    assert {"f:l0", "f:l1", "f:l2"} <= set(ancient)


def test_update_managed_fields_round_trips_fieldsv1() -> None:
    live = apply(None, deployment())
    raw = json.loads(json.dumps(live["metadata"]["managedFields"]))
    again = update_managed_fields(live, live, "x", "Update", T1, schema=DEPLOYMENT, resolve=resolve)
    assert again["metadata"]["managedFields"] == raw


# ---------------------------------------------------------------------------
# Apply body parsing
# ---------------------------------------------------------------------------


def test_parse_apply_body_yaml_and_json() -> None:
    body = b"""
apiVersion: v1
kind: ConfigMap
metadata:
  name: c
  annotations:
    created: 2024-01-01
data:
  80: "http"
  enabled: "true"
"""
    obj = parse_apply_body(body)
    assert obj["metadata"]["annotations"]["created"] == "2024-01-01", "dates stay strings"
    assert obj["data"] == {"80": "http", "enabled": "true"}
    assert parse_apply_body(b'{"apiVersion":"v1","kind":"Pod"}') == {"apiVersion": "v1", "kind": "Pod"}


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"- a\n- b\n",
        b"just a string",
        b"a: [1\n",
        b"a: !!binary aGVsbG8=\n",
        b"a: .inf\n",
        b"---\na: 1\n---\nb: 2\n",
    ],
)
def test_parse_apply_body_rejects(body: bytes) -> None:
    with pytest.raises(APIError) as info:
        parse_apply_body(body)
    assert info.value.code == 400
