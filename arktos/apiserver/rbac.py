"""Role-based access control, Kubernetes semantics inside Arktos tenants.

Authorization runs on every request, so a decision is a handful of dict
lookups, never a walk over bindings:

- Roles, ClusterRoles, RoleBindings and ClusterRoleBindings are indexed per
  tenant from the watch cache; bindings by subject, users and groups apart (a
  ServiceAccount subject is the user `system:serviceaccount:<ns>:<name>`).
- Each subject's permissions are compiled (the rules of every binding naming
  it) into nested dicts verb -> apiGroup -> resource -> resourceNames
  (None = any name): one for tenant-wide grants (ClusterRoleBindings) and one
  per namespace (RoleBindings).  Compiling per subject rather than per user
  means a group bound thousands of times is compiled once for all its members;
  the compiled sets are kept up to date piecewise as bindings and roles change
  (see `TenantPolicy`).
- A decision looks up the user and each of its groups, and in each at most
  {verb, *} x {group, *} x {res, */sub, *}: twelve lookups in the worst case.

Tenancy (ARKTOS.md section 2):

- A user outside the `system` tenant acts only inside its own tenant.
- Identities are (tenant, name): the bindings of tenant T name T's users and
  groups, and grant only inside T.  The `admin` user of tenant T and an
  `admin` user of the system tenant are different people.
- The system tenant's ClusterRoleBindings grant in every tenant, for requests
  across tenants (`all`) and for the kinds outside tenants (nodes, tenants);
  nothing else can grant those.
- `system:masters` of the system tenant is the superuser; the same group
  name in another tenant carries no power beyond what that tenant's own
  bindings give it.

ClusterRoles with an `aggregationRule` get the union of the rules of the
ClusterRoles of their tenant whose labels match, transitively (admin takes in
edit, which takes in view), computed here rather than written back to storage.
As in Kubernetes, where the aggregation controller owns `rules`, the rules
stored on an aggregated role itself are not used.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from arktos.api.errors import APIError
from arktos.api.selectors import LabelSelector, label_selector_from_dict
from arktos.api.tenancy import SYSTEM_TENANT
from arktos.apiserver.auth import Attributes, UserInfo
from arktos.apiserver.cache import CacheManager, Entry
from arktos.apiserver.cachefeed import CacheFeed, key_parts

log = logging.getLogger(__name__)

SUPERUSER_GROUP = "system:masters"
RBAC_RESOURCES = ("roles", "rolebindings", "clusterroles", "clusterrolebindings")
SA_PREFIX = "system:serviceaccount:"

# verb -> apiGroup -> resource -> names (None: any name)
Names = frozenset[str] | set[str] | None
RuleIndex = dict[str, dict[str, dict[str, Names]]]
_MISSING: Any = object()


def sa_user(namespace: str, name: str) -> str:
    return f"{SA_PREFIX}{namespace}:{name}"


PUBLIC_GROUPS = frozenset({"system:authenticated", "system:unauthenticated"})


class Rule:
    """One PolicyRule, reduced to what matching needs."""

    __slots__ = ("groups", "names", "resources", "urls", "verbs")

    def __init__(self, raw: dict[str, Any]) -> None:
        self.verbs: tuple[str, ...] = _strs(raw.get("verbs"))
        self.groups: tuple[str, ...] = _strs(raw.get("apiGroups"))
        self.resources: tuple[str, ...] = _strs(raw.get("resources"))
        names = _strs(raw.get("resourceNames"))
        self.names: frozenset[str] | None = frozenset(names) if names else None
        self.urls: tuple[str, ...] = _strs(raw.get("nonResourceURLs"))


def _strs(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str))


class _Role:
    __slots__ = ("labels", "rules", "selectors")

    def __init__(self, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        labels = meta.get("labels")
        self.labels: dict[str, str] = labels if isinstance(labels, dict) else {}
        rules = obj.get("rules")
        self.rules: tuple[Rule, ...] = tuple(Rule(r) for r in rules if isinstance(r, dict)) if isinstance(
            rules, list) else ()
        self.selectors: tuple[LabelSelector, ...] | None = None
        agg = obj.get("aggregationRule")
        if isinstance(agg, dict):
            sels: list[LabelSelector] = []
            for raw in agg.get("clusterRoleSelectors") or ():
                try:
                    # As in Kubernetes, `{}` selects every ClusterRole of the tenant.
                    sels.append(label_selector_from_dict(raw if isinstance(raw, dict) else None))
                except (APIError, KeyError, TypeError):
                    continue
            self.selectors = tuple(sels)


class _Binding:
    __slots__ = ("namespace", "ref_kind", "ref_name", "subjects")

    def __init__(self, namespace: str, obj: dict[str, Any]) -> None:
        self.namespace = namespace  # "" for a ClusterRoleBinding
        ref = obj.get("roleRef") or {}
        self.ref_kind: str = ref.get("kind", "") if isinstance(ref, dict) else ""
        self.ref_name: str = ref.get("name", "") if isinstance(ref, dict) else ""
        subjects: list[tuple[bool, str]] = []  # (is a group, name)
        for s in obj.get("subjects") or ():
            if not isinstance(s, dict) or not isinstance(s.get("name"), str):
                continue
            kind, name = s.get("kind"), s["name"]
            if kind == "User":
                subjects.append((False, name))
            elif kind == "Group":
                subjects.append((True, name))
            elif kind == "ServiceAccount":
                ns = s.get("namespace") or namespace  # a RoleBinding's SA defaults to its namespace
                if ns:
                    subjects.append((False, sa_user(ns, name)))
        self.subjects: tuple[tuple[bool, str], ...] = tuple(dict.fromkeys(subjects))


class CompiledRole:
    """A role's rules as lookups: built once per role, shared by every binding of it."""

    __slots__ = ("resources", "url_prefixes", "urls")

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.resources: RuleIndex = {}
        self.urls: dict[str, set[str]] = {}  # verb -> exact non-resource URLs ("*" = any)
        self.url_prefixes: dict[str, list[str]] = {}  # verb -> prefixes (from "/path/*")
        for rule in rules:
            if rule.resources:
                self._add_resource_rule(rule)
            for verb in rule.verbs:
                for url in rule.urls:
                    if url != "*" and url.endswith("*"):
                        self.url_prefixes.setdefault(verb, []).append(url.rstrip("*"))
                    else:
                        self.urls.setdefault(verb, set()).add(url)

    def _add_resource_rule(self, rule: Rule) -> None:
        for verb in rule.verbs:
            by_group = self.resources.setdefault(verb, {})
            for group in rule.groups:
                by_res = by_group.setdefault(group, {})
                for res in rule.resources:
                    have = by_res.get(res, _MISSING)
                    if rule.names is None or have is None:
                        by_res[res] = None
                    elif have is _MISSING:
                        by_res[res] = set(rule.names)
                    else:
                        have.update(rule.names)

    def allows_url(self, verb: str, path: str) -> bool:
        for v in (verb, "*"):
            exact = self.urls.get(v)
            if exact is not None and ("*" in exact or path in exact):
                return True
            for prefix in self.url_prefixes.get(v, ()):
                if path.startswith(prefix):
                    return True
        return False


