"""Server-side `meta.k8s.io/v1` Table output: what `kubectl get` prints.

kubectl asks for `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` and
prints whatever columns the server sends, so the columns and the cell values
(the pod "Status" reason, "1/1" readiness, ages like "3m12s") are decided here
and must match what users know from Kubernetes.  As in Kubernetes, the server
always sends every column; the ones with `priority` 1 are those kubectl only
shows with `-o wide`.

One printer per (group, kind), looked up in a dict: each is a constant column
list plus a function from one object to its cells.  Custom resources get
Name plus their CRD's `additionalPrinterColumns` (or Age when there are
none), evaluated with a small JSONPath subset compiled once per path.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from arktos.api.errors import bad_request
from arktos.api.registry import ResourceInfo
from arktos.api.selectors import format_labels, label_selector_from_dict

__all__ = [
    "column_definitions",
    "format_endpoints",
    "human_duration",
    "parse_time",
    "pod_status",
    "row_cells",
    "table",
    "translate_timestamp_since",
]

Obj = Mapping[str, Any]
_EMPTY: Mapping[str, Any] = {}
_NONE = "<none>"

# ---------------------------------------------------------------------------
# Time
# ---------------------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """Kubernetes' HumanDuration: about 2-3 significant figures of a duration.

    The boundaries are Kubernetes' own: seconds below 2 minutes ("119s"),
    minutes+seconds below 10 minutes ("3m12s"), minutes below 3 hours
    ("179m"), hours+minutes below 8 hours ("7h5m"), hours below 2 days
    ("47h"), days+hours below 8 days ("7d23h"), days below 2 years ("729d"),
    years+days below 8 years ("2y45d"), then years.  A clock up to 1 s ahead
    gives "0s", more gives "<invalid>".
    """
    secs = int(seconds)  # truncates toward zero, like Go's int(d.Seconds())
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 120:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 10:
        s = secs % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = secs // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def parse_time(ts: Any) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime (UTC if it names no zone), or None."""
    if not ts or not isinstance(ts, str):
        return None
    try:
        t = datetime.fromisoformat(ts)
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def translate_timestamp_since(ts: Any, now: datetime) -> str:
    """Age of a timestamp as kubectl shows it; `<unknown>` when unset or unparsable."""
    t = parse_time(ts)
    if t is None:
        return "<unknown>"
    return human_duration((now - t).total_seconds())


def _rfc3339(ts: Any) -> str:
    """Go's `Time.UTC().Format(time.RFC3339)`, zero time when unset."""
    t = parse_time(ts)
    if t is None:
        return "0001-01-01T00:00:00Z"
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------
# Columns and printers
# ---------------------------------------------------------------------------


def _col(name: str, type_: str = "string", description: str = "", priority: int = 0, format_: str = "") -> dict:
    # Key order and presence as Kubernetes serialises TableColumnDefinition.
    return {"name": name, "type": type_, "format": format_, "description": description, "priority": priority}


_D_NAME = ("Name must be unique within a namespace (or tenant for tenant-scoped kinds). Set by the "
           "client or generated from generateName; cannot be updated.")
_D_AGE = "Time since the object was created (metadata.creationTimestamp), RFC 3339, UTC."
_D_CONTAINERS = "Names of each container in the template."
_D_IMAGES = "Images referenced by each container in the template."
NAME = _col("Name", "string", _D_NAME, format_="name")
AGE = _col("Age", "string", _D_AGE)
CREATED_AT = _col("Created At", "date", _D_AGE)


@dataclass(frozen=True, slots=True)
class _Printer:
    columns: tuple[dict, ...]
    cells: Callable[[Obj, datetime], list]
    conditions: Callable[[Obj], list | None] | None = None


_PRINTERS: dict[tuple[str, str], _Printer] = {}


def _printer(group: str, kinds: str | Sequence[str], columns: Sequence[dict],
             conditions: Callable[[Obj], list | None] | None = None):
    """Register a cell function for (group, kind) with its column definitions."""

    def register(fn: Callable[[Obj, datetime], list]) -> Callable[[Obj, datetime], list]:
        for kind in [kinds] if isinstance(kinds, str) else kinds:
            _PRINTERS[(group, kind)] = _Printer(tuple(columns), fn, conditions)
        return fn

    return register


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or _EMPTY


def _name(obj: Obj) -> str:
    return _meta(obj).get("name", "")


def _age(obj: Obj, now: datetime) -> str:
    return translate_timestamp_since(_meta(obj).get("creationTimestamp"), now)


def _sub(obj: Obj, key: str) -> Obj:
    v = obj.get(key)
    return v if isinstance(v, Mapping) else _EMPTY


# -- pods ----------------------------------------------------------------------

_POD_SUCCEEDED = [{"type": "Completed", "status": "True", "reason": "Succeeded",
                   "message": "The pod has completed successfully."}]
_POD_FAILED = [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]
# VM power states (Arktos) that explain a running pod whose VM is not up.
_VM_POWER_REASONS = {"paused": "Paused", "shutdown": "Shutdown", "crashed": "Crashed", "suspended": "Suspended"}


def _pod_conditions(pod: Obj) -> list | None:
    phase = _sub(pod, "status").get("phase")
    if phase == "Succeeded":
        return _POD_SUCCEEDED
    if phase == "Failed":
        return _POD_FAILED
    return None


def _last_terminated(cs: Obj) -> datetime | None:
    term = _sub(_sub(cs, "lastState"), "terminated")
    return parse_time(term.get("finishedAt")) if term else None


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if b is None:
        return a
    return b if a is None or b > a else a


def _restartable(container: Obj | None) -> bool:
    return bool(container) and container.get("restartPolicy") == "Always"


