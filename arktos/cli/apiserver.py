"""`arktos apiserver`: flags follow kube-apiserver's names where one exists."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import click

from arktos.cli._config import config_option
from arktos.cli.logs import setup_logging


@click.command()
@config_option
@click.option("--etcd-servers", required=True, metavar="URLS",
              help="Comma-separated etcd client URLs, e.g. http://127.0.0.1:2379.")
@click.option("--etcd-cafile", type=click.Path(exists=True, dir_okay=False), help="CA bundle for etcd's TLS.")
@click.option("--etcd-certfile", type=click.Path(exists=True, dir_okay=False), help="Client certificate for etcd.")
@click.option("--etcd-keyfile", type=click.Path(exists=True, dir_okay=False), help="Client key for etcd.")
@click.option("--bind-address", default="0.0.0.0", show_default=True,
              help="Address(es) of the HTTPS port, comma-separated; addresses the host does not have yet (a pod "
                   "bridge made later) are bound all the same (IP_FREEBIND).")
@click.option("--advertise-address", default=None, metavar="IP",
              help="Where pods reach this server: the endpoint of the default/kubernetes Service.  Default: the "
                   "first bind address, or for 0.0.0.0 the address of the default route's interface.")
@click.option("--secure-port", default=6443, show_default=True, type=click.IntRange(0, 65535),
              help="HTTPS port (needs --tls-cert-file); 0 disables it.")
@click.option("--tls-cert-file", type=click.Path(exists=True, dir_okay=False), help="Serving certificate (PEM).")
@click.option("--tls-private-key-file", type=click.Path(exists=True, dir_okay=False), help="Serving key (PEM).")
@click.option("--client-ca-file", type=click.Path(exists=True, dir_okay=False),
              help="CA that signs client certificates.")
@click.option("--requestheader-client-ca-file", type=click.Path(exists=True, dir_okay=False),
              help="CA of the front proxy whose X-Remote-User/-Group/-Tenant headers are trusted.")
@click.option("--requestheader-allowed-names", default="", metavar="NAMES",
              help="Comma-separated common names allowed as front proxy; empty allows any the CA signed.")
@click.option("--token-auth-file", type=click.Path(exists=True, dir_okay=False),
              help="Static tokens: token,user,uid,\"group1,group2\"[,extra,,tenant] per line.")
@click.option("--service-account-key-file", "service_account_key_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False),
              help="Key(s) that verify service-account tokens (repeatable).")
@click.option("--service-account-issuer", default="https://kubernetes.default.svc", show_default=True,
              help="The iss claim service-account tokens must carry.")
@click.option("--service-account-signing-key-file", type=click.Path(exists=True, dir_okay=False),
              help="Private key that signs bound tokens (TokenRequest: serviceaccounts/{name}/token, what node "
                   "agents ask for projected token volumes); without it that subresource is not served.")
@click.option("--anonymous-auth/--no-anonymous-auth", default=False, show_default=True,
              help="Serve requests without credentials as system:anonymous (still subject to RBAC).")
@click.option("--authorization-mode", default="Node,RBAC", show_default=True,
              help="Comma-separated authorizers, first allow wins: Node, RBAC, AlwaysAllow.")
@click.option("--insecure-port", default=0, show_default=True, type=click.IntRange(0, 65535),
              help="DEVELOPMENT ONLY: plain HTTP port with no authentication; everyone is system:admin. "
                   "Binds to --insecure-bind-address, which must be a loopback address.")
@click.option("--insecure-bind-address", default="127.0.0.1", show_default=True,
              help="Loopback address for --insecure-port.")
@click.option("--etcd-compaction-interval", default=300.0, show_default=True, type=float,
              help="Seconds between compactions of etcd history; 0 disables compaction.")
@click.option("--service-cluster-ip-range", default="10.0.0.0/24", show_default=True, metavar="CIDR",
              help="Addresses for Services' cluster IPs; the first one is kept for the kubernetes service.")
@click.option("--service-node-port-range", default="30000-32767", show_default=True, metavar="LOW-HIGH",
              help="Ports for NodePort and LoadBalancer Services.")
@click.option("--kubelet-client-certificate", type=click.Path(exists=True, dir_okay=False),
              help="Client certificate for node agents (pods/log, pods/exec); without it only development-mode "
                   "agents on 127.0.0.1 are reached, over plain HTTP.")
@click.option("--kubelet-client-key", type=click.Path(exists=True, dir_okay=False),
              help="Key of --kubelet-client-certificate.")
@click.option("--kubelet-certificate-authority", type=click.Path(exists=True, dir_okay=False),
              help="CA that signs the node agents' serving certificates.")
@click.option("--kubelet-preferred-address-types", default="InternalIP,ExternalIP,Hostname", show_default=True,
              metavar="TYPES", help="Which Node address to reach a node agent at, first match wins.")
@click.option("-v", "--v", "verbosity", default=0, type=int,
              help="Log verbosity (0: warnings and up, 2: info, 4: debug).")
def apiserver(etcd_servers: str, etcd_cafile: str | None, etcd_certfile: str | None, etcd_keyfile: str | None,
              bind_address: str, advertise_address: str | None, secure_port: int, tls_cert_file: str | None,
              tls_private_key_file: str | None,
              client_ca_file: str | None, requestheader_client_ca_file: str | None,
              requestheader_allowed_names: str, token_auth_file: str | None,
              service_account_key_files: tuple[str, ...], service_account_issuer: str,
              service_account_signing_key_file: str | None, anonymous_auth: bool,
              authorization_mode: str, insecure_port: int, insecure_bind_address: str,
              etcd_compaction_interval: float, service_cluster_ip_range: str, service_node_port_range: str,
              kubelet_client_certificate: str | None, kubelet_client_key: str | None,
              kubelet_certificate_authority: str | None, kubelet_preferred_address_types: str,
              verbosity: int) -> None:
    """Run the API server: the Kubernetes REST API plus Arktos's tenant paths, stored in etcd."""
    setup_logging(verbosity)
    if insecure_port and not insecure_bind_address.startswith(("127.", "::1", "localhost")):
        raise click.UsageError("--insecure-bind-address must be a loopback address: the insecure port has no "
                               "authentication")
    if not insecure_port and not tls_cert_file:
        raise click.UsageError("nothing to serve: give --tls-cert-file/--tls-private-key-file for HTTPS, or "
                               "--insecure-port for the local development mode")
    if bool(kubelet_client_certificate) != bool(kubelet_client_key):
        raise click.UsageError("--kubelet-client-certificate and --kubelet-client-key go together")
    if tls_cert_file and not tls_private_key_file:
        raise click.UsageError("--tls-cert-file needs --tls-private-key-file")
    import ipaddress

    try:
        ipaddress.ip_network(service_cluster_ip_range, strict=False)
        low, high = (int(p) for p in service_node_port_range.split("-", 1))
    except ValueError as exc:
        raise click.UsageError(f"bad service range: {exc}") from None
    from arktos.apiserver.server import APIServer, ServerConfig

    config = ServerConfig(
        etcd_servers=[s.strip() for s in etcd_servers.split(",") if s.strip()],
        etcd_cafile=etcd_cafile, etcd_certfile=etcd_certfile, etcd_keyfile=etcd_keyfile,
        bind_address=bind_address, advertise_address=advertise_address,
        secure_port=secure_port if tls_cert_file else 0,
        tls_cert_file=tls_cert_file, tls_private_key_file=tls_private_key_file, client_ca_file=client_ca_file,
        insecure_port=insecure_port, insecure_bind_address=insecure_bind_address,
        requestheader_client_ca_file=requestheader_client_ca_file,
        requestheader_allowed_names=[n for n in requestheader_allowed_names.split(",") if n],
        token_auth_file=token_auth_file, service_account_key_files=list(service_account_key_files),
        service_account_issuer=service_account_issuer, anonymous_auth=anonymous_auth,
        service_account_signing_key_file=service_account_signing_key_file,
        authorization_modes=[m.strip() for m in authorization_mode.split(",") if m.strip()],
        compaction_interval=etcd_compaction_interval,
        service_cluster_ip_range=service_cluster_ip_range, service_node_port_range=(low, high),
        kubelet_client_certificate=kubelet_client_certificate, kubelet_client_key=kubelet_client_key,
        kubelet_certificate_authority=kubelet_certificate_authority,
        kubelet_preferred_address_types=tuple(t.strip() for t in kubelet_preferred_address_types.split(",")
                                              if t.strip()),
    )
    run_forever(APIServer(config))


def run_forever(server) -> None:
    """Run a component until SIGTERM/SIGINT, then stop it cleanly."""
    log = logging.getLogger("arktos")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await server.start()
        except Exception as exc:
            log.error("failed to start: %s", exc, exc_info=log.isEnabledFor(logging.DEBUG))
            await server.stop()
            sys.exit(1)
        await stop.wait()
        log.info("shutting down")
        await server.stop()

    asyncio.run(main())
