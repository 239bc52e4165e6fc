"""The libvirt VM runtime against libvirt's in-process test driver (`test:///default`).

Real libvirt-python, real libvirt library, no mocks: the test driver keeps its
domains in this process, so every runtime here shares them.  libvirt-python is
imported unconditionally: a machine without it fails these tests rather than
skipping them (install: apt-get install libvirt-dev pkg-config; pip install
libvirt-python).  The last test runs node agents over it, in this process (where
the test driver's domains live), against the shared API server.  A real QEMU/KVM
boot is the opt-in `kvm` test, tests/e2e/test_kvm.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import uuid
from pathlib import Path

import aiohttp
import libvirt
import pytest

from arktos.agent.agent import NodeAgent, NodeAgentOptions
from arktos.agent.runtime import Runtime, RuntimeEvent
from arktos.agent.runtimes.libvirt import LibvirtRuntime, VMError
from arktos.client import ClusterConfig
from tests.conftest import eventually
from tests.integration.test_api_http import call

URI = "test:///default"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGtestkey me@example"


def vm_pod(power: str = "Running", **vm: object) -> dict:
    uid = str(uuid.uuid4())
    spec = {
        "name": "vm1",
        "image": "cirros",
        "publicKey": KEY,
        "userData": base64.b64encode(b"#!/bin/sh\necho hello-from-user-data\n").decode(),
        "cloudInitUserDataScript": "echo hello-from-script",
        "resources": {"limits": {"cpu": "1500m", "memory": "256Mi"}},
        "powerSpec": power,
    }
    spec.update(vm)
    return {
        "metadata": {"name": "vmpod", "namespace": "ns1", "tenant": "t1", "uid": uid},
        "spec": {"virtualMachine": spec, "restartPolicy": "Always"},
    }


@pytest.fixture
async def rt(tmp_path: Path) -> LibvirtRuntime:
    r = LibvirtRuntime(URI, image_dir=tmp_path / "images", state_dir=tmp_path / "vms")
    await r.start()
    return r


def domain(uid: str) -> libvirt.virDomain:
    return libvirt.open(URI).lookupByName(f"arktos-{uid}")


async def test_runtime_protocol_and_capacity(rt: LibvirtRuntime) -> None:
    assert isinstance(rt, LibvirtRuntime)
    r: Runtime = rt  # type-checks as the agent's protocol
    assert (r.kind, r.name) == ("vm", "libvirt")
    cap = rt.capacity()
    info = libvirt.open(URI).getInfo()
    assert cap == {"cpu": str(info[2]), "memory": f"{info[1]}Mi"}


async def test_vm_pod_lifecycle(rt: LibvirtRuntime, tmp_path: Path) -> None:
    pod = vm_pod()
    uid = pod["metadata"]["uid"]
    events: list[RuntimeEvent] = []
    rt.events = events.append  # what the agent turns into the pod's Events
    st = await rt.sync_pod(pod)
    assert (st.uid, st.namespace, st.name, st.tenant) == (uid, "ns1", "vmpod", "t1")
    [c] = st.containers
    assert (c.name, c.state, c.ready) == ("vm1", "running", True)
    vs = st.vm_status
    assert vs is not None
    assert vs["powerState"] == "running" and vs["state"] == "Active" and vs["ready"] is True
    assert vs["name"] == "vm1" and vs["imageId"] == "cirros" and vs["restartCount"] == 0
    dom = domain(uid)
    assert vs["virtualMachineId"] == dom.UUIDString()
    info = dom.info()
    assert info[3] == 2  # 1500m rounded up to whole vCPUs
    assert info[1] == 256 * 1024  # KiB
    assert vs["resources"]["limits"] == {"cpu": "2", "memory": "256Mi"}

    # cloud-init NoCloud files: the key, the user data and the script.
    ci = tmp_path / "vms" / uid / "cloud-init"
    user_data = (ci / "user-data").read_text()
    assert KEY in user_data and "ssh_authorized_keys" in user_data
    assert "hello-from-user-data" in user_data and "hello-from-script" in user_data
    meta_data = (ci / "meta-data").read_text()
    assert f"instance-id: {uid}" in meta_data and "hostname: vm1" in meta_data

    # Idempotent: a second sync changes nothing.
    st2 = await rt.sync_pod(pod)
    assert st2.vm_status is not None and st2.vm_status["virtualMachineId"] == vs["virtualMachineId"]

    # powerSpec Paused suspends, Running resumes.
    pod["spec"]["virtualMachine"]["powerSpec"] = "Paused"
    st = await rt.sync_pod(pod)
    assert st.vm_status is not None and st.vm_status["powerState"] == "paused"
    assert dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED
    assert not st.containers[0].ready
    pod["spec"]["virtualMachine"]["powerSpec"] = "Running"
    st = await rt.sync_pod(pod)
    assert st.vm_status is not None and st.vm_status["powerState"] == "running"
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING

    # Actions: reboot, snapshot, restore; errors are reported, not raised.
    res = await rt.action(pod, {"spec": {"podID": uid, "rebootAction": {"delayInSeconds": 0}}})
    assert res == {"complete": True, "rebootStatus": {"rebootSuccessful": True}}
    res = await rt.action(pod, {"spec": {"snapshotAction": {"snapshotName": "snap1"}}})
    assert res == {"complete": True, "snapshotStatus": {"snapshotID": "snap1"}}
    assert dom.snapshotListNames() == ["snap1"]
    res = await rt.action(pod, {"operation": "restore", "restoreParams": {"snapshotID": "snap1"}})
    assert res == {"complete": True, "restoreStatus": {"restoreSuccessful": True}}
    res = await rt.action(pod, {"spec": {"restoreAction": {"snapshotID": "nope"}}})
    assert res == {"complete": True, "error": "no snapshot 'nope' of this VM (its snapshots: snap1)",
                   "restoreStatus": {"restoreSuccessful": False}}
    res = await rt.action(pod, {"spec": {"snapshotAction": {}}})
    assert res == {"complete": True, "error": "snapshot action needs snapshotName"}

    # Suspended: managed save; Running resumes it without counting a restart.
    pod["spec"]["virtualMachine"]["powerSpec"] = "Suspended"
    st = await rt.sync_pod(pod)
    assert st.vm_status is not None and st.vm_status["powerState"] == "suspended"
    pod["spec"]["virtualMachine"]["powerSpec"] = "Running"
    st = await rt.sync_pod(pod)
    assert st.vm_status is not None and st.vm_status["powerState"] == "running"

    # Shutdown: powered off (not a crash), and starting again is no restart.
    pod["spec"]["virtualMachine"]["powerSpec"] = "Shutdown"
    st = await rt.sync_pod(pod)
    assert st.vm_status is not None and st.vm_status["powerState"] == "shutdown"
    assert st.containers[0].state == "terminated" and st.containers[0].exit_code == 0
    pod["spec"]["virtualMachine"]["powerSpec"] = "Running"
    st = await rt.sync_pod(pod)
    assert st.vm_status is not None and st.vm_status["powerState"] == "running"
    assert st.vm_status["restartCount"] == 0

    # The guest powering itself off under powerSpec Running and restartPolicy Always: restarted, counted.
    dom.shutdown()
    st = await rt.sync_pod(pod)
    assert st.vm_status is not None and st.vm_status["powerState"] == "running"
    assert st.vm_status["restartCount"] == 1 and st.containers[0].restart_count == 1
    assert [(e.reason, e.type) for e in events] == [
        ("Paused", "Normal"), ("Resumed", "Normal"), ("Suspended", "Normal"), ("ShuttingDown", "Normal"),
        ("Restarting", "Warning")]
    assert all(e.pod_uid == uid and e.container == "vm1" for e in events)
    assert "powered off: starting it again (restart 1, restartPolicy Always)" in events[-1].message

    # Adoption: a new runtime (as after an agent restart) finds the domain as the pod.
    rt2 = LibvirtRuntime(URI, image_dir=tmp_path / "images", state_dir=tmp_path / "vms")
    await rt2.start()
    adopted = {p.uid: p for p in await rt2.pods()}
    assert uid in adopted
    p = adopted[uid]
    assert (p.namespace, p.name, p.tenant) == ("ns1", "vmpod", "t1")
    assert p.containers[0].name == "vm1" and p.vm_status is not None and p.vm_status["powerState"] == "running"
    # The restart count lives in the domain's metadata, not in the runtime's memory: it survives.
    assert p.vm_status["restartCount"] == 1 and p.containers[0].restart_count == 1
    # The test driver's own "test" domain is not ours.
    assert all(q.uid for q in adopted.values())

    # Kill: gone from libvirt, from pods(), and its files removed.
    await rt2.kill_pod(pod, grace_seconds=2)
    with pytest.raises(libvirt.libvirtError):
        domain(uid)
    assert uid not in {p.uid for p in await rt.pods()}
    assert not (tmp_path / "vms" / uid).exists()
    await rt2.kill_pod(pod, grace_seconds=2)  # idempotent
    res = await rt.action(pod, {"spec": {"rebootAction": {}}})
    assert res["complete"] is True and "no VM" in res["error"]
    await rt.stop()
    await rt2.stop()


async def test_new_pod_paused_and_key_pair_file(rt: LibvirtRuntime, tmp_path: Path) -> None:
    (tmp_path / "vms" / "keypairs").mkdir(parents=True)
    (tmp_path / "vms" / "keypairs" / "mykey.pub").write_text(KEY + "\n")
    pod = vm_pod("Paused", publicKey=None, keyPairName="mykey", userData=None, cloudInitUserDataScript=None)
    pod["spec"]["virtualMachine"]["resources"] = {"requests": {"cpu": "1", "memory": "1Gi"}}
    uid = pod["metadata"]["uid"]
    st = await rt.sync_pod(pod)
    assert st.vm_status is not None and st.vm_status["powerState"] == "paused"
    assert domain(uid).info()[1] == 1024 * 1024
    user_data = (tmp_path / "vms" / uid / "cloud-init" / "user-data").read_text()
    assert user_data.startswith("#cloud-config") and KEY in user_data
    await rt.kill_pod(pod, 0)
    assert uid not in {p.uid for p in await rt.pods()}


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"name": ""}, "virtualMachine.name is required"),
        ({"publicKey": None}, "keyPairName or publicKey"),
        ({"resources": {"limits": {"memory": "lots"}}}, "resources"),
        ({"powerSpec": "Sleeping"}, "powerSpec 'Sleeping'"),
        ({"userData": "not base64!"}, "userData is not valid base64"),
        ({"image": ""}, "image is required"),
    ],
)
async def test_invalid_vm_spec_is_a_clear_error(rt: LibvirtRuntime, change: dict, words: str) -> None:
    pod = vm_pod(**change)
    with pytest.raises(VMError) as ei:
        await rt.sync_pod(pod)
    assert ei.value.reason == "InvalidVMSpec"
    assert words in str(ei.value)
    assert "ns1/vmpod" in str(ei.value)
    assert pod["metadata"]["uid"] not in {p.uid for p in await rt.pods()}


async def test_missing_key_pair_is_a_clear_error(rt: LibvirtRuntime) -> None:
    pod = vm_pod(publicKey=None, keyPairName="absent")
    with pytest.raises(VMError, match="key pair 'absent' not found") as ei:
        await rt.sync_pod(pod)
    assert ei.value.reason == "KeyPairNotFound"


def test_base_image_lookup_for_real_hypervisors(tmp_path: Path) -> None:
    """The image is a file in image_dir (no downloads); a missing one is ImageNotFound."""
    rt = LibvirtRuntime(URI, image_dir=tmp_path / "images", state_dir=tmp_path / "vms")  # no connection needed
    images = tmp_path / "images"
    images.mkdir()
    if shutil.which("qemu-img"):  # it checks the base: give it a real (empty) qcow2
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(images / "cirros.qcow2"), "1M"], check=True)
    else:  # without qemu-img the runtime copies a qcow2 base: any bytes with the magic do
        (images / "cirros.qcow2").write_bytes(b"QFI\xfb" + b"\0" * 100)
    base = rt._find_image("docker.io/library/cirros:0.6")
    assert base == images / "cirros.qcow2"
    with pytest.raises(VMError, match="image 'ubuntu' not found") as ei:
        rt._find_image("ubuntu")
    assert ei.value.reason == "ImageNotFound"
    overlay = rt._overlay(base, tmp_path / "disk.qcow2")
    assert overlay.read_bytes()[:4] == b"QFI\xfb"
    if shutil.which("qemu-img"):  # a copy-on-write overlay, not a copy
        info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(overlay)], check=True,
                                         capture_output=True, text=True).stdout)
        assert info["backing-filename"] == str(base.resolve()) and info["backing-filename-format"] == "qcow2"


async def test_console_log_and_no_exec(rt: LibvirtRuntime) -> None:
    """`kubectl logs` of a VM pod is its serial console; the test driver writes none, which reads as empty."""
    from arktos.agent.runtime import NoSuchContainer, NotSupported

    pod = vm_pod()
    uid = pod["metadata"]["uid"]
    with pytest.raises(NoSuchContainer):
        await rt.log_file(pod, "vm1")  # no domain yet
    await rt.sync_pod(pod)
    log = await rt.log_file(pod, "vm1")
    assert log.cri is False and log.path == rt.pod_dir(uid) / "console.log" and log.path.read_bytes() == b""
    with pytest.raises(NoSuchContainer):
        await rt.log_file(pod, "other")
    with pytest.raises(NotSupported, match="no previous instance"):
        await rt.log_file(pod, "vm1", previous=True)
    with pytest.raises(NotSupported, match="exec is not supported for VM pods; use the VM's console or SSH"):
        await rt.exec_url(pod, "vm1", ["sh"], stdin=True, stdout=True, stderr=False, tty=True)
    await rt.kill_pod(pod, 0)


@pytest.mark.timeout(60)
async def test_agent_restart_adopts_the_vm_and_keeps_counting_its_restarts(apiserver, tmp_path: Path) -> None:
    """A node agent (in this process, where the test driver keeps its domains) restarts a VM that powered
    itself off; a new agent with a new runtime adopts it and keeps counting from there, not from 0."""
    run = uuid.uuid4().hex[:6]
    node, ns = f"lv-{run}", f"lv-{run}"

    def make_agent() -> NodeAgent:
        runtime = LibvirtRuntime(URI, image_dir=tmp_path / "images", state_dir=tmp_path / "vms")
        return NodeAgent(NodeAgentOptions(
            config=ClusterConfig.for_url(apiserver.url), node_name=node, runtimes=[runtime], cpu="2",
            memory="4Gi", lease_renew_interval=1, status_update_interval=1, sync_interval=1, relist_interval=0.2,
            backoff_initial=0.5, backoff_max=1))

    agents = [make_agent()]
    await agents[0].start()
    uid = ""
    try:
        async with aiohttp.ClientSession(apiserver.url) as http:
            await call(http, "POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
            pod = vm_pod()
            pod["metadata"] = {"name": "vm"}
            pod["spec"]["nodeName"] = node
            code, body = await call(http, "POST", f"/api/v1/namespaces/{ns}/pods", pod)
            assert code == 201, body
            uid = body["metadata"]["uid"]

            async def vm_status(restarts: int):
                _, p = await call(http, "GET", f"/api/v1/namespaces/{ns}/pods/vm")
                vs = p.get("status", {}).get("virtualMachineStatus") or {}
                ok = vs.get("powerState") == "running" and vs.get("restartCount") == restarts
                return vs if ok and p["status"]["phase"] == "Running" else None

            running = await eventually(lambda: vm_status(0), 15, "the VM running")
            domain(uid).shutdown()  # the guest powers itself off; restartPolicy Always starts it again
            await eventually(lambda: vm_status(1), 15, "the VM restarted once")

            await agents.pop().stop()
            agents.append(make_agent())
            await agents[0].start()
            await asyncio.sleep(2)  # the new agent has synced the pod by now
            assert await vm_status(1), "the restart count was lost with the agent"
            domain(uid).shutdown()
            again = await eventually(lambda: vm_status(2), 15, "the second restart counted after the first")
            assert again["virtualMachineId"] == running["virtualMachineId"]  # adopted, never re-created

            _, evs = await call(http, "GET", f"/api/v1/namespaces/{ns}/events?fieldSelector=involvedObject.name%3Dvm")
            by_reason = {e["reason"]: e for e in evs["items"]}
            assert by_reason["Restarting"]["type"] == "Warning"
            assert "powered off: starting it again (restart 2" in by_reason["Restarting"]["message"]
            assert by_reason["Created"]["count"] == 1  # one domain, started three times
            await call(http, "DELETE", f"/api/v1/namespaces/{ns}")
    finally:
        for agent in agents:
            await agent.stop()
        if uid:  # the test driver's domains live as long as this process: leave none behind
            await LibvirtRuntime(URI, state_dir=tmp_path / "vms").kill_pod({"metadata": {"uid": uid}}, 0)
        async with aiohttp.ClientSession(apiserver.url) as http:
            await call(http, "DELETE", f"/api/v1/nodes/{node}")
