"""The node agent: makes the pods bound to its node real, through its runtimes.

One agent per host (Arktos's unified agent).  It

* registers its Node on the resource partition's API server and keeps it
  alive: a Lease in the system tenant's `kube-node-lease` namespace renewed
  every `lease_renew_interval`, and the node conditions every
  `status_update_interval` (what node lifecycle watches);
* watches the pods bound to it on every tenant partition with one
  multi-server informer, so each pod's status goes back to the server it came
  from (`Informer.origin`);
* runs one worker per pod that drives the pod to its spec through the runtime
  of its kind (VM pods to the "vm" runtime, others to "container"), restarts
  exited containers with kubelet's back-off, ends a deleted pod with its
  grace period and then confirms the deletion (grace 0), and kills what the
  runtime runs but no server has any more;
* relists the runtimes every `relist_interval` (kubelet's PLEG) so a
  container that exits on its own is noticed, and adopts at start what the
  runtimes already run, without restarting it;
* performs VM Actions addressed to its node and writes their result back;
* records core/v1 Events as kubelet does (source.component "kubelet",
  source.host the node): for each pod in its own tenant partition (Created,
  Started, Killing, BackOff, Failed, the outcome of VM actions, and whatever the
  runtimes report through their `events` sink, e.g. Pulling/Pulled), and for
  the Node on the resource partition (Starting, NodeReady, ...).  Repeats bump
  `count`, and a per-object spam filter caps what a crash loop can write.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import logging
import os
import platform
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from arktos import __version__
from arktos.agent.prober import PodProber, has_probes
from arktos.agent.runtime import ContainerState, PodState, Runtime, RuntimeEvent, restarts
from arktos.agent.volumes import Prepared, VolumeManager
from arktos.api.registry import ResourceInfo
from arktos.api.resources import BUILTIN
from arktos.api.tenancy import SYSTEM_TENANT
from arktos.client import (
    ALL_TENANTS,
    APIError,
    Client,
    ClusterConfig,
    EventRecorder,
    Informer,
    TransportError,
    object_key,
)

__all__ = ["NODE_LEASE_NAMESPACE", "RUNTIME_LABELS", "NodeAgent", "NodeAgentOptions", "PodSource", "SharedParts",
           "make_runtime", "runtime_names"]

Obj = dict[str, Any]
log = logging.getLogger("arktos.agent")

NODE_LEASE_NAMESPACE = "kube-node-lease"
RUNTIME_LABELS = {"container": "arktos.io/runtime-container", "vm": "arktos.io/runtime-vm"}
# The same Kubernetes minor the API server reports (kubectl compares them), plus our own version.
AGENT_VERSION = f"v1.30.0+arktos.{__version__}"
# Events say they come from "kubelet": the agent plays kubelet's part, and tools that read events
# (kubectl describe, `--field-selector source=kubelet`, event exporters) look for that name.
EVENT_COMPONENT = "kubelet"
NORMAL, WARNING = "Normal", "Warning"
# kubelet's node events for each condition status.
_NODE_EVENTS = {("Ready", "True"): "NodeReady", ("Ready", "False"): "NodeNotReady",
                ("MemoryPressure", "False"): "NodeHasSufficientMemory",
                ("MemoryPressure", "True"): "NodeHasInsufficientMemory",
                ("DiskPressure", "False"): "NodeHasNoDiskPressure", ("DiskPressure", "True"): "NodeHasDiskPressure",
                ("PIDPressure", "False"): "NodeHasSufficientPID", ("PIDPressure", "True"): "NodeHasInsufficientPID"}


def _info(group: str, plural: str) -> ResourceInfo:
    for info in BUILTIN:
        if info.group == group and info.plural == plural:
            return info
    raise LookupError(f"no built-in resource {plural}.{group}")


NODES = _info("", "nodes")
PODS = _info("", "pods")
LEASES = _info("coordination.k8s.io", "leases")
NAMESPACES = _info("", "namespaces")
ACTIONS = _info("", "actions")


def _now(micro: bool = False) -> str:
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ"
    return datetime.datetime.now(datetime.UTC).strftime(fmt)


# -- the runtime registry: names on the command line -> runtimes, imported only when asked for -------

@dataclass
class RuntimeContext:
    """What a runtime factory may need from the command line."""

    node_name: str
    root_dir: str | None = None
    libvirt_uri: str = "qemu:///system"
    libvirt_domain_type: str = "auto"  # kvm | qemu | auto
    vm_image_dir: str = "/var/lib/arktos/images"
    container_runtime_endpoint: str = "/run/containerd/containerd.sock"
    cluster_dns: tuple[str, ...] = ()  # the pods' DNS server (kubelet's --cluster-dns)
    cluster_domain: str = "cluster.local"
    resolv_conf: str = "/etc/resolv.conf"  # the host's resolver, for dnsPolicy Default


def _hollow(kind: str) -> Callable[[RuntimeContext], Runtime]:
    def make(ctx: RuntimeContext) -> Runtime:
        from arktos.agent.runtimes.hollow import HollowRuntime

        state = os.path.join(ctx.root_dir, f"hollow-{kind}.json") if ctx.root_dir else None
        return HollowRuntime(kind, node_name=ctx.node_name, state_file=state)
    return make


def _libvirt(ctx: RuntimeContext) -> Runtime:
    from arktos.agent.runtimes.libvirt import LibvirtRuntime  # type: ignore[import-not-found,unused-ignore]

    kw: dict[str, Any] = {"image_dir": ctx.vm_image_dir, "domain_type": ctx.libvirt_domain_type}
    if ctx.root_dir:  # two agents on one machine keep their VMs' state apart
        kw["state_dir"] = os.path.join(ctx.root_dir, "libvirt")
    return LibvirtRuntime(uri=ctx.libvirt_uri, **kw)


def _containerd(ctx: RuntimeContext) -> Runtime:
    from arktos.agent.runtimes.containerd import ContainerdRuntime

    rt = ContainerdRuntime(ctx.container_runtime_endpoint, node_name=ctx.node_name,
                           root_dir=os.path.join(ctx.root_dir or "/var/lib/arktos/node-agent", "containerd"))
    rt.host_ip = _host_ip()
    rt.cluster_dns, rt.cluster_domain, rt.resolv_conf = list(ctx.cluster_dns), ctx.cluster_domain, ctx.resolv_conf
    return rt


RUNTIME_FACTORIES: dict[str, Callable[[RuntimeContext], Runtime]] = {
    "containerd": _containerd,
    "hollow": _hollow("container"),
    "hollow-vm": _hollow("vm"),
    "libvirt": _libvirt,
}


def runtime_names() -> list[str]:
    return sorted(RUNTIME_FACTORIES)


def make_runtime(name: str, ctx: RuntimeContext) -> Runtime:
    """The runtime called `name` (ValueError for an unknown one); its module is imported only now."""
    factory = RUNTIME_FACTORIES.get(name)
    if factory is None:
        raise ValueError(f"unknown runtime {name!r}: want one of {', '.join(runtime_names())}")
    return factory(ctx)


# -- options ------------------------------------------------------------------------------------

@dataclass
class NodeAgentOptions:
    config: ClusterConfig  # the resource partition: Node and Lease
    node_name: str
    runtimes: list[Runtime]
    tenant_servers: list[ClusterConfig] = field(default_factory=list)  # default: `config`
    cpu: str | None = None  # default: the machine's
    memory: str | None = None
    max_pods: int = 110
    lease_duration: int = 40
    lease_renew_interval: float = 10.0
    status_update_interval: float = 10.0
    sync_interval: float = 10.0  # each pod's periodic sync
    relist_interval: float = 1.0  # how often the runtimes are asked what they run
    backoff_initial: float = 10.0
    backoff_max: float = 300.0
    qps: float = 50.0
    burst: int = 100
    # The logs/exec endpoint the API server proxies to (arktos.agent.server); None serves none
    # (kubemark's hollow nodes).  Without TLS it may only bind to 127.0.0.1 (development mode).
    serve_address: str | None = None
    serve_port: int = 10250  # 0: any free port; the Node publishes the one bound
    serve_tls: Any = None  # arktos.agent.server.ServingTLS
    node_ip: str | None = None  # the Node's InternalIP (default: the address of the default route)
    labels: dict[str, str] = field(default_factory=dict)  # extra Node labels (hollow nodes mark themselves)
    # Where pods' configMap/secret/downwardAPI/projected volumes are written (arktos.agent.volumes);
    # None writes nothing (hollow nodes: references are still resolved, as the API load is real).
    root_dir: str | None = None
    config_ttl: float = 3.0  # how long a fetched ConfigMap/Secret is trusted; such volumes refresh as often


class PodSource(Protocol):
    """What the agent needs of its pods' (or actions') informer; a view of a shared one fits too."""

    def add_handler(self, on_add: Any = None, on_update: Any = None, on_delete: Any = None) -> None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def get(self, key: str) -> Obj | None: ...
    def list(self) -> list[Obj]: ...
    def has_synced(self) -> bool: ...
    def origin(self, key_or_obj: str | Obj) -> Client | None: ...


@dataclass
class SharedParts:
    """Connections and watches that many agents in one process share (kubemark's hollow nodes).

    `pods(node)` and `actions(node)` return that node's view of one shared informer, so N agents cost
    one watch per kind instead of 2N, and one connection pool instead of N.
    """

    client: Client
    tenant_clients: list[Client]
    pods: Callable[[str], PodSource]
    actions: Callable[[str], PodSource]
    # One fetch cache for the pods' ConfigMaps, Secrets and the kubernetes Service (arktos.agent.volumes):
    # every hollow pod has a kube-api-access volume, refreshed each ttl, and N nodes fetching the same
    # kube-root-ca.crt N times per ttl would be N-fold load for nothing (tokens stay per pod).
    volume_cache: dict = field(default_factory=dict)
    volume_inflight: dict = field(default_factory=dict)


def _machine_memory() -> str:
    with contextlib.suppress(OSError, ValueError):
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return f"{pages * size // 1024}Ki"
    return "8Gi"


def _kind(pod: Obj) -> str:
    return "vm" if (pod.get("spec") or {}).get("virtualMachine") else "container"


def _all(state: PodState) -> list[tuple[ContainerState, bool]]:
    """Every container of the pod with whether it is an init container."""
    return [*((c, True) for c in state.init_containers), *((c, False) for c in state.containers)]


def _init_pending(state: PodState, spec: Obj) -> bool:
    """Init containers still have work: one finished (the next, or the containers, start) or must retry."""
    inits = spec.get("initContainers") or []
    if not inits:
        return False
    done = sum(1 for c in state.init_containers if c.state == "terminated" and c.exit_code == 0)
    if any(c.state == "running" for c in state.init_containers):
        return False
    if done == len(inits):
        return len(state.containers) < len(spec.get("containers") or [])
    policy = spec.get("restartPolicy") or "Always"
    return done == len(state.init_containers) or any(
        (c.state == "waiting" and c.message) or (c.state == "terminated" and restarts(policy, c.exit_code, True))
        for c in state.init_containers)


def _initialized(state: PodState, spec: Obj) -> bool:
    inits = spec.get("initContainers") or []
    return sum(1 for c in state.init_containers if c.state == "terminated" and c.exit_code == 0) >= len(inits)


# -- status -------------------------------------------------------------------------------------

def _container_status(c: ContainerState, waiting: tuple[str, str] | None = None, last: Obj | None = None) -> Obj:
    if waiting is not None:
        state: Obj = {"waiting": {"reason": waiting[0], "message": waiting[1]}}
    elif c.state == "running":
        state = {"running": {"startedAt": c.started_at}}
    elif c.state == "terminated":
        state = {"terminated": {k: v for k, v in {
            "exitCode": c.exit_code if c.exit_code is not None else 0, "reason": c.reason or None,
            "message": c.message or None, "startedAt": c.started_at, "finishedAt": c.finished_at,
            "containerID": c.container_id or None}.items() if v is not None}}
    else:
        state = {"waiting": {"reason": c.reason or "ContainerCreating", **({"message": c.message} if c.message
                                                                           else {})}}
    out: Obj = {"name": c.name, "state": state, "lastState": last or {}, "ready": c.ready and waiting is None,
                "restartCount": c.restart_count, "image": c.image, "imageID": c.image_id,
                "started": c.state == "running" and waiting is None}
    if c.container_id:
        out["containerID"] = c.container_id
    return out


def _condition(type_: str, ok: bool, old: list[Obj], reason: str = "") -> Obj:
    """A pod condition that keeps its lastTransitionTime while its status stays the same."""
    status = "True" if ok else "False"
    prev = next((c for c in old if c.get("type") == type_), None)
    when = prev.get("lastTransitionTime") if prev and prev.get("status") == status else None
    cond: Obj = {"type": type_, "status": status, "lastProbeTime": None, "lastTransitionTime": when or _now()}
    if reason and not ok:
        cond["reason"] = reason
    return cond


def _same_status(old: Obj, new: Obj) -> bool:
    """Whether writing `new` would change anything but timestamps the agent keeps anyway."""
    for key, value in new.items():
        have = old.get(key)
        if key == "conditions":
            if {(c.get("type"), c.get("status")) for c in have or []} != {(c["type"], c["status"]) for c in value}:
                return False
        elif have != value:
            return False
    return True


# -- the per-pod worker -----------------------------------------------------------------------------

class _PodWorker:
    """Drives one pod (one uid) to its spec; one task, woken by pod updates and runtime changes."""

    def __init__(self, agent: NodeAgent, pod: Obj) -> None:
        self.agent = agent
        self.pod = pod
        self.uid = pod["metadata"]["uid"]
        self.key = object_key(pod)
        self.origin: Client | None = agent.pods.origin(self.key)
        self.gone = False  # the API server no longer has the pod
        self.wake = asyncio.Event()
        self.backoff: dict[str, tuple[float, float]] = {}  # container -> (delay, time it may restart)
        self.restart_counts: dict[str, int] = {}
        self.last_terminated: dict[str, Obj] = {}
        self.synced_spec: bytes | None = None  # the spec the runtime was last asked to match
        self.config_blocked = False  # the last pass could not resolve a volume or env (arktos.agent.volumes)
        self.config_why: tuple[Any, float] = (None, 0.0)  # what was last reported missing, and when
        # container -> (container ID, restarts, state) last seen, to tell Created/Started; an adopted
        # pod starts from what the runtime already runs, so an agent restart announces nothing new.
        self.seen: dict[str, tuple[str, int, str]] = {}
        for c in (agent.observed[self.uid].containers if self.uid in agent.observed else []):
            self.seen[c.name] = (c.container_id, c.restart_count, c.state)
        # The probes (arktos.agent.prober): none, and no task, for a pod without any.
        self.prober = PodProber(self) if _kind(pod) == "container" and has_probes(pod) else None
        self.task = asyncio.create_task(self._run(), name=f"pod-{self.key}")

    def update(self, pod: Obj) -> None:
        self.pod = pod
        self.origin = self.agent.pods.origin(self.key) or self.origin
        self.wake.set()

    @property
    def runtime(self) -> Runtime | None:
        return self.agent.runtimes.get(_kind(self.pod))

    # -- events ---------------------------------------------------------------------------

    def event(self, type_: str, reason: str, message: str, container: str = "") -> None:
        """An Event about this pod, written to the server the pod came from (its tenant partition)."""
        if self.origin is None:
            return
        meta = self.pod.get("metadata") or {}
        ref = {"kind": "Pod", "apiVersion": "v1", "tenant": meta.get("tenant", ""),
               "namespace": meta.get("namespace", ""), "name": meta.get("name", ""), "uid": self.uid}
        if container:
            ref["fieldPath"] = "spec.virtualMachine" if _kind(self.pod) == "vm" else f"spec.containers{{{container}}}"
        self.agent.recorder(self.origin).event(ref, type_, reason, message)

    # -- what the prober asks of its worker (arktos.agent.prober.ProbeHost) ----------------

    def probe_address(self) -> str:
        """Where network probes go: the pod's IP, the node's for a hostNetwork pod."""
        if (self.pod.get("spec") or {}).get("hostNetwork"):
            return self.agent.host_ip
        observed = self.agent.observed.get(self.uid)
        return (observed.ip if observed else "") or (self.pod.get("status") or {}).get("podIP") or ""

    def probe_changed(self) -> None:
        self.wake.set()  # the next pass writes the status with the new readiness

    async def kill_container(self, name: str, container_id: str, grace: int, message: str) -> None:
        """A failed liveness or startup probe: kill the container; restartPolicy and back-off do the rest."""
        self.event(NORMAL, "Killing", message, name)
        if self.runtime is not None:
            await self.runtime.kill_container(self.pod, name, grace, container_id=container_id)

    def _what(self) -> str:
        return "virtual machine" if _kind(self.pod) == "vm" else "container"

    def _lifecycle_events(self, state: PodState) -> None:
        """Created and Started, from what the runtime reports: a new container ID is a new instance
        (a container restart), a higher restart count with the same ID a VM started again."""
        what = self._what()
        for c, _ in _all(state):
            prev = self.seen.get(c.name)
            self.seen[c.name] = (c.container_id, c.restart_count, c.state)
            if c.state == "waiting":
                continue
            if prev is None or (c.container_id and c.container_id != prev[0]):
                self.event(NORMAL, "Created", f"Created {what} {c.name}", c.name)
                self.event(NORMAL, "Started", f"Started {what} {c.name}", c.name)
            elif c.restart_count > prev[1] or (prev[2] == "waiting" and c.state == "running"):
                self.event(NORMAL, "Started", f"Started {what} {c.name}", c.name)

    def _backoff_events(self, state: PodState) -> None:
        policy = (self.pod.get("spec") or {}).get("restartPolicy") or "Always"
        meta = self.pod.get("metadata") or {}
        pod_desc = f"{meta.get('name', '')}_{meta.get('namespace', '')}({self.uid})"  # kubelet's format.Pod
        for c, init in _all(state):
            if c.state == "terminated" and restarts(policy, c.exit_code, init) and c.name in self.backoff:
                self.event(WARNING, "BackOff", f"Back-off restarting failed {self._what()} {c.name} in pod {pod_desc}",
                           c.name)

    async def _run(self) -> None:
        try:
            while True:
                delay = await self._step()
                if delay is None:
                    return
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self.wake.wait()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pod %s: worker failed", self.key)
        finally:
            if self.prober is not None:
                self.prober.close()
            if self.agent.workers.get(self.uid) is self:
                del self.agent.workers[self.uid]

    async def _step(self) -> float | None:
        """One pass; the seconds until the next, or None when this worker is done."""
        agent = self.agent
        try:
            if self.gone:
                if self.runtime is not None:
                    await self.runtime.kill_pod(self.pod, 0)
                self.agent.volumes.forget(self.uid)
                log.info("pod %s: gone from the API server; killed", self.key)
                return None
            meta = self.pod["metadata"]
            if meta.get("deletionTimestamp"):
                return await self._terminate()
            runtime = self.runtime
            if runtime is None:
                await self._write_status({"phase": "Failed", "reason": "UnsupportedRuntime",
                                          "message": f"node {agent.node} has no {_kind(self.pod)} runtime"})
                return agent.options.sync_interval
            if (self.pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                return agent.options.sync_interval
            observed = agent.observed.get(self.uid)
            prepared = await self._prepare(observed)
            if prepared is None:
                return 2.0
            wait = self._restart_wait(observed) if observed else None
            if wait is not None and wait > 0:
                self._backoff_events(observed)
                await self._write_status(self._status(observed, crash_loop=True))
                return min(wait, agent.options.sync_interval)
            spec_key = orjson.dumps(self.pod.get("spec") or {}, option=orjson.OPT_SORT_KEYS)
            policy = (self.pod.get("spec") or {}).get("restartPolicy") or "Always"
            # The runtime is asked to act only when there is something to do: the first time, a
            # changed spec, an exit the relist saw, or a container the runtime could not create yet
            # (an image pull failed, a sandbox error: the runtime keeps its own pull back-off).  A
            # periodic sync_pod could restart a container that exited since the last relist, and the
            # status would never show why it restarted.
            if (observed is None or spec_key != self.synced_spec or self.config_blocked
                    or _init_pending(observed, self.pod.get("spec") or {})
                    or any((c.state == "terminated" and restarts(policy, c.exit_code))
                           or (c.state == "waiting" and c.message) for c in observed.containers)):
                for c, _ in _all(observed) if observed else []:
                    if c.state == "terminated":  # about to be restarted: the status keeps it as lastState
                        self.last_terminated[c.name] = _container_status(c)["state"]
                try:
                    state = await runtime.sync_pod(prepared.pod)
                except (APIError, TransportError):
                    raise
                except Exception as exc:
                    # kubelet's "Failed" with the runtime's reason (ImageNotFound, InvalidVMSpec, ...).
                    reason = getattr(exc, "reason", "") or type(exc).__name__
                    self.event(WARNING, "Failed", f"Error: {reason}: {exc}")
                    raise
                self.synced_spec = spec_key
                self.config_blocked = prepared.blocked  # until what waits could be handed over too
                agent.observed[self.uid] = state
                self._note_restarts(state)
            else:
                state = observed
            self._lifecycle_events(state)
            await self._write_status(self._status(self._waiting(state, prepared) if prepared.blocked else state))
            if prepared.blocked:
                return min(agent.options.sync_interval, 2.0)
            return min(agent.options.sync_interval, agent.options.config_ttl) if prepared.refresh \
                else agent.options.sync_interval
        except (APIError, TransportError) as exc:
            log.warning("pod %s: %s; retrying", self.key, exc)
            return 1.0
        except Exception:
            log.exception("pod %s: sync failed; retrying", self.key)
            return 2.0

    async def _prepare(self, observed: PodState | None) -> Prepared | None:
        """Resolve the pod's volumes and env (arktos.agent.volumes).  When something is missing the containers
        wait as kubelet's do and an event says why; the caller retries soon (`config_blocked`).  None when
        nothing may start (a volume, or an init container's env): the status is written here."""
        if _kind(self.pod) == "vm" or self.origin is None:
            return Prepared(self.pod)
        prepared = await self.agent.volumes.prepare(self.pod, self.origin)
        if not prepared.blocked:
            return prepared
        self.config_blocked = True
        why = (prepared.mount_error, tuple(sorted(prepared.env_errors.items())))
        if why != self.config_why[0] or time.monotonic() - self.config_why[1] > 30:  # not every retry
            self.config_why = (why, time.monotonic())
            if prepared.mount_error:
                self.event(WARNING, "FailedMount", f'MountVolume.SetUp failed for volume "{prepared.volume}" : '
                                                   f"{prepared.mount_error}")
            for name, message in prepared.env_errors.items():
                self.event(WARNING, "Failed", f"Error: {message}", name)
        inits = {c.get("name") for c in (self.pod.get("spec") or {}).get("initContainers") or []}
        if not prepared.mount_error and not inits & set(prepared.env_errors):
            return prepared  # the other containers start (the resolved pod leaves the waiting ones out)
        await self._write_status(self._status(self._waiting(observed, prepared)))
        return None

    def _waiting(self, observed: PodState | None, prepared: Prepared) -> PodState:
        """`observed` with the containers that cannot be created yet waiting (kubelet's reasons)."""
        state = copy.deepcopy(observed) if observed is not None else PodState(uid=self.uid, namespace="", name="",
                                                                             tenant="")
        spec = self.pod.get("spec") or {}
        for key, into in (("initContainers", state.init_containers), ("containers", state.containers)):
            have = {c.name: c for c in into}
            for c in spec.get(key) or []:
                name = c.get("name", "")
                if prepared.mount_error:  # kubelet: the pod waits for its volumes
                    waiting = ("ContainerCreating", "")
                elif name in prepared.env_errors:
                    waiting = ("CreateContainerConfigError", prepared.env_errors[name])
                else:
                    continue
                old = have.get(name)
                if old is None or old.state == "terminated":
                    if old is not None:
                        into.remove(old)
                    into.append(ContainerState(name=name, state="waiting", reason=waiting[0], message=waiting[1],
                                               image=c.get("image", ""),
                                               restart_count=old.restart_count if old else 0))
        order = {c.get("name"): i for i, c in enumerate(spec.get("containers") or [])}
        state.containers.sort(key=lambda c: order.get(c.name, len(order)))
        return state

    def _restart_wait(self, state: PodState) -> float | None:
        """Seconds an exited container must still wait for its restart (None: nothing waits)."""
        policy = (self.pod.get("spec") or {}).get("restartPolicy") or "Always"
        now = time.monotonic()
        wait: float | None = None
        for c, init in _all(state):
            if c.state == "terminated" and restarts(policy, c.exit_code, init) and c.name in self.backoff:
                left = self.backoff[c.name][1] - now
                wait = left if wait is None else max(wait, left)
        return wait

    def _note_restarts(self, state: PodState) -> None:
        """After a restart, the next one waits twice as long (kubelet's back-off); a long run forgives."""
        opts = self.agent.options
        now = time.monotonic()
        for c, _ in _all(state):
            before = self.restart_counts.get(c.name)
            self.restart_counts[c.name] = c.restart_count
            if before is not None and c.restart_count > before:
                delay, at = self.backoff.get(c.name, (0.0, 0.0))
                if delay and now - at > 2 * opts.backoff_max:
                    delay = 0.0
                delay = min(opts.backoff_max, delay * 2 if delay else opts.backoff_initial)
                self.backoff[c.name] = (delay, now + delay)

    def _status(self, state: PodState, crash_loop: bool = False) -> Obj:
        pod = self.pod
        spec, old = pod.get("spec") or {}, pod.get("status") or {}
        old_conditions = old.get("conditions") or []
        policy = spec.get("restartPolicy") or "Always"
        status: Obj = {"hostIP": self.agent.host_ip, "startTime": old.get("startTime") or _now()}
        if state.ip:
            status["podIP"] = state.ip
            status["podIPs"] = [{"ip": state.ip}]
        if _kind(pod) == "vm":
            vm = copy.deepcopy(state.vm_status or {})
            ready = bool(vm.get("ready"))
            power = vm.get("powerState", "")
            phase = "Running" if power in ("running", "paused", "suspended") else (
                "Failed" if power == "crashed" else "Pending" if not vm else "Running")
            status["virtualMachineStatus"] = vm
            status["conditions"] = [
                _condition("PodScheduled", True, old_conditions), _condition("Initialized", True, old_conditions),
                _condition("VirtualMachineReady", ready, old_conditions, "VirtualMachineNotReady"),
                _condition("ContainersReady", ready, old_conditions, "VirtualMachineNotReady"),
                _condition("Ready", ready, old_conditions, "VirtualMachineNotReady")]
            status["phase"] = phase
            return status
        def statuses_of(containers: list[ContainerState], init: bool) -> list[Obj]:
            out = []
            for c in containers:
                last = None
                if c.state == "terminated":
                    self.last_terminated[c.name] = _container_status(c)["state"]
                if c.restart_count:
                    last = self.last_terminated.get(c.name)
                waiting = None
                if crash_loop and c.state == "terminated" and restarts(policy, c.exit_code, init):
                    waiting = ("CrashLoopBackOff", f"back-off restarting failed container {c.name}")
                    last = _container_status(c)["state"]
                out.append(_container_status(c, waiting, last))
            return out
        statuses = statuses_of(state.containers, False)
        if self.prober is not None:  # probes: `ready` needs the readiness probe, `started` the startup probe
            self.prober.sync(state.containers)
            self.prober.adjust(statuses)
        initialized = _initialized(state, spec)
        if spec.get("initContainers"):
            inits = statuses_of(state.init_containers, True)
            have = {s["name"] for s in inits}
            inits += [_container_status(ContainerState(name=c.get("name", ""), state="waiting",
                                                       reason="PodInitializing", image=c.get("image", "")))
                      for c in spec["initContainers"] if c.get("name") not in have]
            status["initContainerStatuses"] = inits
            have = {s["name"] for s in statuses}
            statuses += [_container_status(ContainerState(name=c.get("name", ""), state="waiting",
                                                          reason="PodInitializing", image=c.get("image", "")))
                         for c in spec.get("containers") or [] if c.get("name") not in have]
            failed_init = any(c.state == "terminated" and c.exit_code not in (0, None)
                              for c in state.init_containers)
            if not initialized and failed_init and policy == "Never":
                status["phase"] = "Failed"
                status["containerStatuses"] = statuses
                status["conditions"] = [
                    _condition("PodScheduled", True, old_conditions),
                    _condition("Initialized", False, old_conditions, "ContainersNotInitialized"),
                    _condition("ContainersReady", False, old_conditions, "PodFailed"),
                    _condition("Ready", False, old_conditions, "PodFailed")]
                return status
        names = [c.get("name") for c in spec.get("containers") or []]
        by_name = {s["name"]: s for s in statuses}
        ready = bool(names) and all(by_name.get(n, {}).get("ready") for n in names)
        states = [next(iter(by_name[n]["state"])) if n in by_name else "waiting" for n in names]
        if states and all(s == "terminated" for s in states) and not crash_loop and policy != "Always":
            codes = [by_name[n]["state"]["terminated"].get("exitCode", 0) for n in names]
            if all(code == 0 for code in codes):
                phase = "Succeeded"
            elif policy == "Never":
                phase = "Failed"
            else:
                phase = "Running"
        elif initialized and any(s != "waiting" for s in states):
            phase = "Running"
        else:
            phase = "Pending"
        status["phase"] = phase
        status["containerStatuses"] = statuses
        status["conditions"] = [
            _condition("PodScheduled", True, old_conditions),
            _condition("Initialized", initialized, old_conditions, "ContainersNotInitialized"),
            _condition("ContainersReady", ready, old_conditions, "ContainersNotReady"),
            _condition("Ready", ready, old_conditions, "ContainersNotReady")]
        return status

    async def _write_status(self, status: Obj) -> None:
        if _same_status(self.pod.get("status") or {}, status) or self.origin is None:
            return
        meta = self.pod["metadata"]
        try:
            updated = await self.origin.patch(PODS, meta["name"], {"status": status}, subresource="status",
                                              tenant=meta.get("tenant") or None, namespace=meta.get("namespace"))
        except APIError as exc:
            if exc.code == 404:
                return  # deleted meanwhile; the informer tells the worker
            raise
        if updated.get("metadata", {}).get("uid") == self.uid:
            self.pod = updated  # so an unchanged next pass writes nothing

    async def _terminate(self) -> float | None:
        meta, spec = self.pod["metadata"], self.pod.get("spec") or {}
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        if self.runtime is not None:
            observed = self.agent.observed.get(self.uid)
            for c in observed.containers if observed else []:
                if c.state == "running":
                    self.event(NORMAL, "Killing", f"Stopping {self._what()} {c.name}", c.name)
            await self.runtime.kill_pod(self.pod, int(grace))
        self.agent.volumes.forget(self.uid)
        self.agent.observed.pop(self.uid, None)
        if self.origin is not None:
            try:
                await self.origin.delete(PODS, meta["name"], tenant=meta.get("tenant") or None,
                                         namespace=meta.get("namespace"), grace_period_seconds=0,
                                         preconditions={"uid": self.uid})
            except APIError as exc:
                if exc.code not in (404, 409):
                    raise
        log.info("pod %s: terminated and deleted", self.key)
        return None


# -- the agent --------------------------------------------------------------------------------------

class NodeAgent:
    """One node: registration, heartbeats, pod workers and actions."""

    def __init__(self, options: NodeAgentOptions, *, shared: SharedParts | None = None) -> None:
        self.options = options
        self.node = options.node_name
        self.runtimes: dict[str, Runtime] = {}
        for rt in options.runtimes:
            if rt.kind in self.runtimes:
                raise ValueError(f"two {rt.kind} runtimes: {self.runtimes[rt.kind].name} and {rt.name}")
            self.runtimes[rt.kind] = rt
        self._shared = shared
        self.pods: PodSource
        self.actions: PodSource
        if shared is not None:  # many agents in one process (hollow nodes): one pool, one watch per kind
            self.client, self.tenant_clients = shared.client, list(shared.tenant_clients)
            self.pods, self.actions = shared.pods(self.node), shared.actions(self.node)
        else:
            self.client = Client(options.config, component="node-agent", qps=options.qps, burst=options.burst)
            tenants = options.tenant_servers or [options.config]
            self.tenant_clients = [self.client if t is options.config else
                                   Client(t, component="node-agent", qps=options.qps, burst=options.burst)
                                   for t in tenants]
            selector = f"spec.nodeName={self.node}"
            self.pods = Informer(self.tenant_clients, PODS, tenant=ALL_TENANTS, field_selector=selector,
                                 name="pods")
            self.actions = Informer(self.tenant_clients, ACTIONS, tenant=ALL_TENANTS, field_selector=selector,
                                    name="actions")
        self.workers: dict[str, _PodWorker] = {}
        self.observed: dict[str, PodState] = {}  # uid -> what the runtime last said
        self.volumes = VolumeManager(options.root_dir, ttl=options.config_ttl, allocatable=self._capacity)
        if shared is not None:
            self.volumes._cache, self.volumes._inflight = shared.volume_cache, shared.volume_inflight
        self._recorders: dict[int, EventRecorder] = {}  # id(client) -> its recorder: events go where the pod is
        self._event_loop: asyncio.AbstractEventLoop | None = None
        for rt in self.runtimes.values():
            if hasattr(rt, "events"):  # a runtime that reports events (see arktos.agent.runtime.EventSink)
                rt.events = self._runtime_event  # type: ignore[attr-defined]
        self.host_ip = options.node_ip or _host_ip()
        self.server: Any = None  # arktos.agent.server.AgentServer once started
        self.server_port = 0
        self._actions_running: set[str] = set()
        self._tasks: list[asyncio.Task] = []
        self._conditions: list[Obj] = []

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self._event_loop = asyncio.get_running_loop()
        for rt in self.runtimes.values():
            await rt.start()
        for rt in self.runtimes.values():  # adoption: what already runs is not started again
            for state in await rt.pods():
                self.observed[state.uid] = state
        if self.observed:
            log.info("adopting %d pods the runtimes already run", len(self.observed))
        self.recorder(self.client).event(self._node_ref(), NORMAL, "Starting", "Starting node agent.")
        if self.options.serve_address is not None:  # before registering: the Node publishes its port
            from arktos.agent.server import AgentServer

            self.server = AgentServer(self, address=self.options.serve_address, port=self.options.serve_port,
                                      tls=self.options.serve_tls)
            self.server_port = await self.server.start()
        await self._register()
        await self._renew_lease()
        self.pods.add_handler(on_add=self._pod_added, on_update=lambda _o, n: self._pod_added(n),
                              on_delete=self._pod_deleted)
        self.actions.add_handler(on_add=self._action, on_update=lambda _o, n: self._action(n))
        await self.pods.start()
        await self.actions.start()
        self._tasks = [asyncio.create_task(self._loop(self._renew_lease, self.options.lease_renew_interval)),
                       asyncio.create_task(self._loop(self._update_node_status,
                                                      self.options.status_update_interval)),
                       asyncio.create_task(self._loop(self._relist, self.options.relist_interval))]
        log.info("node agent for %s started with runtimes %s", self.node,
                 ", ".join(f"{k}={r.name}" for k, r in self.runtimes.items()))

    async def stop(self) -> None:
        tasks = self._tasks + [w.task for w in self.workers.values()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.server is not None:
            await self.server.stop()
        await self.actions.stop()
        await self.pods.stop()
        for rt in self.runtimes.values():
            with contextlib.suppress(Exception):
                await rt.stop()
        for rec in self._recorders.values():  # what is queued is written, unless the server is gone
            with contextlib.suppress(Exception):
                await rec.stop(timeout=5)
        if self._shared is None:  # shared clients belong to whoever shares them
            for c in {id(c): c for c in [self.client, *self.tenant_clients]}.values():
                await c.close()

    # -- events ---------------------------------------------------------------------------

    def recorder(self, client: Client) -> EventRecorder:
        """The event recorder writing to `client`'s server (one per partition the agent talks to)."""
        rec = self._recorders.get(id(client))
        if rec is None:
            rec = self._recorders[id(client)] = EventRecorder(client, EVENT_COMPONENT, host=self.node)
        return rec

    def _node_ref(self) -> Obj:
        # kubelet's node reference: the name doubles as UID, which is what `kubectl describe node` looks for.
        return {"kind": "Node", "name": self.node, "uid": self.node}

    def _runtime_event(self, event: RuntimeEvent) -> None:
        """A runtime's EventSink: safe from any thread; events of pods without a worker are dropped."""
        loop = self._event_loop
        if loop is None or loop.is_closed():
            return
        try:
            here = asyncio.get_running_loop() is loop
        except RuntimeError:
            here = False
        if here:
            self._pod_event(event)
        else:
            loop.call_soon_threadsafe(self._pod_event, event)

    def _pod_event(self, event: RuntimeEvent) -> None:
        worker = self.workers.get(event.pod_uid)
        if worker is None:
            log.debug("event %s for pod %s that has no worker: dropped", event.reason, event.pod_uid)
            return
        try:
            worker.event(event.type, event.reason, event.message, event.container)
        except ValueError as exc:  # a bad type from a runtime must not break the caller
            log.warning("runtime event %s: %s", event.reason, exc)

    async def _loop(self, fn: Callable[[], Any], interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await fn()
            except asyncio.CancelledError:
                raise
            except (APIError, TransportError) as exc:
                log.warning("%s: %s", fn.__name__, exc)
            except Exception:
                log.exception("%s failed", fn.__name__)

    # -- node and lease --------------------------------------------------------------------

    def _capacity(self) -> Obj:
        opts = self.options
        cap: Obj = {"cpu": str(os.cpu_count() or 1), "memory": _machine_memory()}
        for rt in self.runtimes.values():
            cap.update(rt.capacity() or {})
        if opts.cpu:
            cap["cpu"] = opts.cpu
        if opts.memory:
            cap["memory"] = opts.memory
        cap["pods"] = str(opts.max_pods)
        return cap

    def _node_conditions(self) -> list[Obj]:
        now = _now()
        want = [("Ready", "True", "KubeletReady", "node agent is posting ready status"),
                ("MemoryPressure", "False", "KubeletHasSufficientMemory", "node agent has sufficient memory"),
                ("DiskPressure", "False", "KubeletHasNoDiskPressure", "node agent has no disk pressure"),
                ("PIDPressure", "False", "KubeletHasSufficientPID", "node agent has sufficient PID")]
        old = {c.get("type"): c for c in self._conditions}
        out = []
        for type_, status, reason, message in want:
            prev = old.get(type_)
            since = prev["lastTransitionTime"] if prev and prev.get("status") == status else now
            if (prev is None or prev.get("status") != status) and (type_, status) in _NODE_EVENTS:
                what = _NODE_EVENTS[(type_, status)]
                self.recorder(self.client).event(self._node_ref(), NORMAL, what,
                                                 f"Node {self.node} status is now: {what}")
            out.append({"type": type_, "status": status, "reason": reason, "message": message,
                        "lastHeartbeatTime": now, "lastTransitionTime": since})
        self._conditions = out
        return out

    def _node_status(self) -> Obj:
        cap = self._capacity()
        runtime_versions = ",".join(f"{r.name}://{r.kind}" for r in self.runtimes.values())
        return {
            "capacity": cap, "allocatable": dict(cap), "conditions": self._node_conditions(),
            "addresses": [{"type": "InternalIP", "address": self.host_ip}, {"type": "Hostname", "address": self.node}],
            "nodeInfo": {"machineID": uuid.uuid5(uuid.NAMESPACE_DNS, self.node).hex,
                         "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_DNS, self.node)),
                         "bootID": _boot_id(), "kernelVersion": platform.release(),
                         "osImage": platform.platform(), "containerRuntimeVersion": runtime_versions,
                         "kubeletVersion": AGENT_VERSION, "kubeProxyVersion": AGENT_VERSION,
                         "operatingSystem": "linux", "architecture": _arch()},
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.server_port}},
        }

    def _labels(self) -> Obj:
        labels = {"kubernetes.io/hostname": self.node, "kubernetes.io/os": "linux", "kubernetes.io/arch": _arch()}
        for kind in self.runtimes:
            labels[RUNTIME_LABELS[kind]] = "true"
        return {**labels, **self.options.labels}

    async def _register(self) -> None:
        """Create the Node, or bring an existing one (an agent restart) up to date."""
        status = self._node_status()
        body = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.node, "labels": self._labels()},
                "status": status}
        while True:
            try:
                try:
                    await self.client.create(NODES, body)
                    log.info("registered node %s", self.node)
                except APIError as exc:
                    if exc.code != 409:
                        raise
                    remove = {k: None for k in RUNTIME_LABELS.values() if k not in body["metadata"]["labels"]}
                    await self.client.patch(NODES, self.node, {"metadata": {"labels": {**remove,
                                                                                      **self._labels()}}})
                    log.info("node %s already registered; updated it", self.node)
                await self.client.patch(NODES, self.node, {"status": status}, subresource="status")
                return
            except (APIError, TransportError) as exc:
                log.warning("registering node %s: %s; retrying", self.node, exc)
                await asyncio.sleep(2)

    async def _update_node_status(self) -> None:
        await self.client.patch(NODES, self.node, {"status": {"conditions": self._node_conditions(),
                                                              "capacity": self._capacity(),
                                                              "allocatable": self._capacity()}},
                                subresource="status")

    async def _renew_lease(self) -> None:
        spec = {"holderIdentity": self.node, "leaseDurationSeconds": self.options.lease_duration,
                "renewTime": _now(micro=True)}
        kw = {"tenant": SYSTEM_TENANT, "namespace": NODE_LEASE_NAMESPACE}
        try:
            await self.client.patch(LEASES, self.node, {"spec": spec}, **kw)
            return
        except APIError as exc:
            if exc.code != 404:
                raise
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": self.node, "namespace": NODE_LEASE_NAMESPACE},
                 "spec": {**spec, "acquireTime": spec["renewTime"]}}
        try:
            await self.client.create(LEASES, lease, **kw)
        except APIError as exc:
            if exc.code == 404:  # no kube-node-lease namespace yet
                with contextlib.suppress(APIError):
                    await self.client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                                          "metadata": {"name": NODE_LEASE_NAMESPACE}},
                                             tenant=SYSTEM_TENANT)
                await self.client.create(LEASES, lease, **kw)
            elif exc.code != 409:
                raise

    # -- pods ------------------------------------------------------------------------------

    def _pod_added(self, pod: Obj) -> None:
        meta = pod.get("metadata") or {}
        uid = meta.get("uid")
        if not uid or (pod.get("spec") or {}).get("nodeName") != self.node:
            return
        worker = self.workers.get(uid)
        if worker is None:
            self.workers[uid] = _PodWorker(self, pod)
        else:
            worker.update(pod)

    def _pod_deleted(self, pod: Obj) -> None:
        worker = self.workers.get((pod.get("metadata") or {}).get("uid", ""))
        if worker is not None:
            worker.gone = True
            worker.wake.set()

    async def _relist(self) -> None:
        """Ask the runtimes what runs: wake the workers whose pods changed, kill what nobody asked for."""
        seen: set[str] = set()
        for rt in self.runtimes.values():
            for state in await rt.pods():
                seen.add(state.uid)
                worker = self.workers.get(state.uid)
                if worker is not None:
                    if self.observed.get(state.uid) != state:
                        self.observed[state.uid] = state
                        worker.wake.set()
                elif self.pods.has_synced() and not any(
                        (p.get("metadata") or {}).get("uid") == state.uid for p in self.pods.list()):
                    log.info("pod %s/%s/%s (%s) runs but no API server has it: killing it", state.tenant,
                             state.namespace, state.name, state.uid)
                    await rt.kill_pod({"metadata": {"uid": state.uid, "name": state.name,
                                                    "namespace": state.namespace, "tenant": state.tenant},
                                       "spec": {}}, 0)
                    self.volumes.forget(state.uid)
                    self.observed.pop(state.uid, None)
        for uid in [u for u in self.observed if u not in seen]:
            del self.observed[uid]  # gone from the runtime: a worker starts it again
            if (worker := self.workers.get(uid)) is not None:
                worker.wake.set()
        if self.pods.has_synced():  # volumes of pods that went while the agent was down (kubelet's orphan cleanup)
            self.volumes.cleanup_orphans(set(self.workers) | seen)

    # -- actions ---------------------------------------------------------------------------

    def _action(self, action: Obj) -> None:
        if (action.get("status") or {}).get("complete"):
            return
        key = object_key(action)
        if key in self._actions_running or (action.get("spec") or {}).get("nodeName") != self.node:
            return
        self._actions_running.add(key)
        task = asyncio.create_task(self._perform(action, key), name=f"action-{key}")
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    async def _perform(self, action: Obj, key: str) -> None:
        meta, spec = action["metadata"], action.get("spec") or {}
        try:
            pod_key = "/".join(p for p in (meta.get("tenant"), meta.get("namespace"), spec.get("podName")) if p)
            pod = self.pods.get(pod_key)
            if pod is None or (spec.get("podID") and pod["metadata"].get("uid") != spec.get("podID")):
                result: Obj = {"complete": True, "error": f"pod {spec.get('podName')} does not run on {self.node}"}
            elif (rt := self.runtimes.get(_kind(pod))) is None:
                result = {"complete": True, "error": f"no {_kind(pod)} runtime on {self.node}"}
            else:
                try:
                    result = await rt.action(pod, action)
                except Exception as exc:
                    log.exception("action %s failed", key)
                    result = {"complete": True, "error": str(exc)}
            result = {"podName": spec.get("podName", ""), "podID": spec.get("podID", ""), **result}
            result.setdefault("complete", True)
            if pod is not None and (worker := self.workers.get(pod["metadata"].get("uid", ""))) is not None:
                _action_event(worker, meta["name"], spec, result)
            origin = self.actions.origin(key) or self.tenant_clients[0]
            for attempt in range(5):
                try:
                    await origin.patch(ACTIONS, meta["name"], {"status": result}, subresource="status",
                                       tenant=meta.get("tenant") or None, namespace=meta.get("namespace"))
                    log.info("action %s: %s", key, result)
                    break
                except (APIError, TransportError) as exc:
                    if isinstance(exc, APIError) and exc.code == 404:
                        break
                    log.warning("action %s: writing the status: %s", key, exc)
                    await asyncio.sleep(1 + attempt)
        finally:
            self._actions_running.discard(key)


