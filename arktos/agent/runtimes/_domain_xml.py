"""Pure helpers of the libvirt runtime: VM spec validation, cloud-init data, domain XML.

Kept apart from the runtime so they need no libvirt connection and stay easy to
reason about: everything here turns a pod into text (or refuses it with a
reason the agent can show), and nothing touches the hypervisor.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass, field
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import Any
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

import yaml

from arktos.api.quantity import QuantityError, int_value, milli_value

Obj = dict[str, Any]

# Our libvirt metadata namespace: a domain carrying an element in it is one of ours.
METADATA_NS = "https://arktos.io/xmlns/libvirt/pod/v1"
METADATA_PREFIX = "arktos"
DOMAIN_PREFIX = "arktos-"
POWER_SPECS = ("Running", "Paused", "Shutdown", "Suspended")
SHUTDOWN_BEHAVIORS = ("stop", "terminate")
MAX_USER_DATA = 65535
DEFAULT_MEMORY = 512 * 2**20  # a VM with no memory request still needs some to boot
MIN_MEMORY = 16 * 2**20


class VMError(RuntimeError):
    """A VM pod cannot be run as asked; `reason` is the short CamelCase word for pod status."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class VMSpec:
    """What the runtime needs from `spec.virtualMachine`, validated and normalised."""

    uid: str
    tenant: str
    namespace: str
    pod_name: str
    name: str
    image: str
    vcpus: int
    memory: int  # bytes
    public_keys: list[str] = field(default_factory=list)
    key_pair_name: str = ""
    user_data: bytes = b""
    user_data_script: str = ""
    power_spec: str = "Running"
    shutdown_behavior: str = "stop"
    restart_policy: str = "Always"
    resources: Obj = field(default_factory=dict)

    @property
    def domain_name(self) -> str:
        return domain_name(self.uid)


def domain_name(uid: str) -> str:
    """Domains are named after the pod UID: unique on the host and stable across renames."""
    return DOMAIN_PREFIX + uid


def _resource(resources: Obj, key: str) -> Any:
    """Limits win over requests: a VM gets what it may use, not just what it was promised."""
    for part in ("limits", "requests"):
        value = (resources.get(part) or {}).get(key)
        if value is not None:
            return value
    return None


