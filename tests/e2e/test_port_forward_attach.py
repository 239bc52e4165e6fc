"""`kubectl port-forward`, `kubectl attach` and `kubectl run -i --rm` on real containers.

kubectl → API server (pods/portforward: a WebSocket tunnelling SPDY from kubectl 1.31 on, an SPDY/3.1
upgrade from 1.30; pods/attach: v5.channel.k8s.io) → node agent → containerd's streaming server
(CRI PortForward / Attach).  The cluster is test_containers' own (etcd, API server, controller
manager, scheduler, `arktos node-agent --runtimes containerd`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import selectors
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from arktos.cluster.images import BUSYBOX_IMAGE
from tests.e2e.conftest import kubectl_binary
from tests.e2e.test_containers import cluster, kubectl, wait_for  # noqa: F401  (cluster is a fixture)

pytestmark = [pytest.mark.kubectl, pytest.mark.timeout(180)]

SERVER = ("mkdir -p /www; echo hello from srv > /www/index.html; head -c 3000000 /dev/urandom > /www/big; "
          "echo serving; exec httpd -f -p 8080 -h /www")
READER = 'echo ready; while read line; do echo "got $line"; done'


def pod(name: str, command: str, **container) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "c", "image": BUSYBOX_IMAGE, "command": ["sh", "-c", command], **container}]}})


class PortForward:
    """`kubectl port-forward pod/NAME :REMOTE` in the background; `.port` is the local port it picked."""

    def __init__(self, kubeconfig: Path, target: str, remote: int, minor: int = 32) -> None:
        self.proc = subprocess.Popen(
            [kubectl_binary(minor), "--kubeconfig", str(kubeconfig), "--cache-dir", str(kubeconfig) + ".cache",
             "port-forward", target, f":{remote}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.stderr = b""
        sel = selectors.DefaultSelector()
        assert self.proc.stdout is not None
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        out = b""
        deadline = time.monotonic() + 20
        while b"\n" not in out and time.monotonic() < deadline and self.proc.poll() is None:
            if sel.select(0.2):
                out += self.proc.stdout.read1(4096)
        m = re.search(rb"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)", out)
        if m is None:
            self.stop()
            raise AssertionError(f"kubectl port-forward did not start: {out!r} {self.stderr!r}")
        self.port = int(m.group(1))

    def stop(self) -> bytes:
        if self.proc.poll() is None:
            self.proc.terminate()
        _, err = self.proc.communicate(timeout=10)
        self.stderr += err
        return self.stderr


def get(port: int, path: str = "/index.html") -> str:
    return get_bytes(port, path).decode()


def get_bytes(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=20) as r:
        return r.read()


def test_port_forward_attach_and_run_on_real_containers(cluster, containerd):  # noqa: F811
    kubeconfig, _ = cluster
    wait_for(lambda: kubectl(kubeconfig, "get", "node", "box1", "-o",
                             "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check=False).stdout == "True",
             what="node box1 Ready")
    kubectl(kubeconfig, "apply", "-f", "-", input=pod("srv", SERVER))
    kubectl(kubeconfig, "apply", "-f", "-", input=pod("att", READER, stdin=True))
    kubectl(kubeconfig, "wait", "pod/srv", "pod/att", "--for=condition=Ready", "--timeout=60s", timeout=70)

    # kubectl 1.32: the WebSocket tunnel.  Two connections at once through one forward.
    fwd = PortForward(kubeconfig, "pod/srv", 8080)
    try:
        assert get(fwd.port) == "hello from srv\n"
        a, b = (socket.create_connection(("127.0.0.1", fwd.port), timeout=10) for _ in range(2))
        with a, b:
            for s in (b, a):
                s.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
            replies = []
            for s in (a, b):
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
                replies.append(data)
        assert all(r.startswith(b"HTTP/1.") and r.endswith(b"hello from srv\n") for r in replies), replies
        results: list[str] = []
        threads = [threading.Thread(target=lambda: results.append(get(fwd.port))) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert results == ["hello from srv\n"] * 4
        big = get_bytes(fwd.port, "/big")  # 3 MB: many SPDY frames, kubectl and containerd's windows
        want = kubectl(kubeconfig, "exec", "srv", "--", "sha256sum", "/www/big").stdout.split()[0]
        assert (len(big), hashlib.sha256(big).hexdigest()) == (3000000, want)
    finally:
        fwd.stop()
    # kubectl 1.30: an SPDY/3.1 upgrade, which the API server takes over from aiohttp and pipes; 1.33 as 1.32.
    for minor in (30, 33):
        other = PortForward(kubeconfig, "pod/srv", 8080, minor=minor)
        try:
            assert get(other.port) == "hello from srv\n"
        finally:
            other.stop()
    metrics = kubectl(kubeconfig, "get", "--raw", "/metrics").stdout
    # kubectl 1.32's and 1.33's WebSockets (GET) and 1.30's SPDY upgrade (POST, verb create).  (The code of a
    # session the client ended is whatever its end was: the WebSocket's handler is cancelled when kubectl goes.)
    verbs: dict[str, float] = {}
    for verb, n in re.findall(r'apiserver_request_total\{code="\d+",group="",resource="pods",'
                              r'subresource="portforward",verb="(\w+)"\} (\S+)', metrics):
        verbs[verb] = verbs.get(verb, 0) + float(n)
    assert verbs == {"CREATE": 1, "GET": 2}, verbs
    # Nothing listens on 8081: the connection ends at once and kubectl says why (not a hang).
    closed = PortForward(kubeconfig, "pod/srv", 8081)
    try:
        with socket.create_connection(("127.0.0.1", closed.port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            s.settimeout(10)
            with contextlib.suppress(ConnectionResetError):
                assert s.recv(4096) == b""
        wait_for(lambda: closed.proc.poll() is not None or None, 10, "kubectl port-forward to give up")
    finally:
        err = closed.stop().decode()
    assert "error forwarding port 8081" in err and "connection refused" in err, err

    # attach: the main process's output, and stdin to it (what it reads shows in its log).
    seen = subprocess.run([kubectl_binary(32), "--kubeconfig", str(kubeconfig), "attach", "att", "-i"],
                          input=b"one\ntwo\n", capture_output=True, timeout=30)
    assert seen.returncode == 0, seen.stderr
    wait_for(lambda: "got two" in kubectl(kubeconfig, "logs", "att").stdout, 10, "attached stdin in the log")
    assert kubectl(kubeconfig, "logs", "att").stdout == "ready\ngot one\ngot two\n"
    watch = subprocess.Popen([kubectl_binary(32), "--kubeconfig", str(kubeconfig), "attach", "att"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1.5)  # attached: only what the main process writes from now on reaches it
        # Something the main process (pid 1) prints: written to its stdout from an exec.
        kubectl(kubeconfig, "exec", "att", "--", "sh", "-c", "echo from-exec > /proc/1/fd/1")
        time.sleep(1)
    finally:
        watch.terminate()
        out, _ = watch.communicate(timeout=10)
    assert b"from-exec" in out, out

    # kubectl run -i --rm: a pod with stdin (stdinOnce), attached, its stdin closed at our EOF, removed.
    run = subprocess.run([kubectl_binary(32), "--kubeconfig", str(kubeconfig), "run", "-i", "--rm",
                          "--restart=Never", f"--image={BUSYBOX_IMAGE}", "t", "--", "sh", "-c",
                          "read x; echo got $x"], input=b"hello\n", capture_output=True, timeout=90)
    assert run.returncode == 0, run.stderr
    assert b"got hello" in run.stdout, (run.stdout, run.stderr)
    gone = kubectl(kubeconfig, "get", "pod", "t", check=False)
    assert gone.returncode != 0 and 'pods "t" not found' in gone.stderr
