"""Kubelet's probes: startupProbe, livenessProbe and readinessProbe of a pod's containers.

A pod worker whose pod has probes owns one `PodProber`; a pod without probes has
none and costs nothing (kubemark's hollow nodes run thousands of pods).  After
each pass the worker hands the prober what the runtime reports (`sync`): every
running instance of a probed container gets one asyncio task, which runs that
container's probes on their own periods and ends with the instance (a new
container ID is a new task with fresh results, as kubelet's workers reset on a
new container ID).  The worker asks the prober to correct what its status says
(`adjust`): `ready` needs the readiness probe's success, and `started` (and so
`ready`) the startup probe's.

Semantics as kubelet's prober workers:

* results start as kubelet's do: readiness Failure, liveness Success, startup
  Unknown; a result flips after `successThreshold` consecutive successes or
  `failureThreshold` consecutive failures;
* no probe runs before `initialDelaySeconds` after the container started;
  liveness and readiness wait until the startup probe has succeeded, after
  which the startup probe stops;
* every failed attempt is a Warning `Unhealthy` event ("Readiness probe failed:
  <output>"); a probe that cannot run at all is one too ("... probe errored: ...")
  and its result is thrown away; a redirect to another host succeeds with a
  `ProbeWarning` event;
* a liveness (or startup) failure kills the container through the runtime, with
  the probe's `terminationGracePeriodSeconds` or else the pod's (at least 2 s),
  after a Normal `Killing` event "Container c failed liveness probe, will be
  restarted"; the pod's restartPolicy and the worker's back-off do the rest.

Handlers: exec (the runtime's `exec_sync`, CRI ExecSync), httpGet (from the agent
to the pod IP, or the node's for hostNetwork; port by number or by the name of a
container port; headers; 200-399 is success; redirects followed to the same host
only, at most 10), tcpSocket (a connection opens) and grpc (grpc.health.v1
Health/Check answers SERVING).  A runtime with ``network_probes = False`` (the
hollow runtime: its pod IPs lead nowhere) has its network probes succeed without
any I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Protocol

from arktos.agent.runtime import Runtime

__all__ = ["Clock", "Outcome", "PodProber", "ProbeHost", "ProbeSpec", "ProbeState", "has_probes", "run_handler"]

Obj = dict[str, Any]
log = logging.getLogger("arktos.agent.prober")

# Pod spec field -> the probe's kind; startup first: it holds the other two off.
FIELDS = {"startupProbe": "startup", "livenessProbe": "liveness", "readinessProbe": "readiness"}
_TITLE = {"startup": "Startup", "liveness": "Liveness", "readiness": "Readiness"}
# kubelet's initial results: readiness Failure, liveness Success, startup Unknown.
_INITIAL: dict[str, bool | None] = {"readiness": False, "liveness": True, "startup": None}
MAX_OUTPUT = 10 * 1024  # kubelet reads at most 10 KiB of a probe's output or response body
MAX_REDIRECTS = 10
MIN_KILL_GRACE = 2  # kubelet's minimumGracePeriodInSeconds
USER_AGENT = "kube-probe/1.30"
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def has_probes(pod: Obj) -> bool:
    """Whether any container of the pod has a probe (only then does its worker get a prober)."""
    return any(c.get(f) for c in (pod.get("spec") or {}).get("containers") or [] for f in FIELDS)


class Clock(Protocol):
    def now(self) -> float: ...
    async def sleep(self, seconds: float) -> None: ...


class _MonotonicClock:
    @staticmethod
    def now() -> float:
        return time.monotonic()

    @staticmethod
    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds)


class ProbeHost(Protocol):
    """What a prober needs of its pod worker."""

    pod: Obj

    @property
    def runtime(self) -> Runtime | None: ...
    def event(self, type_: str, reason: str, message: str, container: str = "") -> None: ...
    def probe_address(self) -> str: ...  # the pod IP, or the node's for hostNetwork
    def probe_changed(self) -> None: ...  # a result changed: the pod's status should be written again
    async def kill_container(self, name: str, container_id: str, grace: int, message: str) -> None: ...


@dataclass(frozen=True)
class ProbeSpec:
    kind: str  # "startup" | "liveness" | "readiness"
    probe: Obj  # the core/v1 Probe
    initial_delay: float = 0
    period: float = 10
    timeout: float = 1
    success_threshold: int = 1
    failure_threshold: int = 3
    termination_grace: int | None = None

    @classmethod
    def parse(cls, kind: str, probe: Obj) -> ProbeSpec:
        def num(key: str, default: int, least: int) -> int:
            value = probe.get(key)
            return max(least, int(value)) if isinstance(value, int) else default
        grace = probe.get("terminationGracePeriodSeconds")
        return cls(kind, probe, initial_delay=num("initialDelaySeconds", 0, 0), period=num("periodSeconds", 10, 1),
                   timeout=num("timeoutSeconds", 1, 1),
                   success_threshold=1 if kind != "readiness" else num("successThreshold", 1, 1),
                   failure_threshold=num("failureThreshold", 3, 1),
                   termination_grace=int(grace) if isinstance(grace, int) else None)


class ProbeState:
    """The result of one probe of one container instance, with kubelet's thresholds."""

    def __init__(self, spec: ProbeSpec) -> None:
        self.spec = spec
        self.result: bool | None = _INITIAL[spec.kind]
        self._last: bool | None = None
        self._run = 0

    def observe(self, ok: bool) -> bool:
        """One probe's outcome; True when the result changed."""
        if self._last == ok:
            self._run += 1
        else:
            self._last, self._run = ok, 1
        if self._run < (self.spec.success_threshold if ok else self.spec.failure_threshold):
            return False
        changed, self.result = self.result != ok, ok
        return changed


