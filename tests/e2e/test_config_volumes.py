"""ConfigMaps, Secrets and service-account tokens in real containers (arktos.agent.volumes on containerd).

A cluster of its own (etcd, an API server with service-account keys, the controller manager with a root
CA to publish, and a node agent on the private containerd; pods name their node, so no scheduler): a
pod with a configMap volume, a secret volume, env from both and a projected kube-api-access volume
prints the values; a ConfigMap update reaches the file in the running container; a pod whose env needs
a missing ConfigMap waits with CreateContainerConfigError and starts once it exists; the projected token
is one the API server accepts (a TokenReview).
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from arktos.cluster.images import BUSYBOX_IMAGE
from tests.conftest import ComponentProc, start_apiserver, write_dev_kubeconfig
from tests.e2e.test_containers import kubectl, wait_for

pytestmark = [pytest.mark.kubectl, pytest.mark.timeout(120)]

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


@pytest.fixture
def cluster(private_etcd, containerd, tmp_path):
    from arktos.cluster.pki import ClusterPKI

    pki = ClusterPKI(tmp_path / "pki")
    pki.ensure(["localhost", "127.0.0.1"])
    server = start_apiserver(private_etcd.url, tmp_path / "apiserver.log", "--service-account-key-file",
                             str(pki.sa_pub), "--service-account-signing-key-file", str(pki.sa_key))
    agent_root = tmp_path / "agent"
    procs = [ComponentProc("controller-manager", tmp_path / "cm.log", [
                 "--master", server.url, "--no-leader-elect", "--root-ca-file", str(pki.ca.cert),
                 "--controllers", "tenant,namespace,serviceaccount,root-ca-cert-publisher"]),
             ComponentProc("node-agent", tmp_path / "agent.log", [
                 "--master", server.url, "--node-name", "cfgbox", "--runtimes", "containerd",
                 "--container-runtime-endpoint", containerd.socket, "--root-dir", str(agent_root),
                 "--lease-renew-interval", "2", "--status-update-interval", "2", "--sync-frequency", "2",
                 "--config-ttl", "1"])]
    kubeconfig = write_dev_kubeconfig(tmp_path / "kubeconfig", server.url)
    try:
        yield kubeconfig, server, pki, agent_root
    finally:
        # The agent unmounts the pods' tmpfs volumes when their pods go: delete them while it runs.
        kubectl(kubeconfig, "delete", "pods", "--all", "--grace-period=1", "--wait=true", check=False, timeout=40)
        for p in reversed(procs):
            p.stop()
        server.stop()
        for dirpath, dirs, _ in os.walk(agent_root):
            for d in dirs:
                if os.path.ismount(os.path.join(dirpath, d)):
                    subprocess.run(["umount", os.path.join(dirpath, d)], check=False)


def pod_json(kubeconfig, name: str) -> dict:
    return json.loads(kubectl(kubeconfig, "get", "pod", name, "-o", "json").stdout)


def phase(kubeconfig, name: str) -> str:
    return pod_json(kubeconfig, name).get("status", {}).get("phase", "")


def test_configmaps_secrets_and_tokens_in_containers(cluster):
    kubeconfig, _server, pki, agent_root = cluster
    kubectl(kubeconfig, "create", "configmap", "app-config", "--from-literal=greeting=hello",
            "--from-literal=mode=one")
    kubectl(kubeconfig, "create", "secret", "generic", "app-secret", "--from-literal=password=s3cret")
    script = ('echo "env greeting=$GREETING password=$PASSWORD mode=$CFG_mode"; '
              'echo "file $(cat /etc/config/greeting) $(cat /etc/secret/password)"; sleep 3600')
    manifest = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app"}, "spec": {
            "nodeName": "cfgbox", "terminationGracePeriodSeconds": 1,
            "volumes": [
                {"name": "config", "configMap": {"name": "app-config"}},
                {"name": "secret", "secret": {"secretName": "app-secret", "defaultMode": 0o400}},
                {"name": "kube-api-access", "projected": {"defaultMode": 0o644, "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace",
                                                "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}}],
            "containers": [{
                "name": "app", "image": BUSYBOX_IMAGE, "command": ["sh", "-c", script],
                "env": [{"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "app-config",
                                                                               "key": "greeting"}}},
                        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "app-secret",
                                                                            "key": "password"}}}],
                "envFrom": [{"prefix": "CFG_", "configMapRef": {"name": "app-config"}}],
                "volumeMounts": [{"name": "config", "mountPath": "/etc/config"},
                                 {"name": "secret", "mountPath": "/etc/secret"},
                                 {"name": "kube-api-access", "mountPath": SA_DIR, "readOnly": True}]}]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "waiter"}, "spec": {
            "nodeName": "cfgbox", "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "w", "image": BUSYBOX_IMAGE, "command": ["sh", "-c", 'echo "late=$X"; sleep 3600'],
                            "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "late",
                                                                                    "key": "x"}}}]}]}}]}
    kubectl(kubeconfig, "apply", "-f", "-", input=json.dumps(manifest))

    # Values from both, in env and in files.
    wait_for(lambda: phase(kubeconfig, "app") == "Running", 40, "the app pod running")
    logs = wait_for(lambda: kubectl(kubeconfig, "logs", "app", check=False).stdout.strip(), 10, "the app's log")
    assert logs.splitlines() == ["env greeting=hello password=s3cret mode=one", "file hello s3cret"], logs
    mode = kubectl(kubeconfig, "exec", "app", "--", "stat", "-L", "-c", "%a", "/etc/secret/password").stdout
    assert mode.strip() == "400"
    touch = kubectl(kubeconfig, "exec", "app", "--", "touch", "/etc/config/x", check=False)
    assert touch.returncode != 0 and "Read-only file system" in touch.stderr
    uid = pod_json(kubeconfig, "app")["metadata"]["uid"]
    volumes = agent_root / "pods" / uid / "volumes"
    assert os.path.ismount(volumes / "secret" / "secret") and os.path.ismount(volumes / "projected" / "kube-api-access")
    assert not os.path.ismount(volumes / "configmap" / "config")

    # A ConfigMap update reaches the running container's file (a TTL of 1 s here).
    kubectl(kubeconfig, "patch", "configmap", "app-config", "-p", '{"data":{"greeting":"bonjour"}}')
    changed = time.monotonic()
    wait_for(lambda: kubectl(kubeconfig, "exec", "app", "--", "cat", "/etc/config/greeting").stdout == "bonjour",
             10, "the new greeting in the container")
    print(f"\nConfigMap change in the container after {time.monotonic() - changed:.1f}s")
    assert pod_json(kubeconfig, "app")["status"]["containerStatuses"][0]["restartCount"] == 0

    # The projected token: the namespace, the cluster CA, and a token the API server accepts as the pod's.
    sa = {f: kubectl(kubeconfig, "exec", "app", "--", "cat", f"{SA_DIR}/{f}").stdout for f in
          ("token", "ca.crt", "namespace")}
    assert sa["namespace"] == "default" and sa["ca.crt"] == pki.ca.cert.read_text()
    review = json.loads(kubectl(kubeconfig, "create", "-o", "json", "-f", "-", input=json.dumps({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": sa["token"]}})).stdout)
    assert review["status"]["authenticated"], review
    assert review["status"]["user"]["username"] == "system:serviceaccount:default:default"
    assert review["status"]["user"]["extra"]["authentication.kubernetes.io/pod-uid"] == [uid]

    # A missing ConfigMap: the container waits with kubelet's reason and message, and starts once it exists.
    def config_error():
        cs = (pod_json(kubeconfig, "waiter").get("status", {}).get("containerStatuses") or [{}])[0]
        return cs.get("state", {}).get("waiting", {})
    waiting = wait_for(lambda: config_error().get("reason") == "CreateContainerConfigError" and config_error(), 20,
                       "CreateContainerConfigError")
    assert waiting["message"] == 'configmap "late" not found'
    kubectl(kubeconfig, "create", "configmap", "late", "--from-literal=x=1")
    wait_for(lambda: phase(kubeconfig, "waiter") == "Running", 20, "the waiter running")
    wait_for(lambda: kubectl(kubeconfig, "logs", "waiter", check=False).stdout == "late=1\n", 10, "the waiter's log")

    # A deleted pod's volumes go with it, tmpfs mounts included.
    kubectl(kubeconfig, "delete", "pod", "app", "--grace-period=1", "--wait=true", timeout=40)
    wait_for(lambda: not (agent_root / "pods" / uid).exists(), 10, "the pod's volumes removed")
