"""Unknown-field detection and schema look-ups used by fieldValidation and patching."""

from __future__ import annotations

import copy

import pytest

from arktos.api.fieldcheck import (
    patch_meta,
    resolve,
    schema_at,
    unknown_field_messages,
    unknown_fields,
)

POD = "io.k8s.api.core.v1.Pod"
DEPLOYMENT = "io.k8s.api.apps.v1.Deployment"

FULL_DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "web", "namespace": "prod", "tenant": "acme", "labels": {"app": "web"},
        "annotations": {"deployment.kubernetes.io/revision": "3"},
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u1", "hashKey": 7}],
        "finalizers": ["example.com/cleanup"],
    },
    "spec": {
        "replicas": 3,
        "revisionHistoryLimit": 5,
        "progressDeadlineSeconds": 300,
        "selector": {"matchLabels": {"app": "web"},
                     "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}},
        "template": {
            "metadata": {"labels": {"app": "web", "tier": "front"}, "annotations": {"a": "b"}},
            "spec": {
                "serviceAccountName": "web",
                "terminationGracePeriodSeconds": 30,
                "priorityClassName": "high",
                "nodeSelector": {"kubernetes.io/os": "linux"},
                "imagePullSecrets": [{"name": "regcred"}],
                "securityContext": {"runAsNonRoot": True, "fsGroup": 2000,
                                    "seccompProfile": {"type": "RuntimeDefault"},
                                    "sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]},
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}]},
                        "preferredDuringSchedulingIgnoredDuringExecution": [
                            {"weight": 10, "preference": {"matchExpressions": [
                                {"key": "disk", "operator": "Exists"}]}}],
                    },
                    "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 100, "podAffinityTerm": {
                            "labelSelector": {"matchLabels": {"app": "web"}},
                            "topologyKey": "kubernetes.io/hostname"}}]},
                },
                "tolerations": [
                    {"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"},
                    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
                     "tolerationSeconds": 300},
                ],
                "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
                                               "whenUnsatisfiable": "ScheduleAnyway",
                                               "labelSelector": {"matchLabels": {"app": "web"}}}],
                "initContainers": [{"name": "init", "image": "busybox", "command": ["sh", "-c", "true"]}],
                "containers": [{
                    "name": "web",
                    "image": "nginx:1.27",
                    "imagePullPolicy": "IfNotPresent",
                    "args": ["--port", "8080"],
                    "workingDir": "/srv",
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                    "env": [
                        {"name": "MODE", "value": "prod"},
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}},
                        {"name": "LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                                             "divisor": "1Mi"}}},
                    ],
                    "envFrom": [{"configMapRef": {"name": "web-config"}, "prefix": "CFG_"},
                                {"secretRef": {"name": "web-secret", "optional": True}}],
                    "resources": {"requests": {"cpu": "250m", "memory": "64Mi"},
                                  "limits": {"cpu": 1, "memory": "128Mi", "nvidia.com/gpu": 1}},
                    "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http",
                                                  "httpHeaders": [{"name": "X-Probe", "value": "1"}]},
                                      "initialDelaySeconds": 5, "periodSeconds": 10, "failureThreshold": 3},
                    "readinessProbe": {"tcpSocket": {"port": 8080}, "timeoutSeconds": 2},
                    "startupProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "successThreshold": 1},
                    "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}},
                                  "postStart": {"httpGet": {"path": "/warm", "port": 8080}}},
                    "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                        "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                                        "runAsUser": 1000},
                    "volumeMounts": [{"name": "config", "mountPath": "/etc/web", "readOnly": True},
                                     {"name": "cache", "mountPath": "/cache", "subPath": "web"}],
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                }],
                "volumes": [
                    {"name": "config", "configMap": {"name": "web-config", "defaultMode": 420,
                                                     "items": [{"key": "a", "path": "a.conf"}]}},
                    {"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                    {"name": "tls", "secret": {"secretName": "web-tls"}},
                    {"name": "data", "persistentVolumeClaim": {"claimName": "web-data"}},
                    {"name": "host", "hostPath": {"path": "/var/log", "type": "Directory"}},
                    {"name": "info", "downwardAPI": {"items": [
                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                    {"name": "token", "projected": {"sources": [
                        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                        {"configMap": {"name": "ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]}},
                ],
            },
        },
    },
}


def test_realistic_deployment_has_no_unknown_fields() -> None:
    assert unknown_fields(FULL_DEPLOYMENT, DEPLOYMENT) == []


def test_typos_are_reported_at_their_path() -> None:
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "lables": {"a": "b"}},
        "spec": {
            "containers": [
                {"name": "a", "image": "x"},
                {"name": "b", "image": "x", "imagePullPolcy": "Always",
                 "ports": [{"containerPort": 80, "protocl": "TCP"}]},
            ],
            "tolerations": [{"key": "k", "efect": "NoSchedule"}],
            "restartPolicyy": "Never",
        },
    }
    assert unknown_fields(pod, POD) == [
        "metadata.lables",
        "spec.containers[1].imagePullPolcy",
        "spec.containers[1].ports[0].protocl",
        "spec.tolerations[0].efect",
        "spec.restartPolicyy",
    ]
    assert unknown_field_messages(pod, POD)[0] == 'unknown field "metadata.lables"'


def test_deployment_typo_inside_template() -> None:
    bad = copy.deepcopy(FULL_DEPLOYMENT)
    bad["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["paht"] = "/x"
    bad["spec"]["strategy"]["rollingUpdate"]["maxSurgee"] = 2
    assert unknown_fields(bad, DEPLOYMENT) == [
        "spec.strategy.rollingUpdate.maxSurgee",
        "spec.template.spec.containers[0].livenessProbe.httpGet.paht",
    ]


def test_vm_pod_and_arktos_fields_are_known() -> None:
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "vm1", "tenant": "acme", "hashKey": 123},
        "spec": {
            "vpc": "vpc-1",
            "nics": [{"name": "eth0", "subnetName": "s1", "portId": "p1", "ipAddress": "10.0.0.5"}],
            "virtualMachine": {
                "name": "vm", "image": "cirros", "imagePullPolicy": "IfNotPresent", "keyPairName": "kp",
                "publicKey": "ssh-rsa AAA", "userData": "aGVsbG8=", "cloudInitUserDataScript": "#!/bin/sh",
                "powerSpec": "Running", "shutdownBehavior": "stop", "bootVolume": "root",
                "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                "volumeMounts": [{"name": "root", "mountPath": "/"}],
            },
        },
        "status": {"virtualMachineStatus": {"name": "vm", "virtualMachineId": "id", "imageId": "img",
                                            "state": "active", "powerState": "running", "ready": True,
                                            "restartCount": 0, "resources": {}}},
    }
    assert unknown_fields(pod, POD) == []
    pod["spec"]["virtualMachine"]["keyPair"] = "x"
    assert unknown_fields(pod, POD) == ["spec.virtualMachine.keyPair"]


def test_tenant_action_and_controller_instance() -> None:
    tenant = {"apiVersion": "v1", "kind": "Tenant", "metadata": {"name": "acme"},
              "spec": {"storageClusterId": "1", "finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
    assert unknown_fields(tenant, "io.arktos.api.core.v1.Tenant") == []
    action = {"apiVersion": "v1", "kind": "Action", "metadata": {"name": "reboot-1"},
              "spec": {"nodeName": "n", "podName": "p", "podID": "u", "rebootAction": {"delayInSeconds": 5}},
              "status": {"complete": True, "rebootStatus": {"rebootSuccessful": True}}}
    assert unknown_fields(action, "io.arktos.api.core.v1.Action") == []
    ci = {"apiVersion": "v1", "kind": "ControllerInstance", "metadata": {"name": "replicaset-1"},
          "controllerType": "replicaset", "controllerKey": 9, "workloadNum": 3, "isLocked": False, "extra": 1}
    assert unknown_fields(ci, "io.arktos.api.core.v1.ControllerInstance") == ["extra"]


def test_crd_schema_is_free_form() -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {"group": "stable.example.com", "scope": "Namespaced",
                 "names": {"plural": "crontabs", "kind": "CronTab", "shortNames": ["ct"]},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {
                                   "type": "object", "x-kubernetes-validations": [{"rule": "true"}],
                                   "properties": {"spec": {"type": "object", "anyOf": [{"required": ["a"]}],
                                                           "properties": {"a": {"type": "string"}}}}}}}]},
    }
    assert unknown_fields(crd, "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition") \
        == []


