"""Kubernetes' remote-command protocol over WebSocket (`kubectl exec`), for the relays that carry it.

`kubectl exec` opens a WebSocket to the API server, which relays it to the node agent, which
relays it to the runtime's streaming server.  Each hop is a WebSocket whose subprotocol says
how frames look:

* ``channel.k8s.io`` and ``v2``/``v3``/``v4.channel.k8s.io``: binary messages whose first byte
  is the channel: 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize (v3 and later).
* ``base64.channel.k8s.io`` and ``v4.base64.channel.k8s.io``: text messages, the channel as an
  ASCII digit and the data base64-encoded (for browsers).
* From v4 on, the error channel carries a JSON `Status` when the command ends (its exit code
  in ``details.causes[reason=ExitCode]``); before v4 it carried plain text.
* ``v5.channel.k8s.io`` (what kubectl 1.30+ speaks, and the only thing it offers): v4 plus a
  CLOSE message, channel 255 with one byte naming the stream, which half-closes it (stdin EOF
  while output still flows).

The relays do not interpret the streams: they re-frame between what each side negotiated,
drop a CLOSE the next hop cannot understand, and turn an old-style text error into a Status.

The node agent can also reach a streaming server over SPDY/3.1 (`spdy_exec`, `relay_spdy`), the
protocol's original transport, which Kubernetes' streaming servers speak up to v4: every standard
stream is a SPDY stream of its own (header ``streamtype``: error, stdin, stdout, stderr, resize),
so v5's CLOSE of stdin becomes a FIN on the stdin stream and the command sees EOF, which no
WebSocket version below v5 can say.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from arktos.client.spdy import SpdyConnection, SpdyError, SpdyStream

__all__ = ["CLOSE", "ERROR", "PROTOCOLS", "RESIZE", "SPDY_PROTOCOLS", "STDERR", "STDIN", "STDOUT", "SpdyExec",
           "binary_form", "choose", "decode", "encode", "exit_code", "exit_status", "relay", "relay_spdy",
           "spdy_exec"]

log = logging.getLogger(__name__)

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V3 = "v3.channel.k8s.io"
V2 = "v2.channel.k8s.io"
V1 = "channel.k8s.io"
B64 = "base64.channel.k8s.io"
V4_B64 = "v4.base64.channel.k8s.io"

#: Every subprotocol we speak, newest first (the order a relay offers them to the next hop).
PROTOCOLS: tuple[str, ...] = (V5, V4, V3, V2, V1, V4_B64, B64)
#: What we offer over SPDY (X-Stream-Protocol-Version), as client-go does: v5 exists only for WebSocket.
SPDY_PROTOCOLS: tuple[str, ...] = (V4, V3, V2, V1)
_VERSION = {V5: 5, V4: 4, V3: 3, V2: 2, V1: 1, V4_B64: 4, B64: 1}


def version(protocol: str) -> int:
    """1..5; an empty negotiation means channel.k8s.io, as client-go assumes."""
    return _VERSION.get(protocol, 1)


def is_base64(protocol: str) -> bool:
    return protocol in (B64, V4_B64)


def binary_form(protocol: str) -> str:
    """The binary subprotocol of the same version: what a relay asks of its next hop."""
    return {B64: V1, V4_B64: V4}.get(protocol, protocol or V1)


def offered(request: web.Request) -> list[str]:
    """The subprotocols a WebSocket client offers, in its order of preference."""
    return [p.strip() for h in request.headers.getall("Sec-WebSocket-Protocol", [])
            for p in h.split(",") if p.strip()]


def choose(request: web.Request) -> str | None:
    """The first offered subprotocol we speak (the client's preference wins, as in Kubernetes);
    "" when the client offered none (then channel.k8s.io framing), None when none fits."""
    wanted = offered(request)
    if not wanted:
        return ""
    return next((p for p in wanted if p in _VERSION), None)


def is_websocket_upgrade(request: web.Request) -> bool:
    return ("upgrade" in request.headers.get("Connection", "").lower()
            and request.headers.get("Upgrade", "").lower() == "websocket")


def decode(msg: aiohttp.WSMessage, protocol: str) -> tuple[int, bytes] | None:
    """(channel, data) of a data message; None for a malformed one."""
    if is_base64(protocol):
        if msg.type != aiohttp.WSMsgType.TEXT or not msg.data or not msg.data[0].isdigit():
            return None
        try:
            return int(msg.data[0]), base64.b64decode(msg.data[1:], validate=False)
        except (binascii.Error, ValueError):
            return None
    # Binary framing, but a text message is taken too (as Kubernetes does: the Python client sends stdin
    # as text frames whose first character is the channel).
    data = msg.data.encode("utf-8") if msg.type == aiohttp.WSMsgType.TEXT else msg.data
    if msg.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT) or not data:
        return None
    return data[0], bytes(data[1:])


async def encode(ws: Any, protocol: str, channel: int, data: bytes) -> None:
    """Send `data` on `channel` in `protocol`'s framing (server or client WebSocket alike)."""
    if is_base64(protocol):
        await ws.send_str(str(channel) + base64.b64encode(data).decode("ascii"))
    else:
        await ws.send_bytes(bytes((channel,)) + data)


def exit_status(code: int, message: str = "") -> bytes:
    """The error-channel Status of a finished command (v4+): Success, or NonZeroExitCode with the code."""
    if code == 0:
        return orjson.dumps({"metadata": {}, "status": "Success"})
    return orjson.dumps({
        "metadata": {}, "status": "Failure",
        "message": message or f"command terminated with non-zero exit code: exit status {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    })


def _error_status(text: bytes) -> bytes:
    """An old-style (v1-v3) text error as the Status a v4+ client expects."""
    return orjson.dumps({"metadata": {}, "status": "Failure", "reason": "InternalError",
                         "message": text.decode("utf-8", "replace")})


async def relay(down: web.WebSocketResponse, down_protocol: str, up: aiohttp.ClientWebSocketResponse,
                up_protocol: str) -> None:
    """Carry one exec session between a client (`down`) and the next hop (`up`) until either ends.

    Messages are re-framed when the two sides speak differently.  The command's end is the next
    hop closing its WebSocket; the client then gets a normal closure after the last output.  A
    client that goes away closes the next hop too, so the command loses its terminal as it would
    with kubelet.
    """
    up_close = version(up_protocol) >= 5
    wrap_errors = version(down_protocol) >= 4 > version(up_protocol)
    warned = False

    async def downstream_to_up() -> None:
        nonlocal warned
        async for msg in down:
            if msg.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                continue
            frame = decode(msg, down_protocol)
            if frame is None:
                continue
            channel, data = frame
            if channel == CLOSE and not up_close:
                if not warned:
                    log.info("exec: the streaming server speaks %s, which cannot half-close stdin; "
                             "stdin stays open until the session ends", up_protocol or V1)
                    warned = True
                continue
            await encode(up, up_protocol, channel, data)

    async def upstream_to_down() -> None:
        async for msg in up:
            if msg.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                continue
            frame = decode(msg, up_protocol)
            if frame is None:
                continue
            channel, data = frame
            if channel == CLOSE and version(down_protocol) < 5:
                continue
            if channel == ERROR and wrap_errors and data:
                data = _error_status(data)
            await encode(down, down_protocol, channel, data)

    to_up = asyncio.create_task(downstream_to_up(), name="exec-stdin")
    to_down = asyncio.create_task(upstream_to_down(), name="exec-output")
    await _pump(to_up, to_down, up, down, "exec relay")


async def _pump(to_up: asyncio.Task, to_down: asyncio.Task, up: Any, down: Any, what: str) -> None:
    """Run a relay's two directions until the output side ends (the command ended, or the next hop went
    away: everything was sent); if the client goes first, close the session and give the output 5 s to
    drain.  Either way both tasks end and both connections close."""
    try:
        done, _ = await asyncio.wait({to_up, to_down}, return_when=asyncio.FIRST_COMPLETED)
        if to_down not in done:  # the client went away: so does the session
            await up.close()
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(to_down, 5)
        for t in done:
            if not t.cancelled() and t.exception() is not None:
                log.debug("%s: %s", what, t.exception())
    finally:
        for t in (to_up, to_down):
            t.cancel()
        await asyncio.gather(to_up, to_down, return_exceptions=True)
        await up.close()
        await down.close()


# -- SPDY ------------------------------------------------------------------------------------------

def exit_code(status: dict[str, Any] | None) -> int | None:
    """The exit code a v4 Status reports: 0 for Success, the ExitCode cause for NonZeroExitCode, None
    for any other failure (the command could not run, or the session broke)."""
    if not status:
        return None
    if status.get("status") == "Success":
        return 0
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            with contextlib.suppress(TypeError, ValueError):
                return int(cause.get("message"))
    return None


class SpdyExec:
    """One remote-command session over SPDY: the streams asked for, each a `SpdyStream`."""

    def __init__(self, conn: SpdyConnection, error: SpdyStream, stdin: SpdyStream | None, stdout: SpdyStream | None,
                 stderr: SpdyStream | None, resize: SpdyStream | None) -> None:
        self.conn = conn
        self.protocol = conn.protocol
        self.error, self.stdin, self.stdout, self.stderr, self.resize = error, stdin, stdout, stderr, resize

    async def resize_to(self, width: int, height: int) -> None:
        if self.resize is not None:
            await self.resize.write(orjson.dumps({"Width": width, "Height": height}))

    async def status(self) -> dict[str, Any]:
        """The command's end as a Status (the error stream read to its end): the server's own Status
        for v4, one built from the text of older versions, InternalError if the session broke."""
        raw = await self.error.read_all()
        return status_of(raw, self.protocol, broken=self.conn.error)

    async def close(self) -> None:
        await self.conn.close()


def status_of(raw: bytes, protocol: str, *, broken: BaseException | None = None) -> dict[str, Any]:
    if raw and version(protocol) >= 4:
        try:
            status = orjson.loads(raw)
        except orjson.JSONDecodeError:
            status = None
        if isinstance(status, dict):
            return status
    if raw:
        return orjson.loads(_error_status(raw))
    if broken is not None:
        return {"metadata": {}, "status": "Failure", "reason": "InternalError",
                "message": f"the container runtime's streaming server went away: {broken}"}
    return {"metadata": {}, "status": "Success"}


async def spdy_exec(url: str, *, stdin: bool, stdout: bool, stderr: bool, tty: bool, ssl: Any = None,
                    timeout: float = 30.0) -> SpdyExec:
    """Open a remote-command session at a streaming server's URL (CRI Exec's) over SPDY/3.1.

    As client-go does: the error stream first, then stdin, stdout, stderr (never with a TTY: the
    server does not expect it then) and, with a TTY from v3 on, resize; each must be answered
    (SYN_REPLY) before the session is ready.  The server counts the streams it expects from the
    request, so exactly those are opened.
    """
    conn = await SpdyConnection.connect(url, protocols=SPDY_PROTOCOLS, ssl=ssl, timeout=timeout)
    try:
        error = await conn.open_stream({"streamtype": "error"})
        opened = [error]

        async def maybe(kind: str, wanted: bool) -> SpdyStream | None:
            if not wanted:
                return None
            s = await conn.open_stream({"streamtype": kind})
            opened.append(s)
            return s

        s_in = await maybe("stdin", stdin)
        s_out = await maybe("stdout", stdout)
        s_err = await maybe("stderr", stderr and not tty)
        s_resize = await maybe("resize", tty and version(conn.protocol) >= 3)
        await asyncio.wait_for(asyncio.gather(*(s.replied for s in opened)), timeout)
    except BaseException:
        await conn.close()
        raise
    return SpdyExec(conn, error, s_in, s_out, s_err, s_resize)


async def relay_spdy(down: web.WebSocketResponse, down_protocol: str, up: SpdyExec) -> None:
    """Carry one exec session between a WebSocket client (`down`) and a SPDY session (`up`).

    Client to server: channel 0 to the stdin stream, 4 (resize JSON, the same on both) to the resize
    stream, v5's CLOSE of stdin to a FIN on the stdin stream.  Server to client: stdout and stderr
    as channels 1 and 2; when both have ended (the server resets every stream and closes once the
    command is over), the error stream's Status goes out on channel 3, as it came for v4+ clients
    (text for older ones), and the client gets a normal closure.  A client that goes away closes the
    SPDY session.
    """
    down_v = version(down_protocol)

    async def downstream_to_up() -> None:
        stdin_open = up.stdin is not None
        async for msg in down:
            frame = decode(msg, down_protocol) if msg.type in (aiohttp.WSMsgType.BINARY,
                                                               aiohttp.WSMsgType.TEXT) else None
            if frame is None:
                continue
            channel, data = frame
            try:
                if channel == STDIN and stdin_open and data:
                    assert up.stdin is not None
                    await up.stdin.write(data)
                elif channel == RESIZE and up.resize is not None and data:
                    await up.resize.write(data)
                elif channel == CLOSE and data[:1] == bytes((STDIN,)) and stdin_open:
                    assert up.stdin is not None
                    stdin_open = False
                    await up.stdin.close_write()
            except SpdyError:
                # The server no longer takes stdin (the command ended or closed it): drop the rest.
                stdin_open = False

    async def pump(stream: SpdyStream | None, channel: int) -> None:
        while stream is not None and (chunk := await stream.read()):
            await encode(down, down_protocol, channel, chunk)

    async def output() -> None:
        error = asyncio.create_task(up.error.read_all())
        try:
            await asyncio.gather(pump(up.stdout, STDOUT), pump(up.stderr, STDERR))
            raw = await error
        finally:
            error.cancel()
        if down_v >= 4:
            if raw or up.conn.error is not None:
                status = status_of(raw, up.protocol, broken=up.conn.error)
                await encode(down, down_protocol, ERROR, orjson.dumps(status))
        elif raw:
            status = status_of(raw, up.protocol)
            if status.get("status") != "Success":
                await encode(down, down_protocol, ERROR, str(status.get("message") or "error").encode())

    to_up = asyncio.create_task(downstream_to_up(), name="exec-stdin")
    to_down = asyncio.create_task(output(), name="exec-output")
    await _pump(to_up, to_down, up, down, "exec relay (SPDY)")
