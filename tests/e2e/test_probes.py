"""Probes on real containers: kubectl → API server → node agent → containerd, all in one cluster of its own.

Created at once, watched together (so the whole test takes about as long as its slowest story):

* a busybox httpd pod with an httpGet readinessProbe (by port name) on a file its script touches after
  3 s: running but not ready until then; its Service's Endpoints hold it in notReadyAddresses, then in
  addresses; `kubectl exec rm` of the file takes it back out;
* a pod with an exec livenessProbe `cat /tmp/healthy`: after `kubectl exec rm` the container is killed
  and restarted (restartCount 1) with the events Unhealthy and Killing in kubelet's words;
* a pod with a tcpSocket readinessProbe on a port that opens after 2 s (connection refused before);
* a Deployment whose pod never passes readiness: `kubectl rollout status` times out, nothing available.
"""

from __future__ import annotations

import datetime
import json
import time

import pytest

from arktos.cluster.images import BUSYBOX_IMAGE
from tests.conftest import ComponentProc, start_apiserver, write_dev_kubeconfig
from tests.e2e.test_containers import kubectl, wait_for

pytestmark = [pytest.mark.kubectl, pytest.mark.timeout(180)]

PROBE = {"periodSeconds": 1, "failureThreshold": 1, "timeoutSeconds": 1}


@pytest.fixture
def cluster(private_etcd, containerd, tmp_path):
    server = start_apiserver(private_etcd.url, tmp_path / "apiserver.log")
    procs = [ComponentProc("controller-manager", tmp_path / "cm.log", ["--master", server.url, "--no-leader-elect",
                                                                       "--controllers", "*"]),
             ComponentProc("scheduler", tmp_path / "scheduler.log", ["--master", server.url, "--no-leader-elect"]),
             ComponentProc("node-agent", tmp_path / "agent.log", [
                 "--master", server.url, "--node-name", "probe1", "--runtimes", "containerd",
                 "--container-runtime-endpoint", containerd.socket, "--root-dir", str(tmp_path / "agent"),
                 "--lease-renew-interval", "2", "--status-update-interval", "2", "--sync-frequency", "2"])]
    kubeconfig = write_dev_kubeconfig(tmp_path / "kubeconfig", server.url)
    try:
        yield kubeconfig, procs
    finally:
        kubectl(kubeconfig, "delete", "deployment,pod", "--all", "--wait=false", "--grace-period=0", check=False)
        for p in reversed(procs):
            p.stop()
        server.stop()


def pod(name: str, script: str, **container) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"terminationGracePeriodSeconds": 2, "containers": [
                {"name": "c", "image": BUSYBOX_IMAGE, "command": ["sh", "-c", script], **container}]}}


WEB = ('mkdir -p /www && echo hi > /www/index.html && (sleep 3; touch /www/ready) & '
       'exec httpd -f -p 8080 -h /www')
LIVE = 'touch /tmp/healthy; trap "exit 143" TERM; while true; do sleep 1; done'
TCP = 'sleep 2; exec httpd -f -p 8081 -h /tmp'
NEVER = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "never"}, "spec": {
    "replicas": 1, "selector": {"matchLabels": {"app": "never"}},
    "template": {"metadata": {"labels": {"app": "never"}}, "spec": {"terminationGracePeriodSeconds": 0,
                                                                     "containers": [{
        "name": "c", "image": BUSYBOX_IMAGE, "command": ["sleep", "3600"],
        "readinessProbe": {"exec": {"command": ["false"]}, **PROBE}}]}}}}
SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}}


