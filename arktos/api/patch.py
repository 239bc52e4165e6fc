"""Every patch kind the API server accepts, as pure functions on JSON-like dicts.

`kubectl patch`, `kubectl apply` (client side and `--server-side`), `kubectl
edit`, `kubectl scale` and the official clients all end up here:

* `json_patch`           application/json-patch+json (RFC 6902)
* `merge_patch`          application/merge-patch+json (RFC 7386)
* `strategic_merge_patch` application/strategic-merge-patch+json
* `server_side_apply`    application/apply-patch+yaml, plus `update_managed_fields`
  so ordinary writes keep `metadata.managedFields` honest.

Nothing here touches storage: the handler reads the live object, calls one of
these, then validates and stores the result.  Failures are always `APIError`s
with the code and reason Kubernetes uses, because kubectl prints the message
and client libraries branch on the reason.  Inputs are never mutated: the live
object may sit in a watch cache shared with other requests.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import jsonpatch

from arktos.api.errors import APIError, bad_request
from arktos.api.yamlio import load_yaml

Obj = dict[str, Any]
Schema = dict[str, Any]
Resolve = Callable[[Schema], Schema]
Path = tuple[str, ...]

__all__ = [
    "json_patch",
    "merge_patch",
    "parse_apply_body",
    "server_side_apply",
    "strategic_merge_patch",
    "update_managed_fields",
]


class _Missing:
    """Marks an absent value; `None` is a real JSON value (null) here."""

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


def _copy(value: Any) -> Any:
    """Deep-copy JSON-like data; several times faster than copy.deepcopy."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _type_name(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "null" if value is None else type(value).__name__


def _json_eq(a: Any, b: Any) -> bool:
    """JSON equality: Python's `True == 1` must not make a JSON bool equal a number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_json_eq(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_json_eq(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def _hkey(value: Any) -> Any:
    """A hashable identity for a JSON value, distinguishing bools from numbers."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    if value is None:
        return ("z",)
    return ("j", json.dumps(value, sort_keys=True, separators=(",", ":")))


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _invalid(message: str) -> APIError:
    """422 Invalid without field causes: what Kubernetes returns for patches that do not apply."""
    return APIError(422, "Invalid", message)


# --------------------------------------------------------------------------- JSON patch (RFC 6902)

_JSON_PATCH_OPS = ("add", "remove", "replace", "move", "copy", "test")
# Kubernetes refuses bigger patches outright (maxJSONPatchOperations).
MAX_JSON_PATCH_OPERATIONS = 10000


def json_patch(doc: Obj, ops: Any) -> Obj:
    """Apply an RFC 6902 JSON patch to `doc` and return the new object.

    A body that is not a list of operation objects is a malformed request (400);
    an operation that cannot be applied (a failing `test`, a path that does not
    exist) is 422 Invalid as in Kubernetes, but with a message naming the
    operation, because "the server rejected our request" helps nobody.
    Operations are applied one at a time so the error can point at the culprit.
    """
    if not isinstance(ops, list):
        raise bad_request(f"json patch must be a JSON array of operations, not {_type_name(ops)}")
    if len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise APIError(
            413,
            "RequestEntityTooLarge",
            f"The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {len(ops)}",
        )
    checked = [_check_json_patch_op(i, op) for i, op in enumerate(ops)]
    result: Any = _copy(doc)
    for i, op in enumerate(checked):
        try:
            if op["op"] == "test":
                _json_patch_test(result, op)
            else:
                result = jsonpatch.JsonPatch([op]).apply(result, in_place=True)
        except APIError as err:
            raise _invalid(f"{_describe_op(i, op)} failed: {err.message}") from None
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as err:
            raise _invalid(f"{_describe_op(i, op)} failed: {err}") from None
        except (KeyError, IndexError, TypeError, ValueError) as err:
            # the library lets a few of these escape for odd documents
            raise _invalid(f"{_describe_op(i, op)} failed: {err!r}") from None
    if not isinstance(result, dict):
        raise _invalid(f"json patch result must be a JSON object, not {_type_name(result)}")
    return result


def _check_json_patch_op(i: int, op: Any) -> Obj:
    """Reject structurally malformed operations up front with a 400."""
    if not isinstance(op, dict):
        raise bad_request(f"json patch operation {i} must be a JSON object, not {_type_name(op)}")
    name = op.get("op")
    if name not in _JSON_PATCH_OPS:
        raise bad_request(
            f'json patch operation {i}: unsupported "op" {_compact(name) if name is not None else "(missing)"};'
            f" expected one of {', '.join(_JSON_PATCH_OPS)}"
        )
    if not isinstance(op.get("path"), str):
        raise bad_request(f'json patch operation {i} ({name}): "path" must be a string')
    if name in ("add", "replace", "test") and "value" not in op:
        raise bad_request(f'json patch operation {i} ({name} {op["path"]}): missing "value"')
    if name in ("move", "copy") and not isinstance(op.get("from"), str):
        raise bad_request(f'json patch operation {i} ({name} {op["path"]}): "from" must be a string')
    if "value" in op:
        # the library inserts the value by reference; the caller's patch must stay untouched
        op = {**op, "value": _copy(op["value"])}
    return op


def _describe_op(i: int, op: Obj) -> str:
    text = f"json patch operation {i} ({op['op']} {op['path'] or '/'}"
    if "from" in op:
        text += f" from {op['from']}"
    return text + ")"


def _json_patch_test(doc: Any, op: Obj) -> None:
    """The `test` op with JSON (not Python) equality, and a message that shows both values."""
    pointer = jsonpatch.JsonPointer(op["path"])
    try:
        actual = pointer.resolve(doc)
    except jsonpatch.JsonPointerException:
        raise APIError(422, "Invalid", f"path {op['path']!r} does not exist") from None
    if not _json_eq(actual, op["value"]):
        raise APIError(422, "Invalid", f"test failed: the value is {_compact(actual)}, not {_compact(op['value'])}")


# --------------------------------------------------------------------------- merge patch (RFC 7386)


