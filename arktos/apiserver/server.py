"""The API server process: HTTP routing, the request pipeline, start and stop.

One catch-all route keeps routing in our hands: Arktos's tenant paths and the
upstream short paths share a shape that a route table would express poorly.
The pipeline for a resource request is parse -> authenticate -> impersonate
(impersonation.py) -> resolve tenant -> authorize -> generic store, with every
failure rendered as a Status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
import socket
import ssl
import time
from dataclasses import dataclass, field

from aiohttp import web

from arktos import __version__
from arktos.api import errors
from arktos.api.discovery import api_group, api_group_list, api_resource_list, api_versions
from arktos.api.errors import APIError
from arktos.api.openapi import v2_body, v3_index, v3_path_body
from arktos.api.policy import system_policy
from arktos.api.registry import Registry, ResourceInfo
from arktos.api.resources import builtin_registry
from arktos.api.tenancy import ALL_TENANTS, SYSTEM_TENANT, may_access
from arktos.apiserver import metrics
from arktos.apiserver.admission import default_admission
from arktos.apiserver.auth import (
    AlwaysAllow,
    Attributes,
    Authenticator,
    Authorizer,
    InsecureAuthenticator,
    UserInfo,
)
from arktos.apiserver.authn import (
    RequestHeaderAuthenticator,
    ServiceAccountAuthenticator,
    TokenFileAuthenticator,
    UnionAuthenticator,
    X509Authenticator,
    watch_cache_lookup,
)
from arktos.apiserver.authz_union import UnionAuthorizer
from arktos.apiserver.cache import CacheManager
from arktos.apiserver.crd import CRDAdmission, CRDRegistrar
from arktos.apiserver.handlers import MAX_BODY, ResourceHandler, json_response
from arktos.apiserver.impersonation import impersonate, requested
from arktos.apiserver.ipalloc import ServiceAllocator
from arktos.apiserver.master import MasterEndpoints, default_advertise_address
from arktos.apiserver.nodeauth import NodeAuthorizer
from arktos.apiserver.podstreams import DEFAULT_ADDRESS_TYPES, KubeletClientConfig, PodStreams
from arktos.apiserver.quota import quota_admission
from arktos.apiserver.rbac import RBACAuthorizer
from arktos.apiserver.requestinfo import parse
from arktos.apiserver.reviews import Reviews
from arktos.apiserver.store import Admission, Ctx, GenericStore
from arktos.apiserver.tlsclientauth import request_client_certificates
from arktos.storage.etcd import Compacted, EtcdStore, StorageError, ValueTooLarge
from arktos.storage.etcd import NotFound as StorageNotFound

log = logging.getLogger("arktos.apiserver")

KUBE_MINOR = "30"
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public")


def storage_status(exc: StorageError) -> APIError:
    """The one place storage failures become API errors."""
    if isinstance(exc, ValueTooLarge):
        return errors.too_large_object(str(exc))
    if isinstance(exc, Compacted):
        return errors.gone("the requested resourceVersion is older than the server's history; list again")
    if isinstance(exc, StorageNotFound):
        return APIError(404, "NotFound", "the object was deleted while the request was served")
    return errors.unavailable(f"the storage backend is unavailable: {exc}")


def version_info() -> dict[str, str]:
    return {
        "major": "1",
        "minor": KUBE_MINOR,
        "gitVersion": f"v1.{KUBE_MINOR}.0+arktos.{__version__}",
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": f"python{platform.python_version()}",
        "compiler": platform.python_implementation().lower(),
        "platform": f"{platform.system().lower()}/{platform.machine().replace('x86_64', 'amd64')}",
    }


@dataclass
class ServerConfig:
    etcd_servers: list[str]
    etcd_cafile: str | None = None
    etcd_certfile: str | None = None
    etcd_keyfile: str | None = None
    bind_address: str = "0.0.0.0"  # or several, comma-separated (`arktos up`: loopback and the pod bridges)
    secure_port: int = 6443
    # Where pods reach this server: the `kubernetes` Service's endpoint (kube-apiserver's --advertise-address);
    # by default the first bind address, or the default route's address for a wildcard.
    advertise_address: str | None = None
    insecure_port: int = 0
    insecure_bind_address: str = "127.0.0.1"
    tls_cert_file: str | None = None
    tls_private_key_file: str | None = None
    client_ca_file: str | None = None
    compaction_interval: float = 300.0
    requestheader_client_ca_file: str | None = None
    requestheader_allowed_names: list[str] = field(default_factory=list)
    token_auth_file: str | None = None
    service_account_key_files: list[str] = field(default_factory=list)
    service_account_issuer: str = "https://kubernetes.default.svc"
    # Signs bound tokens (serviceaccounts/{name}/token); without it that subresource answers 404.
    service_account_signing_key_file: str | None = None
    anonymous_auth: bool = False
    authorization_modes: list[str] = field(default_factory=lambda: ["Node", "RBAC"])
    service_cluster_ip_range: str = "10.0.0.0/24"
    service_node_port_range: tuple[int, int] = (30000, 32767)
    # How pods/log and pods/exec reach node agents (kube-apiserver's --kubelet-* flags); without a client
    # certificate only development-mode agents on 127.0.0.1 are reachable, over plain HTTP.
    kubelet_client_certificate: str | None = None
    kubelet_client_key: str | None = None
    kubelet_certificate_authority: str | None = None
    kubelet_preferred_address_types: tuple[str, ...] = DEFAULT_ADDRESS_TYPES
    authenticator: Authenticator | None = None
    authorizer: Authorizer | None = None
    admission: list[Admission] = field(default_factory=list)


IP_FREEBIND = 15  # linux/in.h


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port.  IP_FREEBIND lets it bind an address the host does not have yet (a pod
    bridge's gateway, made when the first pod starts), as the cluster DNS does."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if host not in ("0.0.0.0", "::", "127.0.0.1", "::1"):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class APIServer:
    def __init__(self, config: ServerConfig, registry: Registry | None = None) -> None:
        self.config = config
        self.registry = registry or builtin_registry()
        self.etcd = EtcdStore(config.etcd_servers, ca_file=config.etcd_cafile, cert_file=config.etcd_certfile,
                              key_file=config.etcd_keyfile)
        self.caches = CacheManager(self.etcd)
        self.services = ServiceAllocator(self.etcd, self.caches, config.service_cluster_ip_range,
                                         config.service_node_port_range)
        self.admission: list[Admission] = config.admission or [
            *default_admission(self.caches, self.etcd, bool(config.service_account_signing_key_file)),
            CRDAdmission(self.registry), self.services,
            *quota_admission(self.caches, self.etcd)]
        self.authenticator: Authenticator = config.authenticator or self._authenticators()
        self.authorizer: Authorizer = config.authorizer or self._authorizers()
        self._stores: dict[int, GenericStore] = {}
        self.handler = ResourceHandler(self.store)
        self.pod_streams = PodStreams(KubeletClientConfig(
            config.kubelet_client_certificate, config.kubelet_client_key, config.kubelet_certificate_authority,
            config.kubelet_preferred_address_types), self._node)
        self.handler.pod_streams = self.pod_streams
        self.handler.reviews = Reviews(self.registry, self.authorizer, self.authenticator,
                                       [config.service_account_issuer])
        if config.service_account_signing_key_file:
            from arktos.apiserver.tokenrequest import TokenIssuer

            self.handler.tokens = TokenIssuer(config.service_account_signing_key_file, config.service_account_issuer,
                                              [config.service_account_issuer])
        self._runners: list[web.AppRunner] = []
        self._tasks: list[asyncio.Task] = []
        self.ready = False
        self.crds: CRDRegistrar | None = None
        self.bind_addresses = [a.strip() for a in config.bind_address.split(",") if a.strip()] or ["0.0.0.0"]
        self.master: MasterEndpoints | None = None

    def _authenticators(self) -> Authenticator:
        """kube-apiserver's order: front proxy, client certificates, static tokens, service accounts."""
        cfg = self.config
        parts: list[Authenticator] = []
        if cfg.requestheader_client_ca_file:
            parts.append(RequestHeaderAuthenticator(cfg.requestheader_client_ca_file, cfg.requestheader_allowed_names))
        if cfg.client_ca_file:
            parts.append(X509Authenticator(cfg.client_ca_file))
        if cfg.token_auth_file:
            parts.append(TokenFileAuthenticator(cfg.token_auth_file))
        if cfg.service_account_key_files:
            parts.append(ServiceAccountAuthenticator(cfg.service_account_key_files, cfg.service_account_issuer,
                                                     watch_cache_lookup(self.caches)))
        return UnionAuthenticator(parts, anonymous=cfg.anonymous_auth)

    def _authorizers(self) -> UnionAuthorizer:
        modes = {"Node": NodeAuthorizer, "RBAC": RBACAuthorizer}
        chosen: list[Authorizer] = []
        for mode in self.config.authorization_modes:
            if mode == "AlwaysAllow":
                chosen.append(AlwaysAllow())
            elif mode in modes:
                chosen.append(modes[mode](self.caches))
            else:
                raise ValueError(f"unknown authorization mode {mode!r}: use Node, RBAC or AlwaysAllow")
        return UnionAuthorizer(chosen)

    def store(self, info: ResourceInfo) -> GenericStore:
        s = self._stores.get(id(info))
        if s is None:
            s = self._stores[id(info)] = GenericStore(info, self.etcd, self.caches, self.admission)
        return s

    # -- lifecycle -----------------------------------------------------------

    def app(self, authenticator: Authenticator) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._errors])
        app["authenticator"] = authenticator
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

    async def start(self) -> None:
        await self.etcd.start()
        for attempt in range(100):
            try:
                await self.etcd.ping()
                break
            except StorageError as exc:
                if attempt == 99:
                    raise
                log.warning("waiting for etcd at %s: %s", ",".join(self.config.etcd_servers), exc)
                await asyncio.sleep(0.2)
        await self.caches.start(self.registry)
        crd_info = self.registry.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        if crd_info is not None:
            self.crds = CRDRegistrar(self.registry, self.caches, self.etcd, crd_info)
            await self.crds.start()
        await self.services.start()
        await self.pod_streams.start()
        if isinstance(self.authorizer, UnionAuthorizer):
            self.authorizer.start()
        await self._bootstrap()
        cfg = self.config
        if cfg.insecure_port:
            runner = web.AppRunner(self.app(InsecureAuthenticator()), access_log=None, handle_signals=False,
                                    handler_cancellation=True, shutdown_timeout=5.0)
            await runner.setup()
            await web.TCPSite(runner, cfg.insecure_bind_address, cfg.insecure_port, backlog=1024).start()
            self._runners.append(runner)
            log.warning("serving plain HTTP without authentication on %s:%d (development mode)",
                        cfg.insecure_bind_address, cfg.insecure_port)
        if cfg.secure_port and cfg.tls_cert_file:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(cfg.tls_cert_file, cfg.tls_private_key_file)
            # Client certificates are optional (tokens work too); both the client CA and the
            # front proxy's CA may sign them, and each authenticator checks its own CA again.
            # Expiry is checked by the X.509 authenticator, so an expired certificate gets a clear
            # 401 instead of a failed handshake (OpenSSL's X509_V_FLAG_NO_CHECK_TIME).
            ctx.verify_flags |= 0x200000
            for ca in (cfg.client_ca_file, cfg.requestheader_client_ca_file):
                if ca:
                    ctx.load_verify_locations(ca)
                    ctx.verify_mode = ssl.CERT_OPTIONAL
            # As kube-apiserver: collect client certificates in TLS, judge them in the
            # authenticators, so a stranger's certificate gets a 401 rather than a TLS alert.
            if ctx.verify_mode == ssl.CERT_OPTIONAL and not request_client_certificates(ctx):
                log.info("client certificates from unknown CAs will be refused in the TLS handshake")
            runner = web.AppRunner(self.app(self.authenticator), access_log=None, handle_signals=False,
                                    handler_cancellation=True, shutdown_timeout=5.0)
            await runner.setup()
            for host in self.bind_addresses:
                await web.SockSite(runner, _listen(host, cfg.secure_port), ssl_context=ctx, backlog=1024).start()
            self._runners.append(runner)
            log.info("serving HTTPS on %s port %d", ", ".join(self.bind_addresses), cfg.secure_port)
            from arktos.apiserver.auth import INSECURE_USER

            self.master = MasterEndpoints(lambda plural: self.store(self.registry.get("", "v1", plural)),
                                          Ctx(INSECURE_USER, SYSTEM_TENANT, "default"), self.services.reserved_ip,
                                          cfg.advertise_address or default_advertise_address(self.bind_addresses),
                                          cfg.secure_port)
            self.master.start()
        if cfg.compaction_interval > 0:
            self._tasks.append(asyncio.create_task(self._compact_loop(), name="compactor"))
        self.ready = True

    async def _bootstrap(self) -> None:
        """Make sure the system tenant and its standard namespaces exist, as kube-apiserver does.

        Several API servers may race here; AlreadyExists is the expected outcome for all but one.
        """
        from arktos.apiserver.auth import INSECURE_USER

        wanted = [{"apiVersion": "v1", "kind": "Tenant", "metadata": {"name": SYSTEM_TENANT}}] + [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "tenant": SYSTEM_TENANT}}
            for ns in SYSTEM_NAMESPACES] + system_policy()
        for obj in wanted:
            info = self.registry.by_api_version(obj["apiVersion"], obj["kind"])
            assert info is not None, obj["kind"]
            tenant = obj["metadata"].get("tenant", "") if info.scope.tenanted else ""
            ns = obj["metadata"].get("namespace", "")
            try:
                await self.store(info).create(Ctx(INSECURE_USER, tenant, ns), obj)
                log.info("created %s %s", info.singular, obj["metadata"]["name"])
            except APIError as exc:
                if exc.code != 409:
                    raise

    async def stop(self) -> None:
        """Stop serving: open watches end first, so in-flight requests can drain quickly."""
        self.ready = False
        for t in self._tasks:
            t.cancel()
        if self.crds:
            await self.crds.stop()
        if self.master:
            await self.master.stop()
        await self.services.stop()
        for cache in self.caches.caches.values():
            cache.close_watchers()  # open watches end first, so the runners can drain
        for runner in self._runners:
            await runner.cleanup()
        await self.pod_streams.stop()
        await self.caches.stop()
        await self.etcd.close()

    async def _compact_loop(self) -> None:
        """Compact etcd history older than one interval, as kube-apiserver does."""
        previous = 0
        while True:
            await asyncio.sleep(self.config.compaction_interval)
            try:
                if previous:
                    await self.etcd.compact(previous)
                    log.info("compacted etcd history up to revision %d", previous)
                previous = await self.etcd.current_revision()
            except Exception as exc:  # a failed compaction must not stop the loop
                log.warning("etcd compaction failed: %s", exc)

    async def _node(self, name: str) -> dict | None:
        """A Node by name, for pods/log and pods/exec (None if there is none)."""
        from arktos.apiserver.auth import INSECURE_USER

        info = self.registry.get("", "v1", "nodes")
        if info is None:
            return None
        try:
            return await self.store(info).get(Ctx(INSECURE_USER), name)
        except APIError as exc:
            if exc.code == 404:
                return None
            raise

    # -- pipeline --------------------------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except APIError as exc:
            return json_response(exc.status(), exc.code, exc.headers or None)
        except StorageError as exc:
            err = storage_status(exc)
            if err.code >= 500:
                log.warning("storage error serving %s %s: %s", request.method, request.path, exc)
            return json_response(err.status(), err.code)
        except web.HTTPException as exc:
            if exc.status == 413:
                err = errors.too_large(MAX_BODY)
            else:
                err = APIError(exc.status, exc.reason.replace(" ", ""), exc.text or exc.reason)
            return json_response(err.status(), err.code)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("internal error serving %s %s", request.method, request.path_qs)
            err = errors.internal("an internal error occurred; see the API server log")
            return json_response(err.status(), 500)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith("/api/") or path.startswith("/apis/") or path in ("/api", "/apis"):
            return await self._api(request, path)
        if path in ("/healthz", "/livez", "/readyz") or path.startswith(("/healthz/", "/livez/", "/readyz/")):
            return await self._health(request, path)
        user = await self._authenticate(request)
        await self._authorize_path(request, user, path)
        if path in ("/version", "/version/"):
            return json_response(version_info())
        if path == "/metrics":
            return web.Response(body=metrics.exposition(), content_type="text/plain", charset="utf-8")
        served = self.registry.for_tenant(user.tenant)
        if path in ("/openapi/v3", "/openapi/v3/"):
            return json_response(v3_index(served))
        if path.startswith("/openapi/v3/"):
            found = v3_path_body(served, path[len("/openapi/v3/"):])
            if found is None:
                raise APIError(404, "NotFound", f"no OpenAPI document at {path}")
            body, digest = found
            immutable = request.query.get("hash") == digest
            return web.Response(body=body, content_type="application/json", headers={
                "Cache-Control": "public, immutable" if immutable else "no-cache, private", "Etag": f'"{digest}"'})
        if path == "/openapi/v2":
            body, content_type, etag = v2_body(served, request.headers.get("Accept", ""))
            return web.Response(body=body, headers={"Content-Type": content_type, "Etag": f'"{etag}"'})
        raise APIError(404, "NotFound", f"the server could not find the requested resource ({path})")

    async def _health(self, request: web.Request, path: str) -> web.StreamResponse:
        checks: list[tuple[str, bool]] = [("ping", True)]
        if not path.startswith("/livez"):
            try:
                await self.etcd.ping(timeout=2.0)
                checks.append(("etcd", True))
            except StorageError:
                checks.append(("etcd", False))
        if path.startswith("/readyz"):
            checks.append(("watch-cache", self.caches.ready.is_set() and self.ready))
        ok = all(c for _, c in checks)
        if "verbose" in request.query:
            text = "".join(f"[{'+' if c else '-'}]{n} {'ok' if c else 'failed'}\n" for n, c in checks)
            text += f"{path.strip('/').split('/')[0]} check {'passed' if ok else 'failed'}\n"
        else:
            text = "ok" if ok else "".join(f"[-]{n} failed\n" for n, c in checks if not c)
        return web.Response(text=text, status=200 if ok else 500, content_type="text/plain")

    async def _authorize_path(self, request: web.Request, user: UserInfo, path: str) -> None:
        """Non-resource URLs (discovery, OpenAPI, /version, /metrics) go through the authorizer too."""
        attrs = Attributes(user, request.method.lower(), "", "", "", "", "", "", "", False, path)
        allowed, reason = await self.authorizer.authorize(attrs)
        if not allowed:
            raise errors.forbidden_error(
                f'forbidden: User "{user.name}" cannot {request.method.lower()} path "{path}"'
                + (f": {reason}" if reason else ""))

    async def _authenticate(self, request: web.Request) -> UserInfo:
        user = await request.app["authenticator"].authenticate(request)
        if user is None:
            raise APIError(401, "Unauthorized", "Unauthorized")
        if requested(request.headers):
            # Impersonation right after authentication, as Kubernetes: everything after acts as the new user.
            user = await impersonate(user, request.headers, self.authorizer)
        return user

    async def _api(self, request: web.Request, path: str) -> web.StreamResponse:
        started = time.perf_counter()
        user = await self._authenticate(request)
        parts = [p for p in path.split("/") if p]
        # Discovery: /api, /apis, /api/v1, /apis/{g}, /apis/{g}/{v}
        served = self.registry.for_tenant(user.tenant)
        if len(parts) <= 2 or (len(parts) == 3 and parts[0] == "apis"):
            await self._authorize_path(request, user, path)
        if parts == ["api"]:
            return json_response(api_versions(served))
        if parts == ["apis"]:
            return json_response(api_group_list(served))
        if len(parts) == 2 and parts[0] == "api":
            if parts[1] not in served.groups().get("", []):
                raise APIError(404, "NotFound", f"the server could not find the requested resource ({path})")
            return json_response(api_resource_list(served, "", parts[1]))
        if len(parts) == 2 and parts[0] == "apis":
            group = api_group(served, parts[1])
            if group is None:
                raise APIError(404, "NotFound", f"the server could not find the requested resource ({path})")
            return json_response(group)
        if len(parts) == 3 and parts[0] == "apis":
            if parts[2] not in served.groups().get(parts[1], []):
                raise APIError(404, "NotFound", f"the server could not find the requested resource ({path})")
            return json_response(api_resource_list(served, parts[1], parts[2]))

        ri = parse(request.method, path, request.query.get("watch") in ("true", "1"))
        hint = ri.tenant or user.tenant
        info = self.registry.get(ri.group, ri.version, ri.resource, "" if hint == ALL_TENANTS else hint)
        if info is None:
            raise APIError(404, "NotFound", f"the server could not find the requested resource ({path})")
        if info.scope.namespaced:
            if not ri.namespace and ri.verb not in ("list", "watch", "deletecollection"):
                raise APIError(404, "NotFound", f"the server could not find the requested resource ({path})")
        elif ri.namespace:
            raise APIError(404, "NotFound", f"the server could not find the requested resource ({path})")
        if info.scope.tenanted:
            tenant = ri.tenant or user.tenant
            if not tenant:
                raise errors.forbidden_error(f"user {user.name!r} belongs to no tenant; use a tenant path")
        else:
            if ri.path_tenant:
                raise APIError(404, "NotFound", f"{info.plural} are not in a tenant ({path})")
            tenant = ""
        if info.scope.tenanted and not may_access(user.tenant, tenant if tenant != ALL_TENANTS else ""):
            # Reveal nothing about another tenant's objects: the same answer whether they exist or not.
            raise errors.forbidden_error(
                f'{info.plural} is forbidden: user "{user.name}" cannot access tenant "{tenant}"',
                info.plural, ri.name, info.group)
        if tenant == ALL_TENANTS and ri.verb not in ("list", "watch"):
            # Only after the isolation check: a tenant user learns nothing from a 400 either.
            raise errors.bad_request(f"tenant {ALL_TENANTS!r} is reserved for listing across tenants")
        attrs = Attributes(user, ri.verb, tenant, ri.namespace, info.group, info.version, info.plural,
                           ri.subresource, ri.name, True, path)
        allowed, reason = await self.authorizer.authorize(attrs)
        if not allowed:
            what = f"{info.plural}/{ri.subresource}" if ri.subresource else info.plural
            raise errors.forbidden_error(
                f'{what}{"." + info.group if info.group else ""} is forbidden: User "{user.name}" cannot '
                f'{ri.verb} resource "{what}" in API group "{info.group}"'
                + (f' in the namespace "{ri.namespace}"' if ri.namespace else "")
                + (f": {reason}" if reason else ""), info.plural, ri.name, info.group)
        if allowed and ri.subresource in ("exec", "attach", "portforward") and ri.verb == "get":
            # A WebSocket upgrade arrives as GET, yet it runs a command: ask for `create` as well, as
            # Kubernetes 1.35 does (AuthorizePodWebsocketUpgradeCreatePermission), so `get` alone is read-only.
            allowed, reason = await self.authorizer.authorize(Attributes(
                user, "create", tenant, ri.namespace, info.group, info.version, info.plural, ri.subresource,
                ri.name, True, path))
            if not allowed:
                what = f"{info.plural}/{ri.subresource}"
                raise errors.forbidden_error(
                    f'{what} is forbidden: User "{user.name}" cannot create resource "{what}" in API group '
                    f'"{info.group}"' + (f' in the namespace "{ri.namespace}"' if ri.namespace else "")
                    + (f": {reason}" if reason else ""), info.plural, ri.name, info.group)
        ctx = Ctx(user, tenant, ri.namespace)
        code = 500
        try:
            resp = await self.handler.handle(request, ri, info, ctx)
            code = resp.status
            return resp
        except APIError as exc:
            code = exc.code
            raise
        finally:
            labels = (ri.verb.upper() if ri.verb != "watch" else "WATCH", info.group, info.plural, ri.subresource)
            metrics.REQUESTS.labels(*labels, str(code)).inc()
            if ri.verb != "watch":
                metrics.LATENCY.labels(*labels).observe(time.perf_counter() - started)

