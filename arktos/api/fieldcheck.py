"""Unknown-field detection against the published schemas, and schema look-ups.

`fieldValidation=Strict` rejects a body with fields the schema does not know,
`Warn` accepts it with one warning per field; both need the list of such
fields, with paths in Kubernetes's form (``spec.containers[0].imagePullPolcy``).
Only unknown fields are reported here: type checks belong to validation.

The look-up helpers (`resolve`, `schema_at`, `patch_meta`) are shared with the
strategic-merge-patch code, which needs the merge key and list type of any
list in an object, and with anything else that walks an object by its schema.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from arktos.api.schemas import REF_PREFIX, SCHEMAS

Schema = dict[str, Any]

OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_OBJECT_META_REF: Schema = {"$ref": REF_PREFIX + OBJECT_META}


def _component(name: str, schemas: Mapping[str, Schema]) -> Schema:
    if name.startswith(REF_PREFIX):
        name = name[len(REF_PREFIX):]
    try:
        return schemas[name]
    except KeyError:
        if schemas is not SCHEMAS and name in SCHEMAS:
            return SCHEMAS[name]
        raise KeyError(f"no schema named {name}") from None


def resolve(schema_or_ref: Schema | str, schemas: Mapping[str, Schema] | None = None) -> Schema:
    """The effective schema behind a component name, a ``$ref`` or a one-element ``allOf``.

    Keys written next to the reference (description, patch strategy, list
    type...) win over the target's, which is how Kubernetes attaches
    field-level facts to a shared type.  A schema that needs no resolving is
    returned as is, so callers must not mutate the result.
    """
    table = SCHEMAS if schemas is None else schemas
    schema = _component(schema_or_ref, table) if isinstance(schema_or_ref, str) else schema_or_ref
    for _ in range(32):  # reference chains are short; the bound only guards against cycles
        if "$ref" in schema:
            target = _component(schema["$ref"], table)
            outer = {k: v for k, v in schema.items() if k != "$ref"}
        else:
            all_of = schema.get("allOf")
            if not all_of or "properties" in schema:
                return schema
            if len(all_of) == 1:
                target = all_of[0]
            else:
                target = {}
                for part in all_of:
                    part = resolve(part, table)
                    target = {**target, **part,
                              "properties": {**target.get("properties", {}), **part.get("properties", {})}}
            outer = {k: v for k, v in schema.items() if k != "allOf"}
        if not outer:
            schema = target
            continue
        if "$ref" in target or "allOf" in target:
            target = resolve(target, table)
        schema = {**target, **outer}
    raise ValueError("schema reference chain too long (cycle?)")


def _is_free(schema: Schema) -> bool:
    """Whether an object schema accepts any key: it lists neither properties nor a value schema."""
    return "properties" not in schema and "additionalProperties" not in schema


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# Resolved forms of the built-in schema nodes, by identity.  The node itself is
# kept in the value so its id cannot be reused while the entry exists; only
# nodes resolved against the built-in table are cached, and those never change.
_RESOLVED: dict[int, tuple[Schema, Schema]] = {}


def _resolved(schema: Schema, table: Mapping[str, Schema]) -> Schema:
    if table is not SCHEMAS or ("$ref" not in schema and "allOf" not in schema):
        return resolve(schema, table)
    hit = _RESOLVED.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    out = resolve(schema, table)
    if len(_RESOLVED) > 20000:  # custom schemas pass through here too; keep the memo bounded
        _RESOLVED.clear()
    _RESOLVED[id(schema)] = (schema, out)
    return out


def _walk(value: Any, schema: Schema, path: str, out: list[str], table: Mapping[str, Schema]) -> None:
    schema = _resolved(schema, table)
    if isinstance(value, dict):
        if _is_free(schema):
            return
        props: Mapping[str, Schema] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        keep = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        for key, sub in value.items():
            where = _join(path, key)
            if key in props:
                _walk(sub, props[key], where, out, table)
            elif isinstance(extra, dict):
                _walk(sub, extra, where, out, table)
            elif extra is True or keep:
                continue
            else:
                out.append(where)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for i, sub in enumerate(value):
                _walk(sub, items, f"{path}[{i}]", out, table)


def unknown_fields(obj: Mapping[str, Any], schema_name: str | Schema,
                   schemas: Mapping[str, Schema] | None = None) -> list[str]:
    """Dotted paths (``spec.containers[0].foo``) of fields `schema_name` does not know.

    `schema_name` is a component name or a schema dict (a custom resource's
    openAPIV3Schema).  apiVersion and kind are always known at the top, and a
    top-level metadata is checked against ObjectMeta unless the schema itself
    describes metadata's fields, since a CRD's schema usually does not.
    Paths are reported once each, in document order.
    """
    table = SCHEMAS if schemas is None else schemas
    root = resolve(schema_name, table)
    out: list[str] = []
    if isinstance(obj, Mapping):
        props = root.get("properties") or {}
        meta_schema = props.get("metadata")
        if meta_schema is None or "properties" not in resolve(meta_schema, table):
            meta_schema = _OBJECT_META_REF
        wrapped = {**root, "properties": {
            **props,
            "apiVersion": props.get("apiVersion", {"type": "string"}),
            "kind": props.get("kind", {"type": "string"}),
            "metadata": meta_schema,
        }}
        if _is_free(root) and not root.get("additionalProperties"):
            # A root that accepts anything still has a checkable metadata.
            if "metadata" in obj:
                _walk(obj["metadata"], meta_schema, "metadata", out, table)
        else:
            _walk(obj, wrapped, "", out, table)
    return list(dict.fromkeys(out))


def unknown_field_messages(obj: Mapping[str, Any], schema_name: str | Schema,
                           schemas: Mapping[str, Schema] | None = None) -> list[str]:
    """`unknown_fields` in the wording Kubernetes uses for errors and warnings."""
    return [f'unknown field "{p}"' for p in unknown_fields(obj, schema_name, schemas)]


def _segments(path: str | Iterable[str]) -> list[str]:
    if not isinstance(path, str):
        return list(path)
    out: list[str] = []
    for part in path.split("."):
        if not part:
            continue
        name, bracket, _ = part.partition("[")
        if name:
            out.append(name)
        if bracket:
            out.extend("[]" for _ in range(part.count("[")))
    return out


def schema_at(schema_name: str | Schema, path: str | Iterable[str],
              schemas: Mapping[str, Schema] | None = None) -> Schema | None:
    """The resolved schema at a field path, or None where the schema says nothing.

    `path` is dotted (``spec.template.spec.containers``); ``[]`` or ``[3]``
    after a segment steps into list items (``spec.containers[].ports``), and
    a segment under a map steps into its value schema.  The schema of a list
    field keeps its own x-kubernetes-patch-* and list-type keys.
    """
    table = SCHEMAS if schemas is None else schemas
    schema = resolve(schema_name, table)
    for seg in _segments(path):
        if seg == "[]":
            items = schema.get("items")
            if not isinstance(items, dict):
                return None
            schema = resolve(items, table)
            continue
        props = schema.get("properties") or {}
        if seg in props:
            schema = resolve(props[seg], table)
        elif isinstance(schema.get("additionalProperties"), dict):
            schema = resolve(schema["additionalProperties"], table)
        else:
            return None
    return schema


def patch_meta(schema_name: str | Schema, path: str | Iterable[str],
               schemas: Mapping[str, Schema] | None = None) -> dict[str, Any]:
    """Strategic-merge facts of the field at `path`.

    Keys: ``strategy`` (list of "merge"/"retainKeys"), ``mergeKey``,
    ``listType`` and ``listMapKeys``; absent facts are left out, so an empty
    dict means "replace the list as a whole", Kubernetes's default.
    """
    schema = schema_at(schema_name, path, schemas)
    if schema is None:
        return {}
    out: dict[str, Any] = {}
    if "x-kubernetes-patch-strategy" in schema:
        out["strategy"] = schema["x-kubernetes-patch-strategy"].split(",")
    if "x-kubernetes-patch-merge-key" in schema:
        out["mergeKey"] = schema["x-kubernetes-patch-merge-key"]
    if "x-kubernetes-list-type" in schema:
        out["listType"] = schema["x-kubernetes-list-type"]
    if "x-kubernetes-list-map-keys" in schema:
        out["listMapKeys"] = list(schema["x-kubernetes-list-map-keys"])
    return out


__all__ = ["patch_meta", "resolve", "schema_at", "unknown_field_messages", "unknown_fields"]
