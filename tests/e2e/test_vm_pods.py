"""VM pods as a tenant user meets them, on a secure cluster with a real agent and the libvirt runtime.

An HTTPS API server with its PKI, the scheduler and one `arktos node-agent` process (its own node
certificate) running container pods on the hollow runtime and VM pods on libvirt's test driver
(`test:///default`: real libvirt, domains in the agent's process).  A tenant user, not the system
admin, drives everything with the real kubectl and the official Python client:

* a VM pod and a container pod share the node's allocatable resources (the scheduler counts both);
* reboot, snapshot and restore through `pods/{name}/action` complete, and the Action status says so;
  a restore to an unknown snapshot ends with an error in the Action status, an action on a container
  pod is refused at once;
* the agent's Events (source kubelet, host the node) are in the user's tenant and namespace, next to
  the scheduler's, and another tenant sees none of them.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.conftest import ComponentProc
from tests.e2e.test_security import admin, kubectl, make_tenant, request

pytestmark = pytest.mark.kubectl

AGENT_TIMING = ("--lease-renew-interval", "1", "--status-update-interval", "1", "--sync-frequency", "2",
                "--relist-interval", "0.5")


def wait_for(check, timeout: float, what: str):
    """Poll `check` (a plain function) until it returns something truthy; that, or an AssertionError."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"{what} not true after {timeout}s; last: {last!r}")


def get_json(cfg: Path, *args: str) -> dict:
    return json.loads(kubectl(cfg, "get", *args, "-o", "json").stdout)


def post_action(cfg: Path, pod: str, body: dict, check: bool = True):
    """POST pods/{pod}/action as kubectl does it for raw paths (the short path: the user's tenant)."""
    return kubectl(cfg, "create", "--raw", f"/api/v1/namespaces/default/pods/{pod}/action", "-f", "-",
                   input=json.dumps(body), check=check)


def finished_action(cfg: Path, name: str) -> dict:
    def done():
        a = get_json(cfg, "actions", name)
        return a if (a.get("status") or {}).get("complete") else None

    return wait_for(done, 20, f"action {name} complete")


