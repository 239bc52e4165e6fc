"""A whole cluster on this machine: what `arktos up`, `down` and `status` manage.

Each component is its own detached process with its own log under the state
directory, so the cluster outlives the command and `arktos up` on a running
cluster only checks it.  Starting is idempotent per component: whatever is
already running (and healthy) is left alone, so a half-started cluster resumes.

Every component reads a configuration file rendered from `templates/` (the
files the Ansible roles render too) into STATE/config, and is started as
`arktos <component> --config FILE`; only what cannot be a template value stays
on the command line.  The components are:

    etcd, apiserver, controller-manager,
    containerd, containerd-2, ...      a private containerd per node agent, when containers run for real
    node-agent, node-agent-2, ...      real node agents (--node-agents N), node names NAME, NAME-2, ...
    proxy                              the service proxy, one for the machine, when containers run for real
    dns                                the cluster DNS (arktos dns) behind kube-system/kube-dns, with the proxy
    scheduler,
    hollow-nodes                       N hollow nodes in one process (--hollow-nodes N)

How `up` reports is a `Progress`: plain lines here, a richer display in the CLI.
"""

from __future__ import annotations

import dataclasses
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
from typing import Any

from arktos.cluster import containerd as ctd
from arktos.cluster import render
from arktos.cluster.etcd import INSTALL_HINT, EtcdNotFound, find_etcd
from arktos.cluster.pki import KUBE_DNS, KUBE_PROXY, ClusterPKI
from arktos.cluster.supervisor import Process

HOLLOW_LABEL = "arktos.io/hollow-node"  # as arktos.kubemark.hollow, which this module does not import
HOLLOW_PREFIX = "hollow-node-"
HOLLOW_USER = "system:hollow-nodes"
HOLLOW_BINDING = "arktos:hollow-nodes"
CLUSTER_NAME = "arktos-local"
SERVICE_CIDR = "10.0.0.0/24"  # the API server's default service range (templates/apiserver.yaml.j2)
KUBERNETES_CLUSTER_IP = "10.0.0.1"  # the kubernetes Service's: the range's first address
DNS_CLUSTER_IP = "10.0.0.10"  # kube-dns's ClusterIP: the range's 10th address, as kubeadm picks it
CLUSTER_DOMAIN = "cluster.local"


class UpError(RuntimeError):
    """A component did not come up; the message names its log."""


