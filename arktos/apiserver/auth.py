"""Who is asking, and may they: the seams for authentication and authorization.

The request pipeline calls an `Authenticator` and an `Authorizer`; the
security layer plugs in certificate, token and RBAC implementations.  The
development mode (plain HTTP on loopback) authenticates everyone as the
system administrator, which is what `--insecure-port` has always meant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

from arktos.api.tenancy import SYSTEM_TENANT


@dataclass(frozen=True, slots=True)
class UserInfo:
    name: str
    tenant: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: dict[str, list[str]] = field(default_factory=dict)


@dataclass(slots=True)
class Attributes:
    """What an authorizer decides on, as Kubernetes' authorizer.Attributes."""

    user: UserInfo
    verb: str
    tenant: str
    namespace: str
    group: str
    version: str
    resource: str
    subresource: str
    name: str
    resource_request: bool = True
    path: str = ""


class Authenticator(Protocol):
    async def authenticate(self, request: web.Request) -> UserInfo | None: ...


class Authorizer(Protocol):
    """Decides one request.  An authorizer may also offer `rules_for(user, tenant, namespace)` ->
    (resource rules, non-resource rules, incomplete, error) for SelfSubjectRulesReview; one that does
    not makes the review's answer incomplete."""

    async def authorize(self, attrs: Attributes) -> tuple[bool, str]: ...


INSECURE_USER = UserInfo(
    "system:admin", SYSTEM_TENANT, ("system:masters", "system:authenticated"), uid="insecure-port"
)


class InsecureAuthenticator:
    """Everyone on the local-only development port is the system administrator."""

    async def authenticate(self, request: web.Request) -> UserInfo | None:
        return INSECURE_USER


class AlwaysAllow:
    async def authorize(self, attrs: Attributes) -> tuple[bool, str]:
        return True, ""

    def rules_for(self, user: UserInfo, tenant: str, namespace: str) -> tuple[list[dict], list[dict], bool, str]:
        """Everything, as a SelfSubjectRulesReview lists it."""
        return ([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                [{"verbs": ["*"], "nonResourceURLs": ["*"]}], False, "")
