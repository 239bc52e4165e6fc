"""coordination.k8s.io Lease and apiextensions.k8s.io CustomResourceDefinition."""

from __future__ import annotations

from typing import Any

from arktos.api.errors import FieldError, invalid, not_supported, required
from arktos.api.strategies._base import KindStrategy, as_dict, as_list, check_dict, check_list, dig, type_error
from arktos.api.strategy import Obj
from arktos.api.validation import (
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    validate_immutable,
    validate_nonnegative,
    validate_positive,
)

CRD_SCOPES = ["Cluster", "Namespaced"]
CONVERSION_STRATEGIES = ["None", "Webhook"]


# --------------------------------------------------------------------------- Lease


class LeaseStrategy(KindStrategy):
    """Leases are renewed every few seconds by every node and leader; none of
    that is a spec change worth a generation bump."""

    tracks_generation = False

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        spec = check_dict(obj.get("spec"), "spec", errs)
        holder = spec.get("holderIdentity")
        if holder is not None and not isinstance(holder, str):
            errs.append(type_error("spec.holderIdentity", holder, "a string"))
        errs.extend(validate_positive(spec.get("leaseDurationSeconds"), "spec.leaseDurationSeconds"))
        errs.extend(validate_nonnegative(spec.get("leaseTransitions"), "spec.leaseTransitions"))
        for key in ("acquireTime", "renewTime"):
            value = spec.get(key)
            if value is not None and not isinstance(value, str):
                errs.append(type_error(f"spec.{key}", value, "an RFC 3339 time string"))
        return errs


# --------------------------------------------------------------------------- CustomResourceDefinition


def _storage_version(obj: Obj) -> str | None:
    for v in as_list(dig(obj, "spec", "versions")):
        if isinstance(v, dict) and v.get("storage") is True:
            return v.get("name")
    return None


def _record_storage_version(obj: Obj) -> None:
    """status.storedVersions lists every version objects may be stored in; never forget one."""
    version = _storage_version(obj)
    if not version:
        return
    status = obj.get("status")
    if not isinstance(status, dict):
        status = obj["status"] = {}
    stored = status.get("storedVersions")
    if not isinstance(stored, list):
        stored = status["storedVersions"] = []
    if version not in stored:
        stored.append(version)