def parse_vm_spec(pod: Obj) -> VMSpec:
    """Validate a pod's `spec.virtualMachine`; raise VMError("InvalidVMSpec", ...) saying what is wrong."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    vm = spec.get("virtualMachine")
    uid = meta.get("uid") or ""

    def bad(msg: str) -> VMError:
        return VMError("InvalidVMSpec", f"pod {meta.get('namespace', '')}/{meta.get('name', '')}: {msg}")

    if not isinstance(vm, dict):
        raise bad("spec.virtualMachine is missing or not an object")
    if not uid:
        raise bad("metadata.uid is required to name the domain")
    name = vm.get("name")
    if not isinstance(name, str) or not name:
        raise bad("spec.virtualMachine.name is required")
    image = vm.get("image") or ""
    if not isinstance(image, str) or not image:
        raise bad("spec.virtualMachine.image is required")
    resources = vm.get("resources") or {}
    if not isinstance(resources, dict):
        raise bad("spec.virtualMachine.resources must be an object")
    try:
        cpu = _resource(resources, "cpu")
        vcpus = max(1, math.ceil(milli_value(cpu) / 1000)) if cpu is not None else 1
        mem = _resource(resources, "memory")
        memory = int_value(mem) if mem is not None else DEFAULT_MEMORY
    except QuantityError as e:
        raise bad(f"spec.virtualMachine.resources: {e}") from e
    if memory < MIN_MEMORY:
        raise bad(f"spec.virtualMachine.resources memory {mem!r} is below the minimum of 16Mi")
    public_key = vm.get("publicKey") or ""
    key_pair = vm.get("keyPairName") or ""
    if not public_key and not key_pair:
        raise bad("spec.virtualMachine needs keyPairName or publicKey")
    user_data = b""
    if vm.get("userData"):
        try:
            user_data = base64.b64decode(vm["userData"], validate=True)
        except (binascii.Error, ValueError, TypeError) as e:
            raise bad(f"spec.virtualMachine.userData is not valid base64: {e}") from e
        if len(user_data) > MAX_USER_DATA:
            raise bad(f"spec.virtualMachine.userData is {len(user_data)} bytes, more than {MAX_USER_DATA}")
    power = vm.get("powerSpec") or "Running"
    if power not in POWER_SPECS:
        raise bad(f"spec.virtualMachine.powerSpec {power!r} is not one of {', '.join(POWER_SPECS)}")
    behavior = vm.get("shutdownBehavior") or "stop"
    if behavior not in SHUTDOWN_BEHAVIORS:
        raise bad(f"spec.virtualMachine.shutdownBehavior {behavior!r} is not one of stop, terminate")
    return VMSpec(
        uid=uid,
        tenant=meta.get("tenant") or "system",
        namespace=meta.get("namespace") or "default",
        pod_name=meta.get("name") or "",
        name=name,
        image=image,
        vcpus=vcpus,
        memory=memory,
        public_keys=[public_key.strip()] if public_key else [],
        key_pair_name=key_pair,
        user_data=user_data,
        user_data_script=vm.get("cloudInitUserDataScript") or "",
        power_spec=power,
        shutdown_behavior=behavior,
        restart_policy=spec.get("restartPolicy") or "Always",
        resources=resources,
    )


# -- cloud-init (NoCloud) -------------------------------------------------------------------------


def _script(text: str) -> str:
    """cloud-init runs a user-data part as a script only when it has a shebang."""
    return text if text.startswith("#!") else "#!/bin/sh\n" + text


def cloud_init_files(vm: VMSpec) -> dict[str, str]:
    """The NoCloud seed files (user-data, meta-data) for a VM.

    The key pair always goes in as `ssh_authorized_keys`.  User data that is
    itself #cloud-config is merged into that document; anything else (and the
    cloudInitUserDataScript) rides along as a script part of a MIME multipart
    user-data, which cloud-init unpacks, so neither input is lost.
    """
    config: Obj = {"hostname": vm.name, "ssh_authorized_keys": list(vm.public_keys)}
    scripts: list[str] = []
    if vm.user_data:
        text = vm.user_data.decode("utf-8", errors="replace")
        if text.startswith("#cloud-config"):
            loaded = yaml.safe_load(text) or {}
            if not isinstance(loaded, dict):
                raise VMError("InvalidVMSpec", "spec.virtualMachine.userData #cloud-config is not a mapping")
            keys = list(loaded.pop("ssh_authorized_keys", None) or [])
            config.update(loaded)
            config["ssh_authorized_keys"] = list(vm.public_keys) + [k for k in keys if k not in vm.public_keys]
        else:
            scripts.append(_script(text))
    if vm.user_data_script:
        scripts.append(_script(vm.user_data_script))
    cloud_config = "#cloud-config\n" + yaml.safe_dump(config, default_flow_style=False, sort_keys=True)
    if scripts:
        msg = MIMEMultipart()
        msg.attach(MIMEText(cloud_config, "cloud-config"))
        for i, s in enumerate(scripts):
            part = MIMEText(s, "x-shellscript")
            part.add_header("Content-Disposition", "attachment", filename=f"part-{i:03d}.sh")
            msg.attach(part)
        user_data = msg.as_string()
    else:
        user_data = cloud_config
    meta_data = yaml.safe_dump({"instance-id": vm.uid, "local-hostname": vm.name, "hostname": vm.name})
    return {"user-data": user_data, "meta-data": meta_data}


# -- domain XML -----------------------------------------------------------------------------------


def metadata_xml(vm: VMSpec, image_id: str, prefix: str = "") -> str:
    """Our <metadata> element: enough to adopt the domain as a pod after an agent restart.

    With a `prefix` the elements are written in our namespace (inside a domain's
    XML); without it they are bare, as virDomainSetMetadata wants them.
    """
    fields = {
        "tenant": vm.tenant,
        "namespace": vm.namespace,
        "name": vm.pod_name,
        "uid": vm.uid,
        "vmName": vm.name,
        "image": vm.image,
        "imageId": image_id,
        "shutdownBehavior": vm.shutdown_behavior,
    }
    p = f"{prefix}:" if prefix else ""
    body = "".join(f"<{p}{k}>{escape(v)}</{p}{k}>" for k, v in fields.items())
    xmlns = f" xmlns:{prefix}={quoteattr(METADATA_NS)}" if prefix else ""
    return f"<{p}pod{xmlns}>{body}</{p}pod>"


def parse_metadata(text: str) -> dict[str, str]:
    """The fields of our metadata element as libvirt hands it back (without the namespace prefix)."""
    root = ET.fromstring(text)
    return {child.tag.split("}")[-1]: child.text or "" for child in root}


def domain_xml(
    vm: VMSpec,
    *,
    domain_type: str,
    image_id: str,
    disk: str | None = None,
    seed_iso: str | None = None,
    console_log: str | None = None,
) -> str:
    """The libvirt domain for a VM.

    The test driver takes no devices, so `disk`/`seed_iso`/`console_log` are
    only given for real hypervisors.  The console goes to a file so the agent
    can serve it as the pod's log, appended to (libvirt truncates it on every start otherwise), so a
    restarted or re-created guest's console follows the previous one's, as `kubectl logs` should show.
    """
    memory_kib = max(1, math.ceil(vm.memory / 1024))
    meta = metadata_xml(vm, image_id, METADATA_PREFIX)
    devices = []
    if disk:
        devices.append(
            "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
            f"<source file={quoteattr(disk)}/><target dev='vda' bus='virtio'/></disk>"
        )
    if seed_iso:
        devices.append(
            "<disk type='file' device='cdrom'><driver name='qemu' type='raw'/>"
            f"<source file={quoteattr(seed_iso)}/><target dev='sda' bus='sata'/><readonly/></disk>"
        )
    if domain_type != "test":
        devices.append("<interface type='user'><model type='virtio'/></interface>")
        if console_log:
            devices.append(
                f"<serial type='file'><source path={quoteattr(console_log)} append='on'/><target port='0'/></serial>"
                "<console type='file'><target type='serial' port='0'/></console>"
            )
        devices.append("<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>")
    os_xml = "<os><type>hvm</type><boot dev='hd'/></os>" if domain_type != "test" else "<os><type>hvm</type></os>"
    features = "<features><acpi/><apic/></features>" if domain_type != "test" else ""
    cpu = "<cpu mode='host-passthrough'/>" if domain_type == "kvm" else ""
    return (
        f"<domain type={quoteattr(domain_type)}>"
        f"<name>{escape(vm.domain_name)}</name>"
        f"<metadata>{meta}</metadata>"
        f"<memory unit='KiB'>{memory_kib}</memory><currentMemory unit='KiB'>{memory_kib}</currentMemory>"
        f"<vcpu placement='static'>{vm.vcpus}</vcpu>"
        f"{os_xml}{features}{cpu}"
        "<on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>"
        f"<devices>{''.join(devices)}</devices>"
        "</domain>"
    )