def merge_patch(doc: Obj, patch: Any) -> Obj:
    """Apply an RFC 7386 JSON merge patch: null deletes, objects merge, the rest replaces.

    The patch of an API object must itself be an object; anything else would
    replace the whole object with a non-object, which no resource can be.
    """
    if not isinstance(patch, dict):
        raise bad_request(f"merge patch must be a JSON object, not {_type_name(patch)}")
    return _merge_7386(_copy(doc) if isinstance(doc, dict) else {}, patch)


def _merge_7386(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return _copy(patch)
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = _merge_7386(target.get(key), value)
    return target


# --------------------------------------------------------------------------- schema lookups


class _Schemas:
    """Field lookups in an OpenAPI v3 schema, resolving `$ref`s once per node.

    A "view" is the resolved schema of a node with the `x-kubernetes-*`
    extensions of the referring schema laid over it: Kubernetes puts list
    extensions on the property that refers to the item type, and map-type
    extensions on the referenced component, so both places must be read.
    Unknown or missing schemas give `None`, which callers treat as "no
    metadata": maps merge, lists are replaced.
    """

    def __init__(self, resolve: Resolve | None) -> None:
        self._resolve = resolve
        # id(raw) -> (raw, view); keeping raw alive keeps its id unique
        self._views: dict[int, tuple[Any, Schema]] = {}

    def view(self, raw: Any) -> Schema | None:
        if not isinstance(raw, dict):
            return None
        hit = self._views.get(id(raw))
        if hit is not None and hit[0] is raw:
            return hit[1]
        resolved: Any = raw
        if self._resolve is not None and ("$ref" in raw or "allOf" in raw):
            try:
                resolved = self._resolve(raw)
            except Exception:
                # a dangling $ref must not turn a patch into a 500: treat the node as unknown
                resolved = {}
        view = dict(resolved) if isinstance(resolved, dict) else {}
        for key, value in raw.items():
            if key.startswith("x-kubernetes-"):
                view[key] = value
        self._views[id(raw)] = (raw, view)
        return view

    def field(self, view: Schema | None, key: str) -> tuple[Schema | None, bool]:
        """The schema of member `key` of an object, and whether it is a declared property."""
        if not view:
            return None, False
        props = view.get("properties")
        if isinstance(props, dict) and key in props:
            return self.view(props[key]), True
        extra = view.get("additionalProperties")
        if isinstance(extra, dict):
            return self.view(extra), False
        return None, False

    def items(self, view: Schema | None) -> Schema | None:
        return self.view(view.get("items")) if view else None


_SHARED: dict[Any, _Schemas] = {}


def _shared_schemas(resolve: Resolve | None) -> _Schemas:
    """One view cache per resolver, kept across requests.

    Schemas are long-lived (built-in ones for the process, a CRD's until it is
    replaced by a new dict), so resolving each node once per process instead
    of once per request takes this off the write path.
    """
    cached = _SHARED.get(resolve)
    if cached is None:
        cached = _SHARED[resolve] = _Schemas(resolve)
    return cached


def _strategies(view: Schema | None) -> set[str]:
    raw = view.get("x-kubernetes-patch-strategy") if view else None
    if not isinstance(raw, str):
        return set()
    return {part.strip() for part in raw.split(",") if part.strip()}


def _merge_key(view: Schema | None) -> str:
    key = view.get("x-kubernetes-patch-merge-key") if view else None
    return key if isinstance(key, str) else ""


# --------------------------------------------------------------------------- strategic merge patch

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_SET_ORDER = "$setElementOrder"
_DELETE_PRIMITIVES = "$deleteFromPrimitiveList"


def _is_directive_key(key: str) -> bool:
    return key in (_DIRECTIVE, _RETAIN_KEYS) or key.startswith((_SET_ORDER, _DELETE_PRIMITIVES))


def _clean(value: Any) -> Any:
    """Copy a patch value that is taken whole, dropping directives and nulls.

    Kubernetes decodes the patched map into a typed struct, which silently
    drops `$patch` keys and nulls; our objects stay dicts, so without this the
    directives of a replaced list would be stored verbatim.
    """
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None and not _is_directive_key(k)}
    if isinstance(value, list):
        return [_clean(v) for v in value if not (isinstance(v, dict) and v.get(_DIRECTIVE) == "delete")]
    return value


def _directive_field(key: str, prefix: str) -> str:
    head, sep, rest = key.partition("/")
    if head != prefix or not sep or not rest:
        raise bad_request(f"invalid patch directive {key!r}: expected {prefix}/<field>")
    return rest


def _order_items(
    patch_items: list[Any],
    server_only: list[Any],
    patch_order: list[Any],
    server_order: list[Any],
    ident: Callable[[Any], Any],
) -> list[Any]:
    """Interleave patched and server-only list items the way Kubernetes does.

    Patch items follow `patch_order`, server-only items keep their relative
    place from `server_order`, and a server-only item goes in front of the
    first patch item it preceded on the server.  Items the server never had
    are not comparable, so they come before remaining server-only items: a
    patch without `$setElementOrder` puts new items first, as in Kubernetes.
    """
    p_index: dict[Any, int] = {}
    for i, item in enumerate(patch_order):
        p_index.setdefault(ident(item), i)
    s_index: dict[Any, int] = {}
    for i, item in enumerate(server_order):
        s_index.setdefault(ident(item), i)
    unknown = len(patch_order) + len(server_order)
    right = sorted(patch_items, key=lambda it: p_index.get(ident(it), unknown))
    left = sorted(server_only, key=lambda it: s_index.get(ident(it), unknown))
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li = s_index.get(ident(left[i]))
            ri = s_index.get(ident(right[j]))
            if li is not None and ri is not None and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


