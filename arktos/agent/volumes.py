"""Kubelet's volume and env resolution: what a pod refers to in the API becomes files and plain values.

Runtimes know nothing of the API server, so before a container pod is synced the agent resolves,
from the pod's own tenant server (the `origin` its worker keeps) and only inside the pod's own
tenant and namespace (a reference has no namespace of its own):

* volumes `configMap`, `secret`, `downwardAPI` and `projected` (sources configMap, secret,
  downwardAPI and serviceAccountToken, i.e. the kube-api-access layout) are written under the
  agent's root, `<root>/pods/<uid>/volumes/<kind>/<name>/`, honouring `items`, `defaultMode`,
  `mode` and `optional`;
* env `valueFrom.configMapKeyRef` / `secretKeyRef` and `envFrom` (with `prefix`, `optional`).

The seam: `VolumeManager.prepare` returns a *resolved* copy of the pod, which is what the agent
hands to the runtime.  In it those volumes are `hostPath` volumes (type Directory) to the written
directories, every mount of them is read-only (kubelet mounts them so), `envFrom` is gone and its
entries plus every configMapKeyRef/secretKeyRef are plain `{"name", "value"}` entries in kubelet's
order (envFrom first, then env; a later one wins).  Values from the API have each `$` doubled so a
runtime's `$(VAR)` expansion leaves them as they are (kubelet expands only literal `value`s).  A
changed container carries `runtime.SPEC_HASH` = the hash of its spec as the API server has it, so a
runtime that replaces containers whose spec changed is not fooled by a ConfigMap value that changed
(kubelet does not restart a container for that either; a restart picks the new value up).
fieldRef and resourceFieldRef env stay for the runtime, which knows the pod IP.

What cannot be resolved yet (a required ConfigMap or Secret or key that does not exist) is
reported, not raised: kubelet's words, `configmap "x" not found`, `secret "x" not found`,
`couldn't find key k in ConfigMap ns/x`.  A volume's failure holds the whole pod (kubelet:
containers wait in ContainerCreating, a FailedMount event); an env failure makes that container
wait with reason CreateContainerConfigError (the resolved pod leaves it out; the other containers
start, unless it is an init container, which holds the pod).  The agent retries every 2 s.

Objects are fetched with GET through a small per-node cache with a TTL (kubelet's "Cache"
change-detection strategy; its default "Watch" strategy would need one watch per object): pods
sharing a ConfigMap share the fetch, and a pod with such volumes is refreshed every `ttl` seconds,
so a change reaches its files within about two TTLs.  Files change atomically as kubelet's
AtomicWriter does: the payload goes to a new hidden directory `..<timestamp>`, the symlink
`..data` is swapped to it with one rename, and each visible name is a symlink `key -> ..data/key`;
a reader never sees half an update (a subPath mount, bound to one file, keeps the old content, as
in Kubernetes).

Secrets on the node: `secret` volumes and `projected` volumes (which may hold secrets and tokens)
are each a tmpfs of their own when the agent can mount one (it runs as root with CAP_SYS_ADMIN: the
case under `arktos up`), so they never touch the disk, as kubelet does; otherwise they are plain
directories.  Either way every pod's directory is mode 0700 (only root on the host reads it; a
container gets its bind mount directly) and files keep the mode the pod asked for, because that is
what the container sees.  Service-account tokens come from the TokenRequest API
(`serviceaccounts/{name}/token`, bound to the pod, with the source's audience and
expirationSeconds) and are renewed after 80% of their lifetime or 24 hours, as kubelet renews them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import copy
import datetime
import logging
import math
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any

from arktos.agent.runtime import SPEC_HASH, container_hash
from arktos.api.errors import APIError
from arktos.api.quantity import parse_quantity
from arktos.api.registry import ResourceInfo
from arktos.api.resources import BUILTIN

__all__ = ["AtomicWriter", "Prepared", "VolumeManager", "WriteError"]

Obj = dict[str, Any]
log = logging.getLogger("arktos.agent.volumes")

DATA_DIR = "..data"
DEFAULT_MODE = 0o644
TOKEN_DEFAULT_EXPIRATION = 3600
TOKEN_MAX_AGE = 24 * 3600
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
# Where each kind of volume goes under <root>/pods/<uid>/volumes/ (kubelet's plugin directory names).
_KIND_DIRS = {"configMap": "configmap", "secret": "secret", "downwardAPI": "downward-api", "projected": "projected"}
_TMPFS_KINDS = ("secret", "projected")


def _info(plural: str) -> ResourceInfo:
    return next(i for i in BUILTIN if i.group == "" and i.plural == plural)


CONFIGMAPS, SECRETS, SERVICEACCOUNTS = _info("configmaps"), _info("secrets"), _info("serviceaccounts")
SERVICES = _info("services")
# Where the prepared pod carries the in-cluster API's address for the runtime's env (kubelet's
# KUBERNETES_SERVICE_HOST/PORT, read from the pod's tenant's default/kubernetes Service).
SERVICE_ENV = "_kubernetesServiceEnv"


class WriteError(ValueError):
    """A payload that cannot be written (a path escaping the volume, say)."""


class ConfigError(Exception):
    """A reference that cannot be resolved now; its message is kubelet's."""


