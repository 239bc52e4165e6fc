"""YAML from clients, read safely.

PyYAML's safe loader still expands aliases without limit (the "billion
laughs" of CVE-2019-11253 turns 400 bytes into gigabytes) and recurses once
per nesting level.  Kubernetes bounds both; so do we: a document may use a
bounded number of aliases and nest a bounded number of levels.
"""

from __future__ import annotations

from typing import Any

import yaml

from arktos.api.errors import bad_request

MAX_ALIASES = 100
MAX_DEPTH = 200
MAX_EXPANDED_NODES = 100_000


class _BoundedLoader(yaml.SafeLoader):
    """Safe, bounded, and as Kubernetes reads YAML: an unquoted date stays a string."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # PyYAML's hook for every node
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_ALIASES} aliases")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.YAMLError(f"nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_BoundedLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _expanded_size(value: Any, memo: dict[int, int]) -> int:
    """How many nodes `value` has once every alias is written out (shared nodes counted per use)."""
    if not isinstance(value, dict | list):
        return 1
    known = memo.get(id(value))
    if known is not None:
        return known
    children = value.values() if isinstance(value, dict) else value
    size = 1 + sum(_expanded_size(child, memo) for child in children)
    memo[id(value)] = size
    return size


def load_yaml(data: bytes | str, what: str = "the request body") -> Any:
    """One YAML document, or a 400 Status saying why it cannot be read.

    Aliases are shared, not copied, while loading, so a few hundred bytes can
    describe millions of nodes that only explode when the object is encoded:
    the expanded size is bounded too (cheaply: each distinct node is visited once).
    """
    try:
        loader = _BoundedLoader(data)
        try:
            value = loader.get_single_data()
            aliased = loader._aliases > 0
        finally:
            loader.dispose()
        if aliased and _expanded_size(value, {}) > MAX_EXPANDED_NODES:
            raise yaml.YAMLError(f"excessive aliasing: the document expands to more than {MAX_EXPANDED_NODES} nodes")
        return value
    except (yaml.YAMLError, RecursionError, ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"{what} is not valid YAML: {exc}") from None
