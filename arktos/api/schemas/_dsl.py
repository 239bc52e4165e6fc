"""A table language for OpenAPI component schemas.

Hundreds of Kubernetes types written as nested dict literals would bury the
facts that matter (a field's type, its merge key, its list semantics) under
braces.  Here each type is a small table, one field per line::

    name      string                      The container's name.
    ports     []ContainerPort @merge:containerPort @map:containerPort,protocol
                                          Ports the container listens on.

A line is ``<field> <type> [@flag ...] <description>``; a line indented deeper
than its neighbours continues the previous one (flags included, until the
description starts).  Types:

* scalars ``string int32 int64 bool number bytes``;
* ``any`` (no type, anything kept) and ``object`` (a free-form object);
* ``[]T`` (array), ``{}T`` (map of string to T);
* any other word names a component: a short name is looked up in the
  declaring `Group`'s prefix, then in the groups it imports; a dotted name is
  taken as is.  Look-ups happen in `build`, so order of declaration is free
  and a typo fails at import time instead of yielding a dangling ``$ref``.

Flags: ``@req`` (required), ``@merge:K`` (strategic merge by key K),
``@patch:S`` (explicit patch strategy, e.g. ``merge,retainKeys``),
``@map:K1,K2`` / ``@set`` / ``@atomic`` (list type), ``@keyed:K`` (the common
pair: merge by K and a list map keyed by K), ``@mapatomic`` (a map or struct
replaced as a whole), ``@enum:A|B``, ``@default:V`` and ``@preserve``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

Schema = dict[str, Any]

REF_PREFIX = "#/components/schemas/"

_SCALARS: dict[str, Schema] = {
    "string": {"type": "string"},
    "int32": {"type": "integer", "format": "int32"},
    "int64": {"type": "integer", "format": "int64"},
    "bool": {"type": "boolean"},
    "number": {"type": "number", "format": "double"},
    "bytes": {"type": "string", "format": "byte"},
    "any": {"x-kubernetes-preserve-unknown-fields": True},
    "object": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
}

INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"


@dataclass
class _Field:
    name: str
    type: str
    flags: list[str]
    description: str


@dataclass
class _Model:
    group: Group
    name: str
    description: str
    fields: list[_Field]
    required: list[str]
    gvk: list[dict[str, str]] | None
    extra: Schema


@dataclass
class _Raw:
    name: str
    schema: Schema


_MODELS: dict[str, _Model | _Raw] = {}


@dataclass
class Group:
    """A component-name prefix (``io.k8s.api.core.v1``) and where short names resolve."""

    prefix: str
    imports: tuple[str, ...] = ()
    names: list[str] = field(default_factory=list)

    def full(self, short: str) -> str:
        return f"{self.prefix}.{short}"

    def model(
        self,
        name: str,
        description: str,
        fields: str = "",
        *,
        required: tuple[str, ...] = (),
        preserve: bool = False,
        atomic: bool = False,
        gvk: list[dict[str, str]] | None = None,
        extra: Schema | None = None,
    ) -> str:
        """Declare an object type; returns its full component name."""
        parsed = parse_fields(fields)
        req = list(required) + [f.name for f in parsed if "@req" in f.flags]
        more: Schema = dict(extra or {})
        if preserve:
            more["x-kubernetes-preserve-unknown-fields"] = True
        if atomic:
            more["x-kubernetes-map-type"] = "atomic"
        full = self.full(name)
        if full in _MODELS:
            raise ValueError(f"schema {full} declared twice")
        _MODELS[full] = _Model(self, full, description, parsed, req, gvk, more)
        self.names.append(full)
        return full

    def kind(
        self,
        name: str,
        description: str,
        fields: str = "",
        *,
        group: str,
        version: str,
        listed: bool = True,
        metadata: bool = True,
        **kw: Any,
    ) -> str:
        """Declare a top-level kind: apiVersion/kind/metadata first, GVK attached.

        `listed` also declares ``<Kind>List``, since every served kind has one
        and writing thirty identical list tables by hand adds nothing.
        """
        head = _TYPE_META + (_OBJECT_META if metadata else "")
        gvk = [{"group": group, "kind": name, "version": version}]
        full = self.model(name, description, head + "\n" + _dedent(fields), gvk=gvk, **kw)
        if listed:
            self.model(
                name + "List",
                f"A page of {name} objects, as returned by a list call.",
                _TYPE_META
                + _LIST_META
                + f"items []{full} @req The {name} objects on this page.\n",
                gvk=[{"group": group, "kind": name + "List", "version": version}],
            )
        return full

    def raw(self, name: str, schema: Schema) -> str:
        """Declare a component whose schema is not an object table (a string, a union)."""
        full = self.full(name)
        _MODELS[full] = _Raw(full, schema)
        self.names.append(full)
        return full


_TYPE_META = """
apiVersion string  The versioned schema of this object (group/version); the server rejects
                   versions it does not serve.
