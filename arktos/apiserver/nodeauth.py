"""The node authorizer: a node agent may touch what its own pods need, nothing more.

RBAC cannot say "the secrets of the pods bound to this node", so, as
Kubernetes does, node identities (`system:node:<name>` in group
`system:nodes`, of the system tenant) are decided here from a graph kept in
step with the watch cache:

    node -> pods bound to it -> secrets, configmaps, PVCs, service accounts
    node -> actions (Arktos VM actions) whose spec.nodeName is the node

The graph is reference-counted per (node, kind, tenant, namespace, name), so a
decision is one dict lookup and a pod's deletion withdraws exactly what it
brought.  Pods can be in any tenant: a node agent runs pods of every tenant
partition.  A pod's references are read from its JSON only when it becomes
bound to a node: volumes, env and service account are immutable afterwards,
so the frequent status updates cost no parsing.

Anything this authorizer does not cover gets "no opinion" (not allowed), so
a union with RBAC can still decide.  Like Kubernetes' NodeRestriction
admission, a node's create of its own Node object cannot be checked here
(the name is in the body): admission has to.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from arktos.api.tenancy import SYSTEM_TENANT
from arktos.apiserver.auth import Attributes, UserInfo
from arktos.apiserver.cache import CacheManager, Entry
from arktos.apiserver.cachefeed import CacheFeed, key_parts

NODE_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
NODE_LEASE_NAMESPACE = "kube-node-lease"
NO_OPINION = "no opinion"
COORDINATION = "coordination.k8s.io"

# Kinds a pod refers to and a node may then read (etcd resource names).
SECRETS, CONFIGMAPS, PVCS, SERVICEACCOUNTS = "secrets", "configmaps", "persistentvolumeclaims", "serviceaccounts"
REFERENCED_KINDS = frozenset({SECRETS, CONFIGMAPS, PVCS, SERVICEACCOUNTS})

Ref = tuple[str, str]  # (kind, name); tenant and namespace are the pod's

# Volume sources that name a secret, as Kubernetes' VisitPodSecretNames lists them.
_SECRET_REF_SOURCES = ("cephfs", "cinder", "flexVolume", "rbd", "scaleIO", "storageos", "iscsi")


def node_name(attrs: Attributes) -> str | None:
    """The node an identity speaks for, or None when it is not a node of the system tenant."""
    user = attrs.user
    if user.tenant != SYSTEM_TENANT or not user.name.startswith(NODE_PREFIX) or NODES_GROUP not in user.groups:
        return None
    name = user.name[len(NODE_PREFIX):]
    return name or None


def _name(d: Any, key: str = "name") -> str:
    if isinstance(d, dict):
        v = d.get(key)
        if isinstance(v, str):
            return v
    return ""


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def pod_references(pod: dict[str, Any]) -> set[Ref]:
    """Every secret, configmap, PVC and service account a pod's spec names."""
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return set()
    refs: set[Ref] = set()

    def add(kind: str, name: str) -> None:
        if name:
            refs.add((kind, name))

    add(SERVICEACCOUNTS, _name(spec, "serviceAccountName") or _name(spec, "serviceAccount"))
    for s in _list(spec.get("imagePullSecrets")):
        add(SECRETS, _name(s))
    containers = [*_list(spec.get("containers")), *_list(spec.get("initContainers")),
                  *_list(spec.get("ephemeralContainers"))]
    vm = spec.get("virtualMachine")
    if isinstance(vm, dict):  # Arktos: a VM pod is one VM instead of containers
        containers.append(vm)
    for c in containers:
        if not isinstance(c, dict):
            continue
        for src in _list(c.get("envFrom")):
            if isinstance(src, dict):
                add(SECRETS, _name(src.get("secretRef")))
                add(CONFIGMAPS, _name(src.get("configMapRef")))
        for env in _list(c.get("env")):
            vf = env.get("valueFrom") if isinstance(env, dict) else None
            if isinstance(vf, dict):
                add(SECRETS, _name(vf.get("secretKeyRef")))
                add(CONFIGMAPS, _name(vf.get("configMapKeyRef")))
    pod_name = _name(pod.get("metadata"))
    for vol in _list(spec.get("volumes")):
        if not isinstance(vol, dict):
            continue
        add(SECRETS, _name(vol.get("secret"), "secretName"))
        add(CONFIGMAPS, _name(vol.get("configMap")))
        add(PVCS, _name(vol.get("persistentVolumeClaim"), "claimName"))
        if isinstance(vol.get("ephemeral"), dict) and pod_name:
            add(PVCS, f"{pod_name}-{_name(vol)}")  # the claim a generic ephemeral volume gets
        projected = vol.get("projected")
        if isinstance(projected, dict):
            for src in _list(projected.get("sources")):
                if isinstance(src, dict):
                    add(SECRETS, _name(src.get("secret")))
                    add(CONFIGMAPS, _name(src.get("configMap")))
        for source in _SECRET_REF_SOURCES:
            add(SECRETS, _name(_dig(vol, source, "secretRef")))
        add(SECRETS, _name(vol.get("azureFile"), "secretName"))
        add(SECRETS, _name(_dig(vol, "csi", "nodePublishSecretRef")))
    return refs


