"""ResourceQuota and LimitRange arithmetic, shared by the API server's admission and the quota controller.

Pure: objects in, numbers and messages out.  Amounts are exact `Decimal`s (arktos.api.quantity);
text is formatted the way Kubernetes' `Quantity.String()` prints them in quota statuses and
admission messages ("500m", "1Gi", "3").

- `object_usage(plural, group, obj)`: what one object charges against a quota
  (`pods`, `count/pods`, `requests.cpu`, `services.nodeports`, `requests.storage`, ...).
- `quota_matches(quota, plural, group, obj)`: whether a quota's scopes select the object.
- `pod_constraints(names, pod)`: Kubernetes' "must specify requests.cpu for: c" check.
- `exceeded(hard, used, requested)`: the names over their limit after adding `requested`.
- `limit_range_defaults` / `apply_container_defaults` / `validate_pod_limits` /
  `validate_pvc_limits`: LimitRanger's mutating and validating halves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from arktos.api.quantity import QuantityError, parse_quantity

Obj = dict[str, Any]
Usage = dict[str, Decimal]

# Kubernetes' standardQuotaResources (IsStandardQuotaResourceName also takes hugepages).
STANDARD_QUOTA_RESOURCES = frozenset({
    "cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory", "requests.storage",
    "requests.ephemeral-storage", "limits.cpu", "limits.memory", "limits.ephemeral-storage", "pods",
    "resourcequotas", "services", "replicationcontrollers", "secrets", "persistentvolumeclaims", "configmaps",
    "services.nodeports", "services.loadbalancers",
})
INTEGER_QUOTA_RESOURCES = frozenset({
    "pods", "resourcequotas", "services", "replicationcontrollers", "secrets", "persistentvolumeclaims",
    "configmaps", "services.nodeports", "services.loadbalancers",
})
SCOPES = ("Terminating", "NotTerminating", "BestEffort", "NotBestEffort", "PriorityClass",
          "CrossNamespacePodAffinity")
POD_COMPUTE = frozenset({"cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"})
# The resources a scope may constrain (IsResourceQuotaScopeValidForResource).
SCOPE_RESOURCES = {
    "BestEffort": frozenset({"pods"}),
    **{s: POD_COMPUTE | {"pods"} for s in ("Terminating", "NotTerminating", "NotBestEffort", "PriorityClass",
                                           "CrossNamespacePodAffinity")},
}
# Resources whose use each container must declare when a quota limits them.
POD_VALIDATION = frozenset({"cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"})
# Names counted by the legacy object-count resources.
LEGACY_COUNTS = {"pods": "pods", "services": "services", "configmaps": "configmaps", "secrets": "secrets",
                 "persistentvolumeclaims": "persistentvolumeclaims", "resourcequotas": "resourcequotas",
                 "replicationcontrollers": "replicationcontrollers"}
LIMIT_TYPES = ("Container", "Pod", "PersistentVolumeClaim")
_BINARY = ((2**60, "Ei"), (2**50, "Pi"), (2**40, "Ti"), (2**30, "Gi"), (2**20, "Mi"), (2**10, "Ki"))
_BYTES = ("memory", "storage", "ephemeral-storage")


def q(value: Any) -> Decimal:
    """A quantity's exact value; unparseable amounts count as 0 (validation refused them already)."""
    try:
        return parse_quantity(value)
    except QuantityError:
        return Decimal(0)


def format_amount(name: str, amount: Decimal) -> str:
    """Quantity text as Kubernetes prints it: cpu in cores or millicores, bytes with a binary suffix
    when one divides them exactly, other counts as integers."""
    if amount == amount.to_integral_value():
        n = int(amount)
        if n and name.rsplit(".", 1)[-1].split("/")[-1] in _BYTES:
            for unit, suffix in _BINARY:
                if n % unit == 0:
                    return f"{n // unit}{suffix}"
        return str(n)
    milli = amount * 1000
    if milli == milli.to_integral_value():
        return f"{int(milli)}m"
    return format(amount.normalize(), "f")


