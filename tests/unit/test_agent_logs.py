"""Reading container logs as `kubectl logs` asks (arktos.agent.logs), on real files.

What users rely on: --tail counts lines as they were printed (containerd's partial pieces
joined), --since and --timestamps use the runtime's stamps, --limit-bytes cuts exactly, and
-f keeps up with a file that grows, is rotated away or is truncated, and ends with the container.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from arktos.agent.logs import LogOptions, parse_cri_time, stream_log

LINES = (b"2024-01-01T00:00:00.000000001Z stdout F one\n"
         b"2024-01-01T00:00:01.5Z stdout P tw\n"
         b"2024-01-01T00:00:02Z stdout F o\n"
         b"2024-01-01T00:00:03Z stderr F three\n")


async def read(path: Path, cri: bool = True, **opts) -> bytes:
    out: list[bytes] = []

    async def write(b: bytes) -> None:
        out.append(b)

    await stream_log(path, cri, LogOptions(**opts), write, lambda: False)
    return b"".join(out)


async def test_tail_since_timestamps_limit_and_streams(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    log.write_bytes(LINES)
    assert await read(log) == b"one\ntwo\nthree\n"
    assert [await read(log, tail_lines=n) for n in range(5)] == [
        b"", b"three\n", b"two\nthree\n", b"one\ntwo\nthree\n", b"one\ntwo\nthree\n"]
    # A joined line carries its first piece's stamp.
    assert await read(log, tail_lines=2, timestamps=True) == (b"2024-01-01T00:00:01.5Z two\n"
                                                              b"2024-01-01T00:00:03Z three\n")
    assert await read(log, limit_bytes=5) == b"one\nt"
    assert await read(log, since=parse_cri_time("2024-01-01T00:00:01Z")) == b"two\nthree\n"
    assert await read(log, stream="Stderr") == b"three\n"
    assert await read(log, stream="Stdout", tail_lines=1) == b""  # tail counts every stream's lines first


async def test_tail_of_a_big_file_reads_from_the_end(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    log.write_bytes(b"".join(b"2024-01-01T00:00:00Z stdout F line %d\n" % i for i in range(50000)))
    assert await read(log, tail_lines=3) == b"line 49997\nline 49998\nline 49999\n"


async def test_raw_console_text_goes_out_as_it_is(tmp_path: Path) -> None:
    console = tmp_path / "console.log"
    console.write_bytes(b"booting\nstill booting\nvm login: ")
    assert await read(console, cri=False) == b"booting\nstill booting\nvm login: "
    assert await read(console, cri=False, tail_lines=1) == b"vm login: "
    assert await read(tmp_path / "console.log", cri=False, tail_lines=0) == b""


async def test_follow_keeps_up_with_growth_rotation_and_truncation_and_ends_with_the_container(
        tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    log.write_bytes(b"2024-01-01T00:00:00Z stdout F first\n")
    got: asyncio.Queue[bytes] = asyncio.Queue()
    running = True

    async def write(b: bytes) -> None:
        await got.put(b)

    task = asyncio.create_task(stream_log(log, True, LogOptions(follow=True), write, lambda: running))

    async def next_out() -> bytes:
        return await asyncio.wait_for(got.get(), 3)

    assert await next_out() == b"first\n"
    with log.open("ab") as f:
        f.write(b"2024-01-01T00:00:01Z stdout P half \n")
        f.flush()
        await asyncio.sleep(0.3)
        assert got.empty()  # a partial line waits for its end
        f.write(b"2024-01-01T00:00:01Z stdout F line\n")
    assert await next_out() == b"half line\n"
    # Rotation (containerd renames the file and starts a new one): the old file is finished first.
    with log.open("ab") as f:
        f.write(b"2024-01-01T00:00:02Z stdout F last of the old file\n")
    os.rename(log, tmp_path / "0.log.20240101-000002")
    log.write_bytes(b"2024-01-01T00:00:03Z stdout F first of the new file\n")
    assert b"".join([await next_out(), await next_out()]) == b"last of the old file\nfirst of the new file\n"
    # Truncated in place: read again from the start.
    log.write_bytes(b"2024-01-01T00:00:04Z stdout F after truncation\n")
    assert await next_out() == b"after truncation\n"
    # The container ends: what it wrote last still arrives, then the stream ends.
    with log.open("ab") as f:
        f.write(b"2024-01-01T00:00:05Z stderr F goodbye\n")
    running = False
    await asyncio.wait_for(task, 3)
    rest = b""
    while not got.empty():
        rest += got.get_nowait()
    assert rest == b"goodbye\n"


def test_rfc3339_with_nanoseconds() -> None:
    assert parse_cri_time("2024-01-01T00:00:00.123456789Z") == parse_cri_time("2024-01-01T00:00:00.123456Z")
    assert parse_cri_time("2024-01-01T01:00:00+01:00") == parse_cri_time("2024-01-01T00:00:00Z")
    assert parse_cri_time("yesterday") is None
