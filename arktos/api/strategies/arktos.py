"""Arktos's own kinds: Tenant, Action, ControllerInstance (ARKTOS.md sections 1, 3, 5).

ControllerInstance field layout: Arktos declares `controllerType`,
`controllerKey`, `workloadNum` and `isLocked` directly on the object (Go
fields of `v1.ControllerInstance` next to ObjectMeta, no spec/status), and we
keep that wire form so the partitioned-controller framework, existing
manifests and Arktos clients read the same JSON.  With no spec, instances do
not track a generation: their fields are runtime state rewritten constantly
(workloadNum, isLocked), not desired state.
"""

from __future__ import annotations

from typing import Any

from arktos.api.errors import FieldError, forbidden, invalid, required
from arktos.api.strategies._base import KindStrategy, check_dict, dig, is_int, type_error
from arktos.api.strategies.core import NamespaceStrategy, validate_phase, validate_spec_finalizers
from arktos.api.strategy import Obj
from arktos.api.validation import is_dns1123_subdomain, name_is_tenant, validate_immutable, validate_nonnegative

TENANT_PHASES = ["Active", "Terminating"]
ACTION_KINDS = ("rebootAction", "snapshotAction", "restoreAction")
MAX_INT64 = 2**63 - 1
MAX_INT32 = 2**31 - 1


class TenantStrategy(NamespaceStrategy):
    """Tenants behave like namespaces one level up: Active on create, a
    "kubernetes" finalizer that the tenant controller removes after deleting
    everything in the tenant, finalizers changed only through `finalize`."""

    name_validator = staticmethod(name_is_tenant)

    def validate(self, obj: Obj) -> list[FieldError]:
        errs = validate_spec_finalizers(obj) + validate_phase(obj, TENANT_PHASES)
        storage = dig(obj, "spec", "storageClusterId")
        if storage is not None and not isinstance(storage, str):
            errs.append(type_error("spec.storageClusterId", storage, "a string"))
        return errs


def _check_name(value: Any, path: str) -> list[FieldError]:
    if not value:
        return [required(path)]
    if not isinstance(value, str):
        return [type_error(path, value, "a string")]
    return [invalid(path, value, m) for m in is_dns1123_subdomain(value)]


class ActionStrategy(KindStrategy):
    """A VM action (reboot, snapshot, restore) the pod's node agent carries out.

    The agent finds its actions with the `spec.nodeName` field selector and
    reports in the status; the request itself is one-shot, so the spec never
    changes after creation.
    """

    status_subresource = True
    field_names = ("spec.nodeName", "spec.podName")

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        if obj.get("spec") is None:
            return [required("spec")]
        spec = check_dict(obj.get("spec"), "spec", errs)
        errs.extend(_check_name(spec.get("nodeName"), "spec.nodeName"))
        errs.extend(_check_name(spec.get("podName"), "spec.podName"))
        present = [k for k in ACTION_KINDS if spec.get(k) is not None]
        if not present:
            errs.append(required("spec", "exactly one of rebootAction, snapshotAction or restoreAction is required"))
        for extra in present[1:]:
            errs.append(forbidden(f"spec.{extra}", f"may not be specified together with spec.{present[0]}"))
        reboot = check_dict(spec.get("rebootAction"), "spec.rebootAction", errs)
        errs.extend(validate_nonnegative(reboot.get("delayInSeconds"), "spec.rebootAction.delayInSeconds"))
        snapshot = check_dict(spec.get("snapshotAction"), "spec.snapshotAction", errs)
        name = snapshot.get("snapshotName")
        if name is not None and not isinstance(name, str):
            errs.append(type_error("spec.snapshotAction.snapshotName", name, "a string"))
        if spec.get("restoreAction") is not None:
            restore = check_dict(spec["restoreAction"], "spec.restoreAction", errs)
            if not restore.get("snapshotID"):
                errs.append(required("spec.restoreAction.snapshotID"))
        status = check_dict(obj.get("status"), "status", errs)
        complete = status.get("complete")
        if complete is not None and not isinstance(complete, bool):
            errs.append(type_error("status.complete", complete, "a boolean"))
        return errs

    def validate_update(self, obj: Obj, old: Obj) -> list[FieldError]:
        return self.validate(obj) + validate_immutable(obj.get("spec"), old.get("spec"), "spec")


class ControllerInstanceStrategy(KindStrategy):
    """One running instance of a partitioned controller and the hashKey range it owns."""

    tracks_generation = False
    field_names = ("controllerType",)

    def default(self, obj: Obj) -> None:
        obj.setdefault("workloadNum", 0)
        obj.setdefault("isLocked", False)

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        ctype = obj.get("controllerType")
        if not ctype:
            errs.append(required("controllerType"))
        elif not isinstance(ctype, str):
            errs.append(type_error("controllerType", ctype, "a string"))
        key = obj.get("controllerKey")
        if key is not None and (not is_int(key) or not 0 <= key <= MAX_INT64):
            errs.append(invalid("controllerKey", key, f"must be between 0 and {MAX_INT64}, inclusive"))
        num = obj.get("workloadNum")
        if num is not None and (not is_int(num) or not 0 <= num <= MAX_INT32):
            errs.append(invalid("workloadNum", num, f"must be between 0 and {MAX_INT32}, inclusive"))
        locked = obj.get("isLocked")
        if locked is not None and not isinstance(locked, bool):
            errs.append(type_error("isLocked", locked, "a boolean"))
        return errs

    def validate_update(self, obj: Obj, old: Obj) -> list[FieldError]:
        return self.validate(obj) + validate_immutable(obj.get("controllerType"), old.get("controllerType"),
                                                       "controllerType")  # fmt: skip


__all__ = ["ActionStrategy", "ControllerInstanceStrategy", "TenantStrategy"]
