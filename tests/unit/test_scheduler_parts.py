"""The scheduler's parts in memory: the array node cache, each plugin, the framework and the queue.

The plugins are checked against plain per-node Python reasoning (what the
mask should be node by node), so the vectorised code is held to the simple
semantics it replaces.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from arktos.scheduler import (
    RUNTIME_CONTAINER_LABEL,
    RUNTIME_VM_LABEL,
    Framework,
    NodeCache,
    PodInfo,
    SchedulingQueue,
    default_filters,
    default_scores,
)
from arktos.scheduler.plugins import (
    BalancedAllocation,
    LeastAllocated,
    NodeAffinity,
    NodeAffinityPreferred,
    NodeName,
    NodeReady,
    NodeResourcesFit,
    NodeUnschedulable,
    OwnerSpread,
    Runtime,
    TaintPreferNoSchedule,
    TaintToleration,
)

GI = 1024**3


def node(name: str, cpu: str = "4", memory: str = "8Gi", pods: str = "110", labels: dict | None = None,
         taints: list | None = None, ready: bool = True, unschedulable: bool = False,
         extra: dict | None = None) -> dict:
    alloc = {"cpu": cpu, "memory": memory, "pods": pods, **(extra or {})}
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"taints": taints or [], "unschedulable": unschedulable},
        "status": {"capacity": alloc, "allocatable": alloc,
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def pod(name: str = "p", cpu: str | None = "100m", memory: str | None = "100Mi", *, vm: bool = False,
        owner: str = "", extra: dict | None = None, **spec: Any) -> PodInfo:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    requests.update(extra or {})
    res = {"requests": requests}
    body: dict[str, Any] = {"metadata": {"name": name, "namespace": "default", "tenant": "system", "uid": f"u-{name}"},
                            "spec": dict(spec)}
    if owner:
        body["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": "rs", "uid": owner, "controller": True}]
    if vm:
        body["spec"]["virtualMachine"] = {"name": "vm", "image": "cirros", "keyPairName": "k", "resources": res}
    else:
        body["spec"]["containers"] = [{"name": "c", "image": "x", "resources": res}]
    return PodInfo.from_pod(body)


def cache_of(*nodes: dict) -> NodeCache:
    c = NodeCache(capacity=2)  # tiny, so the tests also grow the arrays
    for n in nodes:
        c.set_node(n)
    return c


def names(cache: NodeCache, mask: np.ndarray) -> set[str]:
    return {cache.names[i] for i in np.flatnonzero(mask)}  # type: ignore[misc]


# -- the cache ---------------------------------------------------------------------------------------


def test_cache_keeps_allocatable_and_requests_per_node_and_grows():
    c = cache_of(*(node(f"n{i}", cpu=str(i + 1)) for i in range(20)))
    assert len(c) == 20
    assert c.alloc[c.res_index["cpu"], c.rows["n3"]] == 4000
    assert c.alloc[c.res_index["memory"], c.rows["n3"]] == 8 * GI
    p = pod("a", cpu="1500m", memory="1Gi")
    c.assume(p.key, "n3", p.requests)
    assert c.requested[0, c.rows["n3"]] == 1500
    assert c.free(c.res_index["cpu"])[c.rows["n3"]] == 2500
    assert c.requested[c.res_index["pods"], c.rows["n3"]] == 1
    assert c.forget(p.key)
    assert c.requested[:, c.rows["n3"]].sum() == 0


def test_assumed_pod_is_confirmed_by_the_informer_and_expires_when_never_seen():
    c = cache_of(node("a"), node("b"))
    p = pod("x", cpu="1")
    c.assume(p.key, "a", p.requests)
    c.finish_binding(p.key, now=100.0)
    c.set_pod(p.key, "a", p.requests)  # the informer shows the bound pod
    assert not c.is_assumed(p.key)
    assert c.expire(now=10_000.0) == []  # confirmed pods never expire
    assert c.requested[0, c.rows["a"]] == 1000

    q = pod("y", cpu="1")
    c.assume(q.key, "b", q.requests)
    assert c.expire(now=10_000.0) == []  # binding not finished yet: no deadline
    c.finish_binding(q.key, now=100.0)
    assert c.expire(now=100.0 + c.assumed_ttl + 1) == [q.key]
    assert c.requested[0, c.rows["b"]] == 0


def test_informer_showing_the_pod_elsewhere_moves_its_requests():
    c = cache_of(node("a"), node("b"))
    p = pod("x", cpu="1")
    c.assume(p.key, "a", p.requests)
    c.set_pod(p.key, "b", p.requests)  # someone else bound it to b
    assert c.requested[0, c.rows["a"]] == 0 and c.requested[0, c.rows["b"]] == 1000
    assert c.remove_pod(p.key)
    assert c.requested[0].sum() == 0


def test_pods_on_a_node_not_yet_seen_count_once_it_appears_and_node_rows_are_reused():
    c = cache_of(node("a"))
    p = pod("early", cpu="2")
    c.set_pod(p.key, "later", p.requests)
    c.set_node(node("later"))
    assert c.requested[0, c.rows["later"]] == 2000
    row = c.rows["a"]
    assert c.remove_node("a")
    c.set_node(node("fresh", cpu="1"))
    assert c.rows["fresh"] == row  # the freed row is reused, cleared
    assert c.requested[0, row] == 0 and c.alloc[0, row] == 1000


def test_node_updates_bump_the_generation_only_when_scheduling_properties_change():
    c = cache_of(node("a"))
    g = c.generation
    n = node("a")
    n["status"]["conditions"][0]["lastHeartbeatTime"] = "2026-01-01T00:00:10Z"
    assert not c.set_node(n)  # a heartbeat changes nothing the scheduler reads
    assert c.generation == g
    assert c.set_node(node("a", cpu="8"))  # capacity: pods may fit now, but masks stay valid
    assert c.generation == g
    assert c.set_node(node("a", cpu="8", labels={"disk": "ssd"}))
    assert c.generation == g + 1


def test_extended_resources_get_columns_on_demand_and_count_existing_pods():
    c = cache_of(node("gpu", extra={"example.com/gpu": "2"}), node("plain"))
    p = pod("g", extra={"example.com/gpu": "1"})
    c.assume(p.key, "gpu", p.requests)
    fit = NodeResourcesFit()
    assert names(c, fit.filter(p, c)) == {"gpu"}
    other = pod("h", extra={"example.com/fpga": "1"})  # nobody has it: a new, empty column
    assert names(c, fit.filter(other, c)) == set()
    assert NodeResourcesFit().reasons(other, c, np.arange(c.n)) == {"Insufficient example.com/fpga": 2}


def test_label_requirements_match_kubernetes_semantics():
    c = cache_of(node("a", labels={"zone": "z1", "gen": "3"}), node("b", labels={"zone": "z2", "gen": "10"}),
                 node("c", labels={"gen": "x"}), node("d"))
    assert names(c, c.label_mask("zone", "In", ["z1", "z3"])) == {"a"}
    assert names(c, c.label_mask("zone", "NotIn", ["z1"])) == {"b", "c", "d"}  # absent matches NotIn
    assert names(c, c.label_mask("zone", "Exists", [])) == {"a", "b"}
    assert names(c, c.label_mask("zone", "DoesNotExist", [])) == {"c", "d"}
    assert names(c, c.label_mask("gen", "Gt", ["4"])) == {"b"}
    assert names(c, c.label_mask("gen", "Lt", ["4"])) == {"a"}  # "x" is no number: neither
    assert names(c, c.label_mask("missing", "In", ["v"])) == set()
    assert c.label_mask("zone", "In", []) is None  # invalid: matches nothing
    assert c.label_mask("gen", "Gt", ["x"]) is None
    assert c.label_mask("zone", "Exists", ["v"]) is None
    assert names(c, c.name_mask("In", ["a", "zz"])) == {"a"}
    assert names(c, c.name_mask("NotIn", ["a"])) == {"b", "c", "d"}


# -- filters -------------------------------------------------------------------------------------------


def test_resource_fit_counts_cpu_memory_and_pods_against_what_is_left():
    c = cache_of(node("small", cpu="1", memory="1Gi", pods="2"), node("big", cpu="8", memory="16Gi"))
    fit = NodeResourcesFit()
    assert names(c, fit.filter(pod(cpu="2"), c)) == {"big"}
    assert names(c, fit.filter(pod(cpu="1", memory="1Gi"), c)) == {"small", "big"}  # exactly full fits
    for i in range(2):
        p = pod(f"f{i}", cpu="1m", memory="1Mi")
        c.assume(p.key, "small", p.requests)
    p = pod(cpu="1m", memory="1Mi")
    assert names(c, fit.filter(p, c)) == {"big"}
    assert fit.reasons(p, c, np.array([c.rows["small"]])) == {"Too many pods": 1}
    assert fit.reasons(pod(cpu="100", memory="100Gi"), c, np.arange(c.n)) == {
        "Insufficient cpu": 2, "Insufficient memory": 2, "Too many pods": 1}  # every shortfall of a node counts


def test_node_name_ready_unschedulable_and_runtime_filters():
    c = cache_of(node("a"), node("down", ready=False), node("cordoned", unschedulable=True),
                 node("vm", labels={RUNTIME_VM_LABEL: "true"}),
                 node("both", labels={RUNTIME_VM_LABEL: "true", RUNTIME_CONTAINER_LABEL: "true"}))
    assert names(c, NodeReady().filter(pod(), c)) == {"a", "cordoned", "vm", "both"}
    assert names(c, NodeName().filter(pod(nodeName="vm"), c)) == {"vm"}
    assert names(c, NodeName().filter(pod(), c)) == set(c.rows)
    assert "cordoned" not in names(c, NodeUnschedulable().filter(pod(), c))
    tolerant = pod(tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                                 "effect": "NoSchedule"}])
    assert "cordoned" in names(c, NodeUnschedulable().filter(tolerant, c))
    assert names(c, Runtime().filter(pod(vm=True), c)) == {"vm", "both"}
    assert names(c, Runtime().filter(pod(), c)) == {"a", "down", "cordoned", "both"}  # unlabelled: containers
    assert Runtime().reasons(pod(vm=True), c, np.array([0, 1])) == {"node(s) had no VM runtime": 2}


def test_taints_and_tolerations():
    gpu = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    soft = {"key": "spot", "value": "", "effect": "PreferNoSchedule"}
    evict = {"key": "broken", "effect": "NoExecute"}
    c = cache_of(node("plain"), node("gpu", taints=[gpu]), node("soft", taints=[soft]), node("evict", taints=[evict]))
    f = TaintToleration()
    assert names(c, f.filter(pod(), c)) == {"plain", "soft"}  # PreferNoSchedule does not filter
    equal = pod(tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}])
    assert names(c, f.filter(equal, c)) == {"plain", "soft", "gpu"}
    wrong_value = pod(tolerations=[{"key": "dedicated", "operator": "Equal", "value": "tpu"}])
    assert "gpu" not in names(c, f.filter(wrong_value, c))
    wrong_effect = pod(tolerations=[{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}])
    assert "gpu" not in names(c, f.filter(wrong_effect, c))
    everything = pod(tolerations=[{"operator": "Exists"}])
    assert names(c, f.filter(everything, c)) == set(c.rows)
    reasons = f.reasons(pod(), c, np.array([c.rows["gpu"], c.rows["evict"]]))
    assert reasons == {"node(s) had untolerated taint {dedicated: gpu}": 1,
                       "node(s) had untolerated taint {broken: }": 1}


def test_node_selector_and_required_affinity_terms():
    c = cache_of(node("a", labels={"disk": "ssd", "zone": "z1"}), node("b", labels={"disk": "hdd", "zone": "z2"}),
                 node("c", labels={"zone": "z1"}))
    f = NodeAffinity()
    assert names(c, f.filter(pod(nodeSelector={"disk": "ssd"}), c)) == {"a"}
    terms = {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "disk", "operator": "DoesNotExist"}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]},
    ]}
    p = pod(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": terms}})
    assert names(c, f.filter(p, c)) == {"b", "c"}  # terms are ORed
    both = pod(nodeSelector={"zone": "z1"},
               affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": terms}})
    assert names(c, f.filter(both, c)) == {"c"}  # selector AND affinity
    empty = pod(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{}]}}})
    assert names(c, f.filter(empty, c)) == set()  # an empty term matches nothing
    bad_field = pod(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.uid", "operator": "In", "values": ["x"]}]}]}}})
    assert names(c, f.filter(bad_field, c)) == set()


# -- scores ---------------------------------------------------------------------------------------------


def score(plugin: Any, p: PodInfo, c: NodeCache) -> dict[str, float]:
    feasible = c.valid[: c.n].copy()
    values = plugin.score(p, c, feasible, {"shape": {}})
    return {} if values is None else {c.names[i]: round(float(values[i]), 2) for i in range(c.n)}


def test_least_allocated_and_balanced_allocation_scores():
    c = cache_of(node("empty", cpu="4", memory="4Gi"), node("half", cpu="4", memory="4Gi"))
    filler = pod("f", cpu="2", memory="1Gi")
    c.assume(filler.key, "half", filler.requests)
    p = pod(cpu="1", memory="1Gi")
    least = score(LeastAllocated(), p, c)
    assert least["empty"] == pytest.approx((0.75 + 0.75) / 2 * 100)
    assert least["half"] == pytest.approx((0.25 + 0.5) / 2 * 100)
    balanced = score(BalancedAllocation(), p, c)
    assert balanced["empty"] == 100.0  # 1/4 cpu, 1/4 memory
    assert balanced["half"] == pytest.approx((1 - abs(0.75 - 0.5)) * 100)
    # Pods asking nothing count with upstream's defaults (100m / 200Mi), never as free.
    assert score(LeastAllocated(), pod(cpu=None, memory=None), c)["empty"] < 100


def test_owner_spread_prefers_nodes_and_zones_with_fewer_siblings():
    c = cache_of(node("a", labels={"topology.kubernetes.io/zone": "z1"}),
                 node("b", labels={"topology.kubernetes.io/zone": "z1"}),
                 node("c", labels={"topology.kubernetes.io/zone": "z2"}))
    assert score(OwnerSpread(), pod(owner="rs1"), c) == {}  # no siblings yet: no opinion
    for name, where in (("s1", "a"), ("s2", "a"), ("s3", "b")):
        s = pod(name, owner="rs1")
        c.assume(s.key, where, s.requests, s.owner)
    out = score(OwnerSpread(), pod(owner="rs1"), c)
    assert out["c"] > out["b"] > out["a"]
    assert score(OwnerSpread(), pod(owner="other"), c) == {}


def test_preferred_affinity_and_prefer_no_schedule_scores():
    c = cache_of(node("ssd", labels={"disk": "ssd"}), node("hdd", labels={"disk": "hdd"}),
                 node("spot", labels={"disk": "ssd"}, taints=[{"key": "spot", "effect": "PreferNoSchedule"}]))
    pref = pod(affinity={"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 5, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}})
    assert score(NodeAffinityPreferred(), pref, c) == {"ssd": 100.0, "hdd": 0.0, "spot": 100.0}
    assert score(TaintPreferNoSchedule(), pod(), c) == {"ssd": 100.0, "hdd": 100.0, "spot": 0.0}
    tolerant = pod(tolerations=[{"key": "spot", "operator": "Exists"}])
    assert score(TaintPreferNoSchedule(), tolerant, c) == {}


# -- the framework ---------------------------------------------------------------------------------------


def test_framework_places_on_the_best_node_and_explains_failures():
    gpu = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    c = cache_of(node("n1", cpu="1"), node("n2", cpu="1"), node("n3", cpu="1"),
                 node("t1", cpu="8", taints=[gpu]), node("t2", cpu="8", taints=[gpu]))
    fw = Framework(default_filters(), default_scores(), rng=random.Random(1))
    result = fw.schedule(pod(cpu="2"), c)
    assert result.node is None
    assert result.message == ("0/5 nodes are available: 3 Insufficient cpu, "
                              "2 node(s) had untolerated taint {dedicated: gpu}.")
    ok = fw.schedule(pod(cpu="500m"), c)
    assert ok.node in {"n1", "n2", "n3"} and ok.feasible == 3


def test_assumed_pods_prevent_overcommit_across_consecutive_decisions():
    c = cache_of(*(node(f"n{i}", cpu="1", memory="64Gi") for i in range(10)))
    fw = Framework(default_filters(), default_scores(), rng=random.Random(2))
    placed: dict[str, int] = {}
    for i in range(50):
        p = pod(f"p{i}", cpu="300m")
        r = fw.schedule(p, c)
        if r.node is None:
            continue
        c.assume(p.key, r.node, p.requests)
        placed[r.node] = placed.get(r.node, 0) + 1
    assert sum(placed.values()) == 30  # 3 per node, never 4
    assert max(placed.values()) == 3


def test_spreading_identical_pods_over_identical_nodes():
    c = cache_of(*(node(f"n{i}") for i in range(50)))
    fw = Framework(default_filters(), default_scores(), rng=random.Random(3))
    counts: dict[str, int] = {}
    for i in range(100):
        p = pod(f"p{i}", owner="rs")
        r = fw.schedule(p, c)
        assert r.node is not None
        c.assume(p.key, r.node, p.requests, p.owner)
        counts[r.node] = counts.get(r.node, 0) + 1
    assert set(counts.values()) == {2}


def test_static_masks_are_cached_per_pod_shape_until_a_node_changes():
    c = cache_of(node("a", labels={"disk": "ssd"}), node("b"))
    fw = Framework(default_filters(), default_scores())
    p = pod(nodeSelector={"disk": "ssd"})
    first = fw.static_mask(p, c)
    assert fw.static_mask(pod("other", nodeSelector={"disk": "ssd"}), c) is first  # same shape, same mask
    c.set_node(node("b", labels={"disk": "ssd"}))
    assert names(c, fw.static_mask(p, c)) == {"a", "b"}


def test_vectorised_filters_agree_with_a_per_node_reading_on_random_clusters():
    rng = random.Random(7)
    zones, disks = ["z1", "z2", "z3"], ["ssd", "hdd"]
    nodes = []
    for i in range(300):
        labels = {"zone": rng.choice(zones), "rank": str(rng.randint(0, 20))}
        if rng.random() < 0.5:
            labels["disk"] = rng.choice(disks)
        taints = [{"key": "dedicated", "value": rng.choice(["a", "b"]), "effect": "NoSchedule"}] \
            if rng.random() < 0.3 else []
        nodes.append(node(f"n{i}", cpu=str(rng.randint(1, 4)), labels=labels, taints=taints,
                          ready=rng.random() > 0.1))
    c = cache_of(*nodes)
    fw = Framework(default_filters(), default_scores())
    for _ in range(40):
        zone, disk, rank = rng.choice(zones), rng.choice(disks), rng.randint(0, 20)
        tol = [{"key": "dedicated", "operator": "Equal", "value": "a", "effect": "NoSchedule"}] \
            if rng.random() < 0.5 else []
        terms = {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "disk", "operator": rng.choice(["In", "NotIn"]), "values": [disk]},
            {"key": "rank", "operator": "Gt", "values": [str(rank)]}]}]}
        cpu = rng.choice(["500m", "1", "2", "3"])
        p = pod(cpu=cpu, nodeSelector={"zone": zone}, tolerations=tol,
                affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": terms}})
        expr = terms["nodeSelectorTerms"][0]["matchExpressions"][0]
        want = set()
        for n in nodes:
            labels, name = n["metadata"]["labels"], n["metadata"]["name"]
            disk_ok = (labels.get("disk") in expr["values"]) == (expr["operator"] == "In")
            taint_ok = all(tol and t["value"] == "a" for t in n["spec"]["taints"])
            if (n["status"]["conditions"][0]["status"] == "True" and labels["zone"] == zone and disk_ok
                    and int(labels["rank"]) > rank and taint_ok and int(n["status"]["allocatable"]["cpu"]) * 1000
                    >= p.requests["cpu"]):
                want.add(name)
        assert names(c, fw.feasible(p, c)) == want


# -- the queue ------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_queue_orders_by_priority_then_arrival_and_skips_deleted_pods():
    q = SchedulingQueue(clock=Clock())
    q.add(pod("low"))
    q.add(pod("high", priority=100))
    q.add(pod("gone"))
    q.add(pod("low2"))
    q.delete(pod("gone").key)
    order = []
    while (qp := q.pop_nowait()) is not None:
        order.append(qp.info.name)
        q.done(qp.info.key)
    assert order == ["high", "low", "low2"]
    assert len(q) == 0


def test_unschedulable_pods_wait_for_a_cluster_change_then_their_backoff():
    clock = Clock()
    q = SchedulingQueue(initial_backoff=1.0, max_backoff=4.0, unschedulable_timeout=60.0, clock=clock)
    q.add(pod("p"))
    qp = q.pop_nowait()
    assert qp is not None
    q.requeue_unschedulable(qp)
    assert q.counts["unschedulable"] == 1
    clock.now = 30.0
    q.flush()
    assert q.pop_nowait() is None  # nothing changed: stays parked
    q.move_all()  # a node was added: its backoff (1 s) is over, so straight to active
    qp = q.pop_nowait()
    assert qp is not None and qp.attempts == 2
    q.requeue_unschedulable(qp)
    q.move_all()
    assert q.counts["backoff"] == 1 and q.pop_nowait() is None  # 2 s backoff after the second attempt
    clock.now += 2.0
    q.flush()
    assert q.pop_nowait() is not None
    assert [q.backoff_for(a) for a in range(1, 6)] == [1.0, 2.0, 4.0, 4.0, 4.0]


def test_parked_pods_are_retried_after_the_timeout_and_on_spec_changes():
    clock = Clock()
    q = SchedulingQueue(unschedulable_timeout=60.0, clock=clock)
    q.add(pod("p"))
    qp = q.pop_nowait()
    assert qp is not None
    q.requeue_unschedulable(qp)
    clock.now = 61.0
    q.flush()
    assert q.pop_nowait() is not None
    # A change of the spec (not of the status) reactivates a parked pod.
    q.add(pod("s"))
    qs = q.pop_nowait()
    assert qs is not None
    q.requeue_unschedulable(qs)
    body = qs.info.pod
    q.update(qs.info.key, body, False, PodInfo.from_pod)
    assert q.counts["unschedulable"] == 1
    clock.now += 10
    q.update(qs.info.key, body, True, PodInfo.from_pod)
    assert q.pop_nowait() is not None


def test_a_failed_binding_goes_back_to_the_queue_with_backoff():
    clock = Clock()
    q = SchedulingQueue(clock=clock)
    q.add(pod("p"))
    qp = q.pop_nowait()
    assert qp is not None
    q.done(qp.info.key)  # assumed and bound in the background: the queue let go
    assert len(q) == 0
    q.requeue_backoff(qp)
    assert q.counts["backoff"] == 1 and q.pop_nowait() is None
    clock.now = 1.5
    q.flush()
    assert q.pop_nowait() is qp


async def test_pop_waits_for_work():
    import asyncio

    q = SchedulingQueue()
    waiter = asyncio.create_task(q.pop())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    q.add(pod("late"))
    assert (await asyncio.wait_for(waiter, 1)).info.name == "late"
