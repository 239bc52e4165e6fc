"""What the node agent asks of a runtime: run a pod's workload and say how it is.

The agent runs several runtimes at once (Arktos's unified agent): a pod with
`spec.virtualMachine` goes to the runtime whose `kind` is "vm", any other pod
to the one whose kind is "container".  A runtime knows nothing of the API
server: the agent hands it pod objects and turns what it reports into pod
status.  Every method is idempotent, because the agent retries and, after a
restart, re-syncs whatever the runtime still runs (adoption).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

Obj = dict[str, Any]

# The agent hands a runtime a *resolved* pod (arktos.agent.volumes): API-backed volumes are hostPath
# volumes to the directories the agent wrote, env from ConfigMaps and Secrets is plain values.  A
# container changed that way carries, under SPEC_HASH, `container_hash` of itself as the API server
# has it; a runtime that replaces containers whose spec changed compares that hash, so a ConfigMap
# value that changed does not restart a running container (it does not in Kubernetes either).
SPEC_HASH = "arktos.io/specHash"


def restarts(policy: str, exit_code: int | None, init: bool = False) -> bool:
    """Whether an exited container runs again under `policy` (restartPolicy); an init container only
    after a failure (unless Never), whatever the pod's policy says."""
    if policy == "Never":
        return False
    if policy == "OnFailure" or init:
        return exit_code not in (0, None)
    return True


def container_hash(container: Obj) -> str:
    """A container spec's hash (what it was created from); SPEC_HASH when the agent resolved it."""
    have = container.get(SPEC_HASH)
    if isinstance(have, str):
        return have
    return hashlib.blake2b(orjson.dumps(container, option=orjson.OPT_SORT_KEYS), digest_size=8).hexdigest()


@dataclass
class ContainerState:
    """One container (or the VM) as the runtime sees it, in core/v1 ContainerStatus terms."""

    name: str
    state: str  # "waiting" | "running" | "terminated"
    reason: str = ""
    message: str = ""
    exit_code: int | None = None
    started_at: str | None = None  # RFC 3339
    finished_at: str | None = None
    restart_count: int = 0
    image: str = ""
    image_id: str = ""
    container_id: str = ""  # "<runtime>://<id>"
    ready: bool = False


@dataclass
class PodState:
    """A pod's workload as the runtime sees it."""

    uid: str
    namespace: str
    name: str
    tenant: str
    containers: list[ContainerState] = field(default_factory=list)
    # spec.initContainers, in order, as far as they got: each runs to completion before the next
    # starts, and the containers start only after the last succeeded.
    init_containers: list[ContainerState] = field(default_factory=list)
    ip: str = ""
    # VM pods: the status.virtualMachineStatus fields (name, virtualMachineId, imageId, state,
    # powerState, ready, restartCount, resources).
    vm_status: Obj | None = None


@dataclass(frozen=True)
class RuntimeEvent:
    """Something a runtime did to a pod that its owner should see in `kubectl get events`.

    The agent sees what a runtime reports as state and turns that into Created,
    Started, Killing, BackOff and Failed itself; a runtime reports what only it
    sees happen, and while it happens: an image pull (Pulling before a slow pull,
    then Pulled or Failed), a VM paused, resumed or saved.  The agent writes it
    as a core/v1 Event on the pod in the pod's own tenant partition, with the
    container as `involvedObject.fieldPath`."""

    pod_uid: str
    reason: str  # CamelCase, kubelet's words where there are some: Pulling, Pulled, Failed, BackOff
    message: str
    type: str = "Normal"  # or "Warning"
    container: str = ""  # "" = the pod as a whole


# How a runtime reports events.  A runtime that has any has an attribute `events: EventSink` (a no-op
# until the agent sets it); it may be called from any thread (the libvirt runtime works in threads),
# never blocks, and never raises.
EventSink = Callable[[RuntimeEvent], None]


def discard_events(event: RuntimeEvent) -> None:
    """The sink a runtime has before an agent connects it (and in tests without an agent)."""


class NotSupported(Exception):
    """The runtime cannot do this for this pod (exec into a VM, logs of a hollow pod, ...).

    The agent's server answers 400 with the message, so it should say what to do instead."""


class NoSuchContainer(LookupError):
    """The pod or container is not (or no longer) on this node; the agent's server answers 404."""


