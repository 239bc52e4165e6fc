"""In-cluster access to the API server, as Kubernetes gives it, in an `arktos up` cluster with real containers.

A busybox pod gets the `kube-api-access-*` volume (token, ca.crt, namespace) and KUBERNETES_SERVICE_HOST/PORT;
the system tenant's `default/kubernetes` Service sits at the range's first address with the API server's
advertised address (the pod bridge's gateway) as its endpoint, and the service proxy DNATs it there.  With the
pod's own token and CA, the official Python client (what `load_incluster_config` sets up) reaches the API
server through the ClusterIP, and RBAC applies to the service account: it may not list pods until bound.

busybox's wget cannot speak TLS here (the image's busybox has no `ssl_client`; `wget https://...` crashes), and
its nc has no -z, so the TLS client is the host's Python client with the pod's files, through the same DNAT.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from arktos.cluster.etcd import free_port
from tests.e2e.conftest import kubectl_binary

pytestmark = [pytest.mark.kubectl, pytest.mark.timeout(300)]
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def arktos(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "arktos", *args], capture_output=True, text=True, timeout=timeout)


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_pod_reaches_the_api_server_with_its_service_account(tmp_path: Path):
    state = tmp_path / "cluster"
    etcd_port, api_port = free_port(), free_port()
    while etcd_port + 1 == api_port:
        api_port = free_port()
    agent_port = random.randrange(20000, 30000)
    while listening(agent_port):
        agent_port = random.randrange(20000, 30000)
    opts = ["--state-dir", str(state), "--etcd-port", str(etcd_port), "--apiserver-port", str(api_port)]
    prefix = f"IC{os.getpid() % 10000}-"
    try:
        up = arktos("up", *opts, "--runtimes", "containerd,hollow-vm", "--node-name", "ic-node", "--node-agents", "1",
                    "--node-agent-port", str(agent_port), "--proxy-healthz-port", str(free_port()),
                    "--iptables-chain-prefix", prefix, "--dns-port", str(free_port()))
        assert up.returncode == 0, up.stderr + up.stdout
        env = {**os.environ, "KUBECONFIG": str(state / "admin.kubeconfig")}
        kc = [kubectl_binary(32), "--cache-dir", str(tmp_path / "kc")]

        def run(*args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
            proc = subprocess.run([*kc, *args], capture_output=True, text=True, env=env, input=input, timeout=90)
            assert not check or proc.returncode == 0, f"kubectl {args}: {proc.stderr}{proc.stdout}"
            return proc

        # The kubernetes Service and its endpoint: the bridge gateway, at the API server's port.
        svc = json.loads(run("get", "service", "kubernetes", "-n", "default", "-o", "json").stdout)
        assert svc["spec"]["clusterIP"] == "10.0.0.1" and svc["spec"]["ports"][0]["port"] == 443, svc
        assert svc["spec"]["ports"][0]["name"] == "https" and svc["spec"]["ports"][0]["targetPort"] == api_port
        eps = json.loads(run("get", "endpoints", "kubernetes", "-n", "default", "-o", "json").stdout)
        gateway = eps["subsets"][0]["addresses"][0]["ip"]
        assert gateway != "127.0.0.1" and eps["subsets"][0]["ports"][0]["port"] == api_port, eps

        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "incluster"}, "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": "arktos.local/busybox:1.36", "command": ["sleep", "3600"]}]}}
        run("create", "-f", "-", input=json.dumps(pod))
        run("wait", "--for=condition=Ready", "pod/incluster", "--timeout=90s")
        spec = json.loads(run("get", "pod", "incluster", "-o", "json").stdout)["spec"]
        vols = [v for v in spec["volumes"] if v["name"].startswith("kube-api-access-")]
        assert len(vols) == 1 and len(vols[0]["name"]) == len("kube-api-access-") + 5, spec["volumes"]
        mount = [m for m in spec["containers"][0]["volumeMounts"] if m["mountPath"] == SA_DIR]
        assert mount == [{"name": vols[0]["name"], "mountPath": SA_DIR, "readOnly": True}], mount

        listing = run("exec", "incluster", "--", "ls", SA_DIR).stdout.split()
        assert {"token", "ca.crt", "namespace"} <= set(listing), listing
        assert run("exec", "incluster", "--", "cat", f"{SA_DIR}/namespace").stdout == "default"
        token = run("exec", "incluster", "--", "cat", f"{SA_DIR}/token").stdout.strip()
        ca = run("exec", "incluster", "--", "cat", f"{SA_DIR}/ca.crt").stdout
        assert "BEGIN CERTIFICATE" in ca and token.count(".") == 2
        environ = run("exec", "incluster", "--", "env").stdout.splitlines()
        assert "KUBERNETES_SERVICE_HOST=10.0.0.1" in environ and "KUBERNETES_SERVICE_PORT=443" in environ, environ
        # The pod finds the Service by name (busybox's nslookup applies no search path: the full name).
        found = run("exec", "incluster", "--", "nslookup", "kubernetes.default.svc.cluster.local").stdout
        assert "10.0.0.1" in found, found

        # From the host, the official client with the pod's token and CA, through the ClusterIP (as in-cluster
        # config does) and through the advertised address: the certificate names both.
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        ca_file = tmp_path / "ca.crt"
        ca_file.write_text(ca)

        def api(host: str) -> client.CoreV1Api:
            cfg = client.Configuration()
            cfg.host, cfg.ssl_ca_cert = host, str(ca_file)
            cfg.api_key, cfg.api_key_prefix = {"authorization": token}, {"authorization": "Bearer"}
            return client.CoreV1Api(client.ApiClient(cfg))
        for host in ("https://10.0.0.1:443", f"https://{gateway}:{api_port}"):
            with pytest.raises(ApiException) as denied:
                api(host).list_namespaced_pod("default")
            assert denied.value.status == 403 and "system:serviceaccount:default:default" in denied.value.body
        run("create", "rolebinding", "sa-view", "--clusterrole=view", "--serviceaccount=default:default")
        deadline = time.monotonic() + 15
        while True:
            try:
                names = [p.metadata.name for p in api("https://10.0.0.1:443").list_namespaced_pod("default").items]
                break
            except ApiException as exc:
                if exc.status != 403 or time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        assert "incluster" in names
        with pytest.raises(ApiException) as denied:  # view is read-only
            api("https://10.0.0.1:443").delete_namespaced_pod("incluster", "default")
        assert denied.value.status == 403
    finally:
        arktos("down", *opts, "--purge", timeout=180)
