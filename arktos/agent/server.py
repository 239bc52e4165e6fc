"""The node agent's own HTTPS endpoint: container logs and exec, in the kubelet's shape, for the API server.

`kubectl logs` and `kubectl exec` go to the API server, which finds the pod's node and asks
that node's agent here (as kube-apiserver asks the kubelet on port 10250):

* ``GET /containerLogs/{tenant}/{namespace}/{pod}/{container}`` with kubelet's query
  (``follow``, ``previous``, ``tailLines``, ``sinceSeconds``, ``sinceTime``, ``timestamps``,
  ``limitBytes``, ``stream``) streams the log (`arktos.agent.logs`); Arktos puts the tenant in
  the path because pods are keyed by tenant, namespace and name.
* ``GET|POST /exec/{tenant}/{namespace}/{pod}/{container}?command=..&stdin=1&stdout=1&stderr=1&tty=1``
  upgrades to a WebSocket, asks the runtime for its streaming server's URL (CRI's Exec) and
  relays the remote-command protocol to it (`arktos.client.remotecommand`): over SPDY/3.1 when
  the runtime says its server speaks it (``exec_transport = "spdy"``: containerd's does, and only
  SPDY can close stdin there), else over WebSocket.
* ``GET|POST /attach/{tenant}/{namespace}/{pod}/{container}?stdin=1&stdout=1&stderr=1`` is the same
  to the container's main process (CRI's Attach); the TTY is the container's own, as with kubelet.
* ``GET /portForward/{tenant}/{namespace}/{pod}[?port=N...]`` upgrades to a WebSocket with the
  ``SPDY/3.1+portforward.k8s.io`` subprotocol, upgrades to SPDY/3.1 at the runtime's PortForward URL
  and pipes the bytes both ways (`arktos.client.portforward`): the SPDY session is kubectl's own.

Pods are looked up in the agent's own pod table: a request can only reach pods bound to this
node, and with ``podUID`` only that very pod (not a successor with the same name).

Security: HTTPS with the node's serving certificate; a client certificate from the cluster CA
is required and its user must be one of `allowed_users` (the API server's kubelet client,
``kube-apiserver-kubelet-client``): no certificate is 401, anyone else 403.  The one
exception is the development mode (the agent talks to a plain-HTTP API server): plain HTTP,
bound to 127.0.0.1 only, so only this machine can reach it.

Errors are `Status` bodies; since a WebSocket client cannot read the body of a refused
upgrade, the Status also travels in the ``X-Arktos-Status`` header (JSON, ASCII).
"""

from __future__ import annotations

import contextlib
import json
import logging
import ssl
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from arktos.agent.logs import LogOptions, parse_cri_time, stream_log
from arktos.agent.runtime import ContainerState, NoSuchContainer, NotSupported
from arktos.api.errors import APIError
from arktos.client import portforward as pf
from arktos.client import remotecommand as rc
from arktos.client.spdy import SpdyError, UpgradeFailed
from arktos.client.spdy import upgrade as spdy_upgrade

if TYPE_CHECKING:
    from arktos.agent.agent import NodeAgent

__all__ = ["APISERVER_KUBELET_CLIENT", "STATUS_HEADER", "AgentServer", "ServingTLS"]

log = logging.getLogger("arktos.agent.server")

STATUS_HEADER = "X-Arktos-Status"
UPGRADE_REQUIRED = "Upgrade request required: the remote-command protocol is served over WebSocket"
UPGRADE_REQUIRED_PORT_FORWARD = (f"Upgrade request required: port-forward is served over WebSocket with the "
                                 f"{pf.TUNNEL} subprotocol")
APISERVER_KUBELET_CLIENT = "kube-apiserver-kubelet-client"
Obj = dict[str, Any]


@dataclass
class ServingTLS:
    """The agent's HTTPS: its serving pair, the CA of client certificates, and who may call."""

    cert_file: str
    key_file: str
    client_ca_file: str
    allowed_users: frozenset[str] = field(default_factory=lambda: frozenset({APISERVER_KUBELET_CLIENT}))

    def context(self) -> ssl.SSLContext:
        # Not create_default_context: for CLIENT_AUTH it would also trust the system's public CAs, and the
        # handshake is the only check of the chain here.  Only the cluster CA may vouch for a caller.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_file, self.key_file)
        ctx.load_verify_locations(self.client_ca_file)
        # Optional in the handshake, so a caller without a certificate gets a 401 that says so
        # instead of a TLS alert; a certificate from another CA still fails the handshake.
        ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx


def _status(code: int, reason: str, message: str) -> web.Response:
    body = APIError(code, reason, message).status()
    return web.json_response(body, status=code, headers={STATUS_HEADER: json.dumps(body, ensure_ascii=True)})


def _bad(message: str) -> web.Response:
    return _status(400, "BadRequest", message)


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


def _int(request: web.Request, name: str, minimum: int) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}: {raw!r} is not an integer") from None
    if value < minimum:
        raise ValueError(f"{name}: must be at least {minimum}")
    return value


class AgentServer:
    """The agent's logs and exec endpoint; `start` binds it and returns the port."""

    def __init__(self, agent: NodeAgent, *, address: str = "0.0.0.0", port: int = 10250,
                 tls: ServingTLS | None = None) -> None:
        if tls is None and address not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("without TLS the agent's server only binds to 127.0.0.1 (development mode)")
        self.agent = agent
        self.address = address
        self.port = port
        self.tls = tls
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> int:
        app = web.Application(middlewares=[self._authenticate])
        app.router.add_get("/containerLogs/{tenant}/{namespace}/{pod}/{container}", self.container_logs)
        app.router.add_route("GET", "/exec/{tenant}/{namespace}/{pod}/{container}", self.exec)
        app.router.add_route("POST", "/exec/{tenant}/{namespace}/{pod}/{container}", self.exec)
        for kind, handler in (("attach", self.attach), ("portForward", self.port_forward)):
            suffix = "/{container}" if kind == "attach" else ""
            for method in ("GET", "POST"):
                app.router.add_route(method, f"/{kind}/{{tenant}}/{{namespace}}/{{pod}}{suffix}", handler)
        app.router.add_get("/healthz", self.healthz)
        self._session = aiohttp.ClientSession()
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, handler_cancellation=True,
                                     shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.address, self.port,
                           ssl_context=self.tls.context() if self.tls else None)
        await site.start()
        self.port = self._runner.addresses[0][1]
        if self.tls:
            log.info("serving logs and exec over HTTPS on %s:%d", self.address, self.port)
        else:
            log.warning("serving logs and exec over plain HTTP on %s:%d without authentication "
                        "(development mode: this machine only)", self.address, self.port)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- authentication ----------------------------------------------------------------

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.tls is not None and request.path != "/healthz":
            from arktos.cluster.pki import identity_from_certificate

            ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            if not der:
                return _status(401, "Unauthorized", "Unauthorized: a client certificate is required")
            try:
                user = identity_from_certificate(der).user
            except ValueError:
                return _status(401, "Unauthorized", "Unauthorized: unusable client certificate")
            if user not in self.tls.allowed_users:
                return _status(403, "Forbidden",
                               f"Forbidden: user {user!r} may not use the node agent's logs and exec API")
        return await handler(request)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    # -- lookups -----------------------------------------------------------------------

    def _pod(self, request: web.Request) -> tuple[Obj, Any]:
        """The pod (from this node's own table) and its runtime; APIError 404 if it is not here."""
        m = request.match_info
        key = f"{m['tenant']}/{m['namespace']}/{m['pod']}"
        pod = self.agent.pods.get(key)
        uid = request.query.get("podUID")
        if pod is None or (uid and pod["metadata"].get("uid") != uid):
            raise APIError(404, "NotFound", f'pod "{m["pod"]}" is not on node {self.agent.node}')
        kind = "vm" if (pod.get("spec") or {}).get("virtualMachine") else "container"
        runtime = self.agent.runtimes.get(kind)
        if runtime is None:
            raise APIError(400, "BadRequest", f"node {self.agent.node} has no runtime for pod {m['pod']}")
        return pod, runtime

    def _container_state(self, pod: Obj, name: str) -> ContainerState | None:
        state = self.agent.observed.get(pod["metadata"].get("uid", ""))
        return next((c for c in state.containers if c.name == name), None) if state else None

    # -- logs ----------------------------------------------------------------------------

    def _log_options(self, request: web.Request) -> LogOptions:
        q = request.query
        opts = LogOptions(follow=_flag(request, "follow"), timestamps=_flag(request, "timestamps"),
                          tail_lines=_int(request, "tailLines", 0), limit_bytes=_int(request, "limitBytes", 1))
        since_seconds = _int(request, "sinceSeconds", 1)
        since_time = q.get("sinceTime")
        if since_seconds is not None and since_time:
            raise ValueError("at most one of sinceTime or sinceSeconds may be specified")
        if since_seconds is not None:
            opts.since = time.time() - since_seconds
        elif since_time:
            opts.since = parse_cri_time(since_time)
            if opts.since is None:
                raise ValueError(f"sinceTime: {since_time!r} is not an RFC 3339 time")
        stream = q.get("stream") or "All"
        if stream not in ("All", "Stdout", "Stderr"):
            raise ValueError(f"stream: {stream!r} is not one of All, Stdout, Stderr")
        opts.stream = stream
        return opts

    async def container_logs(self, request: web.Request) -> web.StreamResponse:
        try:
            opts = self._log_options(request)
        except ValueError as exc:
            return _bad(str(exc))
        previous = _flag(request, "previous")
        container = request.match_info["container"]
        try:
            pod, runtime = self._pod(request)
        except APIError as exc:
            return _status(exc.code, exc.reason, exc.message)
        name = pod["metadata"]["name"]
        cs = self._container_state(pod, container)
        # kubelet's checks, with its words: kubectl users know them.
        if cs is None:
            return _bad(f'container "{container}" in pod "{name}" is not available')
        if previous and cs.restart_count == 0:
            return _bad(f'previous terminated container "{container}" in pod "{name}" not found')
        if not previous and cs.state == "waiting" and cs.restart_count == 0:
            return _bad(f'container "{container}" in pod "{name}" is waiting to start: '
                        f'{cs.reason or "ContainerCreating"}')
        try:
            logfile = await runtime.log_file(pod, container, previous=previous)
        except NotSupported as exc:
            return _bad(str(exc))
        except NoSuchContainer as exc:
            return _status(404, "NotFound", str(exc))
        uid, instance = pod["metadata"].get("uid", ""), cs.container_id

        def running() -> bool:
            if previous:
                return False
            now = self._container_state(pod, container)
            return (uid in self.agent.observed and now is not None and now.state == "running"
                    and now.container_id == instance)

        resp = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8",
                                           "Cache-Control": "no-cache"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)

        async def write(data: bytes) -> None:
            await resp.write(data)

        try:
            await stream_log(logfile.path, logfile.cri, opts, write, running)
        except FileNotFoundError:
            pass  # removed with its pod while we read: the log simply ends
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            return resp  # the client went away
        with contextlib.suppress(ConnectionResetError, aiohttp.ClientConnectionResetError):
            await resp.write_eof()
        return resp

    # -- exec ----------------------------------------------------------------------------

    async def exec(self, request: web.Request) -> web.StreamResponse:
        command = request.query.getall("command", [])
        if not command:
            return _bad("you must specify at least one command for the container")
        return await self._remote_command(request, command)

    async def attach(self, request: web.Request) -> web.StreamResponse:
        return await self._remote_command(request, None)

    async def _remote_command(self, request: web.Request, command: list[str] | None) -> web.StreamResponse:
        """exec (`command`) or attach (None): the same protocol, to the runtime's Exec or Attach URL."""
        what = "exec" if command is not None else "attach"
        stdin, stdout, stderr, tty = (_flag(request, n) for n in ("stdin", "stdout", "stderr", "tty"))
        container = request.match_info["container"]
        if not (stdin or stdout or stderr):
            return _bad("you must specify at least 1 of stdin, stdout, stderr")
        try:
            pod, runtime = self._pod(request)
        except APIError as exc:
            return _status(exc.code, exc.reason, exc.message)
        if command is None:
            # As kubelet: an attach's TTY is the container's own (a running process cannot change it).
            spec = next((c for key in ("containers", "initContainers", "ephemeralContainers")
                         for c in (pod.get("spec") or {}).get(key) or [] if c.get("name") == container), None)
            if spec is None and not (pod.get("spec") or {}).get("virtualMachine"):
                return _status(404, "NotFound", f'container "{container}" not found in pod "{pod["metadata"]["name"]}"')
            tty = bool((spec or {}).get("tty"))
        protocol = rc.choose(request)
        if protocol is None:
            return _bad(f"none of the offered subprotocols is supported; use one of {', '.join(rc.PROTOCOLS)}")

        async def fresh_url() -> str:
            if command is None:
                return await runtime.attach_url(pod, container, stdin=stdin, stdout=stdout, stderr=stderr, tty=tty)
            return await runtime.exec_url(pod, container, command, stdin=stdin, stdout=stdout, stderr=stderr,
                                          tty=tty)

        try:
            url = await fresh_url()
        except NotSupported as exc:
            return _bad(str(exc))
        except NoSuchContainer as exc:
            return _status(404, "NotFound", str(exc))
        if not rc.is_websocket_upgrade(request):
            # Checked last: the API server asks without an upgrade to learn why an exec cannot run (a
            # client that fell back from WebSocket to SPDY should hear that reason, not "use WebSocket").
            # An unused streaming URL costs nothing: CRI's expire.
            return _bad(UPGRADE_REQUIRED)
        where = "/".join(request.match_info[k] for k in ("tenant", "namespace", "pod"))
        doing = command[0] if command else "attached"
        if getattr(runtime, "exec_transport", "websocket") == "spdy":
            # SPDY first: Kubernetes' streaming servers speak WebSocket only up to v4, which cannot
            # close stdin.  A server that refuses the upgrade is asked again over WebSocket, with a
            # fresh URL (CRI's are one-time and the refused request may have used it up).
            try:
                session = await rc.spdy_exec(url, stdin=stdin, stdout=stdout, stderr=stderr, tty=tty, timeout=15)
            except UpgradeFailed as exc:
                log.info("%s in %s: the streaming server refused SPDY (%s); trying WebSocket", what, where, exc)
                try:
                    url = await fresh_url()
                except NoSuchContainer as exc2:
                    return _status(404, "NotFound", str(exc2))
            except (SpdyError, OSError, TimeoutError) as exc:
                log.warning("%s in %s: the streaming server at %s: %s", what, where, url, exc)
                return _status(500, "InternalError",
                               f"cannot reach the container runtime's streaming server: {exc}")
            else:
                ws = web.WebSocketResponse(protocols=(protocol,) if protocol else (), autoping=True,
                                           max_msg_size=0)
                try:
                    await ws.prepare(request)
                except BaseException:
                    await session.close()
                    raise
                log.info("%s in %s container %s over SPDY (%s): %s", what, where, container, session.protocol,
                         doing)
                await rc.relay_spdy(ws, protocol, session)
                return ws
        wanted = rc.version(protocol)
        offer = [p for p in rc.PROTOCOLS if not rc.is_base64(p) and rc.version(p) <= wanted]
        assert self._session is not None
        try:
            up = await self._session.ws_connect(url, protocols=offer, autoping=True, max_msg_size=0,
                                                timeout=aiohttp.ClientWSTimeout(ws_close=5))
        except (aiohttp.ClientError, OSError) as exc:
            log.warning("%s in %s: the streaming server at %s: %s", what, where, url, exc)
            return _status(500, "InternalError", f"cannot reach the container runtime's streaming server: {exc}")
        ws = web.WebSocketResponse(protocols=(protocol,) if protocol else (), autoping=True, max_msg_size=0)
        await ws.prepare(request)
        log.info("%s in %s container %s: %s", what, where, container, doing)
        await rc.relay(ws, protocol, up, up.protocol or "")
        return ws


    # -- port-forward ----------------------------------------------------------------------

    async def port_forward(self, request: web.Request) -> web.StreamResponse:
        """The API server's WebSocket tunnel of kubectl's SPDY session, piped to the runtime's
        PortForward URL (`arktos.client.portforward`)."""
        ports: list[int] = []
        for raw in request.query.getall("port", []):
            try:
                port = int(raw)
            except ValueError:
                return _bad(f"invalid port {raw!r}")
            if not 0 < port < 65536:
                return _bad(f"port {port} must be in the range 1-65535")
            ports.append(port)
        try:
            pod, runtime = self._pod(request)
        except APIError as exc:
            return _status(exc.code, exc.reason, exc.message)
        try:
            url = await runtime.port_forward_url(pod, ports)
        except NotSupported as exc:
            return _bad(str(exc))
        except NoSuchContainer as exc:
            return _status(404, "NotFound", str(exc))
        if not (rc.is_websocket_upgrade(request) and pf.wants_tunnel(request)):
            return _bad(UPGRADE_REQUIRED_PORT_FORWARD)
        where = "/".join(request.match_info[k] for k in ("tenant", "namespace", "pod"))
        try:
            reader, writer, _ = await spdy_upgrade(url, protocols=(pf.PROTOCOL,), timeout=15)
        except (SpdyError, OSError, TimeoutError) as exc:
            log.warning("port-forward to %s: the streaming server at %s: %s", where, url, exc)
            return _status(500, "InternalError", f"cannot reach the container runtime's streaming server: {exc}")
        ws = web.WebSocketResponse(protocols=(pf.TUNNEL,), autoping=True, max_msg_size=0)
        try:
            await ws.prepare(request)
        except BaseException:
            writer.close()
            raise
        log.info("port-forward to %s%s", where, f" ports {ports}" if ports else "")

        async def write(data: bytes) -> None:
            writer.write(data)
            await writer.drain()

        await pf.pipe_stream(ws, reader, write, writer.close)
        return ws