def test_custom_resource_schema_dict() -> None:
    spec_props = {
        "cronSpec": {"type": "string"},
        "opts": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
    }
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": spec_props}}}
    obj = {"apiVersion": "stable.example.com/v1", "kind": "CronTab",
           "metadata": {"name": "c", "labels": {"x": "y"}, "nmae": "typo"},
           "spec": {"cronSpec": "* * * * *", "opts": {"anything": {"deep": 1}}, "tags": {"k": "v"},
                    "cronSpek": "typo"},
           "status": {}}
    assert unknown_fields(obj, schema) == ["metadata.nmae", "spec.cronSpek", "status"]
    free = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert unknown_fields(obj, free) == ["metadata.nmae"]


def test_int_or_string_and_quantities_accept_both_forms() -> None:
    for value in (1, "25%"):
        d = copy.deepcopy(FULL_DEPLOYMENT)
        d["spec"]["strategy"]["rollingUpdate"] = {"maxSurge": value, "maxUnavailable": value}
        assert unknown_fields(d, DEPLOYMENT) == []
    ios = schema_at(DEPLOYMENT, "spec.strategy.rollingUpdate.maxSurge")
    assert ios is not None and ios["x-kubernetes-int-or-string"] is True
    quantity = schema_at(POD, "spec.containers[].resources.limits.cpu")
    assert quantity is not None and {"type": "string"} in quantity["oneOf"]


