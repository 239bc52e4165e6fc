"""ResourceQuota and LimitRange: defaulting and validation as Kubernetes' (ValidateResourceQuota,
ValidateLimitRange, SetDefaults_LimitRangeItem)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from arktos.api.errors import FieldError, forbidden, invalid, not_supported, required
from arktos.api.quantity import QUANTITY_REGEX_MESSAGE, QuantityError, parse_quantity
from arktos.api.quota import (
    LIMIT_TYPES,
    SCOPE_RESOURCES,
    SCOPES,
    STANDARD_QUOTA_RESOURCES,
    default_limit_range_item,
    is_integer_resource,
)
from arktos.api.strategies._base import KindStrategy, as_dict, as_list, check_dict, check_list
from arktos.api.strategy import Obj
from arktos.api.validation import is_qualified_name

__all__ = ["LimitRangeStrategy", "ResourceQuotaStrategy"]

_STANDARD_CONTAINER = ("cpu", "memory", "ephemeral-storage")
_OPERATORS = ["DoesNotExist", "Exists", "In", "NotIn"]


def _is_standard_quota(name: str) -> bool:
    return name in STANDARD_QUOTA_RESOURCES or name.startswith(("hugepages-", "requests.hugepages-"))


def _quantity(value: Any, path: str, errs: list[FieldError]) -> Decimal | None:
    try:
        amount = parse_quantity(value)
    except QuantityError:
        errs.append(invalid(path, value, QUANTITY_REGEX_MESSAGE))
        return None
    if amount < 0:
        errs.append(invalid(path, value, "must be greater than or equal to 0"))
        return None
    return amount


def _quota_list(values: Any, path: str, errs: list[FieldError]) -> None:
    for name, value in check_dict(values, path, errs).items():
        p = f"{path}[{name}]"
        name_errs = is_qualified_name(name)
        errs.extend(invalid(p, name, m) for m in name_errs)
        if not name_errs and "/" not in name and not _is_standard_quota(name):
            errs.append(invalid(p, name, "must be a standard resource for quota"))
        amount = _quantity(value, p, errs)
        if amount is not None and is_integer_resource(name) and amount != amount.to_integral_value():
            errs.append(invalid(p, value, "must be an integer"))


class ResourceQuotaStrategy(KindStrategy):
    """spec.hard is what the namespace may use; status (hard, used) is the quota controller's and
    the admission plugin's, written through the status subresource."""

    status_subresource = True
    tracks_generation = False

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        spec = check_dict(obj.get("spec"), "spec", errs)
        _quota_list(spec.get("hard"), "spec.hard", errs)
        status = check_dict(obj.get("status"), "status", errs)
        _quota_list(status.get("hard"), "status.hard", errs)
        _quota_list(status.get("used"), "status.used", errs)
        scopes = check_list(spec.get("scopes"), "spec.scopes", errs)
        hard = sorted(as_dict(spec.get("hard")))
        for scope in scopes:
            if scope not in SCOPES:
                errs.append(invalid("spec.scopes", scopes, "unsupported scope"))
                continue
            if any(_is_standard_quota(k) and k not in SCOPE_RESOURCES[scope] for k in hard):
                errs.append(invalid("spec.scopes", scopes, "unsupported scope applied to resource"))
        for pair in ({"BestEffort", "NotBestEffort"}, {"Terminating", "NotTerminating"}):
            if pair <= set(s for s in scopes if isinstance(s, str)):
                errs.append(invalid("spec.scopes", scopes, "conflicting scopes"))
        selector = check_dict(spec.get("scopeSelector"), "spec.scopeSelector", errs)
        path = "spec.scopeSelector.matchExpressions"
        for i, e in enumerate(check_list(selector.get("matchExpressions"), path, errs)):
            p = f"{path}[{i}]"
            e = check_dict(e, p, errs)
            name, op, values = e.get("scopeName"), e.get("operator"), e.get("values")
            if name not in SCOPES:
                errs.append(invalid(f"{p}.scopeName", name, "unsupported scope"))
            elif any(_is_standard_quota(k) and k not in SCOPE_RESOURCES[name] for k in hard):
                errs.append(invalid(f"{p}.scopeName", name, "unsupported scope applied to resource"))
            if op not in _OPERATORS:
                errs.append(not_supported(f"{p}.operator", op, _OPERATORS))
            elif op in ("In", "NotIn"):
                if name != "PriorityClass":
                    errs.append(invalid(f"{p}.operator", op, "must be 'Exist' when scope is any of "
                                        "ResourceQuotaScopeTerminating, ResourceQuotaScopeNotTerminating, "
                                        "ResourceQuotaScopeBestEffort, ResourceQuotaScopeNotBestEffort or "
                                        "ResourceQuotaScopeCrossNamespacePodAffinity"))
                if not as_list(values):
                    errs.append(required(f"{p}.values", "must be at least one value when `operator` is 'In' "
                                         "or 'NotIn' for scope selector"))
            elif values:
                errs.append(invalid(f"{p}.values", values, "must be no value when `operator` is 'Exist' or "
                                    "'DoesNotExist' for scope selector"))
        return errs

    def validate_update(self, obj: Obj, old: Obj) -> list[FieldError]:
        return self.validate(obj)


