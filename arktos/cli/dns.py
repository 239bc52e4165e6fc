"""`arktos dns`: the cluster DNS server, one per cluster (or per machine); see arktos.dns for the design."""

from __future__ import annotations

import ipaddress

import click

from arktos.cli._config import config_option
from arktos.cli._connect import cluster_config
from arktos.cli.logs import setup_logging


def _host_port(value: str, hint: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise click.BadParameter(f"{value!r}: want HOST:PORT (port 0: off)", param_hint=hint)
    return host.strip("[]") or "127.0.0.1", int(port)


@click.command("dns")
@config_option
@click.option("--kubeconfig", type=click.Path(exists=True, dir_okay=False),
              help="kubeconfig of the API server, as a system-tenant identity allowed to list and watch services, "
                   "endpoints and pods of every tenant (system:kube-dns; default: $KUBECONFIG or ~/.kube/config).")
@click.option("--master", metavar="URL",
              help="API server URL; overrides the kubeconfig's server, or stands alone for the plain-HTTP "
                   "development port.")
@click.option("--cluster-domain", default="cluster.local", show_default=True, metavar="ZONE",
              help="The cluster's zone (kubelet's --cluster-domain): names are <svc>.<ns>.svc.<tenant>.ZONE.")
@click.option("--bind-address", "bind_addresses", multiple=True, default=["0.0.0.0"], show_default=True,
              metavar="IP", help="Address to answer on, UDP and TCP (repeatable or comma-separated).  Addresses the "
                                 "host does not have yet (a pod bridge made later) are fine: they answer once it has.")
@click.option("--port", default=53, show_default=True, type=click.IntRange(0, 65535),
              help="Port to answer on (0: any free one, logged).")
@click.option("--health-bind-address", default="127.0.0.1:8080", show_default=True, metavar="HOST:PORT",
              help="Where /health (200 while running) and /ready (200 once synced with the API) answer (port 0: "
                   "nowhere).")
@click.option("--ttl", default=5, show_default=True, type=click.IntRange(0, 3600),
              help="TTL of the cluster's records and of negative answers.")
@click.option("--resolv-conf", default="/etc/resolv.conf", show_default=True, metavar="FILE",
              help="Where the upstream resolvers for names outside the zone are (its nameserver lines).")
@click.option("--upstream-timeout", default=2.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds to wait for one upstream resolver.")
@click.option("--service-cluster-ip-range", default="10.0.0.0/24", show_default=True, metavar="CIDRS",
              help="The service range(s): reverse names in it are answered here alone (NXDOMAIN when unknown), "
                   "never forwarded.  Comma-separated; empty: none.")
@click.option("--kube-api-qps", default=50.0, show_default=True, type=float,
              help="Requests per second to the API server (0: no limit).")
@click.option("--kube-api-burst", default=100, show_default=True, type=int, help="Burst of requests.")
@click.option("-v", "--v", "verbosity", default=2, show_default=True, type=int, is_flag=False, flag_value=4,
              help="Log verbosity (0: warnings and up, 2: progress, 4: debug); a bare -v means 4.")
def dns(kubeconfig: str | None, master: str | None, cluster_domain: str, bind_addresses: tuple[str, ...], port: int,
        health_bind_address: str, ttl: int, resolv_conf: str, upstream_timeout: float, service_cluster_ip_range: str,
        kube_api_qps: float, kube_api_burst: int, verbosity: int) -> None:
    """Answer DNS for the cluster's Services, each tenant's pods their own tenant's only (CoreDNS's kubernetes plugin).

    Watches Services, Endpoints and Pods of every tenant.  <svc>.<ns>.svc.<tenant>.<zone> is a Service's name;
    a pod's search path (set by the node agent's --cluster-dns) makes `svc` and `svc.ns` its own tenant's, and
    <svc>.<ns>.svc.<zone> means the asking pod's tenant.  The asker is known by its source IP: another tenant's
    names do not exist for it.  Names outside the zone go to the resolvers of --resolv-conf.
    """
    setup_logging(verbosity)
    addresses: list[str] = []
    for value in bind_addresses:
        for part in str(value).split(","):
            part = part.strip()
            if not part:
                continue
            try:
                addresses.append(str(ipaddress.ip_address(part)))
            except ValueError:
                raise click.BadParameter(f"{part!r} is not an IP address", param_hint="--bind-address") from None
    if not addresses:
        raise click.BadParameter("name at least one address", param_hint="--bind-address")
    ranges = [c.strip() for c in service_cluster_ip_range.split(",") if c.strip()]
    for cidr in ranges:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise click.BadParameter(f"{cidr!r} is not a CIDR", param_hint="--service-cluster-ip-range") from None
    zone = cluster_domain.strip(".").lower()
    if not zone:
        raise click.BadParameter("the zone may not be empty", param_hint="--cluster-domain")
    health_host, health_port = _host_port(health_bind_address, "--health-bind-address")
    from arktos.cli.apiserver import run_forever
    from arktos.dns.records import DnsConfig
    from arktos.dns.server import DnsOptions, DnsServer

    config = cluster_config(kubeconfig, master, component="dns", system_only=True)
    run_forever(DnsServer(DnsOptions(
        config=config, dns=DnsConfig(zone=zone, ttl=ttl, authoritative_reverse=tuple(ranges)),
        bind_addresses=tuple(addresses), port=port, health_host=health_host, health_port=health_port or None,
        resolv_conf=resolv_conf, upstream_timeout=upstream_timeout, qps=kube_api_qps, burst=kube_api_burst)))
