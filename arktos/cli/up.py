"""`arktos up | down | status`: a cluster on this machine in one command."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import click

from arktos.cluster.local import LocalCluster, UpError

DEFAULT_STATE = os.environ.get("ARKTOS_STATE_DIR", "~/.arktos")

state_option = click.option(
    "--state-dir", default=DEFAULT_STATE, show_default=True, type=click.Path(file_okay=False, path_type=Path),
    help="Where the cluster keeps its data, logs, PID files and kubeconfigs ($ARKTOS_STATE_DIR).")
etcd_port_option = click.option("--etcd-port", default=2379, show_default=True, type=click.IntRange(1, 65535),
                                help="etcd client port (the peer port is this plus one).")
api_port_option = click.option("--apiserver-port", default=6443, show_default=True, type=click.IntRange(1, 65535),
                               help="API server HTTPS port on 127.0.0.1.")


def _cluster(state_dir: Path, etcd_port: int, apiserver_port: int, runtimes: str | None = None,
             node_name: str | None = None) -> LocalCluster:
    """The cluster in `state_dir`; choices made at its first `up` (node name, runtimes) stick."""
    saved = LocalCluster.saved_choices(state_dir)
    kw = {k: v for k, v in (("runtimes", runtimes or saved.get("runtimes")),
                            ("node_name", node_name or saved.get("node_name"))) if v}
    return LocalCluster(state_dir, etcd_port=etcd_port, etcd_peer_port=etcd_port + 1,
                        apiserver_port=apiserver_port, echo=lambda m: click.echo(f"  {m}"), **kw)


@click.command()
@state_option
@etcd_port_option
@api_port_option
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for each component.")
@click.option("--runtimes", default=None,
              help="The node agent's runtimes: 'auto' uses what this machine offers (libvirt), and simulated "
                   "(hollow) pods when it offers nothing; or a list such as 'libvirt' or 'hollow,hollow-vm'. "
                   "Default: 'auto' on the first up, then what the cluster was made with.")
@click.option("--node-name", default=None, help="The node's name (default: this host's name).")
def up(state_dir: Path, etcd_port: int, apiserver_port: int, timeout: float, runtimes: str | None,
       node_name: str | None) -> None:
    """Bring a local cluster up, or check the one that is already running.

    Components run as detached processes with logs under STATE_DIR/logs.
    Running `arktos up` again changes nothing on a healthy cluster and
    resumes a half-started one.
    """
    cluster = _cluster(state_dir, etcd_port, apiserver_port, runtimes, node_name)
    started = time.monotonic()
    click.secho(f"Bringing up a local Arktos cluster in {cluster.state_dir}", bold=True)
    try:
        changed = cluster.up(timeout)
    except UpError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        raise SystemExit(1) from None
    verb = "is up" if changed else "was already up; nothing changed"
    me = "arktos" if shutil.which("arktos") else sys.argv[0]  # the way this user can run it again
    click.secho(f"The cluster {verb} ({time.monotonic() - started:.1f}s).", fg="green", bold=True)
    click.echo(
        f"\nUse it with kubectl:\n"
        f"  export KUBECONFIG={cluster.kubeconfig}\n"
        f"  kubectl get nodes\n\n"
        f"A tenant and a user of it, whose plain kubectl stays inside it:\n"
        f"  {me} tenant create acme && {me} kubeconfig --tenant acme --user admin\n\n"
        f"The API server listens on {cluster.server} (TLS; you are system:admin through a client\n"
        f"certificate). Stop the cluster with 'arktos down' (add --purge to delete its data)."
    )


@click.command()
@state_option
@etcd_port_option
@api_port_option
@click.option("--purge", is_flag=True, help="Also delete the cluster's data, logs and kubeconfigs.")
def down(state_dir: Path, etcd_port: int, apiserver_port: int, purge: bool) -> None:
    """Stop every component `arktos up` started (by PID)."""
    cluster = _cluster(state_dir, etcd_port, apiserver_port)
    stopped = cluster.down(purge)
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    if purge:
        click.echo(f"removed {cluster.state_dir}")


@click.command()
@state_option
@etcd_port_option
@api_port_option
def status(state_dir: Path, etcd_port: int, apiserver_port: int) -> None:
    """Show each component: PID, port, health and log file."""
    rows = _cluster(state_dir, etcd_port, apiserver_port).status()
    widths = {k: max(len(k), *(len(r[k]) for r in rows)) for k in rows[0]}
    click.echo("  ".join(k.upper().ljust(w) for k, w in widths.items()))
    for r in rows:
        line = "  ".join(r[k].ljust(w) for k, w in widths.items())
        color = {"healthy": "green", "unhealthy": "yellow", "stopped": "red"}[r["health"]]
        click.secho(line, fg=color if click.get_text_stream("stdout").isatty() else None)
    if any(r["health"] != "healthy" for r in rows):
        raise SystemExit(1)