def format_list(values: Mapping[str, Decimal]) -> dict[str, str]:
    return {k: format_amount(k, v) for k, v in sorted(values.items())}


def pretty(values: Mapping[str, Decimal]) -> str:
    """prettyPrint of a ResourceList: `a=1,b=2` in name order."""
    return ",".join(f"{k}={format_amount(k, v)}" for k, v in sorted(values.items()))


def parse_list(values: Any) -> Usage:
    return {k: q(v) for k, v in values.items()} if isinstance(values, Mapping) else {}


def count_name(plural: str, group: str) -> str:
    return f"count/{plural}.{group}" if group else f"count/{plural}"


def is_integer_resource(name: str) -> bool:
    return name in INTEGER_QUOTA_RESOURCES or ("/" in name and "kubernetes.io/" not in name)


# --------------------------------------------------------------------------- usage


def _dict(v: Any) -> Obj:
    return v if isinstance(v, dict) else {}


def _list(v: Any) -> list:
    return v if isinstance(v, list) else []


def pod_is_terminal(pod: Obj) -> bool:
    return _dict(pod.get("status")).get("phase") in ("Succeeded", "Failed")


def _add(total: Usage, values: Any, *, maximum: bool = False) -> None:
    for name, value in _dict(values).items():
        amount = q(value)
        total[name] = max(total.get(name, Decimal(0)), amount) if maximum else total.get(name, Decimal(0)) + amount


def pod_requests_limits(pod: Obj) -> tuple[Usage, Usage]:
    """Pod-wide requests and limits: containers add up, each init container is a floor, overhead on top;
    a VM pod's are its VM's.  A request missing next to a limit counts as that limit."""
    spec = _dict(pod.get("spec"))
    requests: Usage = {}
    limits: Usage = {}
    vm = spec.get("virtualMachine")
    workloads = [vm] if isinstance(vm, dict) else _list(spec.get("containers"))
    for c in workloads:
        res = _dict(_dict(c).get("resources"))
        _add(requests, {**_dict(res.get("limits")), **_dict(res.get("requests"))})
        _add(limits, res.get("limits"))
    if not isinstance(vm, dict):
        for c in _list(spec.get("initContainers")):
            res = _dict(_dict(c).get("resources"))
            _add(requests, {**_dict(res.get("limits")), **_dict(res.get("requests"))}, maximum=True)
            _add(limits, res.get("limits"), maximum=True)
    overhead = _dict(spec.get("overhead"))
    _add(requests, overhead)
    if limits:
        _add(limits, {k: v for k, v in overhead.items() if k in limits})
    return requests, limits


def object_usage(plural: str, group: str, obj: Obj) -> Usage:
    """What one object charges against a quota in its namespace."""
    usage: Usage = {count_name(plural, group): Decimal(1)}
    if group:
        return usage
    if plural in LEGACY_COUNTS and plural not in ("pods", "persistentvolumeclaims"):
        usage[LEGACY_COUNTS[plural]] = Decimal(1)
    if plural == "pods":
        if pod_is_terminal(obj):
            return usage
        usage["pods"] = Decimal(1)
        requests, limits = pod_requests_limits(obj)
        for name, amount in requests.items():
            if name in ("cpu", "memory", "ephemeral-storage"):
                usage[name] = amount
            usage[f"requests.{name}"] = amount
        for name, amount in limits.items():
            usage[f"limits.{name}"] = amount
    elif plural == "services":
        spec = _dict(obj.get("spec"))
        stype = spec.get("type") or "ClusterIP"
        if stype in ("NodePort", "LoadBalancer"):
            usage["services.nodeports"] = Decimal(len(_list(spec.get("ports"))))
        if stype == "LoadBalancer":
            usage["services.loadbalancers"] = Decimal(1)
    elif plural == "persistentvolumeclaims":
        usage["persistentvolumeclaims"] = Decimal(1)
        spec = _dict(obj.get("spec"))
        storage = q(_dict(_dict(spec.get("resources")).get("requests")).get("storage", 0))
        usage["requests.storage"] = storage
        cls = spec.get("storageClassName") or _dict(_dict(obj.get("metadata")).get("annotations")).get(
            "volume.beta.kubernetes.io/storage-class")
        if isinstance(cls, str) and cls:
            usage[f"{cls}.storageclass.storage.k8s.io/requests.storage"] = storage
            usage[f"{cls}.storageclass.storage.k8s.io/persistentvolumeclaims"] = Decimal(1)
    return usage