def _time(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_readiness_liveness_and_tcp_probes_on_containers(cluster):
    kubeconfig, _ = cluster
    k = lambda *a, **kw: kubectl(kubeconfig, *a, **kw)  # noqa: E731

    def get(name: str) -> dict:
        return json.loads(k("get", "pod", name, "-o", "json").stdout)

    def cstatus(name: str) -> dict:
        return (get(name)["status"].get("containerStatuses") or [{}])[0]

    def cond(p: dict, type_: str) -> dict:
        return next((c for c in p["status"].get("conditions") or [] if c["type"] == type_), {})

    wait_for(lambda: k("get", "node", "probe1", "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                       check=False).stdout == "True", 20, "node probe1 Ready")
    items = [pod("web", WEB, ports=[{"name": "http", "containerPort": 8080}],
                 readinessProbe={"httpGet": {"path": "/ready", "port": "http",
                                             "httpHeaders": [{"name": "X-Probe", "value": "1"}]}, **PROBE}),
             pod("live", LIVE, livenessProbe={"exec": {"command": ["cat", "/tmp/healthy"]}, **PROBE,
                                              "terminationGracePeriodSeconds": 1}),
             pod("tcp", TCP, readinessProbe={"tcpSocket": {"port": 8081}, **PROBE}),
             NEVER, SERVICE]
    k("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))

    # web: running but not ready, and in the Service's notReadyAddresses, until /www/ready exists.
    def web_running_not_ready():
        p = get("web")
        cs = (p["status"].get("containerStatuses") or [{}])[0]
        return p if "running" in cs.get("state", {}) and not cs["ready"] else None
    p = wait_for(web_running_not_ready, 30, "web running, not ready")
    assert cond(p, "Ready")["status"] == "False" and cond(p, "ContainersReady")["status"] == "False"
    ip = p["status"]["podIP"]

    def endpoints() -> dict:
        subsets = json.loads(k("get", "endpoints", "web", "-o", "json").stdout).get("subsets") or [{}]
        return {key: [a["ip"] for a in subsets[0].get(key) or []] for key in ("addresses", "notReadyAddresses")}
    wait_for(lambda: endpoints() == {"addresses": [], "notReadyAddresses": [ip]}, 10, "web in notReadyAddresses")

    # live: rm the file it checks; killed, restarted once, then healthy again.
    wait_for(lambda: "running" in cstatus("live").get("state", {}), 20, "live running")
    k("exec", "live", "--", "rm", "/tmp/healthy")

    p = wait_for(lambda: (lambda p: p if cond(p, "Ready").get("status") == "True" else None)(get("web")), 15,
                 "web Ready")
    cs = p["status"]["containerStatuses"][0]
    assert cs["ready"] and _time(cond(p, "Ready")["lastTransitionTime"]) - _time(cs["state"]["running"]["startedAt"]) \
        >= 2, p["status"]
    wait_for(lambda: endpoints() == {"addresses": [ip], "notReadyAddresses": []}, 10, "web in addresses")

    cs = wait_for(lambda: (lambda c: c if c.get("restartCount") == 1 and "running" in c["state"] else None)(
        cstatus("live")), 20, "live restarted once")
    assert cs["lastState"]["terminated"]["exitCode"] == 143

    # tcp: ready once its port opened; refused before.
    assert wait_for(lambda: cstatus("tcp").get("ready"), 15, "tcp ready")

    # web: the file goes, so does readiness and its place in addresses.
    k("exec", "web", "--", "rm", "/www/ready")
    wait_for(lambda: endpoints() == {"addresses": [], "notReadyAddresses": [ip]}, 10, "web out of addresses")

    # never: the rollout never completes.
    started = time.monotonic()
    rollout = k("rollout", "status", "deployment/never", "--timeout=2s", check=False, timeout=30)
    assert rollout.returncode != 0 and "timed out" in rollout.stderr, (rollout.stdout, rollout.stderr)
    assert time.monotonic() - started < 15
    d = json.loads(k("get", "deployment", "never", "-o", "json").stdout)["status"]
    assert not d.get("availableReplicas") and not d.get("readyReplicas") and d.get("replicas") == 1

    # The story in events, in kubelet's words.
    events = json.loads(k("get", "events", "-o", "json").stdout)["items"]
    said = {(e["involvedObject"]["name"], e["type"], e["reason"], e["message"].strip()) for e in events}
    assert ("live", "Warning", "Unhealthy",
            "Liveness probe failed: cat: can't open '/tmp/healthy': No such file or directory") in said, said
    assert ("live", "Normal", "Killing", "Container c failed liveness probe, will be restarted") in said
    assert ("web", "Warning", "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 404") in said
    tcp_ip = get("tcp")["status"]["podIP"]
    assert ("tcp", "Warning", "Unhealthy",
            f"Readiness probe failed: dial tcp {tcp_ip}:8081: connect: connection refused") in said, said
    assert any(e[0].startswith("never-") and e[2] == "Unhealthy" and e[3] == "Readiness probe failed:" for e in said)
