"""Small OCI images built on this machine, so a cluster runs containers with no registry in reach.

Two images come from the host's statically linked busybox (Debian's
busybox-static): `arktos.local/busybox:<v>`, a shell and the usual tools for
workloads and tests, and `arktos.local/pause:<v>`, the sandbox image every pod
needs (containerd would otherwise pull registry.k8s.io/pause).  Both are written
as OCI image-layout tarballs and imported with `ctr images import`, which
unpacks them for containerd's snapshotter.

The build is reproducible (fixed mtimes, sorted entries), so importing again
yields the same digests and changes nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BUSYBOX_IMAGE", "PAUSE_IMAGE", "ImageError", "build_busybox_images", "find_busybox", "import_images"]

BUSYBOX_IMAGE = "arktos.local/busybox:1.36"
PAUSE_IMAGE = "arktos.local/pause:3.9"
_BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")
_EPOCH = 0  # mtime of every entry: the same bytes on every build
_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ImageError(RuntimeError):
    """A local image could not be built or imported; the message says what to install or check."""


@dataclass(frozen=True)
class _Blob:
    digest: str
    size: int
    data: bytes


def _blob(data: bytes) -> _Blob:
    return _Blob("sha256:" + hashlib.sha256(data).hexdigest(), len(data), data)


def find_busybox() -> Path:
    """The host's busybox, which must be statically linked: it runs in an empty root file system."""
    for candidate in _BUSYBOX_PATHS:
        path = Path(candidate)
        if path.is_file():
            out = subprocess.run(["file", "-L", str(path)], capture_output=True, text=True, check=False).stdout \
                if shutil.which("file") else ""
            if "dynamically linked" in out:
                continue
            return path
    raise ImageError("no statically linked busybox: install it with `apt-get install busybox-static`")


def _applets(busybox: Path) -> list[str]:
    out = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout
    return sorted({a.strip() for a in out.split() if a.strip() and "/" not in a and a != "busybox"})


def _layer(busybox: Path) -> tuple[bytes, str]:
    """The root file system as a tar (gzip-compressed) and the digest of its uncompressed form (diff ID)."""
    raw = io.BytesIO()

    def add(info: tarfile.TarInfo, data: bytes | None = None) -> None:
        info.mtime, info.uid, info.gid, info.uname, info.gname = _EPOCH, 0, 0, "root", "root"
        tar.addfile(info, io.BytesIO(data) if data is not None else None)

    def directory(name: str, mode: int = 0o755) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode = tarfile.DIRTYPE, mode
        add(info)

    def file(name: str, data: bytes, mode: int = 0o644) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), mode
        add(info, data)

    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "dev", "etc", "home", "proc", "root", "sys", "usr", "usr/bin", "usr/sbin", "sbin", "var"):
            directory(d)
        directory("tmp", 0o1777)
        file("bin/busybox", busybox.read_bytes(), 0o755)
        for applet in _applets(busybox):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname, link.mode = tarfile.SYMTYPE, "busybox", 0o777
            add(link)
        file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n")
        file("etc/group", b"root:x:0:\nnogroup:x:65534:\n")
    uncompressed = raw.getvalue()
    diff_id = "sha256:" + hashlib.sha256(uncompressed).hexdigest()
    return gzip.compress(uncompressed, compresslevel=6, mtime=_EPOCH), diff_id


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}.get(
        machine, machine)


def _image_archive(name: str, layer: _Blob, diff_id: str, entrypoint: list[str], cmd: list[str]) -> bytes:
    """An OCI image layout (oci-layout, index.json, blobs/) as a tar, named `name` for `ctr import`."""
    config = _blob(json.dumps({
        "architecture": _arch(), "os": "linux",
        "config": {"Env": [_PATH_ENV], "Entrypoint": entrypoint or None, "Cmd": cmd or None, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "arktos: built from the host's busybox-static"}],
    }, sort_keys=True).encode())
    manifest = _blob(json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.digest,
                   "size": config.size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer.digest,
                    "size": layer.size}],
    }, sort_keys=True).encode())
    index = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest.digest,
            "size": manifest.size, "platform": {"architecture": _arch(), "os": "linux"},
            "annotations": {"io.containerd.image.name": name,
                            "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]},
        }],
    }, sort_keys=True).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index)]
        entries += [(f"blobs/sha256/{b.digest.split(':', 1)[1]}", b.data) for b in (layer, config, manifest)]
        for path, data in entries:
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, _EPOCH
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def build_busybox_images(directory: str | os.PathLike[str]) -> dict[str, Path]:
    """Write the busybox and pause image archives into `directory`; {image name: archive path}.

    An archive already there is reused when the host's busybox has not changed (the file name
    carries its digest), so `arktos up` pays for the build once."""
    busybox = find_busybox()
    stamp = hashlib.sha256(busybox.read_bytes()).hexdigest()[:12]
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    wanted = {
        BUSYBOX_IMAGE: (directory / f"busybox-{stamp}.oci.tar", [], ["sh"]),
        PAUSE_IMAGE: (directory / f"pause-{stamp}.oci.tar", ["/bin/sleep", "2147483647"], []),
    }
    if all(path.exists() for path, _, _ in wanted.values()):
        return {name: path for name, (path, _, _) in wanted.items()}
    layer_data, diff_id = _layer(busybox)
    layer = _blob(layer_data)
    out: dict[str, Path] = {}
    for name, (path, entrypoint, cmd) in wanted.items():
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(_image_archive(name, layer, diff_id, entrypoint, cmd))
        os.replace(tmp, path)
        out[name] = path
    return out


def import_images(archives: dict[str, Path], address: str, *, namespace: str = "k8s.io") -> None:
    """Import image archives into containerd at `address` (its socket), in CRI's namespace."""
    ctr = shutil.which("ctr")
    if ctr is None:
        raise ImageError("`ctr` is missing: it comes with containerd (`apt-get install containerd`)")
    for name, archive in archives.items():
        proc = subprocess.run([ctr, "--address", address, "--namespace", namespace, "images", "import", str(archive)],
                              capture_output=True, text=True, check=False, timeout=120)
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise ImageError(f"importing {name} into containerd failed: {detail[-1] if detail else proc.returncode}")
