"""`kubectl port-forward`'s transports, for the relays that carry them (API server, node agent).

Port-forwarding speaks SPDY/3.1 end to end, with the ``portforward.k8s.io`` protocol: for every
local connection kubectl opens an ``error`` and a ``data`` stream (headers ``streamType``,
``port``, ``requestID``) and copies bytes over the data stream; whatever comes on the error
stream is the forwarding's failure ("connection refused" inside the pod).  The SPDY session runs
between kubectl and the container runtime's streaming server (CRI's PortForward URL, kubelet's
streaming library inside containerd); nobody in between interprets it, as in Kubernetes, where
kube-apiserver and kubelet pipe the upgraded connection through.

kubectl reaches the API server in one of two ways (KEP-4006, "Transition from SPDY to
WebSockets"):

* kubectl 1.31+ first opens a WebSocket with the subprotocol ``SPDY/3.1+portforward.k8s.io``:
  the SPDY bytes travel in binary messages (any split), the API server terminates the WebSocket.
  (kubectl 1.30 does it too with ``KUBECTL_PORT_FORWARD_WEBSOCKETS=true``.)
* otherwise, and when that upgrade is refused, a plain HTTP/1.1 upgrade to ``SPDY/3.1`` with
  ``X-Stream-Protocol-Version: portforward.k8s.io``: the connection then carries the SPDY bytes
  themselves (`accept_spdy`).

Between the API server and the node agent the tunnel is always the WebSocket one; the agent
upgrades to SPDY at the runtime's URL (`arktos.client.spdy.upgrade`) and pipes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp
from aiohttp import web

__all__ = ["PROTOCOL", "TUNNEL", "accept_spdy", "is_spdy_upgrade", "pipe_stream", "pipe_websockets",
           "wants_tunnel"]

log = logging.getLogger(__name__)

PROTOCOL = "portforward.k8s.io"  # X-Stream-Protocol-Version of the SPDY upgrade
TUNNEL = "SPDY/3.1+portforward.k8s.io"  # the WebSocket subprotocol that tunnels SPDY
_CHUNK = 64 * 1024
_WRITE_HIGH = 1 << 20


def wants_tunnel(request: web.Request) -> bool:
    """Whether a WebSocket client offers the SPDY tunnel subprotocol."""
    offered = [p.strip() for h in request.headers.getall("Sec-WebSocket-Protocol", []) for p in h.split(",")]
    return TUNNEL in offered


def is_spdy_upgrade(request: web.Request) -> bool:
    return ("upgrade" in request.headers.get("Connection", "").lower()
            and request.headers.get("Upgrade", "").lower() == "spdy/3.1")


class _Raw(asyncio.Protocol):
    """What an upgraded server connection becomes: bytes into a StreamReader, writes with backpressure."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.reader = asyncio.StreamReader(limit=_CHUNK * 16)
        self.reader.set_transport(transport)  # pauses the socket when the reader is behind
        self._writable = asyncio.Event()
        self._writable.set()
        self.lost = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self.reader.feed_data(data)

    def eof_received(self) -> bool:
        self.reader.feed_eof()
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        self.reader.feed_eof()
        self._writable.set()
        self.lost.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    async def write(self, data: bytes) -> None:
        if self.transport.is_closing():
            raise ConnectionResetError("the client went away")
        self.transport.write(data)
        if self.transport.get_write_buffer_size() > _WRITE_HIGH:
            await self._writable.wait()

    def close(self) -> None:
        self.transport.close()


async def accept_spdy(request: web.Request, protocol: str) -> tuple[web.StreamResponse, _Raw]:
    """Answer an HTTP/1.1 upgrade to SPDY/3.1 with 101 and take the connection over from aiohttp.

    aiohttp only switches protocols for WebSocket, so the 101 goes out as a plain response and the
    transport is then handed to a protocol of our own (`_Raw`): the client waits for the 101 before it
    sends a byte of SPDY, so nothing of it can have reached aiohttp's HTTP parser.  The returned
    response is what the handler returns once the session is over (aiohttp then closes the
    connection: it was told not to keep it alive)."""
    headers = {"Connection": "Upgrade", "Upgrade": "SPDY/3.1"}
    if protocol:
        headers["X-Stream-Protocol-Version"] = protocol
    resp = web.StreamResponse(status=101, reason="Switching Protocols", headers=headers)
    resp.force_close()
    await resp.prepare(request)
    transport = request.transport
    if transport is None or transport.is_closing():
        raise ConnectionResetError("the client went away before the upgrade")
    raw = _Raw(transport)  # type: ignore[arg-type]
    transport.set_protocol(raw)
    transport.resume_reading()
    return resp, raw


async def _run(a: Any, b: Any, close: Any) -> None:
    """Run the two directions until either ends; then `close` both sides and wait for the other."""
    tasks = {asyncio.ensure_future(a), asyncio.ensure_future(b)}
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            if not t.cancelled() and t.exception() is not None:
                log.debug("port-forward relay: %s", t.exception())
        await close()
        if pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait(pending, timeout=5)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await close()


async def pipe_websockets(down: web.WebSocketResponse, up: aiohttp.ClientWebSocketResponse) -> None:
    """Carry a tunnelled SPDY session between the client's WebSocket and the next hop's, message by message."""

    async def one_way(src: Any, dst: Any) -> None:
        async for msg in src:
            if msg.type == aiohttp.WSMsgType.BINARY:
                await dst.send_bytes(msg.data)
            elif msg.type == aiohttp.WSMsgType.TEXT:
                await dst.send_bytes(msg.data.encode("utf-8"))

    async def close() -> None:
        await up.close()
        await down.close()

    await _run(one_way(down, up), one_way(up, down), close)


async def pipe_stream(ws: Any, reader: asyncio.StreamReader, write: Any, close_stream: Any) -> None:
    """Carry a SPDY session between a WebSocket (either side's) and a raw byte stream.

    `write(data)` sends bytes on the stream, `close_stream()` closes it; binary messages become
    bytes, bytes become binary messages as they come."""

    async def ws_to_stream() -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                await write(msg.data)
            elif msg.type == aiohttp.WSMsgType.TEXT:
                await write(msg.data.encode("utf-8"))

    async def stream_to_ws() -> None:
        while chunk := await reader.read(_CHUNK):
            await ws.send_bytes(chunk)

    async def close() -> None:
        close_stream()
        await ws.close()

    await _run(ws_to_stream(), stream_to_ws(), close)
