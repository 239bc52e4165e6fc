"""ResourceQuota and LimitRange against a real API server, with the quota controller in-process.

Pods name no node and no scheduler runs, so they stay Pending: what matters here is admission
and the controller's counting, not running them.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from arktos.api.errors import APIError
from arktos.api.resources import builtin_registry
from arktos.client import Client
from arktos.controllers.base import ControllerContext, ControllerOptions, InformerFactory
from arktos.controllers.discovery import Discovery
from arktos.controllers.resourcequota import ResourceQuotaController
from tests.conftest import eventually, write_dev_kubeconfig

pytestmark = pytest.mark.timeout(60)

REG = builtin_registry()
NAMESPACES = REG.get("", "v1", "namespaces")
TENANTS = REG.get("", "v1", "tenants")
PODS = REG.get("", "v1", "pods")
CONFIGMAPS = REG.get("", "v1", "configmaps")
SERVICES = REG.get("", "v1", "services")
QUOTAS = REG.get("", "v1", "resourcequotas")
LIMITRANGES = REG.get("", "v1", "limitranges")
KUBECTL = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33"
Obj = dict[str, Any]


@pytest.fixture
async def env(apiserver):
    async with Client(apiserver.url, qps=1000, burst=1000) as client:
        informers = InformerFactory(client)
        ctx = ControllerContext(client, informers, ControllerOptions(concurrent_workers=2, extra={
            "resource_quota_decrease_grace": 0.3, "resource_quota_sync_period": 5}), Discovery(client))
        controller = ResourceQuotaController(ctx)
        controller.setup()
        await informers.start()
        await informers.wait_synced(logging.getLogger("test"))
        task = asyncio.create_task(controller.run())
        try:
            yield client
        finally:
            await controller.shut_down(1.0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await informers.stop()
            await ctx.close()


def pod(name: str, **resources: Any) -> Obj:
    c: Obj = {"name": "c", "image": "busybox"}
    if resources:
        c["resources"] = resources
    return {"metadata": {"name": name}, "spec": {"containers": [c]}}


async def namespace(client: Client, prefix: str, tenant: str | None = None) -> str:
    ns = f"{prefix}-{uuid.uuid4().hex[:6]}"
    await client.create(NAMESPACES, {"metadata": {"name": ns}}, tenant=tenant)
    return ns


async def quota(client: Client, ns: str, name: str, hard: dict, tenant: str | None = None) -> Obj:
    """Create a quota and wait until the controller has counted it (only then does it restrict)."""
    await client.create(QUOTAS, {"metadata": {"name": name}, "spec": {"hard": hard}}, namespace=ns, tenant=tenant)

    async def counted():
        q = await client.get(QUOTAS, name, namespace=ns, tenant=tenant)
        st = q.get("status") or {}
        return q if st.get("hard") == hard and set(st.get("used") or {}) == set(hard) else None

    return await eventually(counted, 10, f"quota {ns}/{name} counted")


async def forbidden(coro) -> str:
    with pytest.raises(APIError) as err:
        await coro
    assert err.value.code == 403, err.value
    return err.value.message


async def used(client: Client, ns: str, name: str, tenant: str | None = None) -> dict:
    return ((await client.get(QUOTAS, name, namespace=ns, tenant=tenant)).get("status") or {}).get("used") or {}


async def test_pod_count_quota_refuses_the_third_pod_and_a_deletion_frees_room(env):
    client = env
    ns = await namespace(client, "rq")
    await quota(client, ns, "pods", {"pods": "2", "count/configmaps": "1"})
    await client.create(PODS, pod("p1"), namespace=ns)
    # A dry run is judged but charges nothing.
    await client.create(PODS, pod("p2"), namespace=ns, dry_run=True)
    assert (await used(client, ns, "pods"))["pods"] == "1"
    await client.create(PODS, pod("p2"), namespace=ns)
    msg = await forbidden(client.create(PODS, pod("p3"), namespace=ns))
    assert msg == ('pods "p3" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=2, '
                   'limited: pods=2')
    # count/<resource>: the same for any kind.
    await client.create(CONFIGMAPS, {"metadata": {"name": "a"}}, namespace=ns)
    msg = await forbidden(client.create(CONFIGMAPS, {"metadata": {"name": "b"}}, namespace=ns))
    assert "exceeded quota: pods, requested: count/configmaps=1, used: count/configmaps=1" in msg
    assert (await used(client, ns, "pods"))["pods"] == "2"
    # Deleting a pod frees its room once the controller recounts.
    await client.delete(PODS, "p1", namespace=ns, grace_period_seconds=0)
    await eventually(lambda: _used_is(client, ns, "pods", "pods", "1"), 10, "pods used back to 1")
    await client.create(PODS, pod("p3"), namespace=ns)
    assert (await used(client, ns, "pods"))["pods"] == "2"


async def _used_is(client: Client, ns: str, name: str, resource: str, value: str) -> bool:
    return (await used(client, ns, name)).get(resource) == value


async def test_concurrent_creates_never_overrun_the_quota(env):
    client = env
    ns = await namespace(client, "rqc")
    await quota(client, ns, "five", {"pods": "5"})

    async def create(i: int) -> bool:
        try:
            await client.create(PODS, pod(f"p{i}"), namespace=ns)
            return True
        except APIError as exc:
            assert exc.code == 403 and "exceeded quota: five" in exc.message, exc
            return False

    results = await asyncio.gather(*(create(i) for i in range(20)))
    assert sum(results) == 5
    assert len((await client.list(PODS, namespace=ns))["items"]) == 5
    assert (await used(client, ns, "five"))["pods"] == "5"
    await asyncio.sleep(0.5)  # the controller recounted meanwhile: still 5
    assert (await used(client, ns, "five"))["pods"] == "5"


async def test_compute_quota_and_limit_range(env):
    client = env
    ns = await namespace(client, "rql")
    await quota(client, ns, "compute", {"requests.cpu": "1", "limits.memory": "1Gi"})
    msg = await forbidden(client.create(PODS, pod("bare"), namespace=ns))
    assert msg == ('pods "bare" is forbidden: failed quota: compute: must specify limits.memory for: c; '
                   'requests.cpu for: c')
    # A LimitRange gives containers without resources its defaults, so the same pod now passes.
    await client.create(LIMITRANGES, {"metadata": {"name": "lr"}, "spec": {"limits": [{
        "type": "Container", "default": {"cpu": "500m", "memory": "256Mi"}, "defaultRequest": {"cpu": "400m"},
        "max": {"memory": "512Mi"}}]}}, namespace=ns)
    lr = await client.get(LIMITRANGES, "lr", namespace=ns)
    assert lr["spec"]["limits"][0]["defaultRequest"] == {"cpu": "400m", "memory": "256Mi"}  # from default

    async def created():
        return await client.create(PODS, pod("defaulted"), namespace=ns)

    p = await eventually(created, 5, "a pod defaulted by the limit range")
    assert p["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "500m", "memory": "256Mi"},
                                                      "requests": {"cpu": "400m", "memory": "256Mi"}}
    assert p["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c")
    assert await used(client, ns, "compute") == {"limits.memory": "256Mi", "requests.cpu": "400m"}
    # max: 403 as Kubernetes' LimitRanger.
    msg = await forbidden(client.create(PODS, pod("big", limits={"memory": "1Gi"}), namespace=ns))
    assert msg == 'pods "big" is forbidden: maximum memory usage per Container is 512Mi, but limit is 1Gi'
    # requests.cpu 1: 400m used, 700m more is too much.
    msg = await forbidden(client.create(PODS, pod("cpu", requests={"cpu": "700m"}, limits={"cpu": "1"}), namespace=ns))
    assert msg == ('pods "cpu" is forbidden: exceeded quota: compute, requested: requests.cpu=700m, '
                   'used: requests.cpu=400m, limited: requests.cpu=1')
    # An invalid limit range is a 422.
    with pytest.raises(APIError) as err:
        await client.create(LIMITRANGES, {"metadata": {"name": "bad"}, "spec": {"limits": [{
            "type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}}]}}, namespace=ns)
    assert err.value.code == 422 and "min value 2 is greater than max value 1" in err.value.message


async def test_an_update_is_charged_what_it_adds(env):
    client = env
    ns = await namespace(client, "rqu")
    await quota(client, ns, "np", {"services.nodeports": "1"})
    svc = await client.create(SERVICES, {"metadata": {"name": "s"}, "spec": {
        "selector": {"app": "x"}, "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}]}}, namespace=ns)
    svc["spec"]["type"] = "NodePort"
    msg = await forbidden(client.update(SERVICES, svc, namespace=ns))
    assert msg == ('services "s" is forbidden: exceeded quota: np, requested: services.nodeports=2, '
                   'used: services.nodeports=0, limited: services.nodeports=1')


async def test_usage_counts_only_the_quotas_tenant(env):
    client = env
    tenant = f"rqt{uuid.uuid4().hex[:6]}"
    await client.create(TENANTS, {"metadata": {"name": tenant}})
    ns = await namespace(client, "shared")
    await client.create(NAMESPACES, {"metadata": {"name": ns}}, tenant=tenant)
    await quota(client, ns, "one", {"pods": "1"})
    # The same namespace name in another tenant: its pods are not this quota's.
    await client.create(PODS, pod("other"), namespace=ns, tenant=tenant)
    await client.create(PODS, pod("mine"), namespace=ns)
    await forbidden(client.create(PODS, pod("mine2"), namespace=ns))
    await asyncio.sleep(0.4)
    assert (await used(client, ns, "one"))["pods"] == "1"
    # And a quota inside that tenant sees only its own namespace there.
    await quota(client, ns, "theirs", {"pods": "5"}, tenant=tenant)
    assert (await used(client, ns, "theirs", tenant))["pods"] == "1"


async def test_kubectl_create_and_get_quota(env, apiserver, tmp_path: Path):
    client = env
    ns = await namespace(client, "rqk")
    kubeconfig = write_dev_kubeconfig(tmp_path / "kubeconfig", apiserver.url)

    def kubectl(*args: str) -> str:
        out = subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), "-n", ns, *args], capture_output=True,
                             text=True, timeout=20)
        assert out.returncode == 0, out.stderr
        return out.stdout

    # kubectl 1.33 sends the quota as protobuf.
    assert kubectl("create", "quota", "kq", "--hard=pods=3,requests.cpu=1,limits.memory=2Gi") == (
        "resourcequota/kq created\n")
    await eventually(lambda: _used_is(client, ns, "kq", "pods", "0"), 10, "quota kq counted")
    await client.create(PODS, pod("p", requests={"cpu": "250m"}, limits={"memory": "1Gi"}), namespace=ns)
    await eventually(lambda: _used_is(client, ns, "kq", "pods", "1"), 10, "pod counted")
    lines = kubectl("get", "quota").splitlines()
    assert lines[0].split() == ["NAME", "AGE", "REQUEST", "LIMIT"]
    assert lines[1].split()[0] == "kq"
    assert lines[1].endswith("pods: 1/3, requests.cpu: 250m/1   limits.memory: 1Gi/2Gi")
    described = kubectl("describe", "quota", "kq")
    assert "Resource" in described and "requests.cpu" in described and "250m" in described
    lr = tmp_path / "lr.yaml"
    lr.write_text("apiVersion: v1\nkind: LimitRange\nmetadata: {name: kl}\nspec:\n  limits:\n"
                  "  - type: Container\n    max: {cpu: '2'}\n")
    assert kubectl("apply", "-f", str(lr)).strip() == "limitrange/kl created"
    lines = kubectl("get", "limitrange").splitlines()
    assert lines[0].split() == ["NAME", "CREATED", "AT"] and lines[1].startswith("kl ")
