"""A whole cluster on this machine: what `arktos up`, `down` and `status` manage.

Each component is its own detached process with its own log under the state
directory, so the cluster outlives the command and `arktos up` on a running
cluster only checks it.  Starting is idempotent per component: whatever is
already running (and healthy) is left alone, so a half-started cluster resumes.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from arktos.cluster import render
from arktos.cluster.etcd import INSTALL_HINT, EtcdNotFound, etcd_command, find_etcd
from arktos.cluster.pki import ClusterPKI
from arktos.cluster.supervisor import Process


class UpError(RuntimeError):
    """A component did not come up; the message names its log."""


@dataclass
class Component:
    name: str
    argv: Callable[[], list[str]]
    port: int | None
    health_url: str
    process: Process
    log: Path
    ca_file: Path | None = None
    client_cert: tuple[Path, Path] | None = None
    # For components without a health port: a check on what the health URL answers.
    judge: Callable[[bytes], bool] | None = None

    def healthy(self, timeout: float = 1.0) -> bool:
        ctx = ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file else None
        if ctx is not None and self.client_cert:
            ctx.load_cert_chain(str(self.client_cert[0]), str(self.client_cert[1]))
        try:
            with urllib.request.urlopen(self.health_url, timeout=timeout, context=ctx) as r:
                return r.status == 200 and (self.judge is None or self.judge(r.read()))
        except (urllib.error.URLError, OSError, ValueError):
            return False


@dataclass
class LocalCluster:
    state_dir: Path
    etcd_port: int = 2379
    etcd_peer_port: int = 2380
    apiserver_port: int = 6443
    echo: Callable[[str], None] = print
    node_name: str = field(default_factory=lambda: socket.gethostname().lower())
    runtimes: str = "auto"  # or a --runtimes list for the node agent
    components: list[Component] = field(init=False)

    def __post_init__(self) -> None:
        self.state_dir = self.state_dir.expanduser().resolve()
        run, logs = self.state_dir / "run", self.state_dir / "logs"
        self.kubeconfig = self.state_dir / "admin.kubeconfig"
        self.pki = ClusterPKI(self.state_dir / "pki")
        self.cm_kubeconfig = self.state_dir / "controller-manager.kubeconfig"
        self.scheduler_kubeconfig = self.state_dir / "scheduler.kubeconfig"
        self.node_kubeconfig = self.state_dir / "node-agent.kubeconfig"
        lease_url = f"https://127.0.0.1:{self.apiserver_port}/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/"
        admin_pair = (self.pki.admin.cert, self.pki.admin.key)
        self.components = [
            Component(
                "etcd",
                lambda: etcd_command(find_etcd(), str(self.state_dir / "etcd"), self.etcd_port, self.etcd_peer_port),
                self.etcd_port,
                f"http://127.0.0.1:{self.etcd_port}/health",
                Process("etcd", run),
                logs / "etcd.log",
            ),
            Component(
                "apiserver",
                lambda: [sys.executable, "-m", "arktos", "apiserver",
                         "--etcd-servers", f"http://127.0.0.1:{self.etcd_port}",
                         "--bind-address", "127.0.0.1", "--secure-port", str(self.apiserver_port),
                         "--tls-cert-file", str(self.pki.apiserver.cert),
                         "--tls-private-key-file", str(self.pki.apiserver.key),
                         "--client-ca-file", str(self.pki.ca.cert),
                         "--requestheader-client-ca-file", str(self.pki.front_proxy_ca.cert),
                         "--requestheader-allowed-names", "front-proxy-client",
                         "--service-account-key-file", str(self.pki.sa_pub), "--v", "2"],
                self.apiserver_port,
                f"https://127.0.0.1:{self.apiserver_port}/readyz",
                Process("apiserver", run),
                logs / "apiserver.log",
                self.pki.ca.cert,
            ),
            Component(
                "controller-manager",
                lambda: [sys.executable, "-m", "arktos", "controller-manager",
                         "--kubeconfig", str(self.cm_kubeconfig),
                         "--service-account-private-key-file", str(self.pki.sa_key),
                         "--root-ca-file", str(self.pki.ca.cert), "--v", "2"],
                None,
                # Healthy when it leads: its lease is held and was renewed lately.
                lease_url + "arktos-controller-manager",
                Process("controller-manager", run),
                logs / "controller-manager.log",
                self.pki.ca.cert,
                admin_pair,
                _lease_fresh,
            ),
            Component(
                "node-agent",
                lambda: [sys.executable, "-m", "arktos", "node-agent",
                         "--kubeconfig", str(self.node_kubeconfig), "--node-name", self.node_name,
                         "--runtimes", self.chosen_runtimes(), "--root-dir", str(self.state_dir / "node-agent"),
                         "--v", "2"],
                None,
                # Healthy when its Node says Ready.
                f"https://127.0.0.1:{self.apiserver_port}/api/v1/nodes/{self.node_name}",
                Process("node-agent", run),
                logs / "node-agent.log",
                self.pki.ca.cert,
                admin_pair,
                _node_ready,
            ),
            Component(
                "scheduler",
                lambda: [sys.executable, "-m", "arktos", "scheduler",
                         "--kubeconfig", str(self.scheduler_kubeconfig), "--v", "2"],
                None,
                lease_url + "kube-scheduler",
                Process("scheduler", run),
                logs / "scheduler.log",
                self.pki.ca.cert,
                admin_pair,
                _lease_fresh,
            ),
        ]

    @staticmethod
    def saved_choices(state_dir: Path) -> dict[str, str]:
        try:
            return json.loads((state_dir.expanduser() / "cluster.json").read_text())
        except (OSError, ValueError):
            return {}

    def save_choices(self) -> None:
        render.write(self.state_dir / "cluster.json",
                     json.dumps({"node_name": self.node_name, "runtimes": self.runtimes}) + "\n")

    def chosen_runtimes(self) -> str:
        """The node agent's runtimes: what the user asked for, or the real ones found here.

        With none found the node runs hollow (simulated) pods, and `up` says so plainly.
        """
        if self.runtimes != "auto":
            return self.runtimes
        found, _ = detect_runtimes()
        return ",".join(found) if found else "hollow,hollow-vm"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    def check_prerequisites(self) -> None:
        try:
            find_etcd()
        except EtcdNotFound:
            raise UpError(f"etcd is not installed: {INSTALL_HINT}") from None

    def up(self, timeout: float = 30.0) -> bool:
        """Bring every component up; returns False if everything was already running."""
        self.check_prerequisites()
        if self.runtimes == "auto":
            found, missing = detect_runtimes()
            if not found:
                self.echo("no workload runtime on this machine: the node runs hollow (simulated) pods")
            for line in missing:
                self.echo(f"  missing {line}")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.save_choices()
        changed = bool(self.pki.ensure(["localhost", "127.0.0.1"]))
        if changed:
            self.echo(f"created the cluster's certificates in {self.pki.dir}")
        self.write_kubeconfigs()
        for comp in self.components:
            pid = comp.process.pid()
            if pid is not None and comp.healthy():
                self.echo(f"{comp.name} is already running (pid {pid})")
                continue
            if pid is not None:
                # Running but unhealthy: give it a moment, then replace it.
                if self._wait_healthy(comp, 5.0):
                    self.echo(f"{comp.name} is already running (pid {pid})")
                    continue
                comp.process.stop()
            self._ensure_port_free(comp)
            started = time.monotonic()
            pid = comp.process.start(comp.argv(), comp.log)
            if not self._wait_healthy(comp, timeout):
                raise UpError(f"{comp.name} did not become healthy within {timeout:.0f}s; see {comp.log}\n"
                              + _tail(comp.log))
            where = f", port {comp.port}" if comp.port else ""
            self.echo(f"started {comp.name} (pid {pid}{where}) in {time.monotonic() - started:.1f}s")
            changed = True
        return changed

    def _ensure_port_free(self, comp: Component) -> None:
        if comp.port is None:
            return
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", comp.port)) == 0:
                raise UpError(f"port {comp.port} is in use by another program, so {comp.name} cannot start; "
                              f"free it or pick another port (see 'arktos up --help')")

    def _wait_healthy(self, comp: Component, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if comp.process.pid() is None:
                return False
            if comp.healthy(timeout=0.5):
                return True
            time.sleep(0.05)
        return False

    def write_kubeconfigs(self) -> None:
        """The admin's kubeconfig and one per component, each with its own client certificate."""
        cm = self.pki.client("system:kube-controller-manager")
        sched = self.pki.client("system:kube-scheduler")
        node = self.pki.node_client(self.node_name)
        for path, user, pair in ((self.kubeconfig, "admin", self.pki.admin),
                                 (self.cm_kubeconfig, "system:kube-controller-manager", cm),
                                 (self.scheduler_kubeconfig, "system:kube-scheduler", sched),
                                 (self.node_kubeconfig, f"system:node:{self.node_name}", node)):
            text = render.render(
                "kubeconfig.yaml.j2", cluster_name="arktos-local", server=self.server,
                ca_file=str(self.pki.ca.cert), user_name=user, client_cert_file=str(pair.cert),
                client_key_file=str(pair.key), token=None, context_name="arktos-local", tenant="system",
                namespace=None,
            )
            render.write(path, text, 0o600)

    def down(self, purge: bool = False) -> list[str]:
        stopped = [c.name for c in reversed(self.components) if c.process.stop()]
        if purge and self.state_dir.exists():
            shutil.rmtree(self.state_dir)
        return stopped

    def status(self) -> list[dict[str, str]]:
        rows = []
        for comp in self.components:
            pid = comp.process.pid()
            rows.append({
                "component": comp.name,
                "pid": str(pid) if pid else "-",
                "port": str(comp.port or "-"),
                "health": ("healthy" if comp.healthy() else "unhealthy") if pid else "stopped",
                "log": str(comp.log),
            })
        return rows


