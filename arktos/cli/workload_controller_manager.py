"""`arktos workload-controller-manager`: replicaset and deployment controllers, several instances at once."""

from __future__ import annotations

import click

from arktos.cli._config import config_option
from arktos.cli._connect import cluster_config
from arktos.cli.logs import setup_logging


@click.command("workload-controller-manager")
@config_option
@click.option("--kubeconfig", type=click.Path(exists=True, dir_okay=False),
              help="kubeconfig of a system-tenant identity (default: $KUBECONFIG or ~/.kube/config).")
@click.option("--master", metavar="URL", help="API server URL; overrides the kubeconfig's server, or stands "
                                                 "alone for the plain-HTTP development port.")
@click.option("--controllers", default="replicaset,deployment", show_default=True, metavar="LIST",
              help="Comma-separated partitioned controllers to run: replicaset, deployment.")
@click.option("--instance-id", default=None, metavar="ID",
              help="This instance's id (its ControllerInstances are {type}-{id}); default: random.")
@click.option("--member-lease-duration", default=15.0, show_default=True, type=click.FloatRange(min=1),
              help="Seconds without renewal after which an instance counts as dead and its range moves on.")
@click.option("--member-period", default=2.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds between membership rounds (renew, look at the others, adjust the range).")
@click.option("--concurrent-workers", default=5, show_default=True, type=click.IntRange(1, 1000),
              help="Workers per controller.")
@click.option("--kube-api-qps", default=200.0, show_default=True, type=float, help="Requests per second.")
@click.option("--kube-api-burst", default=400, show_default=True, type=int, help="Burst of requests.")
@click.option("-v", "--v", "verbosity", default=2, show_default=True, type=int, help="Log verbosity.")
def workload_controller_manager(kubeconfig: str | None, master: str | None, controllers: str,
                                instance_id: str | None, member_lease_duration: float, member_period: float,
                                concurrent_workers: int, kube_api_qps: float, kube_api_burst: int,
                                verbosity: int) -> None:
    """Run workload controllers active-active: every instance works on its share of the hashKey space.

    Instances register as ControllerInstances, split 0..2^63-1 evenly, list and watch only their
    range (filtered by the API server), and take over the range of an instance that stops.
    """
    setup_logging(verbosity)
    from arktos.cli.apiserver import run_forever
    from arktos.client import Client
    from arktos.controllers.base import ControllerOptions
    from arktos.controllers.workload import PARTITIONED, WorkloadControllerManager

    names = [n.strip() for n in controllers.split(",") if n.strip()]
    unknown = [n for n in names if n not in PARTITIONED]
    if unknown or not names:
        raise click.BadParameter(f"choose from {', '.join(PARTITIONED)}", param_hint="--controllers")
    if member_period * 2 >= member_lease_duration:
        raise click.UsageError("--member-period must be well below --member-lease-duration")
    config = cluster_config(kubeconfig, master, component="workload controller manager", system_only=True)
    component = f"workload-controller-manager-{instance_id}" if instance_id else "workload-controller-manager"
    client = Client(config, component=component, qps=kube_api_qps, burst=kube_api_burst)
    run_forever(WorkloadControllerManager(client, names, ControllerOptions(concurrent_workers=concurrent_workers),
                                          instance_id=instance_id, lease_duration=member_lease_duration,
                                          period=member_period))
