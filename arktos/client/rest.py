"""The REST client every component uses to talk to an API server.

One `Client` is one server as one user: a pooled, keep-alive HTTP session
for requests (bounded by `max_connections`) and a second, unbounded one for
watches, because each watch holds its own connection for minutes and must
never queue behind, or starve, ordinary requests.

Failures are `APIError`s built from the server's Status body, so callers
branch on `.code` / `.reason` exactly as the server set them; a server that
cannot be reached raises `TransportError`.  Requests are paced by a token
bucket and retried with backoff when that is safe: always when the server
never saw the request (connection refused, 429 Too Many Requests), and on
5xx or broken connections only for idempotent verbs.
"""

from __future__ import annotations

import asyncio
import platform
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any

import aiohttp
import orjson

from arktos import __version__
from arktos.api.errors import APIError
from arktos.api.registry import ResourceInfo
from arktos.api.tenancy import ALL_TENANTS
from arktos.client._backoff import Backoff
from arktos.client._paths import resource_path
from arktos.client._ratelimit import TokenBucket
from arktos.client._watch import TransportError, Watch, WatchEvent, status_error
from arktos.client.kubeconfig import ClusterConfig, load_kubeconfig

__all__ = ["ALL_TENANTS", "Client", "TransportError", "Watch", "WatchEvent"]

Obj = dict[str, Any]
JSON = "application/json"
DEFAULT_QPS = 200.0
DEFAULT_BURST = 400
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRY_STATUS = frozenset({500, 502, 503, 504})
PATCH_CONTENT_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}
REASONS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
    406: "NotAcceptable", 409: "Conflict", 410: "Expired", 413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
    503: "ServiceUnavailable", 504: "Timeout",
}
TOKEN_FILE_TTL = 60.0


def _error_from(status: int, body: bytes) -> APIError:
    try:
        doc = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and doc.get("kind") == "Status":
        return status_error(doc, status)
    text = body.decode(errors="replace").strip()[:500] if body else ""
    return APIError(status, REASONS.get(status, "Unknown"), text or f"the server responded with status {status}")


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, min(float(value), 60.0))
    except ValueError:
        return None


def _query(**params: Any) -> list[tuple[str, str]]:
    out = []
    for key, value in params.items():
        if value is None or value is False or value == "":
            continue
        out.append((key, "true" if value is True else str(value)))
    return out


