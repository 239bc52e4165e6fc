"""The etcd store: bytes in, bytes out, guarded by revisions.

The API server's objects are stored as JSON bytes; this layer knows nothing
of their shape.  Every write is a transaction that compares a revision, because
etcd3aio retries RPCs on UNAVAILABLE: a blind put could be applied twice, a
compare-guarded one cannot.  An object's resourceVersion is its key's
mod_revision; a list's is the store revision it was read at.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import grpc
from etcd3aio import Etcd3Client, EtcdConnectionError, EtcdError
from etcd3aio._protobuf import Compare

from arktos.storage.keys import prefix_end

log = logging.getLogger(__name__)

__all__ = [
    "KV",
    "Compacted",
    "EtcdStore",
    "KeyExists",
    "NotFound",
    "RevisionMismatch",
    "StorageError",
    "StorageUnavailable",
    "ValueTooLarge",
    "WatchEvent",
]


MAX_RESPONSE_BYTES = 512 * 1024 * 1024


class StorageError(Exception):
    pass


class KeyExists(StorageError):
    pass


class NotFound(StorageError):
    pass


class RevisionMismatch(StorageError):
    """The key changed since the caller read it; `current` is what is stored now."""

    def __init__(self, current: KV | None) -> None:
        super().__init__("revision mismatch")
        self.current = current


class Compacted(StorageError):
    """The requested revision is older than etcd's compaction point."""

    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"revision compacted at {compact_revision}")
        self.compact_revision = compact_revision


class StorageUnavailable(StorageError):
    pass


class ValueTooLarge(StorageError):
    """etcd refused a value larger than its request limit (--max-request-bytes)."""


@dataclass(slots=True)
class KV:
    key: str
    value: bytes
    mod_revision: int
    create_revision: int


@dataclass(slots=True)
class WatchEvent:
    type: str  # "PUT" or "DELETE"
    key: str
    value: bytes  # empty for DELETE
    revision: int  # mod_revision of the put, or the revision of the delete


def _endpoint(url: str) -> str:
    """`http://127.0.0.1:2379` (kube-apiserver's form) -> `127.0.0.1:2379`."""
    if "://" in url:
        parts = urlsplit(url)
        return f"{parts.hostname}:{parts.port or 2379}"
    return url


def _kv(kv) -> KV:
    return KV(kv.key.decode(), kv.value, kv.mod_revision, kv.create_revision)


