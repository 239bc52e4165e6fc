"""`arktos up | down | status`: a cluster on this machine in one command."""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import click

from arktos.cluster.images import BUSYBOX_IMAGE
from arktos.cluster.local import LocalCluster, Progress, UpError

DEFAULT_STATE = os.environ.get("ARKTOS_STATE_DIR", "~/.arktos")
DEFAULT_TENANT = "demo"

state_option = click.option(
    "--state-dir", default=DEFAULT_STATE, show_default=True, type=click.Path(file_okay=False, path_type=Path),
    help="Where the cluster keeps its data, logs, PID files and kubeconfigs ($ARKTOS_STATE_DIR).")
etcd_port_option = click.option("--etcd-port", default=None, type=click.IntRange(1, 65534),
                                help="etcd client port; the peer port is this plus one (default: 2379 on the "
                                     "first up, then what the cluster was made with).")
api_port_option = click.option("--apiserver-port", default=None, type=click.IntRange(1, 65535),
                               help="API server HTTPS port on 127.0.0.1 (default: 6443 on the first up, then "
                                    "what the cluster was made with).")

# What the first `up` chose and later commands reuse unless told otherwise (STATE_DIR/cluster.json).
CHOICES = ("etcd_port", "apiserver_port", "node_agent_base_port", "node_name", "runtimes", "node_agents",
           "hollow_nodes", "tenant", "proxy_healthz_port", "chain_prefix", "dns_port")


def _cluster(state_dir: Path, progress: Progress | None = None, **asked: Any) -> LocalCluster:
    """The cluster in `state_dir`, with the choices asked for now, else those it was made with."""
    saved = LocalCluster.saved_choices(state_dir)
    kw = {k: asked[k] if asked.get(k) is not None else saved[k] for k in CHOICES
          if asked.get(k) is not None or k in saved}
    if "etcd_port" in kw:
        kw["etcd_peer_port"] = kw["etcd_port"] + 1
    return LocalCluster(state_dir, echo=lambda m: click.echo(f"  {m}"), progress=progress, **kw)


class RichProgress(Progress):
    """kind-style phases on a terminal: a spinner while a phase runs, then a check mark (or a cross)."""

    def __init__(self) -> None:
        from rich.console import Console

        super().__init__()
        self.console = Console(highlight=False)
        self.title = ""
        self._status: Any = None

    def begin(self, title: str) -> None:
        self._stop()
        self.title = title
        self._status = self.console.status(f"{title} ...", spinner="dots")
        self._status.start()

    def _stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def end(self, summary: str) -> None:
        self._stop()
        self.console.print(f" [green]✓[/] {self.title:<34} [dim]{escape(summary)}[/]", no_wrap=True,
                           overflow="ellipsis")

    def fail(self) -> None:
        self._stop()
        self.console.print(f" [red]✗[/] {self.title}")

    def note(self, message: str) -> None:
        self._stop()
        self.console.print(f"   [yellow]{escape(message)}[/]")


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def _me() -> str:
    """How this user can run arktos again: the command on PATH, else what ran this one."""
    if shutil.which("arktos"):
        return "arktos"
    if sys.argv[0].endswith("__main__.py"):
        return f"{sys.executable} -m arktos"
    return sys.argv[0]


def _progress() -> Progress:
    """Spinner and check marks on a terminal; plain lines (what scripts and tests read) otherwise."""
    if sys.stdout.isatty() and os.environ.get("TERM") != "dumb":
        return RichProgress()
    return Progress(lambda m: click.echo(m))


@click.command()
@state_option
@etcd_port_option
@api_port_option
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for each component.")
@click.option("--runtimes", default=None,
              help="The node agents' runtimes, one per kind: 'auto' takes what this machine offers "
                   "(containerd for containers, each agent with a private containerd; libvirt on qemu:///system "
                   "for VMs) and simulated (hollow) pods for a kind it cannot run; or a list such as "
                   "'containerd,libvirt' or 'hollow,hollow-vm'. Default: 'auto' on the first up, then what the "
                   "cluster was made with.")
@click.option("--node-name", default=None, help="The node's name (default: this host's name); further node "
                                                "agents are NAME-2, NAME-3, ...")
@click.option("--node-agent-port", default=None, type=click.IntRange(1, 65535),
              help="Port of the first node agent's logs/exec endpoint on 127.0.0.1; the next agents take the ports "
                   "after it (default: 10250 on the first up, then what the cluster was made with).")
@click.option("--node-agents", default=None, type=click.IntRange(0, 64),
              help="Real node agents to run on this machine, each its own process, node, certificate and state "
                   "directory (default: 1 on the first up, then what the cluster was made with).")
@click.option("--hollow-nodes", default=None, type=click.IntRange(0, 100000),
              help="Hollow nodes (kubemark) to run in one more process: real node agents whose pods are "
                   "simulated, labelled arktos.io/hollow-node=true (default: 0, then what the cluster was made "
                   "with).")
@click.option("--tenant", default=None, metavar="NAME",
              help="A tenant to make ready, with a kubeconfig for its admin, so plain kubectl works inside it at "
                   "once; '' for none (default: 'demo' on the first up, then what the cluster was made with).")
@click.option("--proxy-healthz-port", default=None, type=click.IntRange(1, 65535),
              help="Port of the service proxy's /healthz on 127.0.0.1 (default: 10256, kube-proxy's, on the first "
                   "up, then what the cluster was made with).")
@click.option("--iptables-chain-prefix", "chain_prefix", default=None, metavar="PREFIX",
              help="Start of the names of the service proxy's iptables chains; two clusters on one machine need "
                   "different ones (default: KUBE- on the first up, then what the cluster was made with).")