def _meta(body: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = body.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


class Client:
    """An async client of one API server.

    `tenant=None` on a call means "the client's default tenant": the
    kubeconfig context's `tenant`, or, when that is unset too, a short path
    that the server resolves to the caller's own tenant.  `"all"` lists or
    watches across tenants (the system tenant only).  Writes of an object take
    its namespace and tenant from its metadata when not given.

    `max_connections` bounds the pooled request connections (0: no bound);
    watches have their own connections and are not counted.  `qps`/`burst`
    pace requests and watch starts (`qps=0`: no pacing); `retries` is the
    number of extra attempts where a retry is safe.
    """

    def __init__(
        self,
        config: ClusterConfig | str,
        *,
        component: str = "client",
        version: str = __version__,
        qps: float = DEFAULT_QPS,
        burst: int = DEFAULT_BURST,
        max_connections: int = 100,
        timeout: float = 30.0,
        retries: int = 4,
        user_agent: str | None = None,
    ) -> None:
        self.config = config if isinstance(config, ClusterConfig) else ClusterConfig.for_url(config)
        self.tenant = self.config.tenant
        self.user_agent = user_agent or (
            f"arktos-{component}/{version} (python/{platform.python_version()}; {sys.platform})")
        self.limiter = TokenBucket(qps, burst)
        self.timeout = timeout
        self.retries = retries
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._watch_session: aiohttp.ClientSession | None = None
        self._token: str | None = None
        self._token_read = 0.0
        self._closed = False

    @classmethod
    def from_kubeconfig(cls, source: Any = None, context: str | None = None, **kw: Any) -> Client:
        """A client for a kubeconfig's context (`source` as for `load_kubeconfig`)."""
        return cls(load_kubeconfig(source, context), **kw)

    def __repr__(self) -> str:
        return f"<Client {self.config.server}>"

    @property
    def server(self) -> str:
        return self.config.server

    # -- lifecycle ------------------------------------------------------------

    async def __aenter__(self) -> Client:
        self._sessions()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def _sessions(self) -> tuple[aiohttp.ClientSession, aiohttp.ClientSession]:
        """Both sessions, made on first use: aiohttp sessions belong to a running loop."""
        if self._closed:
            raise RuntimeError("the client is closed")
        if self._session is None or self._watch_session is None:
            ssl_ctx = self.config.ssl_context()
            ssl_arg: Any = ssl_ctx if ssl_ctx is not None else False
            headers = {"User-Agent": self.user_agent, "Accept": JSON}
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0, ssl=ssl_arg,
                                               keepalive_timeout=30.0),
                headers=headers, json_serialize=lambda o: orjson.dumps(o).decode(), raise_for_status=False,
                auto_decompress=True,
            )
            self._watch_session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ssl=ssl_arg, force_close=True),
                headers=headers, raise_for_status=False,
            )
        return self._session, self._watch_session

    async def close(self) -> None:
        self._closed = True
        for s in (self._session, self._watch_session):
            if s is not None:
                await s.close()
        self._session = self._watch_session = None

    def _auth_headers(self) -> dict[str, str]:
        now = time.monotonic()
        if self._token is None or (self.config.token_file and now - self._token_read > TOKEN_FILE_TTL):
            self._token = self.config.bearer_token() or ""
            self._token_read = now
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    # -- the request loop -----------------------------------------------------

    async def _send(self, method: str, path: str, *, params: Sequence[tuple[str, str]] = (),
                    data: bytes | None = None, content_type: str = JSON,
                    timeout: float | None = None) -> tuple[int, bytes]:
        session, _ = self._sessions()
        headers = self._auth_headers()
        if data is not None:
            headers["Content-Type"] = content_type
        idempotent = method in IDEMPOTENT
        backoff = Backoff(initial=0.1, cap=5.0)
        client_timeout = aiohttp.ClientTimeout(total=timeout or self.timeout)
        url = self.config.server + path
        attempt = 0
        while True:
            attempt += 1
            await self.limiter.acquire()
            try:
                async with session.request(method, url, params=list(params), data=data, headers=headers,
                                           timeout=client_timeout,
                                           server_hostname=self.config.tls_server_name) as resp:
                    body = await resp.read()
                    status = resp.status
                    retry_after = _retry_after(resp.headers.get("Retry-After"))
            except aiohttp.ClientSSLError as exc:
                # A certificate problem does not fix itself: fail at once.
                raise TransportError(f"{method} {url}: {exc}") from exc
            except aiohttp.ClientConnectorError as exc:
                # Never reached the server: any verb may be sent again.
                if attempt > self.retries:
                    raise TransportError(f"{method} {url}: {exc}") from exc
                await asyncio.sleep(backoff.next())
                continue
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                if not idempotent or attempt > self.retries:
                    raise TransportError(f"{method} {url}: {exc!r}") from exc
                await asyncio.sleep(backoff.next())
                continue
            if status < 400:
                return status, body
            retryable = status == 429 or (idempotent and status in RETRY_STATUS)
            if not retryable or attempt > self.retries:
                raise _error_from(status, body)
            await asyncio.sleep(retry_after if retry_after is not None else backoff.next())

    async def request(self, method: str, path: str, *, params: Sequence[tuple[str, str]] = (),
                      body: Any = None, content_type: str = JSON, timeout: float | None = None) -> Any:
        """Any API request by path (discovery, /version, ...); the decoded JSON answer."""
        data = body if isinstance(body, bytes) or body is None else orjson.dumps(body)
        _, raw = await self._send(method, path, params=params, data=data, content_type=content_type,
                                  timeout=timeout)
        if not raw:
            return {}
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw.decode(errors="replace")

    # -- paths ----------------------------------------------------------------

    def path(self, info: ResourceInfo, *, tenant: str | None = None, namespace: str | None = None,
             name: str | None = None, subresource: str | None = None) -> str:
        """The URL path a call would use (tenant defaulted as described on the class)."""
        return resource_path(info, tenant=tenant or self.tenant, namespace=namespace, name=name,
                             subresource=subresource)

    def _object_path(self, info: ResourceInfo, body: Mapping[str, Any], tenant: str | None,
                     namespace: str | None, name: str | None, subresource: str | None = None,
                     collection: bool = False) -> str:
        meta = _meta(body)
        name = name or meta.get("name")
        if not collection and not name:
            raise ValueError(f"the {info.kind} has no metadata.name")
        return self.path(info, tenant=tenant or meta.get("tenant") or None,
                         namespace=namespace or meta.get("namespace") or None,
                         name=None if collection else name, subresource=subresource)

    # -- verbs ----------------------------------------------------------------

    async def get(self, info: ResourceInfo, name: str, *, tenant: str | None = None,
                  namespace: str | None = None, subresource: str | None = None,
                  resource_version: str | None = None) -> Obj:
        path = self.path(info, tenant=tenant, namespace=namespace, name=name, subresource=subresource)
        return await self.request("GET", path, params=_query(resourceVersion=resource_version))

    async def list(self, info: ResourceInfo, *, tenant: str | None = None, namespace: str | None = None,
                   label_selector: str | None = None, field_selector: str | None = None,
                   limit: int | None = None, continue_: str | None = None, resource_version: str | None = None,
                   all_pages: bool = False) -> Obj:
        """One List; with `all_pages`, every page fetched (`limit` at a time) and joined.

        The joined list has the first page's resourceVersion: all pages are
        served from that one snapshot, so it is the revision to watch from.
        """
        path = self.path(info, tenant=tenant, namespace=namespace)
        result = await self._list_page(path, label_selector, field_selector, limit, continue_, resource_version)
        while all_pages and (token := result["metadata"].pop("continue", None)):
            page = await self._list_page(path, label_selector, field_selector, limit, token, None)
            result["items"].extend(page["items"])
            if page["metadata"].get("continue"):
                result["metadata"]["continue"] = page["metadata"]["continue"]
        return result

    async def _list_page(self, path: str, label_selector: str | None, field_selector: str | None,
                         limit: int | None, token: str | None, resource_version: str | None) -> Obj:
        params = _query(labelSelector=label_selector, fieldSelector=field_selector, limit=limit,
                        resourceVersion=None if token else resource_version)
        if token:
            params.append(("continue", token))
        page = await self.request("GET", path, params=params)
        if page.get("items") is None:
            page["items"] = []
        page.setdefault("metadata", {})
        return page

    async def list_pages(self, info: ResourceInfo, *, tenant: str | None = None, namespace: str | None = None,
                         label_selector: str | None = None, field_selector: str | None = None,
                         limit: int | None = None, continue_: str | None = None,
                         resource_version: str | None = None) -> AsyncIterator[Obj]:
        """Each page of a paged list in turn, following `continue` tokens to the end."""
        path = self.path(info, tenant=tenant, namespace=namespace)
        token = continue_
        while True:
            page = await self._list_page(path, label_selector, field_selector, limit, token, resource_version)
            token = page["metadata"].get("continue")
            yield page
            if not token:
                return

    async def create(self, info: ResourceInfo, body: Obj, *, tenant: str | None = None,
                     namespace: str | None = None, field_manager: str | None = None,
                     dry_run: bool = False) -> Obj:
        path = self._object_path(info, body, tenant, namespace, None, collection=True)
        return await self.request("POST", path, body=body,
                                  params=_query(fieldManager=field_manager, dryRun="All" if dry_run else None))

    async def update(self, info: ResourceInfo, body: Obj, *, tenant: str | None = None,
                     namespace: str | None = None, name: str | None = None, subresource: str | None = None,
                     field_manager: str | None = None, dry_run: bool = False) -> Obj:
        """PUT the whole object; its metadata.resourceVersion makes it a compare-and-swap (409 on a race)."""
        path = self._object_path(info, body, tenant, namespace, name, subresource)
        return await self.request("PUT", path, body=body,
                                  params=_query(fieldManager=field_manager, dryRun="All" if dry_run else None))

    async def update_status(self, info: ResourceInfo, body: Obj, *, tenant: str | None = None,
                            namespace: str | None = None, name: str | None = None,
                            field_manager: str | None = None) -> Obj:
        return await self.update(info, body, tenant=tenant, namespace=namespace, name=name, subresource="status",
                                 field_manager=field_manager)

    async def patch(self, info: ResourceInfo, name: str, body: Obj | Sequence[Any], *, tenant: str | None = None,
                    namespace: str | None = None, patch_type: str = "merge", subresource: str | None = None,
                    field_manager: str | None = None, force: bool = False, dry_run: bool = False) -> Obj:
        """PATCH with `patch_type` merge, strategic, json (a list of operations) or apply.

        Server-side apply needs a field manager; it defaults to this client's
        product name (`arktos-<component>`), the name the server would record
        for its other writes.
        """
        content_type = PATCH_CONTENT_TYPES.get(patch_type)
        if content_type is None:
            raise ValueError(f"unknown patch type {patch_type!r}: want one of {', '.join(PATCH_CONTENT_TYPES)}")
        if patch_type == "apply" and not field_manager:
            field_manager = self.user_agent.split("/", 1)[0]
        path = self.path(info, tenant=tenant, namespace=namespace, name=name, subresource=subresource)
        params = _query(fieldManager=field_manager, force=force if patch_type == "apply" else None,
                        dryRun="All" if dry_run else None)
        return await self.request("PATCH", path, body=body, content_type=content_type, params=params)

    async def delete(self, info: ResourceInfo, name: str, *, tenant: str | None = None,
                     namespace: str | None = None, grace_period_seconds: int | None = None,
                     propagation_policy: str | None = None, preconditions: Mapping[str, str] | None = None,
                     dry_run: bool = False) -> Obj:
        """DELETE; the answer is the object (still there, marked, when finalizers or a grace period hold it)."""
        path = self.path(info, tenant=tenant, namespace=namespace, name=name)
        return await self.request("DELETE", path, body=_delete_options(grace_period_seconds, propagation_policy,
                                                                       preconditions, dry_run))

    async def delete_collection(self, info: ResourceInfo, *, tenant: str | None = None,
                                namespace: str | None = None, label_selector: str | None = None,
                                field_selector: str | None = None, grace_period_seconds: int | None = None,
                                propagation_policy: str | None = None, dry_run: bool = False) -> Obj:
        path = self.path(info, tenant=tenant, namespace=namespace)
        return await self.request("DELETE", path, params=_query(labelSelector=label_selector,
                                                                fieldSelector=field_selector),
                                  body=_delete_options(grace_period_seconds, propagation_policy, None, dry_run))

    async def create_subresource(self, info: ResourceInfo, name: str, subresource: str, body: Obj, *,
                                 tenant: str | None = None, namespace: str | None = None) -> Obj:
        """POST to a subresource: pods/{name}/binding (the scheduler), pods/{name}/action (Arktos VM actions)."""
        path = self.path(info, tenant=tenant, namespace=namespace, name=name, subresource=subresource)
        return await self.request("POST", path, body=body)

    def watch(self, info: ResourceInfo, *, tenant: str | None = None, namespace: str | None = None,
              name: str | None = None, label_selector: str | None = None, field_selector: str | None = None,
              resource_version: str | None = None, allow_bookmarks: bool = False,
              timeout_seconds: int | None = None) -> Watch:
        """A watch stream of `WatchEvent`s; an `ERROR` event raises its `APIError` (410 when too old).

        `resource_version` None starts with the current state as ADDED events;
        otherwise the stream replays every change after that version.  The
        server ends the stream after `timeout_seconds`; the client gives up on
        a silent connection 30 s after that.
        """
        path = self.path(info, tenant=tenant, namespace=namespace)
        if name:
            field_selector = f"metadata.name={name}" + (f",{field_selector}" if field_selector else "")
        params = _query(watch=True, labelSelector=label_selector, fieldSelector=field_selector,
                        resourceVersion=resource_version, allowWatchBookmarks=allow_bookmarks,
                        timeoutSeconds=timeout_seconds)
        read_timeout = timeout_seconds + 30.0 if timeout_seconds else None

        async def open_stream() -> aiohttp.ClientResponse:
            _, session = self._sessions()
            await self.limiter.acquire()
            url = self.config.server + path
            try:
                resp = await session.get(url, params=params, headers=self._auth_headers(),
                                         timeout=aiohttp.ClientTimeout(total=None, connect=self.timeout,
                                                                       sock_read=read_timeout),
                                         server_hostname=self.config.tls_server_name)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise TransportError(f"GET {url} (watch): {exc!r}") from exc
            if resp.status != 200:
                try:
                    body = await resp.read()
                except (aiohttp.ClientError, OSError):
                    body = b""
                resp.release()
                raise _error_from(resp.status, body)
            return resp

        return Watch(open_stream)


def _delete_options(grace: int | None, policy: str | None, preconditions: Mapping[str, str] | None,
                    dry_run: bool) -> Obj | None:
    options: Obj = {}
    if grace is not None:
        options["gracePeriodSeconds"] = grace
    if policy:
        options["propagationPolicy"] = policy
    if preconditions:
        options["preconditions"] = dict(preconditions)
    if dry_run:
        options["dryRun"] = ["All"]
    if not options:
        return None
    return {"kind": "DeleteOptions", "apiVersion": "v1", **options}

