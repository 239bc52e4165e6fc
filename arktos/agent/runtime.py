"""What the node agent asks of a runtime: run a pod's workload and say how it is.

The agent runs several runtimes at once (Arktos's unified agent): a pod with
`spec.virtualMachine` goes to the runtime whose `kind` is "vm", any other pod
to the one whose kind is "container".  A runtime knows nothing of the API
server: the agent hands it pod objects and turns what it reports into pod
status.  Every method is idempotent, because the agent retries and, after a
restart, re-syncs whatever the runtime still runs (adoption).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

Obj = dict[str, Any]


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
    ip: str = ""
    # VM pods: the status.virtualMachineStatus fields (name, virtualMachineId, imageId, state,
    # powerState, ready, restartCount, resources).
    vm_status: Obj | None = None


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

    def capacity(self) -> Obj:
        """What this runtime adds to the node's capacity (e.g. {"cpu": "4", "memory": "8Gi"}); {} for none."""
        ...