class Progress:
    """How `up` tells what it does: phases that begin and end, and notes.

    This one prints a plain line per finished phase (what scripts and tests
    read); the CLI puts a spinner and check marks on top for terminals.
    """

    def __init__(self, echo: Callable[[str], None] = print) -> None:
        self.echo = echo

    def begin(self, title: str) -> None:
        """A phase starts (e.g. "Starting etcd"); a display may show it while it runs."""

    def end(self, summary: str) -> None:
        """The phase went well; `summary` says what happened (e.g. "started etcd (pid 1) in 0.3s")."""
        self.echo(f"  {summary}")

    def fail(self) -> None:
        """The phase failed; the caller reports why."""

    def note(self, message: str) -> None:
        self.echo(f"  {message}")


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
    title: str = ""  # what the progress display says while it starts
    prepare: Callable[[], None] | None = None  # done (with the API server up) before it starts
    check: Callable[[], bool] | None = None  # health of a component with no HTTP endpoint (containerd)
    before_stop: Callable[[], None] | None = None  # `down`: done while it still runs
    after_stop: Callable[[bool], None] | None = None  # `down`: done once it stopped (argument: purge)

    def healthy(self, timeout: float = 1.0) -> bool:
        if self.check is not None:
            try:
                return self.check()
            except Exception:  # a health check says no; it does not raise
                return False
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
    runtimes: str = "auto"  # or a --runtimes list for the node agents
    node_agents: int = 1
    hollow_nodes: int = 0
    tenant: str = ""  # a tenant `up` makes ready, with its admin's kubeconfig ("" for none)
    node_agent_base_port: int = 10250
    proxy_healthz_port: int = 10256  # the service proxy's /healthz (kube-proxy's port)
    chain_prefix: str = "KUBE-"  # the service proxy's iptables chains
    dns_port: int = 10053  # where the cluster DNS answers on the host (kube-dns's targetPort)
    progress: Progress | None = None
    components: list[Component] = field(init=False)
    _chosen: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.state_dir = self.state_dir.expanduser().resolve()
        if self.progress is None:
            self.progress = Progress(self.echo)
        self.run_dir, self.log_dir = self.state_dir / "run", self.state_dir / "logs"
        self.config_dir = self.state_dir / "config"
        self.kubeconfig = self.state_dir / "admin.kubeconfig"
        self.pki = ClusterPKI(self.state_dir / "pki")
        self.cm_kubeconfig = self.state_dir / "controller-manager.kubeconfig"
        self.scheduler_kubeconfig = self.state_dir / "scheduler.kubeconfig"
        self.hollow_kubeconfig = self.state_dir / "hollow-nodes.kubeconfig"
        self.proxy_kubeconfig = self.state_dir / "proxy.kubeconfig"
        self.dns_kubeconfig = self.state_dir / "dns.kubeconfig"
        lease_url = f"{self.server}/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/"
        admin_pair = (self.pki.admin.cert, self.pki.admin.key)
        self.components = [
            Component("etcd", lambda: [find_etcd(), "--config-file", str(self.config_file("etcd"))],
                      self.etcd_port, f"http://127.0.0.1:{self.etcd_port}/health", self._process("etcd"),
                      self._log("etcd"), title="Starting etcd"),
            Component("apiserver", lambda: self._arktos("apiserver"), self.apiserver_port, f"{self.server}/readyz",
                      self._process("apiserver"), self._log("apiserver"), self.pki.ca.cert,
                      title="Starting the API server"),
            # Healthy when it leads: its lease is held and was renewed lately.
            Component("controller-manager", lambda: self._arktos("controller-manager"), None,
                      lease_url + "arktos-controller-manager", self._process("controller-manager"),
                      self._log("controller-manager"), self.pki.ca.cert, admin_pair, _lease_fresh,
                      title="Starting the controller manager"),
            *(self._containerd(i) for i in range(1, self.node_agents + 1) if self.runs_containerd()),
            *(self._node_agent(i, admin_pair) for i in range(1, self.node_agents + 1)),
            *([self._proxy()] if self.runs_proxy() else []),
            *([self._dns()] if self.runs_proxy() else []),
            Component("scheduler", lambda: self._arktos("scheduler"), None, lease_url + "kube-scheduler",
                      self._process("scheduler"), self._log("scheduler"), self.pki.ca.cert, admin_pair,
                      _lease_fresh, title="Starting the scheduler"),
        ]
        if self.hollow_nodes:
            count = self.hollow_nodes
            self.components.append(Component(
                "hollow-nodes", lambda: self._arktos("hollow-nodes"), None,
                f"{self.server}/api/v1/nodes?labelSelector={HOLLOW_LABEL}%3Dtrue", self._process("hollow-nodes"),
                self._log("hollow-nodes"), self.pki.ca.cert, admin_pair,
                lambda body: _ready_nodes(body, HOLLOW_PREFIX) >= count,
                title=f"Starting {count} hollow node{'s' if count > 1 else ''}", prepare=self._bind_hollow_nodes))

    # -- the components ---------------------------------------------------------------------

    def _process(self, name: str) -> Process:
        return Process(name, self.run_dir)

    def _log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def config_file(self, name: str) -> Path:
        return self.config_dir / f"{name}.yaml"

    def _arktos(self, name: str, command: str | None = None) -> list[str]:
        """`arktos <command> --config STATE/config/<name>.yaml`: everything else is in the file."""
        return [sys.executable, "-m", "arktos", command or name, "--config", str(self.config_file(name))]

    def agent_names(self) -> list[str]:
        """The real node agents' node names: this host's name, then NAME-2, NAME-3, ..."""
        return [self.node_name if i == 1 else f"{self.node_name}-{i}" for i in range(1, self.node_agents + 1)]

    @staticmethod
    def agent_component(i: int) -> str:
        return "node-agent" if i == 1 else f"node-agent-{i}"

    def _node_agent(self, i: int, admin_pair: tuple[Path, Path]) -> Component:
        name, node = self.agent_component(i), self.agent_names()[i - 1]
        # With containerd, the local images go in first: no pod has a registry to pull from.
        prepare = (lambda: ctd.import_local_images(self.containerd_layout(i))) if self.runs_containerd() else None
        return Component(name, lambda: self._arktos(name, "node-agent"), self.node_agent_port(i),
                         # Healthy when its Node says Ready.
                         f"{self.server}/api/v1/nodes/{node}", self._process(name), self._log(name),
                         self.pki.ca.cert, admin_pair, _node_ready, title=f"Starting the node agent of {node}",
                         prepare=prepare)

    @staticmethod
    def containerd_component(i: int) -> str:
        return "containerd" if i == 1 else f"containerd-{i}"

    def containerd_layout(self, i: int) -> ctd.ContainerdLayout:
        return ctd.ContainerdLayout(self.state_dir / "containerd" / self.agent_component(i))

    def pod_subnet(self, i: int) -> str:
        """Node agent `i`'s pod subnet: its own /24, so pods of all local nodes reach each other via the
        host.  Chosen free at the first `up` (no other bridge or route on the host overlaps it), then kept
        in its containerd's CNI configuration."""
        layout = self.containerd_layout(i)
        kept = ctd.configured_subnet(layout)
        if kept:
            return kept
        others = [ctd.configured_subnet(self.containerd_layout(j)) for j in range(1, self.node_agents + 1) if j != i]
        try:
            return ctd.free_subnet(tuple(s for s in others if s))
        except ValueError as exc:
            raise UpError(str(exc)) from None

    def _containerd(self, i: int) -> Component:
        name, layout = self.containerd_component(i), self.containerd_layout(i)

        def after_stop(purge: bool) -> None:
            ctd.kill_leftover_shims(layout)
            if purge:
                ctd.purge(layout)
        return Component(name, lambda: ctd.command(layout), None, "", self._process(name), self._log(name),
                         check=lambda: ctd.ready(layout), title=f"Starting containerd for {self.agent_names()[i - 1]}",
                         before_stop=lambda: ctd.shut_down(layout), after_stop=after_stop)

    def runs_containerd(self) -> bool:
        return "containerd" in self.chosen_runtimes().split(",")

    def runs_proxy(self) -> bool:
        """The service proxy runs where pods have real addresses to reach (containerd's bridges)."""
        return self.runs_containerd() and self.node_agents > 0

    def _proxy(self) -> Component:
        """One service proxy for the machine (iptables are host-wide, not per node agent); `down` removes
        its rules (`arktos proxy --cleanup`), so none outlives the cluster."""
        def cleanup(_purge: bool) -> None:
            import subprocess

            started = self.run_dir / "proxy.config"  # what it was started with (see _started_config)
            if not started.exists():
                return  # never started from here: the chains of that prefix, if any, are someone else's
            subprocess.run([*self._arktos("proxy"), "--cleanup"], capture_output=True, timeout=60, check=False)
            started.unlink(missing_ok=True)
        port = self.proxy_healthz_port
        return Component("proxy", lambda: self._arktos("proxy"), port, f"http://127.0.0.1:{port}/healthz",
                         self._process("proxy"), self._log("proxy"), title="Starting the service proxy",
                         after_stop=cleanup)

    def _dns(self) -> Component:
        """The cluster DNS: one server for the machine on 127.0.0.1 and each pod bridge's gateway (the kube-dns
        Service's endpoints, which `prepare` writes); healthy when it answers the zone's SOA (it does once it
        has synced with the API server)."""
        port = self.dns_port
        return Component("dns", lambda: self._arktos("dns"), port, "", self._process("dns"), self._log("dns"),
                         title="Starting the cluster DNS", prepare=self._kube_dns_service,
                         check=lambda: _dns_answers("127.0.0.1", port))

    def dns_addresses(self) -> list[str]:
        """Where pods reach the DNS server: each node agent's bridge gateway (its pod subnet's first address)."""
        import ipaddress

        return [str(next(ipaddress.ip_network(self.pod_subnet(i)).hosts())) for i in range(1, self.node_agents + 1)]

    def apiserver_addresses(self) -> list[str]:
        """Where pods reach the API server besides loopback: the pod bridges' gateways (with real containers).

        Not 0.0.0.0: the API server then stays off the host's other networks (no firewall rule needed to keep
        it private), and its certificate names exactly the addresses it serves on.  The first one is the
        advertised address (the kubernetes Service's endpoint), which pods of every local node reach through
        the host."""
        return list(dict.fromkeys(self.dns_addresses())) if self.runs_proxy() else []

    def _kube_dns_service(self) -> None:
        """kube-system/kube-dns of the system tenant at DNS_CLUSTER_IP, port 53 (UDP and TCP) to the DNS server."""
        ports = [("dns", "UDP"), ("dns-tcp", "TCP")]
        labels = {"k8s-app": "kube-dns", "kubernetes.io/name": "ArktosDNS"}
        base = "/api/v1/tenants/system/namespaces/kube-system"
        service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kube-dns", "labels": labels},
                   "spec": {"clusterIP": DNS_CLUSTER_IP, "ports": [
                       {"name": n, "port": 53, "protocol": p, "targetPort": self.dns_port} for n, p in ports]}}
        endpoints = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "kube-dns", "labels": labels},
                     "subsets": [{"addresses": [{"ip": ip} for ip in self.dns_addresses()],
                                  "ports": [{"name": n, "port": self.dns_port, "protocol": p} for n, p in ports]}]}
        code, current = self.api("GET", f"{base}/services/kube-dns")
        if code == 200 and (current.get("spec") or {}).get("clusterIP") != DNS_CLUSTER_IP:
            raise UpError(f"kube-system/kube-dns exists with ClusterIP {current['spec'].get('clusterIP')}, not "
                          f"{DNS_CLUSTER_IP} (where the node agents point pods); delete it and run up again")
        for kind, body in (("services", service), ("endpoints", endpoints)):
            code, current = self.api("GET", f"{base}/{kind}/kube-dns")
            if code == 200:
                body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                code, answer = self.api("PUT", f"{base}/{kind}/kube-dns", body)
            else:
                code, answer = self.api("POST", f"{base}/{kind}", body)
            if code not in (200, 201):
                raise UpError(f"could not write kube-system/kube-dns ({kind}): {code} {answer.get('message', '')}")

    # -- choices that stick ----------------------------------------------------------------

    @staticmethod
    def saved_choices(state_dir: Path) -> dict[str, Any]:
        try:
            return json.loads((state_dir.expanduser() / "cluster.json").read_text())
        except (OSError, ValueError):
            return {}

    def save_choices(self) -> None:
        render.write(self.state_dir / "cluster.json", json.dumps({
            "etcd_port": self.etcd_port, "apiserver_port": self.apiserver_port,
            "node_agent_base_port": self.node_agent_base_port, "node_name": self.node_name,
            "proxy_healthz_port": self.proxy_healthz_port, "chain_prefix": self.chain_prefix,
            "dns_port": self.dns_port,
            "runtimes": self.runtimes, "node_agents": self.node_agents,
            "hollow_nodes": self.hollow_nodes, "tenant": self.tenant}) + "\n")

    def chosen_runtimes(self) -> str:
        """The node agents' runtimes: what the user asked for, or the real ones found here.

        With none found the node runs hollow (simulated) pods, and `up` says so plainly.
        """
        if self.runtimes != "auto":
            return self.runtimes
        if self._chosen is None:
            found, _ = detect_runtimes()
            # A kind this machine cannot run for real runs hollow, so VM and container pods still work.
            self._chosen = ",".join([*(["containerd"] if "containerd" in found else ["hollow"]),
                                     *(["libvirt"] if "libvirt" in found else ["hollow-vm"])])
        return self._chosen

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    def check_prerequisites(self) -> None:
        try:
            find_etcd()
        except EtcdNotFound:
            raise UpError(f"etcd is not installed: {INSTALL_HINT}") from None

    # -- up ------------------------------------------------------------------------------------

    def up(self, timeout: float = 30.0) -> bool:
        """Bring every component up; returns False if everything was already running."""
        progress = self.progress
        assert progress is not None
        self.check_prerequisites()
        if self.runtimes == "auto":
            found, missing = detect_runtimes()
            if not found:
                progress.note("no workload runtime on this machine: the node runs hollow (simulated) pods")
            for line in missing:
                progress.note(f"missing {line}")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        previous = self.saved_choices(self.state_dir)
        gone_nodes = self._node_names(previous) - set(self.node_names())
        self.save_choices()
        if self.runs_containerd():
            # The pod subnets are chosen (and kept in each containerd's CNI configuration) first: the API server's
            # certificate and bind addresses name their gateways.
            for i in range(1, self.node_agents + 1):
                ctd.prepare(self.containerd_layout(i).base, self.pod_subnet(i))
        progress.begin("Generating certificates")
        # Besides loopback and the in-cluster names (pki.DEFAULT_APISERVER_NAMES): the kubernetes Service's IP
        # and the pod bridges' gateways, where pods reach the API server.
        changed = bool(self.pki.ensure(["localhost", "127.0.0.1", KUBERNETES_CLUSTER_IP, *self.apiserver_addresses()]))
        progress.end(f"created the cluster's certificates in {self.pki.dir}" if changed
                     else f"certificates in {self.pki.dir} are in place")
        progress.begin("Writing kubeconfigs and configuration files")
        self.write_kubeconfigs()
        self.write_configs()
        progress.end(f"kubeconfigs in {self.state_dir}, component configuration in {self.config_dir}")
        changed |= self._stop_unwanted(previous)
        for comp in self.components:
            progress.begin(comp.title or f"Starting {comp.name}")
            try:
                changed |= self._ensure(comp, timeout)
            except BaseException:
                progress.fail()
                raise
        changed |= self._forget_nodes(gone_nodes)
        if self.tenant:
            progress.begin(f"Making tenant {self.tenant} ready")
            try:
                made, path = self.ensure_tenant(self.tenant, timeout)
            except BaseException:
                progress.fail()
                raise
            changed |= made
            progress.end(f"tenant {self.tenant} is ready; its admin's kubeconfig is {path}")
        return changed

    def _ensure(self, comp: Component, timeout: float) -> bool:
        """Start `comp` unless it already runs healthy; True if it was started."""
        assert self.progress is not None
        pid = comp.process.pid()
        if pid is not None and self._config_changed(comp):
            self.progress.note(f"{comp.name}'s configuration changed: restarting it")
            comp.process.stop()
            pid = None
        if pid is not None and (comp.healthy() or self._wait_healthy(comp, 5.0)):
            # Running but unhealthy for a moment (say, just restarted) gets the benefit of the doubt.
            self.progress.end(f"{comp.name} is already running (pid {pid})")
            return False
        if pid is not None:
            comp.process.stop()
        self._ensure_port_free(comp)
        if comp.prepare is not None:
            comp.prepare()
        started = time.monotonic()
        pid = comp.process.start(comp.argv(), comp.log)
        self._started_config(comp).write_text(self._config_text(comp))
        if not self._wait_healthy(comp, timeout):
            why = "exited" if comp.process.pid() is None else f"did not become healthy within {timeout:.0f}s"
            raise UpError(f"{comp.name} {why}; see {comp.log}\n" + _tail(comp.log))
        where = f", port {comp.port}" if comp.port else ""
        self.progress.end(f"started {comp.name} (pid {pid}{where}) in {time.monotonic() - started:.1f}s")
        return True

    def _config_text(self, comp: Component) -> str:
        try:
            return self.config_file(comp.name).read_text()
        except OSError:
            return ""

    def _started_config(self, comp: Component) -> Path:
        """The configuration `comp` was started with (beside its PID file)."""
        return self.run_dir / f"{comp.name}.config"

    def _config_changed(self, comp: Component) -> bool:
        """Whether `comp`'s configuration file differs from the one it runs with (an `up` with new options)."""
        try:
            return self._started_config(comp).read_text() != self._config_text(comp)
        except OSError:
            return False  # no record of what it started with: leave it be

    def node_names(self) -> list[str]:
        """Every Node this cluster runs: its node agents' and its hollow nodes'."""
        return self.agent_names() + [f"{HOLLOW_PREFIX}{i}" for i in range(1, self.hollow_nodes + 1)]

    def _node_names(self, choices: dict[str, Any]) -> set[str]:
        """The Nodes a cluster made with `choices` (an earlier `up`'s) ran; none for a new cluster."""
        if not choices:
            return set()
        name = choices.get("node_name") or self.node_name
        agents = int(choices.get("node_agents", 1))
        return ({name if i == 1 else f"{name}-{i}" for i in range(1, agents + 1)}
                | {f"{HOLLOW_PREFIX}{i}" for i in range(1, int(choices.get("hollow_nodes", 0)) + 1)})

    def _forget_nodes(self, names: set[str]) -> bool:
        """Delete the Nodes an earlier `up` ran and this one does not (fewer agents or hollow nodes).

        The Nodes go first, so the scheduler places nothing new on them, then their pods, at once (no agent
        is left to end them gracefully), as Kubernetes' pod garbage collector removes the pods of a deleted
        node; their controllers replace them on the nodes that remain.
        """
        assert self.progress is not None
        removed = []
        for name in sorted(names):
            code, body = self.api("DELETE", f"/api/v1/nodes/{name}")
            if code in (200, 202):
                removed.append(name)
            elif code != 404:
                raise UpError(f"could not remove node {name}: {code} {body.get('message', '')}")
        for name in removed:
            code, pods = self.api("GET", f"/api/v1/tenants/all/pods?fieldSelector=spec.nodeName%3D{name}")
            for pod in pods.get("items", []) if code == 200 else []:
                meta = pod["metadata"]
                self.api("DELETE", f"/api/v1/tenants/{meta['tenant']}/namespaces/{meta['namespace']}/pods/"
                         f"{meta['name']}", {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0})
            self.progress.note(f"removed node {name} and its pods: this cluster no longer has it")
        return bool(removed)

    def _stop_unwanted(self, previous: dict[str, Any]) -> bool:
        """Stop what an earlier `up` (made with `previous` choices) started and this one does not want: fewer
        node agents, no hollow nodes.  Each goes as `down` stops it (a containerd removes its pods first)."""
        assert self.progress is not None
        known = {c.name for c in self.components}
        earlier = self._with_choices(previous).components if previous else []
        stopped = False
        for comp in reversed(earlier):
            # Gone from the cluster for good: its state goes too (a containerd's pods, bridge and files).
            if comp.name not in known and self._stop(comp, purge=True):
                self.progress.note(f"stopped {comp.name}: this cluster no longer has it")
                stopped = True
        for proc in self.stray_processes():  # anything else with a PID file here
            if proc.stop():
                self.progress.note(f"stopped {proc.name}: this cluster no longer has it")
                stopped = True
        return stopped

    def _with_choices(self, choices: dict[str, Any]) -> LocalCluster:
        """This cluster as an earlier `up` made it (its node name, runtimes and node counts)."""
        kw = {k: choices[k] for k in ("node_name", "runtimes", "node_agents", "hollow_nodes") if k in choices}
        return dataclasses.replace(self, **kw)

    @staticmethod
    def _stop(comp: Component, purge: bool = False) -> bool:
        """Stop one component, with its hooks; True if it was running."""
        if comp.before_stop is not None and comp.process.pid() is not None:
            comp.before_stop()
        stopped = comp.process.stop()
        if comp.after_stop is not None:
            comp.after_stop(purge)
        return stopped

    def stray_processes(self) -> list[Process]:
        """PID files in the run directory of no current component."""
        known = {c.name for c in self.components}
        return [Process(p.stem, self.run_dir) for p in sorted(self.run_dir.glob("*.pid")) if p.stem not in known]

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

    # -- files -------------------------------------------------------------------------------

    def _kubeconfig_text(self, user: str, cert: Path, key: Path, *, context: str = CLUSTER_NAME,
                         tenant: str = "system", namespace: str | None = None) -> str:
        return render.render(
            "kubeconfig.yaml.j2", cluster_name=CLUSTER_NAME, server=self.server, ca_file=str(self.pki.ca.cert),
            user_name=user, client_cert_file=str(cert), client_key_file=str(key), token=None,
            context_name=context, tenant=tenant, namespace=namespace)

    def node_kubeconfig(self, i: int) -> Path:
        return self.state_dir / f"{self.agent_component(i)}.kubeconfig"

    def write_kubeconfigs(self) -> None:
        """The admin's kubeconfig and one per component, each with its own client certificate."""
        pairs = [(self.kubeconfig, "admin", self.pki.admin),
                 (self.cm_kubeconfig, "system:kube-controller-manager",
                  self.pki.client("system:kube-controller-manager")),
                 (self.scheduler_kubeconfig, "system:kube-scheduler", self.pki.client("system:kube-scheduler"))]
        for i, node in enumerate(self.agent_names(), 1):
            pairs.append((self.node_kubeconfig(i), f"system:node:{node}", self.pki.node_client(node)))
        if self.hollow_nodes:
            pairs.append((self.hollow_kubeconfig, HOLLOW_USER, self.pki.client(HOLLOW_USER)))
        if self.runs_proxy():
            pairs.append((self.proxy_kubeconfig, KUBE_PROXY, self.pki.client(KUBE_PROXY)))
            pairs.append((self.dns_kubeconfig, KUBE_DNS, self.pki.client(KUBE_DNS)))
        for path, user, pair in pairs:
            render.write(path, self._kubeconfig_text(user, pair.cert, pair.key), 0o600)

    def write_configs(self) -> None:
        """Each component's configuration file, rendered from the templates the Ansible roles share."""
        pki = str(self.pki.dir)
        files: dict[str, tuple[str, dict[str, Any]]] = {
            "etcd": ("etcd.yaml.j2", {
                "etcd_data_dir": str(self.state_dir / "etcd"),
                "etcd_client_url": f"http://127.0.0.1:{self.etcd_port}",
                "etcd_peer_url": f"http://127.0.0.1:{self.etcd_peer_port}"}),
            "apiserver": ("apiserver.yaml.j2", {
                "etcd_servers": f"http://127.0.0.1:{self.etcd_port}",
                "bind_address": ",".join(["127.0.0.1", *self.apiserver_addresses()]),
                "advertise_address": (self.apiserver_addresses() or ["127.0.0.1"])[0],
                "secure_port": self.apiserver_port, "pki_dir": pki}),
            "controller-manager": ("controller-manager.yaml.j2", {"kubeconfig": str(self.cm_kubeconfig),
                                                                  "pki_dir": pki}),
            "scheduler": ("scheduler.yaml.j2", {"kubeconfig": str(self.scheduler_kubeconfig)}),
        }
        runtimes = self.chosen_runtimes()
        for i, node in enumerate(self.agent_names(), 1):
            values = self._node_agent_values(i, node, runtimes)
            if self.runs_containerd():  # containerd's own configuration and the pod network's
                values["container_runtime_endpoint"] = str(
                    ctd.prepare(self.containerd_layout(i).base, self.pod_subnet(i)).socket)
            if self.runs_proxy():  # pods resolve through the cluster DNS's ClusterIP, which the proxy makes reachable
                values.update(cluster_dns=[DNS_CLUSTER_IP], cluster_domain=CLUSTER_DOMAIN)
            files[self.agent_component(i)] = ("node-agent.yaml.j2", values)
        if self.hollow_nodes:
            files["hollow-nodes"] = ("hollow-nodes.yaml.j2", {
                "kubeconfig": str(self.hollow_kubeconfig), "count": self.hollow_nodes,
                "name_prefix": HOLLOW_PREFIX})
        if self.runs_proxy():
            files["proxy"] = ("proxy.yaml.j2", {
                "kubeconfig": str(self.proxy_kubeconfig), "chain_prefix": self.chain_prefix,
                "healthz_bind_address": f"127.0.0.1:{self.proxy_healthz_port}"})
            files["dns"] = ("dns.yaml.j2", {
                "kubeconfig": str(self.dns_kubeconfig), "cluster_domain": CLUSTER_DOMAIN, "port": self.dns_port,
                "bind_addresses": ["127.0.0.1", *self.dns_addresses()], "health_bind_address": "127.0.0.1:0",
                "service_cluster_ip_range": SERVICE_CIDR})
        for name, (template, values) in files.items():
            render.write(self.config_file(name), render.render(template, **values))

    def _node_agent_values(self, i: int, node: str, runtimes: str) -> dict[str, Any]:
        """Template values of node agent `i`: each has its own node, certificate, state directory and port."""
        name = self.agent_component(i)
        # The logs/exec endpoint: this cluster lives on 127.0.0.1, so the agent listens and is reached there,
        # with a serving certificate for that address from the cluster CA.
        serving = self.pki.node_serving(node, ["127.0.0.1"])
        return {"kubeconfig": str(self.node_kubeconfig(i)), "node_name": node, "runtimes": runtimes,
                "root_dir": str(self.state_dir / name), "port": self.node_agent_port(i),
                "serving_cert": str(serving.cert), "serving_key": str(serving.key),
                "client_ca_file": str(self.pki.ca.cert), "address": "127.0.0.1", "node_ip": "127.0.0.1"}

    def node_agent_port(self, i: int) -> int:
        """Agent `i`'s own port (kubelet's 10250, then 10251, ...), so several agents share one machine."""
        return self.node_agent_base_port + i - 1

    # -- API calls `up` makes itself (as the admin) ---------------------------------------------

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        """One request as the cluster admin: (status, JSON body); API errors are statuses, not exceptions."""
        ctx = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        ctx.load_cert_chain(str(self.pki.admin.cert), str(self.pki.admin.key))
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.server}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read() or b"{}")
            except ValueError:
                return exc.code, {}
        except (urllib.error.URLError, OSError) as exc:
            raise UpError(f"cannot reach the API server at {self.server}: {exc}") from None

    def _bind_hollow_nodes(self) -> None:
        """Let the hollow nodes' one identity act as every hollow node (kubemark binds its kubelet user alike)."""
        code, body = self.api("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": HOLLOW_BINDING},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:node"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": HOLLOW_USER}]})
        if code not in (201, 409):
            raise UpError(f"could not bind the hollow nodes' user to system:node: {code} {body.get('message', '')}")

    def ensure_tenant(self, tenant: str, timeout: float) -> tuple[bool, Path]:
        """Tenant `tenant` set up by the tenant controller, and its admin's kubeconfig; True if it was made now."""
        code, body = self.api("POST", "/api/v1/tenants", {"apiVersion": "v1", "kind": "Tenant",
                                                          "metadata": {"name": tenant}})
        if code not in (201, 409):
            raise UpError(f"could not create tenant {tenant}: {code} {body.get('message', '')}")
        deadline = time.monotonic() + timeout
        while self.api("GET", f"/api/v1/tenants/{tenant}/namespaces/default")[0] != 200:
            if time.monotonic() > deadline:
                raise UpError(f"tenant {tenant} was not set up within {timeout:.0f}s; see "
                              f"{self._log('controller-manager')}")
            time.sleep(0.1)
        return code == 201, self.write_user_kubeconfig(tenant, "admin")

    def write_user_kubeconfig(self, tenant: str, user: str, groups: list[str] | None = None,
                              path: Path | None = None) -> Path:
        """A kubeconfig for a tenant's user (its own certificate); plain kubectl with it stays in the tenant."""
        return write_user_kubeconfig(self.pki, self.server, tenant, user,
                                     path or self.state_dir / "users" / f"{tenant}-{user}.kubeconfig", groups)

    # -- down and status ---------------------------------------------------------------------

    def down(self, purge: bool = False) -> list[str]:
        """Stop every process this cluster started, the ones an earlier `up` wanted included."""
        stopped = [c.name for c in reversed(self.components) if self._stop(c, purge)]
        stopped += [p.name for p in self.stray_processes() if p.stop()]
        if purge and self.state_dir.exists():
            # Every containerd this cluster ever had (one that died, one of an agent since removed) leaves
            # a bridge and maybe mounts on the host: they go with the state.
            for base in sorted((self.state_dir / "containerd").glob("*")):
                layout = ctd.ContainerdLayout(base)
                ctd.kill_leftover_shims(layout)
                ctd.purge(layout)
            ctd.unmount_under(self.state_dir)  # the node agents' tmpfs volumes of pods still there
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
        for proc in self.stray_processes():
            pid = proc.pid()
            if pid:
                rows.append({"component": proc.name, "pid": str(pid), "port": "-", "health": "unwanted",
                             "log": str(self._log(proc.name))})
        return rows


