"""The endpoints controller: each Service with a selector gets an Endpoints object of its pods.

As Kubernetes' endpoints controller: the pods in the Service's tenant and
namespace that its selector matches and that have an IP (`status.podIP`)
become addresses; ready pods go to `addresses`, the others to
`notReadyAddresses` (all to `addresses` with `publishNotReadyAddresses`);
pods being deleted and finished pods are left out.  Ports come from each
Service port's `targetPort`: a number is used as is, a name is looked up among
the pod's container ports (same protocol), and a pod that lacks the named port
is left out of that port's subset.  Addresses are grouped into subsets by
their port set, sorted, so an unchanged set of pods never causes a write.
A pod whose `spec.subdomain` is the Service's name gets its `spec.hostname` on
its address (the cluster DNS's `<hostname>.<svc>.<ns>.svc...` names).

A Service without a selector is left alone (its Endpoints are the user's);
when a Service goes, its Endpoints go with it.
"""

from __future__ import annotations

from typing import Any

from arktos.api.errors import APIError
from arktos.api.selectors import label_selector_from_set
from arktos.controllers._workloads import INDEXERS, NAMESPACE_INDEX, is_pod_ready, namespace_key
from arktos.controllers.base import Controller, builtin, is_gone, is_terminating_refusal

__all__ = ["EndpointsController", "endpoint_subsets"]

Obj = dict[str, Any]
SERVICES = builtin("", "services")
ENDPOINTS = builtin("", "endpoints")
PODS = builtin("", "pods")
HEADLESS_LABEL = "service.kubernetes.io/headless"


def _target_port(svc_port: Obj, pod: Obj) -> int | None:
    target = svc_port.get("targetPort")
    if target is None or target == "" or target == 0:
        target = svc_port.get("port")
    if isinstance(target, int) and not isinstance(target, bool):
        return target
    if isinstance(target, str):
        if target.isdigit():
            return int(target)
        protocol = svc_port.get("protocol") or "TCP"
        for c in (pod.get("spec") or {}).get("containers") or ():
            for p in c.get("ports") or ():
                if p.get("name") == target and (p.get("protocol") or "TCP") == protocol:
                    port = p.get("containerPort")
                    return port if isinstance(port, int) else None
    return None


def _address(pod: Obj, service: Obj) -> Obj:
    meta, spec = pod["metadata"], pod.get("spec") or {}
    addr: Obj = {"ip": pod["status"]["podIP"],
                 "targetRef": {"kind": "Pod", "namespace": meta.get("namespace"), "name": meta["name"],
                               "uid": meta.get("uid")}}
    if meta.get("tenant"):
        addr["targetRef"]["tenant"] = meta["tenant"]
    node = spec.get("nodeName")
    if node:
        addr["nodeName"] = node
    # A pod naming this Service as its subdomain is <hostname>.<service>.<ns>.svc... in DNS (StatefulSets' pods).
    if spec.get("hostname") and spec.get("subdomain") == (service.get("metadata") or {}).get("name"):
        addr["hostname"] = spec["hostname"]
    return addr


def _resolved_ports(ports: list[Obj], pod: Obj) -> list[Obj]:
    out = []
    for sp in ports:
        port = _target_port(sp, pod)
        if port is None:
            continue  # the pod has no such named port: it serves the others only
        entry: Obj = {"port": port, "protocol": sp.get("protocol") or "TCP"}
        if sp.get("name"):
            entry["name"] = sp["name"]
        if sp.get("appProtocol"):
            entry["appProtocol"] = sp["appProtocol"]
        out.append(entry)
    return sorted(out, key=lambda e: (e.get("name", ""), e["port"], e["protocol"]))


def endpoint_subsets(service: Obj, pods: list[Obj]) -> list[Obj]:
    """The Endpoints subsets for a Service and the pods its selector matched.

    Pods whose named target ports resolve to the same numbers share a subset
    (Kubernetes' RepackSubsets); a headless Service without ports gets one
    subset of bare addresses.
    """
    spec = service.get("spec") or {}
    ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    groups: dict[str, tuple[list[Obj], list[Obj], list[Obj]]] = {}  # port set -> (ports, ready, not ready)
    for pod in pods:
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        if not status.get("podIP") or meta.get("deletionTimestamp"):
            continue
        if status.get("phase") in ("Succeeded", "Failed"):
            continue
        resolved = _resolved_ports(ports, pod)
        if ports and not resolved:
            continue
        group = groups.setdefault(repr(resolved), (resolved, [], []))
        ready = publish_not_ready or is_pod_ready(pod)
        group[1 if ready else 2].append(_address(pod, service))
    subsets: list[Obj] = []
    for _, (subset_ports, ready_addrs, not_ready) in sorted(groups.items()):
        subset: Obj = {}
        if ready_addrs:
            subset["addresses"] = sorted(ready_addrs, key=lambda a: (a["ip"], a["targetRef"]["name"]))
        if not_ready:
            subset["notReadyAddresses"] = sorted(not_ready, key=lambda a: (a["ip"], a["targetRef"]["name"]))
        if subset_ports:
            subset["ports"] = subset_ports
        subsets.append(subset)
    return subsets


