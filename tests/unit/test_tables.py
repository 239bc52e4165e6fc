"""Server-side Table output: columns, cells and the kubectl formatting rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from arktos.api.errors import APIError
from arktos.api.registry import ResourceInfo, Scope
from arktos.api.resources import BUILTIN
from arktos.api.tables import column_definitions, human_duration, row_cells, table, translate_timestamp_since

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
INFO = {i.kind: i for i in BUILTIN}


def ts(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def cells(kind: str, obj: dict) -> dict:
    """Cells of one object keyed by column name (all columns, wide included)."""
    info = INFO[kind]
    names = [c["name"] for c in column_definitions(info)]
    values = row_cells(info, obj, NOW)
    assert len(values) == len(names)
    return dict(zip(names, values, strict=True))


def columns(kind: str, wide: bool) -> list[str]:
    return [c["name"] for c in column_definitions(INFO[kind]) if (c["priority"] == 0 or wide)]


# ---------------------------------------------------------------------------
# HumanDuration
# ---------------------------------------------------------------------------

M, H, D, Y = 60, 3600, 86400, 365 * 86400


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-2, "<invalid>"),
        (-1.5, "0s"),  # up to 1 s of clock skew reads as now
        (-1, "0s"),
        (0, "0s"),
        (59, "59s"),
        (119, "119s"),
        (119.9, "119s"),
        (120, "2m"),
        (3 * M + 12, "3m12s"),
        (9 * M + 59, "9m59s"),
        (10 * M, "10m"),
        (10 * M + 59, "10m"),
        (179 * M + 59, "179m"),
        (3 * H, "3h"),
        (3 * H + 5 * M + 30, "3h5m"),
        (7 * H + 59 * M, "7h59m"),
        (8 * H, "8h"),
        (8 * H + 30 * M, "8h"),
        (47 * H + 59 * M, "47h"),
        (48 * H, "2d"),
        (2 * D + 3 * H, "2d3h"),
        (7 * D + 23 * H, "7d23h"),
        (8 * D, "8d"),
        (8 * D + 5 * H, "8d"),
        (729 * D, "729d"),
        (730 * D, "2y"),
        (2 * Y + 45 * D, "2y45d"),
        (7 * Y + 364 * D, "7y364d"),
        (8 * Y, "8y"),
        (10 * Y + 100 * D, "10y"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_translate_timestamp_since() -> None:
    assert translate_timestamp_since(ts(192), NOW) == "3m12s"
    assert translate_timestamp_since("2024-06-01T11:59:00.123456Z", NOW) == "59s"
    assert translate_timestamp_since("2024-06-01T13:59:00+02:00", NOW) == "60s"
    assert translate_timestamp_since(None, NOW) == "<unknown>"
    assert translate_timestamp_since("not a time", NOW) == "<unknown>"


# ---------------------------------------------------------------------------
# Table envelope and includeObject
# ---------------------------------------------------------------------------


def test_table_envelope_and_partial_metadata() -> None:
    pod = {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p", "namespace": "d", "tenant": "t"},
           "spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Pending"}}
    t = table(INFO["Pod"], [pod], now=NOW, list_meta={"resourceVersion": "42", "continue": "x"})
    assert t["kind"] == "Table" and t["apiVersion"] == "meta.k8s.io/v1"
    assert t["metadata"] == {"resourceVersion": "42", "continue": "x"}
    assert [c["name"] for c in t["columnDefinitions"]][:5] == ["Name", "Ready", "Status", "Restarts", "Age"]
    for c in t["columnDefinitions"]:
        assert list(c) == ["name", "type", "format", "description", "priority"]
    assert t["columnDefinitions"][0]["format"] == "name"
    (row,) = t["rows"]
    assert row["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": {"name": "p", "namespace": "d", "tenant": "t"}}
    assert "conditions" not in row


def test_include_object_modes() -> None:
    ns = {"metadata": {"name": "n"}, "status": {"phase": "Active"}}
    full = table(INFO["Namespace"], [ns], include_object="Object", now=NOW, list_meta={})
    assert full["rows"][0]["object"] == {"kind": "Namespace", "apiVersion": "v1", **ns}
    none = table(INFO["Namespace"], [ns], include_object="None", now=NOW, list_meta={})
    assert "object" not in none["rows"][0]
    assert none["rows"][0]["cells"] == ["n", "Active", "<unknown>"]
    with pytest.raises(APIError) as ei:
        table(INFO["Namespace"], [ns], include_object="Everything", now=NOW, list_meta={})
    assert ei.value.code == 400


def test_naive_now_is_utc() -> None:
    ns = {"metadata": {"name": "n", "creationTimestamp": ts(30)}}
    t = table(INFO["Namespace"], [ns], include_object="None", now=NOW.replace(tzinfo=None), list_meta={})
    assert t["rows"][0]["cells"][2] == "30s"


@pytest.mark.parametrize("info", BUILTIN, ids=lambda i: i.kind)
def test_every_builtin_kind_prints_sparse_objects(info: ResourceInfo) -> None:
    """No printer may fail on an object with most fields missing."""
    for obj in ({}, {"metadata": {"name": "x"}}, {"metadata": {"name": "x"}, "spec": {}, "status": {}}):
        t = table(info, [obj], now=NOW, list_meta={})
        assert len(t["rows"][0]["cells"]) == len(t["columnDefinitions"])
        assert t["columnDefinitions"][0]["name"] in ("Name", "Last Seen")


# ---------------------------------------------------------------------------
# Pods
# ---------------------------------------------------------------------------


def running(name: str = "c", restarts: int = 0, ready: bool = True) -> dict:
    return {"name": name, "ready": ready, "restartCount": restarts, "state": {"running": {"startedAt": ts(60)}}}


def make_pod(containers: int = 1, statuses: list | None = None, phase: str = "Running", **extra) -> dict:
    pod = {
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ts(3 * 60 + 12), "hashKey": 99},
        "spec": {"containers": [{"name": f"c{i}", "image": "nginx"} for i in range(containers)]},
        "status": {"phase": phase, "containerStatuses": statuses or []},
    }
    for key, value in extra.items():
        section, _, field = key.partition("__")
        pod[section][field] = value
    return pod


def test_pod_columns_and_wide_priority() -> None:
    assert columns("Pod", wide=False) == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert columns("Pod", wide=True) == ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node",
                                         "Nominated Node", "Readiness Gates", "HashKey"]


def test_pod_running() -> None:
    c = cells("Pod", make_pod(2, [running("c0"), running("c1")], status__podIP="10.1.0.5",
                              spec__nodeName="node-1"))
    assert (c["Name"], c["Ready"], c["Status"], c["Restarts"], c["Age"]) == ("web", "2/2", "Running", "0", "3m12s")
    assert (c["IP"], c["Node"], c["Nominated Node"], c["Readiness Gates"]) == ("10.1.0.5", "node-1", "<none>",
                                                                               "<none>")
    assert c["HashKey"] == 99


def test_pod_pending_and_wide_placeholders() -> None:
    c = cells("Pod", make_pod(1, phase="Pending"))
    assert (c["Ready"], c["Status"], c["IP"], c["Node"]) == ("0/1", "Pending", "<none>", "<none>")


def test_pod_ip_prefers_pod_ips() -> None:
    c = cells("Pod", make_pod(1, [running()], status__podIPs=[{"ip": "fd00::5"}, {"ip": "10.0.0.5"}]))
    assert c["IP"] == "fd00::5"


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        ({"waiting": {"reason": "ContainerCreating"}}, "ContainerCreating"),
        ({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}, "CrashLoopBackOff"),
        ({"waiting": {}}, "Running"),  # no reason: the phase stays
        ({"terminated": {"reason": "OOMKilled", "exitCode": 137}}, "OOMKilled"),
        ({"terminated": {"exitCode": 1}}, "ExitCode:1"),
        ({"terminated": {"exitCode": 137, "signal": 9}}, "Signal:9"),
    ],
)
def test_pod_container_state_reason(state: dict, reason: str) -> None:
    c = cells("Pod", make_pod(1, [{"name": "c0", "ready": False, "restartCount": 0, "state": state}]))
    assert c["Status"] == reason
    assert c["Ready"] == "0/1"


def test_pod_last_container_in_list_wins_for_reason() -> None:
    # Statuses are scanned last to first; the first one's reason is what stays.
    statuses = [{"name": "c0", "state": {"waiting": {"reason": "ImagePullBackOff"}}},
                {"name": "c1", "state": {"waiting": {"reason": "ContainerCreating"}}}]
    assert cells("Pod", make_pod(2, statuses))["Status"] == "ImagePullBackOff"


def test_pod_status_reason_field() -> None:
    c = cells("Pod", make_pod(1, phase="Failed", status__reason="Evicted"))
    assert c["Status"] == "Evicted"


def test_pod_completed_rows_carry_conditions() -> None:
    done = make_pod(1, [{"name": "c0", "state": {"terminated": {"reason": "Completed", "exitCode": 0}}}],
                    phase="Succeeded")
    t = table(INFO["Pod"], [done], now=NOW, list_meta={})
    assert t["rows"][0]["cells"][2] == "Completed"
    assert t["rows"][0]["conditions"] == [{"type": "Completed", "status": "True", "reason": "Succeeded",
                                           "message": "The pod has completed successfully."}]
    failed = table(INFO["Pod"], [make_pod(1, phase="Failed")], now=NOW, list_meta={})
    assert failed["rows"][0]["conditions"][0]["reason"] == "Failed"


def test_pod_completed_with_running_sidecar() -> None:
    statuses = [running("c0"), {"name": "c1", "state": {"terminated": {"reason": "Completed", "exitCode": 0}}}]
    # c1 is scanned first (reason Completed), then c0 is running: Running if the pod is Ready.
    ready = make_pod(2, statuses, status__conditions=[{"type": "Ready", "status": "True"}])
    assert cells("Pod", ready)["Status"] == "Running"
    assert cells("Pod", make_pod(2, statuses))["Status"] == "NotReady"


def test_pod_terminating() -> None:
    pod = make_pod(1, [running()], metadata__deletionTimestamp=ts(5))
    assert cells("Pod", pod)["Status"] == "Terminating"
    # A terminal phase is not shown as Terminating.
    done = make_pod(1, phase="Succeeded", metadata__deletionTimestamp=ts(5))
    assert cells("Pod", done)["Status"] == "Succeeded"
    lost = make_pod(1, [running()], metadata__deletionTimestamp=ts(5), status__reason="NodeLost")
    assert cells("Pod", lost)["Status"] == "Unknown"


def test_pod_scheduling_gated() -> None:
    pod = make_pod(1, phase="Pending",
                   status__conditions=[{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}])
    assert cells("Pod", pod)["Status"] == "SchedulingGated"


def test_pod_restarts_with_last_restart_age() -> None:
    c0 = running("c0", restarts=2)
    c0["lastState"] = {"terminated": {"exitCode": 1, "finishedAt": ts(5 * 60)}}
    c1 = running("c1", restarts=1)
    c1["lastState"] = {"terminated": {"exitCode": 1, "finishedAt": ts(50 * 60)}}
    assert cells("Pod", make_pod(2, [c0, c1]))["Restarts"] == "3 (5m ago)"
    # Restarts without a recorded termination time: just the count.
    assert cells("Pod", make_pod(1, [running(restarts=4)]))["Restarts"] == "4"


def test_pod_init_containers() -> None:
    base = make_pod(1, phase="Pending", spec__initContainers=[{"name": "i0"}, {"name": "i1"}])
    done = {"name": "i0", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}

    def status_with(*init: dict) -> str:
        pod = {**base, "status": {**base["status"], "initContainerStatuses": list(init)}}
        return cells("Pod", pod)["Status"]

    assert status_with(done, {"name": "i1", "state": {"running": {}}}) == "Init:1/2"
    assert status_with({"name": "i0", "state": {"waiting": {"reason": "PodInitializing"}}}) == "Init:0/2"
    assert status_with(done, {"name": "i1", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}) == \
        "Init:CrashLoopBackOff"
    assert status_with({"name": "i0", "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}) == "Init:Error"
    assert status_with({"name": "i0", "state": {"terminated": {"exitCode": 3}}}) == "Init:ExitCode:3"
    assert status_with({"name": "i0", "state": {"terminated": {"exitCode": 3, "signal": 15}}}) == "Init:Signal:15"
    # All init containers done: container states decide.
    assert status_with(done, {**done, "name": "i1"}) == "Pending"


def test_pod_restartable_init_container_counts_as_container() -> None:
    pod = make_pod(1, [running("c0")], spec__initContainers=[{"name": "side", "restartPolicy": "Always"}],
                   status__initContainerStatuses=[{"name": "side", "started": True, "ready": True,
                                                   "state": {"running": {}}}])
    c = cells("Pod", pod)
    assert (c["Ready"], c["Status"]) == ("2/2", "Running")


def test_pod_readiness_gates() -> None:
    pod = make_pod(1, [running()], spec__readinessGates=[{"conditionType": "a"}, {"conditionType": "b"}],
                   status__conditions=[{"type": "a", "status": "True"}, {"type": "b", "status": "False"}])
    assert cells("Pod", pod)["Readiness Gates"] == "1/2"


def vm_pod(phase: str = "Running", **vm_status) -> dict:
    return {
        "metadata": {"name": "vm", "creationTimestamp": ts(10)},
        "spec": {"virtualMachine": {"name": "vm", "image": "cirros", "keyPairName": "k"}},
        "status": {"phase": phase, "virtualMachineStatus": vm_status} if vm_status else {"phase": phase},
    }


def test_vm_pod_status() -> None:
    up = cells("Pod", vm_pod(ready=True, powerState="running", restartCount=2))
    assert (up["Ready"], up["Status"], up["Restarts"]) == ("1/1", "Running", "2")
    paused = cells("Pod", vm_pod(ready=False, powerState="paused"))
    assert (paused["Ready"], paused["Status"]) == ("0/1", "Paused")
    assert cells("Pod", vm_pod(ready=False, powerState="crashed"))["Status"] == "Crashed"
    # Without a `ready` flag the phase decides, as in Arktos.
    assert cells("Pod", vm_pod(state="ACTIVE"))["Ready"] == "1/1"
    pending = cells("Pod", vm_pod(phase="Pending"))
    assert (pending["Ready"], pending["Status"], pending["Restarts"]) == ("0/1", "Pending", "0")


# ---------------------------------------------------------------------------
# Nodes
# ---------------------------------------------------------------------------


def make_node(ready: str | None = "True", unschedulable: bool = False, labels: dict | None = None) -> dict:
    node: dict = {
        "metadata": {"name": "n1", "creationTimestamp": ts(2 * D + 3 * H), "labels": labels or {}},
        "spec": {"unschedulable": unschedulable},
        "status": {
            "conditions": [{"type": "MemoryPressure", "status": "False"}],
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.1"},
                          {"type": "InternalIP", "address": "10.0.0.2"}],
            "nodeInfo": {"kubeletVersion": "v1.15.0-arktos", "osImage": "Ubuntu 22.04", "kernelVersion": "6.1",
                         "containerRuntimeVersion": "containerd://1.7"},
        },
    }
    if ready is not None:
        node["status"]["conditions"].append({"type": "Ready", "status": ready})
    return node


def test_node_status_column() -> None:
    assert cells("Node", make_node("True"))["Status"] == "Ready"
    assert cells("Node", make_node("False"))["Status"] == "NotReady"
    assert cells("Node", make_node("Unknown"))["Status"] == "NotReady"
    assert cells("Node", make_node(None))["Status"] == "Unknown"
    assert cells("Node", make_node("True", unschedulable=True))["Status"] == "Ready,SchedulingDisabled"
    assert cells("Node", make_node("False", unschedulable=True))["Status"] == "NotReady,SchedulingDisabled"


def test_node_roles_and_wide() -> None:
    c = cells("Node", make_node(labels={"node-role.kubernetes.io/worker": "", "node-role.kubernetes.io/": "",
                                        "kubernetes.io/role": "master", "x": "y"}))
    assert c["Roles"] == "master,worker"
    assert cells("Node", make_node())["Roles"] == "<none>"
    assert (c["Age"], c["Version"]) == ("2d3h", "v1.15.0-arktos")
    assert (c["Internal-IP"], c["External-IP"], c["OS-Image"], c["Kernel-Version"], c["Container-Runtime"]) == (
        "10.0.0.1", "<none>", "Ubuntu 22.04", "6.1", "containerd://1.7")
    assert columns("Node", wide=False) == ["Name", "Status", "Roles", "Age", "Version"]


# ---------------------------------------------------------------------------
# Other built-in kinds
# ---------------------------------------------------------------------------


def test_namespace_and_tenant() -> None:
    ns = cells("Namespace", {"metadata": {"name": "default", "creationTimestamp": ts(4 * H)},
                             "status": {"phase": "Active"}})
    assert ns == {"Name": "default", "Status": "Active", "Age": "4h"}
    t = cells("Tenant", {"metadata": {"name": "acme", "creationTimestamp": ts(10 * D)},
                         "spec": {"storageClusterId": "1"}, "status": {"phase": "Terminating"}})
    assert t == {"Name": "acme", "Status": "Terminating", "Age": "10d", "StorageClusterId": "1"}
    assert columns("Tenant", wide=False) == ["Name", "Status", "Age"]


def test_deployment_and_replicaset() -> None:
    template = {"spec": {"containers": [{"name": "web", "image": "nginx:1"}, {"name": "log", "image": "fluent"}]}}
    selector = {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "env", "operator": "In",
                                                                     "values": ["prod"]}]}
    d = cells("Deployment", {"metadata": {"name": "web", "creationTimestamp": ts(90)},
                             "spec": {"replicas": 3, "selector": selector, "template": template},
                             "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}})
    assert (d["Ready"], d["Up-to-date"], d["Available"], d["Age"]) == ("2/3", 3, 2, "90s")
    assert (d["Containers"], d["Images"], d["Selector"]) == ("web,log", "nginx:1,fluent", "app=web,env in (prod)")
    assert columns("Deployment", wide=False) == ["Name", "Ready", "Up-to-date", "Available", "Age"]
    rs = cells("ReplicaSet", {"metadata": {"name": "web-1"}, "spec": {"replicas": 3, "selector": selector,
                                                                     "template": template},
                              "status": {"replicas": 3, "readyReplicas": 1}})
    assert (rs["Desired"], rs["Current"], rs["Ready"]) == (3, 3, 1)
    assert columns("ReplicaSet", wide=False) == ["Name", "Desired", "Current", "Ready", "Age"]
    assert columns("ReplicaSet", wide=True)[5:8] == ["Containers", "Images", "Selector"]


def test_services() -> None:
    cluster_ip = cells("Service", {"metadata": {"name": "s"}, "spec": {
        "type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
        "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}], "selector": {"k": "v"}}})
    assert (cluster_ip["Type"], cluster_ip["Cluster-IP"], cluster_ip["External-IP"], cluster_ip["Port(s)"],
            cluster_ip["Selector"]) == ("ClusterIP", "10.96.0.10", "<none>", "53/UDP,53/TCP", "k=v")
    node_port = cells("Service", {"metadata": {"name": "s"}, "spec": {
        "type": "NodePort", "clusterIP": "10.0.0.3", "ports": [{"port": 80, "nodePort": 30080}],
        "externalIPs": ["1.2.3.4"]}})
    assert (node_port["Port(s)"], node_port["External-IP"], node_port["Selector"]) == ("80:30080/TCP", "1.2.3.4",
                                                                                      "<none>")
    lb = cells("Service", {"metadata": {"name": "s"}, "spec": {"type": "LoadBalancer", "clusterIP": "None"}})
    assert (lb["External-IP"], lb["Cluster-IP"], lb["Port(s)"]) == ("<pending>", "None", "<none>")
    lb2 = cells("Service", {"metadata": {"name": "s"}, "spec": {"type": "LoadBalancer"},
                            "status": {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"hostname": "lb.example"}]}}})
    assert lb2["External-IP"] == "5.6.7.8,lb.example"
    ext = cells("Service", {"metadata": {"name": "s"}, "spec": {"type": "ExternalName",
                                                               "externalName": "db.example.com"}})
    assert (ext["External-IP"], ext["Cluster-IP"]) == ("db.example.com", "<none>")


def test_endpoints() -> None:
    ep = {"metadata": {"name": "e"}, "subsets": [
        {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "fd00::3"}, {"ip": "10.0.0.4"}],
         "ports": [{"port": 80}]}]}
    assert cells("Endpoints", ep)["Endpoints"] == "10.0.0.1:80,10.0.0.2:80,[fd00::3]:80 + 1 more..."
    assert cells("Endpoints", {"metadata": {"name": "e"}})["Endpoints"] == "<none>"
    headless = {"metadata": {"name": "e"}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]}
    assert cells("Endpoints", headless)["Endpoints"] == "10.0.0.1"


def test_events() -> None:
    ev = {"metadata": {"name": "p.17a"}, "type": "Warning", "reason": "BackOff", "message": " Back-off \n",
          "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{c}"},
          "source": {"component": "kubelet", "host": "n1"},
          "firstTimestamp": ts(3 * H), "lastTimestamp": ts(30), "count": 7}
    c = cells("Event", ev)
    assert c == {"Last Seen": "30s", "Type": "Warning", "Reason": "BackOff", "Object": "pod/web",
                 "Subobject": "spec.containers{c}", "Source": "kubelet, n1", "Message": "Back-off",
                 "First Seen": "3h", "Count": 7, "Name": "p.17a"}
    assert columns("Event", wide=False) == ["Last Seen", "Type", "Reason", "Object", "Message"]
    new_api = cells("Event", {"metadata": {"name": "x"}, "eventTime": "2024-06-01T11:59:50.000000Z",
                              "reportingController": "scheduler", "involvedObject": {"kind": "Node"}})
    assert (new_api["Last Seen"], new_api["First Seen"], new_api["Count"], new_api["Source"], new_api["Object"]) == (
        "10s", "10s", 1, "scheduler", "node")
    series = cells("Event", {"metadata": {"name": "x"}, "eventTime": ts(100),
                             "series": {"count": 4, "lastObservedTime": ts(2)}})
    assert (series["Last Seen"], series["Count"]) == ("2s", 4)


def test_config_and_identity_kinds() -> None:
    assert cells("ConfigMap", {"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"},
                               "binaryData": {"c": "AA=="}})["Data"] == 3
    s = cells("Secret", {"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "k": ""}})
    assert (s["Type"], s["Data"]) == ("kubernetes.io/tls", 2)
    assert cells("ServiceAccount", {"metadata": {"name": "d"}, "secrets": [{"name": "t"}]})["Secrets"] == 1
    assert cells("Lease", {"metadata": {"name": "n1"}, "spec": {"holderIdentity": "n1"}})["Holder"] == "n1"
    assert cells("Lease", {"metadata": {"name": "n1"}, "spec": {}})["Holder"] == ""


def test_storage_kinds() -> None:
    pv = cells("PersistentVolume", {
        "metadata": {"name": "pv1", "creationTimestamp": ts(60)},
        "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                 "persistentVolumeReclaimPolicy": "Retain", "claimRef": {"namespace": "d", "name": "data"},
                 "storageClassName": "fast"},
        "status": {"phase": "Bound"}})
    assert (pv["Capacity"], pv["Access Modes"], pv["Reclaim Policy"], pv["Status"], pv["Claim"],
            pv["StorageClass"], pv["VolumeMode"]) == ("10Gi", "RWO,RWX", "Retain", "Bound", "d/data", "fast",
                                                      "<unset>")
    pending = cells("PersistentVolumeClaim", {"metadata": {"name": "c"}, "spec": {"resources": {
        "requests": {"storage": "1Gi"}}}, "status": {"phase": "Pending"}})
    assert (pending["Status"], pending["Volume"], pending["Capacity"], pending["Access Modes"]) == (
        "Pending", "", "", "")
    bound = cells("PersistentVolumeClaim", {
        "metadata": {"name": "c", "deletionTimestamp": ts(1),
                     "annotations": {"volume.beta.kubernetes.io/storage-class": "legacy"}},
        "spec": {"volumeName": "pv1", "storageClassName": "fast", "volumeMode": "Block"},
        "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"]}})
    assert (bound["Status"], bound["Capacity"], bound["Access Modes"], bound["StorageClass"], bound["VolumeMode"]) == (
        "Terminating", "10Gi", "RWO", "legacy", "Block")


def test_rbac_and_crd_kinds() -> None:
    for kind in ("Role", "ClusterRole", "CustomResourceDefinition"):
        c = cells(kind, {"metadata": {"name": "r", "creationTimestamp": "2024-05-01T08:00:00.5+02:00"}})
        assert c == {"Name": "r", "Created At": "2024-05-01T06:00:00Z"}
        assert column_definitions(INFO[kind])[1]["type"] == "date"
    binding = {"metadata": {"name": "b", "creationTimestamp": ts(60)},
               "roleRef": {"kind": "ClusterRole", "name": "admin"},
               "subjects": [{"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"},
                            {"kind": "Group", "name": "devs"},
                            {"kind": "ServiceAccount", "namespace": "kube-system", "name": "ctl"}]}
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        c = cells(kind, binding)
        assert c == {"Name": "b", "Role": "ClusterRole/admin", "Age": "60s", "Users": "alice, bob",
                     "Groups": "devs", "ServiceAccounts": "kube-system/ctl"}
        assert columns(kind, wide=False) == ["Name", "Role", "Age"]


def test_arktos_kinds() -> None:
    action = cells("Action", {"metadata": {"name": "reboot-1717243200", "creationTimestamp": ts(5)},
                              "spec": {"nodeName": "n1", "podName": "vm", "rebootAction": {"delayInSeconds": 3}},
                              "status": {"complete": True}})
    assert action == {"Name": "reboot-1717243200", "Operation": "reboot", "Pod": "vm", "Complete": "Yes",
                      "Age": "5s", "Node": "n1", "Error": ""}
    snap = cells("Action", {"metadata": {"name": "snapshot-1"}, "spec": {"podName": "vm"},
                            "status": {"error": "no space"}})
    assert (snap["Operation"], snap["Complete"], snap["Error"]) == ("snapshot", "No", "no space")
    assert columns("Action", wide=False) == ["Name", "Operation", "Pod", "Complete", "Age"]
    ci = cells("ControllerInstance", {"metadata": {"name": "replicaset-abc"}, "controllerType": "replicaset",
                                      "controllerKey": 4611686018427387903, "workloadNum": 12, "isLocked": False})
    assert ci == {"Name": "replicaset-abc", "Type": "replicaset", "Key": 4611686018427387903, "Workloads": 12,
                  "Locked": False, "Age": "<unknown>"}


# ---------------------------------------------------------------------------
# Custom resources
# ---------------------------------------------------------------------------

CR = ResourceInfo("example.com", "v1", "Widget", "widgets", Scope.NAMESPACE)
WIDGET = {"apiVersion": "example.com/v1", "kind": "Widget",
          "metadata": {"name": "w1", "creationTimestamp": ts(2 * D)},
          "spec": {"replicas": 3, "size": 1.5, "enabled": True, "tags": ["a", "b"], "labels": {"x.io/k": "v"}},
          "status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]}}


def test_custom_resource_default_columns() -> None:
    t = table(CR, [WIDGET], now=NOW, list_meta={})
    assert [(c["name"], c["type"]) for c in t["columnDefinitions"]] == [("Name", "string"), ("Age", "date")]
    assert t["rows"][0]["cells"] == ["w1", "2d"]


def test_custom_resource_printer_columns() -> None:
    printer_columns = [
        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Size", "type": "number", "jsonPath": ".spec.size", "priority": 1, "description": "How big."},
        {"name": "On", "type": "boolean", "jsonPath": ".spec.enabled"},
        {"name": "First", "type": "string", "jsonPath": ".spec.tags[0]"},
        {"name": "Label", "type": "string", "jsonPath": ".spec.labels['x.io/k']"},
        {"name": "Tags", "type": "string", "jsonPath": ".spec.tags"},
        {"name": "Missing", "type": "string", "jsonPath": ".spec.nothing"},
        {"name": "WrongType", "type": "integer", "jsonPath": ".metadata.name"},
        {"name": "Created", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    t = table(CR, [WIDGET], now=NOW, list_meta={}, printer_columns=printer_columns)
    defs = t["columnDefinitions"]
    assert [c["name"] for c in defs] == ["Name"] + [c["name"] for c in printer_columns]
    assert defs[3]["priority"] == 1 and defs[3]["description"] == "How big."
    assert defs[1]["description"].endswith(".spec.replicas")
    assert t["rows"][0]["cells"] == ["w1", 3, "True", 1.5, True, "a", "v", '["a","b"]', None, None, "2d"]


def test_builtin_kinds_ignore_printer_columns() -> None:
    cols = column_definitions(INFO["Namespace"], [{"name": "X", "type": "string", "jsonPath": ".x"}])
    assert [c["name"] for c in cols] == ["Name", "Status", "Age"]
