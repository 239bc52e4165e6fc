"""The test tree itself: pytest imports test modules by file name, so two with one name break the whole run."""

from __future__ import annotations

import collections
from pathlib import Path


def test_test_file_names_are_unique_across_the_tree():
    root = Path(__file__).resolve().parents[1]
    names = collections.Counter(p.name for p in root.rglob("test_*.py"))
    twins = sorted(n for n, count in names.items() if count > 1)
    assert not twins, f"test files with the same name in two folders (rename one): {twins}"