class CustomResourceDefinitionStrategy(KindStrategy):
    status_subresource = True

    def prepare_for_create(self, obj: Obj) -> None:
        obj.pop("status", None)
        _record_storage_version(obj)

    def prepare_for_update(self, obj: Obj, old: Obj) -> None:
        super().prepare_for_update(obj, old)
        _record_storage_version(obj)

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        names = spec.get("names")
        if isinstance(names, dict) and isinstance(names.get("kind"), str) and names["kind"]:
            names.setdefault("singular", names["kind"].lower())
            names.setdefault("listKind", names["kind"] + "List")
        conversion = spec.get("conversion")
        if conversion is None:
            spec["conversion"] = {"strategy": "None"}
        elif isinstance(conversion, dict):
            conversion.setdefault("strategy", "None")

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        if obj.get("spec") is None:
            return [required("spec")]
        spec = check_dict(obj.get("spec"), "spec", errs)
        group = spec.get("group")
        if not group:
            errs.append(required("spec.group"))
        elif not isinstance(group, str):
            errs.append(type_error("spec.group", group, "a string"))
        else:
            group_errs = is_dns1123_subdomain(group)
            errs.extend(invalid("spec.group", group, m) for m in group_errs)
            if not group_errs and "." not in group:
                errs.append(invalid("spec.group", group, "should be a domain with at least one dot"))
        names = check_dict(spec.get("names"), "spec.names", errs)
        plural, kind = names.get("plural"), names.get("kind")
        if not plural:
            errs.append(required("spec.names.plural"))
        else:
            errs.extend(invalid("spec.names.plural", plural, m) for m in is_dns1035_label(str(plural)))
        if names.get("singular"):
            errs.extend(
                invalid("spec.names.singular", names["singular"], m) for m in is_dns1035_label(str(names["singular"]))
            )
        if not kind:
            errs.append(required("spec.names.kind"))
        else:
            kind_errs = is_dns1035_label(str(kind).lower())
            if kind_errs:
                errs.append(invalid("spec.names.kind", kind, "may have mixed case, but should otherwise match: " +
                                    ",".join(kind_errs)))  # fmt: skip
        if not names.get("listKind"):
            errs.append(required("spec.names.listKind"))
        for key in ("shortNames", "categories"):
            for i, item in enumerate(check_list(names.get(key), f"spec.names.{key}", errs)):
                errs.extend(invalid(f"spec.names.{key}[{i}]", item, m) for m in is_dns1123_label(str(item)))
        scope = spec.get("scope")
        if scope not in CRD_SCOPES:
            errs.append(required("spec.scope") if not scope else not_supported("spec.scope", scope, CRD_SCOPES))
        errs.extend(self._validate_versions(spec))
        strategy = dig(spec, "conversion", "strategy")
        if strategy not in (None, *CONVERSION_STRATEGIES):
            errs.append(not_supported("spec.conversion.strategy", strategy, CONVERSION_STRATEGIES))
        name = dig(obj, "metadata", "name")
        if plural and group and name != f"{plural}.{group}":
            errs.append(invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
        errs.extend(self._validate_status(obj))
        return errs

    @staticmethod
    def _validate_versions(spec: dict[str, Any]) -> list[FieldError]:
        errs: list[FieldError] = []
        versions = check_list(spec.get("versions"), "spec.versions", errs)
        if not versions:
            errs.append(required("spec.versions", "must have exactly one version marked as storage version"))
            return errs
        seen: set[str] = set()
        storage = served = 0
        for i, v in enumerate(versions):
            p = f"spec.versions[{i}]"
            v = check_dict(v, p, errs)
            name = v.get("name")
            if not name:
                errs.append(required(f"{p}.name"))
            else:
                errs.extend(invalid(f"{p}.name", name, m) for m in is_dns1035_label(str(name)))
                if name in seen:
                    errs.append(invalid("spec.versions", name, "must contain unique version names"))
                seen.add(name)
            for flag in ("served", "storage"):
                if not isinstance(v.get(flag), bool):
                    errs.append(required(f"{p}.{flag}") if flag not in v else type_error(f"{p}.{flag}", v[flag],
                                                                                          "a boolean"))  # fmt: skip
            storage += v.get("storage") is True
            served += v.get("served") is True
            schema = dig(v, "schema", "openAPIV3Schema")
            if schema is None:
                errs.append(required(f"{p}.schema.openAPIV3Schema", "schemas are required"))
            elif not isinstance(schema, dict):
                errs.append(type_error(f"{p}.schema.openAPIV3Schema", None, "an object"))
        if storage != 1:
            errs.append(invalid("spec.versions", storage, "must have exactly one version marked as storage version"))
        if served == 0:
            errs.append(invalid("spec.versions", served, "must have at least one version marked as served"))
        return errs

    @staticmethod
    def _validate_status(obj: Obj) -> list[FieldError]:
        stored = dig(obj, "status", "storedVersions")
        if not isinstance(stored, list) or not stored:
            return []
        errs: list[FieldError] = []
        names = {as_dict(v).get("name") for v in as_list(dig(obj, "spec", "versions"))}
        for i, version in enumerate(stored):
            if version not in names:
                errs.append(invalid(f"status.storedVersions[{i}]", version, "must appear in spec.versions"))
        storage = _storage_version(obj)
        if storage and storage not in stored:
            errs.append(invalid("status.storedVersions", stored, f"must have the storage version {storage}"))
        return errs

    def validate_update(self, obj: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(obj)
        for path in (("spec", "group"), ("spec", "names", "plural"), ("spec", "scope")):
            errs.extend(validate_immutable(dig(obj, *path), dig(old, *path), ".".join(path)))
        return errs


__all__ = ["CustomResourceDefinitionStrategy", "LeaseStrategy"]
