"""Exec over SPDY/3.1 against containerd's own streaming server (kubelet's CRI streaming library).

The URL comes from CRI's Exec (`ContainerdRuntime.exec_url`), the session is `arktos.client.spdy`
and `remotecommand.spdy_exec`, as the node agent uses them: stdout and stderr apart, stdin closed
with a FIN so the command sees EOF (what WebSocket v4 cannot say), the exit code in the v4 Status,
and a TTY resized through the resize stream.
"""

from __future__ import annotations

import asyncio
import os
import zlib

import pytest

from arktos.client import remotecommand as rc
from arktos.client import spdy
from tests.integration.test_containerd_runtime import box, pod, runtime  # noqa: F401  (the fixture)

pytestmark = pytest.mark.timeout(120)


async def run(rt, p, command, *, data: bytes | None = None, tty=False, size=None):
    session = await rc.spdy_exec(await rt.exec_url(p, "main", command, stdin=data is not None, stdout=True,
                                                   stderr=True, tty=tty),
                                 stdin=data is not None, stdout=True, stderr=True, tty=tty)
    try:
        assert session.protocol == rc.V4
        if size:
            await session.resize_to(*size)
        if data is not None:
            await session.stdin.write(data)
            await session.stdin.close_write()
        out, err, status = await asyncio.wait_for(asyncio.gather(
            session.stdout.read_all(), session.stderr.read_all() if session.stderr else asyncio.sleep(0, b""),
            session.status()), 30)
        return out, err, status
    finally:
        await session.close()


async def test_exec_over_spdy_streams_exit_codes_and_stdin_eof(runtime):  # noqa: F811
    p = pod("spdy", box("main", "sleep 3600"))
    await runtime.sync_pod(p)

    out, err, status = await run(runtime, p, ["echo", "hello"])
    assert (out, err, status["status"], rc.exit_code(status)) == (b"hello\n", b"", "Success", 0)

    out, err, status = await run(runtime, p, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (out, err, rc.exit_code(status), status["reason"]) == (b"out\n", b"err\n", 3, "NonZeroExitCode")

    # stdin to cat, then FIN: cat sees EOF and ends.  300 KB is several 64 KiB windows: containerd's
    # spdystream never sends WINDOW_UPDATE, which the client finds out with a PING and carries on.
    blob = os.urandom(300 * 1024)
    out, err, status = await run(runtime, p, ["cat"], data=blob)
    assert len(out) == len(blob) and out == blob and rc.exit_code(status) == 0

    out, _, status = await run(runtime, p, ["sh", "-c", "wc -c; exit 5"], data=b"x" * 1000)
    assert (out.split(), rc.exit_code(status)) == ([b"1000"], 5)

    # Not a command in the container: a Status that says so, with no exit code of a command.
    _, _, status = await run(runtime, p, ["/no/such/binary"])
    assert status["status"] == "Failure" and status["message"], status


async def test_a_tty_is_resized_through_the_resize_stream(runtime):  # noqa: F811
    p = pod("spdytty", box("main", "sleep 3600"))
    await runtime.sync_pod(p)
    out, err, status = await run(runtime, p, ["sh", "-c", "sleep 0.5; stty size"], tty=True, size=(123, 45))
    assert out.replace(b"\r", b"").strip() == b"45 123" and err == b"" and rc.exit_code(status) == 0
    # And input on a TTY: the line discipline echoes it; `head -n1` ends on the newline.
    session = await rc.spdy_exec(await runtime.exec_url(p, "main", ["head", "-n1"], stdin=True, stdout=True,
                                                        stderr=False, tty=True),
                                 stdin=True, stdout=True, stderr=False, tty=True)
    try:
        assert session.stderr is None and session.resize is not None
        await session.stdin.write(b"typed\n")
        out, status = await asyncio.wait_for(asyncio.gather(session.stdout.read_all(), session.status()), 30)
    finally:
        await session.close()
    assert out.count(b"typed") == 2 and rc.exit_code(status) == 0, out


def test_header_blocks_round_trip_through_the_spdy3_dictionary():
    assert len(spdy.DICTIONARY) == 1423 and zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2
    block = spdy.encode_headers({"streamType": "stdin", "x": ["a", "b"]})
    comp = zlib.compressobj(zdict=spdy.DICTIONARY)
    wire = comp.compress(block) + comp.flush(zlib.Z_SYNC_FLUSH)
    assert wire[2:6] == bytes.fromhex("e3c6a7c2")  # the dictionary's id in the zlib header
    again = zlib.decompressobj(zdict=spdy.DICTIONARY).decompress(wire)
    assert spdy.decode_headers(again) == {"streamtype": ["stdin"], "x": ["a", "b"]}
