"""The container runtime: pods as CRI sandboxes and containers in containerd, as a kubelet runs them.

A pod is one sandbox (its network namespace, set up by the CNI bridge plugin,
and the pause process) and one container per `spec.containers` entry.  Each
start of a container is a new CRI container whose `attempt` is the restart
count; the previous instance is kept (stopped) so `kubectl logs --previous`
has something to read, older ones are removed.  Everything this runtime
creates carries the labels below, with the node's name, so it finds its pods
again after an agent restart (adoption) and never touches anyone else's.

Logs are containerd's CRI-format files under `<root>/pods/<tenant>_<ns>_<name>_<uid>/`;
exec goes through CRI's Exec, whose streaming URL the agent relays; exec probes through
ExecSync, and a failed liveness probe stops the one container (arktos.agent.prober).

Init containers run in order, each to completion, before the containers start.
Volumes are emptyDir and hostPath: configMap, secret, downwardAPI and projected
ones arrive as hostPath volumes to what the agent wrote, and env from ConfigMaps
and Secrets as plain values (arktos.agent.volumes).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

import grpc

from arktos.agent.dns import pod_dns_config, read_resolv_conf
from arktos.agent.runtime import (
    ContainerState,
    EventSink,
    LogFile,
    NoSuchContainer,
    NotSupported,
    PodState,
    RuntimeEvent,
    container_hash,
    discard_events,
    restarts,
)
from arktos.agent.runtimes._cri import CONTAINER_STATES, SANDBOX_READY, CRIClient, CRIError
from arktos.api.quantity import int_value, milli_value

__all__ = ["ContainerdRuntime"]

log = logging.getLogger("arktos.agent.containerd")

Obj = dict[str, Any]

L_NODE = "arktos.io/node"
L_UID = "arktos.io/pod-uid"
L_NAME = "arktos.io/pod-name"
L_NAMESPACE = "arktos.io/pod-namespace"
L_TENANT = "arktos.io/pod-tenant"
L_CONTAINER = "arktos.io/container-name"
L_TYPE = "arktos.io/container-type"  # "init" on init containers
A_HASH = "arktos.io/container-hash"  # of the container's spec: a changed spec means a new container

_CPU_PERIOD = 100_000  # µs, as kubelet sets it
_MIN_SHARES = 2
_PULL_BACKOFF_INITIAL = 5.0
_PULL_BACKOFF_MAX = 300.0
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def _rfc3339(ns: int) -> str | None:
    if not ns:
        return None
    return datetime.datetime.fromtimestamp(ns / 1e9, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: known names are replaced, unknown ones kept, `$$` is a `$`."""
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return _VAR_REF.sub(sub, value)