def _limit_resource_name(name: str, ltype: Any, path: str, errs: list[FieldError]) -> None:
    name_errs = is_qualified_name(name)
    errs.extend(invalid(path, name, m) for m in name_errs)
    if name_errs or "/" in name:
        return
    allowed = ("storage",) if ltype == "PersistentVolumeClaim" else _STANDARD_CONTAINER
    if name not in allowed and not name.startswith("hugepages-"):
        errs.append(invalid(path, name, "must be a standard limit type or fully qualified"))


class LimitRangeStrategy(KindStrategy):
    """Per-namespace bounds and defaults for containers, pods and claims."""

    tracks_generation = False

    def default(self, obj: Obj) -> None:
        for item in as_list(as_dict(obj.get("spec")).get("limits")):
            if isinstance(item, dict):
                default_limit_range_item(item)

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        spec = check_dict(obj.get("spec"), "spec", errs)
        seen: set[str] = set()
        for i, item in enumerate(check_list(spec.get("limits"), "spec.limits", errs)):
            p = f"spec.limits[{i}]"
            item = check_dict(item, p, errs)
            ltype = item.get("type")
            if not ltype:
                errs.append(required(f"{p}.type"))
            elif not isinstance(ltype, str) or is_qualified_name(ltype):
                errs.append(invalid(f"{p}.type", ltype, "must be a standard limit type or fully qualified"))
            elif ltype in seen:
                errs.append(FieldError(f"{p}.type", "FieldValueDuplicate", value=ltype))
            else:
                seen.add(ltype)
                if "/" not in ltype and ltype not in LIMIT_TYPES:
                    errs.append(invalid(f"{p}.type", ltype, "must be a standard limit type or fully qualified"))
            parsed: dict[str, dict[str, Decimal]] = {}
            raw: dict[str, dict[str, Any]] = {}
            for part in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
                values = check_dict(item.get(part), f"{p}.{part}", errs)
                raw[part] = values
                parsed[part] = {}
                for name, value in values.items():
                    kp = f"{p}.{part}[{name}]"
                    _limit_resource_name(name, ltype, kp, errs)
                    amount = _quantity(value, kp, errs)
                    if amount is not None:
                        parsed[part][name] = amount
            if ltype == "Pod":
                if raw["default"]:
                    errs.append(forbidden(f"{p}.default", "may not be specified when `type` is 'Pod'"))
                if raw["defaultRequest"]:
                    errs.append(forbidden(f"{p}.defaultRequest", "may not be specified when `type` is 'Pod'"))
            elif ltype == "PersistentVolumeClaim" and "storage" not in raw["min"] and "storage" not in raw["max"]:
                errs.append(required(f"{p}.limits", "either minimum or maximum storage value is required, "
                                     "but neither was provided"))
            names = set().union(*(parsed[k] for k in parsed))
            for k in sorted(names):
                mn, mx = parsed["min"].get(k), parsed["max"].get(k)
                dflt, dreq = parsed["default"].get(k), parsed["defaultRequest"].get(k)
                ratio = parsed["maxLimitRequestRatio"].get(k)
                s = {part: str(raw[part].get(k)) for part in raw}
                if mn is not None and mx is not None and mn > mx:
                    errs.append(invalid(f"{p}.min[{k}]", s["min"],
                                        f"min value {s['min']} is greater than max value {s['max']}"))
                if dreq is not None and mn is not None and mn > dreq:
                    errs.append(invalid(f"{p}.defaultRequest[{k}]", s["defaultRequest"],
                                        f"min value {s['min']} is greater than default request value "
                                        f"{s['defaultRequest']}"))
                if dreq is not None and mx is not None and dreq > mx:
                    errs.append(invalid(f"{p}.defaultRequest[{k}]", s["defaultRequest"],
                                        f"default request value {s['defaultRequest']} is greater than max value "
                                        f"{s['max']}"))
                if dreq is not None and dflt is not None and dreq > dflt:
                    errs.append(invalid(f"{p}.defaultRequest[{k}]", s["defaultRequest"],
                                        f"default request value {s['defaultRequest']} is greater than default "
                                        f"limit value {s['default']}"))
                if dflt is not None and mn is not None and mn > dflt:
                    errs.append(invalid(f"{p}.default[{k}]", s["default"],
                                        f"min value {s['min']} is greater than default value {s['default']}"))
                if dflt is not None and mx is not None and dflt > mx:
                    errs.append(invalid(f"{p}.default[{k}]", s["default"],
                                        f"default value {s['default']} is greater than max value {s['max']}"))
                if ratio is not None and ratio < 1:
                    errs.append(invalid(f"{p}.maxLimitRequestRatio[{k}]", s["maxLimitRequestRatio"],
                                        f"ratio {s['maxLimitRequestRatio']} is less than 1"))
                if ratio is not None and mn is not None and mx is not None and mn > 0 and ratio > mx / mn:
                    errs.append(invalid(f"{p}.maxLimitRequestRatio[{k}]", s["maxLimitRequestRatio"],
                                        f"ratio {s['maxLimitRequestRatio']} is greater than max/min = "
                                        f"{float(mx / mn):f}"))
        return errs

    def validate_update(self, obj: Obj, old: Obj) -> list[FieldError]:
        return self.validate(obj)
