"""The service-account controller: every namespace of every tenant has a `default` ServiceAccount.

Pods run as their namespace's `default` account unless they name another
(the API server's admission fills that in), so the account must exist; if
someone deletes it, it comes back.  Namespaces being deleted are left alone:
the server refuses new objects there, and the namespace controller is busy
removing them.
"""

from __future__ import annotations

from typing import Any

from arktos.api.errors import APIError
from arktos.controllers.base import Controller, builtin, is_gone, is_terminating_refusal
from arktos.controllers.namespace import is_deleting

__all__ = ["DEFAULT_SERVICE_ACCOUNT", "ServiceAccountController"]

Obj = dict[str, Any]
NAMESPACES = builtin("", "namespaces")
SERVICE_ACCOUNTS = builtin("", "serviceaccounts")
DEFAULT_SERVICE_ACCOUNT = "default"


class ServiceAccountController(Controller):
    name = "serviceaccount"

    def setup(self) -> None:
        self.namespaces = self.ctx.informers.informer(NAMESPACES)
        self.accounts = self.ctx.informers.informer(SERVICE_ACCOUNTS)
        self.namespaces.add_handler(on_add=self.enqueue, on_update=lambda _old, new: self.enqueue(new))
        self.accounts.add_handler(on_delete=self._account_gone)

    def _account_gone(self, sa: Obj) -> None:
        meta = sa.get("metadata") or {}
        if meta.get("name") == DEFAULT_SERVICE_ACCOUNT:
            self.enqueue("/".join(p for p in (meta.get("tenant"), meta.get("namespace")) if p))

    async def sync(self, key: str) -> None:
        ns = self.namespaces.get(key)
        if ns is None or is_deleting(ns):
            return
        meta = ns["metadata"]
        tenant, namespace = meta.get("tenant") or None, meta["name"]
        if self.accounts.get(f"{key}/{DEFAULT_SERVICE_ACCOUNT}") is not None:
            return
        body = {"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": DEFAULT_SERVICE_ACCOUNT, "namespace": namespace}}
        try:
            await self.client.create(SERVICE_ACCOUNTS, body, tenant=tenant, namespace=namespace)
        except APIError as exc:
            if exc.code == 409 or is_gone(exc) or is_terminating_refusal(exc):
                return  # exists already (our cache is behind), or the namespace is going
            raise
        self.log.info("created serviceaccount %s/%s", key, DEFAULT_SERVICE_ACCOUNT)