def add(a: Mapping[str, Decimal], b: Mapping[str, Decimal]) -> Usage:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, Decimal(0)) + v
    return out


def exceeded(hard: Mapping[str, Decimal], used: Mapping[str, Decimal], requested: Mapping[str, Decimal]) -> list[str]:
    """Names of `requested` (limited by `hard`) whose used + requested goes over hard."""
    return sorted(k for k, v in requested.items() if k in hard and used.get(k, Decimal(0)) + v > hard[k])


# --------------------------------------------------------------------------- scopes


def _qos_best_effort(pod: Obj) -> bool:
    requests, limits = pod_requests_limits(pod)
    return not any(k in ("cpu", "memory") for k in (*requests, *limits))


def _scope_matches(scope: str, operator: str, values: list, pod: Obj) -> bool:
    spec = _dict(pod.get("spec"))
    if scope == "Terminating":
        return spec.get("activeDeadlineSeconds") is not None
    if scope == "NotTerminating":
        return spec.get("activeDeadlineSeconds") is None
    if scope == "BestEffort":
        return _qos_best_effort(pod)
    if scope == "NotBestEffort":
        return not _qos_best_effort(pod)
    if scope == "PriorityClass":
        pc = spec.get("priorityClassName")
        if operator == "Exists":
            return bool(pc)
        if operator == "DoesNotExist":
            return not pc
        if operator == "In":
            return bool(pc) and pc in values
        if operator == "NotIn":
            return not pc or pc not in values
        return False
    if scope == "CrossNamespacePodAffinity":
        aff = _dict(spec.get("affinity"))
        for kind in ("podAffinity", "podAntiAffinity"):
            terms = _dict(aff.get(kind))
            for t in [*_list(terms.get("requiredDuringSchedulingIgnoredDuringExecution")),
                      *[_dict(w).get("podAffinityTerm") for w in
                        _list(terms.get("preferredDuringSchedulingIgnoredDuringExecution"))]]:
                t = _dict(t)
                if t.get("namespaces") or t.get("namespaceSelector") is not None:
                    return True
        return False
    return False


def quota_scopes(quota: Obj) -> list[tuple[str, str, list]]:
    """(scope, operator, values) for spec.scopes and spec.scopeSelector.matchExpressions."""
    spec = _dict(quota.get("spec"))
    out = [(s, "Exists", []) for s in _list(spec.get("scopes")) if isinstance(s, str)]
    for e in _list(_dict(spec.get("scopeSelector")).get("matchExpressions")):
        e = _dict(e)
        out.append((e.get("scopeName", ""), e.get("operator", ""), _list(e.get("values"))))
    return out


def quota_matches(quota: Obj, plural: str, group: str, obj: Obj) -> bool:
    """A quota with scopes tracks only the pods they select (scopes concern pods alone)."""
    scopes = quota_scopes(quota)
    if not scopes:
        return True
    if plural != "pods" or group:
        return False
    return all(_scope_matches(s, op, vals, obj) for s, op, vals in scopes)


def quota_limits_resource(quota: Obj, name: str) -> bool:
    """A scoped quota only constrains the resources its scopes apply to."""
    scopes = quota_scopes(quota)
    return all(name in SCOPE_RESOURCES.get(s, frozenset()) for s, _, _ in scopes)


