"""SPDY/3.1 client connections (asyncio), for the remote-command protocol's original transport.

Kubernetes' streaming servers (kubelet's, and containerd's and CRI-O's, which embed kubelet's CRI
streaming library) speak the remote-command protocol over WebSocket only up to
``v4.channel.k8s.io``, which cannot say "stdin is closed".  Over SPDY every standard stream is a
SPDY stream of its own, and closing the stdin stream (a DATA frame with FLAG_FIN) gives the
command EOF.  This module is the SPDY/3.1 side of that: an HTTP/1.1 upgrade, then framing.

Wire format (SPDY/3 draft, with 3.1's session-level flow control)::

    control frame: |1| version(15)=3 | type(16) | flags(8) | length(24) | payload
    data frame:    |0| stream-id(31)            | flags(8) | length(24) | data

Control frames used: SYN_STREAM (1: we open streams with odd IDs), SYN_REPLY (2), RST_STREAM (3),
SETTINGS (4), PING (6: the peer's, with even IDs, are echoed), GOAWAY (7), HEADERS (8) and
WINDOW_UPDATE (9).  Header blocks are name/value lists (32-bit counts and lengths, lower-case
names, NUL between several values) compressed with zlib primed with the SPDY/3 dictionary, one
zlib stream per direction for the whole connection, each block ending with a sync flush.

Flow control: Go's spdystream, under every Kubernetes streaming server, neither sends nor reads
WINDOW_UPDATE, and client-go sends none; so the peer's manners are learnt.  A peer that sends a
WINDOW_UPDATE or SETTINGS_INITIAL_WINDOW_SIZE does flow control: it is held to its windows (a
stream's and, SPDY/3.1, the session's) and ours are re-opened as the application reads.  A peer
that sends past a window we gave, or has taken a whole window of ours and answered a PING
without a WINDOW_UPDATE, does not: TCP's backpressure is then all there is (as between
spdystream peers), and we send it no WINDOW_UPDATE (see `_consumed` for why that matters).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as ssl_module
import struct
import zlib
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import urlsplit

__all__ = ["DICTIONARY", "SpdyConnection", "SpdyError", "SpdyStream", "UpgradeFailed", "decode_headers",
           "encode_headers", "upgrade"]

log = logging.getLogger(__name__)

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
SETTINGS_INITIAL_WINDOW_SIZE = 7
# RST_STREAM status codes
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, UNSUPPORTED_VERSION, CANCEL, INTERNAL_ERROR, \
    FLOW_CONTROL_ERROR, STREAM_IN_USE, STREAM_ALREADY_CLOSED = range(1, 10)

DEFAULT_WINDOW = 64 * 1024
MAX_DATA_FRAME = 32 * 1024  # what we put in one DATA frame
MAX_FRAME = (1 << 24) - 1  # the length field's limit
_READ_LIMIT = 1 << 20  # per stream: beyond this, stop reading the socket until the application catches up


def _dictionary() -> bytes:
    """The SPDY/3 header compression dictionary (draft 3, section 2.6.10.1): 1423 bytes, adler32 0xe3c6a7c2.

    Its first part is a list of 32-bit-length-prefixed strings, so it is built here that way; the rest
    is raw text.
    """
    listed = ("options head post put delete trace accept accept-charset accept-encoding accept-language "
             "accept-ranges age allow authorization cache-control connection content-base content-encoding "
             "content-language content-length content-location content-md5 content-range content-type date "
             "etag expect expires from host if-match if-modified-since if-none-match if-range "
             "if-unmodified-since last-modified location max-forwards pragma proxy-authenticate "
             "proxy-authorization range referer retry-after server te trailer transfer-encoding upgrade "
             "user-agent vary via warning www-authenticate method get status")
    words = [*listed.split(), "200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin"]
    tail = ("100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
            "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
            "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
            "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
            "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
            "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
            "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")
    return b"".join(struct.pack(">I", len(w)) + w.encode("ascii") for w in words) + tail.encode("ascii")


DICTIONARY = _dictionary()
assert len(DICTIONARY) == 1423 and zlib.adler32(DICTIONARY) == 0xE3C6A7C2, "SPDY/3 dictionary is off"


class SpdyError(Exception):
    """The SPDY session failed (protocol error, connection lost, stream reset)."""


class UpgradeFailed(SpdyError):
    """The server answered the upgrade request with something other than 101."""

    def __init__(self, status: int, reason: str, body: bytes, headers: Mapping[str, str]) -> None:
        text = body.decode("utf-8", "replace").strip()
        super().__init__(f"{status} {reason}" + (f": {text}" if text else ""))
        self.status = status
        self.reason = reason
        self.body = body
        self.headers = dict(headers)


# -- header blocks -------------------------------------------------------------------------------

def encode_headers(headers: Mapping[str, str | Sequence[str]]) -> bytes:
    """An uncompressed name/value block: names lower-cased, several values joined by NUL."""
    parts = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        n = name.lower().encode("utf-8")
        v = (value if isinstance(value, str) else "\0".join(value)).encode("utf-8")
        parts += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
    return b"".join(parts)


def decode_headers(block: bytes) -> dict[str, list[str]]:
    """The name/value pairs of an uncompressed block; SpdyError if it is malformed."""
    try:
        (count,), pos = struct.unpack_from(">I", block), 4
        out: dict[str, list[str]] = {}
        for _ in range(count):
            (n,) = struct.unpack_from(">I", block, pos)
            name = block[pos + 4:pos + 4 + n].decode("utf-8")
            pos += 4 + n
            (m,) = struct.unpack_from(">I", block, pos)
            value = block[pos + 4:pos + 4 + m].decode("utf-8")
            if len(name) != n or pos + 4 + m > len(block):
                raise SpdyError("truncated header block")
            pos += 4 + m
            out.setdefault(name.lower(), []).extend(value.split("\0"))
        return out
    except (struct.error, UnicodeDecodeError) as exc:
        raise SpdyError(f"malformed header block: {exc}") from None


def _control(ftype: int, flags: int, payload: bytes) -> bytes:
    if len(payload) > MAX_FRAME:
        raise SpdyError("control frame too large")
    return struct.pack(">HHI", 0x8000 | VERSION, ftype, (flags << 24) | len(payload)) + payload


def _data(stream_id: int, flags: int, data: bytes) -> bytes:
    return struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(data)) + data


# -- streams -------------------------------------------------------------------------------------

class SpdyStream:
    """One SPDY stream we opened: read what the peer sends, write, half-close, reset."""

    def __init__(self, conn: SpdyConnection, stream_id: int, headers: Mapping[str, str | Sequence[str]]) -> None:
        self.conn = conn
        self.id = stream_id
        self.headers = dict(headers)
        self.reply_headers: dict[str, list[str]] = {}
        self.replied: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.send_window = conn._initial_send_window
        self.reset_status: int | None = None  # the peer's RST_STREAM status, or ours
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._unacked = 0  # consumed but not yet given back with WINDOW_UPDATE
        self._outstanding = 0  # received but not yet given back: the peer's window is DEFAULT_WINDOW minus this
        self._remote_closed = False  # FIN, RST_STREAM or the connection's end
        self._local_closed = False
        self._readable = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._window = asyncio.Event()

    @property
    def remote_closed(self) -> bool:
        return self._remote_closed

    # called by the connection's reader

    def _deliver(self, data: bytes, fin: bool) -> None:
        if data and not self._remote_closed:
            self._chunks.append(data)
            self._buffered += len(data)
            if self._buffered >= _READ_LIMIT:
                self._drained.clear()
        if fin:
            self._remote_closed = True
        self._readable.set()

    def _end(self, status: int | None = None) -> None:
        if status is not None and self.reset_status is None:
            self.reset_status = status
        self._remote_closed = True
        self._local_closed = self._local_closed or status is not None
        self._readable.set()
        self._drained.set()
        self._window.set()
        if not self.replied.done():
            self.replied.set_exception(SpdyError(f"stream {self.id} reset before its reply"
                                                 if status is not None else "connection closed"))
            self.replied.exception()  # retrieved: nobody may be waiting

    # the application's side

    async def read(self) -> bytes:
        """The next piece of data; b"" once the peer has finished (FIN), reset the stream or gone away."""
        while not self._chunks:
            if self._remote_closed:
                return b""
            self._readable.clear()
            await self._readable.wait()
        data = self._chunks.popleft()
        self._buffered -= len(data)
        if self._buffered < _READ_LIMIT:
            self._drained.set()
        await self.conn._consumed(self, len(data))
        return data

    async def read_all(self) -> bytes:
        out = bytearray()
        while chunk := await self.read():
            out += chunk
        return bytes(out)

    async def write(self, data: bytes) -> None:
        """Send `data` in DATA frames, within the peer's windows; SpdyError if the stream cannot take it."""
        view = memoryview(data)
        while view:
            if self._local_closed or self.reset_status is not None:
                raise SpdyError(f"stream {self.id} is closed for writing")
            allowed = await self.conn._send_allowance(self, min(len(view), MAX_DATA_FRAME))
            chunk, view = bytes(view[:allowed]), view[allowed:]
            await self.conn._send(_data(self.id, 0, chunk))

    async def close_write(self) -> None:
        """Half-close: an empty DATA frame with FLAG_FIN (for stdin: EOF to the command)."""
        if self._local_closed or self.conn.closed:
            return
        self._local_closed = True
        await self.conn._send(_data(self.id, FLAG_FIN, b""))

    async def reset(self, status: int = CANCEL) -> None:
        if self.reset_status is None and not self.conn.closed:
            with contextlib.suppress(SpdyError, OSError):
                await self.conn._send(_control(RST_STREAM, 0, struct.pack(">II", self.id, status)))
        self._end(status)


