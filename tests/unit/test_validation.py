"""Shared validators: names, labels, annotations, object metadata."""

from __future__ import annotations

import pytest

from arktos.api.errors import FieldError
from arktos.api.validation import (
    TOTAL_ANNOTATION_SIZE_LIMIT,
    is_config_map_key,
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_label_value,
    is_valid_port_name,
    label_selector_matches,
    label_selector_string,
    name_is_dns_label,
    name_is_dns_subdomain,
    name_is_path_segment,
    name_is_tenant,
    validate_label_selector,
    validate_object_meta,
    validate_object_meta_update,
)


def msgs(errs: list[FieldError]) -> list[str]:
    return [e.message() for e in errs]


def by_field(errs: list[FieldError]) -> dict[str, FieldError]:
    return {e.field: e for e in errs}


# --------------------------------------------------------------------------- names


def test_dns1123_subdomain() -> None:
    for ok in ("a", "example.com", "a-b.c-d", "0", "x" * 253, "1.2.3"):
        assert is_dns1123_subdomain(ok) == [], ok
    assert is_dns1123_subdomain("Example.com") == [
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
        "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    ]
    for bad in ("", "-a", "a-", "a..b", ".a", "a_b", "a/b"):
        assert is_dns1123_subdomain(bad), bad
    assert is_dns1123_subdomain("x" * 254) == ["must be no more than 253 characters"]


def test_dns1123_label() -> None:
    assert is_dns1123_label("my-name") == []
    assert is_dns1123_label("123-abc") == []
    assert is_dns1123_label("x" * 63) == []
    assert is_dns1123_label("x" * 64) == ["must be no more than 63 characters"]
    (msg,) = is_dns1123_label("a.b")
    assert msg.startswith("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'")
    # Kubernetes' exact example formatting, double space included.
    assert "(e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')" in msg


def test_dns1035_label() -> None:
    assert is_dns1035_label("my-svc") == []
    (msg,) = is_dns1035_label("1svc")
    assert msg.startswith("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an")
    assert is_dns1035_label("svc-") != []


def test_qualified_name() -> None:
    for ok in ("app", "MyName", "my.name", "123-abc", "example.com/MyName", "k8s.io/x_y", "a" * 63):
        assert is_qualified_name(ok) == [], ok
    assert is_qualified_name("a" * 64) == ["name part must be no more than 63 characters"]
    assert is_qualified_name("/x") == ["prefix part must be non-empty"]
    assert is_qualified_name("Example.com/x")[0].startswith("prefix part a lowercase RFC 1123 subdomain")
    assert is_qualified_name("x/")[0] == "name part must be non-empty"
    (msg,) = is_qualified_name("a/b/c")
    assert msg.startswith("a qualified name must consist of alphanumeric characters")
    assert msg.endswith("with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')")
    assert is_qualified_name("-x")[0].startswith("name part must consist of alphanumeric characters")


def test_label_value() -> None:
    for ok in ("", "MyValue", "my_value", "12345", "a.b-c"):
        assert is_valid_label_value(ok) == [], ok
    assert is_valid_label_value("x" * 64)[0] == "must be no more than 63 characters"
    assert is_valid_label_value("a b")[0].startswith("a valid label must be an empty string or consist of")


def test_config_map_key_and_port_name() -> None:
    assert is_config_map_key("app.properties") == []
    assert is_config_map_key("KEY_NAME") == []
    assert is_config_map_key("..data") == ["must not start with '..'"]
    assert is_config_map_key(".") == ["must not be '.'"]
    assert is_config_map_key("a/b")[0].startswith("a valid config key must consist of alphanumeric characters")
    assert is_valid_port_name("http") == []
    assert is_valid_port_name("http--x") == ["must not contain consecutive hyphens"]
    assert is_valid_port_name("a" * 16) == ["must be no more than 15 characters"]
    assert is_valid_port_name("8080") == ["must contain at least one letter (a-z)"]


def test_name_validators() -> None:
    assert name_is_dns_subdomain("web-", prefix=True) == []  # generateName may end in '-'
    assert name_is_dns_subdomain("web-", prefix=False) != []
    assert name_is_dns_label("a.b") != []
    assert name_is_path_segment("system:controller:foo") == []
    assert name_is_path_segment("..") == ["may not be '..'"]
    assert name_is_path_segment("a/b%c") == ["may not contain '/'", "may not contain '%'"]
    assert name_is_tenant("acme") == []
    assert name_is_tenant("all") == ['"all" is reserved and may not be used as a tenant name']
    assert name_is_tenant("a.b") != []


# --------------------------------------------------------------------------- object metadata


def meta(**kw: object) -> dict:
    m: dict = {"name": "web", "namespace": "default", "tenant": "acme"}
    m.update(kw)
    return {k: v for k, v in m.items() if v is not None}


def test_valid_meta() -> None:
    assert validate_object_meta(meta(labels={"app": "web"}), namespaced=True, tenanted=True) == []
    assert validate_object_meta({"name": "n1"}, namespaced=False, tenanted=False) == []


def test_name_required_unless_generate_name() -> None:
    (err,) = validate_object_meta(meta(name=None), namespaced=True, tenanted=True)
    assert err.message() == "metadata.name: Required value: name or generateName is required"
    assert validate_object_meta(meta(name=None, generateName="web-"), namespaced=True, tenanted=True) == []
    (err,) = validate_object_meta(meta(name=None, generateName="Web-"), namespaced=True, tenanted=True)
    assert err.field == "metadata.generateName"


def test_name_format_and_custom_validator() -> None:
    (err,) = validate_object_meta(meta(name="Web"), namespaced=True, tenanted=True)
    assert err.field == "metadata.name" and err.type == "FieldValueInvalid" and err.value == "Web"
    assert err.message().startswith('metadata.name: Invalid value: "Web": a lowercase RFC 1123 subdomain')
    assert validate_object_meta({"name": "a.b"}, namespaced=False, tenanted=False) == []
    errs = validate_object_meta({"name": "a.b"}, namespaced=False, tenanted=False, name_validator=name_is_dns_label)
    assert [e.field for e in errs] == ["metadata.name"]
    errs = validate_object_meta(
        {"name": "system:node", "tenant": "t"}, namespaced=False, tenanted=True, name_validator=name_is_path_segment
    )
    assert errs == []


def test_namespace_and_tenant_scope() -> None:
    errs = by_field(validate_object_meta({"name": "x"}, namespaced=True, tenanted=True))
    assert errs["metadata.namespace"].type == "FieldValueRequired"
    assert errs["metadata.tenant"].type == "FieldValueRequired"
    errs = by_field(validate_object_meta(meta(), namespaced=False, tenanted=False))
    assert errs["metadata.namespace"].message() == "metadata.namespace: Forbidden: not allowed on this type"
    assert errs["metadata.tenant"].message() == "metadata.tenant: Forbidden: not allowed on this type"
    (err,) = validate_object_meta(meta(namespace="a.b"), namespaced=True, tenanted=True)
    assert err.field == "metadata.namespace"
    (err,) = validate_object_meta(meta(tenant="all"), namespaced=True, tenanted=True)
    assert err.field == "metadata.tenant" and "reserved" in err.detail


def test_labels_and_annotations() -> None:
    errs = validate_object_meta(meta(labels={"bad key!": "v", "k": "bad value!"}), namespaced=True, tenanted=True)
    assert [e.field for e in errs] == ["metadata.labels", "metadata.labels"]
    assert errs[0].value == "bad key!" and errs[1].value == "bad value!"
    # Annotation keys are checked case-insensitively; values are free text.
    assert validate_object_meta(meta(annotations={"Example.com/Key": "any text !"}), namespaced=True,
                                tenanted=True) == []  # fmt: skip
    big = {"a": "x" * TOTAL_ANNOTATION_SIZE_LIMIT}
    (err,) = validate_object_meta(meta(annotations=big), namespaced=True, tenanted=True)
    assert err.message() == "metadata.annotations: Too long: must have at most 262144 bytes"
    fits = {"a": "x" * (TOTAL_ANNOTATION_SIZE_LIMIT - 1)}
    assert validate_object_meta(meta(annotations=fits), namespaced=True, tenanted=True) == []


def test_finalizers() -> None:
    assert validate_object_meta(meta(finalizers=["example.com/cleanup", "kubernetes"]), namespaced=True,
                                tenanted=True) == []  # fmt: skip
    (err,) = validate_object_meta(meta(finalizers=["bad/fin/alizer"]), namespaced=True, tenanted=True)
    assert err.field == "metadata.finalizers"
    (err,) = validate_object_meta(meta(finalizers=["orphan", "foregroundDeletion"]), namespaced=True, tenanted=True)
    assert err.detail == "finalizer orphan and foregroundDeletion cannot be both set"


def test_owner_references() -> None:
    good = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1", "controller": True}
    assert validate_object_meta(meta(ownerReferences=[good]), namespaced=True, tenanted=True) == []
    errs = validate_object_meta(meta(ownerReferences=[{"apiVersion": "apps/"}]), namespaced=True, tenanted=True)
    assert msgs(errs) == [
        'metadata.ownerReferences.apiVersion: Invalid value: "apps/": version must not be empty',
        'metadata.ownerReferences.kind: Invalid value: "": kind must not be empty',
        'metadata.ownerReferences.name: Invalid value: "": name must not be empty',
        'metadata.ownerReferences.uid: Invalid value: "": uid must not be empty',
    ]
    two = [good, {**good, "name": "rs2", "uid": "u2"}]
    (err,) = validate_object_meta(meta(ownerReferences=two), namespaced=True, tenanted=True)
    assert err.field == "metadata.ownerReferences"
    assert 'Found "true" in references for rs and rs2' in err.detail


def test_type_errors_do_not_crash() -> None:
    errs = validate_object_meta(meta(labels="x", annotations=[1], finalizers="f", ownerReferences={}),
                                namespaced=True, tenanted=True)  # fmt: skip
    assert {e.field for e in errs} == {
        "metadata.labels",
        "metadata.annotations",
        "metadata.finalizers",
        "metadata.ownerReferences",
    }
    assert validate_object_meta(None, namespaced=True, tenanted=True)[0].field == "metadata"


def test_meta_update_immutables() -> None:
    old = meta(uid="u1", creationTimestamp="2024-01-01T00:00:00Z", hashKey=42, generation=2)
    assert validate_object_meta_update(dict(old), old) == []
    new = {**old, "name": "other", "namespace": "ns2", "tenant": "t2", "uid": "u2", "hashKey": 7,
           "creationTimestamp": "2025-01-01T00:00:00Z"}  # fmt: skip
    errs = validate_object_meta_update(new, old)
    assert sorted(e.field for e in errs) == [
        "metadata.creationTimestamp",
        "metadata.hashKey",
        "metadata.name",
        "metadata.namespace",
        "metadata.tenant",
        "metadata.uid",
    ]
    assert all(e.detail == "field is immutable" for e in errs)
    (err,) = validate_object_meta_update({**old, "generation": 1}, old)
    assert err.message() == "metadata.generation: Invalid value: 1: must not be decremented"


def test_meta_update_no_new_finalizers_while_deleting() -> None:
    old = meta(deletionTimestamp="2024-01-01T00:00:00Z", finalizers=["a.io/x"])
    assert validate_object_meta_update({**old, "finalizers": []}, old) == []
    (err,) = validate_object_meta_update({**old, "finalizers": ["a.io/x", "b.io/y"]}, old)
    assert err.field == "metadata.finalizers" and err.type == "FieldValueForbidden"


def test_meta_update_checks_new_labels() -> None:
    old = meta()
    (err,) = validate_object_meta_update({**old, "labels": {"k": "bad value!"}}, old)
    assert err.field == "metadata.labels"


# --------------------------------------------------------------------------- label selectors


def test_label_selector_validation() -> None:
    assert validate_label_selector({"matchLabels": {"app": "web"}}, "spec.selector") == []
    errs = validate_label_selector(
        {"matchExpressions": [{"key": "a", "operator": "In"}, {"key": "b", "operator": "Exists", "values": ["x"]},
                              {"key": "c", "operator": "Near"}]},
        "spec.selector",
    )  # fmt: skip
    assert [e.field for e in errs] == [
        "spec.selector.matchExpressions[0].values",
        "spec.selector.matchExpressions[1].values",
        "spec.selector.matchExpressions[2].operator",
    ]


@pytest.mark.parametrize(
    ("selector", "labels", "match"),
    [
        ({}, {"a": "1"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "2"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": ""}, False),
    ],
)
def test_label_selector_matches(selector: dict, labels: dict, match: bool) -> None:
    assert label_selector_matches(selector, labels) is match


def test_label_selector_string() -> None:
    sel = {
        "matchLabels": {"tier": "web", "app": "shop"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "dev"]},
            {"key": "zz", "operator": "DoesNotExist"},
            {"key": "b", "operator": "Exists"},
        ],
    }
    assert label_selector_string(sel) == "app=shop,b,env in (dev,prod),tier=web,!zz"
    assert label_selector_string(None) == ""