class EndpointsController(Controller):
    """Keeps each selector Service's Endpoints equal to its matching pods."""

    name = "endpoints"

    def setup(self) -> None:
        f = self.ctx.informers
        self.services = f.informer(SERVICES, indexers={NAMESPACE_INDEX: INDEXERS[NAMESPACE_INDEX]})
        self.endpoints = f.informer(ENDPOINTS)
        self.pods = f.informer(PODS, indexers={NAMESPACE_INDEX: INDEXERS[NAMESPACE_INDEX]})
        self.services.add_handler(on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n),
                                  on_delete=self.enqueue)
        self.endpoints.add_handler(on_delete=self._endpoints_deleted)
        self.pods.add_handler(on_add=self._pod_changed, on_update=self._pod_updated, on_delete=self._pod_changed)

    def _services_for(self, pod: Obj) -> list[Obj]:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        out = []
        for svc in self.services.by_index(NAMESPACE_INDEX, namespace_key(pod)):
            selector = (svc.get("spec") or {}).get("selector")
            if selector and label_selector_from_set(selector).matches(labels):
                out.append(svc)
        return out

    def _pod_changed(self, pod: Obj) -> None:
        for svc in self._services_for(pod):
            self.enqueue(svc)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        keys = {self._key(s) for s in self._services_for(new)}
        if (old["metadata"].get("labels") or {}) != (new["metadata"].get("labels") or {}):
            keys |= {self._key(s) for s in self._services_for(old)}
        for key in keys:
            self.enqueue(key)

    def _endpoints_deleted(self, ep: Obj) -> None:
        self.enqueue(ep)  # someone deleted managed Endpoints: put them back (or confirm they should be gone)

    @staticmethod
    def _key(obj: Obj) -> str:
        meta = obj.get("metadata") or {}
        return "/".join(p for p in (meta.get("tenant"), meta.get("namespace"), meta.get("name")) if p)

    async def sync(self, key: str) -> None:
        svc = self.services.get(key)
        parts = key.split("/")
        tenant, namespace, name = (parts[0], parts[1], parts[2]) if len(parts) == 3 else (None, parts[0], parts[-1])
        if svc is None:
            if self.endpoints.get(key) is not None:
                try:
                    await self.client.delete(ENDPOINTS, name, tenant=tenant, namespace=namespace)
                except APIError as exc:
                    if not is_gone(exc):
                        raise
                self.log.info("deleted endpoints %s: the service is gone", key)
            return
        selector = (svc.get("spec") or {}).get("selector")
        if not selector or svc["metadata"].get("deletionTimestamp"):
            return
        sel = label_selector_from_set(selector)
        pods = [p for p in self.pods.by_index(NAMESPACE_INDEX, namespace_key(svc))
                if sel.matches((p.get("metadata") or {}).get("labels") or {})]
        subsets = endpoint_subsets(svc, pods)
        labels = dict(svc["metadata"].get("labels") or {})
        if (svc.get("spec") or {}).get("clusterIP") == "None":
            labels[HEADLESS_LABEL] = ""
        current = self.endpoints.get(key)
        if current is not None and (current.get("subsets") or []) == subsets and (
                (current["metadata"].get("labels") or {}) == labels):
            return
        if current is None:
            body = {"apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": name, "namespace": namespace, **({"labels": labels} if labels else {})},
                    "subsets": subsets}
            try:
                await self.client.create(ENDPOINTS, body, tenant=tenant, namespace=namespace)
            except APIError as exc:
                if is_terminating_refusal(exc) or is_gone(exc):
                    return
                raise  # 409: it exists after all (our cache is behind); the retry updates it
        else:
            body = {**current, "subsets": subsets,
                    "metadata": {**current["metadata"], "labels": labels}}
            try:
                await self.client.update(ENDPOINTS, body)
            except APIError as exc:
                if is_gone(exc):
                    self.enqueue(key)  # deleted meanwhile: create it again
                    return
                if exc.code != 409:
                    raise
                # Our cache has not caught up with our previous write: its event brings this key back.
                self.log.debug("endpoints %s: write lost to a newer version; syncing again", key)
                self.enqueue_after(key, 0.1)
                return
        ready = sum(len(s.get("addresses") or []) for s in subsets)
        not_ready = sum(len(s.get("notReadyAddresses") or []) for s in subsets)
        self.log.info("endpoints %s: %d ready, %d not ready", key, ready, not_ready)
