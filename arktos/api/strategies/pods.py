"""Pods: defaults, validation, QoS, resource requests, binding.

A pod holds either containers (Kubernetes) or exactly one virtual machine
(Arktos, `spec.virtualMachine`), never both; both kinds are scheduled the same
way, so `pod_resource_requests` reads resources from whichever the pod has.
The pod-spec functions here are also used for the pod templates of
Deployments and ReplicaSets, so a template is checked exactly as the pods made
from it will be.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime
from collections.abc import Mapping
from typing import Any

from arktos.api import errors
from arktos.api.errors import FieldError, forbidden, invalid, not_supported, required
from arktos.api.quantity import QUANTITY_REGEX_MESSAGE, QuantityError, parse_quantity, resource_amount
from arktos.api.strategies._base import (
    KindStrategy,
    as_dict,
    as_list,
    check_dict,
    check_list,
    check_unique_name,
    dig,
    is_int,
    type_error,
)
from arktos.api.strategy import Obj
from arktos.api.validation import (
    inclusive_range_error,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_env_var_name,
    is_qualified_name,
    is_valid_ip,
    is_valid_label_value,
    is_valid_port_name,
    is_valid_port_num,
    validate_dns1123_label,
    validate_labels,
    validate_nonnegative,
)

RESTART_POLICIES = ["Always", "OnFailure", "Never"]
DNS_POLICIES = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"]
PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
TERMINATION_MESSAGE_POLICIES = ["File", "FallbackToLogsOnError"]
PROTOCOLS = ["SCTP", "TCP", "UDP"]
POD_PHASES = ["Pending", "Running", "Succeeded", "Failed", "Unknown"]
TOLERATION_OPERATORS = ["Equal", "Exists"]
TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]
# Arktos virtual machines.
VM_POWER_SPECS = ["Running", "Paused", "Shutdown", "Suspended"]
VM_SHUTDOWN_BEHAVIORS = ["stop", "terminate"]
VM_USER_DATA_MAX = 65535

DEFAULT_SCHEDULER = "default-scheduler"
DEFAULT_TERMINATION_GRACE = 30
TERMINATION_MESSAGE_PATH = "/dev/termination-log"
MAX_INT32 = 2**31 - 1

# Resource names a container may use without a domain prefix.
_STANDARD_CONTAINER_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage"})
_QOS_RESOURCES = ("cpu", "memory")
_POD_UPDATE_MESSAGE = (
    "pod updates may not change fields other than `spec.containers[*].image`, "
    "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` "
    "(only additions to existing tolerations), `spec.terminationGracePeriodSeconds` (allow it to be "
    "set to 1 if it was previously negative) or `spec.virtualMachine.powerSpec`"
)


# --------------------------------------------------------------------------- defaults


def image_pull_policy_for(image: str) -> str:
    """Always for ":latest" or untagged images (they move), IfNotPresent otherwise.

    A digest reference ("img@sha256:...") is immutable, hence IfNotPresent.
    """
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.rsplit(":", 1)[1] if ":" in last else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def _default_probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    http = probe.get("httpGet")
    if isinstance(http, dict):
        http.setdefault("path", "/")
        http.setdefault("scheme", "HTTP")


def _default_container(c: dict[str, Any], host_network: bool) -> None:
    c.setdefault("terminationMessagePath", TERMINATION_MESSAGE_PATH)
    c.setdefault("terminationMessagePolicy", "File")
    if not c.get("imagePullPolicy") and isinstance(c.get("image"), str):
        c["imagePullPolicy"] = image_pull_policy_for(c["image"])
    c.setdefault("resources", {})
    for port in as_list(c.get("ports")):
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if host_network and not port.get("hostPort") and port.get("containerPort"):
                port["hostPort"] = port["containerPort"]
    for env in as_list(c.get("env")):
        field_ref = dig(env, "valueFrom", "fieldRef")
        if isinstance(field_ref, dict):
            field_ref.setdefault("apiVersion", "v1")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(c.get(probe))


def _default_requests_from_limits(resources: Any) -> None:
    """A resource with only a limit gets a request equal to it (Kubernetes' SetDefaults_Pod)."""
    if not isinstance(resources, dict):
        return
    limits = resources.get("limits")
    if not isinstance(limits, dict) or not limits:
        return
    requests = resources.get("requests")
    if requests is None:
        requests = resources["requests"] = {}
    if isinstance(requests, dict):
        for name, value in limits.items():
            requests.setdefault(name, value)


_MODE_SOURCES = ("secret", "configMap", "downwardAPI", "projected")


def _default_volume(v: dict[str, Any]) -> None:
    if len(v) == 1 and "name" in v:
        v["emptyDir"] = {}
    for source in _MODE_SOURCES:
        src = v.get(source)
        if isinstance(src, dict):
            src.setdefault("defaultMode", 0o644)


def default_pod_spec(spec: Any, *, template: bool = False) -> None:
    """Kubernetes' v1 PodSpec defaults, in place.

    For a template (`template=True`) the pod-only defaults are skipped:
    requests copied from limits and the priority, which Kubernetes sets on
    pods only (the pods made from the template get them when created).
    """
    if not isinstance(spec, dict):
        return
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", DEFAULT_TERMINATION_GRACE)
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", DEFAULT_SCHEDULER)
    spec.setdefault("enableServiceLinks", True)
    host_network = spec.get("hostNetwork") is True
    for key in ("containers", "initContainers"):
        for c in as_list(spec.get(key)):
            if isinstance(c, dict):
                _default_container(c, host_network)
                if not template:
                    _default_requests_from_limits(c.get("resources"))
    for v in as_list(spec.get("volumes")):
        if isinstance(v, dict):
            _default_volume(v)
    vm = spec.get("virtualMachine")
    if isinstance(vm, dict):
        if not vm.get("imagePullPolicy") and isinstance(vm.get("image"), str):
            vm["imagePullPolicy"] = image_pull_policy_for(vm["image"])
        vm.setdefault("powerSpec", "Running")
        if not template:
            _default_requests_from_limits(vm.get("resources"))
    if not template and "priority" not in spec and not spec.get("priorityClassName"):
        spec["priority"] = 0


# --------------------------------------------------------------------------- resources


def _quantity(value: Any) -> Any:
    try:
        return parse_quantity(value)
    except QuantityError:
        return None


def _is_extended_resource(name: str) -> bool:
    """Device-plugin style resources ("nvidia.com/gpu"): counted, never overcommitted."""
    return "/" in name and "kubernetes.io/" not in name and not name.startswith("requests.")


def validate_resource_requirements(res: Any, path: str) -> list[FieldError]:
    """requests/limits: known names, parseable non-negative quantities, requests <= limits."""
    errs: list[FieldError] = []
    res = check_dict(res, path, errs)
    parsed: dict[str, dict[str, Any]] = {}
    for part in ("limits", "requests"):
        values = check_dict(res.get(part), f"{path}.{part}", errs)
        parsed[part] = {}
        for name, value in values.items():
            p = f"{path}.{part}[{name}]"
            name_errs = is_qualified_name(name)
            if name_errs:
                errs.extend(invalid(p, name, m) for m in name_errs)
            elif "/" not in name and name not in _STANDARD_CONTAINER_RESOURCES and not name.startswith("hugepages-"):
                errs.append(invalid(p, name, "must be a standard resource for containers"))
            q = _quantity(value)
            if q is None:
                errs.append(invalid(p, value, QUANTITY_REGEX_MESSAGE))
                continue
            if q < 0:
                errs.append(invalid(p, value, "must be greater than or equal to 0"))
                continue
            parsed[part][name] = q
    limits, requests = parsed["limits"], parsed["requests"]
    for name, req in requests.items():
        p = f"{path}.requests[{name}]"
        lim = limits.get(name)
        non_overcommit = _is_extended_resource(name) or name.startswith("hugepages-")
        if _is_extended_resource(name) and req != int(req):
            errs.append(invalid(p, str(res["requests"][name]), "must be an integer"))
        if lim is None:
            if non_overcommit:
                errs.append(required(f"{path}.limits", "Limit must be set for non overcommitable resources"))
            continue
        if non_overcommit and req != lim:
            errs.append(invalid(p, str(res["requests"][name]), f"must be equal to {name} limit"))
        elif req > lim:
            errs.append(invalid(p, str(res["requests"][name]), f"must be less than or equal to {name} limit"))
    return errs


def _effective_requests(resources: Any) -> dict[str, Any]:
    """Requests as they are after defaulting: a limit stands in for a missing request."""
    res = as_dict(resources)
    out = dict(as_dict(res.get("limits")))
    out.update(as_dict(res.get("requests")))
    return out


def _amounts(values: Mapping[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, value in values.items():
        try:
            out[name] = resource_amount(name, value)
        except QuantityError:
            continue  # validated objects never get here; a raw one must not crash the scheduler
    return out


def pod_resource_requests(pod: Obj) -> dict[str, int]:
    """What the pod asks of a node: {"cpu": millicores, "memory": bytes, "pods": 1, ...}.

    Containers run side by side, so their requests add up; init containers
    run one at a time before them, so each resource is the larger of the
    containers' sum and the biggest init container.  A VM pod asks for its
    VM's resources.  Pod overhead (`spec.overhead`) is added on top.  CPU is
    in millicores, everything else in whole units (bytes, devices).  Shared by
    the scheduler and the node agent so both count a pod the same way.
    """
    spec = as_dict(pod.get("spec"))
    total: dict[str, int] = {"cpu": 0, "memory": 0}
    vm = spec.get("virtualMachine")
    if isinstance(vm, dict):
        for name, amount in _amounts(_effective_requests(vm.get("resources"))).items():
            total[name] = total.get(name, 0) + amount
    else:
        for c in as_list(spec.get("containers")):
            for name, amount in _amounts(_effective_requests(as_dict(c).get("resources"))).items():
                total[name] = total.get(name, 0) + amount
        for c in as_list(spec.get("initContainers")):
            for name, amount in _amounts(_effective_requests(as_dict(c).get("resources"))).items():
                total[name] = max(total.get(name, 0), amount)
    for name, amount in _amounts(as_dict(spec.get("overhead"))).items():
        total[name] = total.get(name, 0) + amount
    total["pods"] = 1
    return total


def compute_qos_class(pod: Obj) -> str:
    """BestEffort, Burstable or Guaranteed, as Kubernetes' GetPodQOS decides.

    Only cpu and memory count.  Guaranteed needs every container (and the
    VM) to set non-zero cpu and memory limits, with pod-wide requests equal
    to limits; no requests or limits at all is BestEffort; anything else is
    Burstable.  A limit without a request counts as that request, as
    defaulting will make it.
    """
    spec = as_dict(pod.get("spec"))
    workloads: list[Any] = []
    vm = spec.get("virtualMachine")
    if isinstance(vm, dict):
        workloads.append(vm.get("resources"))
    workloads.extend(as_dict(c).get("resources") for c in as_list(spec.get("containers")))
    workloads.extend(as_dict(c).get("resources") for c in as_list(spec.get("initContainers")))
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    guaranteed = True
    for res in workloads:
        for name, value in _effective_requests(res).items():
            q = _quantity(value)
            if name in _QOS_RESOURCES and q is not None and q > 0:
                requests[name] = requests.get(name, 0) + q
        found = set()
        for name, value in as_dict(as_dict(res).get("limits")).items():
            q = _quantity(value)
            if name in _QOS_RESOURCES and q is not None and q > 0:
                found.add(name)
                limits[name] = limits.get(name, 0) + q
        if not found.issuperset(_QOS_RESOURCES):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and all(limits.get(n) == q for n, q in requests.items()) and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"


# --------------------------------------------------------------------------- validation


def _validate_ports(ports: Any, path: str, host_network: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, port in enumerate(check_list(ports, path, errs)):
        p = f"{path}[{i}]"
        port = check_dict(port, p, errs)
        check_unique_name(port, p, names, errs, needed=False, validate=_port_name_errors)
        cport = port.get("containerPort")
        if not cport:
            errs.append(required(f"{p}.containerPort"))
        else:
            errs.extend(invalid(f"{p}.containerPort", cport, m) for m in is_valid_port_num(cport))
        hport = port.get("hostPort")
        if hport:
            errs.extend(invalid(f"{p}.hostPort", hport, m) for m in is_valid_port_num(hport))
            if host_network and hport != cport:
                errs.append(invalid(f"{p}.hostPort", hport, "must match `containerPort` when `hostNetwork` is true"))
        protocol = port.get("protocol")
        if protocol is None:
            errs.append(required(f"{p}.protocol"))
        elif protocol not in PROTOCOLS:
            errs.append(not_supported(f"{p}.protocol", protocol, PROTOCOLS))
        if port.get("hostIP") and isinstance(port["hostIP"], str):
            errs.extend(invalid(f"{p}.hostIP", port["hostIP"], m) for m in is_valid_ip(port["hostIP"]))
    return errs


def _port_name_errors(name: str, path: str) -> list[FieldError]:
    return [invalid(path, name, m) for m in is_valid_port_name(name)]


def _validate_env(env: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, var in enumerate(check_list(env, path, errs)):
        p = f"{path}[{i}]"
        var = check_dict(var, p, errs)
        name = var.get("name")
        if not name:
            errs.append(required(f"{p}.name"))
        elif not isinstance(name, str):
            errs.append(type_error(f"{p}.name", name, "a string"))
        else:
            errs.extend(invalid(f"{p}.name", name, m) for m in is_env_var_name(name))
        value_from = var.get("valueFrom")
        if value_from is not None:
            if var.get("value"):
                errs.append(invalid(f"{p}.valueFrom", "", "may not be specified when `value` is not empty"))
            sources = [k for k in as_dict(value_from) if as_dict(value_from).get(k) is not None]
            if len(sources) != 1:
                errs.append(
                    invalid(
                        f"{p}.valueFrom",
                        "",
                        "may not have more than one field specified at a time"
                        if sources
                        else "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
                    )
                )
    return errs


def _validate_volume_mounts(mounts: Any, path: str, volumes: set[str]) -> list[FieldError]:
    errs: list[FieldError] = []
    paths: set[str] = set()
    for i, m in enumerate(check_list(mounts, path, errs)):
        p = f"{path}[{i}]"
        m = check_dict(m, p, errs)
        name = m.get("name")
        if not name:
            errs.append(required(f"{p}.name"))
        elif name not in volumes:
            errs.append(FieldError(f"{p}.name", "FieldValueNotFound", f'volume "{name}" not found', name))
        mount_path = m.get("mountPath")
        if not mount_path:
            errs.append(required(f"{p}.mountPath"))
        elif mount_path in paths:
            errs.append(invalid(f"{p}.mountPath", mount_path, "must be unique"))
        else:
            paths.add(mount_path)
    return errs


def _validate_container(
    c: Any, path: str, volumes: set[str], names: set[str], host_network: bool, init: bool
) -> list[FieldError]:
    errs: list[FieldError] = []
    c = check_dict(c, path, errs)
    check_unique_name(c, path, names, errs, validate=validate_dns1123_label)
    image = c.get("image")
    if not image:
        errs.append(required(f"{path}.image"))
    elif not isinstance(image, str):
        errs.append(type_error(f"{path}.image", image, "a string"))
    elif image != image.strip():
        errs.append(invalid(f"{path}.image", image, "must not have leading or trailing whitespace"))
    policy = c.get("imagePullPolicy")
    if not policy:
        errs.append(required(f"{path}.imagePullPolicy"))
    elif policy not in PULL_POLICIES:
        errs.append(not_supported(f"{path}.imagePullPolicy", policy, PULL_POLICIES))
    tmp = c.get("terminationMessagePolicy")
    if not tmp:
        errs.append(required(f"{path}.terminationMessagePolicy"))
    elif tmp not in TERMINATION_MESSAGE_POLICIES:
        errs.append(not_supported(f"{path}.terminationMessagePolicy", tmp, TERMINATION_MESSAGE_POLICIES))
    for key in ("command", "args"):
        for j, item in enumerate(check_list(c.get(key), f"{path}.{key}", errs)):
            if not isinstance(item, str):
                errs.append(type_error(f"{path}.{key}[{j}]", item, "a string"))
    errs.extend(_validate_ports(c.get("ports"), f"{path}.ports", host_network))
    errs.extend(_validate_env(c.get("env"), f"{path}.env"))
    errs.extend(_validate_volume_mounts(c.get("volumeMounts"), f"{path}.volumeMounts", volumes))
    errs.extend(validate_resource_requirements(c.get("resources"), f"{path}.resources"))
    if init:
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            if c.get(probe) is not None:
                errs.append(invalid(f"{path}.{probe}", "", "must not be set for init containers"))
    else:
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            pr = c.get(probe)
            if pr is None:
                continue
            pr = check_dict(pr, f"{path}.{probe}", errs)
            for key in (
                "initialDelaySeconds",
                "timeoutSeconds",
                "periodSeconds",
                "successThreshold",
                "failureThreshold",
            ):
                errs.extend(validate_nonnegative(pr.get(key), f"{path}.{probe}.{key}"))
            if probe != "readinessProbe" and pr.get("successThreshold") not in (None, 1):
                errs.append(invalid(f"{path}.{probe}.successThreshold", pr["successThreshold"], "must be 1"))
    return errs


def _validate_volumes(volumes: Any, path: str) -> tuple[set[str], list[FieldError]]:
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, v in enumerate(check_list(volumes, path, errs)):
        p = f"{path}[{i}]"
        v = check_dict(v, p, errs)
        check_unique_name(v, p, names, errs, validate=validate_dns1123_label)
        sources = [k for k in v if k != "name" and v[k] is not None]
        if not sources:
            errs.append(required(p, "must specify a volume type"))
        elif len(sources) > 1:
            errs.append(forbidden(f"{p}.{sources[1]}", "may not specify more than 1 volume type"))
    return names, errs


def _validate_tolerations(tolerations: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, t in enumerate(check_list(tolerations, path, errs)):
        p = f"{path}[{i}]"
        t = check_dict(t, p, errs)
        key, op, value, effect = t.get("key"), t.get("operator"), t.get("value"), t.get("effect")
        if key:
            errs.extend(invalid(f"{p}.key", key, m) for m in is_qualified_name(str(key)))
        if not key and op != "Exists":
            errs.append(
                invalid(
                    f"{p}.operator",
                    op,
                    'operator must be Exists when `key` is empty, which means "match all values and all keys"',
                )
            )
        if op not in (None, "", *TOLERATION_OPERATORS):
            errs.append(not_supported(f"{p}.operator", op, TOLERATION_OPERATORS))
        elif op == "Exists" and value:
            errs.append(invalid(f"{p}.operator", value, "value must be empty when `operator` is 'Exists'"))
        elif value and isinstance(value, str):
            errs.extend(invalid(f"{p}.value", value, m) for m in is_valid_label_value(value))
        if effect and effect not in TAINT_EFFECTS:
            errs.append(not_supported(f"{p}.effect", effect, TAINT_EFFECTS))
        if t.get("tolerationSeconds") is not None and effect != "NoExecute":
            errs.append(invalid(f"{p}.effect", effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"))
    return errs


def _validate_virtual_machine(vm: Any, path: str, volumes: set[str]) -> list[FieldError]:
    """Arktos VM rules (ARKTOS.md section 3)."""
    errs: list[FieldError] = []
    vm = check_dict(vm, path, errs)
    name = vm.get("name")
    if not name:
        errs.append(required(f"{path}.name"))
    elif not isinstance(name, str):
        errs.append(type_error(f"{path}.name", name, "a string"))
    else:
        errs.extend(validate_dns1123_label(name, f"{path}.name"))
    image = vm.get("image")
    if not image:
        errs.append(required(f"{path}.image"))
    elif not isinstance(image, str):
        errs.append(type_error(f"{path}.image", image, "a string"))
    if not vm.get("keyPairName") and not vm.get("publicKey"):
        errs.append(required(f"{path}.keyPairName", "one of keyPairName or publicKey must be specified"))
    user_data = vm.get("userData")
    if user_data:
        if not isinstance(user_data, str):
            errs.append(type_error(f"{path}.userData", None, "a base64-encoded string"))
        else:
            try:
                decoded = base64.b64decode(user_data, validate=True)
            except (binascii.Error, ValueError):
                errs.append(invalid(f"{path}.userData", None, "must be base64-encoded"))
            else:
                if len(decoded) > VM_USER_DATA_MAX:
                    errs.append(
                        FieldError(
                            f"{path}.userData",
                            "FieldValueTooLong",
                            f"must have at most {VM_USER_DATA_MAX} bytes once decoded",
                        )
                    )
    power = vm.get("powerSpec")
    if power not in (None, "") and power not in VM_POWER_SPECS:
        errs.append(not_supported(f"{path}.powerSpec", power, VM_POWER_SPECS))
    shutdown = vm.get("shutdownBehavior")
    if shutdown not in (None, "") and shutdown not in VM_SHUTDOWN_BEHAVIORS:
        errs.append(not_supported(f"{path}.shutdownBehavior", shutdown, VM_SHUTDOWN_BEHAVIORS))
    policy = vm.get("imagePullPolicy")
    if policy not in (None, "") and policy not in PULL_POLICIES:
        errs.append(not_supported(f"{path}.imagePullPolicy", policy, PULL_POLICIES))
    errs.extend(validate_resource_requirements(vm.get("resources"), f"{path}.resources"))
    errs.extend(_validate_volume_mounts(vm.get("volumeMounts"), f"{path}.volumeMounts", volumes))
    return errs


def _validate_nics(nics: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, nic in enumerate(check_list(nics, path, errs)):
        p = f"{path}[{i}]"
        nic = check_dict(nic, p, errs)
        check_unique_name(nic, p, names, errs)
        ip = nic.get("ipAddress")
        if ip:
            errs.extend(invalid(f"{p}.ipAddress", ip, m) for m in is_valid_ip(str(ip)))
    return errs


def _check_name(value: Any, path: str, check: Any) -> list[FieldError]:
    if not value:
        return []
    if not isinstance(value, str):
        return [type_error(path, value, "a string")]
    return [invalid(path, value, m) for m in check(value)]


def validate_pod_spec(spec: Any, path: str = "spec") -> list[FieldError]:
    """Everything Kubernetes (and Arktos for VMs) checks in a PodSpec."""
    if spec is None:
        return [required(path)]
    if not isinstance(spec, dict):
        return [type_error(path, spec, "an object")]
    errs: list[FieldError] = []
    host_network = spec.get("hostNetwork") is True
    volumes, vol_errs = _validate_volumes(spec.get("volumes"), f"{path}.volumes")
    errs.extend(vol_errs)

    containers = check_list(spec.get("containers"), f"{path}.containers", errs)
    init_containers = check_list(spec.get("initContainers"), f"{path}.initContainers", errs)
    vm = spec.get("virtualMachine")
    if vm is not None:
        if containers:
            errs.append(
                forbidden(
                    f"{path}.virtualMachine",
                    "may not be specified together with containers: a pod holds "
                    "either one virtual machine or one or more containers",
                )
            )
        if init_containers:
            errs.append(forbidden(f"{path}.initContainers", "not supported for a virtual machine pod"))
        errs.extend(_validate_virtual_machine(vm, f"{path}.virtualMachine", volumes))
    elif not containers:
        errs.append(required(f"{path}.containers", "a pod needs one or more containers or a virtualMachine"))
    names: set[str] = set()
    for i, c in enumerate(init_containers):
        errs.extend(_validate_container(c, f"{path}.initContainers[{i}]", volumes, names, host_network, True))
    for i, c in enumerate(containers):
        errs.extend(_validate_container(c, f"{path}.containers[{i}]", volumes, names, host_network, False))
    errs.extend(_validate_nics(spec.get("nics"), f"{path}.nics"))

    restart = spec.get("restartPolicy")
    if not restart:
        errs.append(required(f"{path}.restartPolicy"))
    elif restart not in RESTART_POLICIES:
        errs.append(not_supported(f"{path}.restartPolicy", restart, RESTART_POLICIES))
    dns = spec.get("dnsPolicy")
    if not dns:
        errs.append(required(f"{path}.dnsPolicy"))
    elif dns not in DNS_POLICIES:
        errs.append(not_supported(f"{path}.dnsPolicy", dns, DNS_POLICIES))
    elif dns == "None" and not spec.get("dnsConfig"):
        errs.append(required(f"{path}.dnsConfig", "must provide `dnsConfig` when `dnsPolicy` is None"))

    grace = spec.get("terminationGracePeriodSeconds")
    if grace is not None and not is_int(grace):
        errs.append(type_error(f"{path}.terminationGracePeriodSeconds", grace, "an integer"))
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and (not is_int(deadline) or not 1 <= deadline <= MAX_INT32):
        errs.append(invalid(f"{path}.activeDeadlineSeconds", deadline, inclusive_range_error(1, MAX_INT32)))
    errs.extend(_check_name(spec.get("nodeName"), f"{path}.nodeName", is_dns1123_subdomain))
    errs.extend(_check_name(spec.get("serviceAccountName"), f"{path}.serviceAccountName", is_dns1123_subdomain))
    errs.extend(_check_name(spec.get("hostname"), f"{path}.hostname", is_dns1123_label))
    errs.extend(_check_name(spec.get("subdomain"), f"{path}.subdomain", is_dns1123_label))
    errs.extend(_check_name(spec.get("priorityClassName"), f"{path}.priorityClassName", is_dns1123_subdomain))
    errs.extend(validate_labels(spec.get("nodeSelector"), f"{path}.nodeSelector"))
    errs.extend(_validate_tolerations(spec.get("tolerations"), f"{path}.tolerations"))
    for i, s in enumerate(check_list(spec.get("imagePullSecrets"), f"{path}.imagePullSecrets", errs)):
        if not as_dict(s).get("name"):
            errs.append(required(f"{path}.imagePullSecrets[{i}].name"))
    check_dict(spec.get("securityContext"), f"{path}.securityContext", errs)
    priority = spec.get("priority")
    if priority is not None and not is_int(priority):
        errs.append(type_error(f"{path}.priority", priority, "an integer"))
    if spec.get("schedulerName") is not None and not spec.get("schedulerName"):
        errs.append(required(f"{path}.schedulerName"))
    return errs


def validate_pod_status(status: Any, path: str = "status") -> list[FieldError]:
    errs: list[FieldError] = []
    status = check_dict(status, path, errs)
    phase = status.get("phase")
    if phase not in (None, "") and phase not in POD_PHASES:
        errs.append(not_supported(f"{path}.phase", phase, POD_PHASES))
    errs.extend(_check_name(status.get("nominatedNodeName"), f"{path}.nominatedNodeName", is_dns1123_subdomain))
    for key in ("podIP", "hostIP"):
        if status.get(key):
            errs.extend(_check_name(status[key], f"{path}.{key}", is_valid_ip))
    for i, cond in enumerate(check_list(status.get("conditions"), f"{path}.conditions", errs)):
        cond = check_dict(cond, f"{path}.conditions[{i}]", errs)
        if not cond.get("type"):
            errs.append(required(f"{path}.conditions[{i}].type"))
        else:
            errs.extend(_check_name(cond["type"], f"{path}.conditions[{i}].type", is_qualified_name))
    return errs


def _only_added_tolerations(new: list[Any], old: list[Any], path: str) -> list[FieldError]:
    """Existing tolerations must stay (tolerationSeconds may change); new ones may be added."""
    errs = []

    def key(t: Any) -> Any:
        t = as_dict(t)
        return tuple((k, repr(t.get(k))) for k in ("key", "operator", "value", "effect"))

    new_keys = {key(t) for t in new}
    for i, t in enumerate(old):
        if key(t) not in new_keys:
            errs.append(
                forbidden(f"{path}[{i}]", "existing toleration can not be modified except its tolerationSeconds")
            )
    return errs


def validate_pod_spec_update(spec: Any, old: Any, path: str = "spec") -> list[FieldError]:
    """Which parts of a running pod's spec may change (Kubernetes' ValidatePodUpdate, plus VM power)."""
    spec, old = as_dict(spec), as_dict(old)
    errs: list[FieldError] = []
    # Binding (and only binding: see PodStrategy.prepare_for_update) sets an
    # empty nodeName; once set it never changes.
    if old.get("nodeName") and spec.get("nodeName") != old.get("nodeName"):
        errs.append(forbidden(f"{path}.nodeName", "may not be changed once the pod is assigned to a node"))
    munged = copy.deepcopy(spec)
    for key in ("containers", "initContainers"):
        new_list, old_list = as_list(spec.get(key)), as_list(old.get(key))
        if len(new_list) != len(old_list):
            errs.append(forbidden(f"{path}.{key}", "pod updates may not add or remove containers"))
            return errs
        for i, (c, oc) in enumerate(zip(new_list, old_list, strict=True)):
            if not as_dict(c).get("image"):
                errs.append(required(f"{path}.{key}[{i}].image"))
            if isinstance(munged[key][i], dict):
                munged[key][i]["image"] = as_dict(oc).get("image")
    deadline, old_deadline = spec.get("activeDeadlineSeconds"), old.get("activeDeadlineSeconds")
    if deadline is not None:
        if not is_int(deadline) or not 0 <= deadline <= MAX_INT32:
            errs.append(invalid(f"{path}.activeDeadlineSeconds", deadline, inclusive_range_error(0, MAX_INT32)))
        elif old_deadline is not None and is_int(old_deadline) and old_deadline < deadline:
            errs.append(
                invalid(f"{path}.activeDeadlineSeconds", deadline, "must be less than or equal to previous value")
            )
    elif old_deadline is not None:
        errs.append(
            invalid(f"{path}.activeDeadlineSeconds", None, "must not update from a positive integer to nil value")
        )
    _set_or_pop(munged, "activeDeadlineSeconds", old)
    errs.extend(
        _only_added_tolerations(
            as_list(spec.get("tolerations")), as_list(old.get("tolerations")), f"{path}.tolerations"
        )
    )
    _set_or_pop(munged, "tolerations", old)
    old_grace = old.get("terminationGracePeriodSeconds")
    if is_int(old_grace) and old_grace < 0 and spec.get("terminationGracePeriodSeconds") == 1:
        munged["terminationGracePeriodSeconds"] = old_grace
    vm, old_vm = munged.get("virtualMachine"), old.get("virtualMachine")
    if isinstance(vm, dict) and isinstance(old_vm, dict):
        _set_or_pop(vm, "powerSpec", old_vm)
    _set_or_pop(munged, "nodeName", old)
    if munged != old:
        changed = sorted(k for k in set(munged) | set(old) if munged.get(k) != old.get(k))
        detail = _POD_UPDATE_MESSAGE + "\n(changed: " + ", ".join(f"{path}.{k}" for k in changed) + ")"
        errs.append(forbidden(path, detail))
    return errs


def _set_or_pop(target: dict[str, Any], key: str, source: dict[str, Any]) -> None:
    if key in source:
        target[key] = copy.deepcopy(source[key])
    else:
        target.pop(key, None)


# --------------------------------------------------------------------------- binding


def validate_binding(binding: Any) -> list[FieldError]:
    """A Binding (POST pods/{name}/binding) must name a Node."""
    errs: list[FieldError] = []
    binding = check_dict(binding, "", errs)
    target = as_dict(binding.get("target"))
    kind = target.get("kind")
    if kind not in (None, "", "Node"):
        errs.append(not_supported("target.kind", kind, ["Node", "<empty>"]))
    if not target.get("name"):
        errs.append(required("target.name"))
    return errs


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def apply_binding(pod: Obj, binding: Obj, *, now: str | None = None) -> Obj:
    """The pod after a Binding: spec.nodeName set, PodScheduled=True, annotations merged.

    This is the only way a pod's nodeName is set after creation: a write of
    the result that skips `prepare_for_update` (as a subresource write does)
    passes `validate_update`, which lets an empty nodeName be set once, while
    a client's main-resource update that touches nodeName is refused by
    `PodStrategy.prepare_for_update`.  Raises 409 Conflict
    when the pod is already bound, is being deleted, or the binding's UID
    precondition names another pod, and 422 for a malformed binding.
    """
    meta = as_dict(pod.get("metadata"))
    name = meta.get("name", "")
    errs = validate_binding(binding)
    if errs:
        raise errors.invalid_object("Binding", dig(binding, "metadata", "name") or name, errs)
    bmeta = as_dict(binding.get("metadata"))
    if bmeta.get("uid") and bmeta["uid"] != meta.get("uid"):
        raise errors.conflict(
            "pods",
            name,
            why=f"Precondition failed: UID in precondition: {bmeta['uid']}, UID in object meta: {meta.get('uid')}",
        )
    if meta.get("deletionTimestamp"):
        raise errors.conflict("binding", name, why=f"pod {name} is being deleted, cannot be assigned to a host")
    node = binding["target"]["name"]
    current = dig(pod, "spec", "nodeName")
    if current:
        raise errors.conflict("binding", name, why=f'pod {name} is already assigned to node "{current}"')
    new = copy.deepcopy(pod)
    new.setdefault("spec", {})["nodeName"] = node
    annotations = as_dict(bmeta.get("annotations"))
    if annotations:
        new_meta = new.setdefault("metadata", {})
        merged = dict(as_dict(new_meta.get("annotations")))
        merged.update(annotations)
        new_meta["annotations"] = merged
    status = new.setdefault("status", {})
    conditions = [c for c in as_list(status.get("conditions")) if as_dict(c).get("type") != "PodScheduled"]
    conditions.append(
        {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now or _now()}
    )
    status["conditions"] = conditions
    return new


# --------------------------------------------------------------------------- strategy


class PodStrategy(KindStrategy):
    """Pods: status is the node agent's; the spec is nearly immutable once created."""

    status_subresource = True
    field_names = (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    )

    def prepare_for_create(self, obj: Obj) -> None:
        # Whatever status a client sent is dropped: a new pod is Pending.
        obj["status"] = {"phase": "Pending", "qosClass": compute_qos_class(obj)}

    def prepare_for_update(self, obj: Obj, old: Obj) -> None:
        """Keep the stored status; refuse a nodeName change (that is the binding's job)."""
        super().prepare_for_update(obj, old)
        node, old_node = dig(obj, "spec", "nodeName"), dig(old, "spec", "nodeName")
        if (node or None) != (old_node or None):
            detail = (
                "may not be changed once the pod is assigned to a node"
                if old_node
                else "may not be set by an update; a pod is assigned to a node through its binding subresource"
            )
            name = dig(old, "metadata", "name") or ""
            raise errors.invalid_object("Pod", name, [forbidden("spec.nodeName", detail)])

    def default(self, obj: Obj) -> None:
        default_pod_spec(obj.get("spec"))

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_pod_spec(obj.get("spec"), "spec")

    def validate_update(self, obj: Obj, old: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        # Status writes (the hot path: every pod, every state change) leave the
        # spec alone, so the spec is only re-checked when it actually changed.
        if obj.get("spec") != old.get("spec"):
            errs.extend(validate_pod_spec_update(obj.get("spec"), old.get("spec")))
            if not errs:
                errs.extend(validate_pod_spec(obj.get("spec"), "spec"))
        errs.extend(validate_pod_status(obj.get("status")))
        return errs


def validate_pod_template(template: Any, path: str) -> list[FieldError]:
    """The PodTemplateSpec of a ReplicaSet or Deployment.

    Labels and a full pod-spec check, plus what long-running replicas need:
    restartPolicy Always and no activeDeadlineSeconds.
    """
    errs: list[FieldError] = []
    template = check_dict(template, path, errs)
    if not template:
        return [*errs, required(path)]
    meta = check_dict(template.get("metadata"), f"{path}.metadata", errs)
    errs.extend(validate_labels(meta.get("labels"), f"{path}.metadata.labels"))
    spec = template.get("spec")
    errs.extend(validate_pod_spec(spec, f"{path}.spec"))
    restart = as_dict(spec).get("restartPolicy")
    if restart and restart != "Always" and restart in RESTART_POLICIES:
        errs.append(not_supported(f"{path}.spec.restartPolicy", restart, ["Always"]))
    deadline = as_dict(spec).get("activeDeadlineSeconds")
    if deadline is not None:
        errs.append(
            invalid(
                f"{path}.spec.activeDeadlineSeconds", deadline, "activeDeadlineSeconds in ReplicaSet is not Supported"
            )
        )
    return errs


def default_pod_template(template: Any) -> None:
    if isinstance(template, dict):
        default_pod_spec(template.get("spec"), template=True)


__all__ = [
    "PodStrategy",
    "apply_binding",
    "compute_qos_class",
    "default_pod_spec",
    "default_pod_template",
    "image_pull_policy_for",
    "pod_resource_requests",
    "validate_binding",
    "validate_pod_spec",
    "validate_pod_spec_update",
    "validate_pod_status",
    "validate_pod_template",
    "validate_resource_requirements",
]
