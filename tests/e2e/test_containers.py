"""Real containers end to end: kubectl → API server → scheduler → node agent → containerd → runc.

A cluster of its own (etcd, API server, controller manager, scheduler and an `arktos node-agent`
with the containerd runtime on a private containerd) runs a Deployment of the locally built busybox
image.  What a user does with it: the rollout reaches 3/3, `kubectl logs` and `kubectl exec` work
(stdin to its EOF too, so `kubectl exec -i ... < file` and `kubectl cp` end),
pods reach each other over the bridge, a deleted pod is replaced, and a container whose process is
killed is restarted, with `logs --previous` showing the one before.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from arktos.cluster.images import BUSYBOX_IMAGE
from tests.conftest import ComponentProc, start_apiserver, write_dev_kubeconfig
from tests.e2e.conftest import kubectl_binary

pytestmark = [pytest.mark.kubectl, pytest.mark.timeout(240)]

SCRIPT = 'echo "started $(hostname)"; trap "echo bye; exit 0" TERM; while true; do sleep 1; done'


@pytest.fixture
def cluster(private_etcd, containerd, tmp_path):
    server = start_apiserver(private_etcd.url, tmp_path / "apiserver.log")
    procs = [ComponentProc("controller-manager", tmp_path / "cm.log", ["--master", server.url, "--no-leader-elect"]),
             ComponentProc("scheduler", tmp_path / "scheduler.log", ["--master", server.url, "--no-leader-elect"]),
             ComponentProc("node-agent", tmp_path / "agent.log", [
                 "--master", server.url, "--node-name", "box1", "--runtimes", "containerd",
                 "--container-runtime-endpoint", containerd.socket, "--root-dir", str(tmp_path / "agent"),
                 "--lease-renew-interval", "2", "--status-update-interval", "2", "--sync-frequency", "2",
                 "--restart-backoff", "1"])]
    kubeconfig = write_dev_kubeconfig(tmp_path / "kubeconfig", server.url)
    try:
        yield kubeconfig, procs
    finally:
        subprocess.run([kubectl_binary(32), "--kubeconfig", str(kubeconfig), "delete", "deployment", "--all",
                        "--wait=false"], capture_output=True, timeout=30)
        for p in reversed(procs):
            p.stop()
        server.stop()


def kubectl(kubeconfig: Path, *args: str, check: bool = True, input: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
    proc = subprocess.run([kubectl_binary(32), "--kubeconfig", str(kubeconfig), "--cache-dir",
                           str(kubeconfig) + ".cache", *args], capture_output=True, text=True, input=input,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}\n{proc.stdout}")
    return proc


def kubectl_bytes(kubeconfig: Path, *args: str, input: bytes | None = None,
                  timeout: float = 60) -> subprocess.CompletedProcess:
    """kubectl with bytes in and out (no text decoding), its exit code left to the caller."""
    return subprocess.run([kubectl_binary(32), "--kubeconfig", str(kubeconfig), "--cache-dir",
                           str(kubeconfig) + ".cache", *args], capture_output=True, input=input, timeout=timeout)


def wait_for(check, timeout: float = 60.0, what: str = ""):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"{what} not true after {timeout}s; last: {last!r}")


def pods(kubeconfig: Path) -> list[dict]:
    out = kubectl(kubeconfig, "get", "pods", "-l", "app=web", "-o", "json").stdout
    return [p for p in json.loads(out)["items"] if not p["metadata"].get("deletionTimestamp")]


def running(kubeconfig: Path, n: int) -> list[dict] | None:
    ps = pods(kubeconfig)
    ok = [p for p in ps if p["status"].get("phase") == "Running"
          and all(c.get("ready") for c in p["status"].get("containerStatuses") or [{}])]
    return ok if len(ok) == n and len(ps) == n else None


def container_pid(containerd, container_id: str) -> int:
    out = subprocess.run(["ctr", "--address", containerd.socket, "--namespace", "k8s.io", "task", "ls"],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines()[1:]:
        task, pid, *_ = line.split()
        if task == container_id:
            return int(pid)
    raise AssertionError(f"no task {container_id} in containerd:\n{out}")


def test_a_busybox_deployment_runs_and_is_usable_with_kubectl(cluster, containerd):
    kubeconfig, procs = cluster
    wait_for(lambda: kubectl(kubeconfig, "get", "node", "box1", "-o",
                             "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check=False).stdout == "True",
             what="node box1 Ready")
    # The `kubectl` on PATH (a dispatcher that picks the client matching the server's version).
    subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "create", "deployment", "web",
                    f"--image={BUSYBOX_IMAGE}", "--replicas=3", "--", "sh", "-c", SCRIPT],
                   check=True, capture_output=True, timeout=60)
    kubectl(kubeconfig, "rollout", "status", "deployment/web", "--timeout=120s", timeout=130)
    ready = kubectl(kubeconfig, "get", "deployment", "web", "-o", "jsonpath={.status.readyReplicas}").stdout
    assert ready == "3"
    web = wait_for(lambda: running(kubeconfig, 3), what="3 running pods")
    names = sorted(p["metadata"]["name"] for p in web)
    ips = [p["status"]["podIP"] for p in web]
    assert len(set(ips)) == 3 and all(ip.startswith(containerd.subnet.rsplit(".", 2)[0]) for ip in ips), ips

    # Logs and exec through the API server and the agent.
    first = names[0]
    wait_for(lambda: f"started {first}" in kubectl(kubeconfig, "logs", first).stdout, what="the pod's log")
    assert kubectl(kubeconfig, "exec", first, "--", "echo", "hi").stdout == "hi\n"
    failed = kubectl(kubeconfig, "exec", first, "--", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert (failed.returncode, failed.stdout, failed.stderr.splitlines()[0]) == (3, "out\n", "err")
    assert kubectl(kubeconfig, "exec", first, "--", "cat", "/etc/hostname").stdout.strip() == first
    # Stdin to its end: kubectl closes stdin (v5) and the agent, on SPDY to containerd, gives the command EOF.
    blob = os.urandom(100 * 1024)
    cat = kubectl_bytes(kubeconfig, "exec", "-i", first, "--", "cat", input=blob)
    assert (cat.returncode, len(cat.stdout), cat.stdout == blob) == (0, len(blob), True), cat.stderr
    wc = kubectl_bytes(kubeconfig, "exec", "-i", first, "--", "sh", "-c", "wc -c", input=blob)
    assert (wc.returncode, wc.stdout.split()) == (0, [str(len(blob)).encode()]), wc.stderr
    # kubectl cp is tar over exec stdin (in) and stdout (out).
    local = kubeconfig.parent / "payload.bin"
    local.write_bytes(blob[:50 * 1024])
    kubectl(kubeconfig, "cp", str(local), f"{first}:/tmp/x")
    assert kubectl_bytes(kubeconfig, "exec", first, "--", "cat", "/tmp/x").stdout == local.read_bytes()
    kubectl(kubeconfig, "cp", f"{first}:/tmp/x", str(kubeconfig.parent / "back.bin"))
    assert (kubeconfig.parent / "back.bin").read_bytes() == local.read_bytes()
    # A TTY through the whole chain, resized (the official client sends resize messages without a terminal).
    from kubernetes import config as kube_config
    from kubernetes.client import CoreV1Api
    from kubernetes.stream import stream as kube_stream

    core = CoreV1Api(kube_config.new_client_from_config(str(kubeconfig)))
    tty = kube_stream(core.connect_get_namespaced_pod_exec, first, "default",
                      command=["sh", "-c", "sleep 0.5; stty size"], stdin=True, stdout=True, stderr=False,
                      tty=True, _preload_content=False)
    tty.write_channel(4, json.dumps({"Width": 123, "Height": 45}))
    tty.run_forever(timeout=20)
    assert (tty.read_stdout().strip(), tty.returncode) == ("45 123", 0)
    # Pod to pod over the bridge.
    other_ip = next(p["status"]["podIP"] for p in web if p["metadata"]["name"] != first)
    ping = kubectl(kubeconfig, "exec", first, "--", "ping", "-c", "1", "-W", "5", other_ip, check=False)
    assert ping.returncode == 0 and "1 packets received" in ping.stdout, ping.stdout + ping.stderr

    # A deleted pod is replaced (the container saw TERM and said bye on its way out).
    kubectl(kubeconfig, "delete", "pod", first, "--wait=true", timeout=90)
    after = wait_for(lambda: running(kubeconfig, 3), what="3 running pods after a delete")
    assert first not in {p["metadata"]["name"] for p in after}

    # A killed container process is noticed and the container restarted, its last output kept.
    victim = after[0]
    name = victim["metadata"]["name"]
    cid = victim["status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://")
    os.kill(container_pid(containerd, cid), signal.SIGKILL)

    def restarted():
        p = json.loads(kubectl(kubeconfig, "get", "pod", name, "-o", "json").stdout)
        [cs] = p["status"].get("containerStatuses") or [{}]
        return cs.get("restartCount") == 1 and "running" in cs.get("state", {}) and cs
    cs = wait_for(restarted, what="the killed container restarted")
    assert cs["lastState"]["terminated"]["exitCode"] == 137
    assert f"started {name}" in kubectl(kubeconfig, "logs", name, "--previous").stdout
    events = kubectl(kubeconfig, "get", "events", "--field-selector", f"involvedObject.name={name}", "-o",
                     "jsonpath={.items[*].reason}").stdout.split()
    assert {"Scheduled", "Pulled", "Created", "Started"} <= set(events), events

    # Init containers run first, in order; `kubectl get` shows the pod Running once they are done.
    init_pod = json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "with-init"}, "spec": {
        "terminationGracePeriodSeconds": 1, "volumes": [{"name": "w", "emptyDir": {}}],
        "initContainers": [{"name": "prepare", "image": BUSYBOX_IMAGE, "volumeMounts": [{"name": "w",
                                                                                        "mountPath": "/w"}],
                            "command": ["sh", "-c", "sleep 1; echo prepared > /w/state"]}],
        "containers": [{"name": "app", "image": BUSYBOX_IMAGE, "volumeMounts": [{"name": "w", "mountPath": "/w"}],
                        "command": ["sh", "-c", "cat /w/state; sleep 3600"]}]}})
    kubectl(kubeconfig, "apply", "-f", "-", input=init_pod)
    seen_init = wait_for(lambda: "Init:0/1" in kubectl(kubeconfig, "get", "pod", "with-init").stdout, 20,
                         "the pod shown as initializing")
    assert seen_init
    kubectl(kubeconfig, "wait", "pod/with-init", "--for=condition=Ready", "--timeout=60s", timeout=70)
    got = json.loads(kubectl(kubeconfig, "get", "pod", "with-init", "-o", "json").stdout)
    [init] = got["status"]["initContainerStatuses"]
    assert init["state"]["terminated"]["reason"] == "Completed" and got["status"]["phase"] == "Running"
    wait_for(lambda: "prepared" in kubectl(kubeconfig, "logs", "with-init").stdout, 20, "the app's log")
    assert procs[2].proc.poll() is None

    # An agent restart adopts what runs: same containers, same restart counts, nothing killed.
    def containers() -> dict[str, tuple[str, int]]:
        out = json.loads(kubectl(kubeconfig, "get", "pods", "-A", "-o", "json").stdout)["items"]
        return {p["metadata"]["name"]: (cs["containerID"], cs["restartCount"]) for p in out
                for cs in p["status"].get("containerStatuses") or [] if "running" in cs.get("state", {})}
    before = containers()
    assert len(before) == 4, before
    agent = procs[2]
    assert agent.stop() == 0
    procs[2] = ComponentProc("node-agent", agent.log, agent.args)
    procs[2].wait_for_log("node agent for box1 started", 30)
    time.sleep(3)  # a few relists and syncs of the new agent
    assert containers() == before
