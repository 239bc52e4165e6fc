"""apps/v1 workloads: Deployment, ReplicaSet, DaemonSet, StatefulSet, and the scale subresource.

Both run long-lived replicas of a pod template, so the template is checked as
a pod would be (plus restartPolicy Always), the selector must pick the
template's own pods, and the selector is fixed once created (apps/v1): a
changed selector would orphan the running pods.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from arktos.api import errors
from arktos.api.errors import FieldError, forbidden, invalid, not_supported, required
from arktos.api.registry import ResourceInfo
from arktos.api.strategies._base import KindStrategy, as_dict, check_dict, dig, is_int, type_error
from arktos.api.strategies.pods import default_pod_template, validate_pod_template
from arktos.api.strategy import Obj
from arktos.api.validation import (
    label_selector_matches,
    label_selector_string,
    regex_error,
    validate_dns1123_label,
    validate_dns1123_subdomain,
    validate_immutable,
    validate_label_selector,
    validate_nonnegative,
)

DEPLOYMENT_STRATEGIES = ["Recreate", "RollingUpdate"]
DEFAULT_MAX_SURGE = "25%"
DEFAULT_MAX_UNAVAILABLE = "25%"
DEFAULT_REVISION_HISTORY_LIMIT = 10
DEFAULT_PROGRESS_DEADLINE = 600
_PERCENT_FMT = "[0-9]+%"
_PERCENT_RE = re.compile(_PERCENT_FMT)


# --------------------------------------------------------------------------- shared checks


def _validate_selector_and_template(spec: dict[str, Any], errs: list[FieldError]) -> None:
    selector = spec.get("selector")
    if selector is None:
        errs.append(required("spec.selector"))
    else:
        errs.extend(validate_label_selector(selector, "spec.selector"))
        if isinstance(selector, dict) and not selector.get("matchLabels") and not selector.get("matchExpressions"):
            errs.append(invalid("spec.selector", selector, "empty selector is invalid for deployment"))
    template = spec.get("template")
    if template is None:
        errs.append(required("spec.template"))
        return
    if isinstance(selector, dict) and (selector.get("matchLabels") or selector.get("matchExpressions")):
        labels = dig(template, "metadata", "labels")
        if not label_selector_matches(selector, labels if isinstance(labels, dict) else {}):
            errs.append(invalid("spec.template.metadata.labels", labels, "`selector` does not match template `labels`"))
    errs.extend(validate_pod_template(template, "spec.template"))


def _validate_status_counts(status: Any, keys: tuple[str, ...], errs: list[FieldError]) -> dict[str, Any]:
    status = check_dict(status, "status", errs)
    for key in (*keys, "observedGeneration"):
        errs.extend(validate_nonnegative(status.get(key), f"status.{key}"))
    return status


def _not_greater(status: dict[str, Any], key: str, than: str, errs: list[FieldError]) -> None:
    a, b = status.get(key), status.get(than)
    if is_int(a) and is_int(b) and a > b:
        errs.append(invalid(f"status.{key}", a, f"cannot be greater than status.{than}"))


# --------------------------------------------------------------------------- Deployment


def _int_or_percent_errors(value: Any, path: str) -> list[FieldError]:
    if isinstance(value, str):
        if not _PERCENT_RE.fullmatch(value):
            return [
                invalid(
                    path,
                    value,
                    regex_error(
                        "a valid percent string must be a numeric string followed by an ending '%'",
                        _PERCENT_FMT,
                        "1%",
                        "93%",
                    ),
                )
            ]
        return []
    if is_int(value):
        return validate_nonnegative(value, path)
    return [invalid(path, value, "must be an integer or percentage (e.g '5%')")]


def _int_or_percent_value(value: Any) -> int | None:
    if is_int(value):
        return value
    if isinstance(value, str) and _PERCENT_RE.fullmatch(value):
        return int(value[:-1])
    return None


def _validate_rolling_update(ru: Any, path: str, errs: list[FieldError]) -> None:
    ru = check_dict(ru, path, errs)
    max_unavailable, max_surge = ru.get("maxUnavailable"), ru.get("maxSurge")
    errs.extend(_int_or_percent_errors(max_unavailable, f"{path}.maxUnavailable"))
    errs.extend(_int_or_percent_errors(max_surge, f"{path}.maxSurge"))
    if _int_or_percent_value(max_unavailable) == 0 and _int_or_percent_value(max_surge) == 0:
        errs.append(invalid(f"{path}.maxUnavailable", max_unavailable, "may not be 0 when `maxSurge` is 0"))
    if isinstance(max_unavailable, str) and (_int_or_percent_value(max_unavailable) or 0) > 100:
        errs.append(invalid(f"{path}.maxUnavailable", max_unavailable, "must not be greater than 100%"))


class DeploymentStrategy(KindStrategy):
    status_subresource = True

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec.setdefault("replicas", 1)
        strategy = spec.get("strategy")
        if strategy is None:
            strategy = spec["strategy"] = {}
        if isinstance(strategy, dict):
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                ru = strategy.get("rollingUpdate")
                if ru is None:
                    ru = strategy["rollingUpdate"] = {}
                if isinstance(ru, dict):
                    ru.setdefault("maxUnavailable", DEFAULT_MAX_UNAVAILABLE)
                    ru.setdefault("maxSurge", DEFAULT_MAX_SURGE)
        spec.setdefault("revisionHistoryLimit", DEFAULT_REVISION_HISTORY_LIMIT)
        spec.setdefault("progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE)
        default_pod_template(spec.get("template"))

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        if obj.get("spec") is None:
            return [required("spec")]
        spec = check_dict(obj.get("spec"), "spec", errs)
        errs.extend(validate_nonnegative(spec.get("replicas"), "spec.replicas"))
        _validate_selector_and_template(spec, errs)
        strategy = check_dict(spec.get("strategy"), "spec.strategy", errs)
        stype = strategy.get("type")
        if stype == "Recreate":
            if strategy.get("rollingUpdate") is not None:
                errs.append(
                    forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'")
                )
        elif stype == "RollingUpdate":
            if strategy.get("rollingUpdate") is None:
                errs.append(required("spec.strategy.rollingUpdate", "this should be defaulted and never be nil"))
            else:
                _validate_rolling_update(strategy["rollingUpdate"], "spec.strategy.rollingUpdate", errs)
        else:
            errs.append(not_supported("spec.strategy.type", stype, DEPLOYMENT_STRATEGIES))
        min_ready = spec.get("minReadySeconds")
        errs.extend(validate_nonnegative(min_ready, "spec.minReadySeconds"))
        errs.extend(validate_nonnegative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit"))
        deadline = spec.get("progressDeadlineSeconds")
        deadline_errs = validate_nonnegative(deadline, "spec.progressDeadlineSeconds")
        errs.extend(deadline_errs)
        if deadline is not None and not deadline_errs and deadline <= (min_ready if is_int(min_ready) else 0):
            errs.append(invalid("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"))
        if spec.get("paused") is not None and not isinstance(spec["paused"], bool):
            errs.append(type_error("spec.paused", spec["paused"], "a boolean"))
        status = _validate_status_counts(
            obj.get("status"),
            ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas"),
            errs,
        )
        _not_greater(status, "readyReplicas", "replicas", errs)
        _not_greater(status, "availableReplicas", "replicas", errs)
        _not_greater(status, "availableReplicas", "readyReplicas", errs)
        return errs

    def validate_update(self, obj: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(obj)
        errs.extend(validate_immutable(dig(obj, "spec", "selector"), dig(old, "spec", "selector"), "spec.selector"))
        return errs


# --------------------------------------------------------------------------- ReplicaSet


class ReplicaSetStrategy(KindStrategy):
    status_subresource = True

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec.setdefault("replicas", 1)
        default_pod_template(spec.get("template"))

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        if obj.get("spec") is None:
            return [required("spec")]
        spec = check_dict(obj.get("spec"), "spec", errs)
        errs.extend(validate_nonnegative(spec.get("replicas"), "spec.replicas"))
        errs.extend(validate_nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds"))
        _validate_selector_and_template(spec, errs)
        status = _validate_status_counts(
            obj.get("status"), ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas"), errs
        )
        _not_greater(status, "fullyLabeledReplicas", "replicas", errs)
        _not_greater(status, "readyReplicas", "replicas", errs)
        _not_greater(status, "availableReplicas", "replicas", errs)
        _not_greater(status, "availableReplicas", "readyReplicas", errs)
        return errs

    def validate_update(self, obj: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(obj)
        errs.extend(validate_immutable(dig(obj, "spec", "selector"), dig(old, "spec", "selector"), "spec.selector"))
        return errs


# --------------------------------------------------------------------------- DaemonSet

DAEMONSET_UPDATE_STRATEGIES = ["OnDelete", "RollingUpdate"]
STATEFULSET_UPDATE_STRATEGIES = ["OnDelete", "RollingUpdate"]
POD_MANAGEMENT_POLICIES = ["OrderedReady", "Parallel"]


class DaemonSetStrategy(KindStrategy):
    """Kubernetes' defaults: RollingUpdate, maxUnavailable 1, maxSurge 0, revisionHistoryLimit 10."""

    status_subresource = True

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        strategy = spec.get("updateStrategy")
        if strategy is None:
            strategy = spec["updateStrategy"] = {}
        if isinstance(strategy, dict):
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                ru = strategy.get("rollingUpdate")
                if ru is None:
                    ru = strategy["rollingUpdate"] = {}
                if isinstance(ru, dict):
                    ru.setdefault("maxUnavailable", 1)
                    ru.setdefault("maxSurge", 0)
        spec.setdefault("revisionHistoryLimit", DEFAULT_REVISION_HISTORY_LIMIT)
        default_pod_template(spec.get("template"))

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        if obj.get("spec") is None:
            return [required("spec")]
        spec = check_dict(obj.get("spec"), "spec", errs)
        _validate_selector_and_template(spec, errs)
        errs.extend(validate_nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds"))
        errs.extend(validate_nonnegative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit"))
        strategy = check_dict(spec.get("updateStrategy"), "spec.updateStrategy", errs)
        stype = strategy.get("type")
        if stype == "RollingUpdate":
            ru = strategy.get("rollingUpdate")
            if ru is None:
                errs.append(required("spec.updateStrategy.rollingUpdate"))
            else:
                ru = check_dict(ru, "spec.updateStrategy.rollingUpdate", errs)
                path = "spec.updateStrategy.rollingUpdate"
                mu, ms = ru.get("maxUnavailable"), ru.get("maxSurge", 0)
                errs.extend(_int_or_percent_errors(mu, f"{path}.maxUnavailable"))
                errs.extend(_int_or_percent_errors(ms, f"{path}.maxSurge"))
                if _int_or_percent_value(mu) == 0 and _int_or_percent_value(ms) == 0:
                    errs.append(invalid(f"{path}.maxUnavailable", mu, "may not be 0 when `maxSurge` is 0"))
                if isinstance(mu, str) and (_int_or_percent_value(mu) or 0) > 100:
                    errs.append(invalid(f"{path}.maxUnavailable", mu, "must not be greater than 100%"))
        elif stype != "OnDelete":
            errs.append(not_supported("spec.updateStrategy.type", stype, DAEMONSET_UPDATE_STRATEGIES))
        _validate_status_counts(
            obj.get("status"),
            ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady",
             "updatedNumberScheduled", "numberAvailable", "numberUnavailable"),
            errs,
        )
        return errs

    def validate_update(self, obj: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(obj)
        errs.extend(validate_immutable(dig(obj, "spec", "selector"), dig(old, "spec", "selector"), "spec.selector"))
        return errs


# --------------------------------------------------------------------------- StatefulSet

# What an update may change in a StatefulSet's spec (everything else is fixed at creation).
_STS_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds")


def _with_claim_volumes(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with each volumeClaimTemplate as a volume of the template, as the pods will have it.

    Kubernetes skips the pod spec checks of a StatefulSet's template because
    mounts of claim volumes would fail them (a TODO there); checking the pod
    the controller will create keeps every other check.
    """
    claims = spec.get("volumeClaimTemplates")
    template = spec.get("template")
    if not isinstance(claims, list) or not claims or not isinstance(template, dict):
        return spec
    pod_spec = template.get("spec")
    if not isinstance(pod_spec, dict):
        return spec
    names = [dig(c, "metadata", "name") for c in claims if isinstance(c, dict)]
    names = [n for n in names if isinstance(n, str) and n]
    volumes = pod_spec.get("volumes") if isinstance(pod_spec.get("volumes"), list) else []
    volumes = [v for v in volumes if not (isinstance(v, dict) and v.get("name") in names)]
    volumes += [{"name": n, "persistentVolumeClaim": {"claimName": n}} for n in names]
    return {**spec, "template": {**template, "spec": {**pod_spec, "volumes": volumes}}}


class StatefulSetStrategy(KindStrategy):
    """Kubernetes' defaults: OrderedReady, RollingUpdate with partition 0, revisionHistoryLimit 10."""

    status_subresource = True

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec.setdefault("replicas", 1)
        spec.setdefault("podManagementPolicy", "OrderedReady")
        strategy = spec.get("updateStrategy")
        if strategy is None:
            strategy = spec["updateStrategy"] = {}
        if isinstance(strategy, dict):
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                ru = strategy.get("rollingUpdate")
                if ru is None:
                    ru = strategy["rollingUpdate"] = {}
                if isinstance(ru, dict):
                    ru.setdefault("partition", 0)
        spec.setdefault("revisionHistoryLimit", DEFAULT_REVISION_HISTORY_LIMIT)
        policy = spec.get("persistentVolumeClaimRetentionPolicy")
        if policy is None:
            policy = spec["persistentVolumeClaimRetentionPolicy"] = {}
        if isinstance(policy, dict):
            policy.setdefault("whenDeleted", "Retain")
            policy.setdefault("whenScaled", "Retain")
        for claim in spec.get("volumeClaimTemplates") or ():
            if isinstance(claim, dict):
                claim.setdefault("apiVersion", "v1")
                claim.setdefault("kind", "PersistentVolumeClaim")
                cspec = claim.get("spec")
                if isinstance(cspec, dict):
                    cspec.setdefault("volumeMode", "Filesystem")
        default_pod_template(spec.get("template"))

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        if obj.get("spec") is None:
            return [required("spec")]
        spec = check_dict(obj.get("spec"), "spec", errs)
        errs.extend(validate_nonnegative(spec.get("replicas"), "spec.replicas"))
        errs.extend(validate_nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds"))
        errs.extend(validate_nonnegative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit"))
        _validate_selector_and_template(_with_claim_volumes(spec), errs)
        service = spec.get("serviceName")
        if service is not None:
            if not isinstance(service, str):
                errs.append(type_error("spec.serviceName", service, "a string"))
            elif service:
                errs.extend(validate_dns1123_label(service, "spec.serviceName"))
        policy = spec.get("podManagementPolicy")
        if policy not in POD_MANAGEMENT_POLICIES:
            errs.append(not_supported("spec.podManagementPolicy", policy, POD_MANAGEMENT_POLICIES))
        strategy = check_dict(spec.get("updateStrategy"), "spec.updateStrategy", errs)
        stype = strategy.get("type")
        if stype == "RollingUpdate":
            ru = check_dict(strategy.get("rollingUpdate"), "spec.updateStrategy.rollingUpdate", errs)
            errs.extend(validate_nonnegative(ru.get("partition"), "spec.updateStrategy.rollingUpdate.partition"))
        elif stype == "OnDelete":
            if strategy.get("rollingUpdate") is not None:
                errs.append(forbidden("spec.updateStrategy.rollingUpdate",
                                      "only allowed for updateStrategy 'RollingUpdate'"))
        else:
            errs.append(not_supported("spec.updateStrategy.type", stype, STATEFULSET_UPDATE_STRATEGIES))
        claims = spec.get("volumeClaimTemplates")
        if claims is not None and not isinstance(claims, list):
            errs.append(type_error("spec.volumeClaimTemplates", claims, "a list"))
        else:
            seen: set[str] = set()
            for i, claim in enumerate(claims or ()):
                path = f"spec.volumeClaimTemplates[{i}]"
                claim = check_dict(claim, path, errs)
                name = dig(claim, "metadata", "name")
                if not name or not isinstance(name, str):
                    errs.append(required(f"{path}.metadata.name"))
                    continue
                errs.extend(validate_dns1123_subdomain(name, f"{path}.metadata.name"))
                if name in seen:
                    errs.append(invalid(f"{path}.metadata.name", name, "duplicate claim template name"))
                seen.add(name)
        status = _validate_status_counts(
            obj.get("status"),
            ("replicas", "readyReplicas", "currentReplicas", "updatedReplicas", "availableReplicas"),
            errs,
        )
        _not_greater(status, "readyReplicas", "replicas", errs)
        _not_greater(status, "currentReplicas", "replicas", errs)
        _not_greater(status, "updatedReplicas", "replicas", errs)
        return errs

    def validate_update(self, obj: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(obj)
        new_spec, old_spec = as_dict(obj.get("spec")), as_dict(old.get("spec"))
        rest_new = {k: v for k, v in new_spec.items() if k not in _STS_MUTABLE}
        rest_old = {k: v for k, v in old_spec.items() if k not in _STS_MUTABLE}
        if rest_new != rest_old:
            errs.append(forbidden("spec", "updates to statefulset spec for fields other than 'replicas', "
                                  "'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' "
                                  "and 'minReadySeconds' are forbidden"))
        return errs


# --------------------------------------------------------------------------- ControllerRevision


class ControllerRevisionStrategy(KindStrategy):
    """A revision's data never changes; its number may (a rollback re-numbers an old revision)."""

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        revision = obj.get("revision")
        if revision is None:
            errs.append(required("revision"))
        else:
            errs.extend(validate_nonnegative(revision, "revision"))
        return errs

    def validate_update(self, obj: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(obj)
        errs.extend(validate_immutable(obj.get("data"), old.get("data"), "data"))
        return errs


# --------------------------------------------------------------------------- scale subresource


def to_scale(obj: Obj, info: ResourceInfo | None = None) -> Obj:
    """The autoscaling/v1 Scale view of a workload (GET .../scale).

    status.selector is the label-selector string a horizontal autoscaler
    lists pods with.  `info` names the kind; it is accepted so custom
    resources with a scale subresource can be served the same way.
    """
    meta = as_dict(obj.get("metadata"))
    scale_meta = {k: meta[k] for k in ("name", "namespace", "tenant", "uid", "resourceVersion",
                                       "creationTimestamp") if k in meta}  # fmt: skip
    replicas = dig(obj, "spec", "replicas")
    selector = dig(obj, "spec", "selector")
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": scale_meta,
        "spec": {"replicas": replicas if is_int(replicas) else 0},
        "status": {
            "replicas": dig(obj, "status", "replicas") or 0,
            "selector": label_selector_string(selector if isinstance(selector, dict) else None),
        },
    }


def validate_scale(scale: Any) -> list[FieldError]:
    errs: list[FieldError] = []
    scale = check_dict(scale, "", errs)
    spec = check_dict(scale.get("spec"), "spec", errs)
    errs.extend(validate_nonnegative(spec.get("replicas", 0), "spec.replicas"))
    return errs


def apply_scale(obj: Obj, scale: Obj) -> Obj:
    """The workload with the Scale's spec.replicas applied (PUT/PATCH .../scale).

    Only spec.replicas moves; an omitted value means 0, as in Kubernetes
    (the field is a plain int32 there).  Raises 422 for a negative or
    non-integer count.  The caller handles the resourceVersion precondition.
    """
    errs = validate_scale(scale)
    if errs:
        raise errors.invalid_object("Scale", dig(obj, "metadata", "name") or "", errs, "autoscaling")
    new = copy.deepcopy(obj)
    spec = new.get("spec")
    if not isinstance(spec, dict):
        spec = new["spec"] = {}
    spec["replicas"] = dig(scale, "spec", "replicas") or 0
    return new


__all__ = ["ControllerRevisionStrategy", "DaemonSetStrategy", "DeploymentStrategy", "ReplicaSetStrategy",
           "StatefulSetStrategy", "apply_scale", "to_scale", "validate_scale"]
