"""Structural-schema semantics for custom resources: pruning, defaulting, validation.

A CustomResourceDefinition's ``openAPIV3Schema`` is not just documentation:
kube-apiserver drops the fields it does not declare (pruning), fills the
``default`` values it declares (defaulting) and rejects objects that break its
value constraints (validation).  Clients rely on all three -- an operator
reads ``spec.replicas`` without checking it exists because the CRD defaults
it, and ``kubectl apply`` of a typo'd field quietly loses it -- so the rules
here follow apiextensions-apiserver's (pruning/algorithm.go,
defaulting/algorithm.go and the kube-openapi validator), including the wording
of error messages, which users grep for.

Everything works on plain JSON-decoded values (dict, list, str, int, float,
bool, None) and a schema dict, with no state, so a strategy can call it per
request.  Only the structural part of a schema (``properties``,
``additionalProperties``, ``items``) shapes pruning and defaulting;
``allOf``/``anyOf``/``oneOf``/``not`` are value validations only, as in a
structural schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

from arktos.api.errors import FieldError, forbidden, invalid, not_supported, required

Schema = dict[str, Any]

PRESERVE = "x-kubernetes-preserve-unknown-fields"
EMBEDDED = "x-kubernetes-embedded-resource"
INT_OR_STRING = "x-kubernetes-int-or-string"
LIST_TYPE = "x-kubernetes-list-type"
LIST_MAP_KEYS = "x-kubernetes-list-map-keys"

# What a CRD without a schema gets: keep everything, check nothing.
PRESERVE_ALL: Schema = {"type": "object", PRESERVE: True}

_META_FIELDS = frozenset(("apiVersion", "kind", "metadata"))

_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# -- pruning ------------------------------------------------------------------------

# Where the handler of the current request wants pruned paths (see `collect_pruned`).
_PRUNED_SINK: ContextVar[list[str] | None] = ContextVar("arktos_pruned_fields", default=None)


@contextmanager
def collect_pruned() -> Iterator[list[str]]:
    """Gather every path `prune` drops while the block runs (in this task only).

    Strategies are shared by all requests, so they cannot keep per-request
    results; a handler wraps its store call in this to turn what was pruned
    into ``Warning: unknown field "..."`` headers, as kube-apiserver does.
    """
    out: list[str] = []
    token = _PRUNED_SINK.set(out)
    try:
        yield out
    finally:
        _PRUNED_SINK.reset(token)


def prune(obj: Any, schema: Schema | None) -> list[str]:
    """Remove, in place, every field `schema` does not declare; return their paths.

    Paths are dotted from the root (``spec.extra``, ``spec.items[0].x``,
    ``top``).  The root keeps apiVersion, kind and metadata (metadata is
    ObjectMeta, checked elsewhere); an object with
    ``x-kubernetes-embedded-resource`` keeps them too.  Under
    ``x-kubernetes-preserve-unknown-fields`` unknown fields stay, but declared
    properties are still pruned inside.  An object node with neither
    properties nor additionalProperties loses all its fields, which is why
    free-form CRD fields need the preserve flag.
    """
    out: list[str] = []
    if isinstance(obj, dict):
        _prune(obj, schema or {}, "", out, embedded=True, root=True)
    sink = _PRUNED_SINK.get()
    if sink is not None:
        sink.extend(out)
    return out


def _prune(x: Any, s: Schema | None, path: str, out: list[str], embedded: bool = False, root: bool = False) -> None:
    if s is not None and s.get(PRESERVE):
        _skip_prune(x, s, path, out, embedded or bool(s.get(EMBEDDED)))
        return
    if isinstance(x, dict):
        if s is None:
            for k in list(x):
                out.append(_join(path, k))
                del x[k]
            return
        embedded = embedded or bool(s.get(EMBEDDED))
        props = s.get("properties") or {}
        extra = s.get("additionalProperties")
        for k in list(x):
            v = x[k]
            if embedded and ((k in ("apiVersion", "kind") and isinstance(v, str))
                             or (k == "metadata" and isinstance(v, dict))):
                continue
            sub = props.get(k)
            if sub is not None:
                _prune(v, sub, _join(path, k), out)
            elif extra is not None and extra is not False:
                # `additionalProperties: true` has no schema: like Kubernetes, nested objects lose their fields.
                _prune(v, extra if isinstance(extra, dict) else None, _join(path, k), out)
            elif root and k in _META_FIELDS:
                continue
            else:
                out.append(_join(path, k))
                del x[k]
    elif isinstance(x, list):
        items = s.get("items") if s is not None else None
        if not isinstance(items, dict):
            items = None
        for i, v in enumerate(x):
            _prune(v, items, f"{path}[{i}]", out)


def _skip_prune(x: Any, s: Schema, path: str, out: list[str], embedded: bool) -> None:
    """Keep unknown fields, but prune inside the ones the schema declares."""
    if isinstance(x, dict):
        props = s.get("properties") or {}
        extra = s.get("additionalProperties")
        for k, v in x.items():
            if embedded and k in _META_FIELDS:
                continue
            sub = props.get(k)
            if sub is not None:
                _prune(v, sub, _join(path, k), out)
            elif isinstance(extra, dict):
                _prune(v, extra, _join(path, k), out)
    elif isinstance(x, list):
        items = s.get("items")
        if isinstance(items, dict):
            for i, v in enumerate(x):
                _skip_prune(v, items, f"{path}[{i}]", out, bool(items.get(EMBEDDED)))


# -- defaulting ---------------------------------------------------------------------


def apply_defaults(obj: Any, schema: Schema | None) -> None:
    """Fill, in place, the ``default`` of every declared property that is missing.

    As in Kubernetes: a null in a non-nullable property counts as missing (it
    gets the default, or is dropped when there is none, since null there
    would fail validation for no fault of the client's); a default is itself
    defaulted further down; list items get their schema's defaults and a
    null item is replaced by the items default.  ``default: null`` means no
    default.
    """
    if not schema:
        return
    if isinstance(obj, dict):
        props = schema.get("properties")
        if props:
            for k, p in props.items():
                d = p.get("default")
                if k in obj:
                    if obj[k] is None and not p.get("nullable"):
                        if d is None:
                            del obj[k]
                        else:
                            obj[k] = _copy(d)
                elif d is not None:
                    obj[k] = _copy(d)
        extra = schema.get("additionalProperties")
        if props or isinstance(extra, dict):
            for k, v in obj.items():
                if isinstance(v, dict | list):
                    sub = props.get(k) if props else None
                    if sub is None and isinstance(extra, dict):
                        sub = extra
                    if sub is not None:
                        apply_defaults(v, sub)
    elif isinstance(obj, list):
        items = schema.get("items")
        if isinstance(items, dict):
            d = items.get("default")
            for i, v in enumerate(obj):
                if v is None and d is not None and not items.get("nullable"):
                    obj[i] = _copy(d)
                elif isinstance(v, dict | list):
                    apply_defaults(v, items)


def _copy(v: Any) -> Any:
    """A deep copy of a JSON value, so objects never share a default's containers."""
    if isinstance(v, dict):
        return {k: _copy(i) for k, i in v.items()}
    if isinstance(v, list):
        return [_copy(i) for i in v]
    return v


# -- validation ---------------------------------------------------------------------


def _type_of(v: Any) -> str:
    """The JSON type name kube-openapi reports for a value (a float is a number)."""
    if v is None:
        return "null"
    if v is True or v is False:
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _matches_type(v: Any, t: str) -> bool:
    if t == "object":
        return isinstance(v, dict)
    if t == "array":
        return isinstance(v, list)
    if t == "string":
        return isinstance(v, str)
    if t == "boolean":
        return v is True or v is False
    if v is True or v is False:
        return False
    if t == "integer":
        return isinstance(v, int) or (isinstance(v, float) and v.is_integer())
    if t == "number":
        return isinstance(v, int | float)
    return True  # unknown type names are the CRD validator's business, not ours


def _num(v: Any) -> str:
    """A number as Go's %v prints a float64 limit (0, not 0.0)."""
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e21:
        return str(int(v))
    return str(v)


def _display(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))


