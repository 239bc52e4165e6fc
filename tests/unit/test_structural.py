"""Structural-schema semantics of custom resources: pruning, defaulting and validation as Kubernetes does them."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from arktos.api.errors import invalid_object
from arktos.api.structural import PRESERVE_ALL, apply_defaults, collect_pruned, prune, validate
from arktos.apiserver.crd import CustomStrategy, infos_for


def obj(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": "g.example.com/v1", "kind": "Widget", "metadata": {"name": "w", "junk": 1}, **fields}


def root(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props}


def errs(value: Any, schema: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(e.field, e.type, e.message()) for e in validate(value, schema, "spec.x")]


# -- pruning ------------------------------------------------------------------------


def test_prune_drops_undeclared_fields_and_reports_paths():
    schema = root(spec=root(size={"type": "integer"}))
    o = obj(spec={"size": 2, "extra": "x"}, top="y")
    assert prune(o, schema) == ["spec.extra", "top"]
    assert o == {"apiVersion": "g.example.com/v1", "kind": "Widget", "metadata": {"name": "w", "junk": 1},
                 "spec": {"size": 2}}


def test_prune_keeps_root_meta_fields_even_without_schema():
    o = obj(spec={"a": 1})
    assert prune(o, None) == ["spec"]
    assert set(o) == {"apiVersion", "kind", "metadata"} and o["metadata"]["junk"] == 1


def test_prune_object_without_properties_loses_everything():
    o = obj(spec={"a": 1, "b": {"c": 2}})
    assert prune(o, root(spec={"type": "object"})) == ["spec.a", "spec.b"]
    assert o["spec"] == {}


def test_prune_nested_arrays():
    item = root(name={"type": "string"}, ports={"type": "array", "items": root(port={"type": "integer"})})
    schema = root(spec=root(items={"type": "array", "items": item},
                            matrix={"type": "array", "items": {"type": "array", "items": root(v={"type": "integer"})}}))
    o = obj(spec={"items": [{"name": "a", "bad": 1, "ports": [{"port": 1, "proto": "x"}]}, {"name": "b"}],
                  "matrix": [[{"v": 1, "w": 2}], []]})
    assert prune(o, schema) == ["spec.items[0].bad", "spec.items[0].ports[0].proto", "spec.matrix[0][0].w"]
    assert o["spec"] == {"items": [{"name": "a", "ports": [{"port": 1}]}, {"name": "b"}], "matrix": [[{"v": 1}], []]}


def test_prune_additional_properties():
    schema = root(spec=root(labels={"type": "object", "additionalProperties": root(v={"type": "string"})}))
    o = obj(spec={"labels": {"a": {"v": "1", "w": 2}, "b": {}}})
    assert prune(o, schema) == ["spec.labels.a.w"]
    assert o["spec"]["labels"] == {"a": {"v": "1"}, "b": {}}


def test_prune_preserve_unknown_fields_still_prunes_declared_subtrees():
    schema = root(spec={"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                        "properties": {"known": root(a={"type": "string"})}})
    o = obj(spec={"anything": {"deep": [1, {"x": 2}]}, "known": {"a": "1", "b": 2}})
    assert prune(o, schema) == ["spec.known.b"]
    assert o["spec"] == {"anything": {"deep": [1, {"x": 2}]}, "known": {"a": "1"}}


def test_prune_preserve_everything_at_root():
    o = obj(spec={"x": 1}, top=2)
    assert prune(o, PRESERVE_ALL) == [] and o["top"] == 2


def test_prune_embedded_resource_keeps_its_meta_fields():
    schema = root(spec=root(template={"type": "object", "x-kubernetes-embedded-resource": True,
                                      "properties": {"spec": root(a={"type": "string"})}}))
    o = obj(spec={"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "z": 1},
                               "spec": {"a": "1", "b": 2}, "other": 3}})
    assert prune(o, schema) == ["spec.template.spec.b", "spec.template.other"]
    assert o["spec"]["template"] == {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "z": 1},
                                     "spec": {"a": "1"}}


def test_prune_non_embedded_nested_meta_fields_are_pruned():
    o = obj(spec={"kind": "x", "metadata": {}})
    assert prune(o, root(spec=root())) == ["spec.kind", "spec.metadata"]


def test_collect_pruned_gathers_paths_for_warnings():
    with collect_pruned() as pruned:
        prune(obj(top=1), root())
        prune(obj(more=1), root())
    assert pruned == ["top", "more"]
    assert prune(obj(top=1), root()) == ["top"]  # outside the block nothing is collected, nothing breaks


# -- defaulting ---------------------------------------------------------------------


def test_defaults_fill_missing_properties_recursively():
    schema = root(spec={"type": "object", "default": {}, "properties": {
        "replicas": {"type": "integer", "default": 1},
        "strategy": {"type": "object", "default": {"type": "Rolling"},
                     "properties": {"type": {"type": "string"}, "max": {"type": "integer", "default": 25}}},
        "set": {"type": "integer", "default": 5},
    }})
    o = obj(spec={"set": 3})
    apply_defaults(o, schema)
    assert o["spec"] == {"set": 3, "replicas": 1, "strategy": {"type": "Rolling", "max": 25}}
    o = obj()
    apply_defaults(o, schema)
    assert o["spec"] == {"replicas": 1, "strategy": {"type": "Rolling", "max": 25}, "set": 5}


def test_defaults_are_copied_not_shared():
    schema = root(spec=root(tags={"type": "array", "items": {"type": "string"}, "default": ["a"]}))
    a, b = obj(spec={}), obj(spec={})
    apply_defaults(a, schema)
    apply_defaults(b, schema)
    a["spec"]["tags"].append("b")
    assert b["spec"]["tags"] == ["a"] and schema["properties"]["spec"]["properties"]["tags"]["default"] == ["a"]


def test_defaults_in_list_items_and_map_values_and_nulls():
    item = root(name={"type": "string"}, port={"type": "integer", "default": 80})
    schema = root(spec=root(
        ports={"type": "array", "items": item},
        byName={"type": "object", "additionalProperties": item},
        mode={"type": "string", "default": "auto"},
        gone={"type": "string"},
        kept={"type": "string", "nullable": True, "default": "x"},
        words={"type": "array", "items": {"type": "string", "default": "w"}},
    ))
    o = obj(spec={"ports": [{"name": "a"}, {"port": 1}], "byName": {"b": {}}, "mode": None, "gone": None,
                  "kept": None, "words": [None, "v"]})
    apply_defaults(o, schema)
    assert o["spec"] == {"ports": [{"name": "a", "port": 80}, {"port": 1}], "byName": {"b": {"port": 80}},
                         "mode": "auto", "kept": None, "words": ["w", "v"]}


# -- validation ---------------------------------------------------------------------


def test_type_errors_read_like_kube_apiserver():
    schema = root(spec=root(size={"type": "integer", "minimum": 0}))
    [e] = validate(obj(spec={"size": "big"}), schema)
    assert (e.field, e.type) == ("spec.size", "FieldValueTypeInvalid")
    assert e.message() == 'spec.size: Invalid value: "string": spec.size in body must be of type integer: "string"'
    [e] = validate(obj(spec={"size": -1}), schema)
    assert e.message() == "spec.size: Invalid value: -1: spec.size in body should be greater than or equal to 0"
    assert validate(obj(spec={"size": 3}), schema) == []


@pytest.mark.parametrize(("t", "good", "bad"), [
    ("object", [{}, {"a": 1}], [[], "x", 1]),
    ("array", [[], [1]], [{}, "x"]),
    ("string", ["", "x"], [1, True, None]),
    ("integer", [0, -5, 3.0, 2**40], [1.5, True, "1", None]),
    ("number", [0, 1.5, -2], [True, "1"]),
    ("boolean", [True, False], [0, 1, "true"]),
])
def test_types(t, good, bad):
    for v in good:
        assert errs(v, {"type": t}) == [], v
    for v in bad:
        [(_, kind, msg)] = errs(v, {"type": t})
        assert kind == "FieldValueTypeInvalid" and f"in body must be of type {t}" in msg, (v, msg)


def test_float_and_bool_type_names():
    assert errs(1.5, {"type": "integer"})[0][2].endswith('must be of type integer: "number"')
    assert errs(True, {"type": "integer"})[0][2].endswith('must be of type integer: "boolean"')
    assert errs(None, {"type": "string"})[0][2].endswith('must be of type string: "null"')


def test_nullable():
    assert errs(None, {"type": "string", "nullable": True}) == []
    assert errs(None, {}) == []


def test_int_or_string():
    s = {"x-kubernetes-int-or-string": True}
    assert errs(1, s) == [] and errs("50%", s) == []
    for v in (1.5, True, {}, None):
        [(_, kind, msg)] = errs(v, s)
        assert kind == "FieldValueTypeInvalid" and "must be of type integer,string" in msg


def test_integer_formats():
    assert errs(2**31 - 1, {"type": "integer", "format": "int32"}) == []
    [(_, kind, msg)] = errs(2**31, {"type": "integer", "format": "int32"})
    assert kind == "FieldValueTypeInvalid" and "must be of type int32" in msg
    assert errs(-(2**31) - 1, {"type": "integer", "format": "int32"})
    assert errs(2**40, {"type": "integer", "format": "int64"}) == []
    assert errs(2**63, {"type": "integer", "format": "int64"})


def test_enum():
    s = {"type": "string", "enum": ["a", "b"]}
    assert errs("a", s) == []
    [(field, kind, msg)] = errs("c", s)
    assert (field, kind) == ("spec.x", "FieldValueNotSupported")
    assert msg == 'spec.x: Unsupported value: "c": supported values: "a", "b"'
    assert errs(True, {"enum": [1]}) and errs(1.0, {"enum": [1]}) == []
    assert errs({"a": [1]}, {"enum": [{"a": [1]}]}) == []


def test_numeric_bounds_and_multiple_of():
    assert "should be greater than or equal to 1" in errs(0, {"minimum": 1})[0][2]
    assert errs(1, {"minimum": 1}) == []
    assert "should be greater than 1" in errs(1, {"minimum": 1, "exclusiveMinimum": True})[0][2]
    assert "should be less than or equal to 5" in errs(6, {"maximum": 5})[0][2]
    assert errs(5, {"maximum": 5}) == []
    assert "should be less than 5" in errs(5, {"maximum": 5, "exclusiveMaximum": True})[0][2]
    assert "should be less than or equal to 1.5" in errs(2, {"maximum": 1.5})[0][2]
    assert "should be a multiple of 3" in errs(7, {"multipleOf": 3})[0][2]
    assert errs(9, {"multipleOf": 3}) == [] and errs(0.3, {"multipleOf": 0.1}) == []
    assert errs(0.35, {"multipleOf": 0.1})


def test_strings():
    assert "should be at least 2 chars long" in errs("a", {"minLength": 2})[0][2]
    assert errs("ab", {"minLength": 2}) == [] and errs("é", {"maxLength": 1}) == []
    [(_, kind, msg)] = errs("abc", {"maxLength": 2})
    assert kind == "FieldValueTooLong" and msg == "spec.x: Too long: may not be longer than 2"
    [(_, kind, msg)] = errs("ABC", {"pattern": "^[a-z]+$"})
    assert kind == "FieldValueInvalid" and msg.endswith("should match '^[a-z]+$'")
    assert errs("xx-abc-yy", {"pattern": "[a-z]+-[a-z]+"}) == []  # unanchored, like Go's MatchString


def test_arrays():
    assert "should have at least 2 items" in errs([1], {"minItems": 2})[0][2]
    [(_, kind, msg)] = errs([1, 2, 3], {"maxItems": 2})
    assert kind == "FieldValueTooMany" and "must have at most 2 items" in msg
    assert [(f, k) for f, k, _ in errs([1, 2, 1, 1.0, True], {"uniqueItems": True})] == [
        ("spec.x[2]", "FieldValueDuplicate"), ("spec.x[3]", "FieldValueDuplicate")]
    assert errs([[1], [2], {"a": 1}], {"uniqueItems": True}) == []


def test_list_type_set_and_map():
    assert [f for f, _, _ in errs(["a", "b", "a"], {"type": "array", "x-kubernetes-list-type": "set"})] == ["spec.x[2]"]
    assert errs(["a", "a"], {"type": "array", "x-kubernetes-list-type": "atomic"}) == []
    s = {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name", "proto"],
         "items": root(name={"type": "string"}, proto={"type": "string"})}
    value = [{"name": "a", "proto": "TCP"}, {"name": "a", "proto": "UDP"}, {"name": "a", "proto": "TCP"}]
    [(field, kind, _)] = errs(value, s)
    assert (field, kind) == ("spec.x[2]", "FieldValueDuplicate")
    assert [e[:2] for e in errs(["a"], s)] == [("spec.x[0]", "FieldValueInvalid"),
                                               ("spec.x[0]", "FieldValueTypeInvalid")]


def test_objects():
    s = {"type": "object", "required": ["a", "b"], "minProperties": 1, "maxProperties": 2,
         "properties": {"a": {"type": "string"}}}
    assert [(f, k) for f, k, _ in errs({"a": "1"}, s)] == [("spec.x.b", "FieldValueRequired")]
    assert errs({"a": "1"}, s)[0][2] == "spec.x.b: Required value"
    found = errs({}, s)
    assert "should have at least 1 properties" in found[0][2] and len(found) == 3
    assert errs({"a": "1", "b": 1, "c": 1}, s)[0][1] == "FieldValueTooMany"
    assert errs({"b": 1, "z": 2}, {"additionalProperties": {"type": "integer"}}) == []
    assert errs({"z": "2"}, {"additionalProperties": {"type": "integer"}})[0][0] == "spec.x.z"


def test_nested_paths():
    schema = root(spec=root(items={"type": "array", "items": root(n={"type": "integer", "maximum": 3})}))
    [e] = validate(obj(spec={"items": [{"n": 1}, {"n": 4}]}), schema)
    assert e.field == "spec.items[1].n" and "spec.items[1].n in body should be less than or equal to 3" in e.message()


def test_combinators():
    assert errs(5, {"allOf": [{"minimum": 1}, {"maximum": 10}]}) == []
    found = errs(11, {"allOf": [{"minimum": 1}, {"maximum": 10}]})
    assert any("should be less than or equal to 10" in m for _, _, m in found)
    assert any("must validate all the schemas (allOf)" in m for _, _, m in found)
    assert errs("x", {"anyOf": [{"type": "integer"}, {"type": "string"}]}) == []
    assert "must validate at least one schema (anyOf)" in errs(True, {"anyOf": [{"type": "integer"},
                                                                               {"type": "string"}]})[0][2]
    one = {"oneOf": [{"minimum": 0}, {"maximum": 10}]}
    assert errs(-1, one) == [] and errs(11, one) == []
    assert "Found 2 valid alternatives" in errs(5, one)[0][2]
    assert "must validate one and only one schema (oneOf)" in errs(1, {"oneOf": [{"maximum": 0}, {"minimum": 2}]})[0][2]
    assert "must not validate the schema (not)" in errs("a", {"not": {"enum": ["a"]}})[0][2]
    assert errs("b", {"not": {"enum": ["a"]}}) == []
    required_one = {"type": "object", "oneOf": [{"required": ["a"]}, {"required": ["b"]}]}
    assert errs({"a": 1}, required_one) == [] and errs({"a": 1, "b": 2}, required_one)


def test_default_is_not_validated_and_unknown_fields_are_not_errors():
    assert errs({"extra": 1}, {"type": "object", "properties": {"a": {"type": "integer", "default": "zz"}}}) == []


def test_embedded_resource_needs_api_version_and_kind():
    schema = root(spec=root(t={"type": "object", "x-kubernetes-embedded-resource": True,
                               "x-kubernetes-preserve-unknown-fields": True}))
    found = validate(obj(spec={"t": {"kind": 1}}), schema)
    assert [(e.field, e.type) for e in found] == [("spec.t.apiVersion", "FieldValueRequired"),
                                                  ("spec.t.kind", "FieldValueInvalid")]
    assert validate(obj(spec={"t": {"apiVersion": "v1", "kind": "Pod"}}), schema) == []


def test_invalid_status_message():
    schema = root(spec=root(size={"type": "integer", "minimum": 0}, color={"type": "string", "enum": ["red"]}))
    err = invalid_object("Widget", "w", validate(obj(spec={"size": -1, "color": "blue"}), schema), "g.example.com")
    assert err.code == 422 and err.reason == "Invalid"
    assert "spec.size in body should be greater than or equal to 0" in err.message
    assert 'spec.color: Unsupported value: "blue": supported values: "red"' in err.message


# -- the CRD strategy ---------------------------------------------------------------


def crd(schema: dict[str, Any] | None, status: bool = False) -> dict[str, Any]:
    version: dict[str, Any] = {"name": "v1", "served": True, "storage": True}
    if schema is not None:
        version["schema"] = {"openAPIV3Schema": schema}
    if status:
        version["subresources"] = {"status": {}}
    return {"metadata": {"name": "widgets.g.example.com"},
            "spec": {"group": "g.example.com", "scope": "Namespaced", "versions": [version],
                     "names": {"plural": "widgets", "kind": "Widget"}}}


def test_custom_strategy_prunes_defaults_and_validates():
    schema = root(spec=root(size={"type": "integer", "minimum": 0, "default": 1}, color={"type": "string"}),
                  status=root(ready={"type": "boolean"}))
    [info] = infos_for(crd(schema, status=True))
    strategy = info.strategy
    assert isinstance(strategy, CustomStrategy) and strategy.status_subresource
    o = obj(spec={"color": "red", "extra": 1}, top=1, status={"ready": True})
    with collect_pruned() as pruned:
        strategy.prepare_for_create(o)
    assert pruned == ["spec.extra", "top"] and "status" not in o
    strategy.default(o)
    assert o["spec"] == {"color": "red", "size": 1} and strategy.validate(o) == []

    new = obj(spec={"size": -1, "junk": 1})
    strategy.prepare_for_update(new, {**o, "status": {"ready": True}})
    assert new["spec"] == {"size": -1} and new["status"] == {"ready": True}
    assert [e.field for e in strategy.validate(new)] == ["spec.size"]

    stored = strategy.prepare_for_status_update(obj(status={"ready": False, "odd": 1}), copy.deepcopy(o))
    assert stored["status"] == {"ready": False} and stored["spec"] == o["spec"]


def test_custom_strategy_without_schema_keeps_everything():
    [info] = infos_for(crd(None))
    o = obj(spec={"anything": [1, {"a": 2}]}, top=1)
    info.strategy.prepare_for_create(o)
    assert o["top"] == 1 and o["spec"] == {"anything": [1, {"a": 2}]} and info.strategy.validate(o) == []