kind       string  The object's type in CamelCase, matching the endpoint it was sent to.
"""
_OBJECT_META = """
metadata ObjectMeta Name, tenant, namespace, labels and the other data every stored object has.
"""
_LIST_META = """
metadata ListMeta Version and paging information of the list.
"""


def _dedent(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return ""
    base = min(len(ln) - len(ln.lstrip()) for ln in lines)
    return "\n".join(ln[base:] for ln in lines)


def parse_fields(text: str) -> list[_Field]:
    """Turn a field table into `_Field`s (see the module docstring for the syntax)."""
    out: list[_Field] = []
    lines = [ln for ln in _dedent(text).splitlines() if ln.strip()]
    for line in lines:
        if line[0].isspace():
            if not out:
                raise ValueError(f"continuation line with nothing to continue: {line!r}")
            words = line.split()
            # Flags may wrap onto the next line as long as no description came yet.
            while words and words[0].startswith("@") and not out[-1].description:
                out[-1].flags.append(words.pop(0))
            out[-1].description = f"{out[-1].description} {' '.join(words)}".strip()
            continue
        parts = line.split()
        if len(parts) < 2:
            raise ValueError(f"field line needs a name and a type: {line!r}")
        name, typ, rest = parts[0], parts[1], parts[2:]
        flags: list[str] = []
        while rest and rest[0].startswith("@"):
            flags.append(rest.pop(0))
        out.append(_Field(name, typ, flags, " ".join(rest)))
    names = [f.name for f in out]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ValueError(f"fields declared twice: {sorted(dupes)}")
    return out


def ref(name: str) -> Schema:
    return {"$ref": REF_PREFIX + name}


def _resolve_name(group: Group, short: str) -> str:
    if "." in short:
        if short not in _MODELS:
            raise KeyError(f"unknown schema {short}")
        return short
    for prefix in (group.prefix, *group.imports):
        candidate = f"{prefix}.{short}"
        if candidate in _MODELS:
            return candidate
    raise KeyError(f"type {short!r} not found from {group.prefix} (imports {group.imports})")


def _type_schema(group: Group, typ: str) -> Schema:
    if typ.startswith("[]"):
        return {"type": "array", "items": _type_schema(group, typ[2:])}
    if typ.startswith("{}"):
        return {"type": "object", "additionalProperties": _type_schema(group, typ[2:])}
    if typ in _SCALARS:
        return copy.deepcopy(_SCALARS[typ])
    return ref(_resolve_name(group, typ))


def _field_schema(group: Group, f: _Field) -> Schema:
    base = _type_schema(group, f.type)
    if "$ref" in base:
        # A description cannot sit next to a $ref in OpenAPI 3.0, so the
        # reference goes into a one-element allOf, as Kubernetes publishes it.
        schema: Schema = {"allOf": [base], "description": f.description}
        if base["$ref"] == REF_PREFIX + INT_OR_STRING:
            schema["x-kubernetes-int-or-string"] = True
    else:
        schema = base
        schema["description"] = f.description
    for flag in f.flags:
        key, _, arg = flag[1:].partition(":")
        if key == "req":
            continue
        if key == "merge":
            schema["x-kubernetes-patch-merge-key"] = arg
            schema.setdefault("x-kubernetes-patch-strategy", "merge")
        elif key == "patch":
            schema["x-kubernetes-patch-strategy"] = arg
        elif key == "keyed":
            schema["x-kubernetes-patch-merge-key"] = arg
            schema.setdefault("x-kubernetes-patch-strategy", "merge")
            schema["x-kubernetes-list-type"] = "map"
            schema["x-kubernetes-list-map-keys"] = [arg]
        elif key == "map":
            schema["x-kubernetes-list-type"] = "map"
            schema["x-kubernetes-list-map-keys"] = arg.split(",")
        elif key in ("set", "atomic"):
            schema["x-kubernetes-list-type"] = key
        elif key == "mapatomic":
            schema["x-kubernetes-map-type"] = "atomic"
        elif key == "enum":
            target = schema["items"] if schema.get("type") == "array" else schema
            target["enum"] = arg.split("|")
        elif key == "preserve":
            schema["x-kubernetes-preserve-unknown-fields"] = True
        elif key == "default":
            schema["default"] = arg  # string defaults only; what the server fills in (ports' TCP)
        else:
            raise ValueError(f"unknown flag {flag} on field {f.name}")
    if "x-kubernetes-list-type" in schema and schema.get("type") != "array":
        raise ValueError(f"list flags on non-list field {f.name}")
    return schema


def build() -> dict[str, Schema]:
    """Every declared component, references resolved, keyed by full name."""
    out: dict[str, Schema] = {}
    for name, m in _MODELS.items():
        if isinstance(m, _Raw):
            out[name] = copy.deepcopy(m.schema)
            continue
        schema: Schema = {"type": "object", "description": m.description}
        if m.fields:
            schema["properties"] = {f.name: _field_schema(m.group, f) for f in m.fields}
        if m.required:
            schema["required"] = list(m.required)
        schema.update(copy.deepcopy(m.extra))
        if m.gvk:
            schema["x-kubernetes-group-version-kind"] = copy.deepcopy(m.gvk)
        out[name] = schema
    return out
