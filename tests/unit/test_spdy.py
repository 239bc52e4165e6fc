"""The SPDY client against a strict peer: one that announces a small window and gives it back only as
it reads (containerd's spdystream does no flow control at all, so tests/integration/test_spdy_exec.py
cannot show that the client keeps to a window).  The peer is a few lines of asyncio on a real socket,
framing with the same SPDY/3 rules: its own zlib streams, the SPDY/3 dictionary, even PING IDs.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import zlib

import pytest

from arktos.client import spdy

pytestmark = pytest.mark.timeout(30)

WINDOW = 1000


def control(ftype: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8003, ftype, (flags << 24) | len(payload)) + payload


async def strict_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: dict) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    seen["request"] = head.decode()
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                 b"X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n")
    # SETTINGS: INITIAL_WINDOW_SIZE = WINDOW, and a PING of ours (even ID) to be echoed.
    writer.write(control(spdy.SETTINGS, 0, struct.pack(">III", 1, spdy.SETTINGS_INITIAL_WINDOW_SIZE, WINDOW)))
    writer.write(control(spdy.PING, 0, struct.pack(">I", 2)))
    inflate = zlib.decompressobj(zdict=spdy.DICTIONARY)
    deflate = zlib.compressobj(zdict=spdy.DICTIONARY)
    outstanding: dict[int, int] = {}
    received: dict[int, bytearray] = {}
    seen["max_outstanding"] = 0
    while True:
        first, flags_len = struct.unpack(">II", await reader.readexactly(8))
        flags, length = flags_len >> 24, flags_len & 0xFFFFFF
        p = await reader.readexactly(length)
        if first & 0x80000000:
            ftype = first & 0xFFFF
            if ftype == spdy.SYN_STREAM:
                sid = struct.unpack_from(">I", p)[0]
                seen.setdefault("streams", {})[sid] = spdy.decode_headers(inflate.decompress(p[10:]))
                outstanding[sid], received[sid] = 0, bytearray()
                block = deflate.compress(spdy.encode_headers({})) + deflate.flush(zlib.Z_SYNC_FLUSH)
                writer.write(control(spdy.SYN_REPLY, 0, struct.pack(">I", sid) + block))
            elif ftype == spdy.PING:
                seen.setdefault("pings", []).append(struct.unpack(">I", p)[0])
                if struct.unpack(">I", p)[0] % 2:
                    writer.write(control(spdy.PING, 0, p))
            elif ftype == spdy.GOAWAY:
                writer.close()
                return
        else:
            sid = first
            outstanding[sid] += len(p)
            seen["max_outstanding"] = max(seen["max_outstanding"], outstanding[sid])
            received[sid] += p
            # Read slowly, then give the window back.
            await asyncio.sleep(0.01)
            outstanding[sid] -= len(p)
            if p:
                writer.write(control(spdy.WINDOW_UPDATE, 0, struct.pack(">II", sid, len(p))))
            if flags & spdy.FLAG_FIN:  # echo it all back upper-cased, then FIN
                writer.write(struct.pack(">II", sid, len(received[sid])) + bytes(received[sid]).upper())
                writer.write(struct.pack(">II", sid, spdy.FLAG_FIN << 24))
        await writer.drain()


async def test_a_strict_peers_window_is_kept_and_its_pings_answered():
    seen: dict = {}
    server = await asyncio.start_server(lambda r, w: strict_peer(r, w, seen), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        conn = await spdy.SpdyConnection.connect(f"http://127.0.0.1:{port}/exec/tok?x=1",
                                                 protocols=["v4.channel.k8s.io", "v3.channel.k8s.io"])
        assert conn.protocol == "v4.channel.k8s.io"
        stream = await conn.open_stream({"streamType": "stdin"})
        await asyncio.wait_for(stream.replied, 5)
        payload = b"abcdefghij" * 800  # 8 windows' worth
        await asyncio.wait_for(stream.write(payload), 10)
        await stream.close_write()
        assert await asyncio.wait_for(stream.read_all(), 10) == payload.upper()
        assert conn.peer_flow_control is True
        await conn.close()
    finally:
        server.close()
    assert 0 < seen["max_outstanding"] <= WINDOW
    assert 2 in seen["pings"]  # ours came back
    assert seen["streams"] == {1: {"streamtype": ["stdin"]}}
    assert "POST /exec/tok?x=1 HTTP/1.1" in seen["request"] and "Upgrade: SPDY/3.1" in seen["request"]
    assert "X-Stream-Protocol-Version: v4.channel.k8s.io\r\nX-Stream-Protocol-Version: v3" in seen["request"]


async def test_a_refused_upgrade_says_what_the_server_said():
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 14\r\n\r\nunknown token\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    try:
        with pytest.raises(spdy.UpgradeFailed) as err:
            await spdy.SpdyConnection.connect(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/exec/x")
        assert err.value.status == 404 and "unknown token" in str(err.value)
    finally:
        server.close()


async def silent_sender(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: dict, strict: bool) -> None:
    """A peer that announces nothing and sends 64 KiB + 1000 bytes on the first stream: if `strict`, it
    waits for WINDOW_UPDATEs (stream and session) after the first window; else it sends straight on."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n")
    deflate = zlib.compressobj(zdict=spdy.DICTIONARY)
    seen["updates"] = []
    first, flags_len = struct.unpack(">II", await reader.readexactly(8))
    await reader.readexactly(flags_len & 0xFFFFFF)  # SYN_STREAM 1
    block = deflate.compress(spdy.encode_headers({})) + deflate.flush(zlib.Z_SYNC_FLUSH)
    writer.write(control(spdy.SYN_REPLY, 0, struct.pack(">I", 1) + block))
    for _ in range(2):
        writer.write(struct.pack(">II", 1, 32 * 1024) + b"a" * 32 * 1024)
    await writer.drain()
    if strict:
        while {sid for sid, _ in seen["updates"]} != {0, 1}:
            first, flags_len = struct.unpack(">II", await reader.readexactly(8))
            p = await reader.readexactly(flags_len & 0xFFFFFF)
            if first & 0xFFFF == spdy.WINDOW_UPDATE:
                seen["updates"].append(struct.unpack(">II", p))
    writer.write(struct.pack(">II", 1, (spdy.FLAG_FIN << 24) | 1000) + b"b" * 1000)
    await writer.drain()
    await asyncio.sleep(0.5)  # what the client sends meanwhile is counted
    with contextlib.suppress(asyncio.TimeoutError, asyncio.IncompleteReadError):
        while True:
            first, flags_len = struct.unpack(">II", await asyncio.wait_for(reader.readexactly(8), 0.1))
            p = await reader.readexactly(flags_len & 0xFFFFFF)
            if first & 0xFFFF == spdy.WINDOW_UPDATE and first & 0x80000000:
                seen["updates"].append(struct.unpack(">II", p))
    writer.close()


@pytest.mark.parametrize("strict", [True, False])
async def test_windows_reopen_for_a_silent_strict_sender_and_never_for_one_that_ignores_them(strict):
    seen: dict = {}
    server = await asyncio.start_server(lambda r, w: silent_sender(r, w, seen, strict), "127.0.0.1", 0)
    try:
        conn = await spdy.SpdyConnection.connect(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/x")
        stream = await conn.open_stream({"streamtype": "stdout"})
        got = await asyncio.wait_for(stream.read_all(), 10)
        assert got == b"a" * 65536 + b"b" * 1000
        await asyncio.sleep(0.6)
        await conn.close()
    finally:
        server.close()
    if strict:  # it waited at the window's end: given back after a moment without more data
        assert sorted(seen["updates"]) == [(0, 65536), (1, 65536)]
        assert conn.peer_flow_control is None
    else:  # it sent past the window: no WINDOW_UPDATE, ever (spdystream would reset on a late one)
        assert seen["updates"] == [] and conn.peer_flow_control is False
