"""The token controller: each ServiceAccount gets a token Secret, and loses it with the account.

For every ServiceAccount it keeps one Secret of type
`kubernetes.io/service-account-token`, annotated with the account's name and
uid, holding `token` (a JWT signed with the service-account private key,
carrying the account's tenant, as Arktos requires), `namespace`, and
`ca.crt` when a root CA is configured, and lists it in the account's
`secrets`.  The JWT names its Secret, so the API server's service-account
authenticator accepts it only while that Secret and the account (same uid)
exist.

When the account goes, its token Secrets are deleted: the authenticator
already rejects the tokens once the account is gone, and deleting the
Secrets leaves nothing that looks like a credential behind.  Secrets of an
earlier account of the same name (another uid) are deleted too, and a token
Secret someone created by hand with the annotations but no token is filled
in, as Kubernetes' tokens controller does.

Without `--service-account-private-key-file` there is nothing to sign with,
so the controller does not run (kube-controller-manager behaves the same).
"""

from __future__ import annotations

import base64
import secrets as pyrandom
import string
import time
from pathlib import Path
from typing import Any

from arktos.api.errors import APIError
from arktos.api.satoken import issue_service_account_token
from arktos.controllers.base import Controller, ControllerContext, ControllerOptions, builtin, is_gone
from arktos.controllers.base import is_terminating_refusal as _refused

__all__ = ["SA_NAME_ANNOTATION", "SA_TOKEN_TYPE", "SA_UID_ANNOTATION", "TokenController"]

Obj = dict[str, Any]
SERVICE_ACCOUNTS = builtin("", "serviceaccounts")
SECRETS = builtin("", "secrets")
SA_TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_UID_ANNOTATION = "kubernetes.io/service-account.uid"
EXPECTATION_TTL = 60.0  # seconds a Secret we created may take to show up in our cache
_SUFFIX_CHARS = string.ascii_lowercase + string.digits


def _account_index(secret: Obj) -> list[str]:
    """Token Secrets by `tenant/namespace/account` of the account they belong to."""
    meta = secret.get("metadata") or {}
    account = (meta.get("annotations") or {}).get(SA_NAME_ANNOTATION)
    if not account:
        return []
    return ["/".join(p for p in (meta.get("tenant"), meta.get("namespace"), account) if p)]


def _b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


