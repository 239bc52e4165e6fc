"""The real kubectl, unchanged, against the API server (development mode, system tenant)."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import yaml

pytestmark = pytest.mark.kubectl

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {{app: web, tier: front}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: web
        image: {image}
        ports:
        - containerPort: 80
        resources:
          requests: {{cpu: 100m, memory: 64Mi}}
"""

POD = """
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: {app}}}
spec:
  containers:
  - name: main
    image: busybox:1.36
    command: ["sleep", "3600"]
"""


def test_version_and_api_resources(kubectl):
    out = kubectl("version", "-o", "json").stdout
    assert json.loads(out)["serverVersion"]["minor"] == "30"
    resources = kubectl("api-resources").stdout
    for line in ("pods", "deployments", "tenants", "actions", "controllerinstances", "leases", "clusterroles"):
        assert f"\n{line} " in resources or resources.startswith(line)
    pods_line = next(line for line in resources.splitlines() if line.startswith("pods "))
    assert "po" in pods_line.split() and "true" in pods_line.split() and "Pod" in pods_line.split()


def test_create_get_describe_delete_pod(kubectl, namespace):
    kubectl("create", "-n", namespace, "-f", "-", input=POD.format(name="p1", app="a"))
    table = kubectl("get", "pods", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert table[1].split()[:4] == ["p1", "0/1", "Pending", "0"]
    wide = kubectl("get", "pods", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert "NODE" in wide[0].split() and "IP" in wide[0].split()
    obj = yaml.safe_load(kubectl("get", "pod", "p1", "-n", namespace, "-o", "yaml").stdout)
    assert obj["metadata"]["tenant"] == "system"
    assert 0 <= obj["metadata"]["hashKey"] < 2**63
    assert obj["spec"]["restartPolicy"] == "Always"  # defaulted by the server
    assert kubectl("get", "pod", "p1", "-n", namespace, "-o", "jsonpath={.spec.containers[0].image}").stdout == (
        "busybox:1.36")
    described = kubectl("describe", "pod", "p1", "-n", namespace).stdout
    assert "Name:" in described and "p1" in described and "busybox:1.36" in described
    # An unscheduled pod has no grace period: deletion is immediate.
    kubectl("delete", "pod", "p1", "-n", namespace, "--wait=true")
    err = kubectl("get", "pod", "p1", "-n", namespace, check=False)
    assert err.returncode != 0 and 'pods "p1" not found' in err.stderr


def test_create_duplicate_and_invalid(kubectl, namespace):
    kubectl("create", "-n", namespace, "-f", "-", input=POD.format(name="dup", app="a"))
    again = kubectl("create", "-n", namespace, "-f", "-", input=POD.format(name="dup", app="a"), check=False)
    assert again.returncode != 0 and "AlreadyExists" in again.stderr
    bad = POD.format(name="Bad_Name", app="a")
    invalid = kubectl("create", "-n", namespace, "-f", "-", input=bad, check=False)
    assert invalid.returncode != 0 and "Invalid" in invalid.stderr and "metadata.name" in invalid.stderr
    typo = POD.format(name="typo", app="a").replace("command:", "comand:")
    strict = kubectl("create", "-n", namespace, "-f", "-", input=typo, check=False)
    assert strict.returncode != 0 and 'unknown field "spec.containers[0].comand"' in strict.stderr


def test_label_selectors_and_all_namespaces(kubectl, namespace):
    for name, app in (("a1", "alpha"), ("a2", "alpha"), ("b1", "beta")):
        kubectl("create", "-n", namespace, "-f", "-", input=POD.format(name=name, app=app))
    names = kubectl("get", "pods", "-n", namespace, "-l", "app=alpha", "-o", "name").stdout.split()
    assert names == ["pod/a1", "pod/a2"]
    names = kubectl("get", "pods", "-n", namespace, "-l", "app notin (alpha)", "-o", "name").stdout.split()
    assert names == ["pod/b1"]
    everywhere = kubectl("get", "pods", "-A", "-l", "app=beta").stdout
    assert namespace in everywhere and "b1" in everywhere and everywhere.splitlines()[0].startswith("NAMESPACE")
    by_field = kubectl("get", "pods", "-n", namespace, "--field-selector", "metadata.name=a2", "-o", "name").stdout
    assert by_field.split() == ["pod/a2"]


def test_label_annotate_and_three_patch_types(kubectl, namespace):
    kubectl("create", "-n", namespace, "-f", "-", input=POD.format(name="p", app="a"))
    kubectl("label", "pod", "p", "-n", namespace, "env=prod")
    kubectl("annotate", "pod", "p", "-n", namespace, "owner=team-a")
    kubectl("patch", "pod", "p", "-n", namespace, "-p", '{"metadata":{"labels":{"patched":"strategic"}}}')
    kubectl("patch", "pod", "p", "-n", namespace, "--type", "merge", "-p", '{"metadata":{"labels":{"m":"1"}}}')
    kubectl("patch", "pod", "p", "-n", namespace, "--type", "json",
            "-p", '[{"op":"replace","path":"/spec/containers/0/image","value":"busybox:1.37"}]')
    obj = json.loads(kubectl("get", "pod", "p", "-n", namespace, "-o", "json").stdout)
    assert obj["metadata"]["labels"] == {"app": "a", "env": "prod", "patched": "strategic", "m": "1"}
    assert obj["metadata"]["annotations"]["owner"] == "team-a"
    assert obj["spec"]["containers"][0]["image"] == "busybox:1.37"
    kubectl("label", "pod", "p", "-n", namespace, "env-")
    obj = json.loads(kubectl("get", "pod", "p", "-n", namespace, "-o", "json").stdout)
    assert "env" not in obj["metadata"]["labels"]
    failed = kubectl("patch", "pod", "p", "-n", namespace, "--type", "json",
                     "-p", '[{"op":"test","path":"/metadata/name","value":"other"}]', check=False)
    assert failed.returncode != 0


def test_apply_twice_then_server_side_and_scale(kubectl, namespace):
    manifest = DEPLOYMENT.format(replicas=2, image="nginx:1.25")
    first = kubectl("apply", "-n", namespace, "-f", "-", input=manifest).stdout
    assert "deployment.apps/web created" in first
    same = kubectl("apply", "-n", namespace, "-f", "-", input=manifest).stdout
    assert "unchanged" in same
    changed = kubectl("apply", "-n", namespace, "-f", "-",
                      input=DEPLOYMENT.format(replicas=3, image="nginx:1.26")).stdout
    assert "configured" in changed
    obj = json.loads(kubectl("get", "deploy", "web", "-n", namespace, "-o", "json").stdout)
    assert obj["spec"]["replicas"] == 3
    assert obj["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    assert obj["metadata"]["generation"] == 2
    assert obj["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": "25%"}
    kubectl("scale", "deployment", "web", "-n", namespace, "--replicas", "5")
    assert kubectl("get", "deploy", "web", "-n", namespace, "-o", "jsonpath={.spec.replicas}").stdout == "5"
    header = kubectl("get", "deploy", "-n", namespace).stdout.splitlines()[0].split()
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]

    ssa = DEPLOYMENT.format(replicas=4, image="nginx:1.27").replace("name: web\n", "name: web-ssa\n", 1)
    out = kubectl("apply", "--server-side", "-n", namespace, "-f", "-", input=ssa).stdout
    assert "serverside-applied" in out
    out = kubectl("apply", "--server-side", "-n", namespace, "-f", "-",
                  input=ssa.replace("replicas: 4", "replicas: 6")).stdout
    assert "serverside-applied" in out
    obj = json.loads(kubectl("get", "deploy", "web-ssa", "-n", namespace, "-o", "json",
                             "--show-managed-fields").stdout)
    assert obj["spec"]["replicas"] == 6
    assert any(m["manager"] == "kubectl" and m["operation"] == "Apply" for m in obj["metadata"]["managedFields"])


def test_get_watch_streams_changes(kubectl, apiserver, namespace, tmp_path):
    kubectl("create", "-n", namespace, "-f", "-", input=POD.format(name="w1", app="w"))
    from tests.e2e.conftest import kubectl_binary

    watch = subprocess.Popen(
        [kubectl_binary(30), "--server", apiserver.url, "--cache-dir", str(tmp_path / "c"), "get", "pods", "-n",
         namespace, "-w", "-o", "name"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        time.sleep(1.5)
        kubectl("create", "-n", namespace, "-f", "-", input=POD.format(name="w2", app="w"))
        time.sleep(1.0)
    finally:
        watch.terminate()
        out, _ = watch.communicate(timeout=10)
    assert out.split()[:2] == ["pod/w1", "pod/w2"]


def test_wait_for_delete_and_explain(kubectl, namespace):
    kubectl("create", "-n", namespace, "-f", "-", input=POD.format(name="gone", app="g"))
    kubectl("delete", "pod", "gone", "-n", namespace, "--wait=false")
    kubectl("wait", "--for=delete", "pod/gone", "-n", namespace, "--timeout=20s")
    explained = kubectl("explain", "pods.spec.containers").stdout
    assert "FIELDS:" in explained and "image" in explained
    explained = kubectl("explain", "tenants").stdout
    assert "Tenant" in explained


def test_custom_resource_definition_and_custom_resources(kubectl, namespace):
    crd = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
              color: {type: string}
"""
    kubectl("apply", "-f", "-", input=crd)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if "widgets" in kubectl("api-resources", "--api-group", "example.com").stdout:
            break
        time.sleep(0.3)
    widget = """
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1}
spec: {size: 3, color: blue}
"""
    kubectl("apply", "-n", namespace, "-f", "-", input=widget)
    got = json.loads(kubectl("get", "widgets", "w1", "-n", namespace, "-o", "json").stdout)
    assert got["spec"] == {"size": 3, "color": "blue"} and got["metadata"]["tenant"] == "system"
    kubectl("patch", "wd", "w1", "-n", namespace, "--type", "merge", "-p", '{"spec":{"size":4}}')
    assert kubectl("get", "wd", "w1", "-n", namespace, "-o", "jsonpath={.spec.size}").stdout == "4"
    assert "w1" in kubectl("get", "widgets", "-n", namespace).stdout
    kubectl("delete", "widget", "w1", "-n", namespace)
    assert kubectl("get", "widgets", "-n", namespace, "-o", "name").stdout.strip() == ""


@pytest.mark.parametrize("minor", [27, 33])
def test_oldest_and_newest_kubectl(kubectl, namespace, minor):
    kubectl("create", "-n", namespace, "-f", "-", input=POD.format(name=f"k{minor}", app="v"), minor=minor)
    kubectl("apply", "-n", namespace, "-f", "-", input=DEPLOYMENT.format(replicas=1, image="nginx"), minor=minor)
    out = kubectl("get", "pods,deployments", "-n", namespace, minor=minor).stdout
    assert f"k{minor}" in out and "web" in out