def test_duplicates_are_reported_once() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [], "bad": 1}}
    assert unknown_fields(pod, POD) == ["spec.bad"]


def test_resolve_keeps_field_level_facts() -> None:
    spec = resolve(POD)["properties"]["spec"]
    resolved = resolve(spec)
    assert resolved["description"] == spec["description"]
    assert "containers" in resolved["properties"]
    strategy = resolve(resolve("io.k8s.api.apps.v1.DeploymentSpec")["properties"]["strategy"])
    assert strategy["x-kubernetes-patch-strategy"] == "retainKeys"
    assert "rollingUpdate" in strategy["properties"]
    with pytest.raises(KeyError):
        resolve("io.k8s.api.core.v1.NoSuchThing")


@pytest.mark.parametrize(("schema", "path", "expected"), [
    (POD, "spec.containers", {"strategy": ["merge"], "mergeKey": "name", "listType": "map", "listMapKeys": ["name"]}),
    (POD, "spec.initContainers", {"strategy": ["merge"], "mergeKey": "name", "listType": "map",
                                  "listMapKeys": ["name"]}),
    (POD, "spec.containers[].env", {"strategy": ["merge"], "mergeKey": "name", "listType": "map",
                                    "listMapKeys": ["name"]}),
    (POD, "spec.containers[0].ports", {"strategy": ["merge"], "mergeKey": "containerPort", "listType": "map",
                                       "listMapKeys": ["containerPort", "protocol"]}),
    (POD, "spec.containers[].volumeMounts", {"strategy": ["merge"], "mergeKey": "mountPath", "listType": "map",
                                             "listMapKeys": ["mountPath"]}),
    (POD, "spec.volumes", {"strategy": ["merge", "retainKeys"], "mergeKey": "name", "listType": "map",
                           "listMapKeys": ["name"]}),
    (POD, "spec.imagePullSecrets", {"strategy": ["merge"], "mergeKey": "name", "listType": "map",
                                    "listMapKeys": ["name"]}),
    (POD, "spec.tolerations", {"listType": "atomic"}),
    (POD, "spec.containers[].command", {"listType": "atomic"}),
    (POD, "spec.nics", {"strategy": ["merge", "retainKeys"], "mergeKey": "name"}),
    (POD, "status.conditions", {"strategy": ["merge"], "mergeKey": "type", "listType": "map",
                                "listMapKeys": ["type"]}),
    (POD, "metadata.finalizers", {"strategy": ["merge"], "listType": "set"}),
    (POD, "metadata.ownerReferences", {"strategy": ["merge"], "mergeKey": "uid", "listType": "map",
                                       "listMapKeys": ["uid"]}),
    ("io.k8s.api.core.v1.Service", "spec.ports", {"strategy": ["merge"], "mergeKey": "port", "listType": "map",
                                                  "listMapKeys": ["port", "protocol"]}),
    ("io.k8s.api.core.v1.Node", "status.addresses", {"strategy": ["merge"], "mergeKey": "type",
                                                     "listType": "map", "listMapKeys": ["type"]}),
    (DEPLOYMENT, "spec.template.spec.containers", {"strategy": ["merge"], "mergeKey": "name",
                                                   "listType": "map", "listMapKeys": ["name"]}),
    (DEPLOYMENT, "spec.strategy", {"strategy": ["retainKeys"]}),
    (DEPLOYMENT, "status.conditions", {"strategy": ["merge"], "mergeKey": "type", "listType": "map",
                                       "listMapKeys": ["type"]}),
    ("io.k8s.api.rbac.v1.Role", "rules", {"listType": "atomic"}),
    (POD, "spec.nosuch", {}),
])
def test_patch_meta(schema: str, path: str, expected: dict) -> None:
    assert patch_meta(schema, path) == expected


def test_schema_at_walks_maps_and_lists() -> None:
    assert schema_at(POD, "metadata.labels.app") == {"type": "string"}
    item = schema_at(POD, ["spec", "containers", "[]"])
    assert item is not None and item["required"] == ["name"]
    assert schema_at(POD, "spec.containers[].nope") is None
    assert schema_at(POD, "metadata.name[]") is None
