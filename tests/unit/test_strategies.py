"""Per-kind strategies: defaults, validation (field paths and messages), status, scale."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from arktos.api.errors import APIError, FieldError
from arktos.api.resources import BUILTIN, builtin_registry
from arktos.api.strategies import (
    apply_binding,
    apply_scale,
    compute_qos_class,
    pod_resource_requests,
    strategy_for,
    to_scale,
)
from arktos.api.strategies.pods import image_pull_policy_for
from arktos.api.validation import validate_object_meta

Obj = dict[str, Any]


def fields_of(errs: list[FieldError]) -> list[str]:
    return [e.field for e in errs]


def one(errs: list[FieldError]) -> FieldError:
    assert len(errs) == 1, [e.message() for e in errs]
    return errs[0]


def create(group: str, kind: str, obj: Obj) -> tuple[Obj, list[FieldError]]:
    """What the store does on create: prepare, default, validate."""
    s = strategy_for(group, kind)
    obj = copy.deepcopy(obj)
    s.prepare_for_create(obj)
    s.default(obj)
    return obj, s.validate(obj)


def update(group: str, kind: str, new: Obj, old: Obj) -> tuple[Obj, list[FieldError]]:
    s = strategy_for(group, kind)
    new = copy.deepcopy(new)
    s.prepare_for_update(new, old)
    s.default(new)
    return new, s.validate_update(new, old)


def pod(*containers: Obj, **spec: Any) -> Obj:
    return {
        "metadata": {"name": "p", "namespace": "default", "tenant": "acme", "uid": "u1"},
        "spec": {"containers": list(containers or [{"name": "c", "image": "nginx:1.25"}]), **spec},
    }


def created_pod(*containers: Obj, **spec: Any) -> Obj:
    obj, errs = create("", "Pod", pod(*containers, **spec))
    assert errs == [], [e.message() for e in errs]
    return obj


def vm_pod(**vm: Any) -> Obj:
    machine = {"name": "vm1", "image": "cirros:0.5", "keyPairName": "key", **vm}
    return {"metadata": {"name": "v"}, "spec": {"virtualMachine": {k: v for k, v in machine.items() if v is not None}}}


# --------------------------------------------------------------------------- registry wiring


def test_every_builtin_gets_a_strategy() -> None:
    registry = builtin_registry()
    for info in BUILTIN:
        assert registry.by_kind(info.group, info.version, info.kind).strategy is not None, info.kind
    subs = {i.kind: i for i in BUILTIN}
    for kind, info in subs.items():
        # A kind that serves a status subresource has a strategy that owns it, and vice versa.
        assert info.strategy.status_subresource == ("status" in info.subresources), kind


def test_name_validators_per_kind() -> None:
    def name_errs(group: str, kind: str, name: str) -> list[FieldError]:
        s = strategy_for(group, kind)
        return validate_object_meta({"name": name}, namespaced=False, tenanted=False, name_validator=s.name_validator)

    assert name_errs("", "Namespace", "a.b") != []
    assert name_errs("", "Pod", "a.b") == []
    assert name_errs("", "Service", "1abc") != []
    assert name_errs("", "Tenant", "all") != []
    assert name_errs("rbac.authorization.k8s.io", "ClusterRole", "system:node") == []


def test_tracks_generation() -> None:
    tracked = {k: strategy_for(g, k).tracks_generation for g, k in (
        ("", "Pod"), ("apps", "Deployment"), ("", "Service"), ("", "ConfigMap"), ("", "Secret"), ("", "Event"),
        ("", "Node"), ("coordination.k8s.io", "Lease"), ("", "Endpoints"), ("", "ControllerInstance"),
    )}  # fmt: skip
    assert tracked == {
        "Pod": True, "Deployment": True, "Service": True, "ConfigMap": False, "Secret": False, "Event": False,
        "Node": False, "Lease": False, "Endpoints": False, "ControllerInstance": False,
    }  # fmt: skip


# --------------------------------------------------------------------------- Pod defaults


def test_pod_defaults() -> None:
    obj = created_pod({"name": "c", "image": "nginx", "ports": [{"containerPort": 80}]})
    spec = obj["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["securityContext"] == {}
    assert spec["enableServiceLinks"] is True
    assert spec["priority"] == 0
    c = spec["containers"][0]
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "File"
    assert c["imagePullPolicy"] == "Always"
    assert c["ports"] == [{"containerPort": 80, "protocol": "TCP"}]


def test_pod_defaults_keep_client_values() -> None:
    obj = created_pod({"name": "c", "image": "nginx", "imagePullPolicy": "Never"}, restartPolicy="Never",
                      terminationGracePeriodSeconds=0, priorityClassName="high")  # fmt: skip
    assert obj["spec"]["restartPolicy"] == "Never"
    assert obj["spec"]["terminationGracePeriodSeconds"] == 0
    assert obj["spec"]["containers"][0]["imagePullPolicy"] == "Never"
    assert "priority" not in obj["spec"]  # resolved from the priority class by admission


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.25", "IfNotPresent"),
        ("localhost:5000/nginx", "Always"),
        ("localhost:5000/nginx:2", "IfNotPresent"),
        ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
    ],
)
def test_image_pull_policy(image: str, policy: str) -> None:
    assert image_pull_policy_for(image) == policy


def test_requests_default_to_limits() -> None:
    obj = created_pod({"name": "c", "image": "x:1", "resources": {"limits": {"cpu": "500m", "memory": "1Gi"},
                                                                  "requests": {"cpu": "100m"}}})  # fmt: skip
    assert obj["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "100m", "memory": "1Gi"}


def test_probe_volume_and_host_network_defaults() -> None:
    obj = created_pod(
        {"name": "c", "image": "x:1", "ports": [{"containerPort": 8080}],
         "livenessProbe": {"httpGet": {"port": 8080}}, "volumeMounts": [{"name": "scratch", "mountPath": "/s"}]},
        volumes=[{"name": "scratch"}, {"name": "s", "secret": {"secretName": "s"}}],
        hostNetwork=True,
    )  # fmt: skip
    c = obj["spec"]["containers"][0]
    assert c["livenessProbe"] == {"httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                                  "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}  # fmt: skip
    assert c["ports"][0]["hostPort"] == 8080
    assert obj["spec"]["volumes"][0] == {"name": "scratch", "emptyDir": {}}
    assert obj["spec"]["volumes"][1]["secret"]["defaultMode"] == 0o644


# --------------------------------------------------------------------------- Pod status and QoS


def test_pod_create_status_ignores_client() -> None:
    p = pod()
    p["status"] = {"phase": "Running", "podIP": "1.2.3.4"}
    obj, errs = create("", "Pod", p)
    assert errs == []
    assert obj["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


def res(requests: dict | None = None, limits: dict | None = None) -> dict:
    out: dict = {}
    if requests is not None:
        out["requests"] = requests
    if limits is not None:
        out["limits"] = limits
    return out


@pytest.mark.parametrize(
    ("resources", "qos"),
    [
        ([{}], "BestEffort"),
        ([res({"cpu": "0"})], "BestEffort"),
        ([res({"cpu": "100m"})], "Burstable"),
        ([res(limits={"cpu": "1", "memory": "1Gi"})], "Guaranteed"),  # requests default to limits
        ([res({"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})], "Guaranteed"),
        ([res({"cpu": "500m", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})], "Burstable"),
        ([res(limits={"cpu": "1"})], "Burstable"),  # memory limit missing
        ([res(limits={"cpu": "1", "memory": "1Gi"}), {}], "Burstable"),  # one container without limits
        ([res(limits={"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"})], "Guaranteed"),  # only cpu/memory count
    ],
)
def test_qos_class(resources: list[dict], qos: str) -> None:
    containers = [{"name": f"c{i}", "image": "x:1", "resources": r} for i, r in enumerate(resources)]
    obj = created_pod(*containers)
    assert obj["status"]["qosClass"] == qos
    assert compute_qos_class(obj) == qos


def test_qos_counts_init_containers_and_vms() -> None:
    guaranteed = res(limits={"cpu": "1", "memory": "1Gi"})
    p = pod({"name": "c", "image": "x:1", "resources": guaranteed},
            initContainers=[{"name": "i", "image": "x:1"}])  # fmt: skip
    assert compute_qos_class(p) == "Burstable"
    assert compute_qos_class(vm_pod(resources=guaranteed)) == "Guaranteed"
    assert compute_qos_class(vm_pod()) == "BestEffort"


# --------------------------------------------------------------------------- resource requests


def test_pod_resource_requests_sum_and_init_max() -> None:
    p = pod(
        {"name": "a", "image": "x:1", "resources": res({"cpu": "100m", "memory": "64Mi"})},
        {"name": "b", "image": "x:1", "resources": res({"cpu": "250m"}, {"memory": "128Mi", "example.com/dev": "2"})},
        initContainers=[{"name": "i", "image": "x:1", "resources": res({"cpu": "1", "memory": "16Mi"})}],
        overhead={"cpu": "10m"},
    )
    assert pod_resource_requests(p) == {
        "cpu": 1010,  # max(350m, 1) + 10m overhead
        "memory": (64 + 128) * 2**20,  # limit stands in for the missing request
        "example.com/dev": 2,
        "pods": 1,
    }


def test_pod_resource_requests_vm_and_empty() -> None:
    assert pod_resource_requests(vm_pod(resources=res({"cpu": "2", "memory": "2Gi"}))) == {
        "cpu": 2000, "memory": 2 * 2**30, "pods": 1,
    }  # fmt: skip
    assert pod_resource_requests({"spec": {}}) == {"cpu": 0, "memory": 0, "pods": 1}
    # A malformed quantity in an unvalidated object is skipped, not raised.
    assert pod_resource_requests(pod({"name": "c", "image": "x", "resources": res({"cpu": "lots"})}))["cpu"] == 0


# --------------------------------------------------------------------------- Pod validation


def test_pod_needs_containers_or_vm() -> None:
    p = pod()
    p["spec"]["containers"] = []
    err = one(create("", "Pod", p)[1])
    assert err.field == "spec.containers" and err.type == "FieldValueRequired"
    _, errs = create("", "Pod", {"metadata": {"name": "p"}})
    assert fields_of(errs) == ["spec"]


def test_pod_vm_and_containers_exclusive() -> None:
    p = vm_pod()
    p["spec"]["containers"] = [{"name": "c", "image": "x:1"}]
    err = one(create("", "Pod", p)[1])
    assert err.field == "spec.virtualMachine" and err.type == "FieldValueForbidden"


def test_container_rules() -> None:
    _, errs = create("", "Pod", pod(
        {"name": "Bad_Name", "image": "x:1"},
        {"name": "dup", "image": ""},
        {"name": "dup", "image": "x:1", "ports": [{"containerPort": 70000, "protocol": "ICMP"}, {"hostPort": 1}]},
    ))  # fmt: skip
    by = {e.field: e for e in errs}
    assert by["spec.containers[0].name"].type == "FieldValueInvalid"
    assert by["spec.containers[1].image"].message() == "spec.containers[1].image: Required value"
    assert by["spec.containers[2].name"].message() == 'spec.containers[2].name: Duplicate value: "dup"'
    assert by["spec.containers[2].ports[0].containerPort"].message() == (
        "spec.containers[2].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"
    )
    assert by["spec.containers[2].ports[0].protocol"].message() == (
        'spec.containers[2].ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"'
    )
    assert by["spec.containers[2].ports[1].containerPort"].type == "FieldValueRequired"


def test_resource_rules() -> None:
    _, errs = create("", "Pod", pod({"name": "c", "image": "x:1", "resources": {
        "requests": {"cpu": "2", "memory": "1Gb", "example.com/gpu": "1"},
        "limits": {"cpu": "1", "bogus": "1"},
    }}))  # fmt: skip
    by = {e.field: e for e in errs}
    assert by["spec.containers[0].resources.requests[cpu]"].message() == (
        'spec.containers[0].resources.requests[cpu]: Invalid value: "2": must be less than or equal to cpu limit'
    )
    assert by["spec.containers[0].resources.requests[memory]"].detail.startswith("quantities must match")
    assert by["spec.containers[0].resources.limits[bogus]"].detail == "must be a standard resource for containers"
    assert by["spec.containers[0].resources.limits"].detail == "Limit must be set for non overcommitable resources"


def test_pod_enums_and_names() -> None:
    _, errs = create("", "Pod", pod(restartPolicy="Sometimes", dnsPolicy="None", nodeName="Node_1",
                                    activeDeadlineSeconds=0))  # fmt: skip
    by = {e.field: e for e in errs}
    assert by["spec.restartPolicy"].message() == (
        'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"'
    )
    assert by["spec.dnsConfig"].detail == "must provide `dnsConfig` when `dnsPolicy` is None"
    assert by["spec.nodeName"].type == "FieldValueInvalid"
    assert by["spec.activeDeadlineSeconds"].detail == "must be between 1 and 2147483647, inclusive"


def test_volume_mounts_must_name_volumes() -> None:
    _, errs = create(
        "", "Pod", pod({"name": "c", "image": "x:1", "volumeMounts": [{"name": "data", "mountPath": "/d"}]})
    )
    err = one(errs)
    assert err.field == "spec.containers[0].volumeMounts[0].name" and err.type == "FieldValueNotFound"


def test_valid_vm_pod() -> None:
    user_data = base64.b64encode(b"#cloud-config\n").decode()
    obj, errs = create("", "Pod", vm_pod(userData=user_data, shutdownBehavior="stop",
                                         resources=res(limits={"cpu": "1", "memory": "1Gi"})))  # fmt: skip
    assert errs == []
    vm = obj["spec"]["virtualMachine"]
    assert vm["powerSpec"] == "Running" and vm["imagePullPolicy"] == "IfNotPresent"
    assert vm["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}
    assert obj["status"]["qosClass"] == "Guaranteed"
    assert create("", "Pod", vm_pod(keyPairName=None, publicKey="ssh-rsa AAAA"))[1] == []


def test_vm_rules() -> None:
    p = vm_pod(name=None, image=None, keyPairName=None, userData="not base64!", powerSpec="On",
               shutdownBehavior="halt")  # fmt: skip
    p["spec"]["nics"] = [{"subnetName": "s"}, {"name": "eth0", "ipAddress": "300.1.1.1"}]
    _, errs = create("", "Pod", p)
    by = {e.field: e for e in errs}
    assert by["spec.virtualMachine.name"].type == "FieldValueRequired"
    assert by["spec.virtualMachine.image"].type == "FieldValueRequired"
    assert by["spec.virtualMachine.keyPairName"].detail == "one of keyPairName or publicKey must be specified"
    assert by["spec.virtualMachine.userData"].detail == "must be base64-encoded"
    assert by["spec.virtualMachine.powerSpec"].message() == (
        'spec.virtualMachine.powerSpec: Unsupported value: "On": supported values: "Running", "Paused", '
        '"Shutdown", "Suspended"'
    )
    assert by["spec.virtualMachine.shutdownBehavior"].type == "FieldValueNotSupported"
    assert by["spec.nics[0].name"].type == "FieldValueRequired"
    assert by["spec.nics[1].ipAddress"].type == "FieldValueInvalid"


def test_vm_user_data_size() -> None:
    ok = base64.b64encode(b"x" * 65535).decode()
    assert create("", "Pod", vm_pod(userData=ok))[1] == []
    too_big = base64.b64encode(b"x" * 65536).decode()
    err = one(create("", "Pod", vm_pod(userData=too_big))[1])
    assert err.field == "spec.virtualMachine.userData" and err.type == "FieldValueTooLong"


def test_malformed_pod_does_not_crash() -> None:
    for spec in ({"containers": "nginx"}, {"containers": [5]}, {"containers": [{"name": 3, "ports": {}}]},
                 {"virtualMachine": "vm"}, {"volumes": [None], "containers": [{"name": "c", "image": "x",
                                                                               "resources": []}]}):  # fmt: skip
        _, errs = create("", "Pod", {"metadata": {"name": "p"}, "spec": spec})
        assert errs, spec


# --------------------------------------------------------------------------- Pod update


def test_pod_update_allows_image_and_deadline() -> None:
    old = created_pod(activeDeadlineSeconds=100)
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "nginx:1.26"
    new["spec"]["activeDeadlineSeconds"] = 50
    new["spec"]["tolerations"] = [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}]
    assert update("", "Pod", new, old)[1] == []
    new["spec"]["activeDeadlineSeconds"] = 200
    assert one(update("", "Pod", new, old)[1]).detail == "must be less than or equal to previous value"


def test_pod_update_rejects_other_spec_changes() -> None:
    old = created_pod()
    new = copy.deepcopy(old)
    new["spec"]["restartPolicy"] = "Never"
    err = one(update("", "Pod", new, old)[1])
    assert err.field == "spec" and err.type == "FieldValueForbidden"
    assert err.detail.startswith("pod updates may not change fields other than `spec.containers[*].image`")
    assert "spec.restartPolicy" in err.detail
    new = copy.deepcopy(old)
    new["spec"]["containers"].append({"name": "d", "image": "x:1"})
    assert one(update("", "Pod", new, old)[1]).detail == "pod updates may not add or remove containers"


def test_pod_update_tolerations_only_added() -> None:
    old = created_pod(tolerations=[{"key": "a", "operator": "Exists"}])
    new = copy.deepcopy(old)
    new["spec"]["tolerations"] = []
    err = one(update("", "Pod", new, old)[1])
    assert err.field == "spec.tolerations[0]"


def test_pod_update_keeps_status_and_vm_power() -> None:
    old, _ = create("", "Pod", vm_pod())
    old["status"]["phase"] = "Running"
    new = copy.deepcopy(old)
    new["status"] = {"phase": "Failed"}
    new["spec"]["virtualMachine"]["powerSpec"] = "Shutdown"
    result, errs = update("", "Pod", new, old)
    assert errs == []
    assert result["status"]["phase"] == "Running"  # status belongs to the status subresource
    new["spec"]["virtualMachine"]["image"] = "other:1"
    assert one(update("", "Pod", new, old)[1]).field == "spec"


def test_node_name_only_through_binding() -> None:
    old = created_pod()
    new = copy.deepcopy(old)
    new["spec"]["nodeName"] = "n1"
    with pytest.raises(APIError) as exc:
        update("", "Pod", new, old)
    assert exc.value.code == 422
    assert "spec.nodeName: Forbidden: may not be set by an update" in exc.value.message

    bound = apply_binding(old, {"target": {"kind": "Node", "name": "n1"}, "metadata": {"annotations": {"a": "b"}}},
                          now="2024-01-01T00:00:00Z")  # fmt: skip
    assert bound["spec"]["nodeName"] == "n1"
    assert bound["metadata"]["annotations"] == {"a": "b"}
    assert bound["status"]["conditions"] == [{"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                                              "lastTransitionTime": "2024-01-01T00:00:00Z"}]  # fmt: skip
    assert old["spec"].get("nodeName") is None  # the input is not modified
    # The binding write (no prepare_for_update) validates; a later move does not.
    s = strategy_for("", "Pod")
    assert s.validate_update(bound, old) == []
    moved = copy.deepcopy(bound)
    moved["spec"]["nodeName"] = "n2"
    assert one(s.validate_update(moved, bound)).field == "spec.nodeName"


def test_binding_conflicts() -> None:
    p = created_pod()
    bound = apply_binding(p, {"target": {"name": "n1"}})
    with pytest.raises(APIError) as exc:
        apply_binding(bound, {"target": {"name": "n2"}})
    assert exc.value.code == 409 and 'already assigned to node "n1"' in exc.value.message
    deleting = copy.deepcopy(p)
    deleting["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    with pytest.raises(APIError) as exc:
        apply_binding(deleting, {"target": {"name": "n1"}})
    assert exc.value.code == 409
    with pytest.raises(APIError) as exc:
        apply_binding(p, {"target": {"name": "n1"}, "metadata": {"uid": "other"}})
    assert exc.value.code == 409
    with pytest.raises(APIError) as exc:
        apply_binding(p, {"target": {"kind": "Pod", "name": "x"}})
    assert exc.value.code == 422


def test_pod_status_update_validation() -> None:
    old = created_pod()
    s = strategy_for("", "Pod")
    new = s.prepare_for_status_update({"spec": {"nodeName": "evil"}, "status": {"phase": "Running",
                                                                                "podIP": "10.0.0.5"}}, old)  # fmt: skip
    assert new["spec"] == old["spec"]
    assert s.validate_update(new, old) == []
    new["status"] = {"phase": "Exploded", "podIP": "nope"}
    assert sorted(fields_of(s.validate_update(new, old))) == ["status.phase", "status.podIP"]


def test_pod_fields() -> None:
    obj = created_pod(nodeName="n1", serviceAccountName="sa")
    assert strategy_for("", "Pod").fields(obj) == {
        "spec.nodeName": "n1", "spec.restartPolicy": "Always", "spec.schedulerName": "default-scheduler",
        "spec.serviceAccountName": "sa", "status.phase": "Pending", "status.podIP": "",
        "status.nominatedNodeName": "",
    }  # fmt: skip


# --------------------------------------------------------------------------- Node, Namespace, Tenant


def test_node() -> None:
    node = {"metadata": {"name": "n1"}, "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]},
            "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}  # fmt: skip
    obj, errs = create("", "Node", node)
    assert errs == []
    assert obj["status"]["allocatable"] == {"cpu": "4", "memory": "8Gi", "pods": "110"}  # kept on create
    s = strategy_for("", "Node")
    assert s.fields(obj) == {"spec.unschedulable": "false"}
    obj["spec"]["unschedulable"] = True
    assert s.fields(obj) == {"spec.unschedulable": "true"}
    bad = copy.deepcopy(node)
    bad["spec"]["taints"] += [{"key": "k", "effect": "NoSchedule"}, {"key": "x", "effect": "Sometimes"}]
    bad["status"]["capacity"]["cpu"] = "four"
    # allocatable was defaulted from the (bad) capacity, so both report it.
    assert sorted(fields_of(create("", "Node", bad)[1])) == [
        "spec.taints[1]", "spec.taints[2].effect", "status.allocatable[cpu]", "status.capacity[cpu]",
    ]  # fmt: skip
    old = copy.deepcopy(obj)
    old["spec"]["podCIDR"] = "10.0.0.0/24"
    new = copy.deepcopy(old)
    new["spec"]["podCIDR"] = "10.0.1.0/24"
    assert one(update("", "Node", new, old)[1]).field == "spec.podCIDR"


def test_namespace() -> None:
    obj, errs = create("", "Namespace", {"metadata": {"name": "dev"}, "status": {"phase": "Terminating"}})
    assert errs == []
    assert obj["status"] == {"phase": "Active"}
    assert obj["spec"] == {"finalizers": ["kubernetes"]}
    obj2, _ = create("", "Namespace", {"metadata": {"name": "x"}, "spec": {"finalizers": ["example.com/f"]}})
    assert obj2["spec"]["finalizers"] == ["example.com/f", "kubernetes"]
    # A main-resource update cannot drop the finalizer (only the finalize subresource can).
    new = copy.deepcopy(obj)
    new["spec"]["finalizers"] = []
    result, errs = update("", "Namespace", new, obj)
    assert errs == [] and result["spec"]["finalizers"] == ["kubernetes"]
    assert strategy_for("", "Namespace").fields(obj) == {"status.phase": "Active"}
    _, errs = create("", "Namespace", {"metadata": {"name": "x"}, "spec": {"finalizers": ["custom"]}})
    assert one(errs).detail == "name is neither a standard finalizer name nor is it fully qualified"


def test_tenant() -> None:
    obj, errs = create("", "Tenant", {"metadata": {"name": "acme"}, "spec": {"storageClusterId": "1"}})
    assert errs == []
    assert obj["status"] == {"phase": "Active"}
    assert obj["spec"]["finalizers"] == ["kubernetes"]
    _, errs = create("", "Tenant", {"metadata": {"name": "acme"}, "spec": {"storageClusterId": 1}})
    assert one(errs).field == "spec.storageClusterId"
    s = strategy_for("", "Tenant")
    assert s.status_subresource and s.field_names == ("status.phase",)
    (err,) = validate_object_meta({"name": "all"}, namespaced=False, tenanted=False, name_validator=s.name_validator)
    assert err.field == "metadata.name"


# --------------------------------------------------------------------------- Service


def svc(**spec: Any) -> Obj:
    return {"metadata": {"name": "web", "namespace": "default"}, "spec": spec}


def test_service_defaults() -> None:
    obj, errs = create("", "Service", svc(ports=[{"port": 80}], selector={"app": "web"}))
    assert errs == []
    assert obj["spec"]["type"] == "ClusterIP"
    assert obj["spec"]["sessionAffinity"] == "None"
    assert obj["spec"]["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert obj["status"] == {"loadBalancer": {}}
    obj, _ = create("", "Service", svc(type="NodePort", ports=[{"port": 80, "targetPort": "http"}],
                                       sessionAffinity="ClientIP"))  # fmt: skip
    assert obj["spec"]["externalTrafficPolicy"] == "Cluster"
    assert obj["spec"]["ports"][0]["targetPort"] == "http"
    assert obj["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}


def test_service_validation() -> None:
    err = one(create("", "Service", svc())[1])
    assert err.message() == "spec.ports: Required value"
    assert create("", "Service", svc(clusterIP="None"))[1] == []  # headless
    assert create("", "Service", svc(type="ExternalName", externalName="db.example.com"))[1] == []
    assert one(create("", "Service", svc(type="ExternalName"))[1]).field == "spec.externalName"
    _, errs = create("", "Service", svc(type="Magic", ports=[{"port": 0}, {"name": "b", "port": 80, "nodePort": 1}]))
    by = {e.field: e for e in errs}
    assert by["spec.type"].type == "FieldValueNotSupported"
    assert by["spec.ports[0].name"].type == "FieldValueRequired"  # names are required with several ports
    assert by["spec.ports[0].port"].detail == "must be between 1 and 65535, inclusive"
    _, errs = create(
        "", "Service", svc(ports=[{"name": "a", "port": 80}, {"name": "a", "port": 81, "nodePort": 30000}])
    )
    by = {e.field: e for e in errs}
    assert by["spec.ports[1].name"].type == "FieldValueDuplicate"
    assert by["spec.ports[1].nodePort"].detail == "may not be used when `type` is 'ClusterIP'"


def test_service_update_cluster_ip() -> None:
    old, _ = create("", "Service", svc(ports=[{"port": 80}]))
    old["spec"]["clusterIP"] = "10.0.0.10"
    new = copy.deepcopy(old)
    del new["spec"]["clusterIP"]
    result, errs = update("", "Service", new, old)
    assert errs == [] and result["spec"]["clusterIP"] == "10.0.0.10"  # carried over
    new["spec"]["clusterIP"] = "10.0.0.11"
    err = one(update("", "Service", new, old)[1])
    assert err.message() == 'spec.clusterIP: Invalid value: "10.0.0.11": field is immutable'


# --------------------------------------------------------------------------- Secret, ConfigMap, Event, ...


def test_secret() -> None:
    obj, errs = create("", "Secret", {"metadata": {"name": "s"}, "stringData": {"password": "hunter2"},
                                      "data": {"user": base64.b64encode(b"admin").decode()}})  # fmt: skip
    assert errs == []
    assert obj["type"] == "Opaque"
    assert "stringData" not in obj
    assert base64.b64decode(obj["data"]["password"]) == b"hunter2"
    assert strategy_for("", "Secret").fields(obj) == {"type": "Opaque"}
    _, errs = create("", "Secret", {"metadata": {"name": "s"}, "data": {"bad key": "YQ=="}})
    assert sorted((e.field, e.type) for e in errs) == [("data[bad key]", "FieldValueInvalid")]
    # Undecodable data fails like a decoding error in Kubernetes: 400, not 422.
    with pytest.raises(APIError) as err:
        create("", "Secret", {"metadata": {"name": "s"}, "data": {"k": "!!!"}})
    assert err.value.code == 400 and "illegal base64 data" in err.value.message
    _, errs = create("", "Secret", {"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {}})
    assert sorted(fields_of(errs)) == ["data[tls.crt]", "data[tls.key]"]
    new = copy.deepcopy(obj)
    new["type"] = "kubernetes.io/basic-auth"
    assert "type" in fields_of(update("", "Secret", new, obj)[1])


def test_immutable_configmap() -> None:
    old, errs = create("", "ConfigMap", {"metadata": {"name": "c"}, "data": {"a": "1"}, "immutable": True})
    assert errs == []
    new = copy.deepcopy(old)
    new["data"]["a"] = "2"
    assert one(update("", "ConfigMap", new, old)[1]).detail == "field is immutable when `immutable` is set"


def test_configmap_keys() -> None:
    _, errs = create("", "ConfigMap", {"metadata": {"name": "c"}, "data": {"..x": "1", "ok": "2"},
                                       "binaryData": {"ok": base64.b64encode(b"\0").decode()}})  # fmt: skip
    assert [(e.field, e.detail) for e in errs] == [
        ("data", "must not start with '..'"),
        ("binaryData", "duplicate of key present in data"),
    ]


def test_event_fields() -> None:
    ev = {"metadata": {"name": "e", "namespace": "default"}, "reason": "Scheduled", "type": "Normal",
          "source": {"component": "scheduler"},
          "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default", "uid": "u"}}  # fmt: skip
    assert create("", "Event", ev)[1] == []
    f = strategy_for("", "Event").fields(ev)
    assert f["involvedObject.kind"] == "Pod" and f["source"] == "scheduler" and f["reason"] == "Scheduled"
    assert f["involvedObject.fieldPath"] == ""
    ev["involvedObject"]["namespace"] = "other"
    assert one(create("", "Event", ev)[1]).detail == "does not match event.namespace"


def test_persistent_volumes() -> None:
    pv = {"metadata": {"name": "pv"}, "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
                                               "hostPath": {"path": "/data"}}}  # fmt: skip
    obj, errs = create("", "PersistentVolume", pv)
    assert errs == []
    assert obj["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert obj["status"] == {"phase": "Pending"}
    _, errs = create("", "PersistentVolume", {"metadata": {"name": "pv"}, "spec": {"nfs": {}, "hostPath": {}}})
    assert sorted(fields_of(errs)) == ["spec.accessModes", "spec.capacity", "spec.nfs"]

    _, errs = create("", "PersistentVolumeClaim", {"metadata": {"name": "c"}, "spec": {}})
    assert sorted(fields_of(errs)) == ["spec.accessModes", "spec.resources[storage]"]
    claim = {"metadata": {"name": "c"}, "spec": {"accessModes": ["ReadWriteOnce"],
                                                 "resources": {"requests": {"storage": "1Gi"}}}}  # fmt: skip
    old, errs = create("", "PersistentVolumeClaim", claim)
    assert errs == [] and old["status"] == {"phase": "Pending"}
    bound = copy.deepcopy(old)
    bound["spec"]["volumeName"] = "pv"  # the binder sets it once
    assert update("", "PersistentVolumeClaim", bound, old)[1] == []
    bigger = copy.deepcopy(old)
    bigger["spec"]["resources"]["requests"]["storage"] = "2Gi"
    assert one(update("", "PersistentVolumeClaim", bigger, old)[1]).field == "spec"
    old["status"]["phase"] = "Bound"
    assert update("", "PersistentVolumeClaim", bigger, old)[1] == []


# --------------------------------------------------------------------------- Deployment, ReplicaSet, scale


def deployment(**spec: Any) -> Obj:
    base = {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "c", "image": "nginx:1",
                                              "resources": {"limits": {"cpu": "1"}}}]}},
    }  # fmt: skip
    base.update(spec)
    return {"metadata": {"name": "d", "namespace": "default"}, "spec": base}


def test_deployment_defaults() -> None:
    obj, errs = create("apps", "Deployment", deployment())
    assert errs == []
    spec = obj["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    pod_spec = spec["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Always" and pod_spec["dnsPolicy"] == "ClusterFirst"
    assert pod_spec["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    # Pod-only defaults are left for the pods made from the template.
    assert "requests" not in pod_spec["containers"][0]["resources"]
    assert "priority" not in pod_spec
    assert "status" not in obj


def test_deployment_validation() -> None:
    _, errs = create("apps", "Deployment", deployment(selector=None))
    assert fields_of(errs) == ["spec.selector"]
    _, errs = create("apps", "Deployment", deployment(selector={"matchLabels": {"app": "db"}}, replicas=-1))
    by = {e.field: e for e in errs}
    assert by["spec.replicas"].message() == "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
    assert by["spec.template.metadata.labels"].detail == "`selector` does not match template `labels`"
    _, errs = create(
        "apps", "Deployment", deployment(strategy={"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}})
    )
    assert one(errs).message() == (
        'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "0%": may not be 0 when `maxSurge` is 0'
    )
    _, errs = create("apps", "Deployment", deployment(strategy={"type": "Recreate", "rollingUpdate": {}}))
    assert one(errs).field == "spec.strategy.rollingUpdate"
    _, errs = create("apps", "Deployment", deployment(strategy={"type": "BlueGreen"}))
    assert one(errs).type == "FieldValueNotSupported"
    _, errs = create(
        "apps", "Deployment", deployment(strategy={"rollingUpdate": {"maxSurge": "x", "maxUnavailable": "150%"}})
    )
    assert sorted(fields_of(errs)) == ["spec.strategy.rollingUpdate.maxSurge",
                                       "spec.strategy.rollingUpdate.maxUnavailable"]  # fmt: skip
    d = deployment()
    d["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    assert one(create("apps", "Deployment", d)[1]).field == "spec.template.spec.restartPolicy"
    d = deployment()
    d["spec"]["template"]["spec"]["containers"] = []
    assert one(create("apps", "Deployment", d)[1]).field == "spec.template.spec.containers"


def test_deployment_update() -> None:
    old, _ = create("apps", "Deployment", deployment())
    old["status"] = {"replicas": 1}
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 3
    new["status"] = {"replicas": 99}
    s = strategy_for("apps", "Deployment")
    result, errs = update("apps", "Deployment", new, old)
    assert errs == [] and result["status"] == {"replicas": 1}
    assert s.spec_changed(result, old)
    assert not s.spec_changed(copy.deepcopy(old), old)
    new["spec"]["selector"] = {"matchLabels": {"app": "web", "x": "y"}}
    new["spec"]["template"]["metadata"]["labels"]["x"] = "y"
    err = one(update("apps", "Deployment", new, old)[1])
    assert err.field == "spec.selector" and err.detail == "field is immutable"


def test_workload_status_validation() -> None:
    old, _ = create("apps", "ReplicaSet", deployment())
    s = strategy_for("apps", "ReplicaSet")
    new = s.prepare_for_status_update({"status": {"replicas": 1, "readyReplicas": 2}}, old)
    assert one(s.validate_update(new, old)).detail == "cannot be greater than status.replicas"


def test_replicaset_defaults() -> None:
    obj, errs = create("apps", "ReplicaSet", deployment())
    assert errs == [] and obj["spec"]["replicas"] == 1
    assert "strategy" not in obj["spec"]


def test_scale() -> None:
    obj, _ = create(
        "apps",
        "Deployment",
        deployment(
            selector={
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}],
            }
        ),
    )
    obj["metadata"].update(uid="u1", resourceVersion="7", tenant="acme")
    obj["status"] = {"replicas": 2}
    info = builtin_registry().get("apps", "v1", "deployments")
    scale = to_scale(obj, info)
    assert scale == {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": "d", "namespace": "default", "tenant": "acme", "uid": "u1", "resourceVersion": "7"},
        "spec": {"replicas": 1},
        "status": {"replicas": 2, "selector": "app=web,tier notin (db)"},
    }
    scale["spec"]["replicas"] = 5
    scaled = apply_scale(obj, scale)
    assert scaled["spec"]["replicas"] == 5 and obj["spec"]["replicas"] == 1
    assert apply_scale(obj, {"spec": {}})["spec"]["replicas"] == 0
    with pytest.raises(APIError) as exc:
        apply_scale(obj, {"spec": {"replicas": -1}})
    assert exc.value.code == 422 and "spec.replicas" in exc.value.message


# --------------------------------------------------------------------------- Arktos kinds


def action(**spec: Any) -> Obj:
    return {"metadata": {"name": "reboot-1"}, "spec": {"nodeName": "n1", "podName": "vm", "podID": "u", **spec}}


def test_action() -> None:
    assert create("", "Action", action(rebootAction={"delayInSeconds": 5}))[1] == []
    err = one(create("", "Action", action())[1])
    assert err.field == "spec" and err.type == "FieldValueRequired"
    err = one(create("", "Action", action(rebootAction={}, snapshotAction={"snapshotName": "s"}))[1])
    assert err.field == "spec.snapshotAction" and err.type == "FieldValueForbidden"
    _, errs = create("", "Action", {"metadata": {"name": "a"}, "spec": {"restoreAction": {}}})
    assert sorted(fields_of(errs)) == ["spec.nodeName", "spec.podName", "spec.restoreAction.snapshotID"]
    obj, _ = create("", "Action", action(rebootAction={}))
    s = strategy_for("", "Action")
    assert s.status_subresource
    assert s.fields(obj) == {"spec.nodeName": "n1", "spec.podName": "vm"}
    new = copy.deepcopy(obj)
    new["spec"]["nodeName"] = "n2"
    assert one(update("", "Action", new, obj)[1]).detail == "field is immutable"
    done = s.prepare_for_status_update({"status": {"complete": True, "rebootStatus": {"rebootSuccessful": True}}}, obj)
    assert s.validate_update(done, obj) == []


def test_controller_instance_top_level_fields() -> None:
    ci = {"metadata": {"name": "replicaset-abc"}, "controllerType": "replicaset",
          "controllerKey": 2**63 - 1, "workloadNum": 3, "isLocked": False}  # fmt: skip
    obj, errs = create("", "ControllerInstance", ci)
    assert errs == []
    assert strategy_for("", "ControllerInstance").fields(obj) == {"controllerType": "replicaset"}
    obj, errs = create("", "ControllerInstance", {"metadata": {"name": "x"}, "controllerType": "deployment"})
    assert errs == [] and obj["workloadNum"] == 0 and obj["isLocked"] is False
    _, errs = create("", "ControllerInstance", {"metadata": {"name": "x"}, "controllerKey": 2**63,
                                                "workloadNum": -1, "isLocked": "no"})  # fmt: skip
    assert sorted(fields_of(errs)) == ["controllerKey", "controllerType", "isLocked", "workloadNum"]
    new = {**ci, "controllerType": "deployment"}
    assert one(update("", "ControllerInstance", new, ci)[1]).field == "controllerType"


# --------------------------------------------------------------------------- Lease, RBAC, CRD


def test_lease() -> None:
    lease = {"metadata": {"name": "n1"}, "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40}}
    assert create("coordination.k8s.io", "Lease", lease)[1] == []
    lease["spec"]["leaseDurationSeconds"] = 0
    assert one(create("coordination.k8s.io", "Lease", lease)[1]).message() == (
        "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"
    )


RBAC = "rbac.authorization.k8s.io"


def test_roles() -> None:
    role = {"metadata": {"name": "r"}, "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]}
    assert create(RBAC, "Role", role)[1] == []
    _, errs = create(
        RBAC,
        "Role",
        {"metadata": {"name": "r"}, "rules": [{"apiGroups": [""]}, {"verbs": ["get"], "nonResourceURLs": ["/x"]}]},
    )
    assert [e.message() for e in errs] == [
        "rules[0].verbs: Required value: verbs must contain at least one value",
        "rules[0].resources: Required value: resource rules must supply at least one resource",
        "rules[1].nonResourceURLs: Invalid value: ['/x']: namespaced rules cannot apply to non-resource URLs",
    ]
    assert (
        create(
            RBAC,
            "ClusterRole",
            {"metadata": {"name": "r"}, "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]},
        )[1]
        == []
    )


def test_bindings() -> None:
    binding = {"metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "admin"},
               "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "sa"}]}  # fmt: skip
    obj, errs = create(RBAC, "RoleBinding", binding)
    assert errs == []
    assert obj["roleRef"]["apiGroup"] == RBAC
    assert obj["subjects"][0]["apiGroup"] == RBAC and obj["subjects"][1]["apiGroup"] == ""
    # A ClusterRoleBinding's service-account subject needs a namespace, and only ClusterRoles can be bound.
    _, errs = create(RBAC, "ClusterRoleBinding", {**binding, "roleRef": {"kind": "Role", "name": "r"}})
    assert sorted(fields_of(errs)) == ["roleRef.kind", "subjects[1].namespace"]
    _, errs = create(RBAC, "RoleBinding", {"metadata": {"name": "b"}, "subjects": [{"kind": "Robot", "name": "r"}]})
    assert sorted(fields_of(errs)) == ["roleRef", "subjects[0].kind"]
    new = copy.deepcopy(obj)
    new["roleRef"]["name"] = "edit"
    assert one(update(RBAC, "RoleBinding", new, obj)[1]).detail == "cannot change roleRef"


def crd(**spec: Any) -> Obj:
    base = {
        "group": "example.com",
        "names": {"plural": "widgets", "kind": "Widget"},
        "scope": "Namespaced",
        "versions": [{"name": "v1", "served": True, "storage": True,
                      "schema": {"openAPIV3Schema": {"type": "object"}}}],
    }  # fmt: skip
    base.update(spec)
    return {"metadata": {"name": "widgets.example.com"}, "spec": base}


def test_crd() -> None:
    obj, errs = create("apiextensions.k8s.io", "CustomResourceDefinition", crd())
    assert errs == []
    assert obj["spec"]["names"]["singular"] == "widget" and obj["spec"]["names"]["listKind"] == "WidgetList"
    assert obj["status"] == {"storedVersions": ["v1"]}
    bad = crd(scope="Global", group="example")
    bad["metadata"]["name"] = "widgets"
    bad["spec"]["versions"].append({"name": "v2", "served": True, "storage": True})
    _, errs = create("apiextensions.k8s.io", "CustomResourceDefinition", bad)
    by = {e.field: e for e in errs}
    assert by["spec.scope"].type == "FieldValueNotSupported"
    assert by["spec.group"].detail == "should be a domain with at least one dot"
    assert by["metadata.name"].detail == 'must be spec.names.plural+"."+spec.group'
    assert by["spec.versions"].detail == "must have exactly one version marked as storage version"
    assert by["spec.versions[1].schema.openAPIV3Schema"].detail == "schemas are required"


def test_crd_update_records_stored_versions() -> None:
    old, _ = create("apiextensions.k8s.io", "CustomResourceDefinition", crd())
    new = copy.deepcopy(old)
    new["spec"]["versions"] = [
        {"name": "v1", "served": True, "storage": False, "schema": {"openAPIV3Schema": {"type": "object"}}},
        {"name": "v2", "served": True, "storage": True, "schema": {"openAPIV3Schema": {"type": "object"}}},
    ]
    result, errs = update("apiextensions.k8s.io", "CustomResourceDefinition", new, old)
    assert errs == []
    assert result["status"]["storedVersions"] == ["v1", "v2"]
    new["spec"]["scope"] = "Cluster"
    assert one(update("apiextensions.k8s.io", "CustomResourceDefinition", new, old)[1]).field == "spec.scope"
