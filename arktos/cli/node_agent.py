"""`arktos node-agent`: flags follow kubelet's names where one exists (plus Arktos's --tenant-servers)."""

from __future__ import annotations

import os

import click

from arktos.cli._config import config_option
from arktos.cli._connect import cluster_config
from arktos.cli.logs import setup_logging


@click.command("node-agent")
@config_option
@click.option("--kubeconfig", type=click.Path(exists=True, dir_okay=False),
              help="kubeconfig of the resource partition's API server, where the Node and its Lease live "
                   "(default: $KUBECONFIG or ~/.kube/config).")
@click.option("--master", metavar="URL",
              help="API server URL; overrides the kubeconfig's server, or stands alone for the plain-HTTP "
                   "development port.")
@click.option("--node-name", required=True, help="Name of this node (also its Lease's name).")
@click.option("--tenant-servers", metavar="KUBECONFIGS", default="",
              help="Comma-separated kubeconfigs of the tenant partitions whose pods bound to this node to run "
                   "(default: the --kubeconfig server).")
@click.option("--runtimes", default="hollow", show_default=True, metavar="LIST",
              help="Comma-separated runtimes, at most one per kind: containerd (containers, over CRI), "
                   "hollow (containers, no workload), hollow-vm (VMs, no workload), libvirt (VMs).")
@click.option("--root-dir", type=click.Path(file_okay=False), default=None,
              help="Directory for the agent's state (the hollow runtimes keep their pods here, so an agent "
                   "restart adopts them); default /var/lib/arktos/node-agent/<node-name>.")
@click.option("--container-runtime-endpoint", default="/run/containerd/containerd.sock", show_default=True,
              metavar="SOCKET", help="containerd's CRI socket, for the containerd runtime.")
@click.option("--libvirt-uri", default="qemu:///system", show_default=True,
              help="libvirt connection of the libvirt runtime (test:///default in tests).")
@click.option("--libvirt-domain-type", type=click.Choice(["auto", "kvm", "qemu"]), default="auto",
              show_default=True,
              help="Hypervisor of real VMs: kvm (hardware), qemu (software emulation: slow, but runs where "
                   "/dev/kvm cannot run ordinary guests), auto (kvm when /dev/kvm is usable).")
@click.option("--vm-image-dir", type=click.Path(file_okay=False), default="/var/lib/arktos/images",
              show_default=True, help="Where VM base images are (a VM's image NAME is the file NAME[.qcow2|.img|"
                                      ".raw] here; nothing is downloaded).")
@click.option("--cpu", default=None, help="CPU capacity to advertise (default: the machine's).")
@click.option("--memory", default=None, help="Memory capacity to advertise, e.g. 8Gi (default: the machine's).")
@click.option("--max-pods", default=110, show_default=True, type=click.IntRange(1))
@click.option("--lease-duration", default=40, show_default=True, type=click.IntRange(1),
              help="Seconds the node Lease says it is valid for.")