def index_allows(index: RuleIndex, verb: str, group: str, resource: str, sub: str, name: str) -> bool:
    """Kubernetes' rule matching (VerbMatches, APIGroupMatches, ResourceMatches, ResourceNameMatches)."""
    if sub:
        candidates: tuple[str, ...] = (f"{resource}/{sub}", "*/" + sub, "*")
    else:
        candidates = (resource, "*")
    for v in (verb, "*"):
        by_group = index.get(v)
        if by_group is None:
            continue
        for g in (group, "*"):
            by_res = by_group.get(g)
            if by_res is None:
                continue
            for r in candidates:
                names = by_res.get(r, _MISSING)
                if names is _MISSING:
                    continue
                if names is None or (name and name in names):
                    return True
    return False


class Perms:
    """What one subject (a user or a group) holds in its tenant: the compiled roles bound to it, by scope.

    Roles are keyed by identity, so a role bound many times in one scope is
    checked once; the dict holds the role, so the identity cannot be reused.
    """

    __slots__ = ("by_ns", "generation", "tenant_wide", "urls")

    def __init__(self, generation: int) -> None:
        self.generation = generation  # the tenant's ClusterRole generation it was compiled at
        self.tenant_wide: dict[int, CompiledRole] = {}  # from ClusterRoleBindings
        self.urls: dict[int, CompiledRole] = {}  # roles with non-resource URLs, from ClusterRoleBindings
        self.by_ns: dict[str, dict[int, CompiledRole]] = {}  # from RoleBindings

    def add(self, namespace: str, role: CompiledRole) -> None:
        """Grant `role` in `namespace` ("" = tenant-wide, from a ClusterRoleBinding)."""
        if role.resources:
            (self.by_ns.setdefault(namespace, {}) if namespace else self.tenant_wide)[id(role)] = role
        if not namespace and (role.urls or role.url_prefixes):
            self.urls[id(role)] = role  # non-resource URLs only count in ClusterRoleBindings

    def reset(self, namespace: str) -> None:
        if namespace:
            self.by_ns.pop(namespace, None)
        else:
            self.tenant_wide = {}
            self.urls = {}

    def allows(self, verb: str, group: str, resource: str, sub: str, name: str, namespace: str) -> bool:
        for role in self.tenant_wide.values():
            if index_allows(role.resources, verb, group, resource, sub, name):
                return True
        if namespace:
            roles = self.by_ns.get(namespace)
            if roles is not None:
                for role in roles.values():
                    if index_allows(role.resources, verb, group, resource, sub, name):
                        return True
        return False

    def allows_url(self, verb: str, path: str) -> bool:
        return any(role.allows_url(verb, path) for role in self.urls.values())


