"""`arktos proxy` on real containers: a Service's ClusterIP and node port reach its pods.

A cluster of its own (etcd, API server, controller manager with the endpoints controller, scheduler, a
node agent on a private containerd whose pods sit on a CNI bridge) plus `arktos proxy` with chains of its
own prefix, so the host's rules and parallel tests are untouched.  Two busybox httpd pods serve their
hostnames behind `kubectl expose`; another pod and the host reach them through the ClusterIP, both
answer; the node port answers on 127.0.0.1; scaled to zero the ClusterIP refuses at once (REJECT); a
deleted Service's rules go; `--cleanup` leaves no chain with the prefix.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from arktos.cluster.etcd import free_port
from arktos.cluster.images import BUSYBOX_IMAGE
from tests.conftest import ComponentProc, start_apiserver, write_dev_kubeconfig
from tests.e2e.test_containers import kubectl, wait_for

pytestmark = [pytest.mark.kubectl, pytest.mark.timeout(180)]

PREFIX = f"KT{os.getpid() % 10000}-"
SERVE = 'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www'


def chains() -> str:
    return "".join(subprocess.run(["iptables-save", "-t", t], capture_output=True, text=True, check=True).stdout
                   for t in ("nat", "filter"))


@pytest.fixture
def cluster(private_etcd, containerd, tmp_path):
    server = start_apiserver(private_etcd.url, tmp_path / "apiserver.log")
    health = free_port()
    procs = [ComponentProc("controller-manager", tmp_path / "cm.log", ["--master", server.url, "--no-leader-elect",
                                                                       "--controllers", "*"]),
             ComponentProc("scheduler", tmp_path / "scheduler.log", ["--master", server.url, "--no-leader-elect"]),
             ComponentProc("node-agent", tmp_path / "agent.log", [
                 "--master", server.url, "--node-name", "svc1", "--runtimes", "containerd",
                 "--container-runtime-endpoint", containerd.socket, "--root-dir", str(tmp_path / "agent"),
                 "--lease-renew-interval", "2", "--status-update-interval", "2", "--sync-frequency", "2"]),
             ComponentProc("proxy", tmp_path / "proxy.log", [
                 "--master", server.url, "--chain-prefix", PREFIX, "--healthz-bind-address", f"127.0.0.1:{health}",
                 "--iptables-min-sync-period", "0.2"])]
    kubeconfig = write_dev_kubeconfig(tmp_path / "kubeconfig", server.url)
    try:
        yield kubeconfig, procs, health
    finally:
        kubectl(kubeconfig, "delete", "deployment,pod", "--all", "--wait=false", check=False)
        for p in reversed(procs):
            p.stop()
        server.stop()
        subprocess.run([sys.executable, "-m", "arktos", "proxy", "--chain-prefix", PREFIX, "--cleanup"],
                       capture_output=True, timeout=30)


def fetch(url: str, timeout: float = 3.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode().strip()


def test_cluster_ip_and_node_port_reach_the_pods(cluster):
    kubeconfig, procs, health = cluster
    k = lambda *a, **kw: kubectl(kubeconfig, *a, **kw)  # noqa: E731
    k("create", "deployment", "web", f"--image={BUSYBOX_IMAGE}", "--replicas=2", "--", "sh", "-c", SERVE)
    k("run", "client", f"--image={BUSYBOX_IMAGE}", "--restart=Never", "--", "sleep", "3600")
    k("expose", "deployment", "web", "--port", "80", "--target-port", "8080")
    k("expose", "deployment", "web", "--name", "web-np", "--type", "NodePort", "--port", "80", "--target-port",
      "8080")
    cluster_ip = k("get", "service", "web", "-o", "jsonpath={.spec.clusterIP}").stdout
    node_port = int(k("get", "service", "web-np", "-o", "jsonpath={.spec.ports[0].nodePort}").stdout)
    k("rollout", "status", "deployment/web", "--timeout=60s", timeout=70)
    k("wait", "pod/client", "--for=condition=Ready", "--timeout=60s", timeout=70)
    names = set(k("get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.name}").stdout.split())
    assert len(names) == 2

    # From another pod: both pods answer through the ClusterIP (random spread; 2 pods, so a few tries do).
    def from_pod() -> str:
        # (no -T: this busybox's wget crashes with a timeout set)
        got = k("exec", "client", "--", "wget", "-qO-", f"http://{cluster_ip}:80", check=False, timeout=20)
        return got.stdout.strip() if got.returncode == 0 else ""
    wait_for(from_pod, 20, "an answer through the ClusterIP from a pod")
    seen = {from_pod() for _ in range(12)}
    assert seen == names, seen
    # From the host (OUTPUT chain), and the node port on 127.0.0.1.
    assert {fetch(f"http://{cluster_ip}:80") for _ in range(12)} == names
    assert fetch(f"http://127.0.0.1:{node_port}") in names
    assert fetch(f"http://127.0.0.1:{health}/healthz").startswith("{")

    # Scaled to zero: the ClusterIP refuses at once (REJECT), it does not hang.
    k("scale", "deployment", "web", "--replicas=0")
    wait_for(lambda: not json.loads(k("get", "endpoints", "web", "-o", "json").stdout).get("subsets"), 30,
             "the endpoints emptied")

    def refused() -> bool:
        started = time.monotonic()
        try:
            socket.create_connection((cluster_ip, 80), timeout=3).close()
        except ConnectionRefusedError:
            return time.monotonic() - started < 1.0
        except OSError:
            return False
        return False
    wait_for(refused, 10, "the ClusterIP refusing")
    got = k("exec", "client", "--", "wget", "-qO-", f"http://{cluster_ip}:80", check=False, timeout=20)
    assert got.returncode != 0 and "refused" in got.stderr, got.stderr

    # A deleted Service's rules go; the other one's stay.
    assert "default/web has no endpoints" in chains()
    k("delete", "service", "web")
    wait_for(lambda: "default/web has no endpoints" not in chains(), 10, "the rules of the deleted service gone")
    assert "default/web-np has no endpoints" in chains()

    # The proxy stops; its rules stay until --cleanup, which leaves nothing with its prefix.
    assert procs[3].stop() in (0, -15)
    assert f":{PREFIX}SERVICES" in chains()
    done = subprocess.run([sys.executable, "-m", "arktos", "proxy", "--chain-prefix", PREFIX, "--cleanup"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert PREFIX not in chains()
