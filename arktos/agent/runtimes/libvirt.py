"""The VM runtime: a pod's `spec.virtualMachine` as a libvirt domain (Arktos's Virtlet-derived runtime).

Why libvirt: it is the one API that drives QEMU/KVM on a real host and has an
in-process test driver (`test:///default`) with the same calls, so the same
code is exercised by the tests and runs real VMs.

What a VM pod becomes
---------------------
- a domain named ``arktos-<pod uid>`` whose <metadata> element (namespace
  ``https://arktos.io/xmlns/libvirt/pod/v1``) carries tenant/namespace/name/uid,
  so `pods()` finds and adopts it after an agent restart without any state file;
- vCPUs and memory from `spec.virtualMachine.resources` (limits, else requests;
  CPU rounded up to whole vCPUs);
- for real hypervisors, a qcow2 copy-on-write overlay (``qemu-img create -f qcow2
  -b base -F fmt``) over the base image found as a file in `image_dir` (``cirros``
  -> ``cirros``, ``cirros.qcow2``, ``cirros.img``, ``cirros.raw``; nothing is
  downloaded), and a NoCloud seed ISO (``genisoimage``/``cloud-localds``) as a
  cdrom; the console is written to ``<state_dir>/<uid>/console.log``;
- the cloud-init files themselves (``<state_dir>/<uid>/cloud-init/user-data`` and
  ``meta-data``) are always written, also for the test driver, which takes no disks;
- power state from `powerSpec`: Running -> create/resume, Paused -> suspend,
  Shutdown -> graceful shutdown then destroy, Suspended -> managed save.

Actions (reboot, snapshot, restore) map to virDomainReboot,
virDomainSnapshotCreateXML and virDomainRevertToSnapshot.  QEMU's reboot without a
guest agent is an ACPI request that libvirt completes with a reset once the guest
powers off; the runtime waits up to `reboot_timeout` (60 s) for that reset (libvirt's
REBOOT event, through an event-loop thread started for real hypervisors) and resets
a guest that ignored the request itself.  The Action's `status.message` says which.
Status is polled from the domain state on every sync, not from lifecycle events.
A start that failed (QEMU died before the guest ran) is tried again by the next
sync and is not counted as a restart.

Running a real VM (the opt-in `kvm` test)
-----------------------------------------
`tests/e2e/test_kvm.py` (pytest marker `kvm`, deselected by default) runs the agent on
``qemu:///system`` with a disk it builds offline, and drives the VM through the API::

    make vm-deps                 # VM_PKGS: qemu-system-x86 qemu-utils libvirt-daemon-system genisoimage
                                 #          busybox-static cpio syslinux syslinux-common mtools dosfstools
    chgrp kvm /dev/kvm && chmod 0660 /dev/kvm   # only where no udev rule did (containers, sandboxes)
    virtlogd -d && libvirtd -d   # by hand where there is no systemd; ~15 s until virsh answers
    ARKTOS_KVM_DOMAIN_TYPE=qemu .venv/bin/pytest -m kvm tests/e2e/test_kvm.py -s

The image (``tools/vm/build-busybox-image.sh OUT.qcow2``, ~16 MB, 3 s): Debian's cloud kernel
taken out of its .deb (``apt-get download``; nothing is installed) with its ``button`` and ``evdev``
modules, a busybox initramfs whose /init loads them, runs busybox acpid (the ACPI power button
powers the guest off) and prints ``arktos-test-guest: booted`` on ttyS0, and SYSLINUX on a FAT disk
so SeaBIOS boots it as the VM's first disk.  The agent takes it from ``--vm-image-dir`` (image name
``busybox``), puts a qcow2 overlay on it, and the console log shows the boot.

``--libvirt-domain-type`` picks the hypervisor: ``kvm``, ``qemu`` (TCG, software) or ``auto`` (kvm when
/dev/kvm is usable).  Some hosts have a /dev/kvm that cannot run ordinary guests: on the development
machine it is the ``kvm_pvm`` module (PVM, for nested sandboxes), where SeaBIOS dies with "KVM
internal error. Suberror: 1 ... emulation failure" and ``-cpu host`` aborts on MSR 0x10a.  There the
test runs with ``ARKTOS_KVM_DOMAIN_TYPE=qemu``: under TCG the guest boots in ~4 s on an idle host,
and the whole test (boot, snapshot, restore, an ACPI reboot seen as a second boot, a destroyed guest
restarted, an agent restart adopting the VM, deletion) takes ~30 s.

Host pitfalls seen there: a /dev/kvm only root can open (no udev: root:root 0600) makes libvirtd 9
distrust its cached QEMU capabilities ("KVM was enabled when probing ..., but it is not available
now") and probe QEMU again on every define and start, 30-60 s each, with starts failing "process
exited while connecting to monitor" under load; giving the kvm group access (what udev does) fixes
it.  The base image must be readable by the qemu user and the agent's --root-dir traversable by it
(libvirt's dynamic ownership relabels the overlay and seed, not their directories).  Internal
snapshots need the qcow2 overlay, which is why the disk is always qcow2.  The console log is opened
for appending, so it keeps every boot of the VM (libvirt truncates it on each start otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from arktos.agent.runtime import (
    ContainerState,
    EventSink,
    LogFile,
    NoSuchContainer,
    NotSupported,
    Obj,
    PodState,
    RuntimeEvent,
    discard_events,
)
from arktos.agent.runtimes._domain_xml import (
    METADATA_NS,
    METADATA_PREFIX,
    VMError,
    VMSpec,
    cloud_init_files,
    domain_name,
    domain_xml,
    parse_metadata,
    parse_vm_spec,
)
from arktos.api.quantity import format_bytes

try:
    import libvirt
except ImportError:  # the agent still runs container pods without it
    libvirt = None  # type: ignore[assignment]

__all__ = ["LibvirtRuntime", "VMError"]

log = logging.getLogger(__name__)

DEFAULT_IMAGE_DIR = "/var/lib/arktos/images"
DEFAULT_STATE_DIR = "/var/lib/arktos/vms"
IMAGE_SUFFIXES = ("", ".qcow2", ".img", ".raw")
# How long a Shutdown powerSpec waits for the guest to power off before pulling the plug.
SHUTDOWN_TIMEOUT = 60.0
# How long a reboot Action waits for the guest to act on the ACPI request before resetting the VM.
REBOOT_TIMEOUT = 60.0

# libvirt domain states (virDomainState), spelled out so this module imports without libvirt.
_NOSTATE, _RUNNING, _BLOCKED, _PAUSED, _SHUTDOWN, _SHUTOFF, _CRASHED, _PMSUSPENDED = range(8)

# Connections shared per URI within the process: the test driver's state lives in
# the process, and several runtimes (an agent restart in a test) should see one host.
_shared: dict[str, Any] = {}
_shared_lock = threading.Lock()
_events_started = False


def _start_event_loop() -> bool:
    """Run libvirt's default event loop in a daemon thread (once per process).

    libvirt delivers domain events only to connections opened after an event loop was registered;
    the runtime needs one event, the guest's reset, to tell a reboot the guest carried out from an
    ACPI request it ignored.  Only for real hypervisors: the test driver runs no guest.
    """
    global _events_started
    if _events_started:
        return True
    try:
        libvirt.virEventRegisterDefaultImpl()
    except libvirt.libvirtError as e:
        log.warning("libvirt event loop unavailable (%s): reboots are requested but not confirmed", e)
        return False
    threading.Thread(target=_run_event_loop, name="libvirt-events", daemon=True).start()
    _events_started = True
    return True


def _run_event_loop() -> None:
    while True:
        try:
            libvirt.virEventRunDefaultImpl()
        except Exception:  # never let the thread die: every connection's events go through it
            log.exception("libvirt event loop")
            time.sleep(1)


def _open(uri: str) -> Any:
    if libvirt is None:
        raise RuntimeError(
            "libvirt runtime: the libvirt-python module is not installed "
            "(apt-get install libvirt-dev pkg-config && pip install libvirt-python)"
        )
    with _shared_lock:
        libvirt.registerErrorHandler(_quiet, None)
        conn = _shared.get(uri)
        if conn is None or not conn.isAlive():
            if not uri.startswith("test:"):
                _start_event_loop()
            try:
                conn = libvirt.open(uri)
            except libvirt.libvirtError as e:
                raise RuntimeError(f"libvirt runtime: cannot connect to {uri}: {e}") from e
            _shared[uri] = conn
        return conn


def _first(obj: Obj, *keys: str) -> Any:
    """The first of `keys` present (an empty {} still names the action)."""
    for k in keys:
        if obj.get(k) is not None:
            return obj[k]
    return None


def _int(text: str | None) -> int:
    try:
        return max(0, int(text or 0))
    except ValueError:
        return 0


def _quiet(_ctx: Any, _err: Any) -> None:
    """libvirt prints every error to stderr by default; we raise or report them ourselves."""


class LibvirtRuntime:
    """Runs VM pods as libvirt domains; see the module docstring."""

    kind = "vm"
    name = "libvirt"

    def __init__(
        self,
        uri: str = "qemu:///system",
        image_dir: str | os.PathLike[str] = DEFAULT_IMAGE_DIR,
        state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR,
        key_dir: str | os.PathLike[str] | None = None,
        conn: Any = None,
        domain_type: str = "auto",
        reboot_timeout: float = REBOOT_TIMEOUT,
    ) -> None:
        if domain_type not in ("auto", "kvm", "qemu"):
            raise ValueError(f"domain_type must be auto, kvm or qemu, not {domain_type!r}")
        self.uri = uri
        # "auto" takes KVM whenever /dev/kvm is usable.  Some hosts offer a /dev/kvm that cannot run an
        # ordinary guest (e.g. the PVM backend of nested sandboxes: SeaBIOS dies in "emulation failure"),
        # which is what "qemu" (software emulation) is for.
        self.requested_domain_type = domain_type
        self.image_dir = Path(image_dir)
        self.state_dir = Path(state_dir)
        # Named key pairs (keyPairName) are public-key files "<name>.pub" here.
        self.key_dir = Path(key_dir) if key_dir is not None else self.state_dir / "keypairs"
        self._conn = conn
        self.reboot_timeout = reboot_timeout
        self._domain_type = ""
        self._shutdown_since: dict[str, float] = {}
        self.events: EventSink = discard_events  # the agent connects it: power changes show as pod events

    def _emit(self, vm: VMSpec, reason: str, message: str, type_: str = "Normal") -> None:
        try:
            self.events(RuntimeEvent(vm.uid, reason, message, type_, vm.name))
        except Exception:  # an event is never worth failing a VM operation for
            log.exception("reporting event %s for %s", reason, vm.domain_name)

    # -- connection -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect; raise a clear error when libvirt or the hypervisor is unusable."""
        await asyncio.to_thread(self._connect)

    async def stop(self) -> None:
        """Forget the connection; domains keep running (the shared connection stays open for others)."""
        self._conn = None

    def _connect(self) -> Any:
        if self._conn is None:
            self._conn = _open(self.uri)
        if not self._domain_type:
            driver = self._conn.getType().lower()
            if driver == "test":
                self._domain_type = "test"
            elif self.requested_domain_type != "auto":
                self._domain_type = self.requested_domain_type
            else:
                self._domain_type = "kvm" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "qemu"
        return self._conn

    @property
    def is_test_driver(self) -> bool:
        self._connect()
        return self._domain_type == "test"

    def _lookup(self, uid: str) -> Any:
        conn = self._connect()
        try:
            return conn.lookupByName(domain_name(uid))
        except libvirt.libvirtError as e:
            if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise

    def pod_dir(self, uid: str) -> Path:
        """Where a VM's overlay, seed and console log live."""
        return self.state_dir / uid

    # -- sync -------------------------------------------------------------------------------------

    async def sync_pod(self, pod: Obj) -> PodState:
        """Define the domain if missing, apply powerSpec, report the state.

        Raises VMError (reason "InvalidVMSpec", "ImageNotFound", "KeyPairNotFound",
        "VMCreateFailed") when the pod cannot run as asked.
        """
        vm = parse_vm_spec(pod)
        return await asyncio.to_thread(self._sync, vm)

    def _sync(self, vm: VMSpec) -> PodState:
        dom = self._lookup(vm.uid)
        if dom is None:
            dom = self._define(vm)
        try:
            self._apply_power(dom, vm)
        except libvirt.libvirtError as e:
            raise VMError("VMCreateFailed", f"domain {vm.domain_name}: {e}") from e
        return self._state(dom)

    def _define(self, vm: VMSpec) -> Any:
        keys = list(vm.public_keys)
        if vm.key_pair_name:
            path = self.key_dir / f"{vm.key_pair_name}.pub"
            try:
                keys.append(path.read_text().strip())
            except OSError as e:
                if not keys:
                    raise VMError("KeyPairNotFound", f"key pair {vm.key_pair_name!r} not found at {path}") from e
        vm.public_keys = keys
        pdir = self.pod_dir(vm.uid)
        ci_dir = pdir / "cloud-init"
        ci_dir.mkdir(parents=True, exist_ok=True)
        for fname, text in cloud_init_files(vm).items():
            (ci_dir / fname).write_text(text)
        if self._domain_type == "test":
            xml = domain_xml(vm, domain_type="test", image_id=vm.image)
        else:
            base = self._find_image(vm.image)
            disk = self._overlay(base, pdir / "disk.qcow2")
            seed = self._seed_iso(ci_dir, pdir / "seed.iso")
            xml = domain_xml(
                vm,
                domain_type=self._domain_type,
                image_id=f"file://{base}",
                disk=str(disk),
                seed_iso=str(seed) if seed else None,
                console_log=str(pdir / "console.log"),
            )
        try:
            dom = self._connect().defineXML(xml)
        except libvirt.libvirtError as e:
            raise VMError("VMCreateFailed", f"cannot define domain {vm.domain_name}: {e}") from e
        log.info("defined domain %s for pod %s/%s", vm.domain_name, vm.namespace, vm.pod_name)
        return dom

    def _find_image(self, image: str) -> Path:
        """A base image is a file in image_dir named after the image (registry and tag stripped as a fallback)."""
        names = [image]
        last = image.rsplit("/", 1)[-1]
        names += [last, last.split(":", 1)[0], last.split("@", 1)[0]]
        for n in dict.fromkeys(names):
            if not n or n.startswith(".") or "/" in n:
                continue
            for suffix in IMAGE_SUFFIXES:
                p = self.image_dir / (n + suffix)
                if p.is_file():
                    return p
        raise VMError("ImageNotFound", f"image {image!r} not found in {self.image_dir} (no downloads are made)")

    @staticmethod
    def _overlay(base: Path, overlay: Path) -> Path:
        """A copy-on-write qcow2 over the cached base, so VMs share it and snapshots work."""
        if overlay.exists():
            return overlay
        with base.open("rb") as f:
            fmt = "qcow2" if f.read(4) == b"QFI\xfb" else "raw"
        if shutil.which("qemu-img"):
            cmd = ["qemu-img", "create", "-f", "qcow2", "-b", str(base.resolve()), "-F", fmt, str(overlay)]
            res = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if res.returncode != 0:
                raise VMError("VMCreateFailed", f"qemu-img create failed: {res.stderr.strip()}")
        elif fmt == "qcow2":
            shutil.copyfile(base, overlay)  # no qemu-img: a full copy still gives a private qcow2 disk
        else:
            raise VMError("VMCreateFailed", f"qemu-img is needed to put a qcow2 overlay over raw image {base}")
        return overlay

    @staticmethod
    def _seed_iso(ci_dir: Path, iso: Path) -> Path | None:
        """The NoCloud seed as an ISO (volume id "cidata"), when a tool to build one exists."""
        files = [str(ci_dir / "user-data"), str(ci_dir / "meta-data")]
        if shutil.which("genisoimage"):
            cmd = ["genisoimage", "-quiet", "-output", str(iso), "-volid", "cidata", "-joliet", "-rock", *files]
        elif shutil.which("cloud-localds"):
            cmd = ["cloud-localds", str(iso), *files]
        else:
            log.warning("neither genisoimage nor cloud-localds found: VM gets no cloud-init seed")
            return None
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise VMError("VMCreateFailed", f"building the cloud-init seed failed: {res.stderr.strip()}")
        return iso

    def _apply_power(self, dom: Any, vm: VMSpec) -> None:
        state = dom.state()[0]
        uid = vm.uid
        if vm.power_spec != "Shutdown":
            self._shutdown_since.pop(uid, None)
        if vm.power_spec == "Running":
            if state == _PAUSED:
                dom.resume()
                self._emit(vm, "Resumed", f"Resumed virtual machine {vm.name} (powerSpec Running)")
            elif state == _PMSUSPENDED:
                dom.pMWakeup()
                self._emit(vm, "Resumed", f"Woke virtual machine {vm.name} up (powerSpec Running)")
            elif state in (_SHUTOFF, _CRASHED, _NOSTATE):
                self._start_if_allowed(dom, vm, state)
        elif vm.power_spec == "Paused":
            if state in (_SHUTOFF, _NOSTATE):
                dom.create()  # the test driver refuses VIR_DOMAIN_START_PAUSED: start, then pause
                dom.suspend()
                self._emit(vm, "Paused", f"Started virtual machine {vm.name} paused (powerSpec Paused)")
            elif state in (_RUNNING, _BLOCKED):
                dom.suspend()
                self._emit(vm, "Paused", f"Paused virtual machine {vm.name} (powerSpec Paused)")
        elif vm.power_spec == "Suspended":
            if state in (_RUNNING, _BLOCKED, _PAUSED):
                try:
                    dom.managedSave()
                    self._emit(vm, "Suspended", f"Saved virtual machine {vm.name} to disk (powerSpec Suspended)")
                except libvirt.libvirtError as e:
                    log.warning("managed save of %s failed (%s); pausing it instead", vm.domain_name, e)
                    if state != _PAUSED:
                        dom.suspend()
                    self._emit(vm, "SuspendFailed", f"Saving virtual machine {vm.name} failed ({e}): paused it",
                               "Warning")
        elif vm.power_spec == "Shutdown":
            self._set_meta(dom, powerSpec="Shutdown")
            if state == _PAUSED:
                dom.destroy()  # a paused guest cannot react to ACPI
                self._emit(vm, "ShutDown", f"Powered paused virtual machine {vm.name} off (powerSpec Shutdown)")
            elif state in (_RUNNING, _BLOCKED, _SHUTDOWN):
                since = self._shutdown_since.setdefault(uid, time.monotonic())
                if time.monotonic() - since > SHUTDOWN_TIMEOUT:
                    dom.destroy()
                    self._emit(vm, "ExceededGracePeriod", f"Virtual machine {vm.name} did not power off within "
                               f"{SHUTDOWN_TIMEOUT:.0f}s of the ACPI request: powered it off", "Warning")
                elif state != _SHUTDOWN:
                    dom.shutdown()
                    self._emit(vm, "ShuttingDown", f"Asked virtual machine {vm.name} to shut down (powerSpec Shutdown)")
            if dom.state()[0] in (_SHUTOFF, _CRASHED):
                self._shutdown_since.pop(uid, None)

    def _start_if_allowed(self, dom: Any, vm: VMSpec, state: int) -> None:
        """Start a shut-off domain, unless the guest powered itself off and the pod says to leave it so."""
        reason = dom.state()[1]
        newly_defined = state == _SHUTOFF and reason == libvirt.VIR_DOMAIN_SHUTOFF_UNKNOWN
        # The last start failed (QEMU died before the guest ran, e.g. "process exited while connecting
        # to monitor" on a loaded host): this is another try of that start, not a restart of a guest.
        start_failed = state == _SHUTOFF and reason == libvirt.VIR_DOMAIN_SHUTOFF_FAILED
        if dom.hasManagedSaveImage():
            dom.create()  # resumes from the managed save: not a restart
            return
        # Powered off because the pod asked (powerSpec Shutdown): starting again is no restart.
        meta = self._meta(dom) or {}
        asked = meta.get("powerSpec") == "Shutdown"
        restarts = _int(meta.get("restartCount"))
        if not newly_defined and not asked and not start_failed:
            if vm.shutdown_behavior == "terminate" or vm.restart_policy == "Never":
                return
            if vm.restart_policy == "OnFailure" and state != _CRASHED:
                return
            restarts += 1
            why = "crashed" if state == _CRASHED else "powered off"
            self._emit(vm, "Restarting", f"Virtual machine {vm.name} {why}: starting it again (restart {restarts}, "
                       f"restartPolicy {vm.restart_policy})", "Warning")
        # Counted before the start, so a restart whose start fails and is tried again counts once.
        self._set_meta(dom, powerSpec="Running", restartCount=str(restarts))
        dom.create()

    def _set_meta(self, dom: Any, **fields: str) -> None:
        """Keep state in the domain's own metadata, so it outlives the agent process: the powerSpec last
        applied (a start after a requested Shutdown is no restart) and the restart count (what
        virtualMachineStatus.restartCount and the pod's restartCount report after an agent restart)."""
        meta = self._meta(dom)
        if meta is None or all(meta.get(k) == v for k, v in fields.items()):
            return
        meta.update(fields)
        body = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in meta.items())
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if dom.isActive():
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
        dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, f"<pod>{body}</pod>", METADATA_PREFIX, METADATA_NS, flags)

    # -- state ------------------------------------------------------------------------------------

    def _meta(self, dom: Any) -> dict[str, str] | None:
        try:
            text = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS)
        except libvirt.libvirtError:
            return None  # not one of ours
        try:
            return parse_metadata(text)
        except Exception:
            return None

    def _state(self, dom: Any, meta: dict[str, str] | None = None) -> PodState:
        meta = meta if meta is not None else (self._meta(dom) or {})
        state, _reason = dom.state()
        info = dom.info()  # [state, maxMem KiB, mem KiB, vcpus, cpuTime]
        uid = meta.get("uid", "")
        vm_name = meta.get("vmName", "") or dom.name()
        saved = state == _SHUTOFF and self._safe(dom.hasManagedSaveImage, 0)
        if state in (_RUNNING, _BLOCKED):
            power, vm_state, cstate, reason = "running", "Active", "running", ""
        elif state == _PAUSED:
            power, vm_state, cstate, reason = "paused", "Paused", "running", "Paused"
        elif state == _SHUTDOWN:
            power, vm_state, cstate, reason = "shutdown", "Active", "running", "ShuttingDown"
        elif state == _PMSUSPENDED or saved:
            power, vm_state, cstate, reason = "suspended", "Suspended", "waiting", "Suspended"
        elif state == _SHUTOFF:
            power, vm_state, cstate, reason = "shutdown", "Stopped", "terminated", "Stopped"
        elif state == _CRASHED:
            power, vm_state, cstate, reason = "crashed", "Error", "terminated", "Crashed"
        else:
            power, vm_state, cstate, reason = "nostate", "Building", "waiting", "Creating"
        ready = power == "running"
        restarts = _int(meta.get("restartCount"))
        cpu, memory = str(info[3]), format_bytes(int(info[1]) * 1024)
        image = meta.get("image", "")
        image_id = meta.get("imageId", "") or image
        uuid = dom.UUIDString()
        container = ContainerState(
            name=vm_name,
            state=cstate,
            reason=reason if cstate != "running" else "",
            exit_code=(1 if state == _CRASHED else 0) if cstate == "terminated" else None,
            restart_count=restarts,
            image=image,
            image_id=image_id,
            container_id=f"{self.name}://{uuid}",
            ready=ready,
        )
        vm_status = {
            "name": vm_name,
            "virtualMachineId": uuid,
            "imageId": image_id,
            "state": vm_state,
            "powerState": power,
            "ready": ready,
            "restartCount": restarts,
            "resources": {"limits": {"cpu": cpu, "memory": memory}, "requests": {"cpu": cpu, "memory": memory}},
        }
        return PodState(
            uid=uid,
            namespace=meta.get("namespace", ""),
            name=meta.get("name", ""),
            tenant=meta.get("tenant", ""),
            containers=[container],
            vm_status=vm_status,
        )

    @staticmethod
    def _safe(fn: Any, default: Any) -> Any:
        try:
            return fn()
        except Exception:
            return default

    async def pods(self) -> list[PodState]:
        """Every domain carrying our metadata, as a pod (adoption after an agent restart)."""
        return await asyncio.to_thread(self._pods)

    def _pods(self) -> list[PodState]:
        out = []
        for dom in self._connect().listAllDomains():
            meta = self._meta(dom)
            if meta is None or not meta.get("uid"):
                continue
            try:
                out.append(self._state(dom, meta))
            except libvirt.libvirtError:
                continue  # undefined while we looked
        return out

    # -- kill -------------------------------------------------------------------------------------

    async def kill_pod(self, pod: Obj, grace_seconds: int) -> None:
        """Ask the guest to power off, destroy it after the grace period, undefine it and remove its files."""
        uid = (pod.get("metadata") or {}).get("uid") or ""
        if not uid:
            return
        dom = await asyncio.to_thread(self._lookup, uid)
        if dom is not None:
            deadline = time.monotonic() + max(0, grace_seconds)
            try:
                state = (await asyncio.to_thread(dom.state))[0]
                if state in (_RUNNING, _BLOCKED) and grace_seconds > 0:
                    await asyncio.to_thread(dom.shutdown)
                while time.monotonic() < deadline:
                    if not await asyncio.to_thread(dom.isActive):
                        break
                    await asyncio.sleep(0.2)
                if await asyncio.to_thread(dom.isActive):
                    await asyncio.to_thread(dom.destroy)
                await asyncio.to_thread(self._undefine, dom)
            except libvirt.libvirtError as e:
                if e.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
        self._shutdown_since.pop(uid, None)
        await asyncio.to_thread(shutil.rmtree, self.pod_dir(uid), True)

    @staticmethod
    def _undefine(dom: Any) -> None:
        flags = libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
        try:
            dom.undefineFlags(flags | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
        except libvirt.libvirtError:
            dom.undefineFlags(flags)

    # -- actions ----------------------------------------------------------------------------------

    async def action(self, pod: Obj, action: Obj) -> Obj:
        """Reboot, snapshot or restore the pod's VM; the result is the Action status fields.

        Takes an Action object (spec.rebootAction/snapshotAction/restoreAction)
        or the CustomAction request body (operation + *Params).
        """
        spec = action.get("spec", action) or {}
        uid = (pod.get("metadata") or {}).get("uid") or ""
        op = (spec.get("operation") or action.get("operation") or "").lower()
        reboot = _first(spec, "rebootAction", "rebootParams")
        snapshot = _first(spec, "snapshotAction", "snapshotParams")
        restore = _first(spec, "restoreAction", "restoreParams")
        try:
            dom = await asyncio.to_thread(self._lookup, uid) if uid else None
            if dom is None:
                raise VMError("NotFound", f"no VM for pod uid {uid!r} on this node")
            if reboot is not None or op == "reboot":
                delay = int((reboot or {}).get("delayInSeconds") or 0)
                if delay > 0:
                    await asyncio.sleep(delay)
                return await self._reboot(dom)
            if snapshot is not None or op == "snapshot":
                name = (snapshot or {}).get("snapshotName") or ""
                if not name:
                    raise VMError("InvalidAction", "snapshot action needs snapshotName")
                xml = f"<domainsnapshot><name>{escape(name)}</name></domainsnapshot>"
                await asyncio.to_thread(dom.snapshotCreateXML, xml, 0)
                return {"complete": True, "snapshotStatus": {"snapshotID": name}}
            if restore is not None or op == "restore":
                sid = (restore or {}).get("snapshotID") or ""
                if not sid:
                    raise VMError("InvalidAction", "restore action needs snapshotID")
                await asyncio.to_thread(self._revert, dom, sid)
                return {"complete": True, "restoreStatus": {"restoreSuccessful": True}}
            raise VMError("InvalidAction", "action has none of rebootAction, snapshotAction, restoreAction")
        except (VMError, libvirt.libvirtError) as e:
            # The status says which operation failed as well as why, as a successful one says it succeeded.
            failed: Obj = {"complete": True, "error": e.message if isinstance(e, VMError) else str(e)}
            if reboot is not None or op == "reboot":
                failed["rebootStatus"] = {"rebootSuccessful": False}
            elif restore is not None or op == "restore":
                failed["restoreStatus"] = {"restoreSuccessful": False}
            return failed

    @staticmethod
    def _revert(dom: Any, sid: str) -> None:
        try:
            snap = dom.snapshotLookupByName(sid, 0)
        except libvirt.libvirtError as e:
            if e.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT:
                raise
            have = ", ".join(dom.snapshotListNames()) or "none"
            raise VMError("SnapshotNotFound", f"no snapshot {sid!r} of this VM (its snapshots: {have})") from e
        dom.revertToSnapshot(snap, 0)

    async def _reboot(self, dom: Any) -> Obj:
        """libvirt's reboot: an ACPI request (QEMU has no other way without a guest agent), which libvirt
        completes as a reset once the guest powers off.  A guest that ignores ACPI would never reboot, so
        the runtime waits for the reset (libvirt's REBOOT event) for `reboot_timeout` seconds and then
        resets the VM itself; the Action's status message says which of the two happened."""
        ok: Obj = {"complete": True, "rebootStatus": {"rebootSuccessful": True}}
        if not await asyncio.to_thread(dom.isActive):
            await asyncio.to_thread(dom.create)
            return {**ok, "message": "the VM was not running: started it"}
        if self._domain_type == "test":  # no guest: the test driver reboots at once
            await asyncio.to_thread(dom.reboot, 0)
            return ok
        rebooted = threading.Event()
        conn = self._connect()
        try:
            callback = await asyncio.to_thread(conn.domainEventRegisterAny, dom, libvirt.VIR_DOMAIN_EVENT_ID_REBOOT,
                                               lambda *_args: rebooted.set(), None)
        except libvirt.libvirtError as e:  # a connection opened without an event loop (passed in)
            log.info("no reboot events for %s (%s): the reboot is requested, not confirmed", dom.name(), e)
            callback = None
        try:
            await asyncio.to_thread(dom.reboot, 0)
            if callback is None:
                return {**ok, "message": "asked the guest to reboot (ACPI); whether it did is not known"}
            if await asyncio.to_thread(rebooted.wait, self.reboot_timeout):
                return {**ok, "message": "the guest rebooted on the ACPI request"}
            await asyncio.to_thread(dom.reset, 0)
            log.warning("%s ignored the ACPI reboot request for %.0fs: reset it", dom.name(), self.reboot_timeout)
            return {**ok, "message": f"the guest did not act on the ACPI reboot request within "
                                     f"{self.reboot_timeout:.0f}s: reset the VM"}
        finally:
            if callback is not None:
                with contextlib.suppress(libvirt.libvirtError):
                    await asyncio.to_thread(conn.domainEventDeregisterAny, callback)

    # -- logs and exec ----------------------------------------------------------------------------

    async def log_file(self, pod: Obj, container: str, *, previous: bool = False) -> LogFile:
        """The VM's serial console log (raw text): what `kubectl logs` shows for a VM pod.

        Real hypervisors write it through `<serial type='file'>`; the test driver runs no guest
        and writes nothing, so the file is created empty and the log reads as empty, not as an error.
        """
        uid = (pod.get("metadata") or {}).get("uid") or ""
        dom = await asyncio.to_thread(self._lookup, uid) if uid else None
        meta = (await asyncio.to_thread(self._meta, dom) or {}) if dom is not None else {}
        if dom is None or container not in (meta.get("vmName"), dom.name()):
            raise NoSuchContainer(f"no VM {container!r} for pod uid {uid!r} on this node")
        if previous:
            raise NotSupported("a VM has one console log and no previous instance; omit --previous")
        path = self.pod_dir(uid) / "console.log"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        return LogFile(path, cri=False)

    async def exec_url(self, pod: Obj, container: str, command: list[str], *, stdin: bool, stdout: bool,
                       stderr: bool, tty: bool) -> str:
        raise NotSupported("exec is not supported for VM pods; use the VM's console or SSH")

    async def exec_sync(self, pod: Obj, container: str, command: list[str], timeout: float) -> tuple[int, bytes, bytes]:
        raise NotSupported("exec probes are not supported for VM pods; probe the VM over the network "
                           "(httpGet, tcpSocket or grpc)")

    async def kill_container(self, pod: Obj, container: str, grace_seconds: int, *, container_id: str = "") -> None:
        raise NotSupported("a VM pod's VM is not killed by a probe; use a reboot action")

    async def attach_url(self, pod: Obj, container: str, *, stdin: bool, stdout: bool, stderr: bool,
                         tty: bool) -> str:
        raise NotSupported("attach is not supported for VM pods; kubectl logs shows the VM's serial console")

    async def port_forward_url(self, pod: Obj, ports: list[int]) -> str:
        raise NotSupported("port-forward is not supported for VM pods; reach the VM at its pod IP")

    # -- capacity ---------------------------------------------------------------------------------

    def capacity(self) -> Obj:
        """CPUs and memory as libvirt sees the host (for test:/// the driver's made-up host)."""
        info = self._connect().getInfo()  # [model, memory MiB, cpus, MHz, nodes, sockets, cores, threads]
        return {"cpu": str(info[2]), "memory": f"{info[1]}Mi"}
