"""`kubectl logs` and `kubectl exec` through the API server process to a node agent's endpoint.

The API server is the real development-mode process; the agent runs in the test's process so a
test can make a hollow container exit (for --previous and for a follow that ends) and so exec
reaches `ProcessExecRuntime`, whose streaming server runs the command as a local process and
speaks the real channel protocol.  The client is the real kubectl 1.32, which speaks
v5.channel.k8s.io over WebSocket for exec.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from pathlib import Path

import aiohttp
import pytest

from arktos.agent.agent import NodeAgent, NodeAgentOptions
from arktos.agent.runtimes.hollow import HollowRuntime
from arktos.client import ClusterConfig
from tests.conftest import eventually, write_dev_kubeconfig
from tests.e2e.conftest import kubectl_binary
from tests.integration.test_api_http import call
from tests.streaming import ProcessExecRuntime

pytestmark = pytest.mark.kubectl

UPGRADE = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": "v5.channel.k8s.io"}
STAMP = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ")


async def kubectl(kubeconfig: Path, *args: str, input: bytes | None = None,
                  timeout: float = 30) -> tuple[int, bytes, bytes]:
    """Run kubectl 1.32 without blocking the loop (the agent under test lives in this process)."""
    proc = await asyncio.create_subprocess_exec(
        kubectl_binary(32), "--kubeconfig", str(kubeconfig), "--cache-dir", str(kubeconfig) + ".cache", *args,
        stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(input), timeout)
    assert proc.returncode is not None
    return proc.returncode, out, err


def cri(text: str, stream: str = "stdout", tag: str = "F") -> str:
    ns = time.time_ns()
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(ns // 10**9))}.{ns % 10**9:09d}Z {stream} {tag} {text}\n"


@pytest.fixture
async def node(apiserver, tmp_path):
    """An in-process agent (hollow containers with process exec, hollow VMs) serving on 127.0.0.1."""
    name = f"ns-{uuid.uuid4().hex[:6]}"
    containers = ProcessExecRuntime("container", node_name=name, state_file=tmp_path / "hollow-container.json")
    vms = HollowRuntime("vm", node_name=name, state_file=tmp_path / "hollow-vm.json")
    agent = NodeAgent(NodeAgentOptions(
        config=ClusterConfig.for_url(apiserver.url), node_name=name, runtimes=[containers, vms], cpu="2",
        memory="4Gi", lease_renew_interval=1, status_update_interval=1, sync_interval=1, relist_interval=0.2,
        backoff_initial=0.5, backoff_max=1, serve_address="127.0.0.1", serve_port=0, node_ip="127.0.0.1"))
    await agent.start()
    yield agent, containers
    await agent.stop()
    async with aiohttp.ClientSession(apiserver.url) as http:
        await call(http, "DELETE", f"/api/v1/nodes/{name}")


async def running_pod(http, ns: str, name: str, spec: dict) -> dict:
    code, body = await call(http, "POST", f"/api/v1/namespaces/{ns}/pods", {"metadata": {"name": name}, "spec": spec})
    assert code == 201, body

    async def up():
        _, p = await call(http, "GET", f"/api/v1/namespaces/{ns}/pods/{name}")
        return p if (p.get("status") or {}).get("phase") == "Running" else None

    return await eventually(up, 15, f"pod {name} running")


@pytest.mark.timeout(120)
async def test_logs_tail_timestamps_limit_previous_and_follow(apiserver, node, tmp_path):
    agent, runtime = node
    ns = f"logs-{uuid.uuid4().hex[:6]}"
    cfg = write_dev_kubeconfig(tmp_path / "dev.kubeconfig", apiserver.url)
    async with aiohttp.ClientSession(apiserver.url) as http:
        code, got = await call(http, "GET", f"/api/v1/nodes/{agent.node}")
        assert got["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == agent.server_port > 0
        await call(http, "POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
        pod = await running_pod(http, ns, "web", {"nodeName": agent.node, "containers": [
            {"name": "c", "image": "busybox"}]})
        uid = pod["metadata"]["uid"]
        logfile = tmp_path / "hollow-container-logs" / uid / "c" / "0.log"
        with logfile.open("a") as f:  # what containerd would write for the container's output
            f.write(cri("one") + cri("tw", tag="P") + cri("o") + cri("three", "stderr"))

        rc, out, err = await kubectl(cfg, "-n", ns, "logs", "web")
        assert rc == 0, err
        assert out.decode().splitlines() == ["hollow container c started from image busybox "
                                             f"({pod['status']['containerStatuses'][0]['containerID'][9:21]})",
                                             "one", "two", "three"]
        rc, out, _ = await kubectl(cfg, "-n", ns, "logs", "web", "--tail=2")
        assert out == b"two\nthree\n"
        rc, out, _ = await kubectl(cfg, "-n", ns, "logs", "web", "--tail=1", "--timestamps")
        assert STAMP.match(out) and out.endswith(b" three\n")
        rc, out, _ = await kubectl(cfg, "-n", ns, "logs", "web", "--tail=2", "--limit-bytes=5")
        assert out == b"two\nt"
        rc, out, _ = await kubectl(cfg, "-n", ns, "logs", "web", "--since=1h", "-c", "c")
        assert out.endswith(b"one\ntwo\nthree\n")

        # Before any restart there is no previous instance: kubelet's 400.
        rc, _, err = await kubectl(cfg, "-n", ns, "logs", "web", "--previous")
        assert rc != 0 and b'previous terminated container "c" in pod "web" not found' in err

        # A follower sees a line written later, at once, and ends when the container exits.
        follower = await asyncio.create_subprocess_exec(
            kubectl_binary(32), "--kubeconfig", str(cfg), "-n", ns, "logs", "-f", "--tail=1", "web",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert follower.stdout is not None
        assert await asyncio.wait_for(follower.stdout.readline(), 10) == b"three\n"
        with logfile.open("a") as f:
            f.write(cri("written later"))
        assert await asyncio.wait_for(follower.stdout.readline(), 5) == b"written later\n"
        assert runtime.exit_container(uid, "c", exit_code=2)
        rest = await asyncio.wait_for(follower.stdout.read(), 10)  # EOF: the stream ended with the container
        assert rest == b"hollow container c exited with code 2\n"
        assert await asyncio.wait_for(follower.wait(), 5) == 0

        # Restarted: --previous is the first instance, the plain log the new one.
        async def restarted():
            _, p = await call(http, "GET", f"/api/v1/namespaces/{ns}/pods/web")
            cs = p["status"]["containerStatuses"][0]
            return cs["restartCount"] == 1 and "running" in cs["state"]

        await eventually(restarted, 15, "the container restarted")
        rc, out, err = await kubectl(cfg, "-n", ns, "logs", "web", "--previous")
        assert rc == 0, err
        assert out.decode().splitlines()[1:] == ["one", "two", "three", "written later",
                                                 "hollow container c exited with code 2"]
        rc, out, _ = await kubectl(cfg, "-n", ns, "logs", "web")
        assert out.count(b"\n") == 1 and out.startswith(b"hollow container c started")

        # A VM pod's log is its console (raw text), the VM being the pod's one container.  Upstream kubectl
        # cannot ask for it: it checks the container name against spec.containers itself, which a VM pod
        # does not have ("container vm is not valid", or a panic without -c); Arktos shipped its own kubectl.
        await running_pod(http, ns, "vm", {"nodeName": agent.node, "virtualMachine": {
            "name": "vm", "image": "cirros", "keyPairName": "k"}})
        code, body = await call(http, "GET", f"/api/v1/namespaces/{ns}/pods/vm/log")
        assert (code, body) == (200, b"hollow VM vm booting image cirros\nvm login: ")
        code, body = await call(http, "GET", f"/api/v1/namespaces/{ns}/pods/vm/log?container=vm&tailLines=1")
        assert (code, body) == (200, b"vm login: ")


@pytest.mark.timeout(120)
async def test_bad_log_requests_get_kubernetes_statuses(apiserver, node, tmp_path):
    agent, _ = node
    ns = f"logsbad-{uuid.uuid4().hex[:6]}"
    async with aiohttp.ClientSession(apiserver.url) as http:
        await call(http, "POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
        await running_pod(http, ns, "two", {"nodeName": agent.node, "containers": [
            {"name": "a", "image": "x"}, {"name": "b", "image": "x"}]})
        base = f"/api/v1/namespaces/{ns}/pods/two/log"
        cases = {
            "?container=a&tailLines=abc": (400, "BadRequest", "invalid value for tailLines"),
            "?container=a&tailLines=-1": (422, "Invalid", "tailLines: Invalid value: -1"),
            "?container=a&limitBytes=0": (422, "Invalid", "limitBytes: Invalid value: 0: must be greater than 0"),
            "?container=a&sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z": (422, "Invalid", "at most one of"),
            "?container=a&sinceTime=yesterday": (400, "BadRequest", "sinceTime"),
            "?container=a&follow=maybe": (400, "BadRequest", "follow"),
            "?container=nope": (400, "BadRequest", "container nope is not valid for pod two"),
            "": (400, "BadRequest", "a container name must be specified for pod two, choose one of: [a b]"),
        }
        for query, (code, reason, message) in cases.items():
            got, body = await call(http, "GET", base + query)
            assert (got, body.get("reason")) == (code, reason), (query, body)
            assert message in body["message"], (query, body)
        # Unscheduled and missing pods.
        await call(http, "POST", f"/api/v1/namespaces/{ns}/pods", {
            "metadata": {"name": "pending"}, "spec": {"containers": [{"name": "c", "image": "x"}]}})
        got, body = await call(http, "GET", f"/api/v1/namespaces/{ns}/pods/pending/log")
        assert (got, body["message"]) == (400, "pod pending does not have a host assigned")
        got, body = await call(http, "GET", f"/api/v1/namespaces/{ns}/pods/ghost/log")
        assert (got, body["reason"]) == (404, "NotFound")
        got, body = await call(http, "PUT", base + "?container=a", {})
        assert got == 405, body
        # A node whose agent publishes no endpoint: a clear 503, not a hang or a 500.
        await call(http, "POST", "/api/v1/nodes", {"metadata": {"name": f"silent-{ns}"}})
        await call(http, "POST", f"/api/v1/namespaces/{ns}/pods", {
            "metadata": {"name": "orphan"}, "spec": {"nodeName": f"silent-{ns}", "containers": [{"name": "c",
                                                                                                "image": "x"}]}})
        got, body = await call(http, "GET", f"/api/v1/namespaces/{ns}/pods/orphan/log")
        assert (got, body["reason"]) == (503, "ServiceUnavailable") and "publishes no endpoint" in body["message"]
        await call(http, "DELETE", f"/api/v1/nodes/silent-{ns}")


@pytest.mark.timeout(120)
async def test_kubectl_exec_relays_output_stdin_and_exit_codes(apiserver, node, tmp_path):
    agent, runtime = node
    ns = f"exec-{uuid.uuid4().hex[:6]}"
    cfg = write_dev_kubeconfig(tmp_path / "dev.kubeconfig", apiserver.url)
    async with aiohttp.ClientSession(apiserver.url) as http:
        await call(http, "POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
        await running_pod(http, ns, "box", {"nodeName": agent.node, "containers": [{"name": "c", "image": "x"}]})

        rc, out, err = await kubectl(cfg, "-n", ns, "exec", "box", "--", "echo", "hi")
        assert (rc, out) == (0, b"hi\n"), err
        assert runtime.negotiated[-1] == "v5.channel.k8s.io"  # kubectl's v5 spoken end to end
        rc, out, err = await kubectl(cfg, "-n", ns, "exec", "-i", "box", "--", "sh", "-c", "tr a-z A-Z; echo done",
                                     input=b"piped stdin\n" * 1000)
        assert rc == 0, err
        assert out == b"PIPED STDIN\n" * 1000 + b"done\n"  # stdin's end reached the command (v5 CLOSE)
        rc, out, err = await kubectl(cfg, "-n", ns, "exec", "box", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
        assert (rc, out) == (3, b"out\n") and b"err\n" in err
        rc, _, err = await kubectl(cfg, "-n", ns, "exec", "box", "-c", "nope", "--", "true")
        assert rc != 0 and b"container nope is not valid for pod box" in err

        # Exec into a VM pod (kubectl refuses it itself: no spec.containers): the runtime's NotSupported comes
        # back through both hops as a 400 the user can act on, before any upgrade.
        await running_pod(http, ns, "vm", {"nodeName": agent.node, "virtualMachine": {
            "name": "vm", "image": "cirros", "keyPairName": "k"}})
        got, body = await call(http, "GET", f"/api/v1/namespaces/{ns}/pods/vm/exec?command=true&stdout=1",
                               headers=UPGRADE)
        assert (got, body["message"]) == (400, "exec is not supported for hollow pods: they run no processes")

        # Without an upgrade: a Status, not a hang.
        got, body = await call(http, "POST", f"/api/v1/namespaces/{ns}/pods/box/exec?command=true&stdout=1")
        assert got == 400 and "Upgrade request required" in body["message"]
        got, body = await call(http, "POST", f"/api/v1/namespaces/{ns}/pods/box/exec?stdout=1")
        assert got == 400 and body["message"] == "you must specify at least one command for the container"


@pytest.mark.timeout(60)
async def test_a_streaming_server_refusing_spdy_is_asked_again_over_websocket(apiserver, node, tmp_path):
    """A runtime whose exec_transport says SPDY but whose server answers the upgrade with an error
    (this one serves GET WebSockets only: POST is 405) still execs: the agent asks for a fresh URL
    and relays over WebSocket."""
    agent, runtime = node
    runtime.exec_transport = "spdy"
    ns = f"spdyfb-{uuid.uuid4().hex[:6]}"
    cfg = write_dev_kubeconfig(tmp_path / "dev.kubeconfig", apiserver.url)
    async with aiohttp.ClientSession(apiserver.url) as http:
        await call(http, "POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
        await running_pod(http, ns, "box", {"nodeName": agent.node, "containers": [{"name": "c", "image": "x"}]})
    before = len(runtime.negotiated)
    rc, out, err = await kubectl(cfg, "-n", ns, "exec", "box", "--", "sh", "-c", "echo hi; exit 2")
    assert (rc, out) == (2, b"hi\n"), err
    assert runtime.negotiated[before:] == ["v5.channel.k8s.io"]


async def test_the_python_client_reads_logs_and_execs_over_v4_and_v5(apiserver, node, tmp_path):
    """The official client: logs, and exec over v5 (its default: stdin closed, exit code back) and over v4."""
    from kubernetes import client
    from kubernetes.stream import stream

    agent, runtime = node
    ns = f"pyexec-{uuid.uuid4().hex[:6]}"
    cfg = client.Configuration()
    cfg.host = apiserver.url
    core = client.CoreV1Api(client.ApiClient(cfg))
    async with aiohttp.ClientSession(apiserver.url) as http:
        await call(http, "POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
        await running_pod(http, ns, "box", {"nodeName": agent.node, "containers": [{"name": "c", "image": "x"}]})
    # The blocking client runs in a thread: the agent under test shares this event loop.
    text = await asyncio.to_thread(core.read_namespaced_pod_log, "box", ns, tail_lines=1)
    assert text.startswith("hollow container c started from image x")
    # v4 (asked for explicitly): output and exit code; no way to close stdin, so the command gets none.
    v4 = {"sec-websocket-protocol": "v4.channel.k8s.io"}
    out = await asyncio.to_thread(lambda: stream(core.connect_get_namespaced_pod_exec, "box", ns,
                                                 command=["sh", "-c", "echo hi; echo err >&2"], stdin=False,
                                                 stdout=True, stderr=False, tty=False, _headers=v4))
    assert out == "hi\n"
    assert runtime.negotiated[-1] == "v4.channel.k8s.io"

    def session(headers: dict | None) -> tuple[int | None, str]:
        ws = stream(core.connect_get_namespaced_pod_exec, "box", ns, command=["sh", "-c", "cat; exit 4"],
                    stdin=True, stdout=True, stderr=True, tty=False, _preload_content=False,
                    **({"_headers": headers} if headers else {}))
        ws.write_stdin("line from stdin\n")
        ws.close_channel(0)  # v5: stdin's end, so cat ends and the exit code comes back
        ws.run_forever(timeout=10)
        return ws.returncode, ws.read_stdout()

    assert await asyncio.to_thread(session, None) == (4, "line from stdin\n")  # the client's default: v5
    assert runtime.negotiated[-1] == "v5.channel.k8s.io"
