"""Access, rules, token and self reviews: create-only kinds answered by the authorizers and authenticators.

Nothing is stored; the reply is the posted object with its status filled in
(201, as Kubernetes answers).  The request pipeline has already authorized
`create <review kind>` by RBAC before we get here, in the tenant of the URL
(a short path: the caller's tenant).

Tenancy, the one rule: a review never reveals anything about another tenant.

* SelfSubjectAccessReview, SelfSubjectRulesReview, SelfSubjectReview: about
  the caller itself.  `resourceAttributes.tenant` (Arktos's addition to
  ResourceAttributes, JSON only) defaults to the review's tenant; a tenant
  user naming another tenant gets `allowed: false, denied: true` from the
  isolation rule alone, before any policy is consulted, so the answer is
  the same whatever that tenant holds or whether it exists.
* SubjectAccessReview (tenant-scoped, like every tenanted kind; RBAC needs
  `create subjectaccessreviews` there: system components, system admins,
  tenant admins): the reviewed user is a user of the review's tenant, or of
  the tenant named by `spec.extra["arktos.io/tenant"]` -- which only a
  system-tenant caller may point elsewhere (a tenant caller gets 403
  whatever the tenant).  TokenReview and SelfSubjectReview put the same key
  into the user's extra, so a component can pass a TokenReview's user back
  into a SubjectAccessReview unchanged.
* LocalSubjectAccessReview: the same, within the URL's namespace and tenant.
* TokenReview: outside tenants, so only the system tenant's identities
  (RBAC: the controller manager, the scheduler, system admins) may ask.
  Static tokens and service-account JWTs are audience-agnostic here: a
  review naming audiences succeeds only for the API server's own.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import orjson
from aiohttp import web

from arktos.api import errors
from arktos.api.registry import Registry, ResourceInfo
from arktos.api.tenancy import ALL_TENANTS, SYSTEM_TENANT, may_access
from arktos.apiserver.auth import Attributes, Authenticator, Authorizer, UserInfo
from arktos.apiserver.handlers import check_fields, check_kind, decode_object, read_body
from arktos.apiserver.store import Ctx

Obj = dict[str, Any]

AUTHZ = "authorization.k8s.io"
AUTHN = "authentication.k8s.io"
TENANT_EXTRA = "arktos.io/tenant"
AUTHENTICATED = "system:authenticated"
NO_REASON = frozenset({"no RBAC policy matched", "no opinion"})

KINDS = frozenset({
    (AUTHZ, "SelfSubjectAccessReview"), (AUTHZ, "SubjectAccessReview"), (AUTHZ, "LocalSubjectAccessReview"),
    (AUTHZ, "SelfSubjectRulesReview"), (AUTHN, "SelfSubjectReview"), (AUTHN, "TokenReview"),
})


def is_review(info: ResourceInfo) -> bool:
    return (info.group, info.kind) in KINDS


def user_info(user: UserInfo) -> Obj:
    """authentication.k8s.io/v1 UserInfo, the tenant in extra."""
    extra = {k: list(v) for k, v in user.extra.items()}
    extra[TENANT_EXTRA] = [user.tenant]
    out: Obj = {"username": user.name, "groups": list(user.groups), "extra": extra}
    if user.uid:
        out["uid"] = user.uid
    return out


def _dict(value: Any, path: str) -> Obj:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise errors.bad_request(f"{path} must be an object")
    return value


def _str(d: Obj, key: str, path: str) -> str:
    value = d.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise errors.bad_request(f"{path}.{key} must be a string")
    return value


def _strings(value: Any, path: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise errors.bad_request(f"{path} must be a list of strings")
    return value


class Reviews:
    def __init__(self, registry: Registry, authorizer: Authorizer, authenticator: Authenticator,
                 api_audiences: Sequence[str] = ()) -> None:
        self.registry = registry
        self.authorizer = authorizer
        self.authenticator = authenticator
        self.api_audiences = list(api_audiences)

    def serves(self, info: ResourceInfo) -> bool:
        return is_review(info)

    async def create(self, request: web.Request, info: ResourceInfo, ctx: Ctx, name: str) -> web.Response:
        if name:
            raise errors.method_not_allowed(f"POST is not supported on a named {info.singular}")
        raw = await read_body(request)
        body = decode_object(raw, request.headers.get("Content-Type", ""))
        check_kind(info, body)
        check_fields(request, info, body, ctx, raw)
        spec = _dict(body.get("spec"), "spec")
        handler = {
            "SelfSubjectAccessReview": self._self_access,
            "SubjectAccessReview": self._access,
            "LocalSubjectAccessReview": self._local_access,
            "SelfSubjectRulesReview": self._self_rules,
            "SelfSubjectReview": self._self,
            "TokenReview": self._token,
        }[info.kind]
        status = await handler(info, ctx, spec)
        out: Obj = {"kind": info.kind, "apiVersion": info.api_version,
                    "metadata": {**_dict(body.get("metadata"), "metadata"), "creationTimestamp": None}}
        if info.kind != "SelfSubjectReview":
            out["spec"] = spec
        out["status"] = status
        resp = web.Response(body=orjson.dumps(out), status=201, content_type="application/json")
        for w in ctx.warnings:
            resp.headers.add("Warning", '299 - "' + w.replace('"', '\\"') + '"')
        return resp

    # -- access reviews ------------------------------------------------------------

    @staticmethod
    def _attributes(info: ResourceInfo, spec: Obj) -> tuple[Obj | None, Obj | None]:
        ra = spec.get("resourceAttributes")
        nra = spec.get("nonResourceAttributes")
        if (ra is None) == (nra is None):
            raise errors.invalid_object(info.kind, "", [errors.invalid(
                "spec.resourceAttributes", None,
                "exactly one of nonResourceAttributes or resourceAttributes must be specified")], group=info.group)
        return (_dict(ra, "spec.resourceAttributes") if ra is not None else None,
                _dict(nra, "spec.nonResourceAttributes") if nra is not None else None)

    def _tenanted(self, group: str, resource: str, tenant: str) -> bool:
        """Whether a resource lives in tenants (unknown ones and `*` are taken to)."""
        for info in self.registry.for_tenant(tenant):
            if info.group == group and info.plural == resource:
                return info.scope.tenanted
        return True

    async def decide(self, user: UserInfo, ra: Obj | None, nra: Obj | None, tenant: str) -> Obj:
        """The status of an access review of `user`; resources default to `tenant`."""
        if nra is not None:
            attrs = Attributes(user, _str(nra, "verb", "spec.nonResourceAttributes"), "", "", "", "", "", "", "",
                               False, _str(nra, "path", "spec.nonResourceAttributes"))
        else:
            assert ra is not None
            p = "spec.resourceAttributes"
            group, resource = _str(ra, "group", p), _str(ra, "resource", p)
            tenant = _str(ra, "tenant", p) or tenant
            if not self._tenanted(group, resource, tenant):
                tenant = ""
            # The pipeline's isolation rule comes before any authorizer: the answer for another tenant is the
            # same whatever that tenant holds.
            if tenant and not may_access(user.tenant, tenant if tenant != ALL_TENANTS else ""):
                return {"allowed": False, "denied": True,
                        "reason": f'user "{user.name}" of tenant "{user.tenant}" cannot access tenant "{tenant}"'}
            attrs = Attributes(user, _str(ra, "verb", p), tenant, _str(ra, "namespace", p), group,
                               _str(ra, "version", p), resource, _str(ra, "subresource", p), _str(ra, "name", p))
        allowed, reason = await self.authorizer.authorize(attrs)
        status: Obj = {"allowed": allowed}
        # "Nothing matched" is what "no" means already (Kubernetes' RBAC gives no reason either); kubectl
        # prints any reason after its answer.
        reason = "; ".join(r for r in reason.split("; ") if r and r not in NO_REASON)
        if reason:
            status["reason"] = reason
        return status

    async def _self_access(self, info: ResourceInfo, ctx: Ctx, spec: Obj) -> Obj:
        ra, nra = self._attributes(info, spec)
        return await self.decide(ctx.user, ra, nra, ctx.tenant)

    def _subject(self, info: ResourceInfo, ctx: Ctx, spec: Obj) -> UserInfo:
        """The reviewed user: a user of the review's tenant unless a system caller names another."""
        user = _str(spec, "user", "spec")
        groups = _strings(spec.get("groups"), "spec.groups")
        if not user and not groups:
            raise errors.invalid_object(info.kind, "", [errors.invalid(
                "spec.user", "", "at least one of user or group must be specified")], group=info.group)
        extra_raw = _dict(spec.get("extra"), "spec.extra")
        extra = {k: _strings(v, f"spec.extra[{k}]") for k, v in extra_raw.items()}
        tenant = ctx.tenant
        named = extra.get(TENANT_EXTRA)
        if named is not None:
            if len(named) != 1:
                raise errors.invalid_object(info.kind, "", [errors.invalid(
                    f"spec.extra[{TENANT_EXTRA}]", named, "must name exactly one tenant")], group=info.group)
            if named[0] != ctx.tenant and ctx.user.tenant != SYSTEM_TENANT:
                raise errors.forbidden_error(
                    f'{info.plural}.{info.group} is forbidden: user "{ctx.user.name}" of tenant '
                    f'"{ctx.user.tenant}" may review users of its own tenant only', info.plural, "", info.group)
            tenant = named[0]
        return UserInfo(user, tenant, tuple(groups), _str(spec, "uid", "spec"), extra)

    async def _access(self, info: ResourceInfo, ctx: Ctx, spec: Obj) -> Obj:
        ra, nra = self._attributes(info, spec)
        subject = self._subject(info, ctx, spec)
        return await self.decide(subject, ra, nra, subject.tenant)

    async def _local_access(self, info: ResourceInfo, ctx: Ctx, spec: Obj) -> Obj:
        ra, nra = self._attributes(info, spec)
        if nra is not None:
            raise errors.invalid_object(info.kind, "", [errors.forbidden(
                "spec.nonResourceAttributes", "disallowed on this kind of request")], group=info.group)
        assert ra is not None
        p = "spec.resourceAttributes"
        if _str(ra, "namespace", p) not in ("", ctx.namespace):
            raise errors.invalid_object(info.kind, "", [errors.invalid(
                f"{p}.namespace", ra["namespace"], "must match namespace of the request")], group=info.group)
        if _str(ra, "tenant", p) not in ("", ctx.tenant):
            raise errors.invalid_object(info.kind, "", [errors.invalid(
                f"{p}.tenant", ra["tenant"], "must match tenant of the request")], group=info.group)
        spec["resourceAttributes"] = ra = {**ra, "namespace": ctx.namespace}
        subject = self._subject(info, ctx, spec)
        return await self.decide(subject, {**ra, "tenant": ctx.tenant}, None, ctx.tenant)

    async def _self_rules(self, info: ResourceInfo, ctx: Ctx, spec: Obj) -> Obj:
        namespace = _str(spec, "namespace", "spec")
        rules_for = getattr(self.authorizer, "rules_for", None)
        if rules_for is None:
            return {"resourceRules": [], "nonResourceRules": [], "incomplete": True,
                    "evaluationError": "the authorizer cannot list rules"}
        resources, urls, incomplete, error = rules_for(ctx.user, ctx.tenant, namespace)
        status: Obj = {"resourceRules": resources, "nonResourceRules": urls, "incomplete": incomplete}
        if error:
            status["evaluationError"] = error
        return status

    # -- authentication reviews ---------------------------------------------------------

    async def _self(self, info: ResourceInfo, ctx: Ctx, spec: Obj) -> Obj:
        return {"userInfo": user_info(ctx.user)}

    def _token_authenticators(self) -> list[Any]:
        members = getattr(self.authenticator, "authenticators", None)
        candidates = members if members is not None else [self.authenticator]
        return [a for a in candidates if hasattr(a, "authenticate_token")]

    async def _token(self, info: ResourceInfo, ctx: Ctx, spec: Obj) -> Obj:
        token = _str(spec, "token", "spec")
        if not token:
            raise errors.bad_request("token is required for TokenReview")
        wanted = _strings(spec.get("audiences"), "spec.audiences")
        audiences = [a for a in wanted if a in self.api_audiences] if wanted else list(self.api_audiences)
        failed: Obj = {"authenticated": False, "user": {}, "error": "invalid bearer token"}
        if wanted and not audiences:
            return failed | {"error": "token audiences are invalid for the target audiences"}
        for authenticator in self._token_authenticators():
            try:
                # Bound service-account tokens name their audiences: the review's, or the API server's.
                found = (authenticator.authenticate_token(token, audiences) if hasattr(authenticator, "api_audiences")
                         else authenticator.authenticate_token(token))
                if inspect.isawaitable(found):
                    found = await found
            except errors.APIError as exc:
                if exc.code != 401:
                    raise
                continue
            if found is None:
                continue
            user: UserInfo = found
            if AUTHENTICATED not in user.groups:
                user = UserInfo(user.name, user.tenant, (*user.groups, AUTHENTICATED), user.uid, user.extra)
            status: Obj = {"authenticated": True, "user": user_info(user)}
            if audiences:
                status["audiences"] = audiences
            return status
        return failed


__all__ = ["KINDS", "TENANT_EXTRA", "Reviews", "is_review", "user_info"]
