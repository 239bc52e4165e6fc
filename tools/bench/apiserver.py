"""API server benchmark: creates, LIST, watch fan-out and memory, against the targets of the Go Arktos apiserver.

Run it by hand (it is never part of the test suite; a full run takes a few minutes on 2 cores):

    .venv/bin/python tools/bench/apiserver.py                       # own etcd + server, all phases
    .venv/bin/python tools/bench/apiserver.py --phases creates --profile
    .venv/bin/python tools/bench/apiserver.py --server http://127.0.0.1:8080 --pid 1234

Why it is built the way it is:

* The figures are only comparable with the Go numbers when the machine is known, so the report starts
  with the CPU, cores, memory, kernel, Python and etcd versions, and it prints the CPU seconds that
  the server, etcd and this client each used per phase: on 2 cores a phase can be bound by the
  client or etcd rather than by the server, and these figures show which.
* The client runs on uvloop and keeps its own work small (pre-built bodies, no JSON parsing on
  timed paths), because it shares the two cores with the server and etcd.
* The 1,000 watchers are raw asyncio protocols, not aiohttp responses: with aiohttp each event
  would wake 1,000 tasks in this process and the client's own scheduling would be measured as
  server latency. A watcher only scans the bytes it receives for the probe pod's unique name;
  one watcher keeps its whole stream so the bench can check that the event really was an ADDED.
* With --profile, py-spy is attached to the server once per phase (rather than recording the
  whole run) so that each phase gets its own profile: a creates profile does not drown in LIST
  serialisation. The raw (collapsed) stacks are kept, rendered to an SVG flame graph here, and
  summarised as the hottest functions by self and inclusive time.

Every loop is bounded by a count or a deadline, and all traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script: make `arktos` importable without installing
    sys.path.insert(0, str(REPO))

from arktos.cluster.etcd import find_etcd, free_port, start_etcd  # noqa: E402

PHASES = ("creates", "list", "watch", "memory")
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Targets from the issue; the Go Arktos apiserver on this kind of machine is quoted beside them.
TARGET_CREATES_PER_S = 1000.0
TARGET_CREATE_P99_MS = 100.0
TARGET_LIST_MS = 300.0
TARGET_WATCH_MS = 250.0
TARGET_RSS_MB = 600.0
GO_REFERENCE = {
    "creates_per_s": "890-1,350 creates/s, p99 60-104 ms",
    "list_ms": "LIST of 10,000 pods 300-370 ms",
    "watch_ms": "1,000 watchers got a new event within 65-110 ms",
    "rss": "RSS 1.3 GB",
}


def log(msg: str) -> None:
    """Progress goes to stderr so that stdout holds only the report (and the JSON with --json)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- machine and processes ----------------------------------------------------------------------


def machine_info(etcd_version: str) -> dict[str, Any]:
    """What the figures were measured on: without it they cannot be compared with the Go ones."""
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
                break
    return {
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "memory_gib": round(mem_kb / 1024**2, 1),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "etcd": etcd_version,
        "aiohttp": aiohttp.__version__,
        "loadavg_at_start": os.getloadavg()[0],  # 1-minute: > 0.5 means someone else is busy too
    }


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS/VmHWM in kB of one process (empty when it is gone)."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0])
    return out


def cpu_seconds(pid: int | None) -> float | None:
    """utime+stime of a process, to tell whether a phase was bound by the server, etcd or the client."""
    if pid is None:
        return None
    return cpu_seconds_of(Path(f"/proc/{pid}/stat"))


def thread_cpu_seconds(pid: int | None) -> tuple[float, float] | None:
    """(main thread, all other threads) CPU seconds: the event loop is the thread that limits a phase."""
    if pid is None:
        return None
    main = others = 0.0
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            secs = cpu_seconds_of(task / "stat")
            if secs is None:
                continue
            if task.name == str(pid):
                main += secs
            else:
                others += secs
    return main, others


def cpu_seconds_of(stat: Path) -> float | None:
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy (from /proc/stat), to show load from other processes on the box."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    values = [int(v) for v in fields[:8]]
    busy = sum(values) - values[3] - values[4]  # all but idle and iowait
    return busy / CLK_TCK


def self_cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def raise_fd_limit() -> None:
    """1,000 watch sockets need more descriptors than a default soft limit of 1,024; children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    """Stop one child we started, by its own pid: politely first, then for good."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(5)


class Harness:
    """Its own etcd (in a temp dir) and API server, so that a run needs no setup and leaves nothing behind."""

    def __init__(self, out_dir: Path, keep: bool) -> None:
        self.out_dir = out_dir
        self.keep = keep
        self.tmp = Path(tempfile.mkdtemp(prefix="arktos-bench-etcd-"))
        self.etcd: subprocess.Popen | None = None
        self.server: subprocess.Popen | None = None
        self.etcd_url = ""
        self.url = ""
        self.server_log = out_dir / "apiserver.log"
        self.etcd_log = out_dir / "etcd.log"

    async def start(self) -> None:
        self.spawn()
        await wait_ready(self.url, self.server, timeout=90.0)

    def spawn(self) -> None:
        client_port, peer_port = free_port(), free_port()
        log(f"starting etcd on 127.0.0.1:{client_port} (data in {self.tmp})")
        self.etcd = start_etcd(self.tmp / "data", client_port, peer_port, self.etcd_log)
        self.etcd_url = f"http://127.0.0.1:{client_port}"
        port = free_port()
        cmd = [sys.executable, "-m", "arktos", "apiserver", "--etcd-servers", self.etcd_url,
               "--insecure-port", str(port), "--secure-port", "0"]
        log(f"starting API server: {' '.join(cmd)}")
        with open(self.server_log, "ab") as out:
            self.server = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                           start_new_session=True)
        self.url = f"http://127.0.0.1:{port}"

    @property
    def server_pid(self) -> int | None:
        return self.server.pid if self.server else None

    @property
    def etcd_pid(self) -> int | None:
        return self.etcd.pid if self.etcd else None

    def server_alive(self) -> bool:
        return self.server is not None and self.server.poll() is None

    def stop(self) -> None:
        if self.server is not None:
            stop_process(self.server)
        if self.etcd is not None:
            stop_process(self.etcd)
        if not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)