@dataclass(frozen=True)
class Outcome:
    """What one attempt gave: "success", "failure", "warning" (counts as success) or "error" (thrown away)."""

    result: str
    output: str = ""


# -- handlers ----------------------------------------------------------------------------------------

def _expand(command: list[str], container: Obj) -> list[str]:
    """kubelet's ExpandContainerCommandOnlyStatic: $(VAR) from the container's literal env values."""
    env = {e.get("name", ""): e["value"] for e in container.get("env") or [] if isinstance(e.get("value"), str)}

    def sub(m: re.Match[str]) -> str:
        return "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0))
    return [_VAR_REF.sub(sub, str(part)) for part in command]


def _port(ref: Any, container: Obj) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(ref, int):
        port = ref
    elif isinstance(ref, str) and ref.isdigit():
        port = int(ref)
    else:
        port = next((int(p.get("containerPort", 0)) for p in container.get("ports") or [] if p.get("name") == ref), -1)
        if port < 0:
            raise LookupError(f"couldn't find port: {ref} in {container.get('name', '')}")
    if not 0 < port < 65536:
        raise ValueError(f"invalid port number: {port}")
    return port


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _exec(runtime: Runtime, pod: Obj, container: Obj, action: Obj, timeout: float) -> Outcome:
    command = _expand(list(action.get("command") or []), container)
    try:
        code, out, err = await asyncio.wait_for(
            runtime.exec_sync(pod, container.get("name", ""), command, timeout), timeout + 10)
    except TimeoutError:
        return Outcome("failure", f"command {' '.join(command)!r} timed out".replace("'", '"'))
    output = (out + err)[:MAX_OUTPUT].decode(errors="replace")
    return Outcome("success" if code == 0 else "failure", output)