def _action_event(worker: _PodWorker, name: str, spec: Obj, result: Obj) -> None:
    """The outcome of a VM action as an event on its pod, so `kubectl describe pod` tells the story."""
    vm = ((worker.pod.get("spec") or {}).get("virtualMachine") or {}).get("name", "")
    if result.get("error"):
        op = name.rsplit("-", 1)[0] or "VM"
        worker.event(WARNING, "ActionFailed", f"{op} action {name} failed: {result['error']}", vm)
    elif "rebootStatus" in result:
        how = f": {result['message']}" if result.get("message") else ""
        worker.event(NORMAL, "Rebooted", f"Virtual machine {vm} rebooted (action {name}){how}", vm)
    elif "snapshotStatus" in result:
        sid = (result.get("snapshotStatus") or {}).get("snapshotID", "")
        worker.event(NORMAL, "SnapshotCreated", f"Snapshot {sid} of virtual machine {vm} taken (action {name})", vm)
    elif "restoreStatus" in result:
        sid = (spec.get("restoreAction") or {}).get("snapshotID", "")
        worker.event(NORMAL, "SnapshotRestored", f"Virtual machine {vm} restored to snapshot {sid} (action {name})",
                     vm)


def _host_ip() -> str:
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.255.255.255", 1))  # no packet is sent: this only picks the outgoing address
        return s.getsockname()[0]
    return "127.0.0.1"


def _boot_id() -> str:
    with contextlib.suppress(OSError), open("/proc/sys/kernel/random/boot_id") as f:
        return f.read().strip()
    return ""


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
