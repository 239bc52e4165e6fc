"""One watch stream: newline-delimited JSON events over a chunked HTTP response.

Lines are split by hand rather than with the stream reader's `readline`,
which refuses lines past its buffer limit; an object may be a megabyte.
An `ERROR` event is raised as the `APIError` it carries (410 Gone most of
all), so callers handle a failed watch the same way as a failed request.
"""

from __future__ import annotations

import collections
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp
import orjson

from arktos.api.errors import APIError

__all__ = ["TransportError", "Watch", "WatchEvent"]


class TransportError(Exception):
    """The server could not be reached, or the connection broke: nothing the server said.

    Kept apart from `APIError` because the right reaction differs: an
    APIError is an answer, a TransportError means "try again later".
    """


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """`type` is ADDED, MODIFIED, DELETED or BOOKMARK; `object` the decoded object."""

    type: str
    object: dict[str, Any]

    @property
    def resource_version(self) -> str:
        return str((self.object.get("metadata") or {}).get("resourceVersion") or "")


def status_error(status: dict[str, Any], http_code: int = 0) -> APIError:
    """An `APIError` from a Status object, as the server built it."""
    return APIError(
        int(status.get("code") or http_code or 500),
        str(status.get("reason") or "Unknown"),
        str(status.get("message") or ""),
        status.get("details") or None,
    )


Opener = Callable[[], Awaitable[aiohttp.ClientResponse]]


class Watch:
    """An async iterator of `WatchEvent`s that is also an async context manager.

    Use `async with client.watch(...) as events:` to release the connection as
    soon as the block ends, also on `break`; a plain `async for` releases it
    when the stream ends.
    """

    def __init__(self, opener: Opener) -> None:
        self._opener = opener
        self._resp: aiohttp.ClientResponse | None = None
        self._buf = bytearray()
        self._lines: collections.deque[bytes] = collections.deque()
        self._done = False

    async def __aenter__(self) -> Watch:
        await self._open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.close()

    def __aiter__(self) -> Watch:
        return self

    async def _open(self) -> None:
        if self._resp is None and not self._done:
            self._resp = await self._opener()

    def close(self) -> None:
        """Drop the connection (a watch cannot be returned to the pool mid-stream)."""
        self._done = True
        if self._resp is not None:
            self._resp.close()
            self._resp = None

    async def __anext__(self) -> WatchEvent:
        await self._open()
        while not self._lines:
            if self._resp is None:
                raise StopAsyncIteration
            try:
                chunk = await self._resp.content.readany()
            except (aiohttp.ClientError, OSError) as exc:
                self.close()
                raise TransportError(f"watch stream broke: {exc!r}") from exc
            if not chunk:
                tail = bytes(self._buf).strip()
                self._buf.clear()
                self.close()
                if tail:
                    self._lines.append(tail)
                    break
                raise StopAsyncIteration
            self._buf += chunk
            start = 0
            while (end := self._buf.find(b"\n", start)) >= 0:
                if end > start:
                    self._lines.append(bytes(self._buf[start:end]))
                start = end + 1
            del self._buf[:start]
        line = self._lines.popleft()
        try:
            event = orjson.loads(line)
            etype, obj = event["type"], event["object"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            self.close()
            raise TransportError(f"undecodable watch event: {line[:200]!r}") from exc
        if etype == "ERROR":
            self.close()
            raise status_error(obj if isinstance(obj, dict) else {})
        return WatchEvent(etype, obj)
