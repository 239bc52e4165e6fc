"""`arktos controller-manager`: flags follow kube-controller-manager's names where one exists."""

from __future__ import annotations

import click

from arktos.cli._config import config_option
from arktos.cli._connect import cluster_config
from arktos.cli.logs import setup_logging


@click.command("controller-manager")
@config_option
@click.option("--kubeconfig", type=click.Path(exists=True, dir_okay=False),
              help="kubeconfig of a system-tenant identity (default: $KUBECONFIG or ~/.kube/config).")
@click.option("--master", metavar="URL",
              help="API server URL; overrides the kubeconfig's server, or stands alone for the plain-HTTP "
                   "development port.")
@click.option("--controllers", "controllers_spec", default="*", show_default=True, metavar="LIST",
              help="Comma-separated controllers to run: '*' for all, 'name' to add one, '-name' to leave one out. "
                   "Known: tenant, namespace, serviceaccount, token, replicaset, deployment, garbagecollector, "
                   "nodelifecycle, endpoints.")
@click.option("--leader-elect/--no-leader-elect", default=True, show_default=True,
              help="Run the controllers only while holding the leader lease, so one copy acts at a time.")
@click.option("--leader-elect-lease-duration", default=15.0, show_default=True, type=float,
              help="Seconds a candidate waits after the leader's last renewal before taking over.")
@click.option("--leader-elect-renew-deadline", default=10.0, show_default=True, type=float,
              help="Seconds the leader keeps trying to renew before it stops acting.")
@click.option("--leader-elect-retry-period", default=2.0, show_default=True, type=float,
              help="Seconds between attempts to acquire or renew the lease.")
@click.option("--leader-elect-resource-name", default="arktos-controller-manager", show_default=True,
              help="Name of the Lease (in the system tenant's kube-system namespace).")
@click.option("--service-account-private-key-file", type=click.Path(exists=True, dir_okay=False),
              help="PEM private key that signs service-account tokens; without it the token controller is off.")
@click.option("--service-account-issuer", default="https://kubernetes.default.svc", show_default=True,
              help="The iss claim of the tokens; must match the API server's --service-account-issuer.")
@click.option("--root-ca-file", type=click.Path(exists=True, dir_okay=False),
              help="CA bundle put into token secrets as ca.crt.")
@click.option("--concurrent-workers", default=5, show_default=True, type=click.IntRange(1, 1000),
              help="Workers per controller (keys synced in parallel).")
@click.option("--tenant-deletion-grace-period", default=60.0, show_default=True, type=click.FloatRange(0),
              help="Seconds a terminating tenant waits for finalizers before the tenant controller strips them.")
@click.option("--node-monitor-grace-period", default=40.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds without a node lease renewal (or status heartbeat) before the node is marked "
                   "NotReady (Ready=Unknown) and tainted unreachable.")
@click.option("--pod-eviction-timeout", default=300.0, show_default=True, type=click.FloatRange(0),
              help="Seconds pods that do not tolerate the not-ready/unreachable NoExecute taints stay on such a "
                   "node before they are evicted (Kubernetes' default toleration).")
@click.option("--terminated-pod-gc-threshold", default=12500, show_default=True, type=click.IntRange(0),
              help="Finished (Succeeded or Failed) pods kept before the oldest are deleted; 0 keeps them all.")
@click.option("--pod-gc-orphan-quarantine", default=40.0, show_default=True, type=click.FloatRange(0),
              help="Seconds after a Node's deletion before its pods are force-deleted (a node re-registering "
                   "in that time keeps them).")
@click.option("--job-pod-failure-backoff", default=10.0, show_default=True, type=click.FloatRange(0),
              help="Seconds the job controller waits before replacing a failed pod; doubles with each failure "
                   "of the job, up to 6 minutes (Kubernetes' pod failure back-off).")
@click.option("--tenant-servers", metavar="KUBECONFIG,...", default="",
              help="Node lifecycle on a resource partition: kubeconfigs of the tenant partitions whose pods it "
                   "evicts (default: pods are on the same server).")
@click.option("--kube-api-qps", default=200.0, show_default=True, type=float,
              help="Requests per second to the API server.")
@click.option("--kube-api-burst", default=400, show_default=True, type=int,
              help="Burst of requests to the API server.")
@click.option("-v", "--v", "verbosity", default=2, show_default=True, type=int, is_flag=False, flag_value=4,
              help="Log verbosity (0: warnings and up, 2: what was reconciled, 4: debug); a bare -v means 4.")
def controller_manager(kubeconfig: str | None, master: str | None, controllers_spec: str, leader_elect: bool,
                       leader_elect_lease_duration: float, leader_elect_renew_deadline: float,
                       leader_elect_retry_period: float, leader_elect_resource_name: str,
                       service_account_private_key_file: str | None, service_account_issuer: str,
                       root_ca_file: str | None, concurrent_workers: int, tenant_deletion_grace_period: float,
                       node_monitor_grace_period: float, pod_eviction_timeout: float,
                       terminated_pod_gc_threshold: int, pod_gc_orphan_quarantine: float,
                       job_pod_failure_backoff: float, tenant_servers: str,
                       kube_api_qps: float, kube_api_burst: int, verbosity: int) -> None:
    """Run the controllers (tenants, namespaces, service accounts, tokens, workloads, jobs and cron jobs, garbage
    collection, node lifecycle, endpoints) against an API server.

    It acts as a system-tenant component: it lists and watches every tenant.
    """
    setup_logging(verbosity)
    from arktos.cli.apiserver import run_forever
    from arktos.controllers.base import ControllerOptions
    from arktos.controllers.manager import ControllerManager, ManagerOptions, select_controllers

    try:
        names = select_controllers(controllers_spec)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--controllers") from None
    if not names:
        raise click.BadParameter("selects no controller", param_hint="--controllers")
    if not leader_elect_lease_duration > leader_elect_renew_deadline > leader_elect_retry_period > 0:
        raise click.UsageError("need --leader-elect-lease-duration > --leader-elect-renew-deadline > "
                               "--leader-elect-retry-period > 0")
    config = cluster_config(kubeconfig, master, component="controller manager", system_only=True)
    options = ManagerOptions(
        config=config,
        controllers=names,
        controller_options=ControllerOptions(
            concurrent_workers=concurrent_workers,
            service_account_private_key_file=service_account_private_key_file,
            service_account_issuer=service_account_issuer,
            root_ca_file=root_ca_file,
            tenant_deletion_grace_period=tenant_deletion_grace_period,
            extra={
                "node_monitor_grace_period": node_monitor_grace_period,
                "pod_eviction_timeout": pod_eviction_timeout,
                "job_pod_failure_backoff": job_pod_failure_backoff,
                "terminated_pod_gc_threshold": terminated_pod_gc_threshold,
                "pod_gc_orphan_quarantine": pod_gc_orphan_quarantine,
                "tenant_servers": [p.strip() for p in tenant_servers.split(",") if p.strip()],
            },
        ),
        leader_elect=leader_elect,
        lease_name=leader_elect_resource_name,
        lease_duration=leader_elect_lease_duration,
        renew_deadline=leader_elect_renew_deadline,
        retry_period=leader_elect_retry_period,
        qps=kube_api_qps,
        burst=kube_api_burst,
    )
    run_forever(ControllerManager(options))
