"""rbac.authorization.k8s.io/v1: Role, ClusterRole, RoleBinding, ClusterRoleBinding.

In Arktos, ClusterRoles and ClusterRoleBindings live inside a tenant; the
rules are Kubernetes'.  RBAC names are URL path segments, not DNS names, so
the built-in "system:..." roles are valid.
"""

from __future__ import annotations

from typing import Any

from arktos.api.errors import FieldError, invalid, not_supported, required
from arktos.api.strategies._base import KindStrategy, as_list, check_dict, check_list, dig
from arktos.api.strategy import Obj
from arktos.api.validation import (
    is_dns1123_label,
    is_dns1123_subdomain,
    name_is_path_segment,
    validate_label_selector,
)

RBAC_GROUP = "rbac.authorization.k8s.io"
SUBJECT_KINDS = ["Group", "ServiceAccount", "User"]


def validate_policy_rule(rule: Any, path: str, namespaced: bool) -> list[FieldError]:
    """A rule grants verbs on resources of API groups, or on non-resource URLs (never both)."""
    errs: list[FieldError] = []
    rule = check_dict(rule, path, errs)
    if not check_list(rule.get("verbs"), f"{path}.verbs", errs):
        errs.append(required(f"{path}.verbs", "verbs must contain at least one value"))
    urls = check_list(rule.get("nonResourceURLs"), f"{path}.nonResourceURLs", errs)
    groups = check_list(rule.get("apiGroups"), f"{path}.apiGroups", errs)
    resources = check_list(rule.get("resources"), f"{path}.resources", errs)
    if urls:
        if namespaced:
            errs.append(invalid(f"{path}.nonResourceURLs", urls, "namespaced rules cannot apply to non-resource URLs"))
        if groups or resources or as_list(rule.get("resourceNames")):
            errs.append(
                invalid(
                    f"{path}.nonResourceURLs",
                    urls,
                    "rules cannot apply to both regular resources and non-resource URLs",
                )
            )
        return errs
    if not groups:
        errs.append(required(f"{path}.apiGroups", "resource rules must supply at least one api group"))
    if not resources:
        errs.append(required(f"{path}.resources", "resource rules must supply at least one resource"))
    return errs


class RoleStrategy(KindStrategy):
    """Role (namespaced) and ClusterRole (tenant-wide, may aggregate other roles)."""

    tracks_generation = False
    name_validator = staticmethod(name_is_path_segment)

    def __init__(self, namespaced: bool) -> None:
        self.namespaced = namespaced

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        for i, rule in enumerate(check_list(obj.get("rules"), "rules", errs)):
            errs.extend(validate_policy_rule(rule, f"rules[{i}]", self.namespaced))
        aggregation = obj.get("aggregationRule")
        if aggregation is not None:
            if self.namespaced:
                errs.append(
                    invalid("aggregationRule", aggregation, "aggregation rules are only allowed on ClusterRoles")
                )
            else:
                agg = check_dict(aggregation, "aggregationRule", errs)
                selectors = check_list(agg.get("clusterRoleSelectors"), "aggregationRule.clusterRoleSelectors", errs)
                if not selectors:
                    errs.append(
                        required("aggregationRule.clusterRoleSelectors", "at least one clusterRoleSelector required "
                                 "if aggregationRule is non-nil")
                    )  # fmt: skip
                for i, sel in enumerate(selectors):
                    errs.extend(validate_label_selector(sel, f"aggregationRule.clusterRoleSelectors[{i}]"))
        return errs


class BindingStrategy(KindStrategy):
    """RoleBinding and ClusterRoleBinding: who (subjects) gets which role (roleRef).

    roleRef cannot change: swapping the role under existing subjects would
    silently change what they may do; Kubernetes makes you delete and
    recreate the binding instead.
    """

    tracks_generation = False
    name_validator = staticmethod(name_is_path_segment)

    def __init__(self, namespaced: bool) -> None:
        self.namespaced = namespaced

    def default(self, obj: Obj) -> None:
        ref = obj.get("roleRef")
        if isinstance(ref, dict) and not ref.get("apiGroup"):
            ref["apiGroup"] = RBAC_GROUP
        for subject in as_list(obj.get("subjects")):
            if isinstance(subject, dict) and "apiGroup" not in subject:
                if subject.get("kind") in ("User", "Group"):
                    subject["apiGroup"] = RBAC_GROUP
                elif subject.get("kind") == "ServiceAccount":
                    subject["apiGroup"] = ""

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        ref = obj.get("roleRef")
        if ref is None:
            errs.append(required("roleRef"))
        else:
            ref = check_dict(ref, "roleRef", errs)
            kinds = ["ClusterRole", "Role"] if self.namespaced else ["ClusterRole"]
            if ref.get("apiGroup") != RBAC_GROUP:
                errs.append(not_supported("roleRef.apiGroup", ref.get("apiGroup"), [RBAC_GROUP]))
            if ref.get("kind") not in kinds:
                errs.append(not_supported("roleRef.kind", ref.get("kind"), kinds))
            name = ref.get("name")
            if not name:
                errs.append(required("roleRef.name"))
            else:
                errs.extend(invalid("roleRef.name", name, m) for m in name_is_path_segment(str(name)))
        for i, subject in enumerate(check_list(obj.get("subjects"), "subjects", errs)):
            errs.extend(self._validate_subject(subject, f"subjects[{i}]"))
        return errs

    def _validate_subject(self, subject: Any, path: str) -> list[FieldError]:
        errs: list[FieldError] = []
        subject = check_dict(subject, path, errs)
        name, kind, group = subject.get("name"), subject.get("kind"), subject.get("apiGroup")
        if not name:
            errs.append(required(f"{path}.name"))
        if kind == "ServiceAccount":
            if name:
                errs.extend(invalid(f"{path}.name", name, m) for m in is_dns1123_subdomain(str(name)))
            if group:
                errs.append(not_supported(f"{path}.apiGroup", group, [""]))
            ns = subject.get("namespace")
            if not ns and not self.namespaced:
                errs.append(required(f"{path}.namespace"))
            elif ns:
                errs.extend(invalid(f"{path}.namespace", ns, m) for m in is_dns1123_label(str(ns)))
        elif kind in ("User", "Group"):
            if group != RBAC_GROUP:
                errs.append(not_supported(f"{path}.apiGroup", group, [RBAC_GROUP]))
        else:
            errs.append(not_supported(f"{path}.kind", kind, SUBJECT_KINDS))
        return errs

    def validate_update(self, obj: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(obj)
        if obj.get("roleRef") != old.get("roleRef"):
            errs.append(invalid("roleRef", dig(obj, "roleRef"), "cannot change roleRef"))
        return errs


__all__ = ["RBAC_GROUP", "BindingStrategy", "RoleStrategy", "validate_policy_rule"]
