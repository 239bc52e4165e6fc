"""TokenRequest: `POST .../serviceaccounts/{name}/token` issues a bound service-account token.

What kubelet asks for each projected `serviceAccountToken` volume source, and
what `kubectl create token` asks for.  The token is a JWT signed with the API
server's `--service-account-signing-key-file`, carrying the account's tenant
(Arktos), `aud` (the request's audiences; the API server's own when none are
asked for), `exp` (expirationSeconds, at least 600, default 3600) and, bound
to a Pod, the pod's name and uid: the authenticator turns it away once that
pod is gone, as it does once the account is gone or recreated.

Checks, as Kubernetes makes them: the account exists in the URL's tenant and
namespace; a bound object is a Pod of the same tenant and namespace, with the
uid given (409 otherwise) and running as this very account (400 otherwise);
and a node (`system:node:<name>`, which the node authorizer lets create tokens
for the accounts its pods use) may only bind tokens to pods bound to itself,
and only to pods (NodeRestriction's rule).  Nothing is stored.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

from arktos.api import errors
from arktos.api.satoken import issue_service_account_token
from arktos.apiserver.nodeauth import node_name

Obj = dict[str, Any]
DEFAULT_EXPIRATION = 3600
MIN_EXPIRATION = 600
MAX_EXPIRATION = 1 << 32


class TokenIssuer:
    """Signs bound tokens; the handler hands it the request once routing and authorization are done."""

    def __init__(self, signing_key_file: str, issuer: str, api_audiences: list[str]) -> None:
        with open(signing_key_file, "rb") as f:
            self.key = f.read()
        self.issuer = issuer
        self.api_audiences = list(api_audiences) or [issuer]

    async def create(self, body: Obj, ctx: Any, sa_name: str, accounts: Any, pods: Any) -> Obj:
        """The answered TokenRequest (its status holds the token); `accounts`/`pods` are the stores."""
        if body.get("kind") not in (None, "TokenRequest"):
            raise errors.bad_request(f"expected a TokenRequest, not {body.get('kind')!r}")
        spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
        audiences = spec.get("audiences") or []
        if not isinstance(audiences, list) or not all(isinstance(a, str) and a for a in audiences):
            raise errors.invalid_object("TokenRequest", sa_name, [errors.invalid(
                "spec.audiences", audiences, "must be a list of non-empty strings")], "authentication.k8s.io")
        expiration = spec.get("expirationSeconds", DEFAULT_EXPIRATION)
        if not isinstance(expiration, int) or isinstance(expiration, bool) or not (
                MIN_EXPIRATION <= expiration <= MAX_EXPIRATION):
            raise errors.invalid_object("TokenRequest", sa_name, [errors.invalid(
                "spec.expirationSeconds", expiration,
                "may not specify a duration less than 10 minutes" if isinstance(expiration, int)
                and expiration < MIN_EXPIRATION else "must be an integer from 600 to 2^32")])
        sa = await accounts.get(ctx, sa_name)  # 404 when the account does not exist
        ref = spec.get("boundObjectRef")
        node = node_name(_attrs(ctx))
        pod_binding: tuple[str, str] | None = None
        if ref:
            if not isinstance(ref, dict) or ref.get("kind") != "Pod" or ref.get("apiVersion", "v1") != "v1":
                raise errors.bad_request("cannot bind a token to anything but a Pod (kind Pod, apiVersion v1)")
            pod = await pods.get(ctx, str(ref.get("name") or ""))
            meta, pspec = pod.get("metadata") or {}, pod.get("spec") or {}
            if ref.get("uid") and ref["uid"] != meta.get("uid"):
                raise errors.conflict("pods", meta.get("name", ""), "", (
                    f"the UID in the bound object reference ({ref['uid']}) does not match the UID in record "
                    f"({meta.get('uid')}). The object might have been deleted and then recreated"))
            if (pspec.get("serviceAccountName") or "default") != sa_name:
                raise errors.bad_request(f'cannot bind token for serviceaccount "{sa_name}" to pod running with '
                                         f'different serviceaccount name.')
            if node is not None and pspec.get("nodeName") != node:
                raise errors.forbidden_error(f'node "{node}" can only create tokens for pods bound to itself',
                                             "serviceaccounts", sa_name)
            pod_binding = (meta.get("name", ""), meta.get("uid", ""))
        elif node is not None:
            raise errors.forbidden_error(f'node "{node}" can only create tokens bound to a pod', "serviceaccounts",
                                         sa_name)
        now = int(time.time())
        token = issue_service_account_token(
            self.key, self.issuer, ctx.tenant, ctx.namespace, sa_name, (sa.get("metadata") or {}).get("uid", ""),
            expires_in=expiration, audiences=audiences or self.api_audiences, pod=pod_binding, now=now)
        expires = datetime.datetime.fromtimestamp(now + expiration, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": sa_name, "namespace": ctx.namespace, "tenant": ctx.tenant,
                             "creationTimestamp": None},
                "spec": {"audiences": audiences or self.api_audiences, "expirationSeconds": expiration,
                         **({"boundObjectRef": ref} if ref else {})},
                "status": {"token": token, "expirationTimestamp": expires}}


def _attrs(ctx: Any) -> Any:
    from arktos.apiserver.auth import Attributes

    return Attributes(ctx.user, "", ctx.tenant, ctx.namespace, "", "", "", "", "")