def detect_runtimes() -> tuple[list[str], list[str]]:
    """Real runtimes this machine offers, and a line on how to get each one it lacks."""
    found: list[str] = []
    missing: list[str] = []
    try:
        import libvirt  # type: ignore[import-not-found]

        libvirt.registerErrorHandler(lambda *_: None, None)
        conn = libvirt.openReadOnly("qemu:///system")
        conn.close()
        found.append("libvirt")
    except Exception:  # no module, no daemon, no permission: all mean "not here"
        missing.append("VM runtime: libvirt with QEMU/KVM (apt-get install libvirt-daemon-system qemu-system-x86 "
                       "qemu-utils, then start libvirtd)")
    missing.append("container runtime: containerd support in the node agent is not written yet")
    return found, missing


def _node_ready(body: bytes) -> bool:
    try:
        conditions = (json.loads(body).get("status") or {}).get("conditions") or []
    except ValueError:
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _lease_fresh(body: bytes, within: float = 30.0) -> bool:
    """A Lease held by someone and renewed in the last `within` seconds."""
    try:
        spec = json.loads(body).get("spec") or {}
        renewed = datetime.strptime(spec["renewTime"][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except (ValueError, KeyError, TypeError):
        return False
    return bool(spec.get("holderIdentity")) and (datetime.now(UTC) - renewed).total_seconds() < within


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "\n".join("    " + line for line in text)