@dataclass
class LogFile:
    """Where a container's (or a VM console's) output is, for `kubectl logs`.

    `cri` says the file has CRI's line format (`<RFC3339Nano> <stdout|stderr> <F|P> <text>`,
    written by containerd); otherwise it is raw text (a VM's serial console).  The agent
    does tail, follow, since and timestamps itself, the same way for every runtime."""

    path: Path
    cri: bool = True


class Runtime(Protocol):
    """A runtime of one kind of workload ("container" or "vm")."""

    kind: str  # which pods it runs
    name: str  # e.g. "containerd", "libvirt", "hollow"; also the container-ID scheme

    async def start(self) -> None:
        """Connect (to containerd, libvirt, ...); raise a clear error if the runtime is unusable."""

    async def stop(self) -> None:
        """Disconnect; running workloads keep running (the agent may be restarting)."""

    async def sync_pod(self, pod: Obj) -> PodState:
        """Make the pod's workload match its spec and return its state.

        Starts what is missing, restarts exited containers when the pod's
        restartPolicy says so (the runtime counts restarts; back-off is the
        agent's), applies a VM's powerSpec.  Called repeatedly.
        """
        ...

    async def kill_pod(self, pod: Obj, grace_seconds: int) -> None:
        """Stop and remove the pod's workload, giving it `grace_seconds` to end; no error if gone."""

    async def pods(self) -> list[PodState]:
        """Every pod workload this runtime has on the host (for adoption after an agent restart)."""
        ...

    async def action(self, pod: Obj, action: Obj) -> Obj:
        """Perform an Arktos VM action (spec.rebootAction / snapshotAction / restoreAction) and return
        the Action status fields to write (complete, error, rebootStatus, snapshotStatus, ...).
        Container runtimes answer with an error status: actions are for VMs."""
        ...

    async def log_file(self, pod: Obj, container: str, *, previous: bool = False) -> LogFile:
        """The log of `container` (its previous instance with `previous`); NoSuchContainer if
        unknown, NotSupported if the runtime keeps no logs."""
        ...

    async def exec_url(
        self, pod: Obj, container: str, command: list[str], *, stdin: bool, stdout: bool, stderr: bool, tty: bool
    ) -> str:
        """A one-time URL of a streaming server that runs `command` in the container and speaks
        Kubernetes' remote-command protocol, as CRI's Exec answers; the agent relays the API
        server's stream to it, over WebSocket (channel.k8s.io), or over SPDY/3.1 when the runtime
        has ``exec_transport = "spdy"`` (CRI streaming servers: only SPDY can close stdin there).
        NotSupported for VMs."""
        ...

    async def exec_sync(self, pod: Obj, container: str, command: list[str], timeout: float) -> tuple[int, bytes, bytes]:
        """Run `command` in the running container and wait for it (CRI's ExecSync, for exec probes):
        its exit code, stdout and stderr.  TimeoutError when it outlives `timeout` seconds,
        NoSuchContainer when the container does not run, NotSupported for VMs."""
        ...

    async def kill_container(self, pod: Obj, container: str, grace_seconds: int, *, container_id: str = "") -> None:
        """Stop the running instance of `container` (as a failed liveness probe does), giving it
        `grace_seconds`; only the instance `container_id` ("<runtime>://<id>") when given.  What happens
        next is the pod's restartPolicy's: the exited container is restarted by a later sync_pod."""

    async def attach_url(
        self, pod: Obj, container: str, *, stdin: bool, stdout: bool, stderr: bool, tty: bool
    ) -> str:
        """A one-time URL of a streaming server attached to the container's main process (CRI's
        Attach), speaking the remote-command protocol as for `exec_url` (same transport); `tty` must be
        the container's own setting.  NotSupported for VMs and hollow pods."""
        ...

    async def port_forward_url(self, pod: Obj, ports: list[int]) -> str:
        """A one-time URL of a streaming server that forwards connections into the pod's network
        namespace (CRI's PortForward), speaking SPDY/3.1 with the ``portforward.k8s.io`` protocol:
        per connection a ``data`` and an ``error`` stream with headers ``port`` and ``requestID``.
        The agent does not interpret it: it pipes the client's SPDY session through.  NoSuchContainer
        when the pod has no running sandbox, NotSupported for VMs and hollow pods."""
        ...

    def capacity(self) -> Obj:
        """What this runtime adds to the node's capacity (e.g. {"cpu": "4", "memory": "8Gi"}); {} for none."""
        ...
