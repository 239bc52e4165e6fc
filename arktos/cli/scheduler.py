"""`arktos scheduler`: flags follow kube-scheduler's names where one exists (plus Arktos's --resource-providers)."""

from __future__ import annotations

import click

from arktos.cli._config import config_option
from arktos.cli._connect import cluster_config
from arktos.cli.logs import setup_logging


def _weights(spec: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in (p.strip() for p in spec.split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r}: want Name=weight", param_hint="--score-weights")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise click.BadParameter(f"{item!r}: the weight is not a number", param_hint="--score-weights") from None
    return out


@click.command("scheduler")
@config_option
@click.option("--kubeconfig", type=click.Path(exists=True, dir_okay=False),
              help="kubeconfig of the tenant partition's API server, as a system-tenant identity "
                   "(default: $KUBECONFIG or ~/.kube/config).")
@click.option("--master", metavar="URL",
              help="API server URL; overrides the kubeconfig's server, or stands alone for the plain-HTTP "
                   "development port.")
@click.option("--resource-providers", metavar="KUBECONFIGS", default="",
              help="Comma-separated kubeconfigs of the resource partitions whose nodes to schedule onto "
                   "(default: the --kubeconfig server).")
@click.option("--scheduler-name", default="default-scheduler", show_default=True,
              help="Schedule only pending pods whose spec.schedulerName is this.")
@click.option("--leader-elect/--no-leader-elect", default=True, show_default=True,
              help="Schedule only while holding the leader lease, so one replica acts at a time.")
@click.option("--leader-elect-lease-duration", default=15.0, show_default=True, type=float,
              help="Seconds a candidate waits after the leader's last renewal before taking over.")
@click.option("--leader-elect-renew-deadline", default=10.0, show_default=True, type=float,
              help="Seconds the leader keeps trying to renew before it stops acting.")
@click.option("--leader-elect-retry-period", default=2.0, show_default=True, type=float,
              help="Seconds between attempts to acquire or renew the lease.")
@click.option("--leader-elect-resource-name", default="kube-scheduler", show_default=True,
              help="Name of the Lease (in the system tenant's kube-system namespace).")
@click.option("--kube-api-qps", default=5000.0, show_default=True, type=float,
              help="Requests per second to each API server (0: no limit).")
@click.option("--kube-api-burst", default=10000, show_default=True, type=int,
              help="Burst of requests to each API server.")
@click.option("--bind-concurrency", default=128, show_default=True, type=click.IntRange(1, 10000),
              help="Bindings in flight at once.")
@click.option("--score-weights", default="", metavar="LIST",
              help="Score plugin weights, e.g. 'LeastAllocated=1,BalancedAllocation=1,OwnerSpread=2' (0 turns one "
                   "off). Plugins: LeastAllocated, BalancedAllocation, OwnerSpread, NodeAffinityPreferred, "
                   "TaintPreferNoSchedule.")
@click.option("--pod-initial-backoff-seconds", default=1.0, show_default=True, type=click.FloatRange(0),
              help="Backoff after a pod's first failed attempt; doubles per attempt.")
@click.option("--pod-max-backoff-seconds", default=10.0, show_default=True, type=click.FloatRange(0),
              help="Longest backoff between attempts.")
@click.option("--unschedulable-retry-seconds", default=60.0, show_default=True, type=click.FloatRange(1),
              help="Retry unschedulable pods after this long even if the cluster seemed not to change.")
@click.option("-v", "--v", "verbosity", default=2, show_default=True, type=int, is_flag=False, flag_value=4,
              help="Log verbosity (0: warnings and up, 2: decisions that failed and progress, 4: debug); "
                   "a bare -v means 4.")
def scheduler(kubeconfig: str | None, master: str | None, resource_providers: str, scheduler_name: str,
              leader_elect: bool, leader_elect_lease_duration: float, leader_elect_renew_deadline: float,
              leader_elect_retry_period: float, leader_elect_resource_name: str, kube_api_qps: float,
              kube_api_burst: int, bind_concurrency: int, score_weights: str, pod_initial_backoff_seconds: float,
              pod_max_backoff_seconds: float, unschedulable_retry_seconds: float, verbosity: int) -> None:
    """Schedule pending pods (containers or a VM) of every tenant onto the nodes of the resource partitions.

    Pods are read and bound on the --kubeconfig server (the tenant partition); nodes come from each
    --resource-providers server.  Nodes advertise runtimes with the labels arktos.io/runtime-container=true
    and arktos.io/runtime-vm=true; a node without either runs containers only.
    """
    setup_logging(verbosity)
    from arktos.cli.apiserver import run_forever
    from arktos.client import KubeconfigError, load_many
    from arktos.scheduler import Scheduler, SchedulerOptions, default_scores

    if not leader_elect_lease_duration > leader_elect_renew_deadline > leader_elect_retry_period > 0:
        raise click.UsageError("need --leader-elect-lease-duration > --leader-elect-renew-deadline > "
                               "--leader-elect-retry-period > 0")
    weights = _weights(score_weights)
    try:
        default_scores(weights)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--score-weights") from None
    try:
        providers = load_many(resource_providers) if resource_providers.strip() else []
    except KubeconfigError as exc:
        raise click.UsageError(str(exc)) from None
    config = cluster_config(kubeconfig, master, component="scheduler", system_only=True)
    options = SchedulerOptions(
        config=config,
        resource_providers=providers,
        scheduler_name=scheduler_name,
        leader_elect=leader_elect,
        lease_name=leader_elect_resource_name,
        lease_duration=leader_elect_lease_duration,
        renew_deadline=leader_elect_renew_deadline,
        retry_period=leader_elect_retry_period,
        qps=kube_api_qps,
        burst=kube_api_burst,
        bind_concurrency=bind_concurrency,
        score_weights=weights,
        initial_backoff=pod_initial_backoff_seconds,
        max_backoff=max(pod_max_backoff_seconds, pod_initial_backoff_seconds),
        unschedulable_timeout=unschedulable_retry_seconds,
    )
    run_forever(Scheduler(options))
