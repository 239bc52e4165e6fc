"""Client YAML is read safely: bounded aliases, depth and expansion; dates stay strings."""

from __future__ import annotations

import pytest

from arktos.api.errors import APIError
from arktos.api.yamlio import load_yaml


def bomb(levels: int) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [{', '.join('*' + prev for _ in range(10))}]")
    return "\n".join(lines)


def test_ordinary_documents_and_dates():
    assert load_yaml("a: 1\nwhen: 2024-01-01\nlist: [x, y]") == {"a": 1, "when": "2024-01-01", "list": ["x", "y"]}
    shared = load_yaml("base: &b {k: v}\nuse: *b")
    assert shared == {"base": {"k": "v"}, "use": {"k": "v"}}


@pytest.mark.parametrize("doc", [bomb(6), "[" * 100_000, "{a: " * 5_000, "a: [1\n", b"a: \x80\x81"])
def test_hostile_documents_are_400(doc):
    with pytest.raises(APIError) as err:
        load_yaml(doc)
    assert err.value.code == 400
