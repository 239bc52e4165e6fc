"""The port-forward pipes (arktos.client.portforward) on real sockets: the server side of a raw SPDY/3.1
upgrade taken over from aiohttp, over plain HTTP and over TLS (the secure API server's case, which the
end-to-end test with containerd does not reach: it runs the development mode), and the WebSocket tunnel."""

from __future__ import annotations

import asyncio
import os
import ssl
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from arktos.client import portforward as pf
from arktos.client import spdy
from arktos.cluster.pki import create_ca

pytestmark = pytest.mark.timeout(30)


async def serve(app: web.Application, ctx: ssl.SSLContext | None = None) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    return runner, runner.addresses[0][1]


async def upper_echo(request: web.Request) -> web.StreamResponse:
    """Echo the upgraded connection's bytes upper-cased until the client stops."""
    if not pf.is_spdy_upgrade(request):
        raise web.HTTPBadRequest(text="upgrade to SPDY/3.1")
    resp, raw = await pf.accept_spdy(request, pf.PROTOCOL)
    while data := await raw.reader.read(65536):
        await raw.write(data.upper())
    raw.close()
    return resp


@pytest.mark.parametrize("tls", [False, True])
async def test_a_raw_spdy_upgrade_is_taken_over_from_aiohttp(tmp_path: Path, tls: bool) -> None:
    server_ctx = client_ctx = None
    if tls:
        ca = create_ca("pf-test")
        cert, key = ca.issue_serving(["127.0.0.1"])
        (tmp_path / "s.crt").write_bytes(cert)
        (tmp_path / "s.key").write_bytes(key)
        (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(tmp_path / "s.crt", tmp_path / "s.key")
        client_ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    app = web.Application()
    app.router.add_post("/pf", upper_echo)
    runner, port = await serve(app, server_ctx)
    try:
        url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/pf"
        reader, writer, headers = await spdy.upgrade(url, protocols=(pf.PROTOCOL,), ssl=client_ctx)
        assert headers["x-stream-protocol-version"] == pf.PROTOCOL and headers["upgrade"] == "SPDY/3.1"
        blob = os.urandom(600 * 1024).hex().lower().encode()  # 1.2 MB: past every buffer on the way
        got = bytearray()

        async def read() -> None:
            while len(got) < len(blob):
                chunk = await reader.read(65536)
                assert chunk, "the connection ended early"
                got.extend(chunk)

        reading = asyncio.create_task(read())
        writer.write(blob)
        await writer.drain()
        await asyncio.wait_for(reading, 20)
        assert bytes(got) == blob.upper()
        writer.close()
        # Not an upgrade: an ordinary answer, and the server is still an HTTP server afterwards.
        async with aiohttp.ClientSession() as s, s.post(url, ssl=client_ctx or False) as r:
            assert r.status == 400
    finally:
        await runner.cleanup()


async def test_the_websocket_tunnel_pipes_to_a_byte_stream() -> None:
    ended = asyncio.Event()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()
        ended.set()

    backend = await asyncio.start_server(echo, "127.0.0.1", 0)
    backend_port = backend.sockets[0].getsockname()[1]

    async def tunnel(request: web.Request) -> web.StreamResponse:
        assert pf.wants_tunnel(request)
        reader, writer = await asyncio.open_connection("127.0.0.1", backend_port)
        ws = web.WebSocketResponse(protocols=(pf.TUNNEL,), max_msg_size=0)
        await ws.prepare(request)

        async def write(data: bytes) -> None:
            writer.write(data)
            await writer.drain()

        await pf.pipe_stream(ws, reader, write, writer.close)
        return ws

    app = web.Application()
    app.router.add_get("/t", tunnel)
    runner, port = await serve(app)
    try:
        url = f"http://127.0.0.1:{port}/t"
        async with aiohttp.ClientSession() as s, s.ws_connect(url, protocols=(pf.TUNNEL,), max_msg_size=0) as ws:
            assert ws.protocol == pf.TUNNEL
            blob = os.urandom(300 * 1024)
            for i in range(0, len(blob), 7000):  # any split: it is a byte stream
                await ws.send_bytes(blob[i:i + 7000])
            got = bytearray()
            while len(got) < len(blob):
                msg = await asyncio.wait_for(ws.receive(), 10)
                assert msg.type == aiohttp.WSMsgType.BINARY, msg
                got.extend(msg.data)
            assert bytes(got) == blob
            assert not ended.is_set()
        await asyncio.wait_for(ended.wait(), 10)  # the client went away: so did the connection behind the tunnel
    finally:
        await runner.cleanup()
        backend.close()
        await backend.wait_closed()
