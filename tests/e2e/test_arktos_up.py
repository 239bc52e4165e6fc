"""`arktos up`, `status` and `down` as a user runs them: real processes, real ports."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

from arktos.cluster.containerd import bridge_name
from arktos.cluster.etcd import free_port
from tests.e2e.conftest import kubectl_binary


def arktos(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "arktos", *args], capture_output=True, text=True, timeout=timeout)


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_up_is_idempotent_and_down_leaves_nothing(tmp_path: Path):
    state = tmp_path / "cluster"
    etcd_port, api_port = free_port(), free_port()
    while etcd_port + 1 == api_port:
        api_port = free_port()
    # The agents' ports (the second takes the next one) come from below the ephemeral range, as 10250 does:
    # there no other process (containerd's stream server, say) can be handed them meanwhile.
    agent_port = random.randrange(20000, 30000, 2)
    while listening(agent_port) or listening(agent_port + 1):
        agent_port = random.randrange(20000, 30000, 2)
    opts = ["--state-dir", str(state), "--etcd-port", str(etcd_port), "--apiserver-port", str(api_port)]
    # The service proxy's chains and health port are the test's own (a cluster of the machine may use KUBE-).
    prefix, proxy_port = f"UP{os.getpid() % 10000}-", free_port()
    dns_port = free_port()
    final_pids: dict[str, list[str]] = {}
    try:
        # Real containers (make install brings containerd); VMs hollow, since the VM pod's image exists on no
        # machine's libvirt (tests/e2e/test_kvm.py boots real ones).
        first = arktos("up", *opts, "--runtimes", "containerd,hollow-vm", "--node-name", "up-node",
                       "--node-agents", "2",
                       "--node-agent-port", str(agent_port),
                       "--proxy-healthz-port", str(proxy_port), "--iptables-chain-prefix", prefix,
                       "--dns-port", str(dns_port),
                       "--hollow-nodes", "5")
        assert first.returncode == 0, first.stderr + first.stdout
        components = ("etcd", "apiserver", "controller-manager", "node-agent", "node-agent-2", "proxy", "dns",
                      "scheduler", "hollow-nodes")
        assert "started containerd " in first.stdout and "started containerd-2 " in first.stdout, first.stdout
        assert all(f"started {c} " in first.stdout for c in components), first.stdout
        assert "tenant demo is ready" in first.stdout and "✓" not in first.stdout  # plain lines off a terminal
        assert listening(agent_port) and listening(agent_port + 1)  # each agent's logs/exec endpoint
        # Every component runs from a configuration file rendered from templates/.
        for c in components:
            assert (state / "config" / f"{c}.yaml").exists(), c
        kubeconfig = state / "admin.kubeconfig"
        assert oct(kubeconfig.stat().st_mode & 0o777) == "0o600"
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        got = subprocess.run([kubectl_binary(30), "--cache-dir", str(tmp_path / "kc"), "get", "namespaces",
                              "-o", "name"], capture_output=True, text=True, env=env, timeout=60)
        assert got.returncode == 0, got.stderr
        # As in Kubernetes, kube-node-lease holds the node leases (the node lifecycle controller makes it).
        assert got.stdout.split() in (["namespace/default", "namespace/kube-public", "namespace/kube-system"],
                                      ["namespace/default", "namespace/kube-node-lease", "namespace/kube-public",
                                       "namespace/kube-system"])

        pids = {p.name: p.read_text().split()[0] for p in (state / "run").glob("*.pid")}
        again = arktos("up", *opts)
        assert again.returncode == 0 and "nothing changed" in again.stdout
        assert {p.name: p.read_text().split()[0] for p in (state / "run").glob("*.pid")} == pids

        status = arktos("status", "--state-dir", str(state))  # the ports are remembered
        assert status.returncode == 0 and status.stdout.count("healthy") == 11, status.stdout
        nodes = subprocess.run([kubectl_binary(30), "--cache-dir", str(tmp_path / "kc"), "get", "nodes", "-o",
                                "json"], capture_output=True, text=True, env=env, timeout=60)
        items = {n["metadata"]["name"]: n for n in json.loads(nodes.stdout)["items"]}
        hollow = [f"hollow-node-{i}" for i in range(1, 6)]
        assert set(items) == {"up-node", "up-node-2", *hollow}
        for name, node in items.items():
            assert any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"]), name
            assert (node["metadata"]["labels"].get("arktos.io/hollow-node") == "true") == (name in hollow)

        # The tenant `up` made ready: its admin's plain kubectl works inside it at once.
        demo_env = {**os.environ, "KUBECONFIG": str(state / "users" / "demo-admin.kubeconfig")}
        demo = subprocess.run([kubectl_binary(30), "--cache-dir", str(tmp_path / "kc3"), "get", "namespaces", "-o",
                               "name"], capture_output=True, text=True, env=demo_env, timeout=60)
        assert demo.returncode == 0 and "namespace/default" in demo.stdout.split(), demo.stderr

        # A tenant, set up by the controller manager, and its admin driving plain kubectl.
        state_opt = ["--state-dir", str(state)]
        created = arktos("tenant", "create", "acme", *state_opt)
        assert created.returncode == 0 and "tenant/acme is ready" in created.stdout, created.stderr
        issued = arktos("kubeconfig", "--tenant", "acme", "--user", "admin", *state_opt)
        assert issued.returncode == 0, issued.stderr
        tenant_env = {**os.environ, "KUBECONFIG": str(state / "users" / "acme-admin.kubeconfig")}
        mine = subprocess.run([kubectl_binary(30), "--cache-dir", str(tmp_path / "kc2"), "get", "namespaces,sa",
                               "-A", "-o", "json"], capture_output=True, text=True, env=tenant_env, timeout=60)
        assert mine.returncode == 0, mine.stderr
        items = json.loads(mine.stdout)["items"]
        assert {i["metadata"]["tenant"] for i in items} == {"acme"}
        assert {i["metadata"]["name"] for i in items if i["kind"] == "Namespace"} == {
            "default", "kube-system", "kube-public"}
        created = subprocess.run([kubectl_binary(30), "--cache-dir", str(tmp_path / "kc2"), "create", "deployment",
                                  "web", "--image=arktos.local/busybox:1.36", "--replicas=3", "--", "sleep",
                                  "3600"], capture_output=True, text=True,
                                 env=tenant_env, timeout=60)
        assert created.returncode == 0, created.stderr
        rollout = subprocess.run([kubectl_binary(30), "--cache-dir", str(tmp_path / "kc2"), "rollout", "status",
                                  "deployment/web", "--timeout=60s"], capture_output=True, text=True,
                                 env=tenant_env, timeout=90)
        assert rollout.returncode == 0 and "successfully rolled out" in rollout.stdout, rollout.stderr
        # Real containers on the real nodes (containerd), with logs and exec through the agents' HTTPS endpoints.
        real = json.dumps({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "real"}, "spec": {
            "replicas": 2, "selector": {"matchLabels": {"app": "real"}}, "template": {
                "metadata": {"labels": {"app": "real"}}, "spec": {
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/hostname",
                                                                     "operator": "In",
                                                                     "values": ["up-node", "up-node-2"]}]}]}}},
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "c", "image": "arktos.local/busybox:1.36",
                                    "command": ["sh", "-c", "echo hello from $(hostname); sleep 3600"]}]}}}})
        kc2 = [kubectl_binary(32), "--cache-dir", str(tmp_path / "kc2")]
        made = subprocess.run([*kc2, "create", "-f", "-"], input=real, capture_output=True, text=True,
                              env=tenant_env, timeout=60)
        assert made.returncode == 0, made.stderr
        rollout = subprocess.run([*kc2, "rollout", "status", "deployment/real", "--timeout=60s"],
                                 capture_output=True, text=True, env=tenant_env, timeout=90)
        assert rollout.returncode == 0, rollout.stderr
        pods = json.loads(subprocess.run([*kc2, "get", "pods", "-l", "app=real", "-o", "json"], capture_output=True,
                                         text=True, env=tenant_env, timeout=60).stdout)["items"]
        assert len(pods) == 2 and all(p["status"]["containerStatuses"][0]["containerID"].startswith("containerd://")
                                      for p in pods), pods
        name = pods[0]["metadata"]["name"]
        said = subprocess.run([*kc2, "exec", name, "--", "cat", "/etc/hostname"], capture_output=True, text=True,
                              env=tenant_env, timeout=60)
        assert said.returncode == 0 and said.stdout.strip() == name, said.stderr
        logs = subprocess.run([*kc2, "logs", name], capture_output=True, text=True, env=tenant_env, timeout=60)
        assert logs.returncode == 0 and f"hello from {name}" in logs.stdout, logs.stderr
        # The tenant's Service gets its rules from the service proxy (system:kube-proxy, watching every tenant):
        # its ClusterIP to both pods.  (Traffic itself is tests/e2e/test_service_proxy.py's: this cluster's pod
        # subnets, 10.88.0-1.0/24, may be shadowed by another cluster's bridges on a shared host.)
        exposed = subprocess.run([*kc2, "expose", "deployment", "real", "--port", "80", "--target-port", "8080"],
                                 capture_output=True, text=True, env=tenant_env, timeout=60)
        assert exposed.returncode == 0, exposed.stderr
        cluster_ip = subprocess.run([*kc2, "get", "service", "real", "-o", "jsonpath={.spec.clusterIP}"],
                                    capture_output=True, text=True, env=tenant_env, timeout=60).stdout
        deadline, dnat, nat = time.monotonic() + 20, set(), ""
        while time.monotonic() < deadline and len(dnat) < 2:
            time.sleep(0.2)
            nat = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True, check=True).stdout
            dnat = {line.rsplit(" ", 1)[1] for line in nat.splitlines()
                    if line.startswith(f"-A {prefix}SEP-") and "acme/default/real" in line and "DNAT" in line}
        assert dnat == {f"{p['status']['podIP']}:8080" for p in pods}, dnat
        assert f"-A {prefix}SERVICES -d {cluster_ip}/32 -p tcp" in nat
        # The cluster DNS names the tenant's Service (asked from the host, which sees every tenant); the pods'
        # resolv.conf points at kube-dns's ClusterIP, with the tenant's search path.
        import dns.message
        import dns.query

        def named() -> list[str]:
            reply = dns.query.udp(dns.message.make_query("real.default.svc.acme.cluster.local.", "A"), "127.0.0.1",
                                  port=dns_port, timeout=5)
            return [r.to_text() for rr in reply.answer for r in rr]
        deadline = time.monotonic() + 10
        while named() != [cluster_ip] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert named() == [cluster_ip]
        resolv = subprocess.run([*kc2, "exec", name, "--", "cat", "/etc/resolv.conf"], capture_output=True,
                                text=True, env=tenant_env, timeout=60).stdout
        assert "nameserver 10.0.0.10" in resolv and "search default.svc.acme.cluster.local " in resolv, resolv
        # A Deployment onto the hollow nodes: every pod Running there.
        spread = json.dumps({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "spread"}, "spec": {
            "replicas": 5, "selector": {"matchLabels": {"app": "spread"}}, "template": {
                "metadata": {"labels": {"app": "spread"}}, "spec": {
                    "nodeSelector": {"arktos.io/hollow-node": "true"},
                    "containers": [{"name": "c", "image": "busybox"}]}}}})
        made = subprocess.run([kubectl_binary(30), "--cache-dir", str(tmp_path / "kc2"), "create", "-f", "-"],
                              input=spread, capture_output=True, text=True, env=tenant_env, timeout=60)
        assert made.returncode == 0, made.stderr
        rollout = subprocess.run([kubectl_binary(30), "--cache-dir", str(tmp_path / "kc2"), "rollout", "status",
                                  "deployment/spread", "--timeout=60s"], capture_output=True, text=True,
                                 env=tenant_env, timeout=90)
        assert rollout.returncode == 0, rollout.stderr
        pods = subprocess.run([kubectl_binary(30), "--cache-dir", str(tmp_path / "kc2"), "get", "pods", "-l",
                               "app=spread", "-o", "json"], capture_output=True, text=True, env=tenant_env, timeout=60)
        placed = [(p["spec"]["nodeName"], p["status"]["phase"]) for p in json.loads(pods.stdout)["items"]]
        assert len(placed) == 5 and all(node in hollow and phase == "Running" for node, phase in placed), placed
        vm_pod = json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "vm1"}, "spec": {
            "virtualMachine": {"name": "vm1", "image": "cirros", "keyPairName": "default",
                               "resources": {"requests": {"cpu": "1", "memory": "512Mi"}}}}})
        made = subprocess.run([kubectl_binary(30), "--cache-dir", str(tmp_path / "kc2"), "create", "-f", "-"],
                              input=vm_pod, capture_output=True, text=True, env=tenant_env, timeout=60)
        assert made.returncode == 0, made.stderr
        waited = subprocess.run([kubectl_binary(30), "--cache-dir", str(tmp_path / "kc2"), "wait", "pod/vm1",
                                 "--for=condition=VirtualMachineReady", "--timeout=60s"], capture_output=True,
                                text=True, env=tenant_env, timeout=90)
        assert waited.returncode == 0, waited.stderr
        listed = arktos("tenant", "list", *state_opt)
        assert "acme" in listed.stdout and "system" in listed.stdout
        deleted = arktos("tenant", "delete", "acme", *state_opt)
        assert deleted.returncode == 0 and "tenant/acme deleted" in deleted.stdout, deleted.stderr

        # A half-started cluster resumes: kill the API server, `up` brings back only that.
        os.kill(int(pids["apiserver.pid"]), 9)
        resumed = arktos("up", *opts)
        assert resumed.returncode == 0, resumed.stderr
        assert "started apiserver" in resumed.stdout and "etcd is already running" in resumed.stdout
        final_pids = {p.name: p.read_text().split() for p in (state / "run").glob("*.pid")}
        assert len(final_pids) == 11

        # Fewer nodes: the second agent and its containerd stop, the hollow nodes restart with their new
        # count, and the Nodes no longer run are removed, their pods replaced on the nodes that remain.
        kc3 = [kubectl_binary(30), "--cache-dir", str(tmp_path / "kc3")]
        made = subprocess.run([*kc3, "create", "-f", "-"], input=spread, capture_output=True, text=True,
                              env=demo_env, timeout=60)
        assert made.returncode == 0, made.stderr
        rollout = subprocess.run([*kc3, "rollout", "status", "deployment/spread", "--timeout=60s"],
                                 capture_output=True, text=True, env=demo_env, timeout=90)
        assert rollout.returncode == 0, rollout.stderr
        fewer = arktos("up", *opts, "--node-agents", "1", "--hollow-nodes", "2")
        assert fewer.returncode == 0, fewer.stderr + fewer.stdout
        for line in ("stopped node-agent-2", "stopped containerd-2", "hollow-nodes's configuration changed",
                     "removed node up-node-2", "removed node hollow-node-5", "etcd is already running"):
            assert line in fewer.stdout, fewer.stdout
        nodes = subprocess.run([kubectl_binary(30), "--cache-dir", str(tmp_path / "kc"), "get", "nodes", "-o",
                                "json"], capture_output=True, text=True, env=env, timeout=60)
        assert {n["metadata"]["name"] for n in json.loads(nodes.stdout)["items"]} == {
            "up-node", "hollow-node-1", "hollow-node-2"}
        assert not listening(agent_port + 1)

        deadline, placed = time.monotonic() + 30, []
        while time.monotonic() < deadline:
            got = subprocess.run([*kc3, "get", "pods", "-l", "app=spread", "-o", "json"], capture_output=True,
                                 text=True, env=demo_env, timeout=60)
            placed = [(p["spec"].get("nodeName"), p["status"].get("phase")) for p in json.loads(got.stdout)["items"]]
            remaining = ("hollow-node-1", "hollow-node-2")
            if len(placed) == 5 and all(n in remaining and ph == "Running" for n, ph in placed):
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"the spread pods were not replaced on the hollow nodes that remain: {placed}")
        now = {p.name: p.read_text().split() for p in (state / "run").glob("*.pid")}
        assert len(now) == 9
        final_pids = {**{f"old {k}": v for k, v in final_pids.items()}, **now}  # all must be gone after down
    finally:
        down = arktos("down", "--purge", *opts)
    assert down.returncode == 0 and "stopped" in down.stdout
    assert not any(listening(p) for p in (etcd_port, etcd_port + 1, api_port, agent_port, agent_port + 1, dns_port))
    for name, (pid, started) in final_pids.items():  # gone: no such PID, a newer process's, or a zombie
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        assert fields[19] != started or fields[0] == "Z", f"{name} (pid {pid}) still runs"
    assert not state.exists()
    leftovers = subprocess.run(["pgrep", "-af", str(state)], capture_output=True, text=True).stdout
    assert leftovers == "", leftovers  # no containerd, no shim, no container
    bridges = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    assert not any(bridge_name((state / "containerd" / agent).resolve()) in bridges
                   for agent in ("node-agent", "node-agent-2")), bridges  # the pod bridges went too
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    assert prefix not in rules  # the service proxy's chains and jumps went with the cluster
    assert arktos("status", *opts).returncode == 1


def test_up_reports_a_busy_port_in_one_line(tmp_path: Path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        busy = blocker.getsockname()[1]
        result = arktos("up", "--state-dir", str(tmp_path / "c"), "--etcd-port", str(busy),
                        "--apiserver-port", str(free_port()))
    assert result.returncode == 1
    assert f"port {busy} is in use" in result.stderr and "Traceback" not in result.stderr
    arktos("down", "--purge", "--state-dir", str(tmp_path / "c"), "--etcd-port", str(busy))
