"""The prober (arktos.agent.prober): kubelet's result state machine on a fake clock, and each handler
against a real local server (HTTP, TCP, gRPC health) or a fake runtime (exec)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from arktos.agent.prober import PodProber, ProbeSpec, ProbeState, run_handler
from arktos.agent.runtime import ContainerState, NotSupported
from arktos.cluster.etcd import free_port


class FakeClock:
    """Time stands still until the test advances it; sleepers wake in order."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.sleepers: list[tuple[float, asyncio.Future]] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        fut = asyncio.get_running_loop().create_future()
        self.sleepers.append((self.t + seconds, fut))
        await fut

    async def advance(self, seconds: float) -> None:
        target = self.t + seconds
        await settle()
        while True:
            due = sorted((x for x in self.sleepers if x[0] <= target), key=lambda x: x[0])
            if not due:
                break
            at, fut = due[0]
            self.sleepers.remove(due[0])
            self.t = max(self.t, at)
            if not fut.done():
                fut.set_result(None)
            await settle()
        self.t = target
        await settle()


async def settle() -> None:
    for _ in range(30):
        await asyncio.sleep(0)


class FakeRuntime:
    network_probes = True

    def __init__(self) -> None:
        self.results: dict[str, tuple[int, str]] = {}  # command's first word -> (exit code, output)
        self.calls: list[list[str]] = []

    async def exec_sync(self, pod, container, command, timeout):
        self.calls.append(command)
        code, out = self.results.get(command[0], (0, ""))
        if code == -1:
            raise TimeoutError
        if code == -2:
            raise NotSupported("exec probes are not supported for VM pods")
        return code, out.encode(), b""


@dataclass
class FakeHost:
    pod: dict
    runtime: Any = field(default_factory=FakeRuntime)
    events: list[tuple[str, str, str, str]] = field(default_factory=list)
    kills: list[tuple[str, str, int, str]] = field(default_factory=list)
    changes: int = 0
    address: str = "127.0.0.1"

    def event(self, type_, reason, message, container=""):
        self.events.append((type_, reason, message, container))

    def probe_address(self):
        return self.address

    def probe_changed(self):
        self.changes += 1

    async def kill_container(self, name, container_id, grace, message):
        self.kills.append((name, container_id, grace, message))


def pod(**probes: dict) -> dict:
    return {"metadata": {"uid": "u1", "name": "p"},
            "spec": {"terminationGracePeriodSeconds": 30,
                     "containers": [{"name": "c", "image": "busybox", **probes}]}}


def execp(cmd: str, **kw: int) -> dict:
    return {"exec": {"command": [cmd]}, **kw}


def running(cid: str = "hollow://1") -> list[ContainerState]:
    return [ContainerState(name="c", state="running", container_id=cid)]


def status(cid: str = "hollow://1") -> list[dict]:
    return [{"name": "c", "state": {"running": {}}, "ready": True, "started": True, "containerID": cid}]


def adjusted(prober: PodProber, cid: str = "hollow://1") -> tuple[bool, bool]:
    s = status(cid)
    prober.adjust(s)
    return s[0]["started"], s[0]["ready"]


def test_thresholds_and_initial_results():
    ready = ProbeState(ProbeSpec.parse("readiness", {"successThreshold": 2, "failureThreshold": 2}))
    assert ready.result is False  # readiness starts as Failure
    assert not ready.observe(True) and ready.result is False  # one success of two
    assert ready.observe(True) and ready.result is True
    assert not ready.observe(False) and ready.result is True
    assert not ready.observe(True)  # the run of failures starts again
    assert not ready.observe(False)
    assert ready.observe(False) and ready.result is False
    live = ProbeState(ProbeSpec.parse("liveness", {"successThreshold": 5}))
    assert live.result is True and live.spec.success_threshold == 1  # liveness: always 1
    assert ProbeState(ProbeSpec.parse("startup", {})).result is None
    spec = ProbeSpec.parse("readiness", {"periodSeconds": 0, "timeoutSeconds": 0})
    assert (spec.period, spec.timeout, spec.failure_threshold, spec.initial_delay) == (1, 1, 3, 0)


