"""User impersonation (`kubectl --as`, `--as-group`, `--as-uid`), tenant-aware.

Right after authentication, as Kubernetes' impersonation filter does, the
headers

    Impersonate-User: <name>            Impersonate-Uid: <uid>
    Impersonate-Group: <group>          (once per group)
    Impersonate-Extra-<key>: <value>    (once per value; the key lower-cased and
                                         percent-encoded, e.g. `%2F` for `/`)

replace the request's user, once the *caller* has been authorized, request by
request, for verb `impersonate` on

    users            name = the user                (core group)
    serviceaccounts  namespace + name               (core group), when the user
                                                    is system:serviceaccount:<ns>:<name>
    groups           name = each group              (core group)
    userextras/<key> name = each value              (authentication.k8s.io)
    uids             name = the uid                 (authentication.k8s.io)

Any denial is a 403 in Kubernetes' words (`users "bob" is forbidden: User
"alice" cannot impersonate resource "users" in API group "" at the cluster
scope`); groups, extras or a uid without Impersonate-User are a 400.  The
impersonated user is in `system:authenticated` (`system:anonymous`: in
`system:unauthenticated`) unless the groups asked for say otherwise; an
impersonated service account without Impersonate-Group gets
`system:serviceaccounts` and `system:serviceaccounts:<ns>`.  Nothing of the
caller carries over (not its groups, uid or extra).  We keep no audit log:
the caller and whom it acts as are logged at debug level.

Tenancy (ARKTOS.md section 2).  Identities are (tenant, name), so impersonating
names a user *of a tenant*:

* The impersonated user is of the caller's tenant, unless the request names
  another with the extra key `arktos.io/tenant` -- the key the review kinds
  already use (SubjectAccessReview's spec.extra, whoami's and TokenReview's
  extra), sent as `Impersonate-Extra-Arktos.io%2Ftenant: <tenant>` (a header
  name cannot hold `/`; `~1` is JSON Pointer's escape, not HTTP's).  kubectl
  has no flag for extras, but a kubeconfig user's `as-user-extra` sends it.
  Exactly one non-empty value, not `all`; anything else is a 400.
* The isolation rule comes first, before any authorizer and before the value
  is validated: only a system-tenant caller may name another tenant.  A tenant
  caller naming any tenant but its own (`all` and "" included) gets the same
  403 whatever that tenant holds or whether it exists, so a tenant
  user can never act as anyone outside its tenant.  Whatever spelling of the
  key reaches us (case, `%2f`, `%2e`), it is decoded before it is compared, so
  no spelling slips through as an ordinary extra.
* Every check is made in the impersonated user's tenant: a tenant user's
  bindings grant impersonation inside its tenant only (a tenant admin's `*`
  lets it be any user or group of its own tenant); a system-tenant caller is
  judged by the system tenant's ClusterRoleBindings, which grant in every
  tenant.  Naming a tenant also needs `impersonate` on
  `userextras/arktos.io/tenant` with that tenant's name, so an operator can
  give a helpdesk identity the system tenant's users and no one else.
* The tenant goes into UserInfo.tenant, not into extra (the reviews put it
  there for display).
* Names are taken as they are: `system:admin`, `system:node:n1` or the group
  `system:masters` impersonated in tenant T are T's identities of that name,
  which hold only what T's own bindings give them (RBAC's superuser and the
  node authorizer's nodes are system-tenant identities only).  No tenant
  prefix in names (`t:bob`): names with colons are common
  (`system:serviceaccount:ns:sa`), so such a prefix would be ambiguous.
* A caller without a tenant cannot impersonate.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from urllib.parse import unquote

from arktos.api import errors
from arktos.api.tenancy import ALL_TENANTS, may_access
from arktos.apiserver.auth import Attributes, Authorizer, UserInfo

log = logging.getLogger(__name__)

USER_HEADER = "Impersonate-User"
UID_HEADER = "Impersonate-Uid"
GROUP_HEADER = "Impersonate-Group"
EXTRA_PREFIX = "impersonate-extra-"
_PREFIX = "impersonate-"

AUTHN = "authentication.k8s.io"
TENANT_EXTRA = "arktos.io/tenant"
SA_PREFIX = "system:serviceaccount:"
SERVICE_ACCOUNTS = "system:serviceaccounts"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"

_DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*")


def requested(headers: Mapping[str, str]) -> bool:
    """Whether the request carries any impersonation header (cheap: runs on every request)."""
    return any(len(k) > 12 and k[:12].lower() == _PREFIX for k in headers)


def split_service_account(name: str) -> tuple[str, str] | None:
    """(namespace, name) of `system:serviceaccount:<ns>:<name>`, as Kubernetes' SplitUsername; else None."""
    if not name.startswith(SA_PREFIX):
        return None
    parts = name[len(SA_PREFIX):].split(":")
    if len(parts) != 2:
        return None
    ns, sa = parts
    if not _DNS_LABEL.fullmatch(ns) or len(sa) > 253 or not _DNS_SUBDOMAIN.fullmatch(sa):
        return None
    return ns, sa


