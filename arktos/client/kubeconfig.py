"""kubeconfig files: which server, which credentials, which tenant.

Arktos adds `tenant` to a context, next to `namespace`.  Scale-out components
take several kubeconfigs at once (`--tenant-servers tp1.kubeconfig,tp2.kubeconfig`,
`--resource-providers rp1.kubeconfig,...`), hence `load_many`.

Paths inside a kubeconfig are relative to the file, as kubectl resolves them,
so a directory of kubeconfigs and certificates can be moved as a whole.
"""

from __future__ import annotations

import base64
import binascii
import os
import ssl
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ClusterConfig", "KubeconfigError", "load_kubeconfig", "load_many"]


class KubeconfigError(ValueError):
    """The kubeconfig is missing, malformed, or names something it does not define."""


@dataclass(frozen=True)
class ClusterConfig:
    """Everything needed to reach one API server as one user.

    Certificate and key material is either a file path or inline PEM bytes
    (decoded from the kubeconfig's `*-data` fields); files are read when the
    SSL context is built, so a rotated certificate is picked up by the next
    client.
    """

    server: str
    ca_file: str | None = None
    ca_data: bytes | None = None
    client_cert_file: str | None = None
    client_cert_data: bytes | None = None
    client_key_file: str | None = None
    client_key_data: bytes | None = None
    token: str | None = None
    token_file: str | None = None
    tenant: str | None = None
    namespace: str | None = None
    insecure_skip_tls_verify: bool = False
    tls_server_name: str | None = None
    context: str = ""
    source: str = ""

    @classmethod
    def for_url(cls, server: str, **kw: Any) -> ClusterConfig:
        """A config for a bare URL, e.g. the plain-HTTP development port."""
        return cls(server=server.rstrip("/"), **kw)

    @property
    def uses_tls(self) -> bool:
        return self.server.startswith("https://")

    def bearer_token(self) -> str | None:
        """The token, reading `tokenFile` afresh each call so rotated tokens are used."""
        if self.token:
            return self.token
        if self.token_file:
            try:
                return Path(self.token_file).read_text().strip() or None
            except OSError as exc:
                raise KubeconfigError(f"cannot read tokenFile {self.token_file}: {exc}") from None
        return None

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS settings for an https server; None for plain http."""
        if not self.uses_tls:
            return None
        # A cluster CA replaces the system roots, as in client-go.
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_file,
                                         cadata=self.ca_data.decode() if self.ca_data else None)
        if self.insecure_skip_tls_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        has_cert = self.client_cert_data or self.client_cert_file
        has_key = self.client_key_data or self.client_key_file
        if (has_cert and not has_key) or (has_key and not has_cert):
            raise KubeconfigError("a client certificate needs its key, and a key its certificate")
        if has_cert:
            _load_client_cert(ctx, self)
        return ctx

    def with_overrides(self, **changes: Any) -> ClusterConfig:
        """A copy with some fields changed (e.g. a component's --tenant flag)."""
        return replace(self, **changes)


def _load_client_cert(ctx: ssl.SSLContext, cfg: ClusterConfig) -> None:
    if cfg.client_cert_file and cfg.client_key_file:
        ctx.load_cert_chain(cfg.client_cert_file, cfg.client_key_file)
        return
    # The ssl module loads certificates only from files: inline data goes through a
    # private temporary directory that lives only for the call.
    with tempfile.TemporaryDirectory(prefix="arktos-cert-") as tmp:
        cert = cfg.client_cert_file or _write_private(Path(tmp, "tls.crt"), cfg.client_cert_data or b"")
        key = cfg.client_key_file or _write_private(Path(tmp, "tls.key"), cfg.client_key_data or b"")
        ctx.load_cert_chain(cert, key)


def _write_private(path: Path, data: bytes) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return str(path)


# -- loading --------------------------------------------------------------------


def _default_paths() -> list[Path]:
    env = os.environ.get("KUBECONFIG", "")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [Path("~/.kube/config").expanduser()]


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise KubeconfigError(f"cannot read kubeconfig {path}: {exc}") from None
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise KubeconfigError(f"kubeconfig {path} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise KubeconfigError(f"kubeconfig {path} is not a mapping")
    return doc


def _named(doc: Mapping[str, Any], section: str, field: str, base: Path | None) -> dict[str, tuple[dict, Path | None]]:
    out: dict[str, tuple[dict, Path | None]] = {}
    for entry in doc.get(section) or []:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            out[entry["name"]] = (entry.get(field) or {}, base)
    return out


def _merge(docs: Sequence[tuple[Mapping[str, Any], Path | None]]) -> tuple[dict, dict, dict, str]:
    """kubectl's merge of $KUBECONFIG files: the first file to define a name or current-context wins."""
    clusters: dict[str, tuple[dict, Path | None]] = {}
    users: dict[str, tuple[dict, Path | None]] = {}
    contexts: dict[str, tuple[dict, Path | None]] = {}
    current = ""
    for doc, base in docs:
        for target, section, field in ((clusters, "clusters", "cluster"), (users, "users", "user"),
                                       (contexts, "contexts", "context")):
            for name, value in _named(doc, section, field, base).items():
                target.setdefault(name, value)
        current = current or str(doc.get("current-context") or "")
    return clusters, users, contexts, current


def _path(value: Any, base: Path | None) -> str | None:
    if not value:
        return None
    p = Path(str(value)).expanduser()
    if not p.is_absolute() and base is not None:
        p = base / p
    return str(p)


def _b64(value: Any, what: str) -> bytes | None:
    if not value:
        return None
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise KubeconfigError(f"{what} is not valid base64") from None


def load_kubeconfig(
    source: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    context: str | None = None,
) -> ClusterConfig:
    """Load one context of a kubeconfig.

    `source` is a path, an already parsed kubeconfig dict, or None for
    `$KUBECONFIG` (its files merged as kubectl does) or `~/.kube/config`.
    `context` defaults to the file's `current-context`.
    """
    label: str
    if isinstance(source, Mapping):
        docs: list[tuple[Mapping[str, Any], Path | None]] = [(source, None)]
        label = "<dict>"
    else:
        paths = [Path(source).expanduser()] if source is not None else _default_paths()
        docs = [(_read(p), p.resolve().parent) for p in paths if source is not None or p.exists()]
        if not docs:
            raise KubeconfigError(f"no kubeconfig found (looked at {', '.join(map(str, paths))})")
        label = ",".join(map(str, paths))
    clusters, users, contexts, current = _merge(docs)
    name = context or current
    if not name:
        if len(contexts) == 1:
            name = next(iter(contexts))
        else:
            raise KubeconfigError(f"{label}: no current-context and no context named")
    if name not in contexts:
        raise KubeconfigError(f"{label}: context {name!r} not found")
    ctx, _ = contexts[name]
    cluster_name = ctx.get("cluster") or ""
    if cluster_name not in clusters:
        raise KubeconfigError(f"{label}: context {name!r} names cluster {cluster_name!r}, which is not defined")
    cluster, cbase = clusters[cluster_name]
    user_name = ctx.get("user") or ""
    user, ubase = users.get(user_name, ({}, None))
    if user_name and user_name not in users:
        raise KubeconfigError(f"{label}: context {name!r} names user {user_name!r}, which is not defined")
    server = str(cluster.get("server") or "")
    if not server.startswith(("http://", "https://")):
        raise KubeconfigError(f"{label}: cluster {cluster_name!r} has no http(s) server URL ({server!r})")
    return ClusterConfig(
        server=server.rstrip("/"),
        ca_file=_path(cluster.get("certificate-authority"), cbase),
        ca_data=_b64(cluster.get("certificate-authority-data"), "certificate-authority-data"),
        client_cert_file=_path(user.get("client-certificate"), ubase),
        client_cert_data=_b64(user.get("client-certificate-data"), "client-certificate-data"),
        client_key_file=_path(user.get("client-key"), ubase),
        client_key_data=_b64(user.get("client-key-data"), "client-key-data"),
        token=str(user["token"]) if user.get("token") else None,
        token_file=_path(user.get("tokenFile"), ubase),
        tenant=str(ctx["tenant"]) if ctx.get("tenant") else None,
        namespace=str(ctx["namespace"]) if ctx.get("namespace") else None,
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify", False)),
        tls_server_name=str(cluster["tls-server-name"]) if cluster.get("tls-server-name") else None,
        context=name,
        source=label,
    )


def load_many(paths: str | Sequence[str | os.PathLike[str]], context: str | None = None) -> list[ClusterConfig]:
    """Load a comma-separated list (or a sequence) of kubeconfig paths, one config each, in order."""
    items = [p.strip() for p in paths.split(",")] if isinstance(paths, str) else [str(p) for p in paths]
    items = [p for p in items if p]
    if not items:
        raise KubeconfigError("no kubeconfig paths given")
    return [load_kubeconfig(p, context) for p in items]
