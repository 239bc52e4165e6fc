"""The pure planning of the DaemonSet and StatefulSet controllers, and the kinds' defaulting and validation."""

from __future__ import annotations

import copy

from arktos.api.strategies.apps import DaemonSetStrategy, StatefulSetStrategy
from arktos.controllers.daemonset import (
    REVISION_LABEL,
    daemon_pod_body,
    daemon_pod_node,
    node_should_run,
    plan_daemonset,
    template_hash,
)
from arktos.controllers.statefulset import claim_bodies, plan_statefulset, revision_of, stateful_pod_body

TEMPLATE = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
READY = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}


def node(name: str, labels: dict | None = None, taints: list | None = None) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": taints or []}}


def ds(**spec) -> dict:
    obj = {"metadata": {"name": "d", "namespace": "ns", "uid": "u1", "generation": 2},
           "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": copy.deepcopy(TEMPLATE), **spec}}
    DaemonSetStrategy().default(obj)
    return obj


def dpod(d: dict, node_name: str, uid: str, *, ready: bool = True, old: bool = False) -> dict:
    body = daemon_pod_body(d, node_name)
    body["metadata"].update(name=f"d-{uid}", uid=uid, creationTimestamp="2024-01-01T00:00:00Z")
    if old:
        body["metadata"]["labels"][REVISION_LABEL] = "old"
    body["spec"]["nodeName"] = node_name
    body["status"] = READY if ready else {"phase": "Pending"}
    return body


def test_daemonset_defaults_and_validation():
    d = ds()
    assert d["spec"]["updateStrategy"] == {"type": "RollingUpdate",
                                           "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert d["spec"]["revisionHistoryLimit"] == 10
    assert DaemonSetStrategy().validate(d) == []
    bad = ds()
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "y"}
    assert any("selector" in str(e) for e in DaemonSetStrategy().validate(bad))
    moved = ds(selector={"matchLabels": {"app": "x", "b": "c"}})
    moved["spec"]["template"]["metadata"]["labels"]["b"] = "c"
    assert DaemonSetStrategy().validate_update(moved, ds())


def test_statefulset_defaults_and_validation():
    s = sts()
    spec = s["spec"]
    assert spec["podManagementPolicy"] == "OrderedReady" and spec["revisionHistoryLimit"] == 10
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert StatefulSetStrategy().validate(s) == []
    bad = sts(serviceName="Not_A_Label")
    assert StatefulSetStrategy().validate(bad)
    scaled = copy.deepcopy(s)
    scaled["spec"]["replicas"] = 5
    assert StatefulSetStrategy().validate_update(scaled, s) == []
    renamed = copy.deepcopy(s)
    renamed["spec"]["serviceName"] = "other"
    assert StatefulSetStrategy().validate_update(renamed, s)