def pod_constraints(required: Iterable[str], pod: Obj) -> str | None:
    """Kubernetes' podEvaluator.Constraints: when a quota limits cpu or memory, every container
    must declare it; the message, or None."""
    needed = set(required) & POD_VALIDATION
    if not needed:
        return None
    spec = _dict(pod.get("spec"))
    missing: dict[str, set[str]] = {}
    for c in [*_list(spec.get("containers")), *_list(spec.get("initContainers"))]:
        c = _dict(c)
        res = _dict(c.get("resources"))
        have: set[str] = set()
        for name in _dict(res.get("requests")):
            have |= {name, f"requests.{name}"}
        for name in _dict(res.get("limits")):
            have |= {f"limits.{name}", name, f"requests.{name}"}  # a limit defaults the request
        for name in needed - have:
            missing.setdefault(name, set()).add(str(c.get("name", "")))
    if not missing:
        return None
    return "must specify " + "; ".join(f"{r} for: {','.join(sorted(names))}" for r, names in sorted(missing.items()))


# --------------------------------------------------------------------------- limit ranges


def default_limit_range_item(item: Obj) -> None:
    """SetDefaults_LimitRangeItem: for containers, default limit <- max, default request <- default, min."""
    if item.get("type") != "Container":
        return
    default = item.setdefault("default", {}) if isinstance(item.get("default", {}), dict) else None
    request = item.setdefault("defaultRequest", {}) if isinstance(item.get("defaultRequest", {}), dict) else None
    if default is None or request is None:
        return
    for k, v in _dict(item.get("max")).items():
        default.setdefault(k, v)
    for k, v in default.items():
        request.setdefault(k, v)
    for k, v in _dict(item.get("min")).items():
        request.setdefault(k, v)
    if not default:
        del item["default"]
    if not request:
        del item["defaultRequest"]


def items_of(limit_ranges: Iterable[Obj], kind: str) -> list[Obj]:
    return [_dict(i) for lr in limit_ranges for i in _list(_dict(lr.get("spec")).get("limits"))
            if _dict(i).get("type") == kind]


def apply_container_defaults(limit_ranges: Iterable[Obj], pod: Obj) -> list[str]:
    """LimitRanger's mutation: containers without a request or limit get the Container default.
    Returns the annotation parts ("cpu request for container c")."""
    items = items_of(limit_ranges, "Container")
    default: dict[str, Any] = {}
    request: dict[str, Any] = {}
    for item in items:
        for k, v in _dict(item.get("default")).items():
            default.setdefault(k, v)
        for k, v in _dict(item.get("defaultRequest")).items():
            request.setdefault(k, v)
    if not default and not request:
        return []
    spec = _dict(pod.get("spec"))
    notes: list[str] = []
    for group in ("containers", "initContainers"):
        for c in _list(spec.get(group)):
            if not isinstance(c, dict):
                continue
            res = c.setdefault("resources", {})
            if not isinstance(res, dict):
                continue
            set_req: list[str] = []
            set_lim: list[str] = []
            limits = res.get("limits") if isinstance(res.get("limits"), dict) else {}
            requests = res.get("requests") if isinstance(res.get("requests"), dict) else {}
            for k, v in default.items():
                if k not in limits:
                    limits[k] = v
                    set_lim.append(k)
            for k, v in request.items():
                if k not in requests:
                    # A request of a resource with an explicit limit only: the limit (defaulting's rule).
                    requests[k] = res["limits"][k] if k in _dict(res.get("limits")) else v
                    set_req.append(k)
            if limits:
                res["limits"] = limits
            if requests:
                res["requests"] = requests
            if set_req:
                notes.append(f"{', '.join(set_req)} request for {'init ' if group != 'containers' else ''}"
                             f"container {c.get('name', '')}")
            if set_lim:
                notes.append(f"{', '.join(set_lim)} limit for {'init ' if group != 'containers' else ''}"
                             f"container {c.get('name', '')}")
    return notes


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _check(kind: str, item: Obj, requests: Mapping[str, Any], limits: Mapping[str, Any]) -> list[str]:
    errs: list[str] = []
    for name, enforced in _dict(item.get("min")).items():
        e = q(enforced)
        if name not in requests:
            errs.append(f"minimum {name} usage per {kind} is {_text(enforced)}.  No request is specified")
        elif q(requests[name]) < e:
            errs.append(f"minimum {name} usage per {kind} is {_text(enforced)}, but request is "
                        f"{_text(requests[name])}")
        elif name in limits and q(limits[name]) < e:
            errs.append(f"minimum {name} usage per {kind} is {_text(enforced)}, but limit is {_text(limits[name])}")
    for name, enforced in _dict(item.get("max")).items():
        e = q(enforced)
        if name not in limits:
            errs.append(f"maximum {name} usage per {kind} is {_text(enforced)}.  No limit is specified")
        elif q(limits[name]) > e:
            errs.append(f"maximum {name} usage per {kind} is {_text(enforced)}, but limit is {_text(limits[name])}")
        elif name in requests and q(requests[name]) > e:
            errs.append(f"maximum {name} usage per {kind} is {_text(enforced)}, but request is "
                        f"{_text(requests[name])}")
    for name, enforced in _dict(item.get("maxLimitRequestRatio")).items():
        req, lim = q(requests.get(name, 0)), q(limits.get(name, 0))
        if req == 0:
            errs.append(f"{name} max limit to request ratio per {kind} is {_text(enforced)}, but no request is "
                        "specified or request is 0")
        elif lim == 0:
            errs.append(f"{name} max limit to request ratio per {kind} is {_text(enforced)}, but no limit is "
                        "specified or limit is 0")
        elif lim / req > q(enforced):
            errs.append(f"{name} max limit to request ratio per {kind} is {_text(enforced)}, but provided ratio "
                        f"is {float(lim / req):f}")
    return errs