def _key(v: Any) -> Any:
    """A hashable form with JSON equality: 1 == 1.0, but true != 1 and "1" != 1."""
    if v is None:
        return (0,)
    if v is True or v is False:
        return (1, v)
    if isinstance(v, int | float):
        return (2, v)
    if isinstance(v, str):
        return (3, v)
    if isinstance(v, list):
        return (4, tuple(_key(i) for i in v))
    if isinstance(v, dict):
        return (5, frozenset((k, _key(i)) for k, i in v.items()))
    return (6, repr(v))


@lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _probe_renders_value(kind: str) -> bool:
    return "<v>" in FieldError("f", kind, "d", "<v>").message()


# Kubernetes prints the offending value for type errors and "too many"; errors.py
# may not, in which case the value goes at the front of the detail instead.
_RENDERS_VALUE = {k: _probe_renders_value(k) for k in ("FieldValueTypeInvalid", "FieldValueTooMany")}


def _with_value(path: str, kind: str, value: Any, detail: str) -> FieldError:
    if not _RENDERS_VALUE.get(kind, True):
        shown = f'"{value}"' if isinstance(value, str) else str(value)
        detail = f"{shown}: {detail}"
    return FieldError(path, kind, detail, value)


def _in_body(path: str) -> str:
    return f"{path} in body" if path else "in body"