def test_node_eligibility_selector_affinity_taints():
    spec = {"nodeSelector": {"disk": "ssd"}}
    assert node_should_run(spec, node("a", {"disk": "ssd"}))
    assert not node_should_run(spec, node("a", {"disk": "hdd"}))
    aff = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}]}}}}
    assert node_should_run(aff, node("a", {"zone": "z1"}))
    assert not node_should_run(aff, node("a", {"zone": "z2"}))
    tainted = node("t", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    assert not node_should_run({}, tainted)
    assert node_should_run({"tolerations": [{"key": "dedicated", "operator": "Exists"}]}, tainted)
    assert node_should_run({}, node("p", taints=[{"key": "x", "effect": "PreferNoSchedule"}]))
    # The automatic tolerations: not-ready / unreachable NoExecute, unschedulable.
    for key, effect in (("node.kubernetes.io/not-ready", "NoExecute"), ("node.kubernetes.io/unreachable",
                                                                        "NoExecute"),
                        ("node.kubernetes.io/unschedulable", "NoSchedule")):
        assert node_should_run({}, node("n", taints=[{"key": key, "effect": effect}]))


def test_daemon_pod_targets_its_node_through_affinity():
    d = ds()
    body = daemon_pod_body(d, "n1")
    assert "nodeName" not in body["spec"] and daemon_pod_node(body) == "n1"
    assert body["metadata"]["labels"][REVISION_LABEL] == template_hash(d["spec"]["template"])
    assert body["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
    keys = {t["key"] for t in body["spec"]["tolerations"]}
    assert {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable",
            "node.kubernetes.io/unschedulable"} <= keys


def test_daemonset_plan_creates_deletes_and_counts():
    d = ds(template={**copy.deepcopy(TEMPLATE), "spec": {**TEMPLATE["spec"], "nodeSelector": {"role": "w"}}})
    nodes = [node("a", {"role": "w"}), node("b", {"role": "w"}), node("c")]
    pods = [dpod(d, "a", "p1"), dpod(d, "c", "p2"), dpod(d, "gone", "p3")]
    create, delete, status = plan_daemonset(d, nodes, pods, now=0)
    assert create == ["b"]
    assert sorted(p["metadata"]["uid"] for p in delete) == ["p2", "p3"]
    assert status == {"currentNumberScheduled": 1, "numberMisscheduled": 1, "desiredNumberScheduled": 2,
                      "numberReady": 1, "updatedNumberScheduled": 1, "numberAvailable": 1, "numberUnavailable": 1,
                      "observedGeneration": 2}


def test_daemonset_rolling_update_honours_max_unavailable():
    d = ds()
    nodes = [node(n) for n in "abcd"]
    pods = [dpod(d, n, f"p{n}", old=True) for n in "abcd"]
    _, delete, status = plan_daemonset(d, nodes, pods, now=0)
    assert len(delete) == 1 and status["updatedNumberScheduled"] == 0
    d["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = "50%"
    _, delete, _ = plan_daemonset(d, nodes, pods, now=0)
    assert len(delete) == 2
    # One node already without an available pod uses the whole budget of 1; an old unready pod goes anyway.
    d["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = 1
    pods[0] = dpod(d, "a", "pa", ready=False, old=True)
    _, delete, _ = plan_daemonset(d, nodes, pods, now=0)
    assert [p["metadata"]["uid"] for p in delete] == ["pa"]
    d["spec"]["updateStrategy"] = {"type": "OnDelete"}
    _, delete, _ = plan_daemonset(d, nodes, pods, now=0)
    assert delete == []


# --------------------------------------------------------------------------- StatefulSet


def sts(**spec) -> dict:
    obj = {"metadata": {"name": "web", "namespace": "ns", "uid": "u2", "generation": 1},
           "spec": {"replicas": 3, "serviceName": "web", "selector": {"matchLabels": {"app": "x"}},
                    "template": copy.deepcopy(TEMPLATE), **spec}}
    StatefulSetStrategy().default(obj)
    return obj


def spod(s: dict, i: int, *, ready: bool = True, rev: str | None = None, terminating: bool = False) -> dict:
    body = stateful_pod_body(s, i)
    body["metadata"]["uid"] = f"u-{i}"
    if rev is not None:
        body["metadata"]["labels"][REVISION_LABEL] = rev
    if terminating:
        body["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    body["status"] = READY if ready else {"phase": "Pending"}
    return body


def names(pods: list[dict]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


def test_statefulset_pod_and_claims():
    s = sts(volumeClaimTemplates=[{"metadata": {"name": "data"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}])
    pod = stateful_pod_body(s, 2)
    assert pod["metadata"]["name"] == "web-2"
    assert pod["spec"]["hostname"] == "web-2" and pod["spec"]["subdomain"] == "web"
    assert pod["spec"]["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "data-web-2"}}]
    assert pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "web-2"
    (claim,) = claim_bodies(s, 2)
    assert claim["metadata"]["name"] == "data-web-2" and claim["metadata"]["labels"] == {"app": "x"}
    assert "ownerReferences" not in claim["metadata"]
    s["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] = "Delete"
    s["metadata"]["uid"] = "u2"
    (claim,) = claim_bodies(s, 2)
    (ref,) = claim["metadata"]["ownerReferences"]
    assert ref["kind"] == "StatefulSet" and ref["uid"] == "u2" and ref["controller"] is False


def test_ordered_ready_creates_one_at_a_time():
    s = sts()
    assert plan_statefulset(s, [], 0)[:2] == ([0], [])
    assert plan_statefulset(s, [spod(s, 0, ready=False)], 0)[:2] == ([], [])
    assert plan_statefulset(s, [spod(s, 0)], 0)[:2] == ([1], [])
    s["spec"]["podManagementPolicy"] = "Parallel"
    assert plan_statefulset(s, [], 0)[:2] == ([0, 1, 2], [])


def test_scale_down_from_the_top_one_at_a_time():
    s = sts(replicas=1)
    pods = [spod(s, i) for i in range(3)]
    create, delete, status = plan_statefulset(s, pods, 0)
    assert create == [] and names(delete) == ["web-2"] and status["replicas"] == 3
    pods[2] = spod(s, 2, terminating=True)
    assert plan_statefulset(s, pods, 0)[1] == []
    assert names(plan_statefulset(s, pods[:2], 0)[1]) == ["web-1"]


def test_rolling_update_from_the_top_honours_partition():
    s = sts()
    rev = revision_of(s)
    old = [spod(s, i, rev="web-old") for i in range(3)]
    s["status"] = {"currentRevision": "web-old"}
    _, delete, status = plan_statefulset(s, old, 0)
    assert names(delete) == ["web-2"]
    assert status["currentRevision"] == "web-old" and status["updateRevision"] == rev
    assert status["currentReplicas"] == 3 and status["updatedReplicas"] == 0
    mixed = [old[0], old[1], spod(s, 2)]
    assert names(plan_statefulset(s, mixed, 0)[1]) == ["web-1"]
    mixed[2] = spod(s, 2, ready=False)
    assert plan_statefulset(s, mixed, 0)[1] == []  # waits for the updated pod to be ready
    s["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = 2
    assert plan_statefulset(s, [old[0], old[1], spod(s, 2)], 0)[1] == []
    done = plan_statefulset(sts(), [spod(s, i) for i in range(3)], 0)[2]
    assert done["currentRevision"] == done["updateRevision"] == rev and done["updatedReplicas"] == 3


def test_a_later_noschedule_taint_keeps_the_running_daemon_pod():
    d = ds()
    taint = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    create, delete, status = plan_daemonset(d, [node("a", taints=[taint])], [dpod(d, "a", "p1")], now=0)
    assert create == [] and delete == [] and status["numberMisscheduled"] == 1
    taint["effect"] = "NoExecute"
    _, delete, _ = plan_daemonset(d, [node("a", taints=[taint])], [dpod(d, "a", "p1")], now=0)
    assert [p["metadata"]["uid"] for p in delete] == ["p1"]


def test_statefulset_template_may_mount_its_claims():
    s = sts(volumeClaimTemplates=[{"metadata": {"name": "www"}, "spec": {"accessModes": ["ReadWriteOnce"]}}])
    s["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [{"name": "www", "mountPath": "/d"}]
    assert StatefulSetStrategy().validate(s) == []
    s["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]["name"] = "nope"
    assert any("volumeMounts" in str(e) for e in StatefulSetStrategy().validate(s))


def test_revision_data_is_the_patch_kubectl_undo_sends():
    from arktos.controllers._history import revision_data, template_of

    data = revision_data(TEMPLATE)
    assert data["spec"]["template"]["$patch"] == "replace"
    assert template_of({"data": data}) == TEMPLATE and "$patch" not in TEMPLATE