class _Waiting(Exception):
    """A container cannot be created now; reported as its waiting reason and message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


class ContainerdRuntime:
    """A `Runtime` of kind "container" over containerd's CRI socket."""

    kind = "container"
    name = "containerd"

    def __init__(self, endpoint: str, *, node_name: str, root_dir: str | os.PathLike[str],
                 pull_timeout: float = 600.0) -> None:
        self.endpoint = endpoint
        self.node_name = node_name
        self.root = Path(root_dir)
        self.pull_timeout = pull_timeout
        self.events: EventSink = discard_events
        self.cri: CRIClient | None = None
        self.host_ip = ""
        # A container that could not be created: uid -> name -> (reason, message); pods() reports it.
        self._waiting: dict[str, dict[str, tuple[str, str]]] = {}
        self._init_names: dict[str, set[str]] = {}  # uid -> its init containers' names
        self._pull_backoff: dict[str, tuple[float, float]] = {}  # image -> (delay, retry at)
        self._status_cache: dict[str, Any] = {}  # container id -> CRI ContainerStatus (exited ones never change)
        self._sandbox_ip: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # Pods' resolvers (kubelet's --cluster-dns, --cluster-domain, --resolv-conf): see arktos.agent.dns.
        self.cluster_dns: list[str] = []
        self.cluster_domain = "cluster.local"
        self.resolv_conf = "/etc/resolv.conf"

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        self.cri = CRIClient(self.endpoint)
        try:
            version = await self.cri.call("Version", version="v1", deadline=10)
            status = await self.cri.call("Status", deadline=10)
        except CRIError as exc:
            await self.cri.close()
            hint = "is containerd running? (`arktos up` starts one; see its log)" \
                if exc.code == grpc.StatusCode.UNAVAILABLE else ""
            raise RuntimeError(f"containerd at {self.endpoint}: {exc.details or exc.code.name}. {hint}") from None
        conditions = {c.type: c for c in status.status.conditions}
        runtime_ready = conditions.get("RuntimeReady")
        if runtime_ready is not None and not runtime_ready.status:
            raise RuntimeError(f"containerd at {self.endpoint} is not ready: {runtime_ready.message}")
        network = conditions.get("NetworkReady")
        if network is not None and not network.status:
            log.warning("containerd's pod network is not ready (%s): pods will fail until a CNI config exists",
                        network.message)
        log.info("containerd %s (CRI %s) at %s", version.runtime_version, version.runtime_api_version, self.endpoint)
        self.root.mkdir(parents=True, exist_ok=True)

    async def stop(self) -> None:
        if self.cri is not None:
            await self.cri.close()
            self.cri = None

    def _client(self) -> CRIClient:
        if self.cri is None:
            raise RuntimeError("the containerd runtime is not started")
        return self.cri

    def _lock(self, uid: str) -> asyncio.Lock:
        lock = self._locks.get(uid)
        if lock is None:
            lock = self._locks[uid] = asyncio.Lock()
        return lock

    def pod_dir(self, pod: Obj) -> Path:
        meta = pod.get("metadata") or {}
        name = "_".join((meta.get("tenant") or "system", meta.get("namespace") or "default",
                         meta.get("name") or "", meta.get("uid") or ""))
        return self.root / "pods" / name

    # -- sync ------------------------------------------------------------------------

    async def sync_pod(self, pod: Obj) -> PodState:
        uid = pod["metadata"]["uid"]
        async with self._lock(uid):
            return await self._sync(pod)

    async def _sync(self, pod: Obj) -> PodState:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        uid = meta["uid"]
        waiting: dict[str, tuple[str, str]] = {}
        self._waiting[uid] = waiting
        inits = spec.get("initContainers") or []
        self._init_names[uid] = {c.get("name", "") for c in inits}
        try:
            sandbox_id, sandbox_config = await self._ensure_sandbox(pod)
        except CRIError as exc:
            msg = f"failed to create the pod sandbox: {exc.details}"
            self.events(RuntimeEvent(uid, "FailedCreatePodSandBox", msg, "Warning"))
            for c in [*inits, *(spec.get("containers") or [])]:
                waiting[c.get("name", "")] = ("ContainerCreating", msg)
            return await self._state(pod)
        cri = self._client()
        policy = spec.get("restartPolicy") or "Always"
        existing = await self._containers({L_UID: uid})
        if inits and not await self._run_inits(pod, inits, existing, sandbox_id, sandbox_config, waiting):
            return await self._state(pod)
        for c in spec.get("containers") or []:
            name = c.get("name", "")
            attempts = sorted((x for x in existing if x.labels.get(L_CONTAINER) == name),
                              key=lambda x: x.metadata.attempt)
            latest = attempts[-1] if attempts else None
            if latest is not None and latest.pod_sandbox_id == sandbox_id:
                state = CONTAINER_STATES.get(latest.state, "unknown")
                if state in ("running", "created") and latest.annotations.get(A_HASH) not in (None, container_hash(c)):
                    # The container's spec changed (a new image, say): kubelet replaces it, and so do we.
                    self.events(RuntimeEvent(uid, "Killing", f"Container {name} definition changed, will be "
                                                             "restarted", container=name))
                    await self._stop_container(latest.id, int(spec.get("terminationGracePeriodSeconds", 30)))
                elif state in ("running", "created"):
                    if state == "created":
                        await cri.call("StartContainer", container_id=latest.id)
                    continue
                if state == "exited":
                    status = await self._status(latest.id)
                    if not restarts(policy, status.exit_code if status else None):
                        continue
            attempt = latest.metadata.attempt + 1 if latest is not None else 0
            try:
                await self._start_container(pod, c, sandbox_id, sandbox_config, attempt)
            except _Waiting as exc:
                waiting[name] = (exc.reason, exc.message)
                continue
            except CRIError as exc:
                waiting[name] = ("CreateContainerError", exc.details)
                self.events(RuntimeEvent(uid, "Failed", f"Error: {exc.details}", "Warning", name))
                continue
            for old in attempts[:-1]:  # keep one previous instance for `logs --previous`
                await self._remove_container(old.id)
        return await self._state(pod)

    async def _run_inits(self, pod: Obj, inits: list[Obj], existing: list[Any], sandbox_id: str,
                         sandbox_config: Obj, waiting: dict[str, tuple[str, str]]) -> bool:
        """Run the init containers in order, one at a time, in this sandbox; True once all succeeded.

        A new sandbox runs them all again (kubelet does the same).  A failed one runs again unless
        restartPolicy is Never, in which case the pod has failed and nothing more starts."""
        uid, spec = pod["metadata"]["uid"], pod.get("spec") or {}
        policy = spec.get("restartPolicy") or "Always"
        for c in inits:
            name = c.get("name", "")
            attempts = sorted((x for x in existing if x.labels.get(L_CONTAINER) == name),
                              key=lambda x: x.metadata.attempt)
            latest = attempts[-1] if attempts else None
            if latest is not None and latest.pod_sandbox_id == sandbox_id:
                state = CONTAINER_STATES.get(latest.state, "unknown")
                if state == "created":
                    await self._client().call("StartContainer", container_id=latest.id)
                    return False
                if state == "running":
                    return False
                status = await self._status(latest.id)
                if status is not None and status.exit_code == 0:
                    continue
                if policy == "Never":
                    return False
            attempt = latest.metadata.attempt + 1 if latest is not None else 0
            try:
                await self._start_container(pod, c, sandbox_id, sandbox_config, attempt, init=True)
            except _Waiting as exc:
                waiting[name] = (exc.reason, exc.message)
            except CRIError as exc:
                waiting[name] = ("CreateContainerError", exc.details)
                self.events(RuntimeEvent(uid, "Failed", f"Error: {exc.details}", "Warning", name))
            else:
                for old in attempts[:-1]:
                    await self._remove_container(old.id)
            return False
        return True

    async def _ensure_sandbox(self, pod: Obj) -> tuple[str, Obj]:
        """The pod's ready sandbox, created (or re-created after it died) when there is none."""
        meta = pod["metadata"]
        uid = meta["uid"]
        cri = self._client()
        sandboxes = (await cri.call("ListPodSandbox", filter={"label_selector": {L_UID: uid, L_NODE: self.node_name}}
                                    )).items
        ready = [s for s in sandboxes if s.state == SANDBOX_READY]
        config = self._sandbox_config(pod, max((s.metadata.attempt for s in sandboxes), default=-1) + 1)
        if ready:
            best = max(ready, key=lambda s: s.created_at)
            config["metadata"]["attempt"] = best.metadata.attempt
            return best.id, config
        for s in sandboxes:  # dead sandboxes: their containers go with them
            self.events(RuntimeEvent(uid, "SandboxChanged", "Pod sandbox changed, it will be killed and re-created."))
            await self._remove_sandbox(s.id)
        os.makedirs(config["log_directory"], exist_ok=True)
        reply = await cri.call("RunPodSandbox", config=config, deadline=120)
        return reply.pod_sandbox_id, config

    def _sandbox_config(self, pod: Obj, attempt: int) -> Obj:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        host_network = bool(spec.get("hostNetwork"))
        ports = [{"protocol": p.get("protocol") or "TCP", "container_port": p.get("containerPort", 0),
                  "host_port": p["hostPort"], "host_ip": p.get("hostIP", "")}
                 for c in spec.get("containers") or [] for p in c.get("ports") or [] if p.get("hostPort")]
        config: Obj = {
            "metadata": {"name": meta.get("name", ""), "uid": meta["uid"], "namespace": meta.get("namespace", ""),
                         "attempt": attempt},
            "hostname": (spec.get("hostname") or meta.get("name", ""))[:63] if not host_network else "",
            "log_directory": str(self.pod_dir(pod)),
            "port_mappings": ports,
            "labels": self._pod_labels(pod),
            "annotations": {k: str(v) for k, v in (meta.get("annotations") or {}).items()},
            "linux": {"security_context": {"namespace_options": {
                "network": "NODE" if host_network else "POD",
                "pid": "NODE" if spec.get("hostPID") else ("POD" if spec.get("shareProcessNamespace") else "CONTAINER"),
                "ipc": "NODE" if spec.get("hostIPC") else "POD"}}},
        }
        dns_config = pod_dns_config(pod, self.cluster_dns, self.cluster_domain, read_resolv_conf(self.resolv_conf))
        if dns_config is not None:  # None: containerd copies the host's resolv.conf
            config["dns_config"] = dns_config
        return config

    def _pod_labels(self, pod: Obj) -> dict[str, str]:
        meta = pod["metadata"]
        return {L_NODE: self.node_name, L_UID: meta["uid"], L_NAME: meta.get("name", ""),
                L_NAMESPACE: meta.get("namespace", ""), L_TENANT: meta.get("tenant") or "system"}

    async def _ensure_image(self, pod: Obj, c: Obj) -> str:
        image = c.get("image") or ""
        uid, name = pod["metadata"]["uid"], c.get("name", "")
        if not image:
            raise _Waiting("InvalidImageName", "the container has no image")
        cri = self._client()
        policy = c.get("imagePullPolicy") or "IfNotPresent"
        present = (await cri.call("ImageStatus", image={"image": image})).image.id
        if policy == "Never" and not present:
            msg = f'Container image "{image}" is not present with pull policy of Never'
            self.events(RuntimeEvent(uid, "ErrImageNeverPull", msg, "Warning", name))
            raise _Waiting("ErrImageNeverPull", msg)
        if present and policy != "Always":
            self.events(RuntimeEvent(uid, "Pulled", f'Container image "{image}" already present on machine',
                                     container=name))
            return present
        loop = asyncio.get_running_loop()
        delay, retry_at = self._pull_backoff.get(image, (0.0, 0.0))
        if loop.time() < retry_at:
            raise _Waiting("ImagePullBackOff", f'Back-off pulling image "{image}"')
        self.events(RuntimeEvent(uid, "Pulling", f'Pulling image "{image}"', container=name))
        started = loop.time()
        try:
            ref = (await cri.call("PullImage", image={"image": image}, deadline=self.pull_timeout)).image_ref
        except CRIError as exc:
            delay = min(_PULL_BACKOFF_MAX, delay * 2 if delay else _PULL_BACKOFF_INITIAL)
            self._pull_backoff[image] = (delay, loop.time() + delay)
            msg = f'Failed to pull image "{image}": {exc.details}'
            self.events(RuntimeEvent(uid, "Failed", msg, "Warning", name))
            raise _Waiting("ErrImagePull", msg) from None
        self._pull_backoff.pop(image, None)
        self.events(RuntimeEvent(uid, "Pulled", f'Successfully pulled image "{image}" in '
                                                f"{loop.time() - started:.3f}s", container=name))
        return ref

    async def _start_container(self, pod: Obj, c: Obj, sandbox_id: str, sandbox_config: Obj, attempt: int,
                               init: bool = False) -> None:
        await self._ensure_image(pod, c)
        config = await self._container_config(pod, c, sandbox_id, attempt)
        if init:
            config["labels"][L_TYPE] = "init"
        cri = self._client()
        created = await cri.call("CreateContainer", pod_sandbox_id=sandbox_id, config=config,
                                 sandbox_config=sandbox_config, deadline=120)
        try:
            await cri.call("StartContainer", container_id=created.container_id, deadline=120)
        except CRIError:
            await self._remove_container(created.container_id)
            raise

    async def _container_config(self, pod: Obj, c: Obj, sandbox_id: str, attempt: int) -> Obj:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        name = c.get("name", "")
        env = await self._env(pod, c, sandbox_id)
        config: Obj = {
            "metadata": {"name": name, "attempt": attempt},
            "image": {"image": c.get("image", "")},
            "command": [expand(x, env) for x in c.get("command") or []],
            "args": [expand(x, env) for x in c.get("args") or []],
            "working_dir": c.get("workingDir") or "",
            "envs": [{"key": k, "value": v} for k, v in env.items()],
            "mounts": self._mounts(pod, c),
            "labels": {**self._pod_labels(pod), L_CONTAINER: name},
            "annotations": {"arktos.io/restart-count": str(attempt), A_HASH: container_hash(c),
                            "arktos.io/termination-grace": str(spec.get("terminationGracePeriodSeconds", 30))},
            "log_path": f"{name}/{attempt}.log",
            "stdin": bool(c.get("stdin")), "stdin_once": bool(c.get("stdinOnce")), "tty": bool(c.get("tty")),
            "linux": {"resources": self._resources(c), "security_context": self._security(spec, c)},
        }
        del meta
        return config

    async def _env(self, pod: Obj, c: Obj, sandbox_id: str) -> dict[str, str]:
        """The container's environment in order, with $(VAR) references to earlier entries expanded."""
        meta, spec = pod["metadata"], pod.get("spec") or {}
        fields = {
            "metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", ""),
            "metadata.uid": meta.get("uid", ""), "metadata.tenant": meta.get("tenant") or "system",
            "spec.nodeName": spec.get("nodeName") or self.node_name,
            "spec.serviceAccountName": spec.get("serviceAccountName") or "",
            "status.hostIP": self.host_ip, "status.podIP": await self._ip(sandbox_id),
        }
        # The in-cluster API's address first (the agent's volume pass found it), so the pod's own env wins.
        env: dict[str, str] = dict(pod.get("_kubernetesServiceEnv") or {})
        for e in c.get("env") or []:
            key = e.get("name", "")
            if "value" in e or not e.get("valueFrom"):
                env[key] = expand(str(e.get("value") or ""), env)
                continue
            source = e["valueFrom"]
            if "fieldRef" in source:
                path = (source["fieldRef"] or {}).get("fieldPath", "")
                if path.startswith(("metadata.labels['", "metadata.annotations['")):
                    which, _, rest = path.partition("['")
                    env[key] = str((meta.get(which.split(".")[1]) or {}).get(rest.rstrip("']"), ""))
                elif path in fields:
                    env[key] = fields[path]
                else:
                    raise _Waiting("CreateContainerConfigError", f"env {key}: unsupported fieldPath {path!r}")
            elif "resourceFieldRef" in source:
                ref = source["resourceFieldRef"] or {}
                resource = ref.get("resource", "")
                kind, _, rname = resource.partition(".")
                value = ((c.get("resources") or {}).get(kind) or {}).get(rname)
                env[key] = str(int_value(value)) if value is not None else "0"
            else:
                kind = next(iter(source), "?")
                raise _Waiting("CreateContainerConfigError",
                               f"env {key}: {kind} is not supported by the containerd runtime yet")
        return env

    def _mounts(self, pod: Obj, c: Obj) -> list[Obj]:
        volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
        mounts = []
        for m in c.get("volumeMounts") or []:
            vol = volumes.get(m.get("name"))
            if vol is None:
                raise _Waiting("CreateContainerConfigError", f"volume {m.get('name')!r} is not in the pod's volumes")
            if "emptyDir" in vol:
                host = self.pod_dir(pod) / "volumes" / "empty-dir" / vol["name"]
                host.mkdir(parents=True, exist_ok=True)
            elif "hostPath" in vol:
                hp = vol["hostPath"] or {}
                host = Path(hp.get("path", ""))
                if hp.get("type") == "DirectoryOrCreate":
                    host.mkdir(parents=True, exist_ok=True)
                elif not host.exists():
                    raise _Waiting("CreateContainerConfigError", f"hostPath {host} does not exist on the node")
            else:
                kind = next((k for k in vol if k != "name"), "?")
                raise _Waiting("CreateContainerConfigError",
                               f"volume {vol.get('name')!r}: {kind} volumes are not supported by the containerd "
                               "runtime yet (emptyDir and hostPath are)")
            sub = m.get("subPath") or ""
            mounts.append({"container_path": m.get("mountPath", ""), "host_path": str(host / sub if sub else host),
                           "readonly": bool(m.get("readOnly"))})
        return mounts

    @staticmethod
    def _resources(c: Obj) -> Obj:
        res = c.get("resources") or {}
        limits, requests = res.get("limits") or {}, res.get("requests") or {}
        out: Obj = {}
        cpu_request = requests.get("cpu", limits.get("cpu"))
        if cpu_request is not None:
            out["cpu_shares"] = max(_MIN_SHARES, milli_value(cpu_request) * 1024 // 1000)
        else:
            out["cpu_shares"] = _MIN_SHARES
        if "cpu" in limits:
            out["cpu_period"] = _CPU_PERIOD
            out["cpu_quota"] = max(1000, milli_value(limits["cpu"]) * _CPU_PERIOD // 1000)
        if "memory" in limits:
            out["memory_limit_in_bytes"] = int_value(limits["memory"])
        return out

    @staticmethod
    def _security(spec: Obj, c: Obj) -> Obj:
        pod_sc, sc = spec.get("securityContext") or {}, c.get("securityContext") or {}
        out: Obj = {"privileged": bool(sc.get("privileged")), "readonly_rootfs": bool(sc.get("readOnlyRootFilesystem"))}
        user = sc.get("runAsUser", pod_sc.get("runAsUser"))
        group = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
        if user is not None:
            out["run_as_user"] = {"value": int(user)}
        if group is not None:
            out["run_as_group"] = {"value": int(group)}
        caps = sc.get("capabilities") or {}
        if caps:
            out["capabilities"] = {"add_capabilities": [f"CAP_{x}" if not x.startswith("CAP_") else x
                                                        for x in caps.get("add") or []],
                                   "drop_capabilities": [f"CAP_{x}" if not x.startswith("CAP_") else x
                                                         for x in caps.get("drop") or []]}
        out["namespace_options"] = {
            "network": "NODE" if spec.get("hostNetwork") else "POD",
            "pid": "NODE" if spec.get("hostPID") else ("POD" if spec.get("shareProcessNamespace") else "CONTAINER"),
            "ipc": "NODE" if spec.get("hostIPC") else "POD"}
        return out

    # -- state -----------------------------------------------------------------------

    async def _containers(self, labels: dict[str, str]) -> list[Any]:
        reply = await self._client().call("ListContainers", filter={"label_selector": {L_NODE: self.node_name,
                                                                                       **labels}})
        return list(reply.containers)

    async def _status(self, container_id: str, listed_state: int | None = None) -> Any:
        """A container's CRI status.  It changes only with the container's state, so it is asked again
        only when a listing shows another state (the relist runs every second: one call per change,
        not one per container per second)."""
        cached = self._status_cache.get(container_id)
        if cached is not None and (CONTAINER_STATES.get(cached.state) == "exited" or cached.state == listed_state):
            return cached
        try:
            status = (await self._client().call("ContainerStatus", container_id=container_id)).status
        except CRIError as exc:
            if exc.code == grpc.StatusCode.NOT_FOUND:
                self._status_cache.pop(container_id, None)
                return None
            raise
        self._status_cache[container_id] = status
        return status

    async def _ip(self, sandbox_id: str) -> str:
        ip = self._sandbox_ip.get(sandbox_id)
        if ip is None:
            try:
                status = (await self._client().call("PodSandboxStatus", pod_sandbox_id=sandbox_id)).status
            except CRIError:
                return ""
            ip = self._sandbox_ip[sandbox_id] = status.network.ip or self.host_ip
        return ip

    def _container_state(self, x: Any, status: Any) -> ContainerState:
        state = CONTAINER_STATES.get(x.state, "unknown")
        cs = ContainerState(
            name=x.labels.get(L_CONTAINER, x.metadata.name), state="waiting",
            restart_count=int(x.metadata.attempt), image=x.image.image, image_id=x.image_ref,
            container_id=f"containerd://{x.id}")
        if status is not None:
            cs.image_id = status.image_ref or cs.image_id
            cs.started_at = _rfc3339(status.started_at)
        if state == "running":
            cs.state, cs.ready = "running", True
        elif state == "exited":
            cs.state = "terminated"
            if status is not None:
                cs.exit_code, cs.finished_at = int(status.exit_code), _rfc3339(status.finished_at)
                cs.reason = status.reason or ("Completed" if status.exit_code == 0 else "Error")
                cs.message = status.message
        else:
            cs.reason = "ContainerCreating"
        return cs

    async def _pod_states(self, uid: str | None = None) -> dict[str, PodState]:
        cri = self._client()
        selector = {L_NODE: self.node_name, **({L_UID: uid} if uid else {})}
        sandboxes = (await cri.call("ListPodSandbox", filter={"label_selector": selector})).items
        containers = await self._containers({L_UID: uid} if uid else {})
        pods: dict[str, PodState] = {}
        best_sandbox: dict[str, Any] = {}
        for s in sandboxes:
            u = s.labels.get(L_UID, "")
            have = best_sandbox.get(u)
            if have is None or (s.state, -s.created_at) < (have.state, -have.created_at):
                best_sandbox[u] = s
        for u, s in best_sandbox.items():
            pods[u] = PodState(uid=u, namespace=s.labels.get(L_NAMESPACE, ""), name=s.labels.get(L_NAME, ""),
                               tenant=s.labels.get(L_TENANT, ""),
                               ip=await self._ip(s.id) if s.state == SANDBOX_READY else "")
        latest: dict[tuple[str, str], Any] = {}
        for x in containers:
            key = (x.labels.get(L_UID, ""), x.labels.get(L_CONTAINER, ""))
            if key[0] in pods and (key not in latest or x.metadata.attempt > latest[key].metadata.attempt):
                latest[key] = x
        for (u, _), x in sorted(latest.items()):
            state = CONTAINER_STATES.get(x.state, "unknown")
            status = await self._status(x.id, x.state) if state in ("exited", "running") else None
            into = pods[u].init_containers if x.labels.get(L_TYPE) == "init" else pods[u].containers
            into.append(self._container_state(x, status))
        live_ids = {x.id for x in containers}
        for cid in [c for c in self._status_cache if c not in live_ids]:
            del self._status_cache[cid]
        live_sandboxes = {s.id for s in sandboxes}
        for sid in [s for s in self._sandbox_ip if s not in live_sandboxes]:
            del self._sandbox_ip[sid]
        for u, waiting in self._waiting.items():
            if u in pods:
                self._add_waiting(pods[u], waiting, self._init_names.get(u, set()))
        return pods

    @staticmethod
    def _add_waiting(state: PodState, waiting: dict[str, tuple[str, str]], init_names: set[str]) -> None:
        have = {c.name for c in state.containers} | {c.name for c in state.init_containers}
        for n, (r, m) in waiting.items():
            if n not in have:
                into = state.init_containers if n in init_names else state.containers
                into.append(ContainerState(name=n, state="waiting", reason=r, message=m))

    async def _state(self, pod: Obj) -> PodState:
        meta = pod["metadata"]
        uid = meta["uid"]
        state = (await self._pod_states(uid)).get(uid) or PodState(
            uid=uid, namespace=meta.get("namespace", ""), name=meta.get("name", ""), tenant=meta.get("tenant") or "")
        self._add_waiting(state, self._waiting.get(uid) or {}, self._init_names.get(uid, set()))
        spec = pod.get("spec") or {}
        for listed, containers in ((spec.get("containers") or [], state.containers),
                                   (spec.get("initContainers") or [], state.init_containers)):
            order = {c.get("name"): i for i, c in enumerate(listed)}
            containers.sort(key=lambda c: order.get(c.name, len(order)))
        return state

    async def pods(self) -> list[PodState]:
        return list((await self._pod_states()).values())

    # -- removal ---------------------------------------------------------------------

    async def _remove_container(self, container_id: str) -> None:
        try:
            status = await self._status(container_id)
            await self._client().call("RemoveContainer", container_id=container_id)
        except CRIError as exc:
            if exc.code != grpc.StatusCode.NOT_FOUND:
                raise
            return
        self._status_cache.pop(container_id, None)
        if status is not None and status.log_path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(status.log_path)

    async def _remove_sandbox(self, sandbox_id: str) -> None:
        cri = self._client()
        for call in ("StopPodSandbox", "RemovePodSandbox"):
            try:
                await cri.call(call, pod_sandbox_id=sandbox_id, deadline=120)
            except CRIError as exc:
                if exc.code != grpc.StatusCode.NOT_FOUND:
                    raise
        self._sandbox_ip.pop(sandbox_id, None)

    async def kill_pod(self, pod: Obj, grace_seconds: int) -> None:
        meta = pod.get("metadata") or {}
        uid = meta.get("uid", "")
        async with self._lock(uid):
            cri = self._client()
            containers = await self._containers({L_UID: uid})
            running = [x for x in containers if CONTAINER_STATES.get(x.state) == "running"]
            if running:
                for x in running:
                    self.events(RuntimeEvent(uid, "Killing", f"Stopping container {x.labels.get(L_CONTAINER)}",
                                             container=x.labels.get(L_CONTAINER, "")))
                results = await asyncio.gather(*(self._stop_container(x.id, grace_seconds) for x in running),
                                               return_exceptions=True)
                for r in results:
                    if isinstance(r, Exception):
                        log.warning("pod %s: stopping a container: %s", uid, r)
            sandboxes = (await cri.call("ListPodSandbox", filter={"label_selector": {L_UID: uid,
                                                                                     L_NODE: self.node_name}})).items
            for s in sandboxes:
                await self._remove_sandbox(s.id)
            for x in containers:
                self._status_cache.pop(x.id, None)
            self._waiting.pop(uid, None)
            self._init_names.pop(uid, None)
            self._locks.pop(uid, None)
            if meta.get("name"):
                shutil.rmtree(self.pod_dir(pod), ignore_errors=True)

    async def _stop_container(self, container_id: str, grace: int) -> None:
        # The request's `timeout` is the grace period (SIGTERM, then SIGKILL); the deadline outlasts it.
        try:
            await self._client().call("StopContainer", container_id=container_id, timeout=max(0, grace),
                                      deadline=max(0, grace) + 60)
        except CRIError as exc:
            if exc.code != grpc.StatusCode.NOT_FOUND:
                raise

    # -- logs, exec, actions ---------------------------------------------------------

    async def _instance(self, pod: Obj, container: str, previous: bool) -> Any:
        uid = (pod.get("metadata") or {}).get("uid", "")
        attempts = sorted((x for x in await self._containers({L_UID: uid}) if x.labels.get(L_CONTAINER) == container),
                          key=lambda x: x.metadata.attempt)
        if previous:
            if len(attempts) < 2:
                raise NoSuchContainer(f'previous terminated container "{container}" in pod '
                                      f'"{(pod.get("metadata") or {}).get("name", "")}" not found')
            return attempts[-2]
        if not attempts:
            raise NoSuchContainer(f'container "{container}" in pod "{(pod.get("metadata") or {}).get("name", "")}" '
                                  "is waiting to start")
        return attempts[-1]

    async def log_file(self, pod: Obj, container: str, *, previous: bool = False) -> LogFile:
        x = await self._instance(pod, container, previous)
        status = await self._status(x.id)
        if status is None or not status.log_path:
            raise NoSuchContainer(f'container "{container}" has no log')
        return LogFile(Path(status.log_path), cri=True)

    #: containerd's streaming server (kubelet's CRI streaming library) speaks WebSocket only up to v4,
    #: which cannot close stdin; over SPDY it can.  The agent relays to it over SPDY.
    exec_transport = "spdy"

    async def exec_url(self, pod: Obj, container: str, command: list[str], *, stdin: bool, stdout: bool,
                       stderr: bool, tty: bool) -> str:
        x = await self._instance(pod, container, False)
        if CONTAINER_STATES.get(x.state) != "running":
            raise NotSupported(f'container "{container}" is not running; exec needs a running container')
        try:
            reply = await self._client().call("Exec", container_id=x.id, cmd=command, tty=tty, stdin=stdin,
                                              stdout=stdout, stderr=stderr and not tty)
        except CRIError as exc:
            if exc.code == grpc.StatusCode.NOT_FOUND:
                raise NoSuchContainer(f'container "{container}" is gone') from None
            raise
        return str(reply.url)

    async def exec_sync(self, pod: Obj, container: str, command: list[str], timeout: float) -> tuple[int, bytes, bytes]:
        x = await self._instance(pod, container, False)
        if CONTAINER_STATES.get(x.state) != "running":
            raise NoSuchContainer(f'container "{container}" is not running')
        seconds = max(1, int(-(-timeout // 1)))  # CRI's timeout is whole seconds
        try:
            reply = await self._client().call("ExecSync", container_id=x.id, cmd=command, timeout=seconds,
                                              deadline=seconds + 10)
        except CRIError as exc:
            if exc.code == grpc.StatusCode.DEADLINE_EXCEEDED or "timeout" in exc.details:
                raise TimeoutError(f"command {command!r} timed out after {seconds}s") from None
            if exc.code == grpc.StatusCode.NOT_FOUND:
                raise NoSuchContainer(f'container "{container}" is gone') from None
            raise
        return int(reply.exit_code), bytes(reply.stdout), bytes(reply.stderr)

    async def kill_container(self, pod: Obj, container: str, grace_seconds: int, *, container_id: str = "") -> None:
        uid = (pod.get("metadata") or {}).get("uid", "")
        async with self._lock(uid):
            x = await self._instance(pod, container, False)
            if CONTAINER_STATES.get(x.state) != "running" or container_id not in ("", f"containerd://{x.id}"):
                return
            await self._stop_container(x.id, grace_seconds)

    async def attach_url(self, pod: Obj, container: str, *, stdin: bool, stdout: bool, stderr: bool,
                         tty: bool) -> str:
        x = await self._instance(pod, container, False)
        if CONTAINER_STATES.get(x.state) != "running":
            raise NotSupported(f'container "{container}" is not running; attach needs a running container')
        try:
            reply = await self._client().call("Attach", container_id=x.id, stdin=stdin, tty=tty, stdout=stdout,
                                              stderr=stderr and not tty)
        except CRIError as exc:
            if exc.code == grpc.StatusCode.NOT_FOUND:
                raise NoSuchContainer(f'container "{container}" is gone') from None
            raise
        return str(reply.url)

    async def port_forward_url(self, pod: Obj, ports: list[int]) -> str:
        meta = pod.get("metadata") or {}
        sandboxes = (await self._client().call("ListPodSandbox", filter={
            "label_selector": {L_UID: meta.get("uid", ""), L_NODE: self.node_name}})).items
        ready = [s for s in sandboxes if s.state == SANDBOX_READY]
        if not ready:
            raise NoSuchContainer(f'pod "{meta.get("name", "")}" has no running sandbox to forward ports into')
        best = max(ready, key=lambda s: s.created_at)
        try:
            reply = await self._client().call("PortForward", pod_sandbox_id=best.id, port=list(ports))
        except CRIError as exc:
            if exc.code == grpc.StatusCode.NOT_FOUND:
                raise NoSuchContainer(f'pod "{meta.get("name", "")}" is gone') from None
            raise
        return str(reply.url)

    async def action(self, pod: Obj, action: Obj) -> Obj:
        return {"complete": True, "error": "actions (reboot, snapshot, restore) are for VM pods"}

    def capacity(self) -> Obj:
        return {}