def _condition_true(status: Obj, ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True" for c in status.get("conditions") or ())


def pod_status(pod: Obj) -> tuple[str, int, int, str, datetime | None]:
    """(reason, ready, total, restarts, last restart time) as kubectl computes them.

    Kubernetes' printPod logic: the phase (or status.reason), overridden by
    the first unfinished init container ("Init:1/2", "Init:CrashLoopBackOff"),
    else by container states scanned last to first (a waiting or terminated
    reason, "ExitCode:1", "Signal:9"), "Terminating" once deletion started
    (unless the phase is terminal), "Unknown" for a deleted pod on a lost
    node.  Arktos VM pods count as one container whose readiness and restarts
    come from `status.virtualMachineStatus`; a running pod whose VM is paused,
    shut down, crashed or suspended shows that power state.
    """
    spec = _sub(pod, "spec")
    status = _sub(pod, "status")
    vm = spec.get("virtualMachine")
    init_specs_list = spec.get("initContainers") or ()
    init_specs = {c.get("name"): c for c in init_specs_list}
    total = 1 if vm else len(spec.get("containers") or ())
    total += sum(1 for c in init_specs_list if _restartable(c))
    ready = 0
    restarts = 0
    last_restart: datetime | None = None
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for c in status.get("conditions") or ():
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    initializing = False
    sidecar_restarts = 0
    last_sidecar_restart: datetime | None = None
    for i, cs in enumerate(status.get("initContainerStatuses") or ()):
        count = cs.get("restartCount") or 0
        restarts += count
        finished = _last_terminated(cs)
        last_restart = _later(last_restart, finished)
        sidecar = _restartable(init_specs.get(cs.get("name")))
        if sidecar:
            sidecar_restarts += count
            last_sidecar_restart = _later(last_sidecar_restart, finished)
        state = _sub(cs, "state")
        term = state.get("terminated")
        waiting = state.get("waiting")
        if term is not None and not term.get("exitCode"):
            continue
        if sidecar and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if term is not None:
            if term.get("reason"):
                reason = "Init:" + term["reason"]
            elif term.get("signal"):
                reason = f"Init:Signal:{term['signal']}"
            else:
                reason = f"Init:ExitCode:{term.get('exitCode', 0)}"
        elif waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs_list)}"
        initializing = True
        break

    if not initializing or _condition_true(status, "Initialized"):
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        if vm:
            vms = _sub(status, "virtualMachineStatus")
            restarts += vms.get("restartCount") or 0
            vm_ready = vms.get("ready")
            if vm_ready is None:
                vm_ready = bool(vms) and phase == "Running"
            if vm_ready:
                ready += 1
                has_running = True
            elif phase == "Running" and vms.get("powerState") in _VM_POWER_REASONS:
                reason = _VM_POWER_REASONS[vms["powerState"]]
        else:
            for cs in reversed(status.get("containerStatuses") or ()):
                restarts += cs.get("restartCount") or 0
                last_restart = _later(last_restart, _last_terminated(cs))
                state = _sub(cs, "state")
                waiting = state.get("waiting")
                term = state.get("terminated")
                if waiting is not None and waiting.get("reason"):
                    reason = waiting["reason"]
                elif term is not None and term.get("reason"):
                    reason = term["reason"]
                elif term is not None:
                    reason = f"Signal:{term['signal']}" if term.get("signal") else \
                        f"ExitCode:{term.get('exitCode', 0)}"
                elif cs.get("ready") and state.get("running") is not None:
                    has_running = True
                    ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(status, "Ready") else "NotReady"

    if _meta(pod).get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"
    return reason, ready, total, str(restarts), last_restart


_POD_COLUMNS = (
    NAME,
    _col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
    _col("Status", "string", "The aggregate status of the containers in this pod."),
    _col("Restarts", "string", "The number of times the containers in this pod have been restarted and "
         "when the last container in this pod has restarted."),
    AGE,
    _col("IP", "string", "IP address allocated to the pod.", 1),
    _col("Node", "string", "The node the pod is bound to (spec.nodeName).", 1),
    _col("Nominated Node", "string", "The node the scheduler nominated for this pod when it preempted "
         "others.", 1),
    _col("Readiness Gates", "string", "How many of the pod's readiness gates are true.", 1),
    _col("HashKey", "integer", "Arktos: metadata.hashKey, which partitioned controllers split ranges of.", 1),
)


@_printer("", "Pod", _POD_COLUMNS, _pod_conditions)
def _pod_cells(pod: Obj, now: datetime) -> list:
    reason, ready, total, restarts, last_restart = pod_status(pod)
    if restarts != "0" and last_restart is not None:
        restarts = f"{restarts} ({human_duration((now - last_restart).total_seconds())} ago)"
    spec = _sub(pod, "spec")
    status = _sub(pod, "status")
    ips = status.get("podIPs") or ()
    ip = (ips[0].get("ip") if ips else None) or status.get("podIP") or _NONE
    gates = spec.get("readinessGates") or ()
    gates_cell = _NONE
    if gates:
        conds = {c.get("type"): c.get("status") for c in reversed(status.get("conditions") or ())}
        gates_cell = f"{sum(1 for g in gates if conds.get(g.get('conditionType')) == 'True')}/{len(gates)}"
    return [
        _name(pod), f"{ready}/{total}", reason, restarts, _age(pod, now),
        ip, spec.get("nodeName") or _NONE, status.get("nominatedNodeName") or _NONE, gates_cell,
        _meta(pod).get("hashKey", 0),
    ]


# -- nodes ---------------------------------------------------------------------

_NODE_COLUMNS = (
    NAME,
    _col("Status", "string", "The status of the node"),
    _col("Roles", "string", "The roles of the node"),
    AGE,
    _col("Version", "string", "Version of the node agent (status.nodeInfo.kubeletVersion)."),
    _col("Internal-IP", "string", "The node's first InternalIP address.", 1),
    _col("External-IP", "string", "The node's first ExternalIP address.", 1),
    _col("OS-Image", "string", "OS image reported by the node.", 1),
    _col("Kernel-Version", "string", "Kernel version reported by the node.", 1),
    _col("Container-Runtime", "string", "Runtime versions reported by the node.", 1),
)