class _StrategicMerge:
    """Kubernetes' strategic merge patch over dicts, driven by OpenAPI extensions.

    Works in place on `original`, which is always a private copy; the patch is
    only read, and every value taken from it is copied.
    """

    def __init__(self, schemas: _Schemas) -> None:
        self.schemas = schemas

    def merge_map(self, original: Obj, patch: Obj, view: Schema | None, path: str) -> Obj:
        directive = patch.get(_DIRECTIVE, _MISSING)
        if directive is not _MISSING:
            if directive == "replace":
                # the map becomes exactly the patch (its own directives still apply)
                body = {k: v for k, v in patch.items() if k != _DIRECTIVE}
                return self.merge_map({}, body, view, path)
            if directive == "delete":
                # Kubernetes leaves an empty map, not a missing key
                return {}
            if directive != "merge":
                raise bad_request(f"unknown patch type: {_compact(directive)} in map at {path or '.'}")

        retain = patch.get(_RETAIN_KEYS, _MISSING)
        if retain is not _MISSING:
            self._retain_keys(original, patch, retain, path)

        handled: set[str] = set()
        for key, value in patch.items():
            if key.startswith(_SET_ORDER):
                name = _directive_field(key, _SET_ORDER)
                self._set_element_order(original, patch, name, value, view, f"{path}.{name}")
                handled.add(name)

        for key, value in patch.items():
            if key in (_DIRECTIVE, _RETAIN_KEYS) or key in handled or key.startswith(_SET_ORDER):
                continue
            if key.startswith(_DELETE_PRIMITIVES):
                name = _directive_field(key, _DELETE_PRIMITIVES)
                if not isinstance(value, list):
                    raise bad_request(f"{key} at {path or '.'} must be a list")
                current = original.get(name)
                if isinstance(current, list):
                    drop = {_hkey(v) for v in value}
                    original[name] = [v for v in current if _hkey(v) not in drop]
                continue
            if value is None:
                original.pop(key, None)
                continue
            child, _ = self.schemas.field(view, key)
            original[key] = self.merge_value(original.get(key, _MISSING), value, child, f"{path}.{key}")
        return original

    def merge_value(self, current: Any, value: Any, view: Schema | None, path: str) -> Any:
        strategies = _strategies(view)
        if isinstance(value, dict):
            if "replace" in strategies:
                return _clean(value)
            return self.merge_map(current if isinstance(current, dict) else {}, value, view, path)
        if isinstance(value, list):
            if "merge" in strategies:
                return self.merge_list(current if isinstance(current, list) else [], value, view, path)
            return _clean(value)
        return value

    def _retain_keys(self, original: Obj, patch: Obj, retain: Any, path: str) -> None:
        if not isinstance(retain, list) or not all(isinstance(k, str) for k in retain):
            raise bad_request(f"invalid patch format of retainKeys at {path or '.'}: must be a list of strings")
        keep = set(retain)
        for key, value in patch.items():
            if value is None or _is_directive_key(key):
                continue
            if key not in keep:
                raise _invalid(
                    f"patch content doesn't match retainKeys list: {key!r} at {path or '.'} is not in {retain}"
                )
        for key in [k for k in original if k not in keep]:
            del original[key]

    def merge_list(self, original: list[Any], patch: list[Any], view: Schema | None, path: str) -> list[Any]:
        key = _merge_key(view)
        plain: list[Any] = []
        replace = False
        deletes: list[Obj] = []
        for item in patch:
            if isinstance(item, dict) and _DIRECTIVE in item:
                directive = item[_DIRECTIVE]
                if directive == "replace":
                    replace = True
                elif directive == "delete":
                    deletes.append(item)
                elif directive == "merge":
                    plain.append({k: v for k, v in item.items() if k != _DIRECTIVE})
                else:
                    raise bad_request(f"unknown patch type: {_compact(directive)} in list {path}")
            else:
                plain.append(item)

        everything = [*original, *plain]
        if any(isinstance(v, list) for v in everything):
            raise _invalid(f"lists of lists are not supported ({path})")
        maps = [v for v in everything if isinstance(v, dict)]
        if maps and len(maps) != len(everything):
            raise bad_request(f"list element types are not identical in {path}")

        if not maps:
            # a list of primitives: a set union that keeps the order
            if deletes:
                raise bad_request(f"$patch: delete in the list of primitives {path}; use {_DELETE_PRIMITIVES}")
            if replace:
                return _dedupe(plain)
            merged = _dedupe([*original, *plain])
            wanted = {_hkey(v) for v in plain}
            return _order_items(
                [v for v in merged if _hkey(v) in wanted],
                [v for v in merged if _hkey(v) not in wanted],
                plain,
                original,
                _hkey,
            )

        if not key:
            raise bad_request(f"cannot merge lists without merge key for {path}")

        def ident(item: Any) -> Any:
            return _hkey(item.get(key)) if isinstance(item, dict) else _hkey(item)

        for item in deletes:
            if key not in item:
                raise bad_request(f"map: {_compact(item)} does not contain declared merge key: {key}")
            gone = _hkey(item[key])
            original = [o for o in original if not (key in o and _hkey(o[key]) == gone)]
        if replace:
            original = []
        server_order = list(original)
        items_view = self.schemas.items(view)
        for item in plain:
            if key not in item:
                raise bad_request(f"map: {_compact(item)} does not contain declared merge key: {key}")
            wanted_id = _hkey(item[key])
            where = next((i for i, o in enumerate(original) if key in o and _hkey(o[key]) == wanted_id), None)
            item_path = f"{path}[{key}={_compact(item[key])}]"
            if where is None:
                original.append(self.merge_map({}, item, items_view, item_path))
            else:
                original[where] = self.merge_map(original[where], item, items_view, item_path)
        in_patch = {ident(p) for p in plain}
        return _order_items(
            [o for o in original if ident(o) in in_patch],
            [o for o in original if ident(o) not in in_patch],
            plain,
            server_order,
            ident,
        )

    def _set_element_order(
        self, original: Obj, patch: Obj, name: str, order: Any, view: Schema | None, path: str
    ) -> None:
        """`$setElementOrder/<name>`: merge the list, then order it like the directive says.

        kubectl apply sends the full order of the items in the configuration
        (only the merge keys) next to the changed items, so the stored list
        follows the file even when the patch itself carries only one item.
        """
        if not isinstance(order, list):
            raise bad_request(f"invalid patch format of {_SET_ORDER}/{name}: must be a list")
        child, _ = self.schemas.field(view, name)
        key = _merge_key(child)
        current = original.get(name, _MISSING)
        if current is not _MISSING and not isinstance(current, list):
            current = _MISSING
        incoming = patch.get(name, _MISSING)
        if incoming is not _MISSING and not isinstance(incoming, list):
            raise bad_request(f"invalid patch: {path} must be a list to go with {_SET_ORDER}/{name}")

        def ident(item: Any) -> Any:
            if key:
                if not isinstance(item, dict) or key not in item:
                    raise bad_request(f"map: {_compact(item)} does not contain declared merge key: {key}")
                return _hkey(item[key])
            return _hkey(item)

        if isinstance(incoming, list):
            self._check_order(incoming, order, ident, path, name)
        if current is _MISSING and incoming is _MISSING:
            return
        merged = current if incoming is _MISSING else self.merge_value(current, incoming, child, path)
        wanted = {ident(o) for o in order}
        original[name] = _order_items(
            [m for m in merged if ident(m) in wanted],
            [m for m in merged if ident(m) not in wanted],
            order,
            current if isinstance(current, list) else [],
            ident,
        )

    @staticmethod
    def _check_order(incoming: list[Any], order: list[Any], ident: Callable[[Any], Any], path: str, name: str) -> None:
        """The patch list's items must appear in `$setElementOrder` in the same relative order."""
        items = [p for p in incoming if not (isinstance(p, dict) and _DIRECTIVE in p)]
        if not items or not order:
            return
        position = 0
        for item in items:
            target = ident(item)
            while position < len(order) and ident(order[position]) != target:
                position += 1
            if position >= len(order):
                raise bad_request(
                    f"the order in patch list {path} doesn't match {_SET_ORDER}/{name}: {_compact(order)}"
                )
            position += 1