# -- the upgrade ---------------------------------------------------------------------------------

async def upgrade(url: str, *, protocols: Iterable[str] = (), headers: Mapping[str, str] | None = None,
                  ssl: ssl_module.SSLContext | None = None, method: str = "POST",
                  timeout: float = 30.0) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, dict[str, str]]:
    """The HTTP/1.1 upgrade of a request for `url` to SPDY/3.1: the connection's reader and writer,
    positioned after the 101, and the answer's headers (lower-case names).  `protocols` go out in
    X-Stream-Protocol-Version, one header line each, as client-go sends them.  UpgradeFailed for any
    answer but 101.  `SpdyConnection.connect` speaks SPDY over it; a relay that only carries
    someone else's SPDY session (port-forward) pipes the bytes as they are."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {url}")
    tls = parts.scheme == "https"
    host = parts.hostname or "localhost"
    port = parts.port or (443 if tls else 80)
    if tls and ssl is None:
        ssl = ssl_module.create_default_context()
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    lines = [f"{method} {target} HTTP/1.1", f"Host: {netloc}", "Connection: Upgrade", "Upgrade: SPDY/3.1",
             "Content-Length: 0"]
    lines += [f"X-Stream-Protocol-Version: {p}" for p in protocols]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def go() -> tuple[asyncio.StreamReader, asyncio.StreamWriter, dict[str, str]]:
        reader, writer = await asyncio.open_connection(host, port, ssl=ssl if tls else None,
                                                       server_hostname=host if tls else None)
        try:
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            version, _, rest = status_line.partition(" ")
            code_text, _, reason = rest.partition(" ")
            if not version.startswith("HTTP/") or not code_text.isdigit():
                raise SpdyError(f"not an HTTP answer: {status_line!r}")
            got: dict[str, str] = {}
            for line in header_lines:
                if ":" in line:
                    k, _, v = line.partition(":")
                    got[k.strip().lower()] = v.strip()
            if int(code_text) != 101:
                body = b""
                with contextlib.suppress(asyncio.IncompleteReadError, ValueError, OSError, TimeoutError):
                    length = got.get("content-length")
                    body = await asyncio.wait_for(
                        reader.readexactly(int(length)) if length else reader.read(64 * 1024), 5)
                raise UpgradeFailed(int(code_text), reason, body, got)
            if got.get("upgrade", "").lower() != "spdy/3.1":
                raise SpdyError(f"the server switched to {got.get('upgrade')!r}, not SPDY/3.1")
            return reader, writer, got
        except BaseException:
            writer.close()
            raise

    try:
        return await asyncio.wait_for(go(), timeout)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        raise SpdyError(f"the upgrade answer was cut short or too long: {exc}") from None


# -- the connection ------------------------------------------------------------------------------

class SpdyConnection:
    """A client's SPDY/3.1 session over one upgraded HTTP/1.1 connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, protocol: str,
                 response_headers: Mapping[str, str]) -> None:
        self.protocol = protocol
        self.response_headers = dict(response_headers)
        self.closed = False
        self.goaway = False
        self.peer_flow_control: bool | None = None  # unknown until the peer shows it, or shows it does not
        self._reader = reader
        self._writer = writer
        self._compress = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY,
                                          zdict=DICTIONARY)
        self._decompress = zlib.decompressobj(zdict=DICTIONARY)
        self._streams: dict[int, SpdyStream] = {}
        self._next_id = 1
        self._next_ping = 1
        self._pings: dict[int, asyncio.Future[None]] = {}
        self._initial_send_window = DEFAULT_WINDOW
        self._session_send_window = DEFAULT_WINDOW
        self._session_unacked = 0
        self._session_outstanding = 0
        self._grace: asyncio.Task[None] | None = None
        self._session_window = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._closed_event = asyncio.Event()
        self.error: BaseException | None = None
        self._task = asyncio.create_task(self._read_loop(), name="spdy-reader")

    # -- opening -------------------------------------------------------------------------

    @classmethod
    async def connect(cls, url: str, *, protocols: Iterable[str] = (), headers: Mapping[str, str] | None = None,
                      ssl: ssl_module.SSLContext | None = None, method: str = "POST",
                      timeout: float = 30.0) -> SpdyConnection:
        """Upgrade an HTTP/1.1 request for `url` to SPDY/3.1, offering `protocols` in
        X-Stream-Protocol-Version (one header line each, as client-go sends them); the chosen one
        is `.protocol` ("" when the server chose none).  UpgradeFailed for any answer but 101."""
        reader, writer, got = await upgrade(url, protocols=protocols, headers=headers, ssl=ssl, method=method,
                                            timeout=timeout)
        return cls(reader, writer, got.get("x-stream-protocol-version", ""), got)

    async def open_stream(self, headers: Mapping[str, str | Sequence[str]], *, fin: bool = False,
                          priority: int = 0) -> SpdyStream:
        """SYN_STREAM with `headers` (FLAG_FIN with `fin`); the reply arrives in `stream.replied`."""
        if self.closed or self.goaway:
            raise SpdyError("the SPDY connection is closed" if self.closed else "the peer sent GOAWAY")
        stream = SpdyStream(self, self._next_id, headers)
        self._next_id += 2
        self._streams[stream.id] = stream
        if fin:
            stream._local_closed = True
        # Compressed and sent in one go: the shared zlib stream must see blocks in the order they go out.
        block = self._compress.compress(encode_headers(headers)) + self._compress.flush(zlib.Z_SYNC_FLUSH)
        payload = struct.pack(">IIBB", stream.id, 0, (priority & 7) << 5, 0) + block
        await self._send(_control(SYN_STREAM, FLAG_FIN if fin else 0, payload))
        return stream

    async def ping(self, timeout: float = 10.0) -> None:
        pid = self._next_ping
        self._next_ping += 2
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pings[pid] = fut
        try:
            await self._send(_control(PING, 0, struct.pack(">I", pid)))
            await asyncio.wait_for(fut, timeout)
        finally:
            self._pings.pop(pid, None)

    async def close(self) -> None:
        """GOAWAY and close the connection; every stream ends."""
        if not self.closed:
            with contextlib.suppress(SpdyError, OSError):
                await self._send(_control(GOAWAY, 0, struct.pack(">II", 0, 0)))
        self._shutdown(None)
        if self._grace is not None:
            self._grace.cancel()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task

    async def wait_closed(self) -> None:
        await self._closed_event.wait()

    # -- sending -------------------------------------------------------------------------

    async def _send(self, frame: bytes) -> None:
        if self.closed:
            raise SpdyError("the SPDY connection is closed")
        self._writer.write(frame)
        async with self._write_lock:
            try:
                await self._writer.drain()
            except (ConnectionError, OSError) as exc:
                self._shutdown(exc)
                raise SpdyError(f"the SPDY connection broke: {exc}") from exc

    async def _send_allowance(self, stream: SpdyStream, wanted: int) -> int:
        """How much of `wanted` may go now, waiting for the windows to open."""
        while True:
            if self.closed or stream.reset_status is not None:
                raise SpdyError(f"stream {stream.id} ended")
            if self.peer_flow_control is False:
                allowed = wanted
            else:
                allowed = min(wanted, stream.send_window, self._session_send_window)
            if allowed > 0:
                stream.send_window -= allowed
                self._session_send_window -= allowed
                return allowed
            if self.peer_flow_control is None:
                await self._probe_flow_control()
                continue
            stream._window.clear()
            self._session_window.clear()
            waiters = [asyncio.ensure_future(stream._window.wait()), asyncio.ensure_future(self._session_window.wait())]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()

    async def _probe_flow_control(self) -> None:
        """A full window is out and no WINDOW_UPDATE ever came: ask with a PING whether one is coming."""
        with contextlib.suppress(TimeoutError):
            await self.ping(timeout=10.0)
        if self.peer_flow_control is None:
            log.debug("SPDY peer took a full window without WINDOW_UPDATE: it does no flow control")
            self.peer_flow_control = False

    async def _consumed(self, stream: SpdyStream, n: int) -> None:
        """Give consumed bytes back to the peer's windows.

        To a peer that does flow control: once half a window has been read, as the draft suggests.
        To one that does not (it sent past a window): never.  Unknown: only when a window is used
        up (the peer, if strict, now waits) and nothing more came for a moment.  This restraint is
        for spdystream: it ignores WINDOW_UPDATE, and one that reaches it just as it closes the
        connection is unread data there, so its kernel answers with a TCP reset, which makes ours
        drop the command's last output and Status before we read them (seen with cat of 300 KB
        under load).  client-go sends none at all.
        """
        if self.closed or n <= 0:
            return
        stream._unacked += n
        self._session_unacked += n
        if self.peer_flow_control is True:
            if stream._unacked >= DEFAULT_WINDOW // 2 or self._session_unacked >= DEFAULT_WINDOW // 2:
                await self._give_back(stream_threshold=DEFAULT_WINDOW // 2, session_threshold=DEFAULT_WINDOW // 2)
        elif self.peer_flow_control is None and self._grace is None and (
                stream._outstanding >= DEFAULT_WINDOW or self._session_outstanding >= DEFAULT_WINDOW):
            self._grace = asyncio.create_task(self._give_back_later(), name="spdy-window-grace")

    async def _give_back_later(self) -> None:
        try:
            await asyncio.sleep(0.25)
            if self.peer_flow_control is None:  # still unknown: re-open only what is used up
                await self._give_back(stream_threshold=1, session_threshold=1, exhausted_only=True)
        finally:
            self._grace = None

    async def _give_back(self, *, stream_threshold: int, session_threshold: int, exhausted_only: bool = False) -> None:
        if self.closed:
            return
        frames = b""
        for s in self._streams.values():
            if exhausted_only and s._outstanding < DEFAULT_WINDOW:
                continue
            if s._unacked >= stream_threshold and not s._remote_closed:
                frames += _control(WINDOW_UPDATE, 0, struct.pack(">II", s.id, s._unacked))
                s._outstanding -= s._unacked
                s._unacked = 0
        if self._session_unacked >= session_threshold and (
                not exhausted_only or self._session_outstanding >= DEFAULT_WINDOW):
            frames += _control(WINDOW_UPDATE, 0, struct.pack(">II", 0, self._session_unacked))
            self._session_outstanding -= self._session_unacked
            self._session_unacked = 0
        if frames:
            with contextlib.suppress(SpdyError):
                await self._send(frames)

    # -- receiving -----------------------------------------------------------------------

    def _shutdown(self, error: BaseException | None) -> None:
        if self.closed:
            return
        self.closed = True
        self.error = error
        for stream in list(self._streams.values()):
            stream._end()
        for fut in self._pings.values():
            if not fut.done():
                fut.set_exception(SpdyError("connection closed"))
                fut.exception()
        self._session_window.set()
        with contextlib.suppress(Exception):
            self._writer.close()
        self._closed_event.set()

    async def _read_loop(self) -> None:
        error: BaseException | None = None
        try:
            while True:
                head = await self._reader.readexactly(8)
                first, flags_len = struct.unpack(">II", head)
                flags, length = flags_len >> 24, flags_len & 0xFFFFFF
                payload = await self._reader.readexactly(length) if length else b""
                if first & 0x80000000:
                    version, ftype = (first >> 16) & 0x7FFF, first & 0xFFFF
                    if version != VERSION:
                        raise SpdyError(f"SPDY version {version} frames from the peer")
                    await self._control_frame(ftype, flags, payload)
                else:
                    await self._data_frame(first & 0x7FFFFFFF, flags, payload)
        except asyncio.IncompleteReadError:
            pass  # the peer closed the connection
        except asyncio.CancelledError:
            raise
        except (ConnectionError, OSError, SpdyError, zlib.error) as exc:
            error = exc
            log.debug("SPDY connection: %s", exc)
        finally:
            self._shutdown(error)

    def _headers(self, block: bytes) -> dict[str, list[str]]:
        return decode_headers(self._decompress.decompress(block)) if block else {}

    async def _data_frame(self, stream_id: int, flags: int, data: bytes) -> None:
        stream = self._streams.get(stream_id)
        self._session_outstanding += len(data)
        if stream is not None:
            stream._outstanding += len(data)
        if self.peer_flow_control is None and (self._session_outstanding > DEFAULT_WINDOW or (
                stream is not None and stream._outstanding > DEFAULT_WINDOW)):
            log.debug("SPDY peer sent past the window it was given: it does no flow control")
            self.peer_flow_control = False
        if stream is None or stream.reset_status is not None:
            # Data for a stream we do not know (or reset): counted against the session all the same.
            self._session_unacked += len(data)
            if stream is None and stream_id % 2 == 1:
                await self._send(_control(RST_STREAM, 0, struct.pack(">II", stream_id, INVALID_STREAM)))
            return
        stream._deliver(data, bool(flags & FLAG_FIN))
        if not stream._drained.is_set():
            await stream._drained.wait()  # the application is behind: stop reading the socket (TCP backpressure)

    async def _control_frame(self, ftype: int, flags: int, p: bytes) -> None:
        if ftype == SYN_REPLY:
            (sid,) = struct.unpack_from(">I", p)
            headers = self._headers(p[4:])
            stream = self._streams.get(sid & 0x7FFFFFFF)
            if stream is not None and not stream.replied.done():
                stream.reply_headers = headers
                stream.replied.set_result(None)
                if flags & FLAG_FIN:
                    stream._deliver(b"", True)
        elif ftype == HEADERS:
            (sid,) = struct.unpack_from(">I", p)
            headers = self._headers(p[4:])
            stream = self._streams.get(sid & 0x7FFFFFFF)
            if stream is not None:
                for k, v in headers.items():
                    stream.reply_headers.setdefault(k, []).extend(v)
                if flags & FLAG_FIN:
                    stream._deliver(b"", True)
        elif ftype == SYN_STREAM:
            # A server-initiated stream (push): the remote-command protocol has none.  The header block
            # must still go through the decompressor to keep the shared zlib stream in step.
            (sid,) = struct.unpack_from(">I", p)
            self._headers(p[10:])
            await self._send(_control(RST_STREAM, 0, struct.pack(">II", sid & 0x7FFFFFFF, REFUSED_STREAM)))
        elif ftype == RST_STREAM:
            sid, status = struct.unpack_from(">II", p)
            stream = self._streams.pop(sid & 0x7FFFFFFF, None)
            if stream is not None:
                stream._end(status)
        elif ftype == SETTINGS:
            (count,) = struct.unpack_from(">I", p)
            for i in range(count):
                id_flags, value = struct.unpack_from(">II", p, 4 + 8 * i)
                if id_flags & 0xFFFFFF == SETTINGS_INITIAL_WINDOW_SIZE:
                    delta = value - self._initial_send_window
                    self._initial_send_window = value
                    self.peer_flow_control = True
                    for s in self._streams.values():
                        s.send_window += delta
                        s._window.set()
        elif ftype == PING:
            (pid,) = struct.unpack_from(">I", p)
            if pid % 2 == 0:  # the server's: echo it
                await self._send(_control(PING, 0, p[:4]))
            elif (fut := self._pings.get(pid)) is not None and not fut.done():
                fut.set_result(None)
        elif ftype == GOAWAY:
            self.goaway = True
        elif ftype == WINDOW_UPDATE:
            sid, delta = struct.unpack_from(">II", p)
            sid, delta = sid & 0x7FFFFFFF, delta & 0x7FFFFFFF
            self.peer_flow_control = True
            if sid == 0:
                self._session_send_window += delta
                self._session_window.set()
            elif (stream := self._streams.get(sid)) is not None:
                stream.send_window += delta
                stream._window.set()
        # Other types (NOOP of SPDY/2, CREDENTIAL) are ignored, as the draft says of unknown ones.
