"""`arktos proxy`: the service proxy, one per machine; flags follow kube-proxy's names where one exists."""

from __future__ import annotations

import ipaddress
import re

import click

from arktos.cli._config import config_option
from arktos.cli._connect import cluster_config
from arktos.cli.logs import setup_logging


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise click.BadParameter(f"{value!r}: want HOST:PORT (port 0: off)", param_hint="--healthz-bind-address")
    return host.strip("[]") or "0.0.0.0", int(port)


@click.command("proxy")
@config_option
@click.option("--kubeconfig", type=click.Path(exists=True, dir_okay=False),
              help="kubeconfig of the API server, as a system-tenant identity allowed to list and watch services "
                   "and endpoints of every tenant (system:node-proxier; default: $KUBECONFIG or ~/.kube/config).")
@click.option("--master", metavar="URL",
              help="API server URL; overrides the kubeconfig's server, or stands alone for the plain-HTTP "
                   "development port.")
@click.option("--chain-prefix", default="KUBE-", show_default=True, metavar="PREFIX",
              help="Start of the name of every iptables chain the proxy makes (1-11 characters of A-Z, 0-9, - "
                   "and _), so several clusters (or tests) on one host keep to their own chains.")
@click.option("--cleanup", is_flag=True,
              help="Remove every chain and rule with --chain-prefix, then exit (no API server needed).")
@click.option("--iptables-sync-period", default=30.0, show_default=True, type=click.FloatRange(1),
              help="Seconds between full resyncs, which also repair rules someone else removed.")
@click.option("--iptables-min-sync-period", default=0.5, show_default=True, type=click.FloatRange(0),
              help="Least seconds between two syncs: bursts of changes are applied together.")
@click.option("--iptables-masquerade-bit", default=14, show_default=True, type=click.IntRange(0, 31),
              help="The fwmark bit marking packets to be SNATed.")
@click.option("--masquerade-all", is_flag=True,
              help="SNAT all traffic sent through a cluster IP (pods then see the host, not the client).")
@click.option("--cluster-cidr", default="", metavar="CIDR",
              help="The pods' range: traffic to a cluster IP from outside it is SNATed.")
@click.option("--iptables-localhost-nodeports/--no-iptables-localhost-nodeports", default=True, show_default=True,
              help="Node ports answer on 127.0.0.1 too (sets route_localnet on the pod bridges, and drops "
                   "martian packets to 127.0.0.0/8 as kube-proxy does).")
@click.option("--healthz-bind-address", default="127.0.0.1:10256", show_default=True, metavar="HOST:PORT",
              help="Where /healthz answers (port 0: nowhere).")
@click.option("--kube-api-qps", default=50.0, show_default=True, type=float,
              help="Requests per second to the API server (0: no limit).")
@click.option("--kube-api-burst", default=100, show_default=True, type=int, help="Burst of requests.")
@click.option("-v", "--v", "verbosity", default=2, show_default=True, type=int, is_flag=False, flag_value=4,
              help="Log verbosity (0: warnings and up, 2: syncs and progress, 4: debug); a bare -v means 4.")
def proxy(kubeconfig: str | None, master: str | None, chain_prefix: str, cleanup: bool,
          iptables_sync_period: float, iptables_min_sync_period: float, iptables_masquerade_bit: int,
          masquerade_all: bool, cluster_cidr: str, iptables_localhost_nodeports: bool, healthz_bind_address: str,
          kube_api_qps: float, kube_api_burst: int, verbosity: int) -> None:
    """Make every Service's cluster IP and node ports reach its ready endpoints (kube-proxy's iptables mode).

    Watches Services and Endpoints of every tenant and programs the host's iptables (NAT: cluster IP:port
    and node ports to a random ready endpoint, ClientIP session affinity; filter: REJECT for services
    without endpoints) in one iptables-restore transaction per change.  Run one per machine, as root.
    The rules stay when it stops, so traffic flows through a restart; --cleanup removes them.
    """
    setup_logging(verbosity)
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,11}", chain_prefix):
        raise click.BadParameter(f"{chain_prefix!r}: want 1-11 characters of letters, digits, - and _",
                                 param_hint="--chain-prefix")
    from arktos.proxy import iptables

    if cleanup:
        try:
            removed = iptables.cleanup(chain_prefix)
        except iptables.IptablesError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"removed {removed} chain{'s' if removed != 1 else ''} named {chain_prefix}*")
        return
    if cluster_cidr:
        try:
            cluster_cidr = str(ipaddress.ip_network(cluster_cidr, strict=False))
        except ValueError:
            raise click.BadParameter(f"{cluster_cidr!r} is not a CIDR", param_hint="--cluster-cidr") from None
    host, port = _host_port(healthz_bind_address)
    from arktos.cli.apiserver import run_forever
    from arktos.proxy.proxier import Proxier, ProxyOptions
    from arktos.proxy.rules import Options

    config = cluster_config(kubeconfig, master, component="proxy", system_only=True)
    rules = Options(prefix=chain_prefix, masquerade_bit=iptables_masquerade_bit, masquerade_all=masquerade_all,
                    cluster_cidr=cluster_cidr or None, localhost_nodeports=iptables_localhost_nodeports)
    run_forever(Proxier(ProxyOptions(config=config, rules=rules, sync_period=iptables_sync_period,
                                     min_sync_period=iptables_min_sync_period, healthz_host=host, healthz_port=port,
                                     qps=kube_api_qps, burst=kube_api_burst)))
