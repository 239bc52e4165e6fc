"""Cluster DNS on real containers: pods find their tenant's Services by name, and only theirs.

A cluster of its own as in test_service_proxy (etcd, API server with a service range of its own, controller
manager, scheduler, a node agent on a private containerd with `--cluster-dns`, `arktos proxy` with chains of
its own prefix) plus `arktos dns` listening on the pod bridge's gateway, behind the system tenant's
kube-system/kube-dns Service (the range's 10th address, as kubeadm's) whose Endpoints name that address.
Tenant acme runs busybox httpd behind Service `web` and a client pod; tenant beta a client pod of its own.
The acme client's `nslookup web`, `wget -qO- http://web` and `nslookup web.other-ns` work; beta's client
resolves neither `web` nor acme's full name.
"""

from __future__ import annotations

import ipaddress
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from arktos.cluster.etcd import free_port
from arktos.cluster.images import BUSYBOX_IMAGE
from tests.conftest import ComponentProc, start_apiserver, write_dev_kubeconfig
from tests.e2e.test_containers import kubectl, wait_for

pytestmark = [pytest.mark.kubectl, pytest.mark.timeout(180)]

PREFIX = f"KD{os.getpid() % 10000}-"
SERVE = 'mkdir -p /www && echo "hello from $(hostname)" > /www/index.html && exec httpd -f -p 8080 -h /www'


def tenant_kubeconfig(dev: Path, tenant: str) -> Path:
    """The development kubeconfig acting as `admin` of `tenant` (impersonation with the tenant extra)."""
    cfg = yaml.safe_load(dev.read_text())
    cfg["users"][0]["user"] = {"as": "admin", "as-user-extra": {"arktos.io/tenant": [tenant]}}
    path = dev.with_name(f"{tenant}.kubeconfig")
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def cluster(private_etcd, containerd, tmp_path):
    # A service range of its own: iptables are host-wide, and parallel clusters use 10.0.0.0/24.
    cidr = ipaddress.ip_network(f"10.{100 + os.getpid() % 100}.{random.randint(0, 255)}.0/24")
    dns_ip, gateway = str(cidr[10]), str(ipaddress.ip_network(containerd.subnet)[1])
    dns_port, dns_health = free_port(), free_port()
    server = start_apiserver(private_etcd.url, tmp_path / "apiserver.log", "--service-cluster-ip-range", str(cidr))
    procs = [ComponentProc("controller-manager", tmp_path / "cm.log", ["--master", server.url, "--no-leader-elect",
                                                                       "--controllers", "*"]),
             ComponentProc("scheduler", tmp_path / "scheduler.log", ["--master", server.url, "--no-leader-elect"]),
             ComponentProc("node-agent", tmp_path / "agent.log", [
                 "--master", server.url, "--node-name", "dns1", "--runtimes", "containerd",
                 "--container-runtime-endpoint", containerd.socket, "--root-dir", str(tmp_path / "agent"),
                 "--lease-renew-interval", "2", "--status-update-interval", "2", "--sync-frequency", "2",
                 "--cluster-dns", dns_ip]),
             ComponentProc("proxy", tmp_path / "proxy.log", [
                 "--master", server.url, "--chain-prefix", PREFIX, "--healthz-bind-address", "127.0.0.1:0",
                 "--iptables-min-sync-period", "0.2"]),
             # On the bridge's gateway (bound before the bridge exists), where pods reach the host.
             ComponentProc("dns", tmp_path / "dns.log", [
                 "--master", server.url, "--bind-address", gateway, "--port", str(dns_port),
                 "--health-bind-address", f"127.0.0.1:{dns_health}", "--service-cluster-ip-range", str(cidr)])]
    kubeconfig = write_dev_kubeconfig(tmp_path / "kubeconfig", server.url)
    try:
        yield kubeconfig, dns_ip, gateway, dns_port
    finally:
        for t in ("acme", "beta"):
            kubectl(tenant_kubeconfig(kubeconfig, t), "delete", "deployment,pod", "--all", "--wait=false",
                    check=False)
        for p in reversed(procs):
            p.stop()
        server.stop()
        subprocess.run([sys.executable, "-m", "arktos", "proxy", "--chain-prefix", PREFIX, "--cleanup"],
                       capture_output=True, timeout=30)


