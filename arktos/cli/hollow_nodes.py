"""`arktos hollow-nodes`: kubemark's hollow nodes, many node agents in one process."""

from __future__ import annotations

import re

import click

from arktos.cli._config import config_option
from arktos.cli._connect import cluster_config
from arktos.cli.logs import setup_logging

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9.-])?$")


@click.command("hollow-nodes")
@config_option
@click.option("--kubeconfig", type=click.Path(exists=True, dir_okay=False),
              help="kubeconfig of the API server the nodes register on; its user needs the system:node role "
                   "on every node (default: $KUBECONFIG or ~/.kube/config).")
@click.option("--master", metavar="URL",
              help="API server URL; overrides the kubeconfig's server, or stands alone for the plain-HTTP "
                   "development port.")
@click.option("--count", required=True, type=click.IntRange(1, 100000), help="How many hollow nodes to run.")
@click.option("--name-prefix", default="hollow-node-", show_default=True,
              help="Node names are this prefix followed by a number.")
@click.option("--first-index", default=1, show_default=True, type=click.IntRange(0),
              help="Number of the first node (several processes can share a prefix with disjoint ranges).")
@click.option("--runtimes", default="hollow", show_default=True, metavar="LIST",
              help="Comma-separated hollow runtimes: hollow (containers), hollow-vm (VMs).")
@click.option("--cpu", default="4", show_default=True, help="CPU capacity each node advertises.")
@click.option("--memory", default="16Gi", show_default=True, help="Memory capacity each node advertises.")
@click.option("--max-pods", default=110, show_default=True, type=click.IntRange(1))
@click.option("--lease-duration", default=40, show_default=True, type=click.IntRange(1),
              help="Seconds each node Lease says it is valid for.")
@click.option("--lease-renew-interval", default=10.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds between each node's Lease renewals.")
@click.option("--status-update-interval", default=60.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds between each node's condition updates (the Lease is the heartbeat).")
@click.option("--sync-frequency", default=30.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds between periodic syncs of each pod.")
@click.option("--relist-interval", default=5.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds between asking each node's runtimes what they run.")
@click.option("--start-concurrency", default=50, show_default=True, type=click.IntRange(1),
              help="Nodes registering at once.")
@click.option("--kube-api-qps", default=5.0, show_default=True, type=click.FloatRange(0),
              help="Requests per second of each node, as each kubemark hollow kubelet has its own client; the "
                   "nodes' shared client allows COUNT times this (0: no limit).")
@click.option("--kube-api-burst", default=10, show_default=True, type=click.IntRange(1),
              help="Burst of requests of each node (the shared client: COUNT times this).")
@click.option("-v", "--v", "verbosity", default=2, show_default=True, type=int, is_flag=False, flag_value=4,
              help="Log verbosity (0: warnings and up, 2: progress, 4: debug); a bare -v means 4.")
def hollow_nodes(kubeconfig: str | None, master: str | None, count: int, name_prefix: str, first_index: int,
                 runtimes: str, cpu: str, memory: str, max_pods: int, lease_duration: int,
                 lease_renew_interval: float, status_update_interval: float, sync_frequency: float,
                 relist_interval: float, start_concurrency: int, kube_api_qps: float, kube_api_burst: int,
                 verbosity: int) -> None:
    """Run COUNT hollow nodes in this one process: real node agents whose pods are simulated.

    Each node registers, renews its Lease, reports its conditions and runs the pods bound to it through the
    hollow runtime (they reach Running at once, with a fake IP), exactly as a node agent does over the API,
    so the control plane can be tested at scale on one machine, as with Kubernetes' kubemark.  The nodes
    carry the label arktos.io/hollow-node=true.  They share one connection pool and one pod and action watch.
    """
    setup_logging(verbosity)
    from arktos.cli.apiserver import run_forever
    from arktos.kubemark.hollow import HollowNodes, HollowNodesOptions

    if not _NAME.match(f"{name_prefix}{first_index}") or len(f"{name_prefix}{first_index + count}") > 253:
        raise click.BadParameter(f"{name_prefix!r} followed by a number is not a valid node name (lower-case "
                                 f"letters, digits, '-' and '.')", param_hint="--name-prefix")
    names = tuple(n.strip() for n in runtimes.split(",") if n.strip())
    config = cluster_config(kubeconfig, master)
    try:
        nodes = HollowNodes(HollowNodesOptions(
            config=config, count=count, name_prefix=name_prefix, first_index=first_index, runtimes=names,
            cpu=cpu, memory=memory, max_pods=max_pods, lease_duration=lease_duration,
            lease_renew_interval=lease_renew_interval, status_update_interval=status_update_interval,
            sync_interval=sync_frequency, relist_interval=relist_interval, qps=kube_api_qps, burst=kube_api_burst,
            start_concurrency=start_concurrency))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--runtimes") from None
    run_forever(nodes)