def _dedupe(values: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    out = []
    for v in values:
        h = _hkey(v)
        if h not in seen:
            seen.add(h)
            out.append(v)
    return out


def strategic_merge_patch(doc: Obj, patch: Any, schema: Schema | None, resolve: Resolve | None) -> Obj:
    """Apply a Kubernetes strategic merge patch to `doc` and return the new object.

    `schema` is the OpenAPI v3 schema of the object's kind; list semantics come
    from its `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key`
    extensions.  Without a schema every list is replaced and every map merged,
    which is a JSON merge patch plus the map directives (`$patch`,
    `$retainKeys`) -- Kubernetes refuses strategic patches for types it has no
    Go struct for, we prefer to do the obvious thing.
    """
    if not isinstance(patch, dict):
        raise bad_request(f"strategic merge patch must be a JSON object, not {_type_name(patch)}")
    schemas = _shared_schemas(resolve)
    root = schemas.view(schema) if schema is not None else None
    base = _copy(doc) if isinstance(doc, dict) else {}
    try:
        return _StrategicMerge(schemas).merge_map(base, patch, root, "")
    except RecursionError:
        raise bad_request("strategic merge patch is nested too deeply") from None


# --------------------------------------------------------------------------- server-side apply: field sets
#
# A field set is a Python set of paths; a path is a tuple of Kubernetes'
# FieldsV1 path elements: "f:<name>" (a map key or struct field),
# 'k:{"name":"c"}' (a keyed list item), 'v:"x"' (a set item), "i:<n>" (an
# index).  The path of an item itself (the "." of FieldsV1) is the path that
# ends at the item.

_STRUCT, _MAP, _LISTMAP, _SET, _ATOMIC, _SCALAR = "struct", "map", "listmap", "set", "atomic", "scalar"
_SCALAR_TYPES = ("string", "integer", "number", "boolean")

# Never owned by anyone: identity and server-maintained metadata (Kubernetes'
# stripMeta manager), plus Arktos' tenant and hash key.
_UNTRACKED_META = (
    "name",
    "namespace",
    "tenant",
    "creationTimestamp",
    "selfLink",
    "uid",
    "clusterName",
    "generation",
    "managedFields",
    "resourceVersion",
    "hashKey",
)


def _tracked(obj: Any, ignore: Iterable[str]) -> Obj:
    """The part of an object whose fields have owners."""
    if not isinstance(obj, dict):
        return {}
    skip = {"apiVersion", "kind", *ignore}
    out = {k: v for k, v in obj.items() if k not in skip}
    meta = out.get("metadata")
    if isinstance(meta, dict):
        rest = {k: v for k, v in meta.items() if k not in _UNTRACKED_META}
        if rest:
            out["metadata"] = rest
        else:
            del out["metadata"]
    return out


def _pe_sort_key(pe: str) -> tuple[int, str]:
    return ("fkvi".find(pe[:1]) if pe[:1] in "fkvi" else 4, pe)


@dataclass
class _Comparison:
    modified: set[Path] = field(default_factory=set)
    added: set[Path] = field(default_factory=set)
    removed: set[Path] = field(default_factory=set)

    def changed(self) -> bool:
        return bool(self.modified or self.added or self.removed)


class _Fields:
    """Structure-aware walks for server-side apply: field sets, merge, compare, prune."""

    def __init__(self, schemas: _Schemas) -> None:
        self.schemas = schemas

    # ---- structure

    def category(self, view: Schema | None, value: Any) -> str:
        if view:
            kind = view.get("type")
            if kind == "array" or (kind is None and "items" in view):
                list_type = view.get("x-kubernetes-list-type")
                if list_type == "map":
                    return _LISTMAP if self.list_keys(view) else _ATOMIC
                if list_type == "set":
                    return _SET
                if list_type == "atomic":
                    return _ATOMIC
                if "merge" in _strategies(view):
                    return _LISTMAP if _merge_key(view) else _SET
                return _ATOMIC
            if kind == "object" or "properties" in view or "additionalProperties" in view:
                if view.get("x-kubernetes-map-type") == "atomic":
                    return _ATOMIC
                return _STRUCT if "properties" in view else _MAP
            if kind in _SCALAR_TYPES or view.get("x-kubernetes-int-or-string"):
                return _SCALAR
        # no schema: deduce from the value, as Kubernetes does for unknown fields
        if isinstance(value, dict):
            return _MAP
        if isinstance(value, list):
            return _ATOMIC
        return _SCALAR

    def list_keys(self, view: Schema | None) -> list[str]:
        if not view:
            return []
        keys = view.get("x-kubernetes-list-map-keys")
        if isinstance(keys, list) and keys and all(isinstance(k, str) for k in keys):
            return keys
        key = _merge_key(view)
        return [key] if key else []

    def item_pes(self, view: Schema | None, items: list[Any], cat: str) -> list[str]:
        """The path element of every item of a granular list."""
        if cat == _SET:
            return ["v:" + _compact(item) for item in items]
        keys = self.list_keys(view)
        item_view = self.schemas.items(view)
        out = []
        for i, item in enumerate(items):
            fields: dict[str, Any] = {}
            if isinstance(item, dict):
                for k in keys:
                    if k in item:
                        fields[k] = item[k]
                    else:
                        # a key the server defaults (a port's protocol) still identifies the item
                        k_view, _ = self.schemas.field(item_view, k)
                        if k_view and "default" in k_view:
                            fields[k] = k_view["default"]
            out.append("k:" + _compact(dict(sorted(fields.items()))) if fields else f"i:{i}")
        return out

    def granular_list(self, view: Schema | None, value: Any) -> str:
        """_LISTMAP, _SET, or _ATOMIC when the value does not fit the list's declared kind."""
        if not isinstance(value, list):
            return _ATOMIC
        cat = self.category(view, value)
        if cat == _LISTMAP and all(isinstance(v, dict) for v in value):
            return _LISTMAP
        if cat == _SET and not any(isinstance(v, dict | list) for v in value):
            return _SET
        return _ATOMIC

    # ---- field sets

    def to_set(self, value: Any, view: Schema | None) -> set[Path]:
        """The fields an applied configuration sets (Kubernetes' ToFieldSet)."""
        out: set[Path] = set()
        self._to_set(value, view, (), out)
        return out

    def _to_set(self, value: Any, view: Schema | None, path: Path, out: set[Path]) -> None:
        cat = self.category(view, value)
        if cat in (_STRUCT, _MAP) and isinstance(value, dict):
            for key, child_value in value.items():
                child, declared = self.schemas.field(view, key)
                child_path = (*path, "f:" + key)
                self._to_set(child_value, child, child_path, out)
                if child_value is None or child_value == {} or not declared or cat == _MAP:
                    out.add(child_path)
            return
        if cat in (_LISTMAP, _SET) and self.granular_list(view, value) == cat:
            item_view = self.schemas.items(view)
            for pe, item in zip(self.item_pes(view, value, cat), value, strict=True):
                item_path = (*path, pe)
                if cat == _LISTMAP:
                    self._to_set(item, item_view, item_path, out)
                out.add(item_path)
            return
        if path:
            out.add(path)

    def all_paths(self, value: Any, view: Schema | None, path: Path, out: set[Path]) -> None:
        """Every path in a value, containers included (what Compare reports as added/removed).

        A non-empty struct field is left out itself: in Kubernetes the zero Go
        struct always exists, so only maps, lists, list items and leaves
        appear as added, which is where FieldsV1's "." markers come from.
        """
        if value is None:
            return
        cat = self.category(view, value)
        struct_field = (
            bool(path) and path[-1].startswith("f:") and cat == _STRUCT and isinstance(value, dict) and bool(value)
        )
        if path and not struct_field:
            out.add(path)
        if cat in (_STRUCT, _MAP) and isinstance(value, dict):
            for key, child_value in value.items():
                child, _ = self.schemas.field(view, key)
                self.all_paths(child_value, child, (*path, "f:" + key), out)
        elif cat in (_LISTMAP, _SET) and self.granular_list(view, value) == cat:
            item_view = self.schemas.items(view)
            for pe, item in zip(self.item_pes(view, value, cat), value, strict=True):
                self.all_paths(item, item_view, (*path, pe), out)

    # ---- compare

    def compare(self, old: Any, new: Any, view: Schema | None) -> _Comparison:
        result = _Comparison()
        self._compare(old, new, view, (), result)
        return result

    def _compare(self, old: Any, new: Any, view: Schema | None, path: Path, out: _Comparison) -> None:
        old = _MISSING if old is None else old
        new = _MISSING if new is None else new
        if old is _MISSING and new is _MISSING:
            return
        if old is _MISSING:
            self.all_paths(new, view, path, out.added)
            return
        if new is _MISSING:
            self.all_paths(old, view, path, out.removed)
            return
        cat = self.category(view, new)
        if cat in (_STRUCT, _MAP) and isinstance(old, dict) and isinstance(new, dict):
            for key in [*old, *(k for k in new if k not in old)]:
                child, _ = self.schemas.field(view, key)
                self._compare(old.get(key), new.get(key), child, (*path, "f:" + key), out)
            return
        if cat in (_LISTMAP, _SET) and self.granular_list(view, old) == cat and self.granular_list(view, new) == cat:
            old_items = dict(zip(self.item_pes(view, old, cat), old, strict=True))
            new_items = dict(zip(self.item_pes(view, new, cat), new, strict=True))
            item_view = self.schemas.items(view)
            for pe in [*old_items, *(p for p in new_items if p not in old_items)]:
                self._compare(old_items.get(pe), new_items.get(pe), item_view, (*path, pe), out)
            return
        if not _json_eq(old, new):
            out.modified.add(path)

    # ---- merge

    def merge(self, live: Any, applied: Any, view: Schema | None) -> Any:
        """Merge an applied configuration into a (private copy of the) live value."""
        cat = self.category(view, applied)
        if cat in (_STRUCT, _MAP) and isinstance(applied, dict):
            base = live if isinstance(live, dict) else {}
            for key, value in applied.items():
                if value is None:
                    base.pop(key, None)
                    continue
                child, _ = self.schemas.field(view, key)
                base[key] = self.merge(base.get(key, _MISSING), value, child)
            return base
        if cat in (_LISTMAP, _SET) and self.granular_list(view, applied) == cat:
            live_list = live if self.granular_list(view, live) == cat else []
            live_pes = self.item_pes(view, live_list, cat)
            applied_pes = self.item_pes(view, applied, cat)
            applied_items: dict[str, Any] = {}
            for pe, item in zip(applied_pes, applied, strict=True):
                if pe in applied_items:
                    raise bad_request(f"duplicate entries for key {_path_string((pe,))} in an applied list")
                applied_items[pe] = item
            live_items: dict[str, Any] = {}
            for pe, item in zip(live_pes, live_list, strict=True):
                live_items.setdefault(pe, item)
            item_view = self.schemas.items(view)
            out = []
            for pe in _apply_list_order(list(dict.fromkeys(live_pes)), applied_pes):
                if pe in applied_items:
                    out.append(self.merge(live_items.get(pe, _MISSING), applied_items[pe], item_view))
                else:
                    out.append(live_items[pe])
            return out
        if isinstance(applied, dict | list):
            return _clean_nulls(applied)
        return applied

    # ---- prune

    def remove(self, obj: Obj, path: Path, view: Schema | None, keep: set[Path]) -> None:
        """Remove the value at `path`, and maps or lists that removal leaves empty and nobody owns."""
        self._remove(obj, view, path, 0, keep)

    def _remove(self, container: Any, view: Schema | None, path: Path, i: int, keep: set[Path]) -> None:
        pe = path[i]
        last = i == len(path) - 1
        if pe.startswith("f:"):
            name = pe[2:]
            if not isinstance(container, dict) or name not in container:
                return
            if last:
                del container[name]
                return
            child, _ = self.schemas.field(view, name)
            sub = container[name]
            self._remove(sub, child, path, i + 1, keep)
            # Go's omitempty drops emptied maps and slices; structs stay (Kubernetes keeps them too)
            emptied = sub == [] or (sub == {} and self.category(child, sub) == _MAP)
            if emptied and path[: i + 1] not in keep:
                del container[name]
            return
        cat = self.granular_list(view, container)
        if cat == _ATOMIC:
            return
        pes = self.item_pes(view, container, cat)
        if pe not in pes:
            return
        where = pes.index(pe)
        if last:
            del container[where]
        else:
            self._remove(container[where], self.schemas.items(view), path, i + 1, keep)


def _clean_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_clean_nulls(v) for v in value]
    return value