def _values(headers, name: str) -> list[str]:
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return list(getall(name, []))
    value = headers.get(name)
    return [value] if value is not None else []


def _extra_key(encoded: str) -> str:
    """As Kubernetes: lower-cased, then percent-decoded; a malformed escape keeps the key as sent."""
    lowered = encoded.lower()
    try:
        return unquote(lowered, errors="strict")
    except UnicodeDecodeError:
        return lowered


def _forbidden(caller: UserInfo, resource: str, sub: str, group: str, namespace: str, name: str,
               reason: str = "") -> errors.APIError:
    """Kubernetes' responsewriters.Forbidden for the acting-as attributes."""
    what = f"{resource}/{sub}" if sub else resource
    where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    message = (f'{resource}{"." + group if group else ""} "{name}" is forbidden: User "{caller.name}" cannot '
               f'impersonate resource "{what}" in API group "{group}" {where}')
    if reason:
        message += f": {reason}"
    return errors.forbidden_error(message, resource, name, group)


async def impersonate(caller: UserInfo, headers, authorizer: Authorizer) -> UserInfo:
    """The user a request with impersonation headers acts as, once `caller` may be it; raises APIError."""
    users = [v for v in _values(headers, USER_HEADER) if v]
    uids = _values(headers, UID_HEADER)
    groups = _values(headers, GROUP_HEADER)
    extra: dict[str, list[str]] = {}
    for key, value in headers.items():
        if len(key) > len(EXTRA_PREFIX) and key[:len(EXTRA_PREFIX)].lower() == EXTRA_PREFIX:
            extra.setdefault(_extra_key(key[len(EXTRA_PREFIX):]), []).append(value)
    if not users:
        if not (groups or uids or extra):
            return caller  # an empty Impersonate-User, or some other Impersonate-* header: as Kubernetes, nothing
        asked = [h for h, v in ((GROUP_HEADER, groups), (UID_HEADER, uids)) if v] + [
            f"Impersonate-Extra-{k}" for k in extra]
        raise errors.bad_request(f"requested {', '.join(asked) or 'impersonation'} without impersonating a user")
    if len(users) > 1 or len(uids) > 1:
        raise errors.bad_request(f"only one {USER_HEADER} and one {UID_HEADER} may be given")
    name, uid = users[0], (uids[0] if uids else "")

    named = extra.pop(TENANT_EXTRA, None)
    # The isolation rule, before any authorizer and before the tenant is validated (a tenant caller learns
    # nothing from a 400 either): the answer is the same whatever the other tenant holds.
    if not all(may_access(caller.tenant, t) for t in (named or [caller.tenant])):
        raise errors.forbidden_error(
            f'users "{name}" is forbidden: User "{caller.name}" of tenant "{caller.tenant or "<none>"}" may '
            f'impersonate users of its own tenant only', "users", name)
    tenant = caller.tenant
    if named is not None:
        if len(named) != 1 or not named[0] or named[0] == ALL_TENANTS:
            raise errors.bad_request(f"Impersonate-Extra-{TENANT_EXTRA} must name exactly one tenant")
        tenant = named[0]

    # (resource, subresource, API group, namespace, name), in Kubernetes' order.
    checks: list[tuple[str, str, str, str, str]] = []
    sa = split_service_account(name)
    if sa is not None:
        checks.append(("serviceaccounts", "", "", sa[0], sa[1]))
    else:
        checks.append(("users", "", "", "", name))
    checks.extend(("groups", "", "", "", g) for g in groups)
    if named is not None:
        checks.append(("userextras", TENANT_EXTRA, AUTHN, "", tenant))
    for key, values in extra.items():
        checks.extend(("userextras", key, AUTHN, "", v) for v in values)
    if uid:
        checks.append(("uids", "", AUTHN, "", uid))
    for resource, sub, group, namespace, obj in checks:
        allowed, reason = await authorizer.authorize(Attributes(
            caller, "impersonate", tenant, namespace, group, "v1", resource, sub, obj))
        if not allowed:
            log.debug("%s of tenant %r may not impersonate %s %r in tenant %r: %s", caller.name, caller.tenant,
                      resource + (f"/{sub}" if sub else ""), obj, tenant, reason)
            raise _forbidden(caller, resource, sub, group, namespace, obj, reason)

    new_groups = list(dict.fromkeys(groups))
    if sa is not None and not groups:
        new_groups = [SERVICE_ACCOUNTS, f"{SERVICE_ACCOUNTS}:{sa[0]}"]
    if name != ANONYMOUS:
        if AUTHENTICATED not in new_groups and UNAUTHENTICATED not in new_groups:
            new_groups.append(AUTHENTICATED)
    elif UNAUTHENTICATED not in new_groups:
        new_groups.append(UNAUTHENTICATED)
    user = UserInfo(name, tenant, tuple(new_groups), uid, extra)
    log.debug("%s of tenant %r (groups %s) is acting as %s of tenant %r (groups %s)", caller.name, caller.tenant,
              ",".join(caller.groups), user.name, user.tenant, ",".join(user.groups))
    return user


__all__ = ["TENANT_EXTRA", "impersonate", "requested", "split_service_account"]
