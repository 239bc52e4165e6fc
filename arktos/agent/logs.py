"""Reading a container's log file the way `kubectl logs` asks: tail, since, timestamps, limit, follow.

The same for every runtime: a runtime only says where the file is and whether it has CRI's
line format (`<RFC3339Nano> <stdout|stderr> <F|P> <text>`, what containerd writes; a long
line is split into P(artial) pieces ended by an F(ull) one) or is raw text (a VM's serial
console).  Everything here counts *logical* lines: P pieces are joined before tail counts
them or since compares them, and one timestamp (the first piece's) prefixes the joined line.

Raw files have no timestamps, so `timestamps` and `since*` cannot apply to them and are ignored;
tail and limitBytes work, and the bytes go out as they are (a console's prompt has no newline).

Following polls the file (no inotify in the standard library, and a poll every 100 ms costs
nothing for the one file a `kubectl logs -f` watches): growth is read and sent, a file that
was renamed away and replaced (log rotation) is finished and the new one read from its start,
a truncated file is read again from the start, and the stream ends once the container is no
longer running and the file has been drained.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LogOptions", "parse_cri_time", "stream_log"]

CHUNK = 64 * 1024
POLL = 0.1


@dataclass
class LogOptions:
    """PodLogOptions as the agent applies them (validated by the caller)."""

    tail_lines: int | None = None
    since: float | None = None  # epoch seconds; lines older are skipped
    timestamps: bool = False
    limit_bytes: int | None = None
    follow: bool = False
    stream: str = "All"  # All | Stdout | Stderr


def parse_cri_time(text: str) -> float | None:
    """Epoch seconds of an RFC 3339 timestamp with up to nanoseconds; None if it is not one."""
    try:
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        head, sep, rest = text.partition(".")
        if sep:  # Python takes at most 6 fraction digits: keep the zone, trim the fraction
            digits = len(rest) - len(rest.lstrip("0123456789"))
            frac, zone = rest[:digits], rest[digits:]
            text = f"{head}.{(frac + '000000')[:6]}{zone}"
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def _split_cri(line: bytes) -> tuple[bytes, bytes, bool, bytes] | None:
    """(timestamp, stream, full, text) of a CRI line, None when it is not one."""
    parts = line.split(b" ", 3)
    if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr") or parts[2] not in (b"F", b"P"):
        return None
    return parts[0], parts[1], parts[2] == b"F", parts[3] if len(parts) > 3 else b""


def _ends_logical_line(line: bytes, cri: bool) -> bool:
    if not cri:
        return True
    parsed = _split_cri(line)
    return parsed is None or parsed[2]


def tail_offset(f, n: int, cri: bool) -> int:
    """The file offset where the last `n` logical lines start (reads backwards from the end)."""
    end = f.seek(0, os.SEEK_END)
    if n <= 0:
        return end
    pos, buf = end, b""
    while pos > 0:
        step = min(CHUNK, pos)
        pos -= step
        f.seek(pos)
        buf = f.read(step) + buf
        # Physical lines ending in buf; the first may be cut unless buf starts the file.
        lines_end = len(buf)
        ends_seen = 0
        idx = lines_end
        # The last line may lack its newline (being written): it still counts as a line.
        if buf.endswith(b"\n"):
            idx -= 1
        while True:
            start = buf.rfind(b"\n", 0, idx) + 1
            if start == 0 and pos > 0:
                break  # this line may be cut: read further back
            line = buf[start:idx]
            # A line not ended by F (a trailing partial) still closes the last logical line.
            if _ends_logical_line(line, cri) or idx >= len(buf) - 1:
                ends_seen += 1
                if ends_seen > n:
                    return pos + idx + 1
            if start == 0:
                return 0
            idx = start - 1
    return 0


class _Formatter:
    """Turns physical lines into output bytes, joining CRI partial pieces."""

    def __init__(self, cri: bool, opts: LogOptions) -> None:
        self.cri = cri
        self.opts = opts
        self.pending: dict[bytes, tuple[bytes, list[bytes]]] = {}  # stream -> (timestamp, pieces)
        self.want_stream = {"Stdout": b"stdout", "Stderr": b"stderr"}.get(opts.stream)

    def line(self, raw: bytes) -> bytes:
        if not self.cri:
            return raw + b"\n"
        parsed = _split_cri(raw)
        if parsed is None:  # not CRI after all (a hand-written line): pass it through
            return raw + b"\n"
        stamp, stream, full, text = parsed
        if self.want_stream is not None and stream != self.want_stream:
            return b""
        if not full:
            first, pieces = self.pending.get(stream, (stamp, []))
            pieces.append(text)
            self.pending[stream] = (first, pieces)
            return b""
        if stream in self.pending:
            stamp, pieces = self.pending.pop(stream)
            text = b"".join(pieces) + text
        if self.opts.since is not None:
            when = parse_cri_time(stamp.decode("ascii", "replace"))
            if when is not None and when < self.opts.since:
                return b""
        prefix = stamp + b" " if self.opts.timestamps else b""
        return prefix + text + b"\n"

    def flush(self) -> bytes:
        """What partial pieces remain at the very end (a container that died mid-line)."""
        out = b""
        for stamp, pieces in self.pending.values():
            prefix = stamp + b" " if self.opts.timestamps else b""
            out += prefix + b"".join(pieces)
        self.pending.clear()
        return out


async def stream_log(path: Path, cri: bool, opts: LogOptions, write: Callable[[bytes], Awaitable[None]],
                     running: Callable[[], bool]) -> None:
    """Write the log at `path` as `opts` says; with `follow`, keep writing what is appended until
    `running()` turns false (then drain) or the caller is cancelled (the client went away)."""
    fmt = _Formatter(cri, opts)
    left = opts.limit_bytes

    async def emit(data: bytes) -> bool:
        """Write; False once limitBytes is used up."""
        nonlocal left
        if not data:
            return True
        if left is not None:
            data = data[:left]
            left -= len(data)
        await write(data)
        return left is None or left > 0

    # A local file's open and reads of 64 KiB do not block the loop noticeably; a thread per
    # followed log would cost more than it saves.  The handle is swapped on rotation, closed below.
    f = open(path, "rb")  # noqa: ASYNC230, SIM115
    try:
        inode = os.fstat(f.fileno()).st_ino
        offset = tail_offset(f, opts.tail_lines, cri) if opts.tail_lines is not None else 0
        f.seek(offset)
        carry = b""
        idle_checks = 0
        while True:
            chunk = f.read(CHUNK)
            if chunk:
                idle_checks = 0
                if not cri:  # raw text (a console) goes out as it is, prompts without newline included
                    if not await emit(chunk):
                        return
                    continue
                data = carry + chunk
                lines = data.split(b"\n")
                carry = lines.pop()
                out = b"".join(fmt.line(raw) for raw in lines)
                if not await emit(out):
                    return
                continue
            # At the end of the file.
            if not opts.follow:
                break
            try:
                st = os.stat(path)
            except FileNotFoundError:
                st = None
            if st is not None and st.st_ino != inode:  # rotated: the old file is drained, read the new one
                f.close()
                f = open(path, "rb")  # noqa: ASYNC230, SIM115
                inode = os.fstat(f.fileno()).st_ino
                if carry and not await emit(fmt.line(carry)):
                    return
                carry = b""
                continue
            if st is not None and st.st_size < f.tell():  # truncated in place
                f.seek(0)
                carry = b""
                continue
            if not running():
                idle_checks += 1
                if idle_checks > 1:  # one more read after it ended: its last lines are in
                    break
                continue
            await asyncio.sleep(POLL)
        if carry and not await emit(fmt.line(carry)):
            return
        await emit(fmt.flush())
    finally:
        f.close()