async def _http(address: str, container: Obj, action: Obj, timeout: float) -> Outcome:
    import aiohttp
    from yarl import URL

    host = action.get("host") or address
    port = _port(action.get("port"), container)
    scheme = (action.get("scheme") or "HTTP").lower()
    path = action.get("path") or ""
    if path and not path.startswith("/"):
        path = "/" + path
    url = URL(f"{scheme}://{_host_port(host, port)}{path}", encoded=True)
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    for h in action.get("httpHeaders") or []:
        name = h.get("name", "")
        for have in [k for k in headers if k.lower() == name.lower()]:
            del headers[have]
        headers[name] = h.get("value", "")
    connector = aiohttp.TCPConnector(ssl=False, force_close=True)  # kubelet: no verification, no keep-alive
    shown = str(url)
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout),
                                         auto_decompress=True) as session:
            for _ in range(MAX_REDIRECTS + 1):
                async with session.get(url, headers=headers, allow_redirects=False) as res:
                    body = (await res.content.read(MAX_OUTPUT)).decode(errors="replace")
                    location = res.headers.get("Location")
                    if 300 <= res.status < 400 and location:
                        target = url.join(URL(location))
                        if target.host != url.host:  # kubelet stops at another host: a warning, not a failure
                            return Outcome("warning", f"Probe terminated redirects, Response body: {body}")
                        url = target
                        continue
                    if 200 <= res.status < 400:
                        return Outcome("success", body)
                    return Outcome("failure", f"HTTP probe failed with statuscode: {res.status}")
            return Outcome("failure", f'Get "{shown}": stopped after {MAX_REDIRECTS} redirects')
    except TimeoutError:
        return Outcome("failure", f'Get "{shown}": context deadline exceeded '
                                  "(Client.Timeout exceeded while awaiting headers)")
    except aiohttp.ClientConnectorError as exc:
        return Outcome("failure", f'Get "{shown}": dial tcp {_host_port(host, port)}: {_dial_error(exc.os_error)}')
    except aiohttp.ClientError as exc:
        return Outcome("failure", f'Get "{shown}": {exc}')


def _dial_error(exc: BaseException | None) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connect: connection refused"
    if isinstance(exc, TimeoutError):
        return "i/o timeout"
    if isinstance(exc, OSError) and exc.strerror:
        return f"connect: {exc.strerror.lower()}"
    return str(exc)


async def _tcp(address: str, container: Obj, action: Obj, timeout: float) -> Outcome:
    host = action.get("host") or address
    port = _port(action.get("port"), container)
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return Outcome("failure", f"dial tcp {_host_port(host, port)}: i/o timeout")
    except OSError as exc:
        return Outcome("failure", f"dial tcp {_host_port(host, port)}: {_dial_error(exc)}")
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return Outcome("success")


_HEALTH_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def _health_request(service: str) -> bytes:
    """grpc.health.v1.HealthCheckRequest{service = 1}, encoded by hand (no generated code)."""
    data = service.encode()
    if not data:
        return b""
    length, out = len(data), bytearray(b"\x0a")
    while length > 0x7F:
        out.append((length & 0x7F) | 0x80)
        length >>= 7
    out.append(length)
    return bytes(out) + data


def _health_status(data: bytes) -> int:
    """The status (field 1, an enum) of a grpc.health.v1.HealthCheckResponse; 0 when absent."""
    i, status = 0, 0
    while i < len(data):
        key, i = _varint(data, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
            if field == 1:
                status = value
        elif wire == 2:
            length, i = _varint(data, i)
            i += length
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            break
    return status


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while i < len(data):
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
    return value, i


async def _grpc(address: str, container: Obj, action: Obj, timeout: float) -> Outcome:
    import grpc

    port = action.get("port")
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"invalid port number: {port}")
    target = _host_port(address, port)
    # Straight to the pod, as kubelet dials it: never through a proxy from the agent's environment.
    async with grpc.aio.insecure_channel(target, options=[("grpc.enable_http_proxy", 0)]) as channel:
        try:
            await asyncio.wait_for(channel.channel_ready(), timeout)
        except TimeoutError:
            return Outcome("failure", f'timeout: failed to connect service "{target}" within {timeout:g}s')
        check = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=lambda b: b,
                                    response_deserializer=lambda b: b)
        try:
            reply = await check(_health_request(action.get("service") or ""), timeout=timeout,
                                metadata=(("user-agent", USER_AGENT),))
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                return Outcome("failure", "error: this server does not implement the grpc health protocol "
                                          "(grpc.health.v1.Health): " + (exc.details() or ""))
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return Outcome("failure", f"timeout: health rpc did not complete within {timeout:g}s")
            return Outcome("failure", f"error: health rpc probe failed: {exc.code().name}: {exc.details() or ''}")
    status = _health_status(reply)
    if status != 1:
        return Outcome("failure", f'service unhealthy (responded with "{_HEALTH_STATUS.get(status, status)}")')
    return Outcome("success")