def validate_pod_limits(limit_ranges: Iterable[Obj], pod: Obj) -> list[str]:
    """LimitRanger's validation of a pod: Container items per container, Pod items on the pod's sums."""
    limit_ranges = list(limit_ranges)
    errs: list[str] = []
    spec = _dict(pod.get("spec"))
    for item in items_of(limit_ranges, "Container"):
        for c in [*_list(spec.get("containers")), *_list(spec.get("initContainers"))]:
            res = _dict(_dict(c).get("resources"))
            errs += _check("Container", item, _dict(res.get("requests")), _dict(res.get("limits")))
    pod_items = items_of(limit_ranges, "Pod")
    if pod_items:
        requests, limits = _pod_totals(spec)
        for item in pod_items:
            errs += _check("Pod", item, requests, limits)
    return errs


def _pod_totals(spec: Obj) -> tuple[dict[str, str], dict[str, str]]:
    """Pod-level sums, as text, of what containers declare (no defaulting of absent values:
    a container without a limit leaves the pod without one)."""
    containers = [_dict(_dict(c).get("resources")) for c in _list(spec.get("containers"))]
    out = []
    for part in ("requests", "limits"):
        names = {k for r in containers for k in _dict(r.get(part))}
        total: dict[str, str] = {}
        for name in names:
            if part == "limits" and not all(name in _dict(r.get(part)) for r in containers):
                continue
            amount = sum((q(_dict(r.get(part)).get(name, 0)) for r in containers), Decimal(0))
            for ic in _list(spec.get("initContainers")):
                amount = max(amount, q(_dict(_dict(_dict(ic).get("resources")).get(part)).get(name, 0)))
            total[name] = format_amount(name, amount)
        out.append(total)
    return out[0], out[1]


def validate_pvc_limits(limit_ranges: Iterable[Obj], pvc: Obj) -> list[str]:
    res = _dict(_dict(pvc.get("spec")).get("resources"))
    errs: list[str] = []
    requests = _dict(res.get("requests"))
    kind = "PersistentVolumeClaim"
    for item in items_of(limit_ranges, kind):
        # As Kubernetes: the claim's limits are not user input here; min and max apply to the request.
        errs += _check(kind, {"min": item.get("min")}, requests, {})
        for name, enforced in _dict(item.get("max")).items():
            if name not in requests:
                errs.append(f"maximum {name} usage per {kind} is {_text(enforced)}.  No request is specified")
            elif q(requests[name]) > q(enforced):
                errs.append(f"maximum {name} usage per {kind} is {_text(enforced)}, but request is "
                            f"{_text(requests[name])}")
    return errs
