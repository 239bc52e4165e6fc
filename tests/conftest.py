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


@dataclass
class APIServerProc:
    proc: subprocess.Popen
    port: int
    log: Path
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_apiserver(etcd_url: str, log: Path, *extra: str, secure_args: list[str] | None = None,
                    ca_file: Path | None = None) -> APIServerProc:
    """Start `arktos apiserver` as its own process and wait until /readyz says ok.

    Without `secure_args` it serves plain HTTP in the development mode; with them
    (TLS and authentication flags) it serves HTTPS only.
    """
    import ssl
    import sys
    import time
    import urllib.request

    port = free_port()
    if secure_args is None:
        ports = ["--insecure-port", str(port), "--secure-port", "0"]
        scheme, ctx = "http", None
    else:
        ports = ["--secure-port", str(port), "--bind-address", "127.0.0.1", *secure_args]
        scheme, ctx = "https", ssl.create_default_context(cafile=str(ca_file))
    with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "arktos", "apiserver", "--etcd-servers", etcd_url, *ports, *extra],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"apiserver exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{scheme}://127.0.0.1:{port}/readyz", timeout=1, context=ctx) as r:
                if r.status == 200:
                    return APIServerProc(proc, port, log, scheme)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise TimeoutError(f"apiserver not ready in 30s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def apiserver(etcd: EtcdProc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[APIServerProc]:
    """One API server process over the shared etcd, in the local development mode."""
    log = tmp_path_factory.mktemp("apiserver") / "apiserver.log"
    server = start_apiserver(etcd.url, log)
    yield server
    server.stop()
    if server.proc.returncode not in (0, -15):
        print(log.read_text()[-5000:])


@dataclass
class SecureCluster:
    """An HTTPS-only API server with a real PKI, static tokens and service-account keys."""

    server: APIServerProc
    pki: object  # arktos.cluster.pki.ClusterPKI
    token_file: Path
    dir: Path

    @property
    def url(self) -> str:
        return self.server.url

    def kubeconfig(self, name: str, *, cert=None, token: str | None = None, tenant: str = "") -> Path:
        """A kubeconfig for a client certificate pair or a bearer token."""
        from arktos.cluster import render

        path = self.dir / f"{name}.kubeconfig"
        render.write(path, render.render(
            "kubeconfig.yaml.j2", cluster_name="secure", server=self.url, ca_file=str(self.pki.ca.cert),
            user_name=name, client_cert_file=str(cert.cert) if cert else None,
            client_key_file=str(cert.key) if cert else None, token=token, context_name=name, tenant=tenant,
            namespace=None), 0o600)
        return path


TOKENS = {
    "admin-token": "admin-token,token-admin,1,\"system:masters\"",
    "alpha-token": "alpha-token,alice,2,\"\",,,alpha",
}


@pytest.fixture(scope="session")
def secure(etcd: EtcdProc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureCluster]:
    from arktos.cluster.pki import ClusterPKI

    d = tmp_path_factory.mktemp("secure")
    pki = ClusterPKI(d / "pki")
    pki.ensure(["localhost", "127.0.0.1"])
    token_file = d / "tokens.csv"
    token_file.write_text("\n".join(TOKENS.values()) + "\n")
    args = [
        "--tls-cert-file", str(pki.apiserver.cert), "--tls-private-key-file", str(pki.apiserver.key),
        "--client-ca-file", str(pki.ca.cert), "--requestheader-client-ca-file", str(pki.front_proxy_ca.cert),
        "--token-auth-file", str(token_file), "--service-account-key-file", str(pki.sa_pub),
        "--service-account-signing-key-file", str(pki.sa_key),  # TokenRequest
        # pods/log and pods/exec reach node agents as kube-apiserver reaches kubelets
        "--kubelet-client-certificate", str(pki.apiserver_kubelet_client.cert),
        "--kubelet-client-key", str(pki.apiserver_kubelet_client.key),
        "--kubelet-certificate-authority", str(pki.ca.cert),
    ]
    # A private key prefix in etcd is not possible: the secure server shares the session etcd.
    server = start_apiserver(etcd.url, d / "apiserver.log", secure_args=args, ca_file=pki.ca.cert)
    yield SecureCluster(server, pki, token_file, d)
    server.stop()


class ComponentProc:
    """One `arktos <component>` process (controller-manager, scheduler, node-agent, ...) and its log."""

    def __init__(self, component: str, log: Path, args: list[str]) -> None:
        import sys

        self.component = component
        self.log = log
        self.args = args
        with open(log, "ab") as out:  # the child keeps its own descriptor
            self.proc = subprocess.Popen([sys.executable, "-m", "arktos", component, *args],
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float = 20.0) -> None:
        import re
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.text()):
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.component} exited with {self.proc.returncode}:\n{self.text()[-4000:]}")
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} in the {self.component} log after {timeout}s:\n{self.text()[-4000:]}")

    def stop(self, sig: int = 15, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def write_dev_kubeconfig(path: Path, server: str) -> Path:
    """A kubeconfig for the development port: a server URL, no credentials."""
    import yaml

    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "dev",
        "clusters": [{"name": "dev", "cluster": {"server": server}}],
        "users": [{"name": "dev", "user": {}}],
        "contexts": [{"name": "dev", "context": {"cluster": "dev", "user": "dev"}}],
    }))
    return path


async def eventually(check, timeout: float = 15.0, what: str = "", interval: float = 0.1):
    """Poll the coroutine function `check` until it returns something truthy; return that.

    A check that raises an API error, an assertion or a KeyError counts as "not yet":
    objects are often still on their way.  The last result or error is in the failure.
    """
    import asyncio
    import time

    from arktos.api.errors import APIError

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = await check()
            if result:
                return result
            last = result
        except (APIError, AssertionError, KeyError) as exc:
            last = exc
        await asyncio.sleep(interval)
    raise AssertionError(f"{what or check} not true after {timeout}s; last: {last!r}")


@dataclass
class ContainerdProc:
    proc: subprocess.Popen
    layout: object  # arktos.cluster.containerd.ContainerdLayout
    subnet: str
    log: Path

    @property
    def socket(self) -> str:
        return str(self.layout.socket)


@pytest.fixture(scope="session")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContainerdProc]:
    """A private containerd (own root, socket, CNI bridge and pod subnet) with the local busybox images.

    Missing containerd, runc, CNI plugins or busybox-static is a failure, never a skip: `make test`
    installs them.  At the end every pod is removed before containerd stops, so no container,
    shim, mount or bridge outlives the session."""
    import asyncio

    from arktos.cluster import containerd as ctd

    base = tmp_path_factory.mktemp("containerd")
    # A pool of its own: `arktos up` in the e2e tests takes its subnets from 10.88.0.0/16.
    subnet = ctd.free_subnet(pool="10.89.0.0/16")
    proc, layout = ctd.start_containerd(base / "ctd", subnet, base / "containerd.log")
    yield ContainerdProc(proc, layout, subnet, base / "containerd.log")
    asyncio.run(ctd.remove_all_pods(layout))
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    ctd.kill_leftover_shims(layout)
    ctd.purge(layout)


@pytest.fixture(scope="session", autouse=True)
def _no_mount_outlives_the_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Agents stopped with pods still on them keep those pods' secret tmpfs mounted (as a restarting agent
    must); at the end of the session nothing under the test directories stays mounted."""
    yield
    base = str(tmp_path_factory.getbasetemp().resolve()) + "/"
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for target in sorted((m for m in mounts if m.startswith(base)), key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True, check=False)
