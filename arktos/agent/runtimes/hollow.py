"""The hollow runtime: the runtime state machine with no workload behind it.

Kubemark's hollow nodes run thousands of node agents in one process, so a pod
here is a few dictionaries: it "starts" the moment the agent asks, gets a fake
IP from 10.244.x.y (x from the node name, so two hollow nodes rarely share
addresses), and stays running until it is killed or a test makes one of its
containers exit (`exit_container`).  VM pods (kind "vm") get a
virtualMachineStatus that follows `powerSpec`, and VM actions succeed.  Exec
probes succeed unless a test makes them fail (`set_exec_result`); network probes
always succeed (nothing listens at the fake IPs).

With a `state_file` the pods survive a restart of the agent process, which is
what lets tests show adoption (a real runtime keeps its workloads when the
agent restarts; an in-memory one would forget them).  Next to it the runtime
keeps real log files, so `kubectl logs` (tail, follow, --previous) runs the
same code as for containerd: one CRI-format file per container instance
(`<state>-logs/<uid>/<container>/<restart>.log`, as kubelet's /var/log/pods)
with a line when the instance starts and when it exits, and a raw console log
for a hollow VM.  Kubemark's in-memory hollow nodes write nothing (logs are
NotSupported there), so thousands of them stay cheap.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import json
import os
import shutil
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

from arktos.agent.runtime import (
    ContainerState,
    EventSink,
    LogFile,
    NoSuchContainer,
    NotSupported,
    PodState,
    RuntimeEvent,
    discard_events,
    restarts,
)

__all__ = ["HollowRuntime"]

Obj = dict[str, Any]

_POWER = {"Running": "running", "Paused": "paused", "Shutdown": "shutdown", "Suspended": "suspended"}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cri_time() -> str:
    """RFC 3339 with nanoseconds, as containerd stamps each log line."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}Z"


