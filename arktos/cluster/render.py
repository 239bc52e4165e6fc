"""Rendering of the shared `templates/` folder (also used by the Ansible roles)."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import jinja2


def templates_dir() -> Path:
    """`$ARKTOS_TEMPLATES`, else the repository's `templates/` beside the package."""
    env = os.environ.get("ARKTOS_TEMPLATES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "templates"


@cache
def _env(folder: str) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render(name: str, **values: Any) -> str:
    return _env(str(templates_dir())).get_template(name).render(**values)


def write(path: Path, text: str, mode: int = 0o644) -> None:
    """Write atomically with the given mode (0600 for anything holding credentials)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
