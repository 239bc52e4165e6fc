"""ConfigMaps and Secrets resolved by the node agent (arktos.agent.volumes), against a real API server,
with the hollow runtime: volumes written and kept up to date, env from both, what is missing waits, what is
optional does not."""

from __future__ import annotations

import uuid

import aiohttp
import pytest

from arktos.agent.agent import NodeAgent, NodeAgentOptions
from arktos.agent.runtimes.hollow import HollowRuntime
from arktos.client import ClusterConfig
from tests.conftest import eventually
from tests.integration.test_api_http import call


class Recording(HollowRuntime):
    """The hollow runtime, remembering the last pod it was handed per uid."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.handed: dict[str, dict] = {}

    async def sync_pod(self, pod):
        self.handed[pod["metadata"]["uid"]] = pod
        return await super().sync_pod(pod)


def waiting(p: dict) -> dict:
    return ((p.get("status", {}).get("containerStatuses") or [{}])[0].get("state") or {}).get("waiting") or {}


@pytest.mark.timeout(60)
async def test_configmaps_and_secrets_reach_pods(apiserver, tmp_path):
    run = uuid.uuid4().hex[:6]
    node, ns = f"nv-{run}", f"vol-{run}"
    runtime = Recording("container", node_name=node)
    agent = NodeAgent(NodeAgentOptions(
        config=ClusterConfig.for_url(apiserver.url), node_name=node, runtimes=[runtime], cpu="2", memory="4Gi",
        lease_renew_interval=1, status_update_interval=1, sync_interval=5, relist_interval=0.2,
        root_dir=str(tmp_path), config_ttl=0.5))
    agent.volumes.tmpfs = False  # no mounts left behind by a test
    await agent.start()
    try:
        async with aiohttp.ClientSession(apiserver.url) as http:
            await call(http, "POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
            base = f"/api/v1/namespaces/{ns}"
            await call(http, "POST", f"{base}/configmaps", {"metadata": {"name": "cm"}, "data": {"greeting": "hi"}})
            await call(http, "POST", f"{base}/secrets", {"metadata": {"name": "sec"}, "stringData": {"pw": "s3"}})

            async def make(name: str, spec: dict) -> str:
                code, body = await call(http, "POST", f"{base}/pods", {
                    "metadata": {"name": name}, "spec": {"nodeName": node, **spec}})
                assert code == 201, body
                return body["metadata"]["uid"]

            async def pod(name: str) -> dict:
                return (await call(http, "GET", f"{base}/pods/{name}"))[1]

            async def running(name: str):
                p = await pod(name)
                return p if p.get("status", {}).get("phase") == "Running" else None

            # Volumes from both and env from both: written under the root, handed over as hostPath and values.
            uid = await make("full", {
                "volumes": [{"name": "cfg", "configMap": {"name": "cm"}},
                            {"name": "sec", "secret": {"secretName": "sec", "defaultMode": 0o400}}],
                "containers": [{"name": "c", "image": "busybox",
                                "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
                                "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "pw"}}},
                                        {"name": "OPT", "valueFrom": {"configMapKeyRef": {
                                            "name": "absent", "key": "k", "optional": True}}}],
                                "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"},
                                                 {"name": "sec", "mountPath": "/sec"}]}]})
            await eventually(lambda: running("full"), 10, "the pod running")
            vols = tmp_path / "pods" / uid / "volumes"
            assert (vols / "configmap" / "cfg" / "greeting").read_text() == "hi"
            assert (vols / "secret" / "sec" / "pw").read_text() == "s3"
            assert (vols / "secret" / "sec" / "pw").stat().st_mode & 0o777 == 0o400
            handed = runtime.handed[uid]
            assert {v["name"]: v["hostPath"]["path"] for v in handed["spec"]["volumes"]} == {
                "cfg": str(vols / "configmap" / "cfg"), "sec": str(vols / "secret" / "sec")}
            assert handed["spec"]["containers"][0]["env"] == [{"name": "CM_greeting", "value": "hi"},
                                                              {"name": "PW", "value": "s3"}]
            # An update reaches the file (the TTL here is half a second), through one atomic swap.
            await call(http, "PATCH", f"{base}/configmaps/cm", {"data": {"greeting": "hello"}},
                       ctype="application/merge-patch+json")

            async def updated():
                return (vols / "configmap" / "cfg" / "greeting").read_text() == "hello"

            await eventually(updated, 5, "the new value in the file")

            # A missing required ConfigMap in env: the container waits with kubelet's reason and message
            # (its sidecar starts meanwhile), and starts once the ConfigMap exists.
            later_uid = await make("later", {"containers": [
                {"name": "c", "image": "busybox", "env": [
                    {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "later", "key": "x"}}}]},
                {"name": "side", "image": "busybox"}]})

            async def config_error():
                w = waiting(await pod("later"))
                return w if w.get("reason") == "CreateContainerConfigError" else None

            w = await eventually(config_error, 10, "CreateContainerConfigError")
            assert w["message"] == 'configmap "later" not found'

            async def sidecar_running():
                p = await pod("later")
                states = {c["name"]: next(iter(c["state"])) for c in p["status"]["containerStatuses"]}
                ok = states == {"c": "waiting", "side": "running"} and p["status"]["phase"] == "Running"
                return p if ok else None

            await eventually(sidecar_running, 10, "the sidecar running while c waits")
            assert [c["name"] for c in runtime.handed[later_uid]["spec"]["containers"]] == ["side"]
            # A missing required volume holds the pod in ContainerCreating and says why in an event.
            await make("novol", {"volumes": [{"name": "v", "secret": {"secretName": "nosuch"}}],
                                 "containers": [{"name": "c", "image": "busybox"}]})

            async def failed_mount():
                _, evs = await call(http, "GET", f"{base}/events?fieldSelector=reason%3DFailedMount")
                return evs["items"]

            (ev,) = await eventually(failed_mount, 10, "a FailedMount event")
            assert ev["message"] == 'MountVolume.SetUp failed for volume "v" : secret "nosuch" not found'
            assert waiting(await pod("novol"))["reason"] == "ContainerCreating"
            await call(http, "POST", f"{base}/configmaps", {"metadata": {"name": "later"}, "data": {"x": "1"}})
            async def all_running():
                p = await pod("later")
                states = {c["name"]: next(iter(c["state"])) for c in p["status"]["containerStatuses"]}
                return states == {"c": "running", "side": "running"}

            await eventually(all_running, 10, "both containers running once the ConfigMap exists")
            assert runtime.handed[later_uid]["spec"]["containers"][0]["env"] == [{"name": "X", "value": "1"}]
            # Optional and missing: runs at once, with an empty volume.
            await make("optional", {"volumes": [{"name": "v", "configMap": {"name": "nosuch", "optional": True}}],
                                    "containers": [{"name": "c", "image": "busybox",
                                                    "envFrom": [{"secretRef": {"name": "nosuch", "optional": True}}]}]})
            await eventually(lambda: running("optional"), 10, "the optional pod running")
            # A deleted pod leaves nothing under the root.
            await call(http, "DELETE", f"{base}/pods/full")

            async def cleaned():
                return not (tmp_path / "pods" / uid).exists()

            await eventually(cleaned, 10, "the pod's volumes removed")
            await call(http, "DELETE", f"/api/v1/namespaces/{ns}")
    finally:
        await agent.stop()
        async with aiohttp.ClientSession(apiserver.url) as http:
            await call(http, "DELETE", f"/api/v1/nodes/{node}")
