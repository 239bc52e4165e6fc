"""The containerd runtime against a real containerd, runc and CNI bridge, with the locally built busybox image.

These tests drive the runtime directly (no API server), the way the node agent does: sync a pod, read
what the runtime reports, let a container exit and restart it, kill the pod.  The agent and API server
on top of it are in tests/e2e/test_containers.py.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import uuid
from pathlib import Path

import pytest

from arktos.agent.runtime import NoSuchContainer, NotSupported, PodState, RuntimeEvent
from arktos.agent.runtimes.containerd import ContainerdRuntime
from arktos.cluster.images import BUSYBOX_IMAGE
from tests.conftest import eventually

pytestmark = pytest.mark.timeout(120)


def pod(name: str, *containers: dict, policy: str = "Always", **spec: object) -> dict:
    return {"metadata": {"name": name, "namespace": "default", "tenant": "t1", "uid": str(uuid.uuid4())},
            "spec": {"restartPolicy": policy, "terminationGracePeriodSeconds": 2,
                     "containers": list(containers), **spec}}


def box(name: str, script: str, **extra: object) -> dict:
    return {"name": name, "image": BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", script], **extra}


@pytest.fixture
async def runtime(containerd, tmp_path):
    rt = ContainerdRuntime(containerd.socket, node_name=f"n-{uuid.uuid4().hex[:6]}", root_dir=tmp_path)
    events: list[RuntimeEvent] = []
    rt.events = events.append
    rt.host_ip = "127.0.0.1"
    await rt.start()
    rt.recorded = events  # type: ignore[attr-defined]
    yield rt
    for state in await rt.pods():  # nothing outlives a test
        await rt.kill_pod({"metadata": {"uid": state.uid, "name": state.name, "namespace": state.namespace,
                                        "tenant": state.tenant}}, 0)
    await rt.stop()


async def state_of(rt: ContainerdRuntime, uid: str) -> PodState | None:
    return next((p for p in await rt.pods() if p.uid == uid), None)


async def test_a_pod_runs_with_its_own_ip_env_mounts_and_logs(runtime, containerd):
    p = pod("web", box("main", "echo hello from $(POD) in $MY_NS; ls /data; sleep 3600",
                       env=[{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {"name": "MY_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
                       volumeMounts=[{"name": "scratch", "mountPath": "/data"}],
                       resources={"limits": {"cpu": "250m", "memory": "64Mi"}}),
            volumes=[{"name": "scratch", "emptyDir": {}}])
    state = await runtime.sync_pod(p)
    [c] = state.containers
    assert (c.name, c.state, c.ready, c.restart_count) == ("main", "running", True, 0)
    assert c.container_id.startswith("containerd://") and c.image_id.startswith("sha256:")
    assert ipaddress.ip_address(state.ip) in ipaddress.ip_network(containerd.subnet)
    # Idempotent: a second sync starts nothing new.
    again = await runtime.sync_pod(p)
    assert again.containers[0].container_id == c.container_id
    log = await runtime.log_file(p, "main")
    assert log.cri

    async def logged():
        text = log.path.read_text() if log.path.exists() else ""
        return "stdout F hello from web in default" in text and text
    await eventually(logged, what="the container's output in its CRI log")
    reasons = [e.reason for e in runtime.recorded]
    assert "Pulled" in reasons  # "already present on machine": nothing was pulled
    # The pod is found again by listing (adoption after an agent restart).
    listed = await state_of(runtime, p["metadata"]["uid"])
    assert listed is not None and (listed.name, listed.tenant, listed.ip) == ("web", "t1", state.ip)


async def test_exits_restart_per_policy_and_previous_logs_stay(runtime):
    always = pod("crash", box("main", "echo run; exit 3"))
    never = pod("once", box("main", "echo done; exit 0"), policy="Never")
    for p in (always, never):
        await runtime.sync_pod(p)

    async def exited(p: dict, code: int):
        s = await state_of(runtime, p["metadata"]["uid"])
        return s and s.containers[0].state == "terminated" and s.containers[0].exit_code == code and s
    first = await eventually(lambda: exited(always, 3), what="the crash container exited 3")
    assert first.containers[0].reason == "Error"
    done = await eventually(lambda: exited(never, 0), what="the run-once container exited 0")
    assert done.containers[0].reason == "Completed"
    # Always: the next sync starts attempt 1; Never: nothing restarts.
    restarted = await runtime.sync_pod(always)
    assert restarted.containers[0].restart_count == 1
    assert (await runtime.sync_pod(never)).containers[0].restart_count == 0
    previous = await runtime.log_file(always, "main", previous=True)
    assert "stdout F run" in previous.path.read_text()
    with pytest.raises(NoSuchContainer):
        await runtime.log_file(never, "main", previous=True)
    # Exec into an exited container is refused with a reason, not a stream that never ends.
    with pytest.raises(NotSupported):
        await runtime.exec_url(never, "main", ["true"], stdin=False, stdout=True, stderr=True, tty=False)


async def test_a_killed_process_is_seen_exited_and_kill_pod_removes_everything(runtime, containerd):
    p = pod("victim", box("main", "sleep 3600"))
    state = await runtime.sync_pod(p)
    cid = state.containers[0].container_id.removeprefix("containerd://")
    info = (await runtime.cri.call("ContainerStatus", container_id=cid, verbose=True)).info["info"]
    import json
    pid = json.loads(info)["pid"]
    os.kill(pid, signal.SIGKILL)  # what the OOM killer or a stray kill does

    async def seen():
        s = await state_of(runtime, p["metadata"]["uid"])
        return s and s.containers[0].state == "terminated" and s.containers[0].exit_code == 137
    await eventually(seen, what="the killed container reported exited with 137")
    assert (await runtime.sync_pod(p)).containers[0].restart_count == 1
    url = await runtime.exec_url(p, "main", ["true"], stdin=False, stdout=True, stderr=True, tty=False)
    assert url.startswith("http://127.0.0.1:")  # containerd's stream server, reached only through the agent
    pod_dir = runtime.pod_dir(p)
    assert pod_dir.exists()
    await runtime.kill_pod(p, 1)
    assert await state_of(runtime, p["metadata"]["uid"]) is None
    sandboxes = (await runtime.cri.call("ListPodSandbox", filter={"label_selector": {
        "arktos.io/pod-uid": p["metadata"]["uid"]}})).items
    assert list(sandboxes) == [] and not pod_dir.exists()
    await runtime.kill_pod(p, 1)  # idempotent


async def test_images_that_cannot_be_had_say_why(runtime):
    never = pod("nopull", {"name": "main", "image": "arktos.local/absent:1", "imagePullPolicy": "Never"})
    state = await runtime.sync_pod(never)
    c = state.containers[0]
    assert (c.state, c.reason) == ("waiting", "ErrImageNeverPull") and "not present" in c.message
    # No registry is reachable here: the pull fails fast and is then backed off.
    remote = pod("remote", {"name": "main", "image": "registry.invalid/app:1", "imagePullPolicy": "IfNotPresent"})
    c = (await runtime.sync_pod(remote)).containers[0]
    assert (c.state, c.reason) == ("waiting", "ErrImagePull"), c
    c = (await runtime.sync_pod(remote)).containers[0]
    assert (c.state, c.reason) == ("waiting", "ImagePullBackOff"), c
    assert any(e.reason == "Failed" and e.type == "Warning" for e in runtime.recorded)
    # pods() reports the waiting container too (the agent's relist must not lose it).
    listed = await state_of(runtime, remote["metadata"]["uid"])
    assert listed is not None and listed.containers[0].reason in ("ErrImagePull", "ImagePullBackOff")


async def test_another_nodes_pods_are_invisible(runtime, containerd, tmp_path):
    other = ContainerdRuntime(containerd.socket, node_name="someone-else", root_dir=Path(tmp_path, "other"))
    await other.start()
    try:
        p = pod("mine", box("main", "sleep 3600"))
        await runtime.sync_pod(p)
        assert p["metadata"]["uid"] not in {s.uid for s in await other.pods()}
    finally:
        await other.stop()
    await asyncio.sleep(0)


async def test_a_changed_container_spec_replaces_the_container(runtime):
    p = pod("edited", box("main", "echo v1; sleep 3600"))
    first = (await runtime.sync_pod(p)).containers[0]
    p["spec"]["containers"][0]["command"] = ["sh", "-c", "echo v2; sleep 3600"]  # as `kubectl edit` would
    second = (await runtime.sync_pod(p)).containers[0]
    assert second.container_id != first.container_id and second.restart_count == 1 and second.state == "running"
    assert "Killing" in [e.reason for e in runtime.recorded]
    # Unchanged from here on: nothing more is replaced.
    assert (await runtime.sync_pod(p)).containers[0].container_id == second.container_id


async def test_init_containers_run_in_order_before_the_containers(runtime):
    shared = [{"name": "work", "mountPath": "/work"}]
    p = pod("inits", box("main", "cat /work/steps; sleep 3600", volumeMounts=shared),
            initContainers=[box("first", "echo one > /work/steps", volumeMounts=shared),
                            box("second", "echo two >> /work/steps", volumeMounts=shared)],
            volumes=[{"name": "work", "emptyDir": {}}])
    uid = p["metadata"]["uid"]
    state = await runtime.sync_pod(p)
    assert [c.name for c in state.init_containers] == ["first"] and state.containers == []

    async def step():  # what the agent does: sync whenever the relist shows an init container finished
        s = await state_of(runtime, uid)
        if s and all(c.state == "terminated" for c in s.init_containers):
            s = await runtime.sync_pod(p)
        return s and s.containers and s.containers[0].state == "running" and s
    done = await eventually(step, what="both init containers done and the container running")
    assert [(c.name, c.state, c.exit_code) for c in done.init_containers] == [
        ("first", "terminated", 0), ("second", "terminated", 0)]
    log = await runtime.log_file(p, "main")

    async def logged():
        return log.path.exists() and "stdout F two" in log.path.read_text()
    await eventually(logged, what="the container saw both init containers' work")
    assert "stdout F one" in log.path.read_text()

    # A failing init container with restartPolicy Never: nothing after it starts, ever.
    bad = pod("badinit", box("main", "sleep 3600"), policy="Never",
              initContainers=[box("check", "exit 7")])
    await runtime.sync_pod(bad)

    async def failed():
        s = await state_of(runtime, bad["metadata"]["uid"])
        return s and s.init_containers and s.init_containers[0].exit_code == 7 and s
    await eventually(failed, what="the init container failed")
    again = await runtime.sync_pod(bad)
    assert again.containers == [] and again.init_containers[0].restart_count == 0


async def test_exec_sync_and_kill_container_for_probes(runtime):
    p = pod("probed", box("main", 'trap "exit 143" TERM; while true; do sleep 1; done'))
    uid = p["metadata"]["uid"]
    await runtime.sync_pod(p)
    state = await eventually(lambda: state_of(runtime, uid), 20, "the pod listed")
    assert await runtime.exec_sync(p, "main", ["sh", "-c", "echo out; echo err >&2; exit 3"], 2) == \
        (3, b"out\n", b"err\n")
    with pytest.raises(TimeoutError):
        await runtime.exec_sync(p, "main", ["sleep", "5"], 1)
    with pytest.raises(NoSuchContainer):
        await runtime.exec_sync(p, "nope", ["true"], 1)
    running = state.containers[0].container_id
    await runtime.kill_container(p, "main", 2, container_id="containerd://another")  # not this instance: kept
    assert (await state_of(runtime, uid)).containers[0].state == "running"
    await runtime.kill_container(p, "main", 2, container_id=running)
    c = (await state_of(runtime, uid)).containers[0]
    assert (c.state, c.exit_code, c.container_id) == ("terminated", 143, running)
    with pytest.raises(NoSuchContainer):
        await runtime.exec_sync(p, "main", ["true"], 1)
    c = (await runtime.sync_pod(p)).containers[0]  # restartPolicy Always: a new instance
    assert (c.state, c.restart_count) == ("running", 1) and c.container_id != running