def write_user_kubeconfig(pki: ClusterPKI, server: str, tenant: str, user: str, path: Path,
                          groups: list[str] | None = None) -> Path:
    """Write a kubeconfig for `user` of `tenant` with a client certificate from `pki`'s CA; its context
    carries the tenant, so plain kubectl commands act inside it.  Shared by `up` and `arktos kubeconfig`."""
    pair = pki.tenant_client(tenant, user, groups or [])
    context = f"{user}@{tenant}"
    render.write(path, render.render(
        "kubeconfig.yaml.j2", cluster_name=CLUSTER_NAME, server=server, ca_file=str(pki.ca.cert), user_name=context,
        client_cert_file=str(pair.cert), client_key_file=str(pair.key), token=None, context_name=context,
        tenant=tenant, namespace="default"), 0o600)
    return path


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
        if shutil.which("libvirtd") and shutil.which("qemu-system-x86_64"):
            missing.append("VM runtime: libvirt is installed but libvirtd does not answer on qemu:///system "
                           "(start it: systemctl start libvirtd, or virtlogd -d && libvirtd -d)")
        else:
            missing.append("VM runtime: libvirt with QEMU (make vm-deps, or apt-get install libvirt-daemon-system "
                           "qemu-system-x86 qemu-utils genisoimage; then start libvirtd)")
    lacks = ctd.missing()
    if lacks:
        missing.append(f"container runtime: containerd ({', '.join(lacks)}; {ctd.INSTALL_HINT})")
    else:
        found.insert(0, "containerd")
    return found, missing