async def test_readiness_waits_for_initial_delay_and_follows_thresholds():
    clock, host = FakeClock(), FakeHost(pod(readinessProbe=execp("check", initialDelaySeconds=5, periodSeconds=2,
                                                                     failureThreshold=2)))
    prober = PodProber(host, clock)
    prober.sync(running())
    assert adjusted(prober) == (True, False)  # not ready before the first success
    await clock.advance(4.9)
    assert host.runtime.calls == []
    await clock.advance(0.1)
    assert host.runtime.calls == [["check"]] and host.changes == 1
    assert adjusted(prober) == (True, True)
    host.runtime.results["check"] = (1, "not yet\n")
    await clock.advance(2)
    assert adjusted(prober) == (True, True)  # one failure of two
    await clock.advance(2)
    assert adjusted(prober) == (True, False) and host.changes == 2
    assert host.events == [("Warning", "Unhealthy", "Readiness probe failed: not yet\n", "c")] * 2
    assert host.kills == []  # readiness never kills
    # A new instance of the container starts from scratch; the old one's task is gone.
    old = prober.containers["c"].task
    prober.sync(running("hollow://2"))
    await settle()
    assert old.cancelled()
    assert adjusted(prober, "hollow://2") == (True, False)
    prober.sync([ContainerState(name="c", state="terminated", container_id="hollow://2")])
    assert prober.containers == {}
    prober.close()


async def test_liveness_failure_kills_once_with_the_probes_grace_period():
    clock = FakeClock()
    host = FakeHost(pod(livenessProbe=execp("cat", periodSeconds=1, failureThreshold=3,
                                            terminationGracePeriodSeconds=1)))
    prober = PodProber(host, clock)
    prober.sync(running())
    await clock.advance(3)
    assert adjusted(prober) == (True, True)  # liveness does not gate readiness
    host.runtime.results["cat"] = (1, "cat: can't open '/tmp/healthy': No such file or directory\n")
    await clock.advance(2)
    assert host.kills == []
    await clock.advance(1)
    assert host.kills == [("c", "hollow://1", 2, "Container c failed liveness probe, will be restarted")]
    assert [e[1] for e in host.events] == ["Unhealthy"] * 3
    assert host.events[0][2] == "Liveness probe failed: cat: can't open '/tmp/healthy': No such file or directory\n"
    await clock.advance(10)
    assert len(host.kills) == 1 and prober.containers["c"].task.done()  # on hold until a new container
    prober.sync(running())  # the same instance (still running until the relist sees it exit): no new task
    assert prober.containers["c"].task.done()
    prober.close()


async def test_startup_probe_holds_off_the_others_and_its_failure_kills():
    clock = FakeClock()
    host = FakeHost(pod(startupProbe=execp("started", periodSeconds=1, failureThreshold=3),
                        livenessProbe=execp("alive", periodSeconds=1),
                        readinessProbe=execp("ready", periodSeconds=1)))
    host.pod["spec"]["restartPolicy"] = "Never"
    host.runtime.results["started"] = (1, "no")
    prober = PodProber(host, clock)
    prober.sync(running())
    await clock.advance(1.5)
    assert {c[0] for c in host.runtime.calls} == {"started"}
    assert adjusted(prober) == (False, False)
    host.runtime.results["started"] = (0, "")
    await clock.advance(1)
    # Started: the others run at once, startup no more.
    assert adjusted(prober) == (True, True)
    calls = len(host.runtime.calls)
    await clock.advance(3)
    assert {c[0] for c in host.runtime.calls[calls:]} == {"alive", "ready"}
    prober.close()

    # Never started: killed (no "will be restarted" under restartPolicy Never), the pod's grace period.
    host = FakeHost(pod(startupProbe=execp("started", periodSeconds=1, failureThreshold=2)))
    host.pod["spec"]["restartPolicy"] = "Never"
    host.runtime.results["started"] = (1, "")
    prober = PodProber(host, clock)
    prober.sync(running())
    await clock.advance(2)
    assert host.kills == [("c", "hollow://1", 30, "Container c failed startup probe")]
    prober.close()


async def test_an_errored_probe_is_an_event_and_no_result():
    clock = FakeClock()
    host = FakeHost(pod(readinessProbe=execp("x", periodSeconds=1), livenessProbe=execp("t", periodSeconds=1,
                                                                                          failureThreshold=1)))
    host.runtime.results["x"] = (-2, "")
    host.runtime.results["t"] = (-1, "")
    prober = PodProber(host, clock)
    prober.sync(running())
    await clock.advance(0.5)
    assert ("Warning", "Unhealthy", "Readiness probe errored: exec probes are not supported for VM pods", "c") \
        in host.events
    assert ("Warning", "Unhealthy", 'Liveness probe failed: command "t" timed out', "c") in host.events
    assert host.kills and host.kills[0][3] == "Container c failed liveness probe, will be restarted"
    assert adjusted(prober) == (True, False)
    prober.close()