class TokenController(Controller):
    name = "token"

    @classmethod
    def disabled_reason(cls, options: ControllerOptions) -> str | None:
        if not options.service_account_private_key_file:
            return "no --service-account-private-key-file to sign tokens with"
        return None

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        key_file = ctx.options.service_account_private_key_file
        assert key_file, "disabled_reason keeps the controller from running without a key"
        self.private_key = Path(key_file).read_bytes()
        self.issuer = ctx.options.service_account_issuer
        self.root_ca = Path(ctx.options.root_ca_file).read_bytes() if ctx.options.root_ca_file else None
        # Secrets we created and may not see in the informer yet: key -> (account uid, secret name, when).
        self._expected: dict[str, tuple[str, str, float]] = {}

    def setup(self) -> None:
        self.accounts = self.ctx.informers.informer(SERVICE_ACCOUNTS)
        self.secrets = self.ctx.informers.informer(SECRETS, field_selector=f"type={SA_TOKEN_TYPE}",
                                                   indexers={"account": _account_index})
        self.accounts.add_handler(on_add=self.enqueue, on_update=lambda _old, new: self.enqueue(new),
                                  on_delete=self.enqueue)
        self.secrets.add_handler(on_add=self._secret_changed, on_update=lambda _old, new: self._secret_changed(new),
                                 on_delete=self._secret_changed)

    def _secret_changed(self, secret: Obj) -> None:
        for key in _account_index(secret):
            self.enqueue(key)

    async def sync(self, key: str) -> None:
        tenant, namespace, account = key.split("/", 2)
        sa = self.accounts.get(key)
        tokens = self.secrets.by_index("account", key)
        if sa is None or sa["metadata"].get("deletionTimestamp"):
            self._expected.pop(key, None)
            for s in tokens:
                await self._delete_secret(s, f"its serviceaccount {key} was deleted")
            return
        uid = sa["metadata"].get("uid", "")
        usable: list[str] = []
        stale: list[str] = []
        for s in tokens:
            meta = s["metadata"]
            owner_uid = (meta.get("annotations") or {}).get(SA_UID_ANNOTATION) or ""
            if owner_uid and owner_uid != uid:
                await self._delete_secret(s, f"it belongs to an earlier serviceaccount {key} (uid {owner_uid})")
                stale.append(meta["name"])
            elif meta.get("deletionTimestamp"):
                continue
            elif (s.get("data") or {}).get("token") or await self._fill(s, tenant, namespace, account, uid):
                usable.append(meta["name"])
        if not usable:
            usable.extend(await self._expected_secret(key, uid, tenant, namespace))
        if not usable:
            name = await self._create(tenant, namespace, account, uid)
            if name is None:
                return  # the namespace is going away
            self._expected[key] = (uid, name, time.monotonic())
            usable.append(name)
        await self._reference(sa, usable, stale)

    # -- secrets ---------------------------------------------------------------------

    def _data(self, tenant: str, namespace: str, account: str, uid: str, secret_name: str) -> dict[str, str]:
        token = issue_service_account_token(self.private_key, self.issuer, tenant, namespace, account, uid,
                                            secret_name=secret_name)
        data = {"token": _b64(token), "namespace": _b64(namespace)}
        if self.root_ca is not None:
            data["ca.crt"] = _b64(self.root_ca)
        return data

    async def _create(self, tenant: str, namespace: str, account: str, uid: str) -> str | None:
        base = f"{account[:240]}-token-"
        for _ in range(5):
            name = base + "".join(pyrandom.choice(_SUFFIX_CHARS) for _ in range(5))
            body = {
                "apiVersion": "v1", "kind": "Secret", "type": SA_TOKEN_TYPE,
                "metadata": {"name": name, "namespace": namespace,
                             "annotations": {SA_NAME_ANNOTATION: account, SA_UID_ANNOTATION: uid}},
                "data": self._data(tenant, namespace, account, uid, name),
            }
            try:
                await self.client.create(SECRETS, body, tenant=tenant, namespace=namespace)
            except APIError as exc:
                if exc.code == 409:
                    continue  # name taken: another suffix
                if is_gone(exc) or _refused(exc):
                    return None
                raise
            self.log.info("created token secret %s/%s/%s for serviceaccount %s", tenant, namespace, name, account)
            return name
        raise RuntimeError(f"no free token secret name for {tenant}/{namespace}/{account} after 5 tries")

    async def _expected_secret(self, key: str, uid: str, tenant: str, namespace: str) -> list[str]:
        """The Secret we created for this account if it exists but our cache has not caught up."""
        expected = self._expected.get(key)
        if expected is None or expected[0] != uid or time.monotonic() - expected[2] > EXPECTATION_TTL:
            self._expected.pop(key, None)
            return []
        try:
            secret = await self.client.get(SECRETS, expected[1], tenant=tenant, namespace=namespace)
        except APIError as exc:
            if is_gone(exc):
                self._expected.pop(key, None)
                return []
            raise
        return [] if secret["metadata"].get("deletionTimestamp") else [expected[1]]

    async def _fill(self, secret: Obj, tenant: str, namespace: str, account: str, uid: str) -> bool:
        """Put a token into a token Secret created without one."""
        name = secret["metadata"]["name"]
        body = {**secret, "data": {**(secret.get("data") or {}), **self._data(tenant, namespace, account, uid, name)}}
        body["metadata"] = {**secret["metadata"],
                            "annotations": {**(secret["metadata"].get("annotations") or {}), SA_UID_ANNOTATION: uid}}
        try:
            await self.client.update(SECRETS, body, tenant=tenant, namespace=namespace)
        except APIError as exc:
            if is_gone(exc):
                return False
            raise
        self.log.info("filled in the token of secret %s/%s/%s", tenant, namespace, name)
        return True

    async def _delete_secret(self, secret: Obj, why: str) -> None:
        meta = secret["metadata"]
        try:
            await self.client.delete(SECRETS, meta["name"], tenant=meta.get("tenant"), namespace=meta.get("namespace"))
        except APIError as exc:
            if is_gone(exc):
                return
            raise
        self.log.info("deleted token secret %s/%s/%s: %s", meta.get("tenant"), meta.get("namespace"), meta["name"],
                      why)

    # -- the account's list of secrets ---------------------------------------------------

    async def _reference(self, sa: Obj, usable: list[str], stale: list[str]) -> None:
        refs = [r.get("name") for r in sa.get("secrets") or [] if isinstance(r, dict)]
        if all(n in refs for n in usable) and not any(n in refs for n in stale):
            return
        meta = sa["metadata"]
        tenant, namespace, name = meta.get("tenant"), meta.get("namespace"), meta["name"]
        try:
            fresh = await self.client.get(SERVICE_ACCOUNTS, name, tenant=tenant, namespace=namespace)
        except APIError as exc:
            if is_gone(exc):
                return
            raise
        if fresh["metadata"].get("uid") != meta.get("uid"):
            return  # replaced meanwhile: its own events bring it back here
        current = [r for r in fresh.get("secrets") or [] if isinstance(r, dict) and r.get("name") not in stale]
        names = {r.get("name") for r in current}
        fresh["secrets"] = current + [{"name": n} for n in usable if n not in names]
        try:
            await self.client.update(SERVICE_ACCOUNTS, fresh, tenant=tenant, namespace=namespace)
        except APIError as exc:
            if is_gone(exc):
                return
            raise  # 409: someone else wrote it; the retry reads it again