@click.option("--dns-port", default=None, type=click.IntRange(1, 65535),
              help="Port the cluster DNS answers on (UDP and TCP, on 127.0.0.1 and each pod bridge's gateway), behind "
                   "the kube-dns Service's 53 (default: 10053 on the first up, then what the cluster was made with).")
def up(state_dir: Path, etcd_port: int | None, apiserver_port: int | None, timeout: float, runtimes: str | None,
       node_name: str | None, node_agent_port: int | None, node_agents: int | None, hollow_nodes: int | None,
       tenant: str | None, proxy_healthz_port: int | None, chain_prefix: str | None, dns_port: int | None) -> None:
    """Bring a local cluster up, or check the one that is already running.

    Starts etcd, the API server, the controller manager, the node agent(s) with
    the runtimes this machine offers, the service proxy and the cluster DNS (with
    real containers: ClusterIPs and node ports reach pods, which find Services by
    name at kube-system/kube-dns, 10.0.0.10), the scheduler and any hollow nodes, each
    a detached process with a log under STATE_DIR/logs and a configuration file
    under STATE_DIR/config; waits until the nodes are Ready; then prints how to
    use kubectl.  Running `arktos up` again changes nothing on a healthy cluster
    and resumes a half-started one.  Stop it with `arktos down`.
    """
    if chain_prefix is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,11}", chain_prefix):
        raise click.BadParameter(f"{chain_prefix!r}: want 1-11 characters of letters, digits, - and _",
                                 param_hint="--iptables-chain-prefix")
    if not (LocalCluster.saved_choices(state_dir) or tenant is not None):
        tenant = DEFAULT_TENANT
    progress = _progress()
    cluster = _cluster(state_dir, progress, etcd_port=etcd_port, apiserver_port=apiserver_port, runtimes=runtimes,
                       node_name=node_name, node_agent_base_port=node_agent_port, node_agents=node_agents,
                       hollow_nodes=hollow_nodes, tenant=tenant, proxy_healthz_port=proxy_healthz_port,
                       chain_prefix=chain_prefix, dns_port=dns_port)
    started = time.monotonic()
    click.secho(f"Bringing up a local Arktos cluster in {cluster.state_dir}", bold=True)
    try:
        changed = cluster.up(timeout)
    except UpError as exc:
        first, _, rest = str(exc).partition("\n")
        click.secho(f"error: {first}", fg="red", err=True)
        if rest:
            click.echo(f"last lines of the log:\n{rest}", err=True)
        raise SystemExit(1) from None
    verb = "is up" if changed else "was already up; nothing changed"
    me = _me()
    click.secho(f"The cluster {verb} ({time.monotonic() - started:.1f}s).", fg="green", bold=True)
    nodes = len(cluster.agent_names()) + cluster.hollow_nodes
    click.echo(f"\nUse it with kubectl, as the cluster administrator (system tenant; {nodes} "
               f"node{'s' if nodes != 1 else ''}):\n"
               f"  export KUBECONFIG={cluster.kubeconfig}\n"
               f"  kubectl get nodes")
    if cluster.tenant:
        user_kubeconfig = cluster.state_dir / "users" / f"{cluster.tenant}-admin.kubeconfig"
        click.echo(f"\nor as the admin of tenant {cluster.tenant}, whose plain kubectl stays inside it:\n"
                   f"  export KUBECONFIG={user_kubeconfig}\n"
                   f"  kubectl create deployment web --image={BUSYBOX_IMAGE} -- sleep 3600\n"
                   f"  kubectl get pods -o wide && kubectl exec -it deploy/web -- sh")
        if cluster.runs_containerd():
            click.echo(f"\n(no registry needed: {BUSYBOX_IMAGE} is built on this machine and already on "
                       "each node)")
    click.echo(
        f"\nMore tenants and users:\n"
        f"  {me} tenant create acme && {me} kubeconfig --tenant acme --user admin\n\n"
        f"The API server listens on {cluster.server} (TLS, client certificates). See it with "
        f"'{me} status'; stop it with\n'{me} down' (add --purge to delete its data)."
    )


@click.command()
@state_option
@etcd_port_option
@api_port_option
@click.option("--purge", is_flag=True, help="Also delete the cluster's data, logs and kubeconfigs.")
def down(state_dir: Path, etcd_port: int | None, apiserver_port: int | None, purge: bool) -> None:
    """Stop every process `arktos up` started (by PID), node agents and hollow nodes included."""
    cluster = _cluster(state_dir, etcd_port=etcd_port, apiserver_port=apiserver_port)
    stopped = cluster.down(purge)
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    if purge:
        click.echo(f"removed {cluster.state_dir}")


@click.command()
@state_option
@etcd_port_option
@api_port_option
def status(state_dir: Path, etcd_port: int | None, apiserver_port: int | None) -> None:
    """Show each component: PID, port, health and log file; exit 1 unless all are healthy."""
    rows = _cluster(state_dir, etcd_port=etcd_port, apiserver_port=apiserver_port).status()
    widths = {k: max(len(k), *(len(r[k]) for r in rows)) for k in rows[0]}
    click.echo("  ".join(k.upper().ljust(w) for k, w in widths.items()))
    for r in rows:
        line = "  ".join(r[k].ljust(w) for k, w in widths.items())
        color = {"healthy": "green", "unhealthy": "yellow", "stopped": "red", "unwanted": "yellow"}[r["health"]]
        click.secho(line, fg=color if click.get_text_stream("stdout").isatty() else None)
    if any(r["health"] != "healthy" for r in rows):
        raise SystemExit(1)