async def test_no_probes_no_prober_work():
    host = FakeHost(pod())
    prober = PodProber(host, FakeClock())
    prober.sync(running())
    assert prober.containers == {}
    assert adjusted(prober) == (True, True)


# -- handlers against real servers ---------------------------------------------------------------

@pytest.fixture
async def http_server():
    seen: list[dict] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append({"path": request.path_qs, "headers": dict(request.headers)})
        if request.path == "/ok":
            return web.Response(text="fine")
        if request.path == "/moved":
            raise web.HTTPFound("/ok")
        if request.path == "/away":
            raise web.HTTPFound("http://192.0.2.1/elsewhere")
        if request.path == "/loop":
            raise web.HTTPFound("/loop")
        return web.Response(status=503, text="no")

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield port, seen
    await runner.cleanup()


async def test_http_get(http_server):
    port, seen = http_server
    container = {"name": "c", "ports": [{"name": "web", "containerPort": port}]}

    async def probe(path: str, **kw) -> tuple[str, str]:
        got = await run_handler(FakeRuntime(), {}, container, {"httpGet": {"path": path, "port": "web", **kw}},
                                "127.0.0.1", 2)
        return got.result, got.output

    assert await probe("/ok?x=1", httpHeaders=[{"name": "X-Custom", "value": "v"},
                                               {"name": "user-agent", "value": "mine"}]) == ("success", "fine")
    assert seen[-1]["path"] == "/ok?x=1" and seen[-1]["headers"]["X-Custom"] == "v"
    assert seen[-1]["headers"]["User-Agent"] == "mine"
    assert (await probe("/ok"))[0] == "success" and seen[-1]["headers"]["User-Agent"] == "kube-probe/1.30"
    assert await probe("/bad") == ("failure", "HTTP probe failed with statuscode: 503")
    assert await probe("/moved") == ("success", "fine") and seen[-1]["path"] == "/ok"  # same host: followed
    result, output = await probe("/away")
    assert result == "warning" and output.startswith("Probe terminated redirects, Response body:")
    assert (await probe("/loop"))[0] == "failure"
    got = await run_handler(FakeRuntime(), {}, container, {"httpGet": {"path": "/", "port": "nope"}}, "127.0.0.1", 1)
    assert got.result == "error" and "couldn't find port: nope" in got.output
    closed = free_port()
    got = await run_handler(FakeRuntime(), {}, container, {"httpGet": {"path": "/ok", "port": closed}},
                            "127.0.0.1", 1)
    assert got == got.__class__("failure", f'Get "http://127.0.0.1:{closed}/ok": dial tcp 127.0.0.1:{closed}: '
                                           "connect: connection refused")


async def test_tcp_socket(http_server):
    port, _ = http_server
    ok = await run_handler(FakeRuntime(), {}, {"name": "c"}, {"tcpSocket": {"port": port}}, "127.0.0.1", 1)
    assert ok.result == "success"
    closed = free_port()
    bad = await run_handler(FakeRuntime(), {}, {"name": "c"}, {"tcpSocket": {"port": closed}}, "127.0.0.1", 1)
    assert (bad.result, bad.output) == ("failure", f"dial tcp 127.0.0.1:{closed}: connect: connection refused")
    hollow = FakeRuntime()
    hollow.network_probes = False  # the hollow runtime's fake IPs: no I/O, success
    assert (await run_handler(hollow, {}, {"name": "c"}, {"tcpSocket": {"port": closed}}, "10.244.0.1", 1)).result \
        == "success"


async def test_grpc_health():
    import grpc

    answers = {"": 1, "sick": 2}

    def check(request: bytes, context) -> bytes:
        service = request[2:].decode() if request else ""
        return b"\x08" + bytes([answers.get(service, 3)])

    server = grpc.aio.server()
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
        "Check": grpc.unary_unary_rpc_method_handler(check, request_deserializer=lambda b: b,
                                                     response_serializer=lambda b: b)})])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        ok = await run_handler(FakeRuntime(), {}, {"name": "c"}, {"grpc": {"port": port}}, "127.0.0.1", 2)
        assert ok.result == "success", ok
        sick = await run_handler(FakeRuntime(), {}, {"name": "c"}, {"grpc": {"port": port, "service": "sick"}},
                                 "127.0.0.1", 2)
        assert (sick.result, sick.output) == ("failure", 'service unhealthy (responded with "NOT_SERVING")')
    finally:
        await server.stop(None)
    gone = await run_handler(FakeRuntime(), {}, {"name": "c"}, {"grpc": {"port": port}}, "127.0.0.1", 1)
    assert gone.result == "failure" and gone.output.startswith("timeout: failed to connect service")
