"""Pieces every per-kind strategy module shares.

Objects arrive as plain dicts decoded from client JSON, so nothing can be
assumed about their shape: a field that should be a list may be a string.
The helpers here read nested fields without raising, so validation reports a
422 with a field path instead of the server failing with a 500.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from arktos.api.errors import FieldError, required
from arktos.api.strategy import Obj, Strategy
from arktos.api.validation import NameValidator, name_is_dns_subdomain


class KindStrategy(Strategy):
    """A `Strategy` that also knows its kind's name rule.

    The generic store checks metadata with
    `validate_object_meta(..., name_validator=strategy.name_validator)`:
    most kinds use DNS-1123 subdomains, but Namespaces and Tenants need a DNS
    label, Services a DNS-1035 label, and RBAC objects allow ':' in names.
    """

    name_validator: NameValidator = staticmethod(name_is_dns_subdomain)  # type: ignore[assignment]

    def fields(self, obj: Obj) -> dict[str, str]:
        """Field-selector values for every name in `field_names`, "" when absent."""
        return {name: field_value(obj, name) for name in self.field_names}


def dig(obj: Any, *keys: str) -> Any:
    """obj[k1][k2]... or None when any level is missing or not an object."""
    for key in keys:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def field_value(obj: Obj, dotted: str) -> str:
    """The field-selector text of a dotted path: strings as-is, bools "true"/"false"."""
    value = dig(obj, *dotted.split("."))
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def type_error(path: str, value: Any, what: str) -> FieldError:
    return FieldError(path, "FieldValueTypeInvalid", f"must be {what}", value)


def check_dict(obj: Any, path: str, errs: list[FieldError]) -> dict[str, Any]:
    """`obj` when it is an object (or absent, giving {}); else record a type error."""
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        errs.append(type_error(path, obj, "an object"))
        return {}
    return obj


def check_list(obj: Any, path: str, errs: list[FieldError]) -> list[Any]:
    if obj is None:
        return []
    if not isinstance(obj, list):
        errs.append(type_error(path, obj, "a list"))
        return []
    return obj


def check_unique_name(item: dict[str, Any], path: str, names: set[str], errs: list[FieldError], *,
                      needed: bool = True, validate: Callable[[str, str], list[FieldError]] | None = None) -> None:
    """The `name` of one element of a list keyed by name: present (when `needed`), a string,
    well-formed (`validate(name, path)`), and not seen before in `names` (which it joins)."""
    name = item.get("name")
    if not name:
        if needed:
            errs.append(required(f"{path}.name"))
    elif not isinstance(name, str):
        errs.append(type_error(f"{path}.name", name, "a string"))
    else:
        if validate is not None:
            errs.extend(validate(name, f"{path}.name"))
        if name in names:
            errs.append(FieldError(f"{path}.name", "FieldValueDuplicate", value=name))
        names.add(name)
