"""Three workload controller manager instances share 300 Deployments and survive losing one."""

from __future__ import annotations

import asyncio
import re
import signal
import time
import uuid

import aiohttp
import pytest

from tests.conftest import ComponentProc
from tests.integration.test_api_http import call


def start_instances(server: str, count: int, log_path) -> dict[str, ComponentProc]:
    return {f"i{i}": ComponentProc("workload-controller-manager", log_path, [
        "--master", server, "--instance-id", f"i{i}", "--member-lease-duration", "3", "--member-period", "0.5"])
        for i in range(count)}


def deployment(name: str) -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}


async def converged(http, ns: str, names: set[str]) -> set[str]:
    code, body = await call(http, "GET", f"/apis/apps/v1/namespaces/{ns}/deployments")
    assert code == 200
    done = {d["metadata"]["name"] for d in body["items"]
            if (d.get("status") or {}).get("replicas") == 1
            and (d.get("status") or {}).get("observedGeneration") == d["metadata"]["generation"]}
    return names - done


async def wait_converged(http, ns: str, names: set[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    left = names
    while time.monotonic() < deadline:
        left = await converged(http, ns, names)
        if not left:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{len(left)} deployments did not converge, e.g. {sorted(left)[:5]}")


def watch_events_by_client(metrics: str, resource: str) -> dict[str, float]:
    out: dict[str, float] = {}
    pattern = re.compile(r'apiserver_watch_events_by_client_total\{client="([^"]+)",group="[^"]*",'
                         rf'resource="{resource}"\}} ([0-9.e+]+)')
    for client, value in pattern.findall(metrics):
        out[client] = float(value)
    return out


@pytest.mark.timeout(240)
async def test_three_instances_split_300_deployments_and_survive_a_sigkill(apiserver, tmp_path):
    ns = f"wcm-{uuid.uuid4().hex[:6]}"
    procs = start_instances(apiserver.url, 3, tmp_path / "wcm.log")
    try:
        async with aiohttp.ClientSession(apiserver.url) as http:
            await call(http, "POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
            # Wait until the three have split the space (each publishes its range).
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                code, body = await call(http, "GET", "/api/v1/controllerinstances")
                mine = [c for c in body["items"] if c["metadata"]["name"].startswith("deployment-i")
                        and not c["isLocked"]]
                if len(mine) == 3:
                    break
                await asyncio.sleep(0.3)
            assert len(mine) == 3, body
            async with http.get("/metrics") as r:
                before = watch_events_by_client(await r.text(), "deployments")
            names = {f"d{i:03d}" for i in range(300)}
            sem = asyncio.Semaphore(16)

            async def create(name: str) -> None:
                async with sem:
                    code, body = await call(http, "POST", f"/apis/apps/v1/namespaces/{ns}/deployments",
                                            deployment(name))
                    assert code == 201, body

            await asyncio.gather(*(create(n) for n in names))
            await wait_converged(http, ns, names, 90)
            async with http.get("/metrics") as r:
                after = watch_events_by_client(await r.text(), "deployments")
            shares = {c: after.get(c, 0) - before.get(c, 0) for c in after
                      if c.startswith("arktos-workload-controller-manager-i")}
            total = sum(shares.values())
            assert len(shares) == 3 and total > 0, shares
            # Each instance watches its own range only: about a third each, never everything.
            assert all(0.15 * total < v < 0.55 * total for v in shares.values()), shares
            print(f"\ndeployment watch events per instance for 300 deployments: {shares}")

            # SIGKILL one instance; its range moves to the others and new work still converges.
            procs["i1"].stop(signal.SIGKILL)
            more = {f"e{i:03d}" for i in range(60)}
            await asyncio.gather(*(create(n) for n in more))
            await wait_converged(http, ns, more | names, 90)
            code, body = await call(http, "GET", "/api/v1/controllerinstances")
            assert not any(c["metadata"]["name"].endswith("-i1") for c in body["items"])
            # Nothing was handled twice: each deployment has exactly one ReplicaSet.
            code, rss = await call(http, "GET", f"/apis/apps/v1/namespaces/{ns}/replicasets")
            assert code == 200
            owners = [o["name"] for rs in rss["items"] for o in rs["metadata"].get("ownerReferences", [])]
            assert sorted(owners) == sorted(more | names)
    finally:
        for p in procs.values():
            p.stop()
