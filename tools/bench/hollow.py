"""Benchmark hollow nodes: memory per hollow node, time to N Ready nodes, lease renewals under load.

For each count it starts its own etcd and API server (development port), then
one `arktos hollow-nodes --count N` process, and measures:

- seconds from starting the process to N Ready Nodes (polled every 0.2 s, every 1 s past 200 nodes);
- the process's resident memory once they are Ready, and per node against a
  1-node process (its baseline: interpreter, client, informers);
- with `--pods-per-node` pods bound straight to the nodes (no scheduler), the
  seconds until all of them are Running;
- for `--window` seconds of idle: the age of every node Lease sampled each
  second (a Lease older than the renew interval plus a little means the
  event loop fell behind), and the CPU used by the hollow-nodes process and
  by the API server.

Not a test: it prints figures and the machine they were measured on.

    .venv/bin/python tools/bench/hollow.py [--counts 100,500] [--window 30] [--pods-per-node 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from arktos.cluster.etcd import free_port, start_etcd  # noqa: E402

HOLLOW_LABEL = "arktos.io/hollow-node"
RENEW = 10.0  # the hollow-nodes default --lease-renew-interval


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    mem = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))) / 1024**2
    return (f"{model}, {os.cpu_count()} cores, {mem:.1f} GiB, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def post(url: str, body: dict) -> int:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def ready_count(server: str) -> int:
    items = get(f"{server}/api/v1/nodes?labelSelector={HOLLOW_LABEL}%3Dtrue")["items"]
    return sum(1 for n in items if any(c["type"] == "Ready" and c["status"] == "True"
                                       for c in n["status"].get("conditions") or []))


def lease_ages(server: str) -> list[float]:
    now = datetime.now(UTC)
    out = []
    for lease in get(f"{server}/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases")["items"]:
        renewed = datetime.strptime(lease["spec"]["renewTime"][:26].rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f")
        out.append((now - renewed.replace(tzinfo=UTC)).total_seconds())
    return out


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def one(count: int, window: float, pods_per_node: int, tmp: Path) -> dict:
    etcd = start_etcd(tmp / "etcd", free_port(), free_port(), tmp / "etcd.log")
    port = free_port()
    server = f"http://127.0.0.1:{port}"
    procs: list[subprocess.Popen] = []
    try:
        with open(tmp / "apiserver.log", "ab") as log:
            api = subprocess.Popen([sys.executable, "-m", "arktos", "apiserver", "--etcd-servers", _etcd_url(etcd),
                                    "--insecure-port", str(port), "--secure-port", "0"],
                                   stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        procs.append(api)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{server}/readyz", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the API server did not start: see {tmp / 'apiserver.log'}") from None
                time.sleep(0.1)
        api_cpu0 = cpu_seconds(api.pid)
        with open(tmp / "hollow.log", "ab") as log:
            started = time.monotonic()
            hollow = subprocess.Popen([sys.executable, "-m", "arktos", "hollow-nodes", "--master", server, "--count",
                                       str(count), "--v", "0"], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        procs.append(hollow)
        # Listing N nodes costs the API server (and this process) too: poll less often when N is large.
        poll = 0.2 if count <= 200 else 1.0
        while ready_count(server) < count:
            if hollow.poll() is not None:
                raise SystemExit(f"hollow-nodes exited: see {tmp / 'hollow.log'}")
            time.sleep(poll)
        to_ready = time.monotonic() - started
        reg_cpu = (cpu_seconds(hollow.pid) / to_ready, (cpu_seconds(api.pid) - api_cpu0) / to_ready)
        time.sleep(2)
        result = {"count": count, "ready_s": to_ready, "rss_mb": rss_mb(hollow.pid), "reg_cpu": reg_cpu}

        if pods_per_node:
            post(f"{server}/api/v1/namespaces", {"metadata": {"name": "bench"}})
            began = time.monotonic()
            for i in range(1, count + 1):
                for j in range(pods_per_node):
                    code = post(f"{server}/api/v1/namespaces/bench/pods", {
                        "metadata": {"name": f"p-{i}-{j}"}, "spec": {"nodeName": f"hollow-node-{i}", "containers": [
                            {"name": "c", "image": "busybox"}]}})
                    assert code == 201, code
            created = time.monotonic() - began
            total = count * pods_per_node
            while True:
                items = get(f"{server}/api/v1/namespaces/bench/pods")["items"]
                running = sum(1 for p in items if (p.get("status") or {}).get("phase") == "Running")
                if running >= total:
                    break
                if time.monotonic() - began > 300:
                    raise SystemExit(f"only {running} of {total} pods Running after 300 s")
                time.sleep(0.2)
            result.update(pods=total, pods_created_s=created, pods_running_s=time.monotonic() - began,
                          rss_with_pods_mb=rss_mb(hollow.pid))

        cpu_h, cpu_a, t0 = cpu_seconds(hollow.pid), cpu_seconds(api.pid), time.monotonic()
        ages: list[float] = []
        while time.monotonic() - t0 < window:
            ages += lease_ages(server)
            time.sleep(1.0)
        wall = time.monotonic() - t0
        ages.sort()
        result.update(
            lease_age_p50=statistics.median(ages), lease_age_p99=ages[int(len(ages) * 0.99) - 1],
            lease_age_max=ages[-1], late=sum(1 for a in ages if a > RENEW + 2) / len(ages),
            cpu_hollow=(cpu_seconds(hollow.pid) - cpu_h) / wall, cpu_api=(cpu_seconds(api.pid) - cpu_a) / wall,
            rss_idle_mb=rss_mb(hollow.pid))
        return result
    finally:
        for p in reversed(procs):
            stop(p)
        etcd.terminate()
        etcd.wait(10)


def _etcd_url(etcd: subprocess.Popen) -> str:
    args = list(etcd.args)
    return args[args.index("--listen-client-urls") + 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="100,500", help="comma-separated numbers of hollow nodes")
    parser.add_argument("--window", type=float, default=30.0, help="idle seconds to sample leases and CPU")
    parser.add_argument("--pods-per-node", type=int, default=1)
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="arktos-bench-hollow-") as tmp:
        base = one(1, 5.0, 0, Path(tmp, "base"))
        print(f"baseline: a 1-node hollow-nodes process: {base['rss_mb']:.0f} MB RSS")
        for n in counts:
            r = one(n, args.window, args.pods_per_node, Path(tmp, str(n)))
            per_node = (r["rss_idle_mb"] - base["rss_mb"]) / max(1, n - 1) * 1024
            print(f"{n} hollow nodes: Ready in {r['ready_s']:.1f} s; RSS {r['rss_mb']:.0f} MB when Ready, "
                  f"{r['rss_idle_mb']:.0f} MB after the window = {per_node:.0f} KB per node over the baseline; "
                  f"CPU while registering: hollow-nodes {r['reg_cpu'][0] * 100:.0f}%, apiserver "
                  f"{r['reg_cpu'][1] * 100:.0f}% of a core")
            if "pods" in r:
                print(f"  {r['pods']} pods bound to them: created in {r['pods_created_s']:.1f} s, all Running "
                      f"{r['pods_running_s']:.1f} s after the first create")
            print(f"  {args.window:.0f} s idle: lease age p50 {r['lease_age_p50']:.1f} s, "
                  f"p99 {r['lease_age_p99']:.1f} s, max {r['lease_age_max']:.1f} s (renew every {RENEW:.0f} s; "
                  f"{r['late'] * 100:.1f}% of samples older than {RENEW + 2:.0f} s); "
                  f"CPU hollow-nodes {r['cpu_hollow'] * 100:.0f}%, apiserver {r['cpu_api'] * 100:.0f}% of a core")


if __name__ == "__main__":
    main()