def validate(obj: Any, schema: Schema | None, path: str = "") -> list[FieldError]:
    """Check `obj` against the schema's value constraints; one FieldError per problem.

    Messages follow kube-apiserver's (``spec.size in body must be of type
    integer: "string"``, ``spec.size in body should be greater than or equal
    to 0``), field paths are dotted with ``[i]`` for list items.  Unknown
    fields are not errors (pruning removes them) and ``default`` is not
    checked here.
    """
    errs: list[FieldError] = []
    if schema:
        _validate(obj, schema, path, errs)
    return errs


def _validate(x: Any, s: Schema, path: str, errs: list[FieldError]) -> None:
    if x is None:
        if s.get("nullable"):
            return
        if s.get(INT_OR_STRING):
            errs.append(_type_error(path, "integer,string", x))
        elif "type" in s:
            errs.append(_type_error(path, s["type"], x))
        else:
            _combinators(x, s, path, errs)
        return

    if s.get(INT_OR_STRING):
        if not (isinstance(x, str) or _matches_type(x, "integer")):
            errs.append(_type_error(path, "integer,string", x))
            return
    else:
        t = s.get("type")
        if t and not _matches_type(x, t):
            errs.append(_type_error(path, t, x))
            return

    fmt = s.get("format")
    if fmt in _INT_RANGES and isinstance(x, int | float) and not isinstance(x, bool):
        lo, hi = _INT_RANGES[fmt]
        if not lo <= x <= hi:
            errs.append(_with_value(path, "FieldValueTypeInvalid", _num(x),
                                    f'{_in_body(path)} must be of type {fmt}: "{_num(x)}"'))

    enum = s.get("enum")
    if enum is not None and _key(x) not in {_key(e) for e in enum}:
        errs.append(not_supported(path, x, [_display(e) for e in enum]))

    if isinstance(x, str):
        _validate_string(x, s, path, errs)
    elif isinstance(x, int | float) and not isinstance(x, bool):
        _validate_number(x, s, path, errs)
    elif isinstance(x, list):
        _validate_array(x, s, path, errs)
    elif isinstance(x, dict):
        _validate_object(x, s, path, errs)

    _combinators(x, s, path, errs)


def _type_error(path: str, want: str, x: Any) -> FieldError:
    got = _type_of(x)
    return _with_value(path, "FieldValueTypeInvalid", got, f'{_in_body(path)} must be of type {want}: "{got}"')


def _validate_string(x: str, s: Schema, path: str, errs: list[FieldError]) -> None:
    n = s.get("minLength")
    if n is not None and len(x) < n:
        errs.append(invalid(path, x, f"{_in_body(path)} should be at least {n} chars long"))
    n = s.get("maxLength")
    if n is not None and len(x) > n:
        errs.append(FieldError(path, "FieldValueTooLong", f"may not be longer than {n}", x))
    pattern = s.get("pattern")
    if pattern is not None:
        rx = _regex(pattern)
        if rx is not None and rx.search(x) is None:  # Go's regexp.MatchString is unanchored too
            errs.append(invalid(path, x, f"{_in_body(path)} should match '{pattern}'"))


def _validate_number(x: float, s: Schema, path: str, errs: list[FieldError]) -> None:
    lo = s.get("minimum")
    exclusive = s.get("exclusiveMinimum")
    if isinstance(exclusive, int | float) and not isinstance(exclusive, bool):
        lo, exclusive = exclusive, True  # the JSON Schema 2019 spelling: the bound itself
    if lo is not None:
        if exclusive and x <= lo:
            errs.append(invalid(path, x, f"{_in_body(path)} should be greater than {_num(lo)}"))
        elif not exclusive and x < lo:
            errs.append(invalid(path, x, f"{_in_body(path)} should be greater than or equal to {_num(lo)}"))
    hi = s.get("maximum")
    exclusive = s.get("exclusiveMaximum")
    if isinstance(exclusive, int | float) and not isinstance(exclusive, bool):
        hi, exclusive = exclusive, True
    if hi is not None:
        if exclusive and x >= hi:
            errs.append(invalid(path, x, f"{_in_body(path)} should be less than {_num(hi)}"))
        elif not exclusive and x > hi:
            errs.append(invalid(path, x, f"{_in_body(path)} should be less than or equal to {_num(hi)}"))
    factor = s.get("multipleOf")
    if factor:
        if isinstance(x, int) and isinstance(factor, int):
            ok = x % factor == 0
        else:
            q = x / factor
            ok = abs(q - round(q)) <= 1e-9 * max(1.0, abs(q))
        if not ok:
            errs.append(invalid(path, x, f"{_in_body(path)} should be a multiple of {_num(factor)}"))


