"""Helpers for driving the real kubectl binaries against our API server."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest


def kubectl_dir() -> Path:
    found = shutil.which("kubectl")
    if not found:
        raise RuntimeError("kubectl is not installed; the acceptance tests need the real kubectl")
    return Path(os.path.realpath(found)).parent


def kubectl_binary(minor: int) -> str:
    path = kubectl_dir() / f"kubectl.1.{minor}"
    if not path.exists():
        raise RuntimeError(f"{path} is missing; the acceptance tests need kubectl 1.{minor}")
    return str(path)


Kubectl = Callable[..., subprocess.CompletedProcess]


@pytest.fixture
def kubectl(apiserver, tmp_path: Path) -> Kubectl:
    """Run kubectl 1.30 against the API server: kubectl("get", "pods", input=..., check=...)."""
    cache = tmp_path / "kubectl-cache"

    def run(*args: str, input: str | None = None, check: bool = True, minor: int = 30,
            timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = [kubectl_binary(minor), "--server", apiserver.url, "--cache-dir", str(cache), *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}\n{proc.stdout}")
        return proc

    return run


@pytest.fixture
def namespace(kubectl: Kubectl) -> str:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    return name