def _dig(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


class _PodRec:
    __slots__ = ("node", "refs")

    def __init__(self, node: str, refs: frozenset[Ref]) -> None:
        self.node = node
        self.refs = refs


class NodeGraph:
    """node -> pods -> referenced objects, and node -> actions, by reference counts."""

    def __init__(self) -> None:
        self.pods: dict[tuple[str, str, str], _PodRec] = {}  # (tenant, ns, name) -> bound pod
        self.actions: dict[tuple[str, str, str], str] = {}  # (tenant, ns, name) -> node
        # (node, kind, tenant, namespace, name) -> number of the node's pods referring to it
        self.refs: dict[tuple[str, str, str, str, str], int] = {}

    def clear(self) -> None:
        self.pods.clear()
        self.actions.clear()
        self.refs.clear()

    def _count(self, pod_key: tuple[str, str, str], rec: _PodRec, delta: int) -> None:
        tenant, ns, _ = pod_key
        refs = self.refs
        for kind, name in rec.refs:
            k = (rec.node, kind, tenant, ns, name)
            n = refs.get(k, 0) + delta
            if n > 0:
                refs[k] = n
            else:
                refs.pop(k, None)

    def set_pod(self, pod_key: tuple[str, str, str], node: str, entry: Entry | None) -> None:
        """Record where a pod is bound (node "" = nowhere); `entry` supplies the spec when needed."""
        old = self.pods.get(pod_key)
        if old is not None and old.node == node:
            return  # the spec a node may read by cannot change while the binding stays
        if old is not None:
            self._count(pod_key, old, -1)
            del self.pods[pod_key]
        if not node or entry is None:
            return
        try:
            obj = orjson.loads(entry.raw)
        except orjson.JSONDecodeError:
            obj = None
        refs = frozenset(pod_references(obj)) if isinstance(obj, dict) else frozenset()
        rec = self.pods[pod_key] = _PodRec(node, refs)
        self._count(pod_key, rec, +1)

    def set_action(self, key: tuple[str, str, str], node: str) -> None:
        if node:
            self.actions[key] = node
        else:
            self.actions.pop(key, None)

    def pods_of(self, node: str) -> Iterator[tuple[str, str, str]]:
        """For tests and debugging; decisions never scan."""
        return (k for k, rec in self.pods.items() if rec.node == node)


class NodeAuthorizer:
    """Decides for node identities only; see the module docstring."""

    def __init__(self, caches: CacheManager) -> None:
        self.graph = NodeGraph()
        self.feed = CacheFeed(caches, ("pods", "actions"), self._on_event, self.graph.clear)

    def start(self) -> bool:
        return self.feed.sync()

    def stop(self) -> None:
        self.feed.detach()

    def _on_event(self, resource: str, new: Entry | None, old: Entry | None) -> None:
        entry = new if new is not None else old
        if entry is None:
            return
        parts = key_parts(entry.key)
        if len(parts) != 3:
            return
        key = (parts[0], parts[1], parts[2])
        node = new.fields.get("spec.nodeName", "") if new is not None else ""
        if resource == "pods":
            self.graph.set_pod(key, node or "", new)
        else:
            self.graph.set_action(key, node or "")

    def rules_for(self, user: UserInfo, tenant: str, namespace: str) -> tuple[list[dict], list[dict], bool, str]:
        """A node's permissions follow its pods and cannot be listed as rules (as in Kubernetes)."""
        if node_name(Attributes(user, "", tenant, namespace, "", "", "", "", "")) is not None:
            return [], [], True, "node authorizer does not support user rule resolution"
        return [], [], False, ""

    async def authorize(self, attrs: Attributes) -> tuple[bool, str]:
        return self.decide(attrs)

    def decide(self, attrs: Attributes) -> tuple[bool, str]:
        node = node_name(attrs)
        if node is None or not attrs.resource_request or attrs.verb == "impersonate":
            return False, NO_OPINION  # a node never acts as anyone else (impersonation.py): RBAC alone decides
        group, resource, verb = attrs.group, attrs.resource, attrs.verb
        if group == COORDINATION:
            return self._lease(node, attrs) if resource == "leases" else (False, NO_OPINION)
        if group:
            return False, NO_OPINION
        if resource == "nodes":
            return self._node(node, attrs)
        if resource == "events":
            if verb in ("create", "update", "patch") and not attrs.subresource:
                return True, ""
            return False, NO_OPINION
        if resource == "services" and verb in ("get", "list", "watch") and not attrs.subresource:
            return True, ""  # Kubernetes' node rules: kubelet reads Services for its pods' env (KUBERNETES_SERVICE_*)
        if not self.feed.sync():
            return False, "node graph is not loaded yet"
        if resource == "pods":
            return self._pod(node, attrs)
        if resource == "actions":
            return self._action(node, attrs)
        if resource == SERVICEACCOUNTS and attrs.subresource == "token":
            # Tokens for the accounts its pods run as (kubelet's projected token volumes); the API
            # server checks that the token is bound to one of this node's pods (arktos.apiserver.tokenrequest).
            if verb != "create" or not attrs.name:
                return False, NO_OPINION
            if (node, resource, attrs.tenant, attrs.namespace, attrs.name) in self.graph.refs:
                return True, ""
            return False, f'no relationship found between node "{node}" and this object'
        if resource in REFERENCED_KINDS:
            if verb != "get" or attrs.subresource or not attrs.name:
                return False, NO_OPINION
            if (node, resource, attrs.tenant, attrs.namespace, attrs.name) in self.graph.refs:
                return True, ""
            return False, f'no relationship found between node "{node}" and this object'
        return False, NO_OPINION

    def _node(self, node: str, attrs: Attributes) -> tuple[bool, str]:
        verb, sub, name = attrs.verb, attrs.subresource, attrs.name
        if sub not in ("", "status"):
            return False, NO_OPINION
        if not name:
            # Collections: registering (the name is in the body; admission checks it) and the
            # agent's informer on its own node (a metadata.name field selector we cannot see).
            if (verb == "create" and not sub) or verb in ("list", "watch"):
                return True, ""
            return False, NO_OPINION
        if name != node:
            return False, f'node "{node}" may not act on node "{name}"'
        if verb in ("get", "list", "watch", "update", "patch"):
            return True, ""
        return False, NO_OPINION

    def _lease(self, node: str, attrs: Attributes) -> tuple[bool, str]:
        if attrs.tenant != SYSTEM_TENANT or attrs.namespace != NODE_LEASE_NAMESPACE or attrs.subresource:
            return False, NO_OPINION
        if attrs.verb == "create" and not attrs.name:
            return True, ""
        if attrs.verb in ("get", "create", "update", "patch", "delete"):
            if attrs.name == node:
                return True, ""
            return False, f'node "{node}" may only use its own lease'
        return False, NO_OPINION

    def _pod(self, node: str, attrs: Attributes) -> tuple[bool, str]:
        verb, sub, name = attrs.verb, attrs.subresource, attrs.name
        if verb in ("list", "watch") and not sub and not name:
            return True, ""  # as the system:node role: the agent selects spec.nodeName itself
        if not name or sub not in ("", "status"):
            return False, NO_OPINION
        allowed = ("get", "update", "patch", "delete") if not sub else ("get", "update", "patch")
        if verb not in allowed and not (verb == "watch" and not sub):
            return False, NO_OPINION
        rec = self.graph.pods.get((attrs.tenant, attrs.namespace, name))
        if rec is not None and rec.node == node:
            return True, ""
        return False, f'pod is not bound to node "{node}"'

    def _action(self, node: str, attrs: Attributes) -> tuple[bool, str]:
        verb, sub, name = attrs.verb, attrs.subresource, attrs.name
        if verb in ("list", "watch") and not sub and not name:
            return True, ""  # the agent watches its actions with a spec.nodeName field selector
        if not name or sub not in ("", "status") or verb not in ("get", "update", "patch", "watch"):
            return False, NO_OPINION
        if self.graph.actions.get((attrs.tenant, attrs.namespace, name)) == node:
            return True, ""
        return False, f'action is not for node "{node}"'


__all__ = ["NODES_GROUP", "NODE_PREFIX", "NO_OPINION", "NodeAuthorizer", "NodeGraph", "node_name", "pod_references"]
