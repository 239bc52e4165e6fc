"""The node authorizer: a node reaches its own node, lease, pods and what those pods use.

Pods and actions go through the real watch-cache path (`ResourceCache.apply`),
which is what feeds the authorizer's node graph in the API server.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from arktos.apiserver.auth import Attributes, UserInfo
from arktos.apiserver.nodeauth import NO_OPINION, NodeAuthorizer, pod_references
from tests.unit._feed import Cluster

Obj = dict[str, Any]
N1 = UserInfo("system:node:n1", "system", ("system:nodes", "system:authenticated"))
N2 = UserInfo("system:node:n2", "system", ("system:nodes", "system:authenticated"))


def pod(name: str, node: str = "", tenant: str = "acme", namespace: str = "web", **spec: Any) -> Obj:
    body: Obj = {"containers": [{"name": "c", "image": "nginx"}], **spec}
    if node:
        body["nodeName"] = node
    return {"kind": "Pod", "metadata": {"name": name, "namespace": namespace, "tenant": tenant}, "spec": body}


def action(name: str, node: str, tenant: str = "acme", namespace: str = "web") -> Obj:
    return {"kind": "Action", "metadata": {"name": name, "namespace": namespace, "tenant": tenant},
            "spec": {"nodeName": node, "podName": "vm", "rebootAction": {"delayInSeconds": 0}}}


def at(user: UserInfo, verb: str, resource: str, *, tenant: str = "acme", namespace: str = "", name: str = "",
       group: str = "", sub: str = "") -> Attributes:
    return Attributes(user, verb, tenant, namespace, group, "v1", resource, sub, name)


@pytest.fixture
def cluster() -> Cluster:
    return Cluster("pods", "actions")


@pytest.fixture
def authz(cluster: Cluster) -> NodeAuthorizer:
    a = NodeAuthorizer(cluster.caches)
    assert a.start()
    return a


def ok(a: NodeAuthorizer, attrs: Attributes) -> bool:
    return a.decide(attrs)[0]


def test_own_node_only(authz: NodeAuthorizer) -> None:
    for verb in ("get", "update", "patch", "watch"):
        assert ok(authz, at(N1, verb, "nodes", tenant="", name="n1"))
    assert ok(authz, at(N1, "update", "nodes", tenant="", name="n1", sub="status"))
    assert ok(authz, at(N1, "patch", "nodes", tenant="", name="n1", sub="status"))
    assert ok(authz, at(N1, "create", "nodes", tenant=""))
    assert ok(authz, at(N1, "list", "nodes", tenant=""))
    assert not ok(authz, at(N1, "get", "nodes", tenant="", name="n2"))
    assert not ok(authz, at(N1, "update", "nodes", tenant="", name="n2", sub="status"))
    assert not ok(authz, at(N1, "delete", "nodes", tenant="", name="n1"))
    assert not ok(authz, at(N1, "delete", "nodes", tenant=""))


def test_own_lease_only(authz: NodeAuthorizer) -> None:
    lease = {"group": "coordination.k8s.io", "tenant": "system", "namespace": "kube-node-lease"}
    for verb in ("get", "update", "delete"):
        assert ok(authz, at(N1, verb, "leases", name="n1", **lease))
    assert ok(authz, at(N1, "create", "leases", **lease))
    assert not ok(authz, at(N1, "update", "leases", name="n2", **lease))
    assert not ok(authz, at(N1, "list", "leases", **lease))
    assert not ok(authz, at(N1, "get", "leases", name="n1", group="coordination.k8s.io", tenant="acme",
                            namespace="kube-node-lease"))
    assert not ok(authz, at(N1, "get", "leases", name="n1", group="coordination.k8s.io", tenant="system",
                            namespace="default"))


def test_pods_bound_to_the_node(cluster: Cluster, authz: NodeAuthorizer) -> None:
    cluster.put(pod("mine", "n1"))
    cluster.put(pod("theirs", "n2"))
    cluster.put(pod("pending"))
    assert ok(authz, at(N1, "list", "pods"))
    assert ok(authz, at(N1, "watch", "pods", tenant="all"))
    for verb in ("get", "update", "patch", "delete"):
        assert ok(authz, at(N1, verb, "pods", namespace="web", name="mine"))
    assert ok(authz, at(N1, "update", "pods", namespace="web", name="mine", sub="status"))
    assert ok(authz, at(N1, "patch", "pods", namespace="web", name="mine", sub="status"))
    assert not ok(authz, at(N1, "get", "pods", namespace="web", name="theirs"))
    assert not ok(authz, at(N1, "update", "pods", namespace="web", name="theirs", sub="status"))
    assert not ok(authz, at(N1, "get", "pods", namespace="web", name="pending"))
    assert not ok(authz, at(N1, "create", "pods", namespace="web", name="mine", sub="binding"))
    assert not ok(authz, at(N1, "get", "pods", tenant="beta", namespace="web", name="mine"))
    assert ok(authz, at(N2, "get", "pods", namespace="web", name="theirs"))
    # Binding a pending pod gives it to its node.
    cluster.put(pod("pending", "n1"))
    assert ok(authz, at(N1, "get", "pods", namespace="web", name="pending"))
    cluster.delete(pod("pending", "n1"))
    assert not ok(authz, at(N1, "get", "pods", namespace="web", name="pending"))


def test_secrets_referenced_by_the_nodes_pods(cluster: Cluster, authz: NodeAuthorizer) -> None:
    spec = {
        "serviceAccountName": "runner",
        "imagePullSecrets": [{"name": "regcred"}],
        "volumes": [
            {"name": "v1", "secret": {"secretName": "tls"}},
            {"name": "v2", "configMap": {"name": "settings"}},
            {"name": "v3", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "v4", "projected": {"sources": [{"secret": {"name": "proj-s"}},
                                                     {"configMap": {"name": "proj-c"}}]}},
        ],
        "containers": [{"name": "c", "image": "nginx",
                        "envFrom": [{"secretRef": {"name": "env-s"}}, {"configMapRef": {"name": "env-c"}}],
                        "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "key-s", "key": "k"}}},
                                {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "key-c", "key": "k"}}}]}],
    }
    p = pod("app", "n1", **spec)
    cluster.put(p)
    web = {"namespace": "web"}
    for resource, name in (("secrets", "tls"), ("secrets", "regcred"), ("secrets", "proj-s"), ("secrets", "env-s"),
                           ("secrets", "key-s"), ("configmaps", "settings"), ("configmaps", "proj-c"),
                           ("configmaps", "env-c"), ("configmaps", "key-c"), ("persistentvolumeclaims", "data"),
                           ("serviceaccounts", "runner")):
        assert ok(authz, at(N1, "get", resource, name=name, **web)), (resource, name)
        assert not ok(authz, at(N2, "get", resource, name=name, **web)), (resource, name)
    assert not ok(authz, at(N1, "get", "secrets", name="unrelated", **web))
    assert not ok(authz, at(N1, "get", "secrets", name="tls", namespace="other"))
    assert not ok(authz, at(N1, "get", "secrets", name="tls", tenant="beta", namespace="web"))
    assert not ok(authz, at(N1, "list", "secrets", **web))
    assert not ok(authz, at(N1, "update", "secrets", name="tls", **web))
    # Status updates do not disturb the graph.
    running = copy.deepcopy(p)
    running["status"] = {"phase": "Running"}
    cluster.put(running)
    assert ok(authz, at(N1, "get", "secrets", name="tls", **web))
    # Two pods share a secret: it stays readable until the last one goes.
    cluster.put(pod("twin", "n1", volumes=[{"name": "v", "secret": {"secretName": "tls"}}]))
    cluster.delete(p)
    assert ok(authz, at(N1, "get", "secrets", name="tls", **web))
    assert not ok(authz, at(N1, "get", "secrets", name="regcred", **web))
    cluster.delete(pod("twin", "n1"))
    assert not ok(authz, at(N1, "get", "secrets", name="tls", **web))
    assert authz.graph.refs == {}


def test_pods_of_every_tenant(cluster: Cluster, authz: NodeAuthorizer) -> None:
    cluster.put(pod("a", "n1", tenant="acme", volumes=[{"name": "v", "secret": {"secretName": "s"}}]))
    cluster.put(pod("b", "n1", tenant="beta"))
    assert ok(authz, at(N1, "get", "pods", tenant="beta", namespace="web", name="b"))
    assert ok(authz, at(N1, "get", "secrets", tenant="acme", namespace="web", name="s"))
    assert not ok(authz, at(N1, "get", "secrets", tenant="beta", namespace="web", name="s"))


def test_vm_actions(cluster: Cluster, authz: NodeAuthorizer) -> None:
    cluster.put(action("reboot", "n1"))
    assert ok(authz, at(N1, "get", "actions", namespace="web", name="reboot"))
    assert ok(authz, at(N1, "update", "actions", namespace="web", name="reboot", sub="status"))
    assert ok(authz, at(N1, "watch", "actions", tenant="all"))
    assert not ok(authz, at(N2, "get", "actions", namespace="web", name="reboot"))
    assert not ok(authz, at(N1, "delete", "actions", namespace="web", name="reboot"))
    cluster.delete(action("reboot", "n1"))
    assert not ok(authz, at(N1, "get", "actions", namespace="web", name="reboot"))


def test_events_and_no_opinion(authz: NodeAuthorizer) -> None:
    assert ok(authz, at(N1, "create", "events", namespace="web"))
    assert ok(authz, at(N1, "patch", "events", tenant="beta", namespace="web", name="e"))
    assert not ok(authz, at(N1, "delete", "events", namespace="web", name="e"))
    assert authz.decide(at(N1, "create", "deployments", group="apps", namespace="web")) == (False, NO_OPINION)
    # Services are read (kubelet's KUBERNETES_SERVICE_* env, Kubernetes' node rules), never written.
    assert ok(authz, at(N1, "get", "services", namespace="web", name="kubernetes"))
    assert authz.decide(at(N1, "create", "services", namespace="web")) == (False, NO_OPINION)


def test_only_node_identities_of_the_system_tenant(cluster: Cluster, authz: NodeAuthorizer) -> None:
    cluster.put(pod("mine", "n1", volumes=[{"name": "v", "secret": {"secretName": "s"}}]))
    impostors = (
        UserInfo("system:node:n1", "acme", ("system:nodes",)),  # a tenant user with a node's name
        UserInfo("system:node:n1", "system", ("system:authenticated",)),  # not in system:nodes
        UserInfo("kubelet", "system", ("system:nodes",)),
        UserInfo("system:node:", "system", ("system:nodes",)),
    )
    for user in impostors:
        assert authz.decide(at(user, "get", "nodes", tenant="", name="n1")) == (False, NO_OPINION)
        assert authz.decide(at(user, "get", "secrets", namespace="web", name="s")) == (False, NO_OPINION)


def test_vm_pod_and_volume_plugin_references() -> None:
    refs = pod_references({
        "metadata": {"name": "p"},
        "spec": {
            "virtualMachine": {"name": "vm", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "vm-s"}}}]},
            "volumes": [{"name": "r", "rbd": {"secretRef": {"name": "ceph"}}},
                        {"name": "c", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "csi-s"}}},
                        {"name": "e", "ephemeral": {"volumeClaimTemplate": {}}},
                        {"name": "bad", "secret": "not-a-dict"}, "junk"],
        },
    })
    assert refs == {("secrets", "vm-s"), ("secrets", "ceph"), ("secrets", "csi-s"),
                    ("persistentvolumeclaims", "p-e")}


def test_tokens_for_the_accounts_of_the_nodes_pods(cluster: Cluster, authz: NodeAuthorizer) -> None:
    """kubelet's projected token volumes: create serviceaccounts/token for the accounts its pods run as."""
    cluster.put(pod("app", "n1", serviceAccountName="runner"))
    web = {"namespace": "web", "sub": "token"}
    assert ok(authz, at(N1, "create", "serviceaccounts", name="runner", **web))
    assert not ok(authz, at(N2, "create", "serviceaccounts", name="runner", **web))
    assert not ok(authz, at(N1, "create", "serviceaccounts", name="other", **web))
    assert not ok(authz, at(N1, "create", "serviceaccounts", name="runner", tenant="beta", namespace="web",
                            sub="token"))
    assert not ok(authz, at(N1, "get", "serviceaccounts", name="runner", **web))
    assert not ok(authz, at(N1, "create", "serviceaccounts", name="runner", namespace="web"))
    cluster.delete(pod("app", "n1"))
    assert not ok(authz, at(N1, "create", "serviceaccounts", name="runner", **web))