class _Subject:
    """A user or group named by some bindings of a tenant, with its compiled permissions."""

    __slots__ = ("bindings", "perms")

    def __init__(self) -> None:
        self.bindings: dict[str, set[tuple[str, str]]] = {}  # namespace ("" = CRBs) -> binding keys
        self.perms: Perms | None = None


class TenantPolicy:
    """The RBAC objects of one tenant and the permissions compiled from them.

    Each role is compiled once into lookups (`CompiledRole`); a subject's
    permissions are references to the compiled roles bound to it, per scope,
    so a group bound in thousands of bindings costs one pass over its bindings
    and no rule expansion.  They are kept up to date piecewise: a new binding
    adds its role, a removed or changed one recomputes its subjects' list for
    its namespace, a changed Role that list for the bindings that use it.
    ClusterRole changes (aggregation makes their effects non-local; they are
    rare) bump a generation that makes every subject recompute on next use.
    """

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self.roles: dict[tuple[str, str], _Role] = {}  # (namespace, name)
        self.cluster_roles: dict[str, _Role] = {}
        self.bindings: dict[tuple[str, str], _Binding] = {}  # (namespace or "", name)
        self.role_users: dict[tuple[str, str], set[tuple[str, str]]] = {}  # Role -> bindings referring to it
        self.users: dict[str, _Subject] = {}
        self.groups: dict[str, _Subject] = {}
        self.generation = 0
        self._compiled_roles: dict[tuple[str, str], CompiledRole] = {}
        self._compiled_cluster_roles: dict[str, CompiledRole] = {}

    @property
    def empty(self) -> bool:
        return not (self.roles or self.cluster_roles or self.bindings)

    # -- changes --------------------------------------------------------------

    def set_role(self, namespace: str, name: str, role: _Role | None) -> None:
        if role is None:
            self.roles.pop((namespace, name), None)
        else:
            self.roles[(namespace, name)] = role
        self._compiled_roles.pop((namespace, name), None)
        for key in self.role_users.get((namespace, name), ()):
            for subject in self.bindings[key].subjects:
                self._recompute(subject, namespace)

    def set_cluster_role(self, name: str, role: _Role | None) -> None:
        if role is None:
            self.cluster_roles.pop(name, None)
        else:
            self.cluster_roles[name] = role
        self._compiled_cluster_roles.clear()
        self.generation += 1

    def set_binding(self, namespace: str, name: str, binding: _Binding | None) -> None:
        key = (namespace, name)
        old = self.bindings.pop(key, None)
        if old is not None:
            if old.ref_kind == "Role":
                users = self.role_users.get((namespace, old.ref_name))
                if users is not None:
                    users.discard(key)
                    if not users:
                        del self.role_users[(namespace, old.ref_name)]
            for subject in old.subjects:
                table = self.groups if subject[0] else self.users
                s = table.get(subject[1])
                if s is None:
                    continue
                keys = s.bindings.get(namespace)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del s.bindings[namespace]
                if not s.bindings:
                    del table[subject[1]]
                else:
                    self._recompute(subject, namespace)
        if binding is None:
            return
        self.bindings[key] = binding
        if binding.ref_kind == "Role":
            self.role_users.setdefault((namespace, binding.ref_name), set()).add(key)
        for subject in binding.subjects:
            table = self.groups if subject[0] else self.users
            s = table.get(subject[1])
            if s is None:
                s = table[subject[1]] = _Subject()
            s.bindings.setdefault(namespace, set()).add(key)
            if s.perms is not None and s.perms.generation == self.generation:
                role = self.compiled(binding)
                if role is not None:
                    s.perms.add(namespace, role)

    def _recompute(self, subject: tuple[bool, str], namespace: str) -> None:
        s = (self.groups if subject[0] else self.users).get(subject[1])
        if s is not None and s.perms is not None and s.perms.generation == self.generation:
            s.perms.reset(namespace)
            self._compile_scope(s, s.perms, namespace)

    # -- compiling --------------------------------------------------------------

    def cluster_role_rules(self, name: str) -> tuple[Rule, ...]:
        """A ClusterRole's rules, with aggregation resolved."""
        role = self.cluster_roles.get(name)
        if role is None:
            return ()
        if role.selectors is None:
            return role.rules
        # Every role reachable through aggregation; plain roles contribute their rules.
        out: list[Rule] = []
        seen = {name}
        stack = [role]
        while stack:
            agg = stack.pop()
            for other_name, other in self.cluster_roles.items():
                if other_name in seen or not any(sel.matches(other.labels) for sel in agg.selectors or ()):
                    continue
                seen.add(other_name)
                if other.selectors is None:
                    out.extend(other.rules)
                else:
                    stack.append(other)
        return tuple(out)

    def compiled(self, b: _Binding) -> CompiledRole | None:
        """The compiled role a binding refers to; None while it does not exist."""
        if b.ref_kind == "ClusterRole":
            compiled = self._compiled_cluster_roles.get(b.ref_name)
            if compiled is None:
                if b.ref_name not in self.cluster_roles:
                    return None
                compiled = self._compiled_cluster_roles[b.ref_name] = CompiledRole(
                    self.cluster_role_rules(b.ref_name))
            return compiled
        if b.ref_kind == "Role" and b.namespace:
            key = (b.namespace, b.ref_name)
            compiled = self._compiled_roles.get(key)
            if compiled is None:
                role = self.roles.get(key)
                if role is None:
                    return None
                compiled = self._compiled_roles[key] = CompiledRole(role.rules)
            return compiled
        return None

    def _compile_scope(self, s: _Subject, perms: Perms, namespace: str) -> None:
        for key in s.bindings.get(namespace, ()):
            role = self.compiled(self.bindings[key])
            if role is not None:
                perms.add(namespace, role)

    def perms_of(self, s: _Subject) -> Perms:
        perms = s.perms
        if perms is None or perms.generation != self.generation:
            perms = s.perms = Perms(self.generation)
            for namespace in s.bindings:
                self._compile_scope(s, perms, namespace)
        return perms

    def binding_rules(self, b: _Binding) -> tuple[Rule, ...]:
        """The rules a binding grants (aggregation resolved); none while its role does not exist."""
        if b.ref_kind == "ClusterRole":
            return self.cluster_role_rules(b.ref_name)
        if b.ref_kind == "Role" and b.namespace:
            role = self.roles.get((b.namespace, b.ref_name))
            return role.rules if role is not None else ()
        return ()

    def rules_of(self, name: str, groups: Iterable[str], namespace: str) -> Iterator[tuple[bool, Rule]]:
        """(whether from a ClusterRoleBinding, rule) for every rule bound to a user or its groups, tenant-wide
        and, when `namespace` is given, by RoleBindings in it: what a rules review lists."""
        found = [self.users.get(name) if name else None, *(self.groups.get(g) for g in groups)]
        for s in found:
            if s is None:
                continue
            for ns in ("", namespace) if namespace else ("",):
                for key in s.bindings.get(ns, ()):
                    for rule in self.binding_rules(self.bindings[key]):
                        yield not ns, rule

    def subjects_of(self, name: str, groups: Iterable[str]) -> Iterator[Perms]:
        """The permissions of a user and of each of its groups that some binding names."""
        s = self.users.get(name)
        if s is not None:
            yield self.perms_of(s)
        for g in groups:
            s = self.groups.get(g)
            if s is not None:
                yield self.perms_of(s)