async def wait_ready(url: str, proc: subprocess.Popen | None, timeout: float) -> None:
    """Poll /readyz: the watch caches must be primed before any figure means anything."""
    deadline = time.monotonic() + timeout
    last = ""
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"API server exited with code {proc.returncode} before it was ready")
            try:
                async with s.get(f"{url}/readyz", timeout=aiohttp.ClientTimeout(total=2)) as r:
                    if r.status == 200:
                        return
                    last = f"HTTP {r.status}: {(await r.text())[:200]}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = repr(exc)
            await asyncio.sleep(0.1)
    raise TimeoutError(f"API server at {url} not ready within {timeout:.0f}s (last answer: {last})")


async def etcd_version_of(url: str | None) -> str:
    """The etcd version from the running etcd, else from the local binary (said so in the answer)."""
    if url:
        try:
            async with aiohttp.ClientSession() as s, s.get(f"{url}/version",
                                                           timeout=aiohttp.ClientTimeout(total=3)) as r:
                return (await r.json(content_type=None)).get("etcdserver", "unknown")
        except (aiohttp.ClientError, TimeoutError, ValueError):
            pass
    return local_etcd_version()


def local_etcd_version() -> str:
    try:
        out = subprocess.run([find_etcd(), "--version"], capture_output=True, text=True, timeout=10).stdout
        m = re.search(r"etcd Version:\s*(\S+)", out)
        return f"{m.group(1) if m else 'unknown'} (local binary)"
    except Exception as exc:
        return f"unknown ({exc})"


# -- profiling ----------------------------------------------------------------------------------


class PhaseProfiler:
    """py-spy attached to the server for one phase, writing raw collapsed stacks."""

    def __init__(self, pid: int, out: Path, rate: int, native: bool) -> None:
        self.out = out
        self.pyspy = find_pyspy()
        cmd = [self.pyspy, "record", "--pid", str(pid), "--rate", str(rate), "--subprocesses",
               "--format", "raw", "-o", str(out)] + (["--native"] if native else [])
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(str(out) + ".log", "wb"),  # noqa: SIM115
                                     start_new_session=True)
        time.sleep(0.5)  # py-spy needs a moment to attach; samples before that are lost, not wrong
        if self.proc.poll() is not None:
            raise RuntimeError(f"py-spy exited at once (see {out}.log); it needs ptrace rights on the server")

    def stop(self) -> Path | None:
        """SIGINT makes py-spy write its file; wait for it rather than kill, or the profile is lost."""
        stop_process(self.proc, signal.SIGINT, timeout=60.0)
        return self.out if self.out.exists() and self.out.stat().st_size > 0 else None


def find_pyspy() -> str:
    """py-spy from the venv (installing it there if missing), else from PATH."""
    venv_bin = Path(sys.executable).parent / "py-spy"
    if venv_bin.exists():
        return str(venv_bin)
    found = shutil.which("py-spy")
    if found:
        return found
    log("py-spy not found: installing it into this venv")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], check=True, timeout=300)
    if not venv_bin.exists():
        raise RuntimeError("py-spy could not be installed")
    return str(venv_bin)


FRAME_RE = re.compile(r"^(.*) \((.*?)(?::(\d+))?\)$")


def short_frame(frame: str) -> str:
    """`func (path:line)` -> `func (short/path)`: lines are merged so one function is one row."""
    m = FRAME_RE.match(frame)
    if not m:
        return frame
    func, path = m.group(1), m.group(2)
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    elif path.startswith(str(REPO) + "/"):
        path = path[len(str(REPO)) + 1:]
    else:
        path = re.sub(r"^.*/lib/python3\.\d+/", "", path)
    return f"{func} ({path})"


def read_collapsed(path: Path) -> Counter[tuple[str, ...]]:
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = tuple(f for f in stack.split(";") if not f.startswith(("process ", "thread ")))
        if frames:
            stacks[frames] += int(count)
    return stacks


# Frames under which the real work starts: everything above them is the same start-up trunk
# (runpy, click, asyncio.run) in every sample and would crowd the inclusive list.
TRUNK = ("Runner.run (asyncio/runners.py)", "Thread.run (threading.py)", "_worker (concurrent/futures/thread.py)")


def work_frames(frames: tuple[str, ...]) -> list[str]:
    """Short frames below the trunk; a sample that stops at a trunk frame was in C code under it."""
    names = [short_frame(f) for f in frames]
    cut = max((i for i, n in enumerate(names) if n in TRUNK), default=-1)
    if cut >= 0 and cut == len(names) - 1:
        what = "event loop" if names[cut].startswith("Runner.run") else "thread"
        return [f"[C code in the {what}, below {names[cut]}]"]
    return names[cut + 1:]


def summarize_profile(path: Path, top: int = 15) -> dict[str, Any]:
    """Top functions by self and inclusive samples of the event-loop thread.

    Samples of other threads are counted apart: in this server they are grpc's poller thread,
    which py-spy reports as busy while it sits in epoll_wait (check with --profile-native and the
    per-thread CPU figures), so mixing them in would inflate a thread that is not the bottleneck.
    """
    stacks = read_collapsed(path)
    self_c: Counter[str] = Counter()
    incl_c: Counter[str] = Counter()
    total = other = 0
    for frames, n in stacks.items():
        total += n
        if any(short_frame(f) == "Thread.run (threading.py)" for f in frames):
            other += n
            continue
        names = work_frames(frames)
        self_c[names[-1]] += n
        for name in set(names):
            incl_c[name] += n
    loop = total - other
    pct = (lambda n: round(100.0 * n / loop, 1)) if loop else (lambda n: 0.0)
    return {
        "file": str(path),
        "samples": total,
        "loop_samples": loop,
        "other_thread_samples": other,
        "self": [(name, n, pct(n)) for name, n in self_c.most_common(top)],
        "inclusive": [(name, n, pct(n)) for name, n in incl_c.most_common(top)],
    }


