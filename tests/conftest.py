"""Fixtures that start the real parts: an etcd process, API server processes.

Nothing is mocked: tests talk to real processes over real sockets.  A missing
etcd binary is a failure, not a skip, so CI can never go green without it.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from arktos.cluster.etcd import free_port, start_etcd


@dataclass
class EtcdProc:
    proc: subprocess.Popen
    client_port: int
    peer_port: int
    data_dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.proc = start_etcd(self.data_dir, self.client_port, self.peer_port)


def _start(tmp: Path) -> EtcdProc:
    client, peer = free_port(), free_port()
    proc = start_etcd(tmp / "etcd", client, peer, tmp / "etcd.log")
    return EtcdProc(proc, client, peer, tmp / "etcd")


@pytest.fixture(scope="session")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdProc]:
    """One etcd for the whole session; tests isolate themselves by key prefix or names."""
    e = _start(tmp_path_factory.mktemp("etcd-shared"))
    yield e
    e.stop()


@pytest.fixture
def private_etcd(tmp_path: Path) -> Iterator[EtcdProc]:
    """An etcd of its own, for tests that restart or compact it."""
    e = _start(tmp_path)
    yield e
    e.stop()
    shutil.rmtree(tmp_path / "etcd", ignore_errors=True)