def _apply_list_order(live: list[str], applied: list[str]) -> list[str]:
    """Order of a merged keyed list: live items stay put, applied items follow the config.

    Follows structured-merge-diff: items shared by both lists come in the
    applied order, live-only items keep their position, new items are inserted
    where the configuration has them.
    """
    applied_set = set(applied)
    live_set = set(live)
    shared = [pe for pe in applied if pe in live_set]
    next_shared = 0
    out: list[str] = []
    li = ri = 0
    while li < len(live) or ri < len(applied):
        if li < len(live) and ri < len(applied):
            if live[li] == applied[ri]:
                out.append(live[li])
                li += 1
                ri += 1
                next_shared += 1
                continue
            if live[li] in applied_set and next_shared < len(shared) and shared[next_shared] != live[li]:
                li += 1  # a shared item the config wants later: emitted when the config reaches it
                continue
        if li < len(live) and live[li] not in applied_set:
            out.append(live[li])
            li += 1
            continue
        if ri < len(applied):
            pe = applied[ri]
            out.append(pe)
            ri += 1
            if next_shared < len(shared) and shared[next_shared] == pe:
                next_shared += 1
            continue
        li += 1  # a shared live item already emitted from the config side
    return out


# --------------------------------------------------------------------------- managedFields encoding