async def run_handler(runtime: Runtime, pod: Obj, container: Obj, probe: Obj, address: str,
                      timeout: float) -> Outcome:
    """One attempt of `probe` against `container` of `pod`; never raises (a probe that cannot run is "error")."""
    try:
        if "exec" in probe:
            return await _exec(runtime, pod, container, probe["exec"] or {}, timeout)
        kind = next((k for k in ("httpGet", "tcpSocket", "grpc") if k in probe), None)
        if kind is None:
            return Outcome("error", "missing probe handler")
        if getattr(runtime, "network_probes", True) is False:
            return Outcome("success")
        if not address and not (probe[kind] or {}).get("host"):
            return Outcome("error", "the pod has no IP address yet")
        handler = {"httpGet": _http, "tcpSocket": _tcp, "grpc": _grpc}[kind]
        return await handler(address, container, probe[kind] or {}, timeout)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # NotSupported (a VM), NoSuchContainer, a bad port name, a runtime failure
        return Outcome("error", str(exc) or type(exc).__name__)


# -- the per-container task -------------------------------------------------------------------------

def _started_wall(started_at: str | None) -> float | None:
    if not started_at:
        return None
    with contextlib.suppress(ValueError):
        return datetime.datetime.fromisoformat(started_at.replace("Z", "+00:00")).timestamp()
    return None


class _ContainerProbes:
    """The probes of one running container instance, in one task."""

    def __init__(self, prober: PodProber, container: Obj, container_id: str, started_at: str | None) -> None:
        self.prober = prober
        self.container = container
        self.name = container.get("name", "")
        self.container_id = container_id
        self.states = {kind: ProbeState(ProbeSpec.parse(kind, container[f]))
                       for f, kind in FIELDS.items() if container.get(f)}
        wall = _started_wall(started_at)
        age = max(0.0, time.time() - wall) if wall is not None else 0.0
        self.t0 = prober.clock.now() - age
        self.task: asyncio.Task | None = asyncio.create_task(self._run(), name=f"probe-{self.name}-{container_id}")

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def started(self) -> bool | None:
        """None without a startup probe."""
        s = self.states.get("startup")
        return None if s is None else s.result is True

    def ready(self) -> bool | None:
        """None without a readiness probe."""
        s = self.states.get("readiness")
        return None if s is None else s.result is True

    async def _run(self) -> None:
        clock = self.prober.clock
        due = {kind: self.t0 + s.spec.initial_delay for kind, s in self.states.items()}
        try:
            while True:
                startup = self.states.get("startup")
                active = (["startup"] if startup is not None and startup.result is not True
                          else [k for k in ("liveness", "readiness") if k in self.states])
                if not active:
                    return
                now = clock.now()
                first = min(due[k] for k in active)
                if first > now:
                    await clock.sleep(first - now)
                    continue
                run = [k for k in active if due[k] <= now]
                outcomes = await asyncio.gather(*(self._attempt(k) for k in run))
                kill = None
                for kind, outcome in zip(run, outcomes, strict=True):
                    due[kind] = max(due[kind] + self.states[kind].spec.period, now)
                    if self._record(kind, outcome):
                        kill = kill or kind
                if kill is not None:  # this instance is done: no more probes until a new container
                    await self._kill(kill, self.states[kill].spec)
                    return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("probes of container %s (%s) failed", self.name, self.container_id)

    async def _attempt(self, kind: str) -> Outcome:
        host, spec = self.prober.host, self.states[kind].spec
        runtime = host.runtime
        if runtime is None:
            return Outcome("error", "no runtime for the pod")
        return await run_handler(runtime, host.pod, self.container, spec.probe, host.probe_address(), spec.timeout)

    def _record(self, kind: str, outcome: Outcome) -> bool:
        """Take one outcome; True when the container must be killed (liveness or startup failed)."""
        host, title = self.prober.host, _TITLE[kind]
        if outcome.result == "error":
            host.event("Warning", "Unhealthy", f"{title} probe errored: {outcome.output}", self.name)
            return False
        if outcome.result == "warning":
            host.event("Warning", "ProbeWarning", f"{title} probe warning: {outcome.output}", self.name)
        elif outcome.result == "failure":
            host.event("Warning", "Unhealthy", f"{title} probe failed: {outcome.output}", self.name)
        state = self.states[kind]
        changed = state.observe(outcome.result != "failure")
        if changed:
            host.probe_changed()
        return kind in ("liveness", "startup") and state.result is False

    async def _kill(self, kind: str, spec: ProbeSpec) -> None:
        host = self.prober.host
        pod_spec = host.pod.get("spec") or {}
        grace = spec.termination_grace
        if grace is None:
            grace = int(pod_spec.get("terminationGracePeriodSeconds", 30) or 0)
        message = f"Container {self.name} failed {kind} probe"
        if (pod_spec.get("restartPolicy") or "Always") != "Never":
            message += ", will be restarted"
        try:
            await host.kill_container(self.name, self.container_id, max(MIN_KILL_GRACE, grace), message)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("killing container %s (%s) after its %s probe failed", self.name, self.container_id, kind)


