"""ResourceQuota and LimitRange: usage arithmetic, scopes, LimitRanger defaults and checks, validation, tables."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from arktos.api.quota import (
    apply_container_defaults,
    exceeded,
    format_amount,
    object_usage,
    parse_list,
    pod_constraints,
    pretty,
    quota_matches,
    validate_pod_limits,
    validate_pvc_limits,
)
from arktos.api.resources import builtin_registry
from arktos.api.strategies.quota import LimitRangeStrategy, ResourceQuotaStrategy
from arktos.api.tables import column_definitions, row_cells

REG = builtin_registry()


def pod(*containers, **spec):
    return {"metadata": {"name": "p"}, "spec": {"containers": list(containers), **spec}}


def ctr(name="c", requests=None, limits=None):
    res = {}
    if requests:
        res["requests"] = requests
    if limits:
        res["limits"] = limits
    return {"name": name, "image": "busybox", "resources": res}


def test_pod_usage_adds_containers_and_floors_with_init_containers():
    p = pod(ctr("a", {"cpu": "250m", "memory": "64Mi"}, {"cpu": "500m", "memory": "128Mi"}),
            ctr("b", {"cpu": "0.25"}), initContainers=[ctr("i", {"cpu": "2"})])
    u = object_usage("pods", "", p)
    assert u["pods"] == 1 and u["count/pods"] == 1
    assert u["requests.cpu"] == u["cpu"] == 2  # the init container's 2 beats 0.5
    assert u["requests.memory"] == 64 * 2**20
    assert u["limits.cpu"] == Decimal("0.5") and u["limits.memory"] == 128 * 2**20
    # A limit without a request is that request.
    assert object_usage("pods", "", pod(ctr(limits={"cpu": "1"})))["requests.cpu"] == 1
    # A finished pod uses nothing but its object count.
    done = {**pod(ctr(requests={"cpu": "1"})), "status": {"phase": "Succeeded"}}
    assert object_usage("pods", "", done) == {"count/pods": 1}


def test_other_kinds_usage():
    svc = {"spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}}
    assert object_usage("services", "", svc) == {"count/services": 1, "services": 1, "services.nodeports": 2,
                                                 "services.loadbalancers": 1}
    pvc = {"spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "2Gi"}}}}
    u = object_usage("persistentvolumeclaims", "", pvc)
    assert u["persistentvolumeclaims"] == 1 and u["requests.storage"] == 2 * 2**30
    assert u["fast.storageclass.storage.k8s.io/requests.storage"] == 2 * 2**30
    assert object_usage("deployments", "apps", {}) == {"count/deployments.apps": 1}
    assert object_usage("configmaps", "", {}) == {"count/configmaps": 1, "configmaps": 1}


def test_exceeded_and_message_formatting():
    hard = parse_list({"pods": "2", "requests.cpu": "1", "requests.memory": "1Gi"})
    used = parse_list({"pods": "2", "requests.cpu": "500m", "requests.memory": "512Mi"})
    req = {"pods": Decimal(1), "requests.cpu": Decimal("0.5"), "requests.memory": Decimal(2**29)}
    assert exceeded(hard, used, req) == ["pods"]
    assert exceeded(hard, used, {"requests.cpu": Decimal("0.501")}) == ["requests.cpu"]
    assert pretty({"requests.cpu": Decimal("1.5"), "pods": Decimal(3)}) == "pods=3,requests.cpu=1500m"
    assert format_amount("requests.memory", Decimal(3 * 2**30)) == "3Gi"
    assert format_amount("memory", Decimal(1000)) == "1000"
    assert format_amount("count/pods", Decimal(0)) == "0"
    assert format_amount("cpu", Decimal(2)) == "2"


def test_scopes_select_pods():
    best_effort = pod(ctr())
    burstable = pod(ctr(requests={"cpu": "1"}))
    q = {"spec": {"scopes": ["BestEffort"]}}
    assert quota_matches(q, "pods", "", best_effort) and not quota_matches(q, "pods", "", burstable)
    assert not quota_matches(q, "configmaps", "", {})
    term = {"spec": {"scopes": ["Terminating"]}}
    assert quota_matches(term, "pods", "", pod(ctr(), activeDeadlineSeconds=5))
    assert not quota_matches(term, "pods", "", best_effort)
    pc = {"spec": {"scopeSelector": {"matchExpressions": [
        {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}}
    assert quota_matches(pc, "pods", "", pod(ctr(), priorityClassName="high"))
    assert not quota_matches(pc, "pods", "", pod(ctr(), priorityClassName="low"))


def test_pod_constraints_name_the_containers_missing_a_declaration():
    p = pod(ctr("a", {"cpu": "1"}), ctr("b"))
    assert pod_constraints(["pods", "requests.cpu", "limits.memory"], p) == (
        "must specify limits.memory for: a,b; requests.cpu for: b")
    assert pod_constraints(["pods"], p) is None
    assert pod_constraints(["cpu"], pod(ctr(limits={"cpu": "1"}))) is None


def test_limit_ranger_defaults_and_checks():
    lr = {"spec": {"limits": [{"type": "Container", "default": {"cpu": "500m", "memory": "256Mi"},
                               "defaultRequest": {"cpu": "100m"}, "max": {"memory": "1Gi"}}]}}
    p = pod(ctr("a"), ctr("b", limits={"cpu": "2"}))
    notes = apply_container_defaults([lr], p)
    a, b = p["spec"]["containers"]
    assert a["resources"] == {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m"}}
    assert b["resources"]["limits"] == {"cpu": "2", "memory": "256Mi"}
    assert b["resources"]["requests"] == {"cpu": "2"}  # an explicit limit is the request
    assert notes == ["cpu request for container a", "cpu, memory limit for container a",
                     "cpu request for container b", "memory limit for container b"]
    assert validate_pod_limits([lr], p) == []
    big = pod(ctr("big", limits={"memory": "2Gi"}))
    assert validate_pod_limits([lr], big) == ["maximum memory usage per Container is 1Gi, but limit is 2Gi"]
    assert validate_pod_limits([lr], pod(ctr())) == [
        "maximum memory usage per Container is 1Gi.  No limit is specified"]
    minimum = {"spec": {"limits": [{"type": "Pod", "min": {"cpu": "1"}, "maxLimitRequestRatio": {"cpu": "2"}}]}}
    assert validate_pod_limits([minimum], pod(ctr(requests={"cpu": "500m"}, limits={"cpu": "3"}))) == [
        "minimum cpu usage per Pod is 1, but request is 500m",
        "cpu max limit to request ratio per Pod is 2, but provided ratio is 6.000000"]
    pvc_lr = {"spec": {"limits": [{"type": "PersistentVolumeClaim", "max": {"storage": "5Gi"}}]}}
    claim = {"spec": {"resources": {"requests": {"storage": "10Gi"}}}}
    assert validate_pvc_limits([pvc_lr], claim) == [
        "maximum storage usage per PersistentVolumeClaim is 5Gi, but request is 10Gi"]


def _fields(errs):
    return [(e.field, e.detail) for e in errs]


def test_resource_quota_validation():
    v = ResourceQuotaStrategy().validate
    assert v({"spec": {"hard": {"pods": "10", "requests.cpu": "2", "count/deployments.apps": "3"}}}) == []
    errs = _fields(v({"spec": {"hard": {"pods": "1.5", "cpus": "1", "memory": "-1", "secrets": "x"}}}))
    assert ("spec.hard[pods]", "must be an integer") in errs
    assert ("spec.hard[cpus]", "must be a standard resource for quota") in errs
    assert ("spec.hard[memory]", "must be greater than or equal to 0") in errs
    assert any(f == "spec.hard[secrets]" and "regular expression" in d for f, d in errs)
    assert _fields(v({"spec": {"hard": {"pods": "1"}, "scopes": ["Bogus"]}})) == [
        ("spec.scopes", "unsupported scope")]
    assert _fields(v({"spec": {"hard": {"secrets": "1"}, "scopes": ["BestEffort"]}})) == [
        ("spec.scopes", "unsupported scope applied to resource")]
    assert ("spec.scopes", "conflicting scopes") in _fields(
        v({"spec": {"hard": {"pods": "1"}, "scopes": ["Terminating", "NotTerminating"]}}))
    sel = {"spec": {"hard": {"pods": "1"}, "scopeSelector": {"matchExpressions": [
        {"scopeName": "PriorityClass", "operator": "In"}]}}}
    assert _fields(v(sel))[0][0] == "spec.scopeSelector.matchExpressions[0].values"


def test_limit_range_defaulting_and_validation():
    s = LimitRangeStrategy()
    lr = {"spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}}]}}
    s.default(lr)
    item = lr["spec"]["limits"][0]
    assert item["default"] == {"cpu": "2"}
    assert item["defaultRequest"] == {"cpu": "2", "memory": "64Mi"}
    assert s.validate(lr) == []
    bad = {"spec": {"limits": [
        {"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}, "default": {"cpu": "3"},
         "defaultRequest": {"cpu": "500m"}, "maxLimitRequestRatio": {"cpu": "500m"}},
        {"type": "Pod", "default": {"cpu": "1"}},
        {"type": "PersistentVolumeClaim", "max": {"cpu": "1"}},
        {"type": "Pod"},
        {"type": "Machine"}]}}
    errs = _fields(s.validate(bad))
    p0 = "spec.limits[0]"
    assert (f"{p0}.min[cpu]", "min value 2 is greater than max value 1") in errs
    assert (f"{p0}.defaultRequest[cpu]", "min value 2 is greater than default request value 500m") in errs
    assert (f"{p0}.default[cpu]", "default value 3 is greater than max value 1") in errs
    assert (f"{p0}.maxLimitRequestRatio[cpu]", "ratio 500m is less than 1") in errs
    assert ("spec.limits[1].default", "may not be specified when `type` is 'Pod'") in errs
    assert ("spec.limits[2].limits", "either minimum or maximum storage value is required, but neither was "
                                     "provided") in errs
    assert ("spec.limits[2].max[cpu]", "must be a standard limit type or fully qualified") in errs
    assert ("spec.limits[3].type", "") in errs  # duplicate
    assert ("spec.limits[4].type", "must be a standard limit type or fully qualified") in errs


def test_tables():
    now = dt.datetime(2026, 1, 1, 0, 10, tzinfo=dt.UTC)
    rq = {"kind": "ResourceQuota", "apiVersion": "v1",
          "metadata": {"name": "q", "creationTimestamp": "2026-01-01T00:00:00Z"},
          "spec": {"hard": {"pods": "2", "limits.cpu": "2", "requests.memory": "1Gi"}},
          "status": {"hard": {"pods": "2", "limits.cpu": "2", "requests.memory": "1Gi"},
                     "used": {"pods": "1", "limits.cpu": "500m"}}}
    info = REG.get("", "v1", "resourcequotas")
    assert [c["name"] for c in column_definitions(info)] == ["Name", "Age", "Request", "Limit"]
    assert row_cells(info, rq, now) == ["q", "10m", "pods: 1/2, requests.memory: 0/1Gi", "limits.cpu: 500m/2"]
    lr = {"kind": "LimitRange", "apiVersion": "v1",
          "metadata": {"name": "l", "creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"limits": []}}
    info = REG.get("", "v1", "limitranges")
    assert [c["name"] for c in column_definitions(info)] == ["Name", "Created At"]
    assert row_cells(info, lr, now) == ["l", "2026-01-01T00:00:00Z"]