def _node_roles(labels: Mapping[str, str]) -> str:
    roles = set()
    for k, v in labels.items():
        if k.startswith("node-role.kubernetes.io/"):
            role = k[len("node-role.kubernetes.io/"):]
            if role:
                roles.add(role)
        elif k == "kubernetes.io/role" and v:
            roles.add(v)
    return ",".join(sorted(roles)) or _NONE


def _node_address(status: Obj, kind: str) -> str:
    for a in status.get("addresses") or ():
        if a.get("type") == kind:
            return a.get("address", "")
    return _NONE


@_printer("", "Node", _NODE_COLUMNS)
def _node_cells(node: Obj, now: datetime) -> list:
    status = _sub(node, "status")
    parts: list[str] = []
    for c in status.get("conditions") or ():
        if c.get("type") == "Ready":
            parts = ["Ready" if c.get("status") == "True" else "NotReady"]
    if not parts:
        parts = ["Unknown"]
    if _sub(node, "spec").get("unschedulable"):
        parts.append("SchedulingDisabled")
    info = _sub(status, "nodeInfo")
    return [
        _name(node), ",".join(parts), _node_roles(_meta(node).get("labels") or _EMPTY), _age(node, now),
        info.get("kubeletVersion", ""),
        _node_address(status, "InternalIP"), _node_address(status, "ExternalIP"),
        info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


# -- tenancy -------------------------------------------------------------------


@_printer("", "Namespace", (NAME, _col("Status", "string", "The status of the namespace"), AGE))
def _namespace_cells(ns: Obj, now: datetime) -> list:
    return [_name(ns), _sub(ns, "status").get("phase", ""), _age(ns, now)]


@_printer("", "Tenant", (
    NAME, _col("Status", "string", "The status of the tenant (Active or Terminating)."), AGE,
    _col("StorageClusterId", "string", "The storage cluster holding the tenant's data.", 1),
))
def _tenant_cells(t: Obj, now: datetime) -> list:
    return [_name(t), _sub(t, "status").get("phase", ""), _age(t, now),
            _sub(t, "spec").get("storageClusterId", "")]


# -- workloads -----------------------------------------------------------------


def _template_containers(obj: Obj) -> tuple[str, str]:
    """(names, images) of a pod template, comma-joined; a VM template shows its VM."""
    pod_spec = _sub(_sub(_sub(obj, "spec"), "template"), "spec")
    containers = pod_spec.get("containers") or ()
    if not containers and pod_spec.get("virtualMachine"):
        containers = (pod_spec["virtualMachine"],)
    return (",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers))


def _selector_string(sel: Any) -> str:
    try:
        return str(label_selector_from_dict(sel))
    except Exception:
        return "<invalid>"


_HASHKEY_WIDE = _col("HashKey", "integer", "Arktos: metadata.hashKey, which partitioned controllers split "
                     "ranges of.", 1)


@_printer("apps", "Deployment", (
    NAME,
    _col("Ready", "string", "Number of the pod with ready state"),
    _col("Up-to-date", "string", "Total number of non-terminated pods targeted by this deployment that have "
         "the desired template spec."),
    _col("Available", "string", "Total number of available pods (ready for at least minReadySeconds) "
         "targeted by this deployment."),
    AGE,
    _col("Containers", "string", _D_CONTAINERS, 1),
    _col("Images", "string", _D_IMAGES, 1),
    _col("Selector", "string", "Label query over pods that should match the replica count.", 1),
    _HASHKEY_WIDE,
))
def _deployment_cells(d: Obj, now: datetime) -> list:
    spec, status = _sub(d, "spec"), _sub(d, "status")
    names, images = _template_containers(d)
    return [
        _name(d), f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
        status.get("updatedReplicas", 0), status.get("availableReplicas", 0), _age(d, now),
        names, images, _selector_string(spec.get("selector")), _meta(d).get("hashKey", 0),
    ]


@_printer("apps", "ReplicaSet", (
    NAME,
    _col("Desired", "integer", "Number of desired pods (spec.replicas)."),
    _col("Current", "integer", "Most recently observed number of replicas (status.replicas)."),
    _col("Ready", "integer", "Number of ready pods targeted by this replica set."),
    AGE,
    _col("Containers", "string", _D_CONTAINERS, 1),
    _col("Images", "string", _D_IMAGES, 1),
    _col("Selector", "string", "Label query over pods that should match the replica count.", 1),
    _HASHKEY_WIDE,
))
def _replicaset_cells(rs: Obj, now: datetime) -> list:
    spec, status = _sub(rs, "spec"), _sub(rs, "status")
    names, images = _template_containers(rs)
    return [
        _name(rs), spec.get("replicas", 1), status.get("replicas", 0), status.get("readyReplicas", 0),
        _age(rs, now), names, images, _selector_string(spec.get("selector")) or _NONE,
        _meta(rs).get("hashKey", 0),
    ]


@_printer("apps", "DaemonSet", (
    NAME,
    _col("Desired", "integer", "The total number of nodes that should be running the daemon pod "
         "(including nodes correctly running the daemon pod)."),
    _col("Current", "integer", "The number of nodes that are running at least 1 daemon pod and are supposed "
         "to run the daemon pod."),
    _col("Ready", "integer", "The number of nodes that should be running the daemon pod and have one or more "
         "of the daemon pod running and ready."),
    _col("Up-to-date", "integer", "The total number of nodes that are running updated daemon pod"),
    _col("Available", "integer", "The number of nodes that should be running the daemon pod and have one or "
         "more of the daemon pod running and available (ready for at least spec.minReadySeconds)"),
    _col("Node Selector", "string", "NodeSelector is a selector which must be true for the pod to fit on a "
         "node."),
    AGE,
    _col("Containers", "string", _D_CONTAINERS, 1),
    _col("Images", "string", _D_IMAGES, 1),
    _col("Selector", "string", "A label query over pods that are managed by the daemon set.", 1),
    _HASHKEY_WIDE,
))
def _daemonset_cells(ds: Obj, now: datetime) -> list:
    spec, status = _sub(ds, "spec"), _sub(ds, "status")
    names, images = _template_containers(ds)
    node_selector = ((spec.get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
    ns_text = ",".join(f"{k}={v}" for k, v in sorted(node_selector.items())) if isinstance(
        node_selector, dict) else ""
    return [
        _name(ds), status.get("desiredNumberScheduled", 0), status.get("currentNumberScheduled", 0),
        status.get("numberReady", 0), status.get("updatedNumberScheduled", 0), status.get("numberAvailable", 0),
        ns_text or _NONE, _age(ds, now), names, images, _selector_string(spec.get("selector")) or _NONE,
        _meta(ds).get("hashKey", 0),
    ]


@_printer("apps", "StatefulSet", (
    NAME,
    _col("Ready", "string", "Number of the pod with ready state"),
    AGE,
    _col("Containers", "string", _D_CONTAINERS, 1),
    _col("Images", "string", _D_IMAGES, 1),
    _HASHKEY_WIDE,
))
def _statefulset_cells(sts: Obj, now: datetime) -> list:
    spec, status = _sub(sts, "spec"), _sub(sts, "status")
    names, images = _template_containers(sts)
    return [
        _name(sts), f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}", _age(sts, now),
        names, images, _meta(sts).get("hashKey", 0),
    ]


@_printer("apps", "ControllerRevision", (
    NAME,
    _col("Controller", "string", "The owning controller, kind.group/name."),
    _col("Revision", "integer", "The revision number."),
    AGE,
))
def _controllerrevision_cells(cr: Obj, now: datetime) -> list:
    owner = next((r for r in _meta(cr).get("ownerReferences") or [] if r.get("controller")), None)
    if owner:
        group = (owner.get("apiVersion") or "").rpartition("/")[0]
        controller = f"{owner.get('kind', '').lower()}.{group}/{owner.get('name')}" if group else \
            f"{owner.get('kind', '').lower()}/{owner.get('name')}"
    else:
        controller = _NONE
    return [_name(cr), controller, cr.get("revision", 0), _age(cr, now)]


@_printer("batch", "Job", (
    NAME,
    _col("Status", "string", "Status of the job."),
    _col("Completions", "string", "The number of pods which reached phase Succeeded."),
    _col("Duration", "string", "Time required to complete the job."),
    AGE,
    _col("Containers", "string", _D_CONTAINERS, 1),
    _col("Images", "string", _D_IMAGES, 1),
    _col("Selector", "string", "A label query over pods that should match the pod count.", 1),
))
def _job_cells(job: Obj, now: datetime) -> list:
    spec, status = _sub(job, "spec"), _sub(job, "status")
    succeeded = status.get("succeeded", 0) or 0
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{spec['completions']}"
    elif (spec.get("parallelism") or 0) > 1:
        completions = f"{succeeded}/1 of {spec['parallelism']}"
    else:
        completions = f"{succeeded}/1"
    start, end = parse_time(status.get("startTime")), parse_time(status.get("completionTime"))
    duration = ""
    if start is not None:
        duration = human_duration(((end or now) - start).total_seconds())
    true = {c.get("type") for c in status.get("conditions") or () if isinstance(c, Mapping)
            and c.get("status") == "True"}
    if "Complete" in true:
        state = "Complete"
    elif "Failed" in true:
        state = "Failed"
    elif _meta(job).get("deletionTimestamp"):
        state = "Terminating"
    elif "Suspended" in true:
        state = "Suspended"
    elif "FailureTarget" in true:
        state = "FailureTarget"
    elif "SuccessCriteriaMet" in true:
        state = "SuccessCriteriaMet"
    else:
        state = "Running"
    names, images = _template_containers(job)
    return [_name(job), state, completions, duration, _age(job, now), names, images,
            _selector_string(spec.get("selector")) or _NONE]


@_printer("batch", "CronJob", (
    NAME,
    _col("Schedule", "string", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
    _col("Timezone", "string", "The time zone name for the given schedule, see "
         "https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."),
    _col("Suspend", "boolean", "This flag tells the controller to suspend subsequent executions, it does not "
         "apply to already started executions.  Defaults to false."),
    _col("Active", "integer", "A list of pointers to currently running jobs."),
    _col("Last Schedule", "string", "Information when was the last time the job was successfully scheduled."),
    AGE,
    _col("Containers", "string", _D_CONTAINERS, 1),
    _col("Images", "string", _D_IMAGES, 1),
    _col("Selector", "string", "A label query over pods that should match the pod count.", 1),
))
def _cronjob_cells(cj: Obj, now: datetime) -> list:
    spec, status = _sub(cj, "spec"), _sub(cj, "status")
    job_spec = _sub(_sub(spec, "jobTemplate"), "spec")
    last = status.get("lastScheduleTime")
    suspend = spec.get("suspend")
    names, images = _template_containers({"spec": job_spec})
    return [
        _name(cj), spec.get("schedule", ""), spec.get("timeZone") or _NONE,
        "<unset>" if suspend is None else ("True" if suspend else "False"),
        len(status.get("active") or ()), translate_timestamp_since(last, now) if last else _NONE,
        _age(cj, now), names, images, _selector_string(job_spec.get("selector")) or _NONE,
    ]


# -- services and endpoints ------------------------------------------------------


def _lb_ingress(status: Obj) -> list[str]:
    out: list[str] = []
    for ing in _sub(status, "loadBalancer").get("ingress") or ():
        v = ing.get("ip") or ing.get("hostname")
        if v and v not in out:
            out.append(v)
    return out


def _service_external_ip(spec: Obj, status: Obj, svc_type: str) -> str:
    external = spec.get("externalIPs") or []
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else _NONE
    if svc_type == "LoadBalancer":
        lb = _lb_ingress(status)
        if external:
            return ",".join(lb + list(external))
        return ",".join(lb) if lb else "<pending>"
    if svc_type == "ExternalName":
        return spec.get("externalName", "")
    return "<unknown>"


@_printer("", "Service", (
    NAME,
    _col("Type", "string", "How the service is exposed: ClusterIP, NodePort, LoadBalancer or ExternalName."),
    _col("Cluster-IP", "string", "The IP address of the service inside the cluster."),
    _col("External-IP", "string", "Addresses the service is reachable on from outside the cluster."),
    _col("Port(s)", "string", "The ports the service exposes (port[:nodePort]/protocol)."),
    AGE,
    _col("Selector", "string", "Labels of the pods that back the service.", 1),
))
def _service_cells(svc: Obj, now: datetime) -> list:
    spec, status = _sub(svc, "spec"), _sub(svc, "status")
    svc_type = spec.get("type") or "ClusterIP"
    ips = spec.get("clusterIPs") or ()
    cluster_ip = (ips[0] if ips else None) or spec.get("clusterIP") or _NONE
    ports = []
    for p in spec.get("ports") or ():
        proto = p.get("protocol") or "TCP"
        if p.get("nodePort"):
            ports.append(f"{p.get('port', 0)}:{p['nodePort']}/{proto}")
        else:
            ports.append(f"{p.get('port', 0)}/{proto}")
    return [
        _name(svc), svc_type, cluster_ip, _service_external_ip(spec, status, svc_type),
        ",".join(ports) or _NONE, _age(svc, now), format_labels(spec.get("selector")),
    ]


def _host_port(ip: str, port: Any) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def format_endpoints(ep: Obj) -> str:
    """The first three endpoint addresses, "+ N more..." after (Kubernetes' formatEndpoints)."""
    shown: list[str] = []
    count = 0
    for ss in ep.get("subsets") or ():
        addresses = ss.get("addresses") or ()
        ports = ss.get("ports") or ()
        if not ports:
            for a in addresses:
                if len(shown) < 3:
                    shown.append(a.get("ip", ""))
                count += 1
            continue
        for p in ports:
            for a in addresses:
                if len(shown) < 3:
                    shown.append(_host_port(a.get("ip", ""), p.get("port", 0)))
                count += 1
    if not ep.get("subsets"):
        return _NONE
    text = ",".join(shown)
    return f"{text} + {count - 3} more..." if count > 3 else text


@_printer("", "Endpoints", (
    NAME, _col("Endpoints", "string", "Ready addresses (ip:port) of the endpoints."), AGE,
))
def _endpoints_cells(ep: Obj, now: datetime) -> list:
    return [_name(ep), format_endpoints(ep), _age(ep, now)]


# -- events --------------------------------------------------------------------


@_printer("", "Event", (
    _col("Last Seen", "string", "Time since the event was last observed."),
    _col("Type", "string", "Normal or Warning."),
    _col("Reason", "string", "Short, machine-understandable reason for the event."),
    _col("Object", "string", "The object the event is about (kind/name)."),
    _col("Subobject", "string", "The part of the object the event is about (involvedObject.fieldPath).", 1),
    _col("Source", "string", "The component (and host) that reported the event.", 1),
    _col("Message", "string", "Human-readable description of the event."),
    _col("First Seen", "string", "Time since the event was first observed.", 1),
    _col("Count", "string", "How many times the event occurred.", 1),
    _col("Name", "string", _D_NAME, 1, "name"),
))
def _event_cells(ev: Obj, now: datetime) -> list:
    if ev.get("firstTimestamp"):
        first = translate_timestamp_since(ev["firstTimestamp"], now)
    else:
        first = translate_timestamp_since(ev.get("eventTime"), now)
    last = translate_timestamp_since(ev["lastTimestamp"], now) if ev.get("lastTimestamp") else first
    count = ev.get("count") or 0
    series = ev.get("series")
    if series:
        last = translate_timestamp_since(series.get("lastObservedTime"), now)
        count = series.get("count", 0)
    elif count == 0:
        count = 1  # singleton events of the events/v1 API carry no count
    inv = _sub(ev, "involvedObject")
    kind = (inv.get("kind") or "").lower()
    target = f"{kind}/{inv['name']}" if inv.get("name") else kind
    src = _sub(ev, "source")
    component = src.get("component") or ev.get("reportingController") or ""
    host = src.get("host") or ev.get("reportingInstance") or ""
    source = f"{component}, {host}" if host else component
    return [last, ev.get("type", ""), ev.get("reason", ""), target, inv.get("fieldPath", ""), source,
            (ev.get("message") or "").strip(), first, count, _name(ev)]


# -- config and identity -----------------------------------------------------------


@_printer("", "ConfigMap", (NAME, _col("Data", "string", "Number of keys in data and binaryData."), AGE))
def _configmap_cells(cm: Obj, now: datetime) -> list:
    return [_name(cm), len(cm.get("data") or ()) + len(cm.get("binaryData") or ()), _age(cm, now)]


@_printer("", "Secret", (
    NAME, _col("Type", "string", "Used to facilitate programmatic handling of secret data."),
    _col("Data", "string", "Number of keys in data."), AGE,
))
def _secret_cells(s: Obj, now: datetime) -> list:
    return [_name(s), s.get("type", ""), len(s.get("data") or ()), _age(s, now)]


@_printer("", "ServiceAccount", (NAME, _col("Secrets", "string", "Number of secrets listed."), AGE))
def _serviceaccount_cells(sa: Obj, now: datetime) -> list:
    return [_name(sa), len(sa.get("secrets") or ()), _age(sa, now)]


@_printer("", "ResourceQuota", (
    NAME, AGE,
    _col("Request", "string", "Request represents a minimum amount of cpu/memory that a container may consume."),
    _col("Limit", "string", "Limits control the maximum amount of cpu/memory that a container may use independent "
         "of contention on the node."),
))
def _resourcequota_cells(rq: Obj, now: datetime) -> list:
    status = _sub(rq, "status")
    used, hard = status.get("used") or _EMPTY, status.get("hard") or _EMPTY
    request: list[str] = []
    limit: list[str] = []
    for name in sorted(_sub(rq, "spec").get("hard") or ()):
        column = limit if name.split(".")[0] == "limits" and "." in name else request
        column.append(f"{name}: {used.get(name, 0)}/{hard.get(name, 0)}")
    return [_name(rq), _age(rq, now), ", ".join(request), ", ".join(limit)]


@_printer("", "LimitRange", (NAME, CREATED_AT))
def _limitrange_cells(lr: Obj, now: datetime) -> list:
    return [_name(lr), _rfc3339(_meta(lr).get("creationTimestamp"))]


@_printer("coordination.k8s.io", "Lease", (
    NAME, _col("Holder", "string", "The identity of the current holder of the lease."), AGE,
))
def _lease_cells(lease: Obj, now: datetime) -> list:
    return [_name(lease), _sub(lease, "spec").get("holderIdentity") or "", _age(lease, now)]


# -- storage -------------------------------------------------------------------

_ACCESS_MODES = (("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"),
                 ("ReadWriteOncePod", "RWOP"))
_STORAGE_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"


def _access_modes(modes: Sequence[str] | None) -> str:
    present = set(modes or ())
    return ",".join(short for mode, short in _ACCESS_MODES if mode in present)


def _storage_class(obj: Obj) -> str:
    annotations = _meta(obj).get("annotations") or _EMPTY
    if _STORAGE_CLASS_ANNOTATION in annotations:
        return annotations[_STORAGE_CLASS_ANNOTATION]
    return _sub(obj, "spec").get("storageClassName") or ""


def _phase_or_terminating(obj: Obj) -> str:
    if _meta(obj).get("deletionTimestamp"):
        return "Terminating"
    return _sub(obj, "status").get("phase", "")


@_printer("", "PersistentVolume", (
    NAME,
    _col("Capacity", "string", "The volume's size (spec.capacity.storage)."),
    _col("Access Modes", "string", "The ways the volume can be mounted."),
    _col("Reclaim Policy", "string", "What happens to the volume when released from its claim."),
    _col("Status", "string", "The volume's phase."),
    _col("Claim", "string", "The claim bound to the volume (namespace/name)."),
    _col("StorageClass", "string", "StorageClass of the pv"),
    _col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv"),
    _col("Reason", "string", "Why the volume is in its phase, if failed."),
    AGE,
    _col("VolumeMode", "string", "Filesystem or Block.", 1),
))
def _pv_cells(pv: Obj, now: datetime) -> list:
    spec = _sub(pv, "spec")
    ref = spec.get("claimRef")
    claim = f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref else ""
    return [
        _name(pv), str(_sub(spec, "capacity").get("storage", "0")), _access_modes(spec.get("accessModes")),
        spec.get("persistentVolumeReclaimPolicy", ""), _phase_or_terminating(pv), claim, _storage_class(pv),
        spec.get("volumeAttributesClassName") or "<unset>", _sub(pv, "status").get("reason", ""),
        _age(pv, now), spec.get("volumeMode") or "<unset>",
    ]


@_printer("", "PersistentVolumeClaim", (
    NAME,
    _col("Status", "string", "The claim's phase."),
    _col("Volume", "string", "The volume bound to the claim."),
    _col("Capacity", "string", "The bound volume's size."),
    _col("Access Modes", "string", "The ways the bound volume can be mounted."),
    _col("StorageClass", "string", "StorageClass of the pvc"),
    _col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pvc"),
    AGE,
    _col("VolumeMode", "string", "Filesystem or Block.", 1),
))
def _pvc_cells(pvc: Obj, now: datetime) -> list:
    spec, status = _sub(pvc, "spec"), _sub(pvc, "status")
    capacity = modes = ""
    if spec.get("volumeName"):
        modes = _access_modes(status.get("accessModes"))
        capacity = str(_sub(status, "capacity").get("storage", "0"))
    return [
        _name(pvc), _phase_or_terminating(pvc), spec.get("volumeName", ""), capacity, modes,
        _storage_class(pvc), spec.get("volumeAttributesClassName") or "<unset>", _age(pvc, now),
        spec.get("volumeMode") or "<unset>",
    ]


# -- RBAC and CRDs -----------------------------------------------------------------


@_printer("rbac.authorization.k8s.io", ("Role", "ClusterRole"), (NAME, CREATED_AT))
@_printer("apiextensions.k8s.io", "CustomResourceDefinition", (NAME, CREATED_AT))
def _created_at_cells(obj: Obj, now: datetime) -> list:
    return [_name(obj), _rfc3339(_meta(obj).get("creationTimestamp"))]


_BINDING_COLUMNS = (
    NAME,
    _col("Role", "string", "The role the binding grants (kind/name)."),
    AGE,
    _col("Users", "string", "Users in the binding.", 1),
    _col("Groups", "string", "Groups in the binding.", 1),
    _col("ServiceAccounts", "string", "ServiceAccounts in the binding (namespace/name).", 1),
)


@_printer("rbac.authorization.k8s.io", ("RoleBinding", "ClusterRoleBinding"), _BINDING_COLUMNS)
def _binding_cells(b: Obj, now: datetime) -> list:
    ref = _sub(b, "roleRef")
    users: list[str] = []
    groups: list[str] = []
    sas: list[str] = []
    for s in b.get("subjects") or ():
        kind = s.get("kind")
        if kind == "User":
            users.append(s.get("name", ""))
        elif kind == "Group":
            groups.append(s.get("name", ""))
        elif kind == "ServiceAccount":
            sas.append(f"{s.get('namespace', '')}/{s.get('name', '')}")
    return [_name(b), f"{ref.get('kind', '')}/{ref.get('name', '')}", _age(b, now),
            ", ".join(users), ", ".join(groups), ", ".join(sas)]


# -- Arktos kinds --------------------------------------------------------------------

_ACTION_KINDS = (("rebootAction", "reboot"), ("snapshotAction", "snapshot"), ("restoreAction", "restore"))


@_printer("", "Action", (
    NAME,
    _col("Operation", "string", "What the action does to the pod's VM: reboot, snapshot or restore."),
    _col("Pod", "string", "The pod the action was created for."),
    _col("Complete", "string", "Whether the node agent finished the action (Yes/No)."),
    AGE,
    _col("Node", "string", "The node that performs the action.", 1),
    _col("Error", "string", "Error message, if the action failed.", 1),
))
def _action_cells(a: Obj, now: datetime) -> list:
    spec, status = _sub(a, "spec"), _sub(a, "status")
    op = next((name for key, name in _ACTION_KINDS if spec.get(key) is not None), "")
    if not op:
        # The server names actions "{operation}-{unixSeconds}".
        head, sep, _ = _name(a).rpartition("-")
        op = head if sep else "<unknown>"
    return [_name(a), op, spec.get("podName") or status.get("podName") or "",
            "Yes" if status.get("complete") else "No", _age(a, now),
            spec.get("nodeName") or _NONE, status.get("error") or ""]


@_printer("", "ControllerInstance", (
    NAME,
    _col("Type", "string", "The controller type the instance runs (e.g. replicaset)."),
    _col("Key", "integer", "controllerKey: the inclusive upper bound of the hashKey range it owns."),
    _col("Workloads", "integer", "Number of workloads the instance manages."),
    _col("Locked", "boolean", "Whether the instance is locked while ranges are being reassigned."),
    AGE,
))
def _controller_instance_cells(ci: Obj, now: datetime) -> list:
    # Arktos keeps these fields at top level; accept a spec too.
    src = ci if "controllerType" in ci or "controllerKey" in ci else _sub(ci, "spec")
    return [_name(ci), src.get("controllerType", ""), src.get("controllerKey", 0), src.get("workloadNum", 0),
            bool(src.get("isLocked", False)), _age(ci, now)]


# ---------------------------------------------------------------------------
# Custom resources: Name + additionalPrinterColumns (JSONPath subset)
# ---------------------------------------------------------------------------

# Compiled step kinds.
_S_KEY, _S_INDEX, _S_ALL, _S_FILTER = range(4)


class _PathError(ValueError):
    pass


def _find_bracket_end(path: str, start: int) -> int:
    quote = ""
    depth = 0
    for i in range(start, len(path)):
        c = path[i]
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c in "[(":
            depth += 1
        elif c in ")]":
            depth -= 1
            if depth == 0 and c == "]":
                return i
    raise _PathError(f"unclosed '[' in {path!r}")


def _literal(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise _PathError(f"bad literal {text!r}") from None


def _compile_steps(path: str) -> tuple:
    steps: list[tuple] = []
    i, n = 0, len(path)
    if path.startswith("$"):
        i = 1
    while i < n:
        c = path[i]
        if c == ".":
            i += 1
            if i < n and path[i] == "*":
                steps.append((_S_ALL,))
                i += 1
                continue
            name: list[str] = []
            while i < n and path[i] not in ".[":
                if path[i] == "\\" and i + 1 < n:
                    i += 1
                name.append(path[i])
                i += 1
            if not name:
                raise _PathError(f"empty field name in {path!r}")
            steps.append((_S_KEY, "".join(name)))
        elif c == "[":
            end = _find_bracket_end(path, i)
            inner = path[i + 1:end].strip()
            i = end + 1
            if inner == "*":
                steps.append((_S_ALL,))
            elif inner[:1] in ("'", '"'):
                steps.append((_S_KEY, _literal(inner)))
            elif inner.startswith("?(") and inner.endswith(")"):
                steps.append(_compile_filter(inner[2:-1].strip(), path))
            else:
                try:
                    steps.append((_S_INDEX, int(inner)))
                except ValueError:
                    raise _PathError(f"unsupported subscript [{inner}] in {path!r}") from None
        else:
            raise _PathError(f"unexpected {c!r} in {path!r}")
    return tuple(steps)


def _compile_filter(expr: str, path: str) -> tuple:
    if not expr.startswith("@"):
        raise _PathError(f"filter must start with @ in {path!r}")
    for op in ("==", "!="):
        left, sep, right = expr.partition(op)
        if sep:
            return (_S_FILTER, _compile_steps(left.strip()[1:]), op, _literal(right))
    return (_S_FILTER, _compile_steps(expr[1:]), "exists", None)


@functools.lru_cache(maxsize=512)
def _compile_jsonpath(path: str) -> tuple | None:
    """Steps for a simple JSONPath like `.spec.replicas`, `.status.conditions[?(@.type=="Ready")].status`.

    Supports `.name`, `['name']`, `[n]`, `[*]`, `.*` and `[?(@.path==literal)]`
    (also `!=` and bare existence).  None when unsupported: the column then
    shows no value, rather than failing the whole list.
    """
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1].strip()
    try:
        return _compile_steps(path)
    except _PathError:
        return None


def _eval_steps(steps: tuple, value: Any) -> list:
    current = [value]
    for step in steps:
        kind = step[0]
        nxt: list = []
        for v in current:
            if kind == _S_KEY:
                if isinstance(v, Mapping) and step[1] in v:
                    nxt.append(v[step[1]])
            elif kind == _S_INDEX:
                if isinstance(v, list) and -len(v) <= step[1] < len(v):
                    nxt.append(v[step[1]])
            elif kind == _S_ALL:
                if isinstance(v, list):
                    nxt.extend(v)
                elif isinstance(v, Mapping):
                    nxt.extend(v.values())
            elif isinstance(v, list):  # filter
                _, sub, op, lit = step
                for item in v:
                    found = _eval_steps(sub, item)
                    if (op == "exists" and found) or (op == "==" and found and found[0] == lit) or (
                        op == "!=" and (not found or found[0] != lit)
                    ):
                        nxt.append(item)
        current = nxt
        if not current:
            break
    return current


def _go_text(v: Any) -> str:
    """A JSON value as kubectl's JSONPath printer shows it."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e21 else repr(v)
    if isinstance(v, int):
        return str(v)
    if v is None:
        return ""
    return json.dumps(v, separators=(",", ":"), sort_keys=True)


def _typed_cell(type_: str, v: Any, now: datetime) -> Any:
    """Kubernetes' cellForJSONValue: the value if it fits the column type, else null."""
    if v is None:
        return None
    if type_ == "string":
        return _go_text(v)
    if type_ == "integer":
        if isinstance(v, bool):
            return None
        if isinstance(v, int):
            return v
        if isinstance(v, float):
            return int(v)
        return None
    if type_ == "number":
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None
    if type_ == "boolean":
        return v if isinstance(v, bool) else None
    if type_ == "date":
        if not isinstance(v, str):
            return None
        t = parse_time(v)
        return "<invalid>" if t is None else human_duration((now - t).total_seconds())
    return None


_DEFAULT_CR_COLUMNS = ({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
                        "description": _D_AGE},)


@functools.lru_cache(maxsize=256)
def _custom_printer(spec: tuple[tuple[str, str, str, str, int, str], ...]) -> _Printer:
    columns = [NAME]
    evaluators: list[tuple[tuple | None, str]] = []
    for name, type_, fmt, json_path, priority, desc in spec:
        columns.append(_col(name, type_, desc or f"Custom resource definition column (in JSONPath format): "
                            f"{json_path}", priority, fmt))
        evaluators.append((_compile_jsonpath(json_path), type_))

    def cells(obj: Obj, now: datetime) -> list:
        row: list = [_name(obj)]
        for steps, type_ in evaluators:
            found = _eval_steps(steps, obj) if steps is not None else []
            row.append(_typed_cell(type_, found[0], now) if found else None)
        return row

    return _Printer(tuple(columns), cells)


def _custom_spec(printer_columns: Sequence[Mapping[str, Any]] | None) -> tuple:
    cols = printer_columns or _DEFAULT_CR_COLUMNS
    return tuple(
        (str(c.get("name", "")), str(c.get("type", "string")), str(c.get("format", "")),
         str(c.get("jsonPath") or c.get("JSONPath") or ""), int(c.get("priority") or 0),
         str(c.get("description", "")))
        for c in cols
    )


# ---------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------


def _printer_for(info: ResourceInfo, printer_columns: Sequence[Mapping[str, Any]] | None) -> _Printer:
    printer = _PRINTERS.get((info.group, info.kind))
    if printer is None:
        printer = _custom_printer(_custom_spec(printer_columns))
    return printer


def column_definitions(info: ResourceInfo,
                       printer_columns: Sequence[Mapping[str, Any]] | None = None) -> list[dict]:
    """The Table columns for a kind (all of them; priority 1 = `-o wide` only)."""
    return list(_printer_for(info, printer_columns).columns)


def row_cells(info: ResourceInfo, obj: Obj, now: datetime,
              printer_columns: Sequence[Mapping[str, Any]] | None = None) -> list:
    """One object's cells, in column order."""
    return _printer_for(info, printer_columns).cells(obj, _aware(now))


def _aware(now: datetime) -> datetime:
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


_INCLUDE = {"": "Metadata", "Metadata": "Metadata", "Object": "Object", "None": "None"}


def table(info: ResourceInfo, objects: Sequence[Obj], *, include_object: str = "Metadata", now: datetime,
          list_meta: dict, printer_columns: Sequence[Mapping[str, Any]] | None = None) -> dict:
    """A `meta.k8s.io/v1` Table of `objects`.

    `include_object` is the `?includeObject=` policy: Metadata (default; each
    row carries a PartialObjectMetadata, which kubectl needs for names and
    namespaces), Object (the full object) or None.  `list_meta` becomes the
    table's metadata (resourceVersion, continue, ...).  `printer_columns`
    are the CRD's additionalPrinterColumns for a custom resource (ignored
    for built-in kinds); with none, custom resources show Name and Age.  The
    returned column dicts are shared constants: serialise, don't mutate.
    """
    mode = _INCLUDE.get(include_object)
    if mode is None:
        raise bad_request(
            f'includeObject: Unsupported value: "{include_object}": supported values: "None", "Metadata", "Object"'
        )
    printer = _printer_for(info, printer_columns)
    now = _aware(now)
    cells_of, conditions_of = printer.cells, printer.conditions
    rows: list[dict] = []
    for obj in objects:
        row: dict[str, Any] = {"cells": cells_of(obj, now)}
        if conditions_of is not None:
            conds = conditions_of(obj)
            if conds:
                row["conditions"] = conds
        if mode == "Metadata":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": obj.get("metadata") or {}}
        elif mode == "Object":
            if "kind" in obj and "apiVersion" in obj:
                row["object"] = obj
            else:
                row["object"] = {"kind": info.kind, "apiVersion": info.api_version, **obj}
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": list(printer.columns),
        "rows": rows,
    }