def _validate_array(x: list, s: Schema, path: str, errs: list[FieldError]) -> None:
    n = s.get("minItems")
    if n is not None and len(x) < n:
        errs.append(invalid(path, len(x), f"{_in_body(path)} should have at least {n} items"))
    n = s.get("maxItems")
    if n is not None and len(x) > n:
        errs.append(_with_value(path, "FieldValueTooMany", len(x), f"must have at most {n} items"))
    list_type = s.get(LIST_TYPE)
    if s.get("uniqueItems") or list_type == "set":
        seen: set[Any] = set()
        for i, v in enumerate(x):
            k = _key(v)
            if k in seen:
                errs.append(FieldError(f"{path}[{i}]", "FieldValueDuplicate", "", v))
            seen.add(k)
    elif list_type == "map":
        keys = s.get(LIST_MAP_KEYS) or []
        seen = set()
        for i, v in enumerate(x):
            if not isinstance(v, dict):
                errs.append(invalid(f"{path}[{i}]", _display(v), "must be an object for an array of list-type map"))
                continue
            k = tuple(_key(v.get(name)) for name in keys)
            if k in seen:
                errs.append(FieldError(f"{path}[{i}]", "FieldValueDuplicate", "",
                                       {name: v.get(name) for name in keys}))
            seen.add(k)
    items = s.get("items")
    if isinstance(items, dict):
        for i, v in enumerate(x):
            _validate(v, items, f"{path}[{i}]", errs)
            if isinstance(v, dict) and items.get(EMBEDDED):
                _validate_embedded(v, f"{path}[{i}]", errs)


def _validate_object(x: dict, s: Schema, path: str, errs: list[FieldError]) -> None:
    n = s.get("minProperties")
    if n is not None and len(x) < n:
        errs.append(invalid(path, len(x), f"{_in_body(path)} should have at least {n} properties"))
    n = s.get("maxProperties")
    if n is not None and len(x) > n:
        errs.append(_with_value(path, "FieldValueTooMany", len(x), f"must have at most {n} items"))
    for name in s.get("required") or ():
        if name not in x:
            errs.append(required(_join(path, name)))
    props = s.get("properties") or {}
    extra = s.get("additionalProperties")
    for k, v in x.items():
        sub = props.get(k)
        if sub is None:
            if isinstance(extra, dict):
                sub = extra
            elif extra is False and not s.get(PRESERVE):
                errs.append(forbidden(_join(path, k), f"{_join(path, k)} in body is a forbidden property"))
                continue
            else:
                continue
        _validate(v, sub, _join(path, k), errs)
        if isinstance(v, dict) and sub.get(EMBEDDED):
            _validate_embedded(v, _join(path, k), errs)


def _validate_embedded(x: dict, path: str, errs: list[FieldError]) -> None:
    """An embedded resource names its kind: apiVersion and kind must be non-empty strings."""
    for name in ("apiVersion", "kind"):
        where = _join(path, name)
        if name not in x:
            errs.append(required(where, "must not be empty"))
        elif not isinstance(x[name], str):
            errs.append(invalid(where, _display(x[name]), "must be a string"))
        elif not x[name]:
            errs.append(invalid(where, "", "must not be empty"))


def _combinators(x: Any, s: Schema, path: str, errs: list[FieldError]) -> None:
    all_of = s.get("allOf")
    if all_of:
        failed = 0
        for sub in all_of:
            sub_errs = validate(x, sub, path)
            if sub_errs:
                failed += 1
                errs.extend(sub_errs)
        if failed:
            errs.append(invalid(path, "", f"{_in_body(path)} must validate all the schemas (allOf)"))
    any_of = s.get("anyOf")
    if any_of:
        results = [validate(x, sub, path) for sub in any_of]
        if all(results):
            errs.append(invalid(path, "", f"{_in_body(path)} must validate at least one schema (anyOf)"))
            errs.extend(results[0])
    one_of = s.get("oneOf")
    if one_of:
        results = [validate(x, sub, path) for sub in one_of]
        passed = sum(1 for r in results if not r)
        if passed == 0:
            errs.append(invalid(path, "", f"{_in_body(path)} must validate one and only one schema (oneOf)"))
            errs.extend(results[0])
        elif passed > 1:
            errs.append(invalid(path, "", f"{_in_body(path)} must validate one and only one schema (oneOf). "
                                          f"Found {passed} valid alternatives"))
    not_ = s.get("not")
    if isinstance(not_, dict) and not validate(x, not_, path):
        errs.append(invalid(path, "", f"{_in_body(path)} must not validate the schema (not)"))


__all__ = ["PRESERVE_ALL", "apply_defaults", "collect_pruned", "prune", "validate"]
