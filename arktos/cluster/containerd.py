"""Find, configure and launch a private containerd for a node agent: used by `arktos up` and the tests.

Each node agent on a machine gets its own containerd (root, state, socket, CNI
bridge and pod subnet under one directory), so several agents share a machine
the way several hosts share a network, and nothing touches a system-wide
containerd.  The configuration comes from `templates/containerd.toml.j2` and
`templates/cni-bridge.conflist.j2`, the same templates the Ansible roles use.
After start, the locally built busybox and pause images are imported, so pods
run with no registry in reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from arktos.cluster import images, render

__all__ = [
    "INSTALL_HINT",
    "ContainerdLayout",
    "ContainerdNotFound",
    "configured_subnet",
    "find_containerd",
    "free_subnet",
    "import_local_images",
    "kill_leftover_shims",
    "missing",
    "prepare",
    "purge",
    "ready",
    "remove_all_pods",
    "shut_down",
    "start_containerd",
    "wait_ready",
]

INSTALL_HINT = "apt-get install containerd runc containernetworking-plugins busybox-static"
_CNI_BIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin", "/usr/libexec/cni")


class ContainerdNotFound(RuntimeError):
    """Something containers need is missing; the message names the package to install."""


def _cni_bin_dir() -> str | None:
    return next((d for d in _CNI_BIN_DIRS if Path(d, "bridge").exists() and Path(d, "host-local").exists()), None)


def missing() -> list[str]:
    """What this machine lacks to run containers (empty: nothing), in words for an error message."""
    lacks = [name for name in ("containerd", "ctr", "runc") if shutil.which(name) is None
             and not Path("/usr/sbin", name).exists()]
    if _cni_bin_dir() is None:
        lacks.append("the CNI plugins (bridge, host-local)")
    try:
        images.find_busybox()
    except images.ImageError:
        lacks.append("a static busybox")
    if os.geteuid() != 0:
        lacks.append("root (containerd and runc need it)")
    return lacks


def find_containerd() -> str:
    lacks = missing()
    if lacks:
        raise ContainerdNotFound(f"cannot run containers: missing {', '.join(lacks)}; install with '{INSTALL_HINT}'")
    return shutil.which("containerd") or "/usr/bin/containerd"


@dataclass(frozen=True)
class ContainerdLayout:
    """Where one containerd keeps everything, under `base`."""

    base: Path

    @property
    def socket(self) -> Path:
        """The CRI socket: under `base`, unless that path is too long for a unix socket (104 bytes with
        containerd's `.ttrpc` twin), then in a short directory named after `base` under /run (or /tmp)."""
        inside = self.base / "containerd.sock"
        if len(str(inside)) + len(".ttrpc") < 100:
            return inside
        digest = hashlib.blake2b(str(self.base).encode(), digest_size=6).hexdigest()
        short = Path("/run") if os.access("/run", os.W_OK) else Path(tempfile.gettempdir())
        return short / f"arktos-ctd-{digest}" / "containerd.sock"

    @property
    def config(self) -> Path:
        return self.base / "config.toml"

    @property
    def cni_conf_dir(self) -> Path:
        return self.base / "cni"

    @property
    def images_dir(self) -> Path:
        return self.base / "images"


def bridge_name(base: Path) -> str:
    """A bridge name unique to this containerd (Linux allows 15 characters)."""
    return "ak" + hashlib.blake2b(str(base.resolve()).encode(), digest_size=5).hexdigest()


def prepare(base: str | os.PathLike[str], pod_subnet: str) -> ContainerdLayout:
    """Render containerd's and the CNI configuration under `base`; idempotent."""
    ipaddress.ip_network(pod_subnet)  # a clear ValueError before anything is written
    layout = ContainerdLayout(Path(base).resolve())
    find_containerd()
    cni_bin = _cni_bin_dir()
    for d in (layout.base, layout.cni_conf_dir, layout.socket.parent):
        d.mkdir(parents=True, exist_ok=True)
    render.write(layout.config, render.render(
        "containerd.toml.j2", root=layout.base / "root", state=layout.base / "state", socket=layout.socket,
        sandbox_image=images.PAUSE_IMAGE, cni_bin_dir=cni_bin, cni_conf_dir=layout.cni_conf_dir,
        snapshotter="overlayfs", systemd_cgroup=False))
    render.write(layout.cni_conf_dir / "10-arktos.conflist", render.render(
        "cni-bridge.conflist.j2", network_name="arktos", bridge=bridge_name(layout.base), pod_subnet=pod_subnet,
        ipam_dir=layout.base / "ipam"))
    return layout


def command(layout: ContainerdLayout) -> list[str]:
    return [find_containerd(), "--config", str(layout.config), "--log-level", "warn"]


def wait_ready(layout: ContainerdLayout, proc: subprocess.Popen | None = None, timeout: float = 30.0) -> None:
    """Wait for the socket, then import the local images (which also proves containerd serves)."""
    deadline = time.monotonic() + timeout
    while not layout.socket.exists():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"containerd exited with code {proc.returncode} before serving {layout.socket}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"containerd did not create {layout.socket} within {timeout:.0f}s")
        time.sleep(0.05)
    while True:
        try:
            import_local_images(layout)
            return
        except images.ImageError:
            if time.monotonic() > deadline or (proc is not None and proc.poll() is not None):
                raise
            time.sleep(0.2)


def start_containerd(base: str | os.PathLike[str], pod_subnet: str, log_file: str | os.PathLike[str]
                     ) -> tuple[subprocess.Popen, ContainerdLayout]:
    """Configure and start a containerd under `base`, ready with the local images (about 1 s)."""
    layout = prepare(base, pod_subnet)
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(command(layout), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_ready(layout, proc)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc, layout


async def remove_all_pods(layout: ContainerdLayout) -> int:
    """Stop and remove every pod sandbox (and so every container) of this containerd; how many there were.

    Containers outlive containerd (their shims are separate processes), so stopping a cluster for good
    removes them first; `arktos down` without --purge leaves them, like a host's reboot-less restart."""
    from arktos.agent.runtimes._cri import CRIClient, CRIError

    if not layout.socket.exists():
        return 0
    cri = CRIClient(str(layout.socket), timeout=60)
    try:
        sandboxes = (await cri.call("ListPodSandbox")).items
        for s in sandboxes:
            for rpc in ("StopPodSandbox", "RemovePodSandbox"):
                with contextlib.suppress(CRIError):
                    await cri.call(rpc, pod_sandbox_id=s.id)
        return len(sandboxes)
    finally:
        await cri.close()


def kill_leftover_shims(layout: ContainerdLayout) -> int:
    """Kill shim processes that still serve this containerd's containers (after containerd itself stopped)."""
    killed = 0
    marker = str(layout.socket).encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path("/proc", pid, "cmdline").read_bytes()
        except OSError:
            continue
        if b"containerd-shim" in cmdline and marker in cmdline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(pid), signal.SIGKILL)
                killed += 1
    return killed


def unmount_under(path: str | os.PathLike[str]) -> None:
    """Lazily unmount everything mounted below `path`, deepest first (containerd's rootfs and shm mounts, the
    node agents' tmpfs volumes), so the directory can be removed."""
    root = str(path).rstrip("/") + "/"
    with contextlib.suppress(OSError):
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
        for target in sorted((m for m in mounts if m.startswith(root)), key=len, reverse=True):
            subprocess.run(["umount", "-l", target], capture_output=True, check=False)


def purge(layout: ContainerdLayout) -> None:
    """Remove what containerd left on the host: its pod bridge and the mounts under its root, then its files."""
    subprocess.run(["ip", "link", "delete", bridge_name(layout.base)], capture_output=True, check=False)
    unmount_under(layout.base)
    shutil.rmtree(layout.base, ignore_errors=True)
    if layout.socket.parent != layout.base:
        shutil.rmtree(layout.socket.parent, ignore_errors=True)


async def _runtime_ready(layout: ContainerdLayout) -> bool:
    from arktos.agent.runtimes._cri import CRIClient, CRIError

    cri = CRIClient(str(layout.socket), timeout=2)
    try:
        status = await cri.call("Status")
    except CRIError:
        return False
    finally:
        await cri.close()
    return any(c.type == "RuntimeReady" and c.status for c in status.status.conditions)


def ready(layout: ContainerdLayout) -> bool:
    """containerd answers CRI and says its runtime is ready (for `arktos up`'s health checks)."""
    return layout.socket.exists() and asyncio.run(_runtime_ready(layout))


def import_local_images(layout: ContainerdLayout) -> None:
    """Build (once) and import the busybox and pause images; importing again changes nothing."""
    images.import_images(images.build_busybox_images(layout.images_dir), str(layout.socket))


def shut_down(layout: ContainerdLayout) -> None:
    """Before containerd stops for good: remove every pod, so no container or shim outlives the cluster."""
    if layout.socket.exists():
        with contextlib.suppress(Exception):
            asyncio.run(remove_all_pods(layout))


def configured_subnet(layout: ContainerdLayout) -> str | None:
    """The pod subnet this containerd was configured with (None before its first `prepare`)."""
    try:
        conf = json.loads((layout.cni_conf_dir / "10-arktos.conflist").read_text())
        return str(conf["plugins"][0]["ipam"]["ranges"][0][0]["subnet"])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def subnets_in_use() -> list[ipaddress.IPv4Network]:
    """IPv4 networks this host already has on an interface or in a route (bar the default route)."""
    found: list[ipaddress.IPv4Network] = []
    for argv in (["ip", "-4", "-o", "addr", "show"], ["ip", "-4", "route", "show"]):
        out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
        for word in out.split():
            if "/" in word or argv[2] == "route":
                with contextlib.suppress(ValueError):
                    net = ipaddress.ip_network(word, strict=False)
                    if isinstance(net, ipaddress.IPv4Network) and net.prefixlen > 0:
                        found.append(net)
    return found


def free_subnet(taken: tuple[str, ...] = (), pool: str = "10.88.0.0/16") -> str:
    """The first /24 of `pool` that overlaps nothing on this host nor `taken`: a pod subnet that
    cannot be shadowed by another cluster's bridge (or a VPN's route) on the same machine."""
    used = subnets_in_use() + [ipaddress.ip_network(t) for t in taken]
    for candidate in ipaddress.ip_network(pool).subnets(new_prefix=24):
        if not any(candidate.overlaps(u) for u in used):
            return str(candidate)
    raise ValueError(f"no /24 of {pool} is free on this host for pod addresses")
