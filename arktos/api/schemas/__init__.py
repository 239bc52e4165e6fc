"""OpenAPI v3 component schemas of every built-in kind and the types they use.

`SCHEMAS` maps a component name (``io.k8s.api.core.v1.Pod``) to its schema.
It is built once at import from the tables in the sibling modules and is
shared: treat it as read-only.  References use ``#/components/schemas/NAME``
so a document can embed any subset of it unchanged.
"""

from __future__ import annotations

from arktos.api.schemas import apiextensions, apps, arktos_types, batch, core, meta, pod, rbac, reviews  # noqa: F401
from arktos.api.schemas._dsl import REF_PREFIX, Schema, build

SCHEMAS: dict[str, Schema] = build()

# Component name of each (group, version, kind) that carries a GVK extension.
BY_GVK: dict[tuple[str, str, str], str] = {
    (g["group"], g["version"], g["kind"]): name
    for name, schema in SCHEMAS.items()
    for g in schema.get("x-kubernetes-group-version-kind", ())
    if name.rsplit(".", 1)[-1] == g["kind"]
}


def refs_in(schema: object) -> set[str]:
    """Component names referenced anywhere inside `schema` (not transitively)."""
    found: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(REF_PREFIX):
                found.add(ref[len(REF_PREFIX):])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def closure(names: set[str] | list[str], schemas: dict[str, Schema] | None = None) -> set[str]:
    """`names` plus every component they reach through references."""
    table = SCHEMAS if schemas is None else schemas
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen or name not in table:
            continue
        seen.add(name)
        todo.extend(refs_in(table[name]) - seen)
    return seen


__all__ = ["BY_GVK", "REF_PREFIX", "SCHEMAS", "closure", "refs_in"]
