"""The published schemas and OpenAPI documents: completeness, references, kubectl's needs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from arktos.api import openapi
from arktos.api.registry import Registry, ResourceInfo, Scope
from arktos.api.resources import BUILTIN
from arktos.api.schemas import BY_GVK, REF_PREFIX, SCHEMAS, refs_in

CRON_SCHEMA = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
    "cronSpec": {"type": "string", "description": "When to run."}}}}}


def registry() -> Registry:
    reg = Registry()
    for info in BUILTIN:
        reg.add(info)
    return reg


def crontab(schema: dict | None = None) -> ResourceInfo:
    return ResourceInfo("stable.example.com", "v1", "CronTab", "crontabs", Scope.NAMESPACE,
                        short_names=("ct",), subresources=("status", "scale"),
                        custom_schema=schema if schema is not None else dict(CRON_SCHEMA))


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}/{i}")


# ---------------------------------------------------------------- schemas


def test_every_schema_reference_resolves() -> None:
    for name, schema in SCHEMAS.items():
        for target in refs_in(schema):
            assert target in SCHEMAS, f"{name} refers to missing {target}"


def test_every_builtin_kind_has_a_schema_with_its_gvk() -> None:
    for info in BUILTIN:
        schema = SCHEMAS[info.schema_name]
        gvk = {"group": info.group, "version": info.version, "kind": info.kind}
        assert gvk in schema["x-kubernetes-group-version-kind"], info.kind
        if "list" in info.verbs:  # Binding is create-only: it has no list type
            listing = SCHEMAS[info.schema_name + "List"]
            assert {**gvk, "kind": info.kind + "List"} in listing["x-kubernetes-group-version-kind"]
        assert set(schema["properties"]) >= {"apiVersion", "kind", "metadata"}
        assert BY_GVK[(info.group, info.version, info.kind)] == info.schema_name
    assert BY_GVK[("autoscaling", "v1", "Scale")] == "io.k8s.api.autoscaling.v1.Scale"
    assert BY_GVK[("", "v1", "Binding")] == "io.k8s.api.core.v1.Binding"


def test_every_property_has_a_description() -> None:
    for name, schema in SCHEMAS.items():
        for prop, sub in schema.get("properties", {}).items():
            assert sub.get("description"), f"{name}.{prop} has no description"
        assert schema.get("description"), f"{name} has no description"


def test_descriptions_are_whole_sentences_without_table_residue() -> None:
    for path, node in walk(SCHEMAS):
        if path.endswith("/description") and isinstance(node, str):
            assert node == node.strip() and "  " not in node and "@" not in node, path


def test_arktos_metadata_and_pod_fields() -> None:
    meta = SCHEMAS["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]
    assert meta["tenant"]["type"] == "string"
    assert (meta["hashKey"]["type"], meta["hashKey"]["format"]) == ("integer", "int64")
    owner = SCHEMAS["io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference"]["properties"]
    assert owner["hashKey"]["format"] == "int64"
    spec = SCHEMAS["io.k8s.api.core.v1.PodSpec"]["properties"]
    assert spec["virtualMachine"]["allOf"] == [{"$ref": REF_PREFIX + "io.k8s.api.core.v1.VirtualMachine"}]
    assert spec["nics"]["items"] == {"$ref": REF_PREFIX + "io.k8s.api.core.v1.Nic"}
    assert spec["vpc"]["type"] == "string"
    vm = SCHEMAS["io.k8s.api.core.v1.VirtualMachine"]["properties"]
    assert vm["userData"]["format"] == "byte"
    assert set(vm) >= {"name", "image", "resources", "imagePullPolicy", "keyPairName", "publicKey", "userData",
                       "cloudInitUserDataScript", "powerSpec", "shutdownBehavior", "volumeMounts", "bootVolume"}
    status = SCHEMAS["io.k8s.api.core.v1.VirtualMachineStatus"]["properties"]
    assert set(status) >= {"name", "virtualMachineId", "imageId", "state", "powerState", "ready",
                           "restartCount", "resources"}
    assert "virtualMachineStatus" in SCHEMAS["io.k8s.api.core.v1.PodStatus"]["properties"]
    nic = SCHEMAS["io.k8s.api.core.v1.Nic"]["properties"]
    assert set(nic) >= {"name", "subnetName", "portId", "ipAddress"}


def test_merge_keys_on_common_lists() -> None:
    spec = SCHEMAS["io.k8s.api.core.v1.PodSpec"]["properties"]
    container = SCHEMAS["io.k8s.api.core.v1.Container"]["properties"]
    for field, key in ((spec["containers"], "name"), (spec["volumes"], "name"), (container["env"], "name"),
                       (container["volumeMounts"], "mountPath"), (container["ports"], "containerPort")):
        assert field["x-kubernetes-patch-merge-key"] == key
        assert field["x-kubernetes-list-type"] == "map"
    assert spec["volumes"]["x-kubernetes-patch-strategy"] == "merge,retainKeys"
    assert container["ports"]["x-kubernetes-list-map-keys"] == ["containerPort", "protocol"]
    assert spec["tolerations"]["x-kubernetes-list-type"] == "atomic"
    assert "x-kubernetes-patch-strategy" not in spec["tolerations"]


def test_crd_embedded_schema_keeps_unknown_fields() -> None:
    validation = SCHEMAS["io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceValidation"]
    target = validation["properties"]["openAPIV3Schema"]["allOf"][0]["$ref"][len(REF_PREFIX):]
    assert SCHEMAS[target]["x-kubernetes-preserve-unknown-fields"] is True


def test_int_or_string_and_quantity_components() -> None:
    ios = SCHEMAS["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert ios["x-kubernetes-int-or-string"] is True and ios["format"] == "int-or-string"
    port = SCHEMAS["io.k8s.api.core.v1.ServicePort"]["properties"]["targetPort"]
    assert port["x-kubernetes-int-or-string"] is True
    assert {"type": "number"} in SCHEMAS["io.k8s.apimachinery.pkg.api.resource.Quantity"]["oneOf"]


# ---------------------------------------------------------------- v3 documents


def test_document_references_resolve_within_the_document() -> None:
    reg = registry()
    reg.add(crontab())
    for group, versions in reg.groups().items():
        for version in versions:
            doc = openapi.v3_document(reg, group, version)
            names = doc["components"]["schemas"]
            for _, node in walk(doc):
                if isinstance(node, dict) and isinstance(node.get("$ref"), str):
                    assert node["$ref"][len(REF_PREFIX):] in names, (group, version, node["$ref"])


def test_pod_paths_short_and_tenant_forms() -> None:
    doc = openapi.v3_document(registry(), "", "v1")
    paths = doc["paths"]
    for path in (
        "/api/v1/namespaces/{namespace}/pods",
        "/api/v1/namespaces/{namespace}/pods/{name}",
        "/api/v1/namespaces/{namespace}/pods/{name}/status",
        "/api/v1/namespaces/{namespace}/pods/{name}/binding",
        "/api/v1/tenants/{tenant}/namespaces/{namespace}/pods/{name}",
        "/api/v1/tenants/{tenant}/namespaces/{namespace}/pods",
        "/api/v1/tenants/{tenant}/pods",
        "/api/v1/pods",
        "/api/v1/namespaces/{name}",
        "/api/v1/tenants/{tenant}/namespaces/{name}",
        "/api/v1/tenants/{name}",
        "/api/v1/nodes/{name}",
        "/api/v1/watch/tenants/{tenant}/namespaces/{namespace}/pods",
    ):
        assert path in paths, path
    assert "/api/v1/tenants/{tenant}/nodes" not in paths  # nodes are above tenants
    item = paths["/api/v1/tenants/{tenant}/namespaces/{namespace}/pods/{name}"]
    assert set(item) >= {"get", "put", "patch", "delete", "parameters"}
    assert [p["name"] for p in item["parameters"] if p["in"] == "path"] == ["name", "tenant", "namespace"]
    assert item["get"]["x-kubernetes-group-version-kind"] == {"group": "", "version": "v1", "kind": "Pod"}
    binding = paths["/api/v1/namespaces/{namespace}/pods/{name}/binding"]["post"]
    assert binding["x-kubernetes-group-version-kind"]["kind"] == "Binding"
    assert doc["components"]["schemas"]["io.k8s.api.core.v1.Pod"]["x-kubernetes-group-version-kind"]


def test_every_write_operation_advertises_field_validation() -> None:
    reg = registry()
    reg.add(crontab())
    patches = 0
    for group, versions in reg.groups().items():
        for version in versions:
            doc = openapi.v3_document(reg, group, version)
            op_ids: list[str] = []
            for path, item in doc["paths"].items():
                for method, op in item.items():
                    if method == "parameters":
                        continue
                    op_ids.append(op["operationId"])
                    assert op.get("x-kubernetes-action") or path.endswith("/"), (path, method)
                    query = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
                    connect = path.endswith(("/exec", "/attach", "/portforward"))
                    if method in ("put", "patch") or (method == "post" and not connect):
                        assert {"dryRun", "fieldManager", "fieldValidation"} <= query, (path, method)
                        assert op["x-kubernetes-group-version-kind"]["kind"]
                    if method == "patch":
                        patches += 1
                        assert "force" in query
                        content = op["requestBody"]["content"]
                        assert {"application/json-patch+json", "application/merge-patch+json",
                                "application/apply-patch+yaml"} <= set(content)
                        custom = group == "stable.example.com"
                        assert ("application/strategic-merge-patch+json" in content) is not custom
            assert len(op_ids) == len(set(op_ids)), f"duplicate operationIds in {group}/{version}"
    assert patches > 50


def test_scale_subresource_uses_autoscaling_scale() -> None:
    doc = openapi.v3_document(registry(), "apps", "v1")
    scale = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    gvk = {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    assert scale["get"]["x-kubernetes-group-version-kind"] == gvk
    assert scale["patch"]["x-kubernetes-group-version-kind"] == gvk
    assert "io.k8s.api.autoscaling.v1.Scale" in doc["components"]["schemas"]
    # apps documents carry the core types their pod templates use, and nothing from rbac.
    schemas = doc["components"]["schemas"]
    assert "io.k8s.api.core.v1.Container" in schemas
    assert not any(name.startswith("io.k8s.api.rbac") for name in schemas)


def test_index_lists_every_group_version_with_stable_hashes() -> None:
    reg = registry()
    index = openapi.v3_index(reg)
    paths = index["paths"]
    assert set(paths) >= {"api", "apis", "api/v1", "apis/apps/v1", "apis/apps",
                          "apis/rbac.authorization.k8s.io/v1", "apis/coordination.k8s.io/v1",
                          "apis/apiextensions.k8s.io/v1"}
    url = paths["api/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/api/v1?hash=")
    body, digest = openapi.v3_path_body(reg, "api/v1") or (b"", "")
    assert url.endswith("=" + digest) and digest == openapi.document_hash(body)
    assert orjson.loads(body) == openapi.v3_document(reg, "", "v1")
    # The same registry contents give the same hashes, in a fresh registry too.
    assert openapi.v3_index(reg) == index
    assert openapi.v3_index(registry()) == index


def test_adding_and_removing_a_crd_changes_the_index() -> None:
    reg = registry()
    before = openapi.v3_index(reg)["paths"]
    info = crontab()
    reg.add(info)
    after = openapi.v3_index(reg)["paths"]
    assert "apis/stable.example.com/v1" in after and "apis/stable.example.com/v1" not in before
    assert after["api/v1"] == before["api/v1"]
    doc = openapi.v3_document(reg, "stable.example.com", "v1")
    component = doc["components"]["schemas"]["com.example.stable.v1.CronTab"]
    assert component["x-kubernetes-group-version-kind"] == [
        {"group": "stable.example.com", "version": "v1", "kind": "CronTab"}]
    assert component["properties"]["metadata"]["allOf"][0]["$ref"].endswith("meta.v1.ObjectMeta")
    assert component["properties"]["spec"]["properties"]["cronSpec"]["type"] == "string"
    assert "com.example.stable.v1.CronTabList" in doc["components"]["schemas"]
    assert "/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}/scale" in doc["paths"]
    # A new version of the CRD's schema (a new dict) changes the document and its hash.
    reg.remove(info)
    changed = crontab({"type": "object", "x-kubernetes-preserve-unknown-fields": True})
    reg.add(changed)
    again = openapi.v3_index(reg)["paths"]
    assert again["apis/stable.example.com/v1"] != after["apis/stable.example.com/v1"]
    reg.remove(changed)
    assert openapi.v3_index(reg)["paths"] == before
    with pytest.raises(KeyError):
        openapi.v3_document(reg, "stable.example.com", "v1")


def test_documents_are_cached() -> None:
    reg = registry()
    assert openapi.v3_document(reg, "", "v1") is openapi.v3_document(reg, "", "v1")


def test_root_and_group_documents() -> None:
    reg = registry()
    api = openapi.v3_path_document(reg, "api")
    assert api is not None and "/api/" in api["paths"]
    apis = openapi.v3_path_document(reg, "apis")
    assert apis is not None and "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroupList" in apis["components"]["schemas"]
    group = openapi.v3_path_document(reg, "apis/apps")
    assert group is not None and "/apis/apps/" in group["paths"]
    assert openapi.v3_path_document(reg, "apis/nope/v1") is None
    assert openapi.v3_path_document(reg, "apis/nope") is None
    assert openapi.v3_path_document(reg, "something/else/entirely/here") is None


def test_component_name_of_custom_resources() -> None:
    assert openapi.component_name(crontab()) == "com.example.stable.v1.CronTab"
    assert openapi.component_name(BUILTIN[0]) == BUILTIN[0].schema_name


# ---------------------------------------------------------------- v2 (kubectl 1.27, 1.28)


def _pb_fields(data: bytes) -> Iterator[tuple[int, int, bytes | int]]:
    """A minimal protobuf wire-format reader: (field number, wire type, value)."""
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
            yield num, wire, value
        elif wire == 2:
            length, i = _varint(data, i)
            yield num, wire, data[i:i + length]
            i += length
        else:
            raise AssertionError(f"unexpected wire type {wire}")


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, i
        shift += 7


def test_v2_document_and_protobuf() -> None:
    reg = registry()
    reg.add(crontab())
    doc = openapi.v2_document(reg)
    assert doc["swagger"] == "2.0"
    pod = doc["definitions"]["io.k8s.api.core.v1.Pod"]
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "version": "v1", "kind": "Pod"}]
    assert pod["properties"]["spec"]["$ref"] == "#/definitions/io.k8s.api.core.v1.PodSpec"
    assert "com.example.stable.v1.CronTab" in doc["definitions"]
    for path, node in walk(doc["definitions"]):
        assert not path.endswith("/allOf") and not path.endswith("/oneOf"), path
        if path.endswith("/$ref"):
            assert node.startswith("#/definitions/") and node[len("#/definitions/"):] in doc["definitions"]
    patch = doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"]
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}

    body, ctype, etag = openapi.v2_body(reg, openapi.V2_PROTOBUF)
    assert ctype == openapi.V2_PROTOBUF_RESPONSE and etag
    top = list(_pb_fields(body))
    assert top[0] == (1, 2, b"2.0")
    definitions = [v for num, _, v in top if num == 9]
    assert len(definitions) == 1
    named = list(_pb_fields(definitions[0]))  # type: ignore[arg-type]
    assert len(named) == len(doc["definitions"])
    first_name = next(v for num, _, v in _pb_fields(named[0][2]) if num == 1)  # type: ignore[arg-type]
    assert first_name == sorted(doc["definitions"])[0].encode()
    json_body, json_type, _ = openapi.v2_body(reg, "application/json")
    assert json_type == "application/json" and orjson.loads(json_body) == doc
