"""The root CA publisher: every namespace of every tenant has a `kube-root-ca.crt` ConfigMap.

Kubernetes' root-ca-cert-publisher: the ConfigMap holds `ca.crt`, the CA that
signed the API server's serving certificate (`--root-ca-file`), so in-cluster
clients can verify the API server; the projected `kube-api-access` volume
kubelet mounts into pods takes its `ca.crt` from it.  Deleted, it comes back;
changed, it is put back; a namespace being deleted is left alone.  Without
`--root-ca-file` there is nothing to publish and the controller does not run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arktos.api.errors import APIError
from arktos.controllers.base import (
    Controller,
    ControllerContext,
    ControllerOptions,
    builtin,
    is_gone,
    is_terminating_refusal,
)
from arktos.controllers.namespace import is_deleting

__all__ = ["ROOT_CA_CONFIGMAP", "RootCACertPublisher"]

Obj = dict[str, Any]
NAMESPACES = builtin("", "namespaces")
CONFIGMAPS = builtin("", "configmaps")
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints "
               "such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across "
               "distributions of Kubernetes clusters.")


class RootCACertPublisher(Controller):
    name = "root-ca-cert-publisher"

    @classmethod
    def disabled_reason(cls, options: ControllerOptions) -> str | None:
        if not options.root_ca_file:
            return "no --root-ca-file to publish"
        return None

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        assert ctx.options.root_ca_file, "disabled_reason keeps the controller from running without a CA"
        self.ca = Path(ctx.options.root_ca_file).read_text()

    def setup(self) -> None:
        self.namespaces = self.ctx.informers.informer(NAMESPACES)
        self.configmaps = self.ctx.informers.informer(CONFIGMAPS, field_selector=f"metadata.name={ROOT_CA_CONFIGMAP}")
        self.namespaces.add_handler(on_add=self.enqueue, on_update=lambda _old, new: self.enqueue(new))
        self.configmaps.add_handler(on_update=lambda _old, new: self._changed(new), on_delete=self._changed)

    def _changed(self, cm: Obj) -> None:
        meta = cm.get("metadata") or {}
        if meta.get("name") == ROOT_CA_CONFIGMAP:
            self.enqueue("/".join(p for p in (meta.get("tenant"), meta.get("namespace")) if p))

    async def sync(self, key: str) -> None:
        ns = self.namespaces.get(key)
        if ns is None or is_deleting(ns):
            return
        tenant, namespace = ns["metadata"].get("tenant") or None, ns["metadata"]["name"]
        have = self.configmaps.get(f"{key}/{ROOT_CA_CONFIGMAP}")
        data = {"ca.crt": self.ca}
        try:
            if have is None:
                body = {"apiVersion": "v1", "kind": "ConfigMap", "data": data, "metadata": {
                    "name": ROOT_CA_CONFIGMAP, "namespace": namespace,
                    "annotations": {"kubernetes.io/description": DESCRIPTION}}}
                await self.client.create(CONFIGMAPS, body, tenant=tenant, namespace=namespace)
                self.log.info("published %s in %s", ROOT_CA_CONFIGMAP, key)
            elif have.get("data") != data or have.get("binaryData"):
                body = {**have, "data": data}
                body.pop("binaryData", None)
                await self.client.update(CONFIGMAPS, body, tenant=tenant, namespace=namespace)
                self.log.info("put %s in %s back", ROOT_CA_CONFIGMAP, key)
        except APIError as exc:
            if exc.code == 409 or is_gone(exc) or is_terminating_refusal(exc):
                return  # our cache is behind, or the namespace is going: the informer brings us back
            raise