# -- the pod's prober ---------------------------------------------------------------------------------

class PodProber:
    """The probes of one pod's containers: one task per running probed container instance."""

    def __init__(self, host: ProbeHost, clock: Clock | None = None) -> None:
        self.host = host
        self.clock: Clock = clock or _MonotonicClock()
        self.containers: dict[str, _ContainerProbes] = {}

    def sync(self, containers: list[Any]) -> None:
        """Follow what the runtime reports (ContainerStates): probe running instances, drop the rest."""
        specs = {c.get("name"): c for c in (self.host.pod.get("spec") or {}).get("containers") or []
                 if any(c.get(f) for f in FIELDS)}
        running = {c.name: c for c in containers if c.name in specs and c.state == "running" and c.container_id}
        for name in [n for n in self.containers if n not in running]:
            self.containers.pop(name).cancel()
        for name, cs in running.items():
            have = self.containers.get(name)
            if have is not None and have.container_id == cs.container_id:
                continue
            if have is not None:
                have.cancel()
            self.containers[name] = _ContainerProbes(self, specs[name], cs.container_id, cs.started_at)

    def adjust(self, statuses: list[Obj]) -> None:
        """Correct `ready` and `started` of the pod's containerStatuses by the probes' results."""
        specs = {c.get("name"): c for c in (self.host.pod.get("spec") or {}).get("containers") or []}
        for s in statuses:
            spec = specs.get(s.get("name")) or {}
            if not (spec.get("readinessProbe") or spec.get("startupProbe")) or "running" not in (s.get("state") or {}):
                continue
            probes = self.containers.get(s["name"])
            if probes is None or probes.container_id != s.get("containerID"):
                started = not spec.get("startupProbe")
                ready = started and not spec.get("readinessProbe")
            else:
                started = probes.started() is not False
                ready = started and probes.ready() is not False
            s["started"] = bool(s.get("started")) and started
            s["ready"] = bool(s.get("ready")) and ready

    def close(self) -> None:
        for probes in self.containers.values():
            probes.cancel()
        self.containers.clear()