def render_flamegraph(path: Path, svg: Path, title: str) -> None:
    """A small icicle-style flame graph (root on top) so the raw profile can be looked at in a browser."""
    stacks = read_collapsed(path)
    tree: dict[str, Any] = {"n": 0, "c": {}}
    for frames, n in stacks.items():
        node = tree
        node["n"] += n
        for f in frames:
            node = node["c"].setdefault(f, {"n": 0, "c": {}})
            node["n"] += n
    total = tree["n"] or 1
    width, row, top = 1600.0, 17, 40
    parts: list[str] = []
    todo: list[tuple[str, dict[str, Any], float, int]] = [("all", tree, 0.0, 0)]
    depth_max = 0
    while todo:  # bounded: each tree node is visited once
        name, node, x, depth = todo.pop()
        w = node["n"] / total * width
        if w < 0.5:
            continue
        depth_max = max(depth_max, depth)
        y = top + depth * row
        hue = zlib.crc32(name.encode()) % 60
        label = html.escape(name)
        chars = int(w / 7)
        text = html.escape(name[:chars - 2] + ".." if len(name) > chars else name) if chars >= 3 else ""
        parts.append(
            f'<g><title>{label} ({node["n"]} samples, {100.0 * node["n"] / total:.2f}%)</title>'
            f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 1}" fill="hsl({hue},85%,60%)"/>'
            f'<text x="{x + 3:.1f}" y="{y + row - 5}">{text}</text></g>')
        cx = x
        for cname, child in sorted(node["c"].items()):
            todo.append((cname, child, cx, depth + 1))
            cx += child["n"] / total * width
    height = top + (depth_max + 2) * row
    svg.write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height}" '
        f'font-family="monospace" font-size="11">'
        f'<text x="10" y="24" font-size="16">{html.escape(title)} - {total} samples (hover for names)</text>'
        + "".join(parts) + "</svg>")


# -- workload -----------------------------------------------------------------------------------


def pod_body(namespace: str, name: str, i: int) -> bytes:
    """A realistic small pod: labels, one container with image, resources and a port."""
    return orjson.dumps({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app": "bench", "tier": "web", "shard": f"s{i % 16}"},
            "annotations": {"bench.arktos.io/run": name.rsplit("-", 1)[0]},
        },
        "spec": {
            "containers": [{
                "name": "app",
                "image": "nginx:1.25",
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                              "limits": {"cpu": "200m", "memory": "128Mi"}},
                "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
            }],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
        },
    })


JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile of a sorted list (values in seconds, answer in ms)."""
    if not values:
        return float("nan")
    k = max(0, min(len(values) - 1, round(p / 100.0 * len(values) + 0.5) - 1))
    return values[k] * 1000.0


@dataclass
class Bench:
    """State shared by the phases: where the server is, what exists, what was measured."""

    url: str
    namespace: str
    run_id: str
    clients: int
    server_pid: int | None
    etcd_pid: int | None
    harness: Harness | None
    profile_rate: int
    profile_native: bool
    profile_dir: Path | None
    created: int = 0
    results: dict[str, Any] = field(default_factory=dict)
    rss: list[dict[str, Any]] = field(default_factory=list)
    profiles: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def pod_name(self, i: int) -> str:
        return f"bench-{self.run_id}-{i:06d}"

    def snapshot_rss(self, label: str) -> None:
        if self.server_pid is None:
            return
        st = proc_status(self.server_pid)
        if st:
            self.rss.append({"at": label, "rss_mb": round(st.get("VmRSS", 0) / 1024, 1),
                             "peak_mb": round(st.get("VmHWM", 0) / 1024, 1)})
            log(f"server RSS {label}: {st.get('VmRSS', 0) / 1024:.0f} MB")

    def check_alive(self) -> None:
        if self.harness is not None and not self.harness.server_alive():
            raise RuntimeError(f"the API server exited (code {self.harness.server.returncode})")  # type: ignore[union-attr]


@contextlib.contextmanager
def measured(bench: Bench, phase: str) -> Iterator[dict[str, Any]]:
    """Wall time, CPU seconds of server/etcd/client, and a py-spy profile when asked, for one phase."""
    prof = None
    if bench.profile_dir is not None and bench.server_pid is not None:
        prof = PhaseProfiler(bench.server_pid, bench.profile_dir / f"profile-{phase}.txt", bench.profile_rate,
                            bench.profile_native)
    before = (time.perf_counter(), cpu_seconds(bench.server_pid), cpu_seconds(bench.etcd_pid), self_cpu_seconds(),
              machine_busy_seconds(), thread_cpu_seconds(bench.server_pid))
    usage: dict[str, Any] = {}
    try:
        yield usage
    finally:
        after = (time.perf_counter(), cpu_seconds(bench.server_pid), cpu_seconds(bench.etcd_pid), self_cpu_seconds(),
                 machine_busy_seconds(), thread_cpu_seconds(bench.server_pid))
        wall = after[0] - before[0]
        usage["wall_s"] = round(wall, 2)
        for key, i in (("server_cpu_s", 1), ("etcd_cpu_s", 2), ("client_cpu_s", 3)):
            if before[i] is not None and after[i] is not None:
                usage[key] = round(after[i] - before[i], 2)
                usage[key.replace("_s", "_cores")] = round((after[i] - before[i]) / wall, 2) if wall else None
        if before[5] is not None and after[5] is not None:
            usage["server_main_thread_cpu_s"] = round(after[5][0] - before[5][0], 2)
            usage["server_other_threads_cpu_s"] = round(after[5][1] - before[5][1], 2)
        # Whatever else kept the cores busy (other sessions' tests, py-spy): a noisy phase shows up here.
        ours = sum(usage.get(k, 0.0) for k in ("server_cpu_s", "etcd_cpu_s", "client_cpu_s"))
        other = max(0.0, after[4] - before[4] - ours)
        usage["other_cpu_s"] = round(other, 2)
        usage["other_cpu_cores"] = round(other / wall, 2) if wall else None
        bench.results.setdefault("cpu", {})[phase] = usage
        if prof is not None:
            out = prof.stop()
            if out is None:
                bench.failures.append(f"py-spy wrote no profile for {phase} (see {prof.out}.log)")
            else:
                svg = out.with_suffix(".svg")
                render_flamegraph(out, svg, f"API server, {phase} phase")
                summary = summarize_profile(out)
                summary["svg"] = str(svg)
                bench.profiles[phase] = summary


async def ensure_namespace(session: aiohttp.ClientSession, bench: Bench) -> None:
    body = orjson.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": bench.namespace}})
    async with session.post(f"{bench.url}/api/v1/namespaces", data=body, headers=JSON_HEADERS) as r:
        text = await r.text()
        if r.status not in (200, 201, 409):
            raise RuntimeError(f"creating namespace {bench.namespace!r} failed: HTTP {r.status}: {text[:500]}")


async def create_pods(session: aiohttp.ClientSession, bench: Bench, start: int, stop: int) -> dict[str, Any]:
    """Create pods start..stop-1 with `bench.clients` concurrent keep-alive clients; latency per create."""
    url = f"{bench.url}/api/v1/namespaces/{bench.namespace}/pods"
    names = iter(range(start, stop))
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    samples: dict[str, str] = {}
    conn_errors = 0

    async def worker() -> None:
        nonlocal conn_errors
        for i in names:  # shared iterator: each index is taken by exactly one worker
            if conn_errors > 100:  # the server is gone: stop rather than spin through the rest
                return
            body = pod_body(bench.namespace, bench.pod_name(i), i)
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=JSON_HEADERS) as r:
                    payload = await r.read()
                    status = str(r.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                conn_errors += 1
                status, payload = type(exc).__name__, str(exc).encode()
            latencies.append(time.perf_counter() - t0)
            statuses[status] += 1
            if status != "201" and status not in samples and len(samples) < 6:
                samples[status] = payload[:600].decode(errors="replace")

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(bench.clients)))
    wall = time.perf_counter() - t0
    ok = statuses.get("201", 0)
    bench.created += ok
    latencies.sort()
    return {
        "requested": stop - start,
        "created": ok,
        "wall_s": round(wall, 2),
        "creates_per_s": round(ok / wall, 1) if wall else 0.0,
        "p50_ms": round(pct(latencies, 50), 1),
        "p90_ms": round(pct(latencies, 90), 1),
        "p99_ms": round(pct(latencies, 99), 1),
        "max_ms": round(latencies[-1] * 1000.0, 1) if latencies else float("nan"),
        "statuses": dict(statuses),
        "error_samples": samples,
    }


async def phase_creates(session: aiohttp.ClientSession, bench: Bench, pods: int) -> None:
    log(f"creates: {pods} pods with {bench.clients} concurrent clients")
    with measured(bench, "creates"):
        res = await create_pods(session, bench, bench.created, bench.created + pods)
    bench.results["creates"] = res
    log(f"creates: {res['creates_per_s']}/s p99 {res['p99_ms']} ms, statuses {res['statuses']}")
    bench.snapshot_rss(f"after {bench.created} pods")
    bench.check_alive()


async def timed_get(session: aiohttp.ClientSession, url: str) -> tuple[float, bytes, int]:
    t0 = time.perf_counter()
    async with session.get(url, headers={"Accept": "application/json"}) as r:
        body = await r.read()
        return time.perf_counter() - t0, body, r.status


def find_continue(page: bytes) -> str:
    """The continue token without parsing a 500-pod page (list metadata sits at one end of the body)."""
    for part in (page[:4096], page[-4096:]):
        m = re.search(rb'"continue":"([^"]*)"', part)
        if m:
            return m.group(1).decode()
    return str(orjson.loads(page).get("metadata", {}).get("continue", ""))


async def paged_walk(session: aiohttp.ClientSession, url: str, limit: int, max_pages: int,
                     validate: bool) -> tuple[float, int, int, int]:
    """Follow `continue` to the end; returns (seconds, pages, bytes, items counted when validating)."""
    t0 = time.perf_counter()
    token, pages, nbytes, items, parse_s = "", 0, 0, 0, 0.0
    for _ in range(max_pages):
        q = f"{url}?limit={limit}" + (f"&continue={token}" if token else "")
        async with session.get(q, headers={"Accept": "application/json"}) as r:
            page = await r.read()
            if r.status != 200:
                raise RuntimeError(f"paged LIST failed: HTTP {r.status}: {page[:500]!r}")
        pages += 1
        nbytes += len(page)
        if validate:  # parsing 500 pods costs the client ~10 ms a page: kept out of the figure
            p0 = time.perf_counter()
            doc = orjson.loads(page)
            items += len(doc.get("items") or [])
            token = doc.get("metadata", {}).get("continue", "")
            parse_s += time.perf_counter() - p0
        else:
            token = find_continue(page)
        if not token:
            break
    return time.perf_counter() - t0 - parse_s, pages, nbytes, items


async def phase_list(session: aiohttp.ClientSession, bench: Bench, runs: int) -> None:
    url = f"{bench.url}/api/v1/namespaces/{bench.namespace}/pods"
    out: dict[str, Any] = {}
    log(f"list: {runs} timed runs per variant after one untimed check")
    with measured(bench, "list"):
        for variant, full in (("plain", url), ("rv0", f"{url}?resourceVersion=0")):
            first, body, status = await timed_get(session, full)
            if status != 200:
                raise RuntimeError(f"LIST {variant} failed: HTTP {status}: {body[:500]!r}")
            items = len(orjson.loads(body).get("items") or [])
            times = []
            for _ in range(runs):
                t, body, status = await timed_get(session, full)
                if status != 200:
                    raise RuntimeError(f"LIST {variant} failed: HTTP {status}: {body[:500]!r}")
                times.append(t * 1000.0)
            out[variant] = {"items": items, "bytes": len(body), "first_ms": round(first * 1000.0, 1),
                            "best_ms": round(min(times), 1), "median_ms": round(statistics.median(times), 1),
                            "runs_ms": [round(t, 1) for t in times]}
            log(f"list {variant}: {items} items, {len(body) / 1e6:.1f} MB, best {min(times):.0f} ms")
        # A LIST right after a write: shows whether the server's list fast path survives a write (a
        # cache of whole serialised lists would not, and a busy cluster writes all the time).
        times = []
        for k in range(runs):
            name = f"lprobe-{bench.run_id}-{k}"
            async with session.post(url, data=pod_body(bench.namespace, name, 800_000 + k),
                                    headers=JSON_HEADERS) as r:
                await r.read()
                if r.status != 201:
                    raise RuntimeError(f"create before LIST failed: HTTP {r.status}")
            t, body, status = await timed_get(session, url)
            if status != 200:
                raise RuntimeError(f"LIST after_write failed: HTTP {status}: {body[:500]!r}")
            times.append(t * 1000.0)
        out["after_write"] = {"items": len(orjson.loads(body).get("items") or []), "bytes": len(body),
                              "first_ms": round(times[0], 1), "best_ms": round(min(times), 1),
                              "median_ms": round(statistics.median(times), 1),
                              "runs_ms": [round(t, 1) for t in times]}
        log(f"list after a write: best {min(times):.0f} ms, median {statistics.median(times):.0f} ms")
        max_pages = bench.created // 500 + 1000
        first, pages, nbytes, items = await paged_walk(session, url, 500, max_pages, validate=True)
        times = []
        for _ in range(runs):
            t, pages, nbytes, _ = await paged_walk(session, url, 500, max_pages, validate=False)
            times.append(t * 1000.0)
        out["paged_500"] = {"items": items, "pages": pages, "bytes": nbytes, "first_ms": round(first * 1000.0, 1),
                            "best_ms": round(min(times), 1), "median_ms": round(statistics.median(times), 1),
                            "runs_ms": [round(t, 1) for t in times]}
        log(f"list paged: {items} items in {pages} pages, best {min(times):.0f} ms")
    bench.results["list"] = out
    bench.snapshot_rss("after the LIST phase")  # so that LIST garbage is not blamed on the watchers
    bench.check_alive()


class WatchProto(asyncio.Protocol):
    """One raw HTTP/1.1 watch: records when the probe pod's name first shows up in the stream."""

    def __init__(self, request: bytes, hits: WatchHits, keep: bool) -> None:
        self.request = request
        self.hits = hits
        self.headers = asyncio.get_running_loop().create_future()
        self.head = b""
        self.status = 0
        self.target = b""
        self.tail = b""
        self.hit_at: float | None = None
        self.closed = False
        self.kept: bytearray | None = bytearray() if keep else None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if not self.headers.done():
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self.head[:end], self.head[end + 4:]
            try:
                self.status = int(head.split(b" ", 2)[1])
            except (IndexError, ValueError):
                self.status = -1
            self.headers.set_result(self.status)
        if self.kept is not None:
            self.kept += data
        if self.target and self.hit_at is None:
            hay = self.tail + data
            if self.target in hay:
                self.hit_at = now
                self.hits.hit()
            else:
                self.tail = hay[-len(self.target):]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.headers.done():
            self.headers.set_exception(ConnectionError(f"watch closed before its headers: {exc}"))

    def arm(self, target: bytes) -> None:
        self.target, self.tail, self.hit_at = target, b"", None