# -- the atomic writer --------------------------------------------------------------------------------

Payload = dict[str, tuple[bytes, int]]  # relative path -> (content, mode)


def _check_path(path: str) -> str:
    p = PurePosixPath(path)
    if not path or p.is_absolute() or ".." in p.parts or path.startswith(".."):
        raise WriteError(f"invalid path {path!r}: must be relative and may not contain '..'")
    return str(p)


class AtomicWriter:
    """Kubelet's AtomicWriter: a directory whose whole content changes with one rename.

    Layout: `..<timestamp>/` holds the files, `..data -> ..<timestamp>` is swapped atomically
    (a `..data_tmp` symlink renamed over it), and every top-level name is a symlink into `..data`.
    """

    def __init__(self, target: str | os.PathLike[str]) -> None:
        self.target = Path(target)

    def current(self) -> Payload | None:
        """What `..data` holds now (None when nothing was written yet)."""
        data = self.target / DATA_DIR
        if not data.is_symlink():
            return None
        base = self.target / os.readlink(data)
        out: Payload = {}
        for dirpath, _dirs, files in os.walk(base):
            for f in files:
                full = Path(dirpath, f)
                out[str(full.relative_to(base))] = (full.read_bytes(), full.stat().st_mode & 0o7777)
        return out

    def write(self, payload: Payload) -> bool:
        """Make the directory hold exactly `payload`; False when it already did (nothing written)."""
        payload = {_check_path(k): v for k, v in payload.items()}
        self.target.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            if self.current() == payload:
                return False
        data = self.target / DATA_DIR
        old = os.readlink(data) if data.is_symlink() else None
        stamp = datetime.datetime.now(datetime.UTC).strftime("..%Y_%m_%d_%H_%M_%S.%f")
        ts = self.target / stamp
        n = 0
        while ts.exists():
            n += 1
            ts = self.target / f"{stamp}{n}"
        ts.mkdir(mode=0o755)
        os.chmod(ts, 0o755)
        for rel, (content, mode) in payload.items():
            path = ts / rel
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode & 0o7777)
            with os.fdopen(fd, "wb") as f:
                f.write(content)
            os.chmod(path, mode & 0o7777)
        tmp = self.target / (DATA_DIR + "_tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(ts.name, tmp)
        os.rename(tmp, data)  # the one atomic step: readers see the old or the new payload
        top = {PurePosixPath(k).parts[0] for k in payload}
        for name in top:
            link = self.target / name
            if not link.is_symlink():
                if link.exists():  # a stray file or directory in the way
                    raise WriteError(f"{link} exists and is not ours")
                os.symlink(f"{DATA_DIR}/{name}", link)
        for entry in os.listdir(self.target):
            if not entry.startswith("..") and entry not in top:
                p = self.target / entry
                if p.is_symlink():
                    p.unlink()
        if old and old != ts.name:
            _rmtree(self.target / old)
        return True


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


# -- what a pod needs ----------------------------------------------------------------------------------

@dataclass
class Prepared:
    """The outcome of `VolumeManager.prepare`."""

    pod: Obj  # the resolved pod for the runtime (the pod itself when nothing needed resolving)
    mount_error: str = ""  # a volume could not be set up: the pod waits (ContainerCreating)
    volume: str = ""  # ... which one
    env_errors: dict[str, str] = field(default_factory=dict)  # container -> why it cannot be created
    refresh: bool = False  # the pod has volumes whose content follows API objects: prepare again soon

    @property
    def blocked(self) -> bool:
        return bool(self.mount_error or self.env_errors)


@dataclass
class _Token:
    token: str
    issued: float  # time.time()
    expires: float


class VolumeManager:
    """Resolves and writes the pods' API-backed volumes and env for one node agent."""

    def __init__(self, root: str | os.PathLike[str] | None, *, ttl: float = 3.0, tmpfs: bool | None = None,
                 allocatable: Any = None) -> None:
        self.root = Path(root) if root is not None else None
        self.ttl = ttl
        self.tmpfs = (os.geteuid() == 0) if tmpfs is None else tmpfs
        self.allocatable = allocatable or (lambda: {})
        # (id(client), plural, tenant, namespace, name) -> (fetched at, object or None for 404)
        self._cache: dict[tuple[int, str, str, str, str], tuple[float, Obj | None]] = {}
        self._inflight: dict[tuple[int, str, str, str, str], asyncio.Future[Obj | None]] = {}
        self._tokens: dict[tuple[str, str, str, int], _Token] = {}  # (pod uid, sa, audience, expiration)
        self._mounted: set[Path] = set()
        self._written: dict[Path, int] = {}  # volume dir -> hash of the payload last written there
        self._last_prune = time.monotonic()
        self._last_orphan_scan = -1e9

    # -- fetching -------------------------------------------------------------------------------

    async def _get(self, client: Any, info: ResourceInfo, tenant: str, namespace: str, name: str) -> Obj | None:
        key = (id(client), info.plural, tenant, namespace, name)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        fut: asyncio.Future[Obj | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            try:
                obj: Obj | None = await client.get(info, name, tenant=tenant or None, namespace=namespace)
            except APIError as exc:
                if exc.code != 404:
                    raise
                obj = None
            self._cache[key] = (time.monotonic(), obj)
            fut.set_result(obj)
            return obj
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: waiters get it through shield
            raise
        finally:
            self._inflight.pop(key, None)
            if now - self._last_prune > 60:
                self._last_prune = now
                for k in [k for k, (t, _) in self._cache.items() if now - t > 10 * max(self.ttl, 6.0)]:
                    del self._cache[k]

    async def _config(self, ctx: _Ctx, kind: str, name: str) -> Obj | None:
        info = CONFIGMAPS if kind == "configmap" else SECRETS
        return await self._get(ctx.client, info, ctx.tenant, ctx.namespace, name)

    @staticmethod
    def _data(kind: str, obj: Obj) -> dict[str, bytes]:
        """An object's keys and their bytes (a ConfigMap's data and binaryData, a Secret's data)."""
        out: dict[str, bytes] = {}
        if kind == "configmap":
            for k, v in (obj.get("data") or {}).items():
                out[k] = str(v).encode()
            sources = obj.get("binaryData") or {}
        else:
            sources = obj.get("data") or {}
        for k, v in sources.items():
            try:
                out[k] = base64.b64decode(v or "")
            except (binascii.Error, ValueError):
                out[k] = b""
        return out

    # -- the entry point ------------------------------------------------------------------------

    async def prepare(self, pod: Obj, client: Any) -> Prepared:
        """Resolve `pod`'s volumes and env from `client` (the pod's own server) and write the volumes.

        APIError (other than 404) and TransportError propagate: the agent retries the pass."""
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        volumes = spec.get("volumes") or []
        containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
        needs_volumes = any(k in v for v in volumes for k in _KIND_DIRS)
        needs_env = any(c.get("envFrom") or any(_api_env(e) for e in c.get("env") or []) for c in containers)
        if not needs_volumes and not needs_env:
            return Prepared(pod)
        ctx = _Ctx(client, meta.get("tenant") or "", meta.get("namespace") or "default", pod)
        out = copy.deepcopy(pod)
        prepared = Prepared(out)
        hosted: set[str] = set()
        if needs_volumes and any((s or {}).get("serviceAccountToken") is not None for v in volumes
                                 for s in ((v.get("projected") or {}).get("sources") or [])):
            # A pod that talks to the API finds it through these two (what client-go's in-cluster config reads);
            # the Service is fetched once per ttl per tenant, however many pods ask.
            try:
                svc = await self._get(client, SERVICES, ctx.tenant, "default", "kubernetes")
            except APIError as exc:  # not allowed to read it (an older policy): the pod goes without these
                log.debug("no kubernetes service for the env of %s: %s", meta.get("name"), exc)
                svc = None
            ports = ((svc or {}).get("spec") or {}).get("ports") or []
            host = ((svc or {}).get("spec") or {}).get("clusterIP")
            if host and host != "None" and ports:
                out[SERVICE_ENV] = {"KUBERNETES_SERVICE_HOST": host,
                                    "KUBERNETES_SERVICE_PORT": str(ports[0].get("port", 443))}
        if needs_volumes:
            new_volumes = []
            for vol in volumes:
                kind = next((k for k in _KIND_DIRS if k in vol), None)
                if kind is None:
                    new_volumes.append(vol)
                    continue
                name = vol.get("name", "")
                try:
                    payload = await self._payload(ctx, kind, vol[kind] or {})
                    path = self._write(meta.get("uid", ""), kind, name, payload)
                except (ConfigError, WriteError) as exc:
                    prepared.mount_error, prepared.volume = str(exc), name
                    return prepared
                if kind != "downwardAPI" or _downward_changes(vol[kind] or {}):
                    prepared.refresh = True
                hosted.add(name)
                new_volumes.append({"name": name, "hostPath": {"path": str(path), "type": "Directory"}})
            out["spec"]["volumes"] = new_volumes
        for key in ("initContainers", "containers"):
            resolved = []
            for c in out["spec"].get(key) or []:
                original = container_hash(c)
                changed = False
                if c.get("envFrom") or any(_api_env(e) for e in c.get("env") or []):
                    try:
                        c["env"] = await self._env(ctx, c)
                    except ConfigError as exc:
                        prepared.env_errors[c.get("name", "")] = str(exc)
                    c.pop("envFrom", None)
                    changed = True
                for m in c.get("volumeMounts") or []:
                    if m.get("name") in hosted and not m.get("readOnly"):
                        m["readOnly"] = True
                        changed = True
                if changed:
                    c[SPEC_HASH] = original
                if key == "initContainers" or c.get("name", "") not in prepared.env_errors:
                    resolved.append(c)  # a container whose env cannot be made is not handed over: it waits
            if key in out["spec"]:
                out["spec"][key] = resolved
        return prepared

    # -- env --------------------------------------------------------------------------------------

    async def _env(self, ctx: _Ctx, c: Obj) -> list[Obj]:
        """kubelet's makeEnvironmentVariables for what comes from the API: envFrom, then env."""
        values: dict[str, Obj] = {}
        for src in c.get("envFrom") or []:
            kind, ref = ("configmap", src["configMapRef"]) if src.get("configMapRef") else (
                ("secret", src["secretRef"]) if src.get("secretRef") else ("", None))
            if ref is None:
                continue
            name = ref.get("name", "")
            obj = await self._config(ctx, kind, name)
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{kind} "{name}" not found')
            prefix = src.get("prefix") or ""
            for k, v in sorted(self._data(kind, obj).items()):
                k = prefix + k
                if _ENV_NAME.match(k):  # kubelet skips invalid names (and says so in an event)
                    values[k] = {"name": k, "value": _literal(v)}
        for e in c.get("env") or []:
            name = e.get("name", "")
            ref, kind = _api_env(e), ""
            if ref is None:
                values.pop(name, None)  # re-inserted at its place in the order
                values[name] = e
                continue
            kind = "configmap" if "configMapKeyRef" in (e.get("valueFrom") or {}) else "secret"
            obj = await self._config(ctx, kind, ref.get("name", ""))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{kind} "{ref.get("name", "")}" not found')
            data = self._data(kind, obj)
            key = ref.get("key", "")
            if key not in data:
                if ref.get("optional"):
                    continue
                what = "ConfigMap" if kind == "configmap" else "Secret"
                raise ConfigError(f"couldn't find key {key} in {what} {ctx.namespace}/{ref.get('name', '')}")
            values.pop(name, None)
            values[name] = {"name": name, "value": _literal(data[key])}
        return list(values.values())

    # -- volumes ------------------------------------------------------------------------------------

    async def _payload(self, ctx: _Ctx, kind: str, src: Obj) -> Payload:
        default = src.get("defaultMode", DEFAULT_MODE)
        if kind in ("configMap", "secret"):
            name = src.get("name", "") if kind == "configMap" else src.get("secretName", "")
            return await self._config_payload(ctx, "configmap" if kind == "configMap" else "secret", name, src,
                                              default)
        if kind == "downwardAPI":
            return self._downward_payload(ctx.pod, src.get("items") or [], default)
        payload: Payload = {}
        for source in src.get("sources") or []:
            if source.get("configMap") is not None:
                part = await self._config_payload(ctx, "configmap", source["configMap"].get("name", ""),
                                                  source["configMap"], default)
            elif source.get("secret") is not None:
                part = await self._config_payload(ctx, "secret", source["secret"].get("name", ""),
                                                  source["secret"], default)
            elif source.get("downwardAPI") is not None:
                part = self._downward_payload(ctx.pod, source["downwardAPI"].get("items") or [], default)
            elif source.get("serviceAccountToken") is not None:
                tok = source["serviceAccountToken"]
                part = {tok.get("path", "token"): ((await self._token(ctx, tok)).encode(), default)}
            else:
                continue
            payload.update(part)
        return payload

    async def _config_payload(self, ctx: _Ctx, kind: str, name: str, src: Obj, default: int) -> Payload:
        obj = await self._config(ctx, kind, name)
        if obj is None:
            if src.get("optional"):
                return {}
            raise ConfigError(f'{kind} "{name}" not found')
        data = self._data(kind, obj)
        items = src.get("items")
        if not items:
            return {k: (v, default) for k, v in data.items()}
        out: Payload = {}
        for item in items:
            key = item.get("key", "")
            if key not in data:
                if src.get("optional"):
                    continue
                raise ConfigError(f"{kind} references non-existent {'config' if kind == 'configmap' else 'secret'} "
                                  f"key: {key}")
            out[item.get("path") or key] = (data[key], item.get("mode", default))
        return out

    def _downward_payload(self, pod: Obj, items: list[Obj], default: int) -> Payload:
        out: Payload = {}
        for item in items:
            mode = item.get("mode", default)
            if item.get("fieldRef"):
                value = _field(pod, (item["fieldRef"] or {}).get("fieldPath", ""))
            elif item.get("resourceFieldRef"):
                value = self._resource(pod, item["resourceFieldRef"])
            else:
                continue
            out[item.get("path", "")] = (value.encode(), mode)
        return out

    def _resource(self, pod: Obj, ref: Obj) -> str:
        containers = (pod.get("spec") or {}).get("containers") or []
        c = next((x for x in containers if x.get("name") == ref.get("containerName")), containers[0] if containers
                 else {})
        which, _, res = (ref.get("resource") or "").partition(".")
        value = ((c.get("resources") or {}).get(which) or {}).get(res)
        if value is None and which == "limits":
            value = self.allocatable().get(res)
        if value is None:
            return "0"
        divisor = parse_quantity(ref.get("divisor") or "1")
        if divisor == 0:
            divisor = Decimal(1)
        return str(math.ceil(parse_quantity(value) / divisor))

    async def _token(self, ctx: _Ctx, src: Obj) -> str:
        meta, spec = ctx.pod.get("metadata") or {}, ctx.pod.get("spec") or {}
        sa = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        audience = src.get("audience") or ""
        expiration = int(src.get("expirationSeconds") or TOKEN_DEFAULT_EXPIRATION)
        key = (meta.get("uid", ""), sa, audience, expiration)
        have = self._tokens.get(key)
        now = time.time()
        if have is not None and now < have.issued + 0.8 * (have.expires - have.issued) and \
                now < have.issued + TOKEN_MAX_AGE:
            return have.token
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"audiences": [audience] if audience else [], "expirationSeconds": expiration,
                         "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": meta.get("name", ""),
                                            "uid": meta.get("uid", "")}}}
        try:
            got = await ctx.client.create_subresource(SERVICEACCOUNTS, sa, "token", body,
                                                      tenant=ctx.tenant or None, namespace=ctx.namespace)
        except APIError as exc:
            if exc.code == 404:
                raise ConfigError(f'failed to fetch token: serviceaccounts "{sa}" not found') from None
            raise
        status = got.get("status") or {}
        expires = now + expiration
        with contextlib.suppress(ValueError, TypeError):
            expires = datetime.datetime.fromisoformat(status["expirationTimestamp"].replace("Z", "+00:00")).timestamp()
        self._tokens[key] = _Token(status.get("token", ""), now, expires)
        return status.get("token", "")

    def _write(self, uid: str, kind: str, name: str, payload: Payload) -> Path:
        if self.root is None:  # hollow nodes: resolved, nothing written
            return Path("/nonexistent") / uid / _KIND_DIRS[kind] / name
        pod_dir = self.root / "pods" / uid
        if not pod_dir.exists():
            pod_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(pod_dir, 0o700)
        target = pod_dir / "volumes" / _KIND_DIRS[kind] / _check_path(name)
        if kind in _TMPFS_KINDS and self.tmpfs and target not in self._mounted:
            self._mount_tmpfs(target)
        digest = hash(tuple(sorted(payload.items())))
        if self._written.get(target) != digest:  # unchanged since our last write: not even read back
            AtomicWriter(target).write(payload)
            self._written[target] = digest
        return target

    def _mount_tmpfs(self, target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        if os.path.ismount(target):
            self._mounted.add(target)
            return
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=64m", "tmpfs", str(target)],
                              capture_output=True, text=True, check=False)
        if done.returncode == 0:
            self._mounted.add(target)
        else:
            log.warning("cannot mount a tmpfs for %s (%s): secrets go to disk; not trying again",
                        target, done.stderr.strip())
            self.tmpfs = False

    def cleanup_orphans(self, keep: set[str], every: float = 60.0) -> list[str]:
        """Forget every pod under the root whose uid is not in `keep` (at most once per `every` seconds)."""
        now = time.monotonic()
        if self.root is None or now - self._last_orphan_scan < every:
            return []
        self._last_orphan_scan = now
        base = self.root / "pods"
        gone = [d.name for d in base.iterdir() if d.is_dir() and d.name not in keep] if base.is_dir() else []
        for uid in gone:
            log.info("pod %s is gone: removing its volumes", uid)
            self.forget(uid)
        return gone

    def forget(self, uid: str) -> None:
        """The pod is gone: unmount and remove its volumes, drop its tokens."""
        for key in [k for k in self._tokens if k[0] == uid]:
            del self._tokens[key]
        if self.root is None or not uid:
            return
        pod_dir = self.root / "pods" / uid
        for target in [t for t in self._written if t.is_relative_to(pod_dir)]:
            del self._written[target]
        if not pod_dir.exists():
            return
        for kind in _TMPFS_KINDS:
            base = pod_dir / "volumes" / _KIND_DIRS[kind]
            for sub in base.iterdir() if base.is_dir() else []:
                if os.path.ismount(sub):
                    subprocess.run(["umount", str(sub)], capture_output=True, check=False)
                self._mounted.discard(sub)
        if any(os.path.ismount(p) for p in pod_dir.rglob("*") if p.is_dir() and not p.is_symlink()):
            log.warning("pod %s: a volume is still mounted; leaving %s", uid, pod_dir)
            return
        _rmtree(pod_dir)