class RBACAuthorizer:
    """The RBAC authorizer over the watch cache; see the module docstring for the rules."""

    def __init__(self, caches: CacheManager) -> None:
        self.tenants: dict[str, TenantPolicy] = {}
        self.feed = CacheFeed(caches, RBAC_RESOURCES, self._on_event, self._reset)

    def start(self) -> bool:
        """Read the current RBAC objects and follow their changes; False until the caches exist."""
        return self.feed.sync()

    def stop(self) -> None:
        self.feed.detach()

    # -- the index ----------------------------------------------------------------

    def _reset(self) -> None:
        self.tenants.clear()

    def _on_event(self, resource: str, new: Entry | None, old: Entry | None) -> None:
        entry = new if new is not None else old
        if entry is None:
            return
        parts = key_parts(entry.key)
        namespaced = resource in ("roles", "rolebindings")
        if len(parts) != (3 if namespaced else 2):
            return
        tenant, namespace, name = (parts[0], parts[1], parts[2]) if namespaced else (parts[0], "", parts[1])
        obj: dict[str, Any] | None = None
        if new is not None:
            try:
                loaded = orjson.loads(new.raw)
            except orjson.JSONDecodeError:
                loaded = None
            obj = loaded if isinstance(loaded, dict) else None
        policy = self.tenants.get(tenant)
        if policy is None:
            if obj is None:
                return
            policy = self.tenants[tenant] = TenantPolicy(tenant)
        try:
            if resource == "roles":
                policy.set_role(namespace, name, _Role(obj) if obj is not None else None)
            elif resource == "clusterroles":
                policy.set_cluster_role(name, _Role(obj) if obj is not None else None)
            else:
                policy.set_binding(namespace, name, _Binding(namespace, obj) if obj is not None else None)
        except Exception:  # a malformed object must not break authorization for everyone else
            log.exception("could not index %s %s", resource, entry.key)
        if policy.empty:
            del self.tenants[tenant]

    # -- deciding -----------------------------------------------------------------

    async def authorize(self, attrs: Attributes) -> tuple[bool, str]:
        return self.decide(attrs)

    def decide(self, attrs: Attributes) -> tuple[bool, str]:
        """The decision itself, synchronous: it never waits for anything."""
        user = attrs.user
        user_tenant = user.tenant
        if user_tenant == SYSTEM_TENANT and SUPERUSER_GROUP in user.groups:
            return True, ""
        if not user_tenant:
            return False, f'user "{user.name}" belongs to no tenant'
        if not self.feed.sync():
            return False, "RBAC policy is not loaded yet"
        if not attrs.resource_request:
            verb, path = attrs.verb, attrs.path or "/"
            policy = self.tenants.get(user_tenant)
            if policy is not None:
                for perms in policy.subjects_of(user.name, user.groups):
                    if perms.allows_url(verb, path):
                        return True, ""
            # Discovery, OpenAPI and /version describe the cluster, not a tenant's objects, so
            # what the system tenant grants to the public groups on non-resource URLs holds for
            # every tenant's users too (a new tenant's users need discovery before any policy
            # of their own exists).  Only those groups count, and never for resources, so no
            # tenant borrows any other system-tenant grant.
            system = self.tenants.get(SYSTEM_TENANT)
            public = tuple(g for g in user.groups if g in PUBLIC_GROUPS)
            if user_tenant != SYSTEM_TENANT and system is not None and public:
                for perms in system.subjects_of("", public):
                    if perms.allows_url(verb, path):
                        return True, ""
            return False, "no RBAC policy matched"
        tenant = attrs.tenant
        if user_tenant != SYSTEM_TENANT and user_tenant != tenant:
            return False, f'user "{user.name}" of tenant "{user_tenant}" cannot access tenant "{tenant or "<none>"}"'
        policy = self.tenants.get(user_tenant)
        if policy is None:
            return False, "no RBAC policy matched"
        verb, group, resource, sub, name = attrs.verb, attrs.group, attrs.resource, attrs.subresource, attrs.name
        # RoleBindings grant in their own namespace, in their own tenant only.
        namespace = ""
        if tenant == user_tenant:
            namespace = attrs.namespace
            if not namespace and resource == "namespaces" and not group:
                namespace = name  # as Kubernetes: a namespace is "in" itself, so a RoleBinding may grant it
        # ClusterRoleBindings grant in the whole tenant (the system tenant's ones in every tenant, across
        # tenants and for the kinds outside tenants); RoleBindings in their namespace of their tenant.
        for perms in policy.subjects_of(user.name, user.groups):
            if perms.allows(verb, group, resource, sub, name, namespace):
                return True, ""
        return False, "no RBAC policy matched"

    def rules_for(self, user: UserInfo, tenant: str, namespace: str) -> RulesAnswer:
        """What `user` may do in `namespace` of `tenant`, as SelfSubjectRulesReview lists it: the rules of
        the bindings `decide` would consult for such a request, so the list never shows a rule `decide`
        would not honour.  A tenant user gets nothing in another tenant."""
        user_tenant = user.tenant
        if user_tenant == SYSTEM_TENANT and SUPERUSER_GROUP in user.groups:
            return [dict(ALL_RESOURCES)], [dict(ALL_URLS)], False, ""
        if not user_tenant or (user_tenant != SYSTEM_TENANT and user_tenant != tenant):
            return [], [], False, ""
        if not self.feed.sync():
            return [], [], True, "RBAC policy is not loaded yet"
        resources: dict[tuple, dict[str, Any]] = {}
        urls: dict[tuple, dict[str, Any]] = {}

        def collect(policy: TenantPolicy, name: str, groups: Iterable[str], ns: str, only_urls: bool) -> None:
            for tenant_wide, rule in policy.rules_of(name, groups, ns):
                if rule.resources and not only_urls:
                    out = {"verbs": list(rule.verbs), "apiGroups": list(rule.groups),
                           "resources": list(rule.resources)}
                    if rule.names is not None:
                        out["resourceNames"] = sorted(rule.names)
                    resources.setdefault(_rule_key(out), out)
                if rule.urls and tenant_wide:  # non-resource URLs count in ClusterRoleBindings only
                    out = {"verbs": list(rule.verbs), "nonResourceURLs": list(rule.urls)}
                    urls.setdefault(_rule_key(out), out)

        policy = self.tenants.get(user_tenant)
        if policy is not None:
            # RoleBindings grant in their own tenant only; elsewhere the system tenant's ClusterRoleBindings.
            collect(policy, user.name, user.groups, namespace if tenant == user_tenant else "", False)
        system = self.tenants.get(SYSTEM_TENANT)
        public = tuple(g for g in user.groups if g in PUBLIC_GROUPS)
        if user_tenant != SYSTEM_TENANT and system is not None and public:
            collect(system, "", public, "", True)  # as `decide`: the public groups' URLs hold everywhere
        return list(resources.values()), list(urls.values()), False, ""


ALL_RESOURCES: dict[str, Any] = {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}
ALL_URLS: dict[str, Any] = {"verbs": ["*"], "nonResourceURLs": ["*"]}
# (resource rules, non-resource rules, incomplete, evaluation error), as Kubernetes' RulesFor
RulesAnswer = tuple[list[dict[str, Any]], list[dict[str, Any]], bool, str]


def _rule_key(rule: dict[str, Any]) -> tuple:
    return tuple((k, tuple(v)) for k, v in sorted(rule.items()))


__all__ = ["ALL_RESOURCES", "ALL_URLS", "SUPERUSER_GROUP", "CompiledRole", "Perms", "RBACAuthorizer", "Rule",
           "RulesAnswer", "TenantPolicy", "index_allows", "sa_user"]
