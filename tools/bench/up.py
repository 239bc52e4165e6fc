"""Benchmark `arktos up`: seconds to a Ready node, and the cluster's memory at idle.

Runs `arktos up` in a throwaway state directory on free ports, waits `--idle`
seconds, reads each component's resident memory, then `arktos down --purge`.
Not a test: it prints figures and the machine they were measured on.

    .venv/bin/python tools/bench/up.py [--runs 3] [--idle 10] [--runtimes auto|containerd,hollow-vm|hollow,hollow-vm]
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONTROL_PLANE = ("etcd", "apiserver", "controller-manager", "scheduler")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    mem = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))) / 1024**2
    return f"{model}, {os.cpu_count()} cores, {mem:.1f} GiB, {platform.system()} {platform.release()}, " \
           f"Python {platform.python_version()}"


def one_run(runtimes: str, idle: float) -> tuple[float, dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="arktos-bench-up-") as tmp:
        etcd_port, api_port = free_port(), free_port()
        while api_port == etcd_port + 1:
            api_port = free_port()
        opts = ["--state-dir", tmp, "--etcd-port", str(etcd_port), "--apiserver-port", str(api_port)]
        arktos = [sys.executable, "-m", "arktos"]
        started = time.monotonic()
        # No tenant: the figure is the time to a Ready node (a tenant adds its set-up by the controller manager).
        up = subprocess.run([*arktos, "up", *opts, "--runtimes", runtimes, "--tenant", ""], capture_output=True,
                            text=True)
        elapsed = time.monotonic() - started  # `up` returns once every component, the node included, is healthy
        try:
            if up.returncode != 0:
                raise SystemExit(f"arktos up failed:\n{up.stderr}{up.stdout}")
            time.sleep(idle)
            memory = {}
            for pid_file in Path(tmp, "run").glob("*.pid"):
                memory[pid_file.stem] = rss_mb(int(pid_file.read_text().split()[0]))
        finally:
            subprocess.run([*arktos, "down", "--purge", *opts], capture_output=True)
        return elapsed, memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds to wait before reading memory")
    parser.add_argument("--runtimes", default="auto", help="as arktos up --runtimes (auto: what this machine offers)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    times, totals, planes = [], [], []
    for i in range(args.runs):
        elapsed, memory = one_run(args.runtimes, args.idle)
        plane = sum(v for k, v in memory.items() if k in CONTROL_PLANE)
        times.append(elapsed)
        planes.append(plane)
        totals.append(sum(memory.values()))
        detail = ", ".join(f"{k} {v:.0f} MB" for k, v in sorted(memory.items()))
        print(f"run {i + 1}: Ready node in {elapsed:.2f} s; idle RSS: {detail}")
    print(f"up to a Ready node: best {min(times):.2f} s, median {statistics.median(times):.2f} s "
          f"(target < 10 s)")
    print(f"control plane (etcd, apiserver, controller-manager, scheduler) at idle: median "
          f"{statistics.median(planes):.0f} MB (target < 300 MB); everything with the node "
          f"{statistics.median(totals):.0f} MB")


if __name__ == "__main__":
    main()