def _is_ready(node: dict[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _node_ready(body: bytes) -> bool:
    try:
        return _is_ready(json.loads(body))
    except (ValueError, AttributeError):
        return False


def _ready_nodes(body: bytes, prefix: str) -> int:
    """How many Nodes of a NodeList whose names start with `prefix` are Ready."""
    try:
        items = json.loads(body).get("items") or []
    except ValueError:
        return 0
    return sum(1 for n in items if (n.get("metadata") or {}).get("name", "").startswith(prefix) and _is_ready(n))


def _lease_fresh(body: bytes, within: float = 30.0) -> bool:
    """A Lease held by someone and renewed in the last `within` seconds."""
    try:
        spec = json.loads(body).get("spec") or {}
        renewed = datetime.strptime(spec["renewTime"][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except (ValueError, KeyError, TypeError):
        return False
    return bool(spec.get("holderIdentity")) and (datetime.now(UTC) - renewed).total_seconds() < within


def _dns_answers(host: str, port: int, zone: str = CLUSTER_DOMAIN) -> bool:
    """Whether a DNS server at host:port answers the zone's SOA (the cluster DNS does once it has synced)."""
    import dns.message
    import dns.query
    import dns.rcode

    try:
        reply = dns.query.udp(dns.message.make_query(f"{zone}.", "SOA"), host, port=port, timeout=1.0)
    except Exception:  # no answer, no server: not healthy
        return False
    return reply.rcode() == dns.rcode.NOERROR and bool(reply.answer)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "\n".join("    " + line for line in text)