def test_pods_resolve_their_tenants_services_by_name(cluster):
    kubeconfig, dns_ip, gateway, dns_port = cluster
    system = lambda *a, **kw: kubectl(kubeconfig, *a, **kw)  # noqa: E731
    ports = [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": dns_port},
             {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": dns_port}]
    manifests = [
        {"apiVersion": "v1", "kind": "Tenant", "metadata": {"name": "acme"}},
        {"apiVersion": "v1", "kind": "Tenant", "metadata": {"name": "beta"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kube-dns", "namespace": "kube-system"},
         "spec": {"clusterIP": dns_ip, "ports": ports}},
        {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "kube-dns", "namespace": "kube-system"},
         "subsets": [{"addresses": [{"ip": gateway}],
                      "ports": [{k: v for k, v in p.items() if k != "targetPort"} | {"port": dns_port}
                                for p in ports]}]}]
    system("apply", "-f", "-", input="\n---\n".join(yaml.safe_dump(m) for m in manifests))
    acme_cfg, beta_cfg = tenant_kubeconfig(kubeconfig, "acme"), tenant_kubeconfig(kubeconfig, "beta")
    acme = lambda *a, **kw: kubectl(acme_cfg, *a, **kw)  # noqa: E731
    beta = lambda *a, **kw: kubectl(beta_cfg, *a, **kw)  # noqa: E731
    for k in (acme, beta):  # the tenant controller makes each tenant's namespaces
        wait_for(lambda k=k: k("get", "namespace", "default", check=False).returncode == 0, 20, "default namespace")
    acme("create", "deployment", "web", f"--image={BUSYBOX_IMAGE}", "--", "sh", "-c", SERVE)
    acme("expose", "deployment", "web", "--port", "80", "--target-port", "8080")
    acme("create", "namespace", "other-ns")
    acme("create", "service", "clusterip", "web", "-n", "other-ns", "--tcp", "80:8080")
    for k in (acme, beta):
        k("run", "client", f"--image={BUSYBOX_IMAGE}", "--restart=Never", "--", "sleep", "3600")
    web_ip = acme("get", "service", "web", "-o", "jsonpath={.spec.clusterIP}").stdout
    other_ip = acme("get", "service", "web", "-n", "other-ns", "-o", "jsonpath={.spec.clusterIP}").stdout
    acme("rollout", "status", "deployment/web", "--timeout=60s", timeout=70)
    for k in (acme, beta):
        k("wait", "pod/client", "--for=condition=Ready", "--timeout=60s", timeout=70)

    # The pod's resolver: the DNS ClusterIP and its tenant's search path.
    resolv = acme("exec", "client", "--", "cat", "/etc/resolv.conf").stdout
    assert f"nameserver {dns_ip}" in resolv and "options ndots:5" in resolv, resolv
    assert "search default.svc.acme.cluster.local svc.acme.cluster.local acme.cluster.local" in resolv, resolv

    def lookup(k, name: str) -> subprocess.CompletedProcess:
        return k("exec", "client", "--", "nslookup", name, check=False, timeout=20)
    # The first answer waits for the proxy's rules and the DNS server's view of the new pods.
    wait_for(lambda: web_ip in lookup(acme, "web").stdout, 20, "nslookup web from acme's pod")
    page = acme("exec", "client", "--", "wget", "-qO-", "http://web", timeout=20).stdout
    assert page.startswith("hello from web-"), page
    # busybox's nslookup searches dotless names only; its wget resolves through libc, which searches them all
    # (ndots:5) and names the address it could not reach: web in other-ns has no endpoints (REJECT).
    got = acme("exec", "client", "--", "wget", "-qO-", "http://web.other-ns", check=False, timeout=20)
    assert got.returncode != 0 and f"({other_ip})" in got.stderr, got.stderr
    assert other_ip in lookup(acme, "web.other-ns.svc.acme.cluster.local").stdout
    assert web_ip in lookup(acme, "web.default.svc.cluster.local").stdout

    # Tenant beta: no `web` of its own, and acme's is not there for it under any name.
    for name in ("web", "web.default.svc.acme.cluster.local", "web.default.svc.cluster.local"):
        got = lookup(beta, name)
        assert got.returncode != 0 and web_ip not in got.stdout, (name, got.stdout, got.stderr)
        assert "NXDOMAIN" in got.stdout + got.stderr, (name, got.stdout, got.stderr)
    for url in ("http://web", "http://web.default", "http://web.default.svc.acme.cluster.local"):
        got = beta("exec", "client", "--", "wget", "-qO-", url, check=False, timeout=20)
        assert got.returncode != 0 and "bad address" in got.stderr, (url, got.stderr)