@click.option("--lease-renew-interval", default=10.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds between Lease renewals.")
@click.option("--status-update-interval", default=10.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds between node condition updates.")
@click.option("--sync-frequency", default=10.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds between periodic syncs of each pod.")
@click.option("--relist-interval", default=1.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds between asking the runtimes what they run (notices exited containers).")
@click.option("--config-ttl", default=3.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds a fetched ConfigMap or Secret is trusted; pods' configMap, secret and projected "
                   "volumes are refreshed as often, so a change reaches their files within about twice this.")
@click.option("--restart-backoff", default=10.0, show_default=True, type=click.FloatRange(0),
              help="Back-off before a container's second restart; doubles per restart.")
@click.option("--restart-backoff-max", default=300.0, show_default=True, type=click.FloatRange(0),
              help="Longest back-off between restarts.")
@click.option("--kube-api-qps", default=50.0, show_default=True, type=float)
@click.option("--kube-api-burst", default=100, show_default=True, type=int)
@click.option("--address", default="0.0.0.0", show_default=True,
              help="Address of the logs/exec endpoint (HTTPS); the development mode binds to 127.0.0.1 regardless.")
@click.option("--port", default=None, type=click.IntRange(0, 65535),
              help="Port of the logs/exec endpoint the API server proxies `kubectl logs`/`exec` to; 0 picks a free "
                   "one.  The Node publishes it in status.daemonEndpoints.kubeletEndpoint.  Default: 10250 (kubelet's) "
                   "over HTTPS, a free one in the development mode (several agents share a machine there).")
@click.option("--tls-cert-file", type=click.Path(exists=True, dir_okay=False),
              help="Serving certificate of the logs/exec endpoint (the node's names and IPs, from the cluster CA).")
@click.option("--tls-private-key-file", type=click.Path(exists=True, dir_okay=False),
              help="Key of --tls-cert-file.")
@click.option("--client-ca-file", type=click.Path(exists=True, dir_okay=False),
              help="CA whose client certificates the logs/exec endpoint accepts (the API server's kubelet client).")
@click.option("--authorized-users", default="kube-apiserver-kubelet-client", show_default=True, metavar="NAMES",
              help="Comma-separated client-certificate users allowed to use the logs/exec endpoint.")
@click.option("--node-ip", default=None,
              help="The Node's InternalIP, where the API server reaches the endpoint (default: the address of the "
                   "default route; 127.0.0.1 in the development mode).")
@click.option("--cluster-dns", default="", metavar="IPS",
              help="Comma-separated DNS server IPs of the cluster (the kube-dns Service's ClusterIP): pods with "
                   "dnsPolicy ClusterFirst resolve through them, with their tenant's search path.  Empty: pods use "
                   "the host's resolver.")
@click.option("--cluster-domain", default="cluster.local", show_default=True, metavar="DOMAIN",
              help="The cluster's DNS domain: a pod's search path is <ns>.svc.<tenant>.DOMAIN, svc.<tenant>.DOMAIN, "
                   "<tenant>.DOMAIN.")
@click.option("--resolv-conf", default="/etc/resolv.conf", show_default=True, metavar="FILE",
              help="The host's resolver configuration, for pods with dnsPolicy Default.")
@click.option("-v", "--v", "verbosity", default=2, show_default=True, type=int, is_flag=False, flag_value=4,
              help="Log verbosity (0: warnings and up, 2: progress, 4: debug); a bare -v means 4.")
def node_agent(kubeconfig: str | None, master: str | None, node_name: str, tenant_servers: str, runtimes: str,
               root_dir: str | None, container_runtime_endpoint: str, libvirt_uri: str, libvirt_domain_type: str,
               vm_image_dir: str,
               cpu: str | None, memory: str | None, max_pods: int,
               lease_duration: int, lease_renew_interval: float, status_update_interval: float,
               sync_frequency: float, relist_interval: float, config_ttl: float, restart_backoff: float,
               restart_backoff_max: float,
               kube_api_qps: float, kube_api_burst: int, address: str, port: int | None, tls_cert_file: str | None,
               tls_private_key_file: str | None, client_ca_file: str | None, authorized_users: str,
               node_ip: str | None, cluster_dns: str, cluster_domain: str, resolv_conf: str,
               verbosity: int) -> None:
    """Run the pods bound to this node, containers and VMs side by side, each through the runtime of its kind.

    Registers the Node (with arktos.io/runtime-container / arktos.io/runtime-vm labels for the runtimes it
    has), renews its Lease, watches its pods on every tenant server, writes their status back to the server
    each came from, and performs the VM Actions addressed to the node.  Serves the pods' logs and exec to the
    API server over HTTPS with client certificates (--tls-cert-file, --tls-private-key-file, --client-ca-file);
    against a plain-HTTP development API server without them, over plain HTTP on 127.0.0.1 only.
    """
    setup_logging(verbosity)
    from arktos.agent.agent import NodeAgent, NodeAgentOptions, RuntimeContext, make_runtime
    from arktos.cli.apiserver import run_forever
    from arktos.client import KubeconfigError, load_many

    config = cluster_config(kubeconfig, master)
    try:
        tenants = load_many(tenant_servers) if tenant_servers.strip() else []
    except KubeconfigError as exc:
        raise click.UsageError(str(exc)) from None
    ctx = RuntimeContext(node_name=node_name,
                         root_dir=root_dir or os.path.join("/var/lib/arktos/node-agent", node_name),
                         libvirt_uri=libvirt_uri, libvirt_domain_type=libvirt_domain_type,
                         vm_image_dir=vm_image_dir, container_runtime_endpoint=container_runtime_endpoint,
                         cluster_dns=_ips(cluster_dns), cluster_domain=cluster_domain.strip(".") or "cluster.local",
                         resolv_conf=resolv_conf)
    names = [n.strip() for n in runtimes.split(",") if n.strip()]
    if not names:
        raise click.BadParameter("name at least one runtime", param_hint="--runtimes")
    try:
        made = [make_runtime(n, ctx) for n in names]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--runtimes") from None
    except ImportError as exc:
        raise click.UsageError(f"a runtime is not available here: {exc}") from None
    kinds = [r.kind for r in made]
    if len(set(kinds)) != len(kinds):
        raise click.BadParameter("at most one runtime per kind (container, vm)", param_hint="--runtimes")
    serve_address, tls = _endpoint(config.server, address, tls_cert_file, tls_private_key_file, client_ca_file,
                                   authorized_users)
    if serve_address == "127.0.0.1" and tls is None and node_ip is None:
        node_ip = "127.0.0.1"  # the API server must reach the loopback-only endpoint
    options = NodeAgentOptions(
        config=config, node_name=node_name, runtimes=made, tenant_servers=tenants, cpu=cpu, memory=memory,
        max_pods=max_pods, lease_duration=lease_duration, lease_renew_interval=lease_renew_interval,
        status_update_interval=status_update_interval, sync_interval=sync_frequency,
        relist_interval=relist_interval, backoff_initial=restart_backoff,
        backoff_max=max(restart_backoff, restart_backoff_max), qps=kube_api_qps, burst=kube_api_burst,
        serve_address=serve_address, serve_port=port if port is not None else (10250 if tls else 0), serve_tls=tls,
        node_ip=node_ip, root_dir=ctx.root_dir, config_ttl=config_ttl)
    run_forever(NodeAgent(options))


def _endpoint(server: str, address: str, cert: str | None, key: str | None, client_ca: str | None,
              users: str) -> tuple[str | None, object]:
    """Where and how the logs/exec endpoint serves: (bind address or None for no endpoint, ServingTLS or None).

    HTTPS when the TLS files are given; plain HTTP on 127.0.0.1 only when the API server itself is the plain-HTTP
    development one; otherwise no endpoint at all (and a warning), never an unauthenticated port.
    """
    import logging

    from arktos.agent.server import ServingTLS

    given = [f for f in (cert, key, client_ca) if f]
    if given and len(given) != 3:
        raise click.UsageError("the logs/exec endpoint needs all of --tls-cert-file, --tls-private-key-file and "
                               "--client-ca-file")
    if given:
        allowed = frozenset(u.strip() for u in users.split(",") if u.strip())
        return address, ServingTLS(cert or "", key or "", client_ca or "", allowed)
    if server.startswith("http://"):
        return "127.0.0.1", None
    logging.getLogger("arktos.agent").warning(
        "no --tls-cert-file/--tls-private-key-file/--client-ca-file: not serving logs and exec, so `kubectl logs` "
        "and `kubectl exec` cannot reach this node's pods")
    return None, None


def _ips(value: str) -> tuple[str, ...]:
    import ipaddress

    out = []
    for part in value.split(","):
        if part.strip():
            try:
                out.append(str(ipaddress.ip_address(part.strip())))
            except ValueError:
                raise click.BadParameter(f"{part.strip()!r} is not an IP address", param_hint="--cluster-dns") from None
    return tuple(out)