@dataclass
class _Entry:
    """One `metadata.managedFields` item with its field set decoded."""

    manager: str
    operation: str
    api_version: str
    time: Any
    subresource: str
    fields: set[Path]

    def identity(self) -> tuple[str, str, str, str]:
        # appliers keep one entry whatever version they use, updaters one per version
        version = "" if self.operation == "Apply" else self.api_version
        return (self.manager, self.operation, self.subresource, version)

    def encode(self) -> Obj:
        out: Obj = {"manager": self.manager, "operation": self.operation}
        if self.api_version:
            out["apiVersion"] = self.api_version
        if self.time is not None:
            out["time"] = self.time
        out["fieldsType"] = "FieldsV1"
        out["fieldsV1"] = _encode_fields(self.fields)
        if self.subresource:
            out["subresource"] = self.subresource
        return out

    def display(self) -> str:
        """How Kubernetes names a manager in conflict messages."""
        text = _compact(self.manager)
        if self.subresource:
            text += f" with subresource {_compact(self.subresource)}"
        if self.operation == "Update":
            text += f" using {self.api_version}"
        return text


def _encode_fields(paths: set[Path]) -> Obj:
    """A field set in FieldsV1 form: nested `f:`/`k:`/`v:`/`i:` keys, `.` for an owned container."""
    tree: dict[str, list[Any]] = {}
    for path in paths:
        node = tree
        for depth, pe in enumerate(path):
            entry = node.get(pe)
            if entry is None:
                entry = node[pe] = [False, {}]
            if depth == len(path) - 1:
                entry[0] = True
            node = entry[1]

    def render(node: dict[str, list[Any]]) -> Obj:
        out: Obj = {}
        for pe in sorted(node, key=_pe_sort_key):
            member, children = node[pe]
            body = render(children)
            out[pe] = {".": {}, **body} if member and children else body
        return out

    return render(tree)


def _decode_fields(raw: Any, path: Path = ()) -> set[Path] | None:
    """The inverse of `_encode_fields`; None when `raw` is not valid FieldsV1."""
    if not isinstance(raw, dict):
        return None
    out: set[Path] = set()
    for key, sub in raw.items():
        if key == ".":
            if path:
                out.add(path)
            continue
        if not isinstance(key, str) or key[:2] not in ("f:", "k:", "v:", "i:"):
            return None
        child = (*path, key)
        if sub == {}:
            out.add(child)
            continue
        nested = _decode_fields(sub, child)
        if nested is None:
            return None
        out |= nested
    return out