class WatchHits:
    """Counts watchers that saw the probe; sets an event when all of them have."""

    def __init__(self) -> None:
        self.count = 0
        self.want = 0
        self.done = asyncio.Event()

    def reset(self, want: int) -> None:
        self.count, self.want = 0, want
        self.done.clear()

    def hit(self) -> None:
        self.count += 1
        if self.count >= self.want:
            self.done.set()


def dechunk(raw: bytes) -> bytes:
    """The body of a chunked HTTP stream (only used to check one watcher's events)."""
    out, pos = bytearray(), 0
    while pos < len(raw):
        eol = raw.find(b"\r\n", pos)
        if eol < 0:
            break
        size = int(raw[pos:eol].split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += raw[eol + 2:eol + 2 + size]
        pos = eol + 2 + size + 2
    return bytes(out)


async def registered_watchers(session: aiohttp.ClientSession, url: str) -> float | None:
    """apiserver_registered_watchers for pods, from /metrics (None when the server does not say)."""
    try:
        async with session.get(f"{url}/metrics") as r:
            text = await r.text()
    except (aiohttp.ClientError, TimeoutError):
        return None
    total = None
    for line in text.splitlines():
        if line.startswith("apiserver_registered_watchers{") and 'resource="pods"' in line:
            total = (total or 0.0) + float(line.rsplit(" ", 1)[1])
    return total


async def phase_watch(session: aiohttp.ClientSession, bench: Bench, watchers: int, rounds: int) -> None:
    url = f"{bench.url}/api/v1/namespaces/{bench.namespace}/pods"
    async with session.get(f"{url}?limit=1", headers={"Accept": "application/json"}) as r:
        body = await r.read()
        if r.status != 200:
            raise RuntimeError(f"LIST for the watch resourceVersion failed: HTTP {r.status}: {body[:300]!r}")
        rv = orjson.loads(body)["metadata"]["resourceVersion"]
    host = urlsplit(bench.url)
    path = f"{urlsplit(url).path}?watch=1&resourceVersion={rv}&timeoutSeconds=900"
    request = (f"GET {path} HTTP/1.1\r\nHost: {host.netloc}\r\nAccept: application/json\r\n"
               f"User-Agent: arktos-bench\r\n\r\n").encode()
    loop = asyncio.get_running_loop()
    hits = WatchHits()
    protos: list[WatchProto] = []
    made: list[WatchProto] = []  # every protocol created, so that finally closes even half-open ones

    def factory(i: int) -> WatchProto:
        proto = WatchProto(request, hits, keep=(i == 0))
        made.append(proto)
        return proto

    gate = asyncio.Semaphore(100)  # at most 100 connects in flight: a SYN flood measures the kernel, not us

    async def open_one(i: int) -> WatchProto:
        async with gate:
            _, proto = await loop.create_connection(lambda: factory(i), host.hostname, host.port)
            await proto.headers
            return proto

    out: dict[str, Any] = {"watchers": watchers, "resource_version": rv}
    log(f"watch: opening {watchers} watchers from resourceVersion {rv}")
    try:
        with measured(bench, "watch-establish"):
            t0 = time.perf_counter()
            opened = await asyncio.wait_for(asyncio.gather(*(open_one(i) for i in range(watchers)),
                                                           return_exceptions=True), 180.0)
            out["establish_s"] = round(time.perf_counter() - t0, 2)
        for p in opened:
            if isinstance(p, WatchProto):
                protos.append(p)
        failed = [p for p in opened if not isinstance(p, WatchProto)]
        bad = Counter(str(p.status) for p in protos if p.status != 200)
        out["established"] = sum(1 for p in protos if p.status == 200)
        out["failed_to_open"] = len(failed)
        if failed:
            out["open_error_sample"] = repr(failed[0])[:300]
        if bad:
            out["non_200"] = dict(bad)
        out["registered_watchers_metric"] = await registered_watchers(session, bench.url)
        log(f"watch: {out['established']} established in {out['establish_s']} s "
            f"(server metric: {out['registered_watchers_metric']})")
        live = [p for p in protos if p.status == 200]
        bench.snapshot_rss(f"with {len(live)} watchers")
        round_results = []
        with measured(bench, "watch-events"):
            for rnd in range(1, rounds + 1):
                i = bench.created + 900_000 + rnd  # outside the range of the numbered bench pods
                name = f"wprobe-{bench.run_id}-{rnd}"
                target = b'"' + name.encode() + b'"'
                for p in live:
                    p.arm(target)
                hits.reset(len(live))
                t0 = time.perf_counter()
                async with session.post(f"{url}", data=pod_body(bench.namespace, name, i),
                                        headers=JSON_HEADERS) as r:
                    body = await r.read()
                    create_ms = (time.perf_counter() - t0) * 1000.0
                    if r.status != 201:
                        raise RuntimeError(f"probe create failed: HTTP {r.status}: {body[:500]!r}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(hits.done.wait(), 15.0)
                lat = sorted(p.hit_at - t0 for p in live if p.hit_at is not None)
                res = {"round": rnd, "create_ms": round(create_ms, 1), "received": len(lat),
                       "missed": len(live) - len(lat),
                       "first_ms": round(lat[0] * 1000.0, 1) if lat else None,
                       "p50_ms": round(pct(lat, 50), 1), "p99_ms": round(pct(lat, 99), 1),
                       "max_ms": round(lat[-1] * 1000.0, 1) if lat else None,
                       "closed_watchers": sum(1 for p in live if p.closed)}
                round_results.append(res)
                log(f"watch round {rnd}: {res['received']}/{len(live)} got it, p50 {res['p50_ms']} ms "
                    f"p99 {res['p99_ms']} ms max {res['max_ms']} ms")
                await asyncio.sleep(0.5)
        out["rounds"] = round_results
        if protos and protos[0].kept is not None:
            events = []
            for line in dechunk(bytes(protos[0].kept)).splitlines():
                with contextlib.suppress(ValueError):
                    ev = orjson.loads(line)
                    events.append(f"{ev.get('type')}:{(ev.get('object') or {}).get('metadata', {}).get('name')}")
            out["watcher0_events"] = events
    finally:
        for p in made:
            if p.transport is not None:
                p.transport.close()
    bench.results["watch"] = out
    bench.check_alive()


async def phase_memory(session: aiohttp.ClientSession, bench: Bench, pods: int, memory_pods: int) -> None:
    """RSS at the pod counts of the issue; creates whatever is missing to get there."""
    if bench.created < pods:
        log(f"memory: creating {pods - bench.created} pods to reach {pods}")
        await create_pods(session, bench, bench.created, pods)
        bench.snapshot_rss(f"after {bench.created} pods")
    if bench.created < memory_pods:
        log(f"memory: creating {memory_pods - bench.created} more pods to reach {memory_pods}")
        with measured(bench, "memory"):
            res = await create_pods(session, bench, bench.created, memory_pods)
        bench.results["creates_to_memory_target"] = res
        log(f"memory creates: {res['creates_per_s']}/s p99 {res['p99_ms']} ms, statuses {res['statuses']}")
    await asyncio.sleep(2.0)  # let in-flight watch fan-out and buffers settle before reading RSS
    bench.snapshot_rss(f"after {bench.created} pods (final)")
    # Not part of the target, but what a real cluster does next: one full LIST at this size. Its
    # transient buffers can leave RSS well above the post-create figure (freed memory is not
    # always given back to the OS).
    t, body, status = await timed_get(session, f"{bench.url}/api/v1/namespaces/{bench.namespace}/pods")
    bench.results["list_at_memory_target"] = {"status": status, "bytes": len(body), "ms": round(t * 1000.0, 1)}
    del body
    bench.snapshot_rss(f"after one LIST of {bench.created} pods")
    bench.check_alive()


# -- report -------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(bench: Bench, machine: dict[str, Any], args: argparse.Namespace) -> str:
    """The human-readable report: machine first, then each phase against its target."""
    r = bench.results
    lines = ["", "=== Arktos-in-Python API server benchmark ===",
             f"machine: {machine['cpu_model']}, {machine['cores']} cores ({machine['cores_usable']} usable), "
             f"{machine['memory_gib']} GiB, {machine['kernel']}",
             f"software: {machine['python']}, etcd {machine['etcd']}, aiohttp {machine['aiohttp']} (client)",
             f"server: {bench.url} (pid {bench.server_pid or 'unknown'}), namespace {bench.namespace}, "
             f"run {bench.run_id}, {args.clients} clients, load average at start {machine['loadavg_at_start']:.2f}"]
    if "creates" in r:
        c = r["creates"]
        ok = c["creates_per_s"] >= TARGET_CREATES_PER_S and c["p99_ms"] < TARGET_CREATE_P99_MS
        lines += ["", f"[creates] {c['created']}/{c['requested']} pods in {c['wall_s']} s: "
                      f"{c['creates_per_s']} creates/s; latency p50 {c['p50_ms']} p90 {c['p90_ms']} "
                      f"p99 {c['p99_ms']} max {c['max_ms']} ms  "
                      f"-> {verdict(ok)} (target >= {TARGET_CREATES_PER_S:.0f}/s, p99 < {TARGET_CREATE_P99_MS:.0f} ms;"
                      f" Go: {GO_REFERENCE['creates_per_s']})",
                  f"          statuses {c['statuses']}"]
        for status, sample in c["error_samples"].items():
            lines.append(f"          error {status}: {sample[:300]}")
    if "list" in r:
        lines.append("")
        for variant, v in r["list"].items():
            extra = f", {v['pages']} pages" if "pages" in v else ""
            lines.append(f"[list {variant:9s}] {v['items']} items, {v['bytes'] / 1e6:.1f} MB{extra}: best "
                         f"{v['best_ms']} ms, median {v['median_ms']} ms (first {v['first_ms']} ms) "
                         f"-> {verdict(v['best_ms'] < TARGET_LIST_MS)} (target < {TARGET_LIST_MS:.0f} ms;"
                         f" Go: {GO_REFERENCE['list_ms']})")
    if "watch" in r:
        w = r["watch"]
        lines += ["", f"[watch] {w.get('established', 0)}/{w['watchers']} watchers established in "
                      f"{w.get('establish_s')} s (server metric apiserver_registered_watchers: "
                      f"{w.get('registered_watchers_metric')})"]
        if w.get("failed_to_open") or w.get("non_200"):
            lines.append(f"        failed to open {w.get('failed_to_open')}, non-200 {w.get('non_200')}, "
                         f"sample {w.get('open_error_sample')}")
        for rr in w.get("rounds", []):
            ok = rr["missed"] == 0 and rr["max_ms"] is not None and rr["max_ms"] < TARGET_WATCH_MS
            lines.append(f"        round {rr['round']}: {rr['received']} received, {rr['missed']} missed; "
                         f"create {rr['create_ms']} ms; event first {rr['first_ms']} p50 {rr['p50_ms']} "
                         f"p99 {rr['p99_ms']} max {rr['max_ms']} ms -> {verdict(ok)} "
                         f"(target all < {TARGET_WATCH_MS:.0f} ms; Go: {GO_REFERENCE['watch_ms']})")
        if w.get("watcher0_events") is not None:
            lines.append(f"        watcher 0 saw: {', '.join(w['watcher0_events']) or 'nothing'}")
    if "creates_to_memory_target" in r:
        c = r["creates_to_memory_target"]
        lines += ["", f"[creates {bench.created - c['created']}->{bench.created}] {c['creates_per_s']} creates/s, "
                      f"p99 {c['p99_ms']} ms, statuses {c['statuses']}"]
    if "list_at_memory_target" in r:
        m = r["list_at_memory_target"]
        lines += ["", f"[list at {bench.created} pods] HTTP {m['status']}, {m['bytes'] / 1e6:.1f} MB in {m['ms']} ms"]
    if bench.rss:
        lines.append("")
        for snap in bench.rss:
            lines.append(f"[rss] {snap['at']}: {snap['rss_mb']} MB (peak {snap['peak_mb']} MB)")
        if "memory" in args.phases:
            final = [snap for snap in bench.rss if snap["at"].endswith("(final)")]
            last = (final or bench.rss)[-1]["rss_mb"]
            lines.append(f"      final {last} MB -> {verdict(last < TARGET_RSS_MB)} "
                         f"(target < {TARGET_RSS_MB:.0f} MB after {args.memory_pods}; Go: {GO_REFERENCE['rss']})")
    elif "memory" in args.phases:
        lines += ["", "[rss] not measured: give --pid with --server"]
    if r.get("cpu"):
        lines.append("")
        lines.append("[cpu] seconds used per phase (cores = cpu seconds / wall seconds):")
        for phase, u in r["cpu"].items():
            lines.append(f"      {phase:16s} wall {u['wall_s']:7.2f}s  server {u.get('server_cpu_s', '-')}s "
                         f"({u.get('server_cpu_cores', '-')})  etcd {u.get('etcd_cpu_s', '-')}s "
                         f"({u.get('etcd_cpu_cores', '-')})  client {u.get('client_cpu_s')}s "
                         f"({u.get('client_cpu_cores')})  other processes {u.get('other_cpu_s')}s "
                         f"({u.get('other_cpu_cores')})")
            if "server_main_thread_cpu_s" in u:
                lines.append(f"      {'':16s} server event-loop thread {u['server_main_thread_cpu_s']}s, "
                             f"other server threads {u['server_other_threads_cpu_s']}s")
    for phase, prof in bench.profiles.items():
        lines += ["", f"[profile {phase}] {prof['samples']} samples, {prof['loop_samples']} of them in the "
                      f"event-loop thread (% below are of those; {prof['other_thread_samples']} in other threads); "
                      f"flame graph {prof['svg']}; raw {prof['file']}",
                  "  top self time:"]
        lines += [f"    {p:5.1f}%  {n:6d}  {name}" for name, n, p in prof["self"]]
        lines.append("  top inclusive time:")
        lines += [f"    {p:5.1f}%  {n:6d}  {name}" for name, n, p in prof["inclusive"]]
    if bench.failures:
        lines += ["", "[failures]"] + [f"  {f}" for f in bench.failures]
    return "\n".join(lines)


def log_tail(path: Path, n: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


# -- main ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", help="URL of a running API server (plain HTTP); default: start etcd and a server")
    p.add_argument("--pid", type=int, help="pid of the --server process, for RSS, CPU and --profile")
    p.add_argument("--etcd", help="etcd client URL of a --server, to report its version")
    p.add_argument("--pods", type=int, default=10_000, help="pods to create and list (default 10000)")
    p.add_argument("--memory-pods", type=int, help="total pods for the final RSS reading (default 2x --pods)")
    p.add_argument("--clients", type=int, default=32, help="concurrent keep-alive create clients (default 32)")
    p.add_argument("--watchers", type=int, default=1000, help="concurrent watchers (default 1000)")
    p.add_argument("--watch-rounds", type=int, default=3, help="probe creates the watchers must see (default 3)")
    p.add_argument("--list-runs", type=int, default=5, help="timed runs per LIST variant (default 5)")
    p.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}")
    p.add_argument("--namespace", default="bench", help="namespace of the bench pods (default bench)")
    p.add_argument("--profile", action="store_true", help="attach py-spy to the server for each phase")
    p.add_argument("--profile-rate", type=int, default=200, help="py-spy samples per second (default 200)")
    p.add_argument("--profile-native", action="store_true",
                   help="py-spy --native: also show C frames (uvloop, grpc, orjson); slower sampling")
    p.add_argument("--out-dir", help="where logs and profiles go (default: a new /tmp/arktos-bench-* dir)")
    p.add_argument("--keep", action="store_true", help="keep the temporary etcd data dir")
    p.add_argument("--json", action="store_true", help="also print the results as one JSON document")
    args = p.parse_args(argv)
    args.phases = [x.strip() for x in args.phases.split(",") if x.strip()]
    unknown = set(args.phases) - set(PHASES)
    if unknown:
        p.error(f"unknown phases {sorted(unknown)}; choose from {','.join(PHASES)}")
    if args.memory_pods is None:
        args.memory_pods = 2 * args.pods
    for name in ("pods", "clients", "watchers", "watch_rounds", "list_runs"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.profile and args.server and not args.pid:
        p.error("--profile with --server needs --pid")
    return args


async def run(args: argparse.Namespace) -> int:
    out_dir: Path = args.out_dir
    harness = None
    if args.server:
        url, server_pid, etcd_pid, etcd_url = args.server.rstrip("/"), args.pid, None, args.etcd
        await wait_ready(url, None, timeout=30.0)
    else:
        harness = Harness(out_dir, args.keep)
    code = 1
    bench: Bench | None = None
    machine: dict[str, Any] = {}
    try:
        if harness is not None:
            await harness.start()
            url, server_pid, etcd_pid, etcd_url = harness.url, harness.server_pid, harness.etcd_pid, harness.etcd_url
        machine = machine_info(await etcd_version_of(etcd_url))
        bench = Bench(url=url, namespace=args.namespace, run_id=secrets.token_hex(3), clients=args.clients,
                      server_pid=server_pid, etcd_pid=etcd_pid, harness=harness, profile_rate=args.profile_rate,
                      profile_native=args.profile_native,
                      profile_dir=out_dir if args.profile else None)
        bench.snapshot_rss("idle")
        connector = aiohttp.TCPConnector(limit=args.clients, force_close=False)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            await ensure_namespace(session, bench)
            try:
                if "creates" in args.phases:
                    await phase_creates(session, bench, args.pods)
                if "list" in args.phases:
                    await phase_list(session, bench, args.list_runs)
                if "watch" in args.phases:
                    await phase_watch(session, bench, args.watchers, args.watch_rounds)
                if "memory" in args.phases:
                    await phase_memory(session, bench, args.pods, args.memory_pods)
                code = 0
            except Exception as exc:  # reported with the server log below
                bench.failures.append(f"{type(exc).__name__}: {exc}")
                log(f"phase failed: {type(exc).__name__}: {exc}")
    except Exception as exc:  # start-up failures: log excerpt below
        log(f"bench failed: {type(exc).__name__}: {exc}")
        if bench is not None:
            bench.failures.append(f"{type(exc).__name__}: {exc}")
        else:
            print(f"bench failed before any phase: {type(exc).__name__}: {exc}")
            if harness is not None:
                print(f"--- last lines of {harness.server_log} ---\n{log_tail(harness.server_log)}")
    finally:
        if harness is not None:
            log("stopping API server and etcd")
            harness.stop()
    if bench is None:
        return 1
    print(report(bench, machine, args))
    had_5xx = any(k.startswith("5") for k in bench.results.get("creates", {}).get("statuses", {}))
    if harness is not None and (bench.failures or had_5xx or code):
        print(f"\n--- last lines of the server log {harness.server_log} ---\n{log_tail(harness.server_log)}")
    print(f"\nlogs and profiles in {out_dir}")
    if args.json:
        print(json.dumps({"machine": machine, "server": bench.url, "run_id": bench.run_id,
                          "args": {k: v for k, v in vars(args).items()}, "results": bench.results,
                          "rss": bench.rss, "profiles": bench.profiles, "failures": bench.failures}, default=str))
    return 1 if bench.failures else code


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    args.out_dir = Path(args.out_dir or tempfile.mkdtemp(prefix=f"arktos-bench-{time.strftime('%Y%m%d-%H%M%S')}-"))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    try:
        import uvloop

        uvloop.install()  # the client shares 2 cores with the server and etcd: keep its own overhead low
    except ImportError:
        pass
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