@pytest.mark.timeout(180)
def test_vm_and_container_pods_actions_and_events_as_a_tenant_user(secure, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:6]
    node, tenant, other = f"vmnode-{run}", f"vmt-{run}", f"vmo-{run}"
    make_tenant(secure, tenant, ("alice",))
    make_tenant(secure, other, ("bob",))
    alice = secure.kubeconfig(f"alice-{tenant}", cert=secure.pki.tenant_client(tenant, "alice"), tenant=tenant)
    bob = secure.kubeconfig(f"bob-{other}", cert=secure.pki.tenant_client(other, "bob"), tenant=other)
    sched_cfg = secure.kubeconfig(f"scheduler-{run}", cert=secure.pki.client("system:kube-scheduler"))
    node_cfg = secure.kubeconfig(f"node-{run}", cert=secure.pki.node_client(node))
    # The control plane's part (a node may not create namespaces): where node Leases live.
    status, body = request(secure, "/api/v1/namespaces", cert=secure.pki.admin, method="POST",
                           body={"metadata": {"name": "kube-node-lease"}})
    assert status in (201, 409), body
    procs = [
        ComponentProc("scheduler", tmp_path / "scheduler.log",
                      ["--kubeconfig", str(sched_cfg), "--no-leader-elect"]),
        ComponentProc("node-agent", tmp_path / "agent.log", [
            "--kubeconfig", str(node_cfg), "--node-name", node, "--runtimes", "hollow,libvirt",
            "--libvirt-uri", "test:///default", "--root-dir", str(tmp_path / "agent"),
            "--cpu", "2", "--memory", "4Gi", *AGENT_TIMING]),
    ]
    try:
        def node_ready():
            n = get_json(admin(secure), "node", node) if kubectl(admin(secure), "get", "node", node,
                                                                  check=False).returncode == 0 else {}
            conds = {c["type"]: c["status"] for c in (n.get("status") or {}).get("conditions") or []}
            return n if conds.get("Ready") == "True" else None

        n = wait_for(node_ready, 30, f"node {node} Ready")
        assert n["metadata"]["labels"]["arktos.io/runtime-vm"] == "true"
        assert n["status"]["allocatable"]["cpu"] == "2"

        # One allocatable for both kinds: a 1-CPU VM and a 1-CPU container fill the node ...
        pin = {"nodeSelector": {"kubernetes.io/hostname": node}}
        vm = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "vm"}, "spec": {**pin, "virtualMachine": {
            "name": "vm", "image": "cirros", "publicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAItest alice@example",
            "resources": {"requests": {"cpu": "1", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}}}}
        ctr = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "c"}, "spec": {**pin, "containers": [{
            "name": "c", "image": "busybox", "resources": {"requests": {"cpu": "1", "memory": "64Mi"}}}]}}
        extra = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "extra"}, "spec": {**pin, "containers": [{
            "name": "c", "image": "busybox", "resources": {"requests": {"cpu": "500m"}}}]}}
        kubectl(alice, "apply", "-f", "-", input=yaml.safe_dump_all([vm, ctr]))
        kubectl(alice, "wait", "pod/vm", "--for=condition=VirtualMachineReady", "--timeout=40s")
        kubectl(alice, "wait", "pod/c", "--for=condition=Ready", "--timeout=40s")
        vm_pod = get_json(alice, "pod", "vm")
        assert vm_pod["spec"]["nodeName"] == node and vm_pod["status"]["phase"] == "Running"
        vm_status = vm_pod["status"]["virtualMachineStatus"]
        assert vm_status["powerState"] == "running" and vm_status["ready"] is True
        assert vm_status["resources"]["limits"] == {"cpu": "1", "memory": "512Mi"}
        assert get_json(alice, "pod", "c")["spec"]["nodeName"] == node
        # ... so half a CPU more does not fit anywhere it may go.
        kubectl(alice, "apply", "-f", "-", input=yaml.safe_dump(extra))

        def unschedulable():
            evs = get_json(alice, "events", "--field-selector", "involvedObject.name=extra,reason=FailedScheduling")
            return evs["items"]

        (failed,) = wait_for(unschedulable, 20, "FailedScheduling for the extra pod")
        assert "1 Insufficient cpu" in failed["message"], failed

        # Actions, as the tenant user: reboot, snapshot, restore to it.
        out = post_action(alice, "vm", {"kind": "CustomAction", "operation": "reboot",
                                        "rebootParams": {"delayInSeconds": 0}})
        reboot = finished_action(alice, json.loads(out.stdout)["details"]["name"])
        assert reboot["status"]["rebootStatus"] == {"rebootSuccessful": True} and not reboot["status"].get("error")
        assert reboot["spec"]["nodeName"] == node and reboot["status"]["podName"] == "vm"
        time.sleep(1.1)  # actions are named {operation}-{unixSeconds}
        out = post_action(alice, "vm", {"kind": "CustomAction", "operation": "snapshot",
                                        "snapshotParams": {"snapshotName": "before-upgrade"}})
        snap = finished_action(alice, json.loads(out.stdout)["details"]["name"])
        assert snap["status"]["snapshotStatus"] == {"snapshotID": "before-upgrade"}, snap
        assert snap["status"]["podID"] == vm_pod["metadata"]["uid"] and not snap["status"].get("error")
        out = post_action(alice, "vm", {"kind": "CustomAction", "operation": "restore",
                                        "restoreParams": {"snapshotID": "before-upgrade"}})
        restore = finished_action(alice, json.loads(out.stdout)["details"]["name"])
        assert restore["status"]["restoreStatus"] == {"restoreSuccessful": True}, restore
        assert not restore["status"].get("error")

        # Bad input: a snapshot that does not exist fails in the Action status, with the reason ...
        time.sleep(1.1)
        out = post_action(alice, "vm", {"kind": "CustomAction", "operation": "restore",
                                        "restoreParams": {"snapshotID": "no-such-snapshot"}})
        bad = finished_action(alice, json.loads(out.stdout)["details"]["name"])
        assert bad["status"]["restoreStatus"] == {"restoreSuccessful": False}
        assert bad["status"]["error"] == "no snapshot 'no-such-snapshot' of this VM (its snapshots: before-upgrade)"
        # ... and an action on a container pod is refused at once.
        refused = post_action(alice, "c", {"kind": "CustomAction", "operation": "reboot"}, check=False)
        assert refused.returncode != 0 and "pod c is not a VM pod" in refused.stderr, refused.stderr

        # The VM still runs, the same one.
        after = get_json(alice, "pod", "vm")["status"]
        assert after["phase"] == "Running" and after["virtualMachineStatus"]["powerState"] == "running"
        assert after["virtualMachineStatus"]["virtualMachineId"] == vm_status["virtualMachineId"]
        assert {c["type"]: c["status"] for c in after["conditions"]}["VirtualMachineReady"] == "True"
        actions = {a["metadata"]["name"] for a in get_json(alice, "actions")["items"]}
        assert {reboot["metadata"]["name"], snap["metadata"]["name"], bad["metadata"]["name"]} <= actions

        # Deleting the container pod frees its CPU: the agent stops it (Killing), the extra pod lands.
        kubectl(alice, "delete", "pod", "c", "--wait=true", "--timeout=30s")
        kubectl(alice, "wait", "pod/extra", "--for=condition=Ready", "--timeout=40s")

        # Events: where the tenant user looks, through the official Python client.
        api = k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(alice)))

        def story():
            items = api.list_namespaced_event("default").items
            return items if {"Killing", "ActionFailed"} <= {e.reason for e in items} else None

        items = wait_for(story, 20, "the agent's Killing and ActionFailed events")
        by_pod: dict[str, dict[str, object]] = {}
        for e in items:
            by_pod.setdefault(e.involved_object.name, {})[e.reason] = e
        vm_events, c_events = by_pod["vm"], by_pod["c"]
        assert {"Scheduled", "Created", "Started", "Rebooted", "SnapshotCreated", "SnapshotRestored",
                "ActionFailed"} <= set(vm_events), sorted(vm_events)
        assert {"Scheduled", "Pulled", "Created", "Started", "Killing"} <= set(c_events), sorted(c_events)
        for reason in ("Created", "Started", "Rebooted", "SnapshotRestored", "ActionFailed"):
            e = vm_events[reason]
            assert (e.source.component, e.source.host) == ("kubelet", node), e
            assert e.involved_object.uid == vm_pod["metadata"]["uid"] and e.involved_object.kind == "Pod"
            assert e.involved_object.field_path == "spec.virtualMachine"
        assert vm_events["Started"].message == "Started virtual machine vm"
        assert vm_events["ActionFailed"].type == "Warning" and "no-such-snapshot" in vm_events["ActionFailed"].message
        assert vm_events["SnapshotCreated"].message.startswith("Snapshot before-upgrade of virtual machine vm taken")
        assert c_events["Killing"].message == "Stopping container c"
        assert vm_events["Scheduled"].source.component == "default-scheduler"

        # kubectl shows them too, and another tenant sees none of them.
        listed = kubectl(alice, "get", "events", "--field-selector", "involvedObject.name=vm").stdout
        assert "SnapshotRestored" in listed and "Rebooted" in listed
        uids = {vm_pod["metadata"]["uid"]}
        theirs = get_json(bob, "events", "-A")["items"]
        assert not [e for e in theirs if e["involvedObject"].get("uid") in uids]
        status, _ = request(secure, f"/api/v1/tenants/{tenant}/namespaces/default/events",
                            cert=secure.pki.tenant_client(other, "bob"))
        assert status == 403

        # The node's own events are the system tenant's, where `kubectl describe node` finds them.
        node_events = get_json(admin(secure), "events", "-n", "default", "--field-selector",
                               f"involvedObject.kind=Node,involvedObject.name={node}")["items"]
        assert {"Starting", "NodeReady"} <= {e["reason"] for e in node_events}
        assert "Starting node agent." in kubectl(admin(secure), "describe", "node", node).stdout
    finally:
        for p in procs:
            p.stop()
        kubectl(admin(secure), "delete", "node", node, "--ignore-not-found", check=False)
        # Other tests share this API server: leave no pod bound to the node that is gone.
        request(secure, f"/api/v1/tenants/{tenant}/namespaces/default/pods", cert=secure.pki.admin, method="DELETE",
                body={"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0})
