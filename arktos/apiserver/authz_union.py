"""Several authorizers in a row: the first that allows wins.

Kubernetes chains authorizers the same way (`--authorization-mode=Node,RBAC`):
the node authorizer speaks only for node identities and has no opinion on
everything else, so RBAC still decides for them.  None of our authorizers
denies outright, so "not allowed" from one simply passes to the next; the
reasons of those that had one are kept for the Forbidden message.
"""

from __future__ import annotations

from collections.abc import Iterable

from arktos.apiserver.auth import Attributes, Authorizer, UserInfo
from arktos.apiserver.nodeauth import NO_OPINION


class UnionAuthorizer:
    def __init__(self, authorizers: Iterable[Authorizer]) -> None:
        self.authorizers = tuple(authorizers)

    async def authorize(self, attrs: Attributes) -> tuple[bool, str]:
        reasons: list[str] = []
        for authorizer in self.authorizers:
            allowed, reason = await authorizer.authorize(attrs)
            if allowed:
                return True, reason
            if reason and reason != NO_OPINION:
                reasons.append(reason)
        return False, "; ".join(reasons)

    def rules_for(self, user: UserInfo, tenant: str, namespace: str) -> tuple[list[dict], list[dict], bool, str]:
        """The union of what each member lists; incomplete when one of them cannot list its rules."""
        resources: list[dict] = []
        urls: list[dict] = []
        incomplete = False
        problems: list[str] = []
        for authorizer in self.authorizers:
            rules_for = getattr(authorizer, "rules_for", None)
            if rules_for is None:
                incomplete = True
                continue
            res, non_res, partial, error = rules_for(user, tenant, namespace)
            resources.extend(res)
            urls.extend(non_res)
            incomplete = incomplete or partial
            if error:
                problems.append(error)
        return resources, urls, incomplete, "; ".join(problems)

    def start(self) -> None:
        """Start the members that follow the watch cache (call once the caches are running)."""
        for authorizer in self.authorizers:
            start = getattr(authorizer, "start", None)
            if start is not None:
                start()


__all__ = ["UnionAuthorizer"]