def _decode_entries(raw: Any) -> list[_Entry] | None:
    """Decode `metadata.managedFields`; None when it is malformed."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        return None
    entries = []
    for item in raw:
        if not isinstance(item, dict):
            return None
        if item.get("fieldsType", "FieldsV1") != "FieldsV1":
            return None
        fields = _decode_fields(item.get("fieldsV1", {}))
        if fields is None:
            return None
        entries.append(
            _Entry(
                manager=str(item.get("manager", "")),
                operation=str(item.get("operation", "")),
                api_version=str(item.get("apiVersion", "")),
                time=item.get("time"),
                subresource=str(item.get("subresource", "")),
                fields=fields,
            )
        )
    return entries


def _is_reset(raw: Any) -> bool:
    """`managedFields: []` or `[{}]` in a request clears the field managers (as in Kubernetes)."""
    return raw == [] or raw == [{}]


# Kubernetes caps the number of Update entries; the oldest are folded together.
MAX_UPDATE_MANAGERS = 10
_ANCIENT = "ancient-changes"


def _cap_updaters(entries: list[_Entry]) -> list[_Entry]:
    updaters = [e for e in entries if e.operation == "Update" and e.manager != _ANCIENT]
    ancient = next((e for e in entries if e.operation == "Update" and e.manager == _ANCIENT), None)
    total = len(updaters) + (1 if ancient else 0)
    if total <= MAX_UPDATE_MANAGERS:
        return entries
    oldest = sorted(updaters, key=lambda e: str(e.time or ""))[: total - MAX_UPDATE_MANAGERS + (0 if ancient else 1)]
    if ancient is None:
        ancient = _Entry(_ANCIENT, "Update", oldest[0].api_version, oldest[0].time, "", set())
        entries = [*entries, ancient]
    for e in oldest:
        ancient.fields |= e.fields
        ancient.time = max(str(ancient.time or ""), str(e.time or "")) or None
    return [e for e in entries if not any(e is o for o in oldest)]


def _encode_entries(entries: list[_Entry]) -> list[Obj]:
    ordered = sorted(
        (e for e in entries if e.fields),
        key=lambda e: (e.operation, str(e.time or ""), e.manager, e.api_version, e.subresource),
    )
    return [e.encode() for e in ordered]


def _with_managed_fields(obj: Obj, entries: list[_Entry]) -> Obj:
    out = dict(obj)
    meta = dict(out["metadata"]) if isinstance(out.get("metadata"), dict) else {}
    encoded = _encode_entries(entries)
    if encoded:
        meta["managedFields"] = encoded
    else:
        meta.pop("managedFields", None)
    out["metadata"] = meta
    return out


def _path_string(path: Path) -> str:
    """A field path as Kubernetes prints it: `.spec.containers[name="c"].image`."""
    parts = []
    for pe in path:
        kind, body = pe[:2], pe[2:]
        if kind == "f:":
            parts.append("." + body)
        elif kind == "k:":
            try:
                fields = json.loads(body)
                parts.append("[" + ",".join(f"{k}={_compact(v)}" for k, v in fields.items()) + "]")
            except ValueError:
                parts.append(f"[{body}]")
        elif kind == "v:":
            parts.append(f"[={body}]")
        else:
            parts.append(f"[{body}]")
    return "".join(parts)


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- server-side apply


def parse_apply_body(body: bytes) -> Obj:
    """Decode the body of an apply request (YAML, which includes JSON) into an object.

    Only JSON-compatible data is accepted: non-string keys become strings (as
    sigs.k8s.io/yaml does), binary or other exotic YAML types are refused.
    """
    data = load_yaml(body, "the apply configuration")
    if not isinstance(data, dict):
        raise bad_request(f"the apply configuration must be a YAML object, not {_type_name(data)}")
    return _to_json(data, "")


def _to_json(value: Any, path: str) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if isinstance(k, bool):
                key = "true" if k else "false"
            elif k is None:
                key = "null"
            elif isinstance(k, str | int | float):
                key = str(k)
            else:
                raise bad_request(f"error decoding YAML: unsupported map key {k!r} at {path or '.'}")
            out[key] = _to_json(v, f"{path}.{key}")
        return out
    if isinstance(value, list):
        return [_to_json(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        raise bad_request(f"error decoding YAML: {value} at {path or '.'} is not a JSON number")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise bad_request(f"error decoding YAML: unsupported value of type {type(value).__name__} at {path or '.'}")


def server_side_apply(
    live: Obj | None,
    applied: Obj,
    manager: str,
    force: bool,
    schema: Schema | None,
    resolve: Resolve | None,
    now: str,
    *,
    subresource: str = "",
    ignore_fields: Iterable[str] = (),
) -> Obj:
    """Server-side apply of `applied` by `manager` onto `live` (None: create).

    Returns the new object with `metadata.managedFields` updated.  Semantics
    (Kubernetes' structured-merge-diff, simplified):

    * the configuration merges into the live object: maps merge, keyed lists
      merge by key, other lists and atomic maps are replaced;
    * fields this manager applied before and omits now are removed, unless
      another manager owns them (or something below them);
    * setting a field that another manager owns to a different value is a
      409 Conflict listing the fields, unless `force`, which moves ownership;
    * other managers lose fields this apply changes or removes.

    `ignore_fields` names top-level fields that nobody owns here (a main
    resource ignores `status`, as Kubernetes' reset fields do).
    """
    if not isinstance(applied, dict):
        raise bad_request(f"the apply configuration must be an object, not {_type_name(applied)}")
    if not manager:
        raise bad_request("fieldManager is required for apply requests")
    meta = applied.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise bad_request("metadata must be an object")
    if isinstance(meta, dict) and meta.get("managedFields") is not None:
        raise bad_request("metadata.managedFields must be nil")
    api_version, kind = applied.get("apiVersion"), applied.get("kind")
    if not isinstance(api_version, str) or not api_version:
        raise bad_request("apiVersion must be set in an apply configuration")
    if not isinstance(kind, str) or not kind:
        raise bad_request("kind must be set in an apply configuration")
    if live is not None:
        if live.get("apiVersion") and live["apiVersion"] != api_version:
            raise bad_request(
                "Incorrect version specified in apply patch. "
                f"Specified patch version: {api_version}, expected: {live['apiVersion']}"
            )
        if live.get("kind") and live["kind"] != kind:
            raise bad_request(f"Incorrect kind specified in apply patch: {kind}, expected: {live['kind']}")

    ignore = tuple(ignore_fields)
    schemas = _shared_schemas(resolve)
    root = schemas.view(schema) if schema is not None else None
    fields = _Fields(schemas)

    live_obj: Obj = _copy(live) if isinstance(live, dict) else {}
    live_meta = live_obj.get("metadata") if isinstance(live_obj.get("metadata"), dict) else {}
    entries = _decode_entries(live_meta.get("managedFields")) or []
    if live is not None and not live_meta.get("managedFields"):
        # an object nobody tracked yet: its fields belong to a placeholder, so a first
        # apply cannot silently take over what was set by other means
        existing = fields.to_set(_tracked(live_obj, ignore), root)
        if existing:
            entries = [_Entry("before-first-apply", "Update", api_version, now, subresource, existing)]

    mine = next(
        (e for e in entries if (e.manager, e.operation, e.subresource) == (manager, "Apply", subresource)),
        None,
    )
    others = [e for e in entries if e is not mine]
    last_set = mine.fields if mine else set()
    new_set = fields.to_set(_tracked(applied, ignore), root)

    # merging works in place on live_obj; `live` itself stays as it was for the comparison
    merged = fields.merge(live_obj, applied, root)

    stale = last_set - new_set
    if stale:
        owned = set(new_set)
        for e in others:
            owned |= e.fields
        keep = {p[:i] for p in owned for i in range(1, len(p) + 1)}
        doomed = {p for p in stale if p not in keep}
        doomed = {p for p in doomed if not _is_kept_key_field(p, doomed)}
        for path in sorted(doomed, key=len):
            fields.remove(merged, path, root, keep)

    comparison = fields.compare(_tracked(live, ignore), _tracked(merged, ignore), root)
    changed = comparison.modified | comparison.added
    conflicts = [(e, e.fields & changed) for e in others]
    conflicts = [(e, paths) for e, paths in conflicts if paths]
    if conflicts and not force:
        raise _conflict_error(conflicts)
    for e in others:
        e.fields -= changed
        e.fields -= comparison.removed

    unchanged = (
        mine is not None and mine.fields == new_set and mine.api_version == api_version and not comparison.changed()
    )
    applier = _Entry(manager, "Apply", api_version, mine.time if unchanged and mine else now, subresource, new_set)
    return _with_managed_fields(merged, [*others, applier])


def _is_kept_key_field(path: Path, doomed: set[Path]) -> bool:
    """A key field of a keyed item that stays must stay too, or the item loses its identity."""
    if len(path) < 2 or not path[-1].startswith("f:") or not path[-2].startswith("k:"):
        return False
    if path[:-1] in doomed:
        return False
    try:
        keys = json.loads(path[-2][2:])
    except ValueError:
        return False
    return isinstance(keys, dict) and path[-1][2:] in keys


def _conflict_error(conflicts: list[tuple[_Entry, set[Path]]]) -> APIError:
    """409 Conflict worded like Kubernetes, with one FieldManagerConflict cause per field."""
    rows = sorted(
        ((e.display(), path) for e, paths in conflicts for path in paths),
        key=lambda row: (row[0], [_pe_sort_key(pe) for pe in row[1]]),
    )
    causes = [
        {"type": "FieldManagerConflict", "message": f"conflict with {who}", "field": _path_string(path)}
        for who, path in rows
    ]
    if len(rows) == 1:
        who, path = rows[0]
        message = f"Apply failed with 1 conflict: conflict with {who}: {_path_string(path)}"
    else:
        lines: list[str] = []
        current = None
        for who, path in rows:
            if who != current:
                lines.append(f"conflicts with {who}:")
                current = who
            lines.append(f"- {_path_string(path)}")
        message = f"Apply failed with {len(rows)} conflicts: " + "\n".join(lines)
    return APIError(409, "Conflict", message, {"causes": causes})


def update_managed_fields(
    old: Obj | None,
    new: Obj,
    manager: str,
    operation: str = "Update",
    now: str | None = None,
    *,
    schema: Schema | None = None,
    resolve: Resolve | None = None,
    subresource: str = "",
    ignore_fields: Iterable[str] = (),
) -> Obj:
    """Record in `new`'s managedFields that `manager` set what changed from `old`.

    Used for create (old=None), update and the non-apply patches: the writer
    takes ownership of every field it added or modified, and every manager
    loses the fields that were removed.  A request may clear the managers by
    sending `managedFields: []` (or `[{}]`); a request without them, or with
    unreadable ones, keeps the stored ones -- clients that do not know about
    managedFields must not wipe them.  Subresource writes always keep the
    stored ones.  Pass the kind's schema so keyed lists are tracked per item.
    """
    if not isinstance(new, dict):
        raise bad_request(f"object must be a JSON object, not {_type_name(new)}")
    now = now or _now()
    manager = manager or "unknown"
    ignore = tuple(ignore_fields)
    schemas = _shared_schemas(resolve)
    root = schemas.view(schema) if schema is not None else None
    fields = _Fields(schemas)

    old_meta = old.get("metadata") if isinstance(old, dict) else None
    old_raw = old_meta.get("managedFields") if isinstance(old_meta, dict) else None
    new_meta = new.get("metadata")
    new_raw = new_meta.get("managedFields") if isinstance(new_meta, dict) else None
    entries: list[_Entry] | None
    if subresource:
        entries = _decode_entries(old_raw)
    elif _is_reset(new_raw):
        entries = []
    else:
        entries = _decode_entries(new_raw)
        if not entries:
            entries = _decode_entries(old_raw)
    entries = entries or []

    comparison = fields.compare(_tracked(old, ignore), _tracked(new, ignore), root)
    changed = comparison.modified | comparison.added
    version = str(new.get("apiVersion") or (old or {}).get("apiVersion") or "")
    probe = _Entry(manager, operation, version, None, subresource, set())
    mine = next((e for e in entries if e.identity() == probe.identity()), None)
    for e in entries:
        if e is not mine:
            e.fields -= changed
            e.fields -= comparison.removed
    if mine is None:
        mine = probe
        entries.append(mine)
    before = set(mine.fields)
    mine.fields = (mine.fields - comparison.removed) | changed
    if mine.fields != before or comparison.changed():
        mine.time = now
    entries = _cap_updaters([e for e in entries if e.fields])
    return _with_managed_fields(new, entries)
