"""`pods/log`, `exec`, `attach` and `portforward`: the API server's side of `kubectl logs`, `exec`,
`attach` (and `run -i`) and `port-forward`.

The pod is read through the same tenant-scoped store as any other request (so a tenant only
ever finds its own pods), its node through the node store, and the request goes on to that
node's agent (`arktos.agent.server`) at the address and port the Node publishes, as
kube-apiserver proxies to the kubelet:

* over HTTPS with the kubelet client certificate (``--kubelet-client-certificate`` /
  ``--kubelet-client-key``), verifying the agent's serving certificate against
  ``--kubelet-certificate-authority``;
* without a kubelet client certificate (the development mode) over plain HTTP, and then only
  to agents on a loopback address, which is where development-mode agents listen.

Logs stream through as they come (chunked), and a client that goes away cancels the handler,
which closes the upstream request, which ends the agent's read of the file.  For exec the
API server answers the client's WebSocket itself, connects one to the agent, and relays
(`arktos.client.remotecommand.relay`); kubectl 1.30+ offers only ``v5.channel.k8s.io``, which
is spoken end to end; attach is the same protocol without a command.  Port-forward is kubectl's SPDY
session, which arrives tunnelled in a WebSocket (kubectl 1.31+) or on an SPDY/3.1 upgrade (1.30) and
is piped, not interpreted, to the agent's WebSocket tunnel (`arktos.client.portforward`).
Query parameters are checked here first, with Kubernetes' answers: unparsable values are 400,
values PodLogOptions validation rejects are 422, a container the pod does not have is 400
"container X is not valid for pod Y".
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import orjson
from aiohttp import web

from arktos.api import errors
from arktos.api.errors import APIError
from arktos.client import portforward as pf
from arktos.client import remotecommand as rc

__all__ = ["KubeletClientConfig", "PodStreams"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
STATUS_HEADER = "X-Arktos-Status"  # the agent's Status of a refused upgrade (see arktos.agent.server)
DEFAULT_ADDRESS_TYPES = ("InternalIP", "ExternalIP", "Hostname")
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


@dataclass
class KubeletClientConfig:
    """How the API server reaches node agents (kube-apiserver's --kubelet-* flags)."""

    client_cert_file: str | None = None
    client_key_file: str | None = None
    ca_file: str | None = None
    preferred_address_types: tuple[str, ...] = DEFAULT_ADDRESS_TYPES
    connect_timeout: float = 10.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def https(self) -> bool:
        return bool(self.client_cert_file)

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.https:
            return None
        ctx = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else ssl.create_default_context()
        ctx.load_cert_chain(self.client_cert_file or "", self.client_key_file)
        return ctx


def _bool(request: web.Request, name: str) -> bool:
    raw = request.query.get(name)
    if raw is None or raw == "" or raw in _FALSE:
        return False
    if raw in _TRUE:
        return True
    raise errors.bad_request(f"invalid value for {name}: {raw!r} is not a boolean")


def _int(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise errors.bad_request(f"invalid value for {name}: {raw!r} is not an integer") from None


def _names(pod: Obj) -> tuple[list[str], list[str]]:
    """(containers, init and ephemeral containers) a log or exec may name; a VM pod's VM is its one container."""
    spec = pod.get("spec") or {}
    vm = spec.get("virtualMachine")
    if vm:
        return [vm.get("name", "")], []
    main = [c.get("name", "") for c in spec.get("containers") or []]
    other = [c.get("name", "") for key in ("initContainers", "ephemeralContainers") for c in spec.get(key) or []]
    return main, other


def resolve_container(pod: Obj, asked: str) -> str:
    """The container a request means, with Kubernetes' errors for a missing or wrong name."""
    name = pod["metadata"]["name"]
    main, other = _names(pod)
    if not asked:
        if len(main) == 1:
            return main[0]
        msg = f"a container name must be specified for pod {name}, choose one of: [{' '.join(main)}]"
        if other:
            msg += f" or one of the init containers: [{' '.join(other)}]"
        raise errors.bad_request(msg)
    if asked not in main and asked not in other:
        raise errors.bad_request(f"container {asked} is not valid for pod {name}")
    return asked


class PodStreams:
    """Serves pods/log, exec, attach and portforward by proxying to the pod's node agent."""

    def __init__(self, config: KubeletClientConfig, get_node: Callable[[str], Awaitable[Obj | None]]) -> None:
        self.config = config
        self.get_node = get_node
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        ctx = self.config.ssl_context()
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx if ctx else False))

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- where the pod runs ------------------------------------------------------------

    async def _agent_url(self, pod: Obj) -> str:
        """The base URL of the agent running `pod`, or the Status saying why there is none."""
        name = pod["metadata"]["name"]
        node_name = (pod.get("spec") or {}).get("nodeName") or ""
        if not node_name:
            raise errors.bad_request(f"pod {name} does not have a host assigned")
        node = await self.get_node(node_name)
        if node is None:
            raise errors.unavailable(f"node {node_name} of pod {name} is not registered")
        status = node.get("status") or {}
        port = int((((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")) or 0)
        if port <= 0:
            raise errors.unavailable(f"node {node_name} serves no logs or exec (its agent publishes no endpoint)")
        addresses = status.get("addresses") or []
        host = ""
        for kind in self.config.preferred_address_types:
            host = next((a.get("address", "") for a in addresses if a.get("type") == kind and a.get("address")), "")
            if host:
                break
        if not host:
            raise errors.unavailable(f"node {node_name} has no address of a type in "
                                     f"{', '.join(self.config.preferred_address_types)}")
        if not self.config.https and not _loopback(host):
            raise errors.unavailable(
                f"cannot reach node {node_name} at {host}: without --kubelet-client-certificate this API server "
                "only talks to development-mode agents on 127.0.0.1")
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{'https' if self.config.https else 'http'}://{host}:{port}"

    @staticmethod
    def _path(kind: str, pod: Obj, container: str | None) -> str:
        meta = pod["metadata"]
        parts = (meta.get("tenant") or "", meta.get("namespace") or "", meta["name"],
                 *((container,) if container is not None else ()))
        return f"/{kind}/" + "/".join(quote(p, safe="") for p in parts)

    def _unreachable(self, pod: Obj, exc: Exception) -> APIError:
        node = (pod.get("spec") or {}).get("nodeName")
        log.warning("node agent of %s unreachable: %s", node, exc)
        return errors.unavailable(f"cannot reach the node agent of node {node}: {exc}")

    # -- pods/log ------------------------------------------------------------------------

    def _log_query(self, request: web.Request, pod: Obj) -> tuple[str, dict[str, str]]:
        name = pod["metadata"]["name"]
        follow, previous, timestamps = (_bool(request, n) for n in ("follow", "previous", "timestamps"))
        _bool(request, "insecureSkipTLSVerifyBackend")  # accepted, never honoured: the agent is always verified
        tail, limit, since_seconds = (_int(request, n) for n in ("tailLines", "limitBytes", "sinceSeconds"))
        since_time = request.query.get("sinceTime") or ""
        stream = request.query.get("stream") or ""
        if since_time and not _rfc3339(since_time):
            raise errors.bad_request(f"invalid value for sinceTime: {since_time!r} is not an RFC 3339 time")
        problems = []
        if tail is not None and tail < 0:
            problems.append(errors.invalid("tailLines", tail, "must be greater than or equal to 0"))
        if limit is not None and limit < 1:
            problems.append(errors.invalid("limitBytes", limit, "must be greater than 0"))
        if since_seconds is not None and since_time:
            problems.append(errors.forbidden("", "at most one of `sinceTime` or `sinceSeconds` may be specified"))
        elif since_seconds is not None and since_seconds < 1:
            problems.append(errors.invalid("sinceSeconds", since_seconds, "must be greater than 0"))
        if stream and stream not in ("All", "Stdout", "Stderr"):
            problems.append(errors.not_supported("stream", stream, ["All", "Stdout", "Stderr"]))
        if problems:
            raise errors.invalid_object("PodLogOptions", name, problems)
        container = resolve_container(pod, request.query.get("container") or "")
        query = {"podUID": pod["metadata"].get("uid", "")}
        for key, on in (("follow", follow), ("previous", previous), ("timestamps", timestamps)):
            if on:
                query[key] = "true"
        for key, value in (("tailLines", tail), ("limitBytes", limit), ("sinceSeconds", since_seconds)):
            if value is not None:
                query[key] = str(value)
        if since_time:
            query["sinceTime"] = since_time
        if stream:
            query["stream"] = stream
        return container, query

    async def log(self, request: web.Request, pod: Obj) -> web.StreamResponse:
        container, query = self._log_query(request, pod)
        url = await self._agent_url(pod) + self._path("containerLogs", pod, container) + "?" + urlencode(query)
        assert self._session is not None
        resp: web.StreamResponse | None = None
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.config.connect_timeout,
                                        sock_read=None if "follow" in query else 300)
        try:
            async with self._session.get(url, timeout=timeout) as up:
                if up.status != 200:
                    raise _status_from(up.status, await up.read())
                resp = web.StreamResponse(headers={"Content-Type": "text/plain", "Cache-Control": "no-cache"})
                resp.enable_chunked_encoding()
                await resp.prepare(request)
                async for chunk in up.content.iter_any():
                    await resp.write(chunk)  # flushed as it comes: `kubectl logs -f` sees each line at once
                await resp.write_eof()
                return resp
        except (aiohttp.ClientConnectorError, aiohttp.ClientSSLError, TimeoutError) as exc:
            raise self._unreachable(pod, exc) from None
        except aiohttp.ClientPayloadError as exc:
            if resp is None:
                raise self._unreachable(pod, exc) from None
            return resp  # the agent went away mid-stream: end the log there

    # -- pods/exec -----------------------------------------------------------------------

    async def _preflight(self, url: str, pod: Obj) -> None:
        """Raise the agent's reason a stream cannot run; return when only the upgrade is missing."""
        assert self._session is not None
        timeout = aiohttp.ClientTimeout(total=30, sock_connect=self.config.connect_timeout)
        try:
            async with self._session.get(url, timeout=timeout) as r:
                body = await r.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise self._unreachable(pod, exc) from None
        err = _status_from(r.status, body)
        if not err.message.startswith("Upgrade request required"):
            raise err

    async def _connect(self, url: str, pod: Obj, offer: list[str]) -> aiohttp.ClientWebSocketResponse:
        """The WebSocket to the agent; its refusal as the agent's Status."""
        assert self._session is not None
        try:
            return await self._session.ws_connect(url, protocols=offer, autoping=True, max_msg_size=0,
                                                  timeout=aiohttp.ClientWSTimeout(ws_close=5))
        except aiohttp.WSServerHandshakeError as exc:
            raw = (exc.headers or {}).get(STATUS_HEADER, "")
            raise _status_from(exc.status, raw.encode()) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise self._unreachable(pod, exc) from None

    async def exec(self, request: web.Request, pod: Obj) -> web.StreamResponse:
        command = request.query.getall("command", [])
        if not command:
            raise errors.bad_request("you must specify at least one command for the container")
        return await self._remote_command(request, pod, command)

    async def attach(self, request: web.Request, pod: Obj) -> web.StreamResponse:
        return await self._remote_command(request, pod, None)

    async def _remote_command(self, request: web.Request, pod: Obj, command: list[str] | None) -> web.StreamResponse:
        """pods/exec (`command`) or pods/attach (None): one protocol, relayed to the agent's /exec or /attach."""
        kind = "exec" if command is not None else "attach"
        flags = {n: _bool(request, n) for n in ("stdin", "stdout", "stderr", "tty")}
        if not (flags["stdin"] or flags["stdout"] or flags["stderr"]):
            raise errors.bad_request("you must specify at least 1 of stdin, stdout, stderr")
        container = resolve_container(pod, request.query.get("container") or "")
        protocol = rc.choose(request)
        if protocol is None:
            raise errors.bad_request(f"none of the offered subprotocols is supported; use one of "
                                     f"{', '.join(rc.PROTOCOLS)}")
        base = await self._agent_url(pod)
        query = [("command", c) for c in command or []] + [(k, "1") for k, on in flags.items() if on]
        query.append(("podUID", pod["metadata"].get("uid", "")))
        url = base + self._path(kind, pod, container) + "?" + urlencode(query)
        if not rc.is_websocket_upgrade(request):
            # kubectl falls back to SPDY when its WebSocket upgrade is refused, and shows what the SPDY
            # request gets: so ask the agent why the exec could not run, and say that.
            await self._preflight(url, pod)
            raise errors.bad_request(f"Upgrade request required: pods/{kind} is served over WebSocket "
                                     f"({rc.V5} or older channel protocols); SPDY is not supported")
        wanted = rc.version(protocol)
        offer = [p for p in rc.PROTOCOLS if not rc.is_base64(p) and rc.version(p) <= wanted]
        up = await self._connect(url, pod, offer)
        ws = web.WebSocketResponse(protocols=(protocol,) if protocol else (), autoping=True, max_msg_size=0)
        try:
            await ws.prepare(request)
        except BaseException:
            await up.close()
            raise
        await rc.relay(ws, protocol, up, up.protocol or "")
        return ws

    # -- pods/portforward ----------------------------------------------------------------

    async def port_forward(self, request: web.Request, pod: Obj) -> web.StreamResponse:
        """kubectl's SPDY session, over a WebSocket tunnel (kubectl 1.31+) or an SPDY/3.1 upgrade (1.30),
        piped to the agent's /portForward WebSocket tunnel (`arktos.client.portforward`)."""
        ports: list[int] = []
        for raw in request.query.getall("ports", []):
            for part in filter(None, raw.split(",")):
                try:
                    port = int(part)
                except ValueError:
                    raise errors.bad_request(f"invalid value for ports: {part!r} is not an integer") from None
                if not 0 < port < 65536:
                    raise errors.bad_request(f"invalid value for ports: {port} must be in the range 1-65535")
                ports.append(port)
        if (pod.get("spec") or {}).get("virtualMachine"):
            raise errors.bad_request("port-forward is not supported for VM pods; reach the VM at its pod IP")
        base = await self._agent_url(pod)
        query = [("port", str(p)) for p in ports] + [("podUID", pod["metadata"].get("uid", ""))]
        url = base + self._path("portForward", pod, None) + "?" + urlencode(query)
        tunnel = rc.is_websocket_upgrade(request)
        if tunnel and not pf.wants_tunnel(request):
            raise errors.bad_request(f"port-forward over WebSocket needs the {pf.TUNNEL} subprotocol")
        if not tunnel and not pf.is_spdy_upgrade(request):
            await self._preflight(url, pod)
            raise errors.bad_request(f"Upgrade request required: pods/portforward is served over an SPDY/3.1 "
                                     f"upgrade or a WebSocket with the {pf.TUNNEL} subprotocol")
        up = await self._connect(url, pod, [pf.TUNNEL])
        name = pod["metadata"]["name"]
        if tunnel:
            ws = web.WebSocketResponse(protocols=(pf.TUNNEL,), autoping=True, max_msg_size=0)
            try:
                await ws.prepare(request)
            except BaseException:
                await up.close()
                raise
            log.info("port-forward to pod %s (WebSocket tunnel)", name)
            await pf.pipe_websockets(ws, up)
            return ws
        offered = [p.strip() for h in request.headers.getall("X-Stream-Protocol-Version", []) for p in h.split(",")]
        if offered and pf.PROTOCOL not in offered:
            await up.close()
            raise errors.bad_request(f"unable to upgrade: none of the offered protocols is supported "
                                     f"(only {pf.PROTOCOL})")
        try:
            resp, raw_conn = await pf.accept_spdy(request, pf.PROTOCOL if offered else "")
        except BaseException:
            await up.close()
            raise
        log.info("port-forward to pod %s (SPDY/3.1)", name)
        await pf.pipe_stream(up, raw_conn.reader, raw_conn.write, raw_conn.close)
        return resp


def _rfc3339(text: str) -> bool:
    """Whether `text` is an RFC 3339 time (metav1.Time's wire form; fractions of any length)."""
    import re

    return re.fullmatch(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)", text) is not None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _status_from(code: int, body: bytes) -> APIError:
    """The agent's Status as ours (same code, reason and message), or a plain one when it sent none."""
    try:
        status = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        status = None
    if isinstance(status, dict) and status.get("kind") == "Status":
        return APIError(int(status.get("code") or code), str(status.get("reason") or ""),
                        str(status.get("message") or ""))
    text = body.decode("utf-8", "replace").strip()[:500] if body else ""
    return APIError(code if code >= 400 else 500, "InternalError",
                    f"the node agent answered {code}" + (f": {text}" if text else ""))