class EtcdStore:
    def __init__(
        self,
        servers: Sequence[str],
        *,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.servers = [_endpoint(s) for s in servers]
        conn: dict[str, bytes] = {}
        if ca_file:
            with open(ca_file, "rb") as f:
                conn["ca_cert"] = f.read()
        if cert_file and key_file:
            with open(cert_file, "rb") as f:
                conn["cert_chain"] = f.read()
            with open(key_file, "rb") as f:
                conn["cert_key"] = f.read()
        self._client = Etcd3Client(self.servers, **conn)
        # gRPC's default 4 MiB receive limit would fail any range past a few thousand objects
        # (a watch-cache load, a tenant's keys); etcd itself sends up to 2 GiB.
        self._client._manager.grpc_options.append(("grpc.max_receive_message_length", MAX_RESPONSE_BYTES))
        self._timeout = timeout
        self._kv = None

    async def start(self) -> None:
        await self._client.connect()
        self._kv = self._client.kv

    async def close(self) -> None:
        await self._client.close()

    async def ping(self, timeout: float = 2.0) -> None:
        try:
            await self._kv.get("/registry/health", timeout=timeout, max_attempts=1)
        except (EtcdError, grpc.aio.AioRpcError, TimeoutError) as exc:
            raise StorageUnavailable(f"etcd {','.join(self.servers)} is unreachable: {exc}") from exc

    async def _call(self, coro):
        try:
            return await coro
        except (EtcdConnectionError, TimeoutError) as exc:
            raise StorageUnavailable(f"etcd is unavailable: {exc}") from exc
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.OUT_OF_RANGE:
                raise Compacted(0) from exc
            if "too large" in (exc.details() or ""):
                raise ValueTooLarge(exc.details()) from exc
            raise StorageUnavailable(f"etcd error: {exc.code().name}: {exc.details()}") from exc

    async def current_revision(self) -> int:
        resp = await self._call(self._kv.get("/registry/", count_only=True, timeout=self._timeout))
        return resp.header.revision

    async def get(self, key: str, revision: int = 0) -> KV | None:
        resp = await self._call(self._kv.get(key, revision=revision, timeout=self._timeout))
        return _kv(resp.kvs[0]) if resp.kvs else None

    async def list(
        self, prefix: str, *, revision: int = 0, limit: int = 0, start_key: str | None = None
    ) -> tuple[list[KV], int, bool]:
        """Keys under `prefix` in key order, at `revision` (0 = now).

        Returns the items, the revision they were read at, and whether more follow.
        Paging callers pass the returned revision back with the key after the
        last one they saw, so every page is read from the same snapshot.
        """
        start = start_key if start_key and start_key > prefix else prefix  # never before the prefix
        resp = await self._call(
            self._kv.get(
                start,
                range_end=prefix_end(prefix),
                revision=revision,
                limit=limit,
                timeout=self._timeout,
            )
        )
        return [_kv(kv) for kv in resp.kvs], resp.header.revision, resp.more

    async def keys(self, prefix: str, page: int = 10_000) -> list[str]:
        """Every key under `prefix`, read in pages without values."""
        out: list[str] = []
        start = prefix
        end = prefix_end(prefix)
        while True:
            resp = await self._call(self._kv.get(start, range_end=end, keys_only=True, limit=page,
                                                 timeout=self._timeout))
            out.extend(kv.key.decode() for kv in resp.kvs)
            if not resp.more:
                return out
            start = out[-1] + "\0"

    async def count(self, prefix: str) -> int:
        resp = await self._call(
            self._kv.get(prefix, range_end=prefix_end(prefix), count_only=True, timeout=self._timeout)
        )
        return resp.count

    async def put(self, key: str, value: bytes) -> int:
        """An unconditional write, for the server's own bookkeeping keys only (never objects)."""
        resp = await self._call(self._kv.put(key, value, timeout=self._timeout))
        return resp.header.revision

    async def create(self, key: str, value: bytes) -> int:
        """Store `value` at a key that must not exist; returns the new revision."""
        kv = self._kv
        resp = await self._call(
            kv.txn(
                [kv.txn_compare_create_revision(key, 0)],
                [kv.txn_op_put(key, value)],
                timeout=self._timeout,
            )
        )
        if not resp.succeeded:
            raise KeyExists(key)
        return resp.header.revision

    async def update(self, key: str, value: bytes, expected_revision: int) -> int:
        """Replace the value stored at `expected_revision`; returns the new revision."""
        kv = self._kv
        resp = await self._call(
            kv.txn(
                [Compare(result=Compare.EQUAL, target=Compare.MOD, key=key.encode(), mod_revision=expected_revision)],
                [kv.txn_op_put(key, value)],
                [kv.txn_op_get(key)],
                timeout=self._timeout,
            )
        )
        if not resp.succeeded:
            kvs = resp.responses[0].response_range.kvs
            if not kvs:
                raise NotFound(key)
            raise RevisionMismatch(_kv(kvs[0]))
        return resp.header.revision

    async def delete(self, key: str, expected_revision: int = 0) -> tuple[int, KV]:
        """Delete a key (only if unchanged since `expected_revision`, when given).

        Returns the deletion revision and the value that was deleted.
        """
        kv = self._kv
        compare = (
            [Compare(result=Compare.EQUAL, target=Compare.MOD, key=key.encode(), mod_revision=expected_revision)]
            if expected_revision
            else [kv.txn_compare_create_revision(key, 0, result=Compare.GREATER)]
        )
        resp = await self._call(
            kv.txn(compare, [kv.txn_op_delete(key, prev_kv=True)], [kv.txn_op_get(key)], timeout=self._timeout)
        )
        if not resp.succeeded:
            kvs = resp.responses[0].response_range.kvs
            if not kvs:
                raise NotFound(key)
            raise RevisionMismatch(_kv(kvs[0]))
        prev = resp.responses[0].response_delete_range.prev_kvs
        if not prev:
            raise NotFound(key)
        return resp.header.revision, _kv(prev[0])

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every key under `prefix`; returns how many went."""
        resp = await self._call(self._kv.delete(prefix, range_end=prefix_end(prefix), timeout=self._timeout))
        return resp.deleted

    async def compact(self, revision: int) -> None:
        await self._call(self._kv.compact(revision, physical=True, timeout=self._timeout))

    async def watch(self, prefix: str, start_revision: int) -> AsyncIterator[list[WatchEvent]]:
        """Batches of changes under `prefix` from `start_revision` on.

        Survives etcd restarts (etcd3aio reconnects and resumes from the next
        revision); raises `Compacted` when etcd no longer has the history asked for.
        """
        stream = self._client.watch.watch(prefix, range_end=prefix_end(prefix), start_revision=start_revision)
        try:
            async for resp in stream:
                if resp.compact_revision:
                    raise Compacted(resp.compact_revision)
                if resp.canceled:
                    raise StorageUnavailable(f"etcd cancelled the watch: {resp.cancel_reason}")
                if not resp.events:
                    continue
                yield [
                    WatchEvent(
                        "DELETE" if ev.type == 1 else "PUT",
                        ev.kv.key.decode(),
                        ev.kv.value,
                        ev.kv.mod_revision,
                    )
                    for ev in resp.events
                ]
        except grpc.aio.AioRpcError as exc:
            raise StorageUnavailable(f"etcd watch failed: {exc.code().name}: {exc.details()}") from exc
        finally:
            await asyncio.shield(stream.aclose())