class HollowRuntime:
    """A `Runtime` of kind "container" or "vm" that only keeps state."""

    name = "hollow"

    def __init__(self, kind: str = "container", *, node_name: str = "", state_file: str | Path | None = None) -> None:
        if kind not in ("container", "vm"):
            raise ValueError(f"kind must be 'container' or 'vm', not {kind!r}")
        self.kind = kind
        self.node_name = node_name
        self.state_file = Path(state_file) if state_file else None
        self.log_dir = self.state_file.with_name(self.state_file.stem + "-logs") if self.state_file else None
        # x of 10.244.x.y comes from the node name; the vm runtime takes the upper half of y.
        self._subnet = zlib.crc32(node_name.encode()) % 256 if node_name else 0
        self._pods: dict[str, PodState] = {}
        self._snapshots: dict[str, str] = {}  # snapshot ID -> pod uid
        self._next_ip = 0
        self.restarts = 0  # restarts done, for tests
        # Exec probes succeed unless a test says otherwise (`set_exec_result`): (uid, container, command or
        # None for any) -> (exit code, output).  Network probes succeed without I/O: the pod IPs are fake.
        self.exec_results: dict[tuple[str, str, tuple[str, ...] | None], tuple[int, str]] = {}
        # Reports what a real runtime reports for a pre-pulled image, so hollow nodes write the
        # same events (and the same API load) as real ones.
        self.events: EventSink = discard_events

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        if self.state_file and self.state_file.exists():
            data = json.loads(self.state_file.read_text())
            for raw in data.get("pods", []):
                containers = [ContainerState(**c) for c in raw.pop("containers", [])]
                inits = [ContainerState(**c) for c in raw.pop("init_containers", [])]
                self._pods[raw["uid"]] = PodState(containers=containers, init_containers=inits, **raw)
            self._snapshots = dict(data.get("snapshots", {}))
            self._next_ip = int(data.get("next_ip", 0))

    async def stop(self) -> None:
        self._save()

    def _save(self) -> None:
        if not self.state_file:
            return
        data = {
            "pods": [dataclasses.asdict(p) for p in self._pods.values()],
            "snapshots": self._snapshots,
            "next_ip": self._next_ip,
        }
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.state_file)

    def _ip(self) -> str:
        used = {p.ip for p in self._pods.values()}
        offset = 128 if self.kind == "vm" else 0
        for _ in range(126):
            self._next_ip = self._next_ip % 126 + 1
            ip = f"10.244.{self._subnet}.{offset + self._next_ip}"
            if ip not in used:
                return ip
        return f"10.244.{self._subnet}.{offset + 127}"  # more pods than a /25: share the last address

    # -- the protocol ----------------------------------------------------------------

    async def sync_pod(self, pod: Obj) -> PodState:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        uid = meta.get("uid", "")
        state = self._pods.get(uid)
        changed = False
        if state is None:
            state = PodState(
                uid=uid,
                namespace=meta.get("namespace", ""),
                name=meta.get("name", ""),
                tenant=meta.get("tenant", ""),
                ip=self._ip(),
            )
            self._pods[uid] = state
            changed = True
        if self.kind == "vm":
            changed |= self._sync_vm(state, spec)
        else:
            changed |= self._sync_containers(state, spec)
        if changed:
            self._save()
        return copy.deepcopy(state)

    def _sync_containers(self, state: PodState, spec: Obj) -> bool:
        changed = False
        now = _now()
        if len(state.init_containers) < len(spec.get("initContainers") or []):
            # Hollow init containers succeed at once, in order, as a fast real one would.
            state.init_containers = [
                ContainerState(name=c.get("name", ""), state="terminated", exit_code=0, reason="Completed",
                               started_at=now, finished_at=now, image=c.get("image", ""),
                               image_id=f"hollow://{c.get('image', '')}", container_id=f"hollow://{uuid.uuid4().hex}")
                for c in spec.get("initContainers") or []]
            changed = True
        have = {c.name: c for c in state.containers}
        policy = spec.get("restartPolicy") or "Always"
        for c in spec.get("containers") or []:
            cs = have.get(c.get("name", ""))
            if cs is None:
                self.events(RuntimeEvent(state.uid, "Pulled", f'Container image "{c.get("image", "")}" already '
                                         "present on machine", container=c.get("name", "")))
                cs = ContainerState(
                    name=c.get("name", ""),
                    state="running",
                    started_at=now,
                    image=c.get("image", ""),
                    image_id=f"hollow://{c.get('image', '')}",
                    container_id=f"hollow://{uuid.uuid4().hex}",
                    ready=True,
                )
                state.containers.append(cs)
                self._log_started(state.uid, cs)
                changed = True
            elif cs.state == "terminated" and restarts(policy, cs.exit_code):
                cs.state, cs.started_at, cs.finished_at, cs.ready = "running", now, None, True
                cs.exit_code, cs.reason = None, ""
                cs.restart_count += 1
                cs.container_id = f"hollow://{uuid.uuid4().hex}"
                self.restarts += 1
                self._log_started(state.uid, cs)
                changed = True
        return changed

    def _sync_vm(self, state: PodState, spec: Obj) -> bool:
        vm = spec.get("virtualMachine") or {}
        power = _POWER.get(vm.get("powerSpec") or "Running", "running")
        status = state.vm_status
        if status is None:
            state.vm_status = {
                "name": vm.get("name", ""),
                "virtualMachineId": uuid.uuid4().hex,
                "imageId": vm.get("image", ""),
                "state": "active",
                "powerState": power,
                "ready": power == "running",
                "restartCount": 0,
                "resources": copy.deepcopy(vm.get("resources") or {}),
            }
            state.containers = [
                ContainerState(
                    name=vm.get("name", ""),
                    state="running",
                    started_at=_now(),
                    image=vm.get("image", ""),
                    ready=power == "running",
                    container_id=f"hollow://{state.vm_status['virtualMachineId']}",
                )
            ]
            self._console(state.uid, f"hollow VM {vm.get('name', '')} booting image {vm.get('image', '')}\n"
                                     f"{vm.get('name', '')} login: ")
            return True
        if status.get("powerState") != power:
            status["powerState"], status["ready"] = power, power == "running"
            for c in state.containers:
                c.ready = power == "running"
            return True
        return False

    async def kill_pod(self, pod: Obj, grace_seconds: int) -> None:
        uid = (pod.get("metadata") or {}).get("uid", "")
        if self._pods.pop(uid, None) is not None:
            self._save()
        if self.log_dir is not None and uid and "/" not in uid:  # a pod's logs go with it, as kubelet's do
            shutil.rmtree(self.log_dir / uid, ignore_errors=True)

    async def pods(self) -> list[PodState]:
        return [copy.deepcopy(p) for p in self._pods.values()]

    async def action(self, pod: Obj, action: Obj) -> Obj:
        uid = (pod.get("metadata") or {}).get("uid", "")
        spec = action.get("spec") or {}
        state = self._pods.get(uid)
        if self.kind != "vm":
            return {"complete": True, "error": "actions are for VM pods"}
        if state is None or state.vm_status is None:
            return {"complete": True, "error": f"no VM for pod {spec.get('podName', '')} on this node"}
        if "rebootAction" in spec:
            state.vm_status["restartCount"] = int(state.vm_status.get("restartCount", 0)) + 1
            self._save()
            return {"complete": True, "rebootStatus": {"rebootSuccessful": True}}
        if "snapshotAction" in spec:
            snap = f"snapshot-{uuid.uuid4().hex[:12]}"
            self._snapshots[snap] = uid
            self._save()
            return {"complete": True, "snapshotStatus": {"snapshotID": snap}}
        if "restoreAction" in spec:
            snap = (spec.get("restoreAction") or {}).get("snapshotID", "")
            if self._snapshots.get(snap) != uid:
                return {
                    "complete": True,
                    "error": f"no snapshot {snap!r} of this VM",
                    "restoreStatus": {"restoreSuccessful": False},
                }
            return {"complete": True, "restoreStatus": {"restoreSuccessful": True}}
        return {"complete": True, "error": "unknown action"}

    def capacity(self) -> Obj:
        return {}

    async def log_file(self, pod: Obj, container: str, *, previous: bool = False) -> LogFile:
        if self.log_dir is None:
            raise NotSupported("this hollow node keeps no logs (it has no state directory)")
        uid = (pod.get("metadata") or {}).get("uid", "")
        state = self._pods.get(uid)
        cs = next((c for c in state.containers if c.name == container), None) if state else None
        if state is None or cs is None:
            raise NoSuchContainer(f"container {container!r} of pod uid {uid!r} is not on this node")
        if self.kind == "vm":
            if previous:
                raise NotSupported("a VM's console log has no previous instance")
            path = self.log_dir / uid / "console.log"
            path.touch()
            return LogFile(path, cri=False)
        instance = cs.restart_count - (1 if previous else 0)
        path = self.log_dir / uid / container / f"{instance}.log"
        if instance < 0 or not path.exists():
            raise NoSuchContainer(f"no {'previous ' if previous else ''}log of container {container!r}")
        return LogFile(path, cri=True)

    async def exec_url(self, pod: Obj, container: str, command: list[str], *, stdin: bool, stdout: bool,
                       stderr: bool, tty: bool) -> str:
        raise NotSupported("exec is not supported for hollow pods: they run no processes")

    network_probes = False  # httpGet, tcpSocket and grpc probes of hollow pods succeed without any I/O

    def _running(self, pod: Obj, container: str) -> ContainerState:
        uid = (pod.get("metadata") or {}).get("uid", "")
        state = self._pods.get(uid)
        cs = next((c for c in state.containers if c.name == container), None) if state else None
        if cs is None or cs.state != "running":
            raise NoSuchContainer(f'container "{container}" of pod uid {uid!r} is not running')
        return cs

    async def exec_sync(self, pod: Obj, container: str, command: list[str], timeout: float) -> tuple[int, bytes, bytes]:
        if self.kind == "vm":
            raise NotSupported("exec probes are not supported for VM pods")
        self._running(pod, container)
        uid = (pod.get("metadata") or {}).get("uid", "")
        code, output = self.exec_results.get((uid, container, tuple(command)),
                                             self.exec_results.get((uid, container, None), (0, "")))
        return code, output.encode(), b""

    async def kill_container(self, pod: Obj, container: str, grace_seconds: int, *, container_id: str = "") -> None:
        if self.kind == "vm":
            raise NotSupported("a VM pod's VM is not killed by a probe; use a reboot action")
        cs = self._running(pod, container)
        if container_id and cs.container_id != container_id:
            return
        self.exit_container((pod.get("metadata") or {}).get("uid", ""), container, 137)

    async def attach_url(self, pod: Obj, container: str, *, stdin: bool, stdout: bool, stderr: bool,
                         tty: bool) -> str:
        raise NotSupported("attach is not supported for hollow pods: they run no processes; use kubectl logs")

    async def port_forward_url(self, pod: Obj, ports: list[int]) -> str:
        raise NotSupported("port-forward is not supported for hollow pods: nothing listens in them")

    # -- logs --------------------------------------------------------------------------

    def _write_log(self, path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(text)

    def _log_line(self, uid: str, cs: ContainerState, stream: str, text: str) -> None:
        if self.log_dir is not None:
            self._write_log(self.log_dir / uid / cs.name / f"{cs.restart_count}.log",
                            f"{_cri_time()} {stream} F {text}\n")

    def _log_started(self, uid: str, cs: ContainerState) -> None:
        self._log_line(uid, cs, "stdout", f"hollow container {cs.name} started from image {cs.image} "
                                          f"({cs.container_id.removeprefix('hollow://')[:12]})")

    def _console(self, uid: str, text: str) -> None:
        if self.log_dir is not None:
            self._write_log(self.log_dir / uid / "console.log", text)

    # -- for tests -----------------------------------------------------------------------

    def set_exec_result(self, uid: str, container: str, exit_code: int, output: str = "",
                        command: list[str] | None = None) -> None:
        """What exec probes of the container (only `command`, when given) answer from now on."""
        self.exec_results[(uid, container, tuple(command) if command is not None else None)] = (exit_code, output)

    def exit_container(self, uid: str, name: str | None = None, exit_code: int = 1) -> bool:
        """Make a container (the first one when `name` is None) exit, as a crash would; False if not found."""
        state = self._pods.get(uid)
        for c in state.containers if state else []:
            if (name is None or c.name == name) and c.state == "running":
                c.state, c.exit_code, c.finished_at, c.ready = "terminated", exit_code, _now(), False
                c.reason = "Completed" if exit_code == 0 else "Error"
                self._log_line(uid, c, "stderr", f"hollow container {c.name} exited with code {exit_code}")
                self._save()
                return True
        return False