@dataclass
class _Ctx:
    client: Any
    tenant: str
    namespace: str
    pod: Obj


def _api_env(e: Obj) -> Obj | None:
    """The configMapKeyRef / secretKeyRef of an env entry, if it has one."""
    vf = e.get("valueFrom") or {}
    return vf.get("configMapKeyRef") or vf.get("secretKeyRef")


def _literal(value: bytes) -> str:
    return value.decode("utf-8", "replace").replace("$", "$$")


def _downward_changes(src: Obj) -> bool:
    """Labels and annotations can change on a running pod; the rest of the downward API cannot."""
    return any(((i.get("fieldRef") or {}).get("fieldPath", "")).startswith(("metadata.labels",
                                                                             "metadata.annotations"))
               for i in src.get("items") or [])


def _format_map(m: dict[str, Any]) -> str:
    """kubelet's fieldpath.FormatMap: sorted `key="value"` lines (Go's strconv.Quote)."""
    import json

    return "\n".join(f"{k}={json.dumps(str(v), ensure_ascii=False)}" for k, v in sorted(m.items()))


def _field(pod: Obj, path: str) -> str:
    meta = pod.get("metadata") or {}
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.*)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    if path in ("metadata.labels", "metadata.annotations"):
        return _format_map(meta.get(path.split(".")[1]) or {})
    simple = {"metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", ""),
              "metadata.uid": meta.get("uid", ""), "metadata.tenant": meta.get("tenant") or "system",
              "spec.nodeName": (pod.get("spec") or {}).get("nodeName", ""),
              "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName", "")}
    if path in simple:
        return str(simple[path])
    raise ConfigError(f"unsupported fieldPath {path!r} in a downwardAPI volume")
