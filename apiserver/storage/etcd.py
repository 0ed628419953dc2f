"""etcd v3 storage over gRPC (grpc.aio, our own stubs from etcd_proto/).

Keys and values are the SQLite backend's (`/registry/<resource>/<ns>/<name>`, JSON values), so
`etcdctl get /registry --prefix --keys-only` lists them as on kubeadm. resourceVersion is etcd's
mod_revision; create/update/delete are single transactions comparing create_revision (== 0 for a
create, > 0 for "exists") or mod_revision (the caller's expected revision).

Watches are served like upstream's watch cache: one etcd watch on `/registry/` (prev_kv) feeds a
bounded history and fans out to every storage watcher. The stream resumes from the last revision it
delivered after any error, on the next listed endpoint. If etcd has
compacted past that revision the history is reset: every watcher closes, and clients that resume
from an older resourceVersion get 410 and relist. At start the history is refilled from etcd (up to
`history_size` events back, or from etcd's compaction point), so watches survive a server restart.

A background compactor compacts etcd every `compaction_interval` seconds to the revision seen one
interval earlier, as kube-apiserver's `--etcd-compaction-interval` does.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import grpc

from apiserver.storage.etcd_gen import kv_pb2, rpc_pb2, rpc_pb2_grpc
from apiserver.storage.history import WatchHistory
from apiserver.storage.interface import (EventType, KeyExists, KeyNotFound, KeyValue, QueueWatch,
                                         RevisionMismatch, Storage, StorageError, StorageEvent)
from shipmate.supervisor import stop_tasks

log = logging.getLogger(__name__)

WATCH_PREFIX = "/registry/"
_RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
_LIST_PAGE = 5000
_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 512 * 1024 * 1024),
                    ("grpc.keepalive_time_ms", 10000), ("grpc.keepalive_timeout_ms", 5000),
                    ("grpc.keepalive_permit_without_calls", 1)]


@dataclass(frozen=True)
class EtcdOptions:
    endpoints: tuple[str, ...]  # host:port
    tls: bool = False
    cafile: str = ""
    certfile: str = ""
    keyfile: str = ""


def parse_etcd_endpoint(text: str, cafile: str = "", certfile: str = "", keyfile: str = "") -> EtcdOptions:
    """`etcd://h1:2379,h2:2379` (TLS when certificate files are given), or kube-apiserver's
    `--etcd-servers` form `https://h1:2379,https://h2:2379`; ValueError with the reason otherwise."""
    schemes: set[str] = set()
    endpoints: list[str] = []
    scheme = ""
    for item in text.split(","):
        item = item.strip()
        if "://" in item:
            scheme, item = item.split("://", 1)
        if scheme not in ("etcd", "http", "https"):
            raise ValueError(f"datastore endpoint {text!r}: scheme must be etcd://, http:// or https://")
        if not item or "/" in item:
            raise ValueError(f"datastore endpoint {text!r}: expected host:port, got {item!r}")
        host, sep, port = item.rpartition(":")
        if not sep or host.endswith(":"):  # no port, or a bare IPv6 address
            host, port = item, "2379"
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"datastore endpoint {text!r}: bad port in {item!r}")
        schemes.add(scheme)
        endpoints.append(f"{host}:{port}")
    if {"http", "https"} <= schemes:
        raise ValueError(f"datastore endpoint {text!r}: mixes http:// and https://")
    if bool(certfile) != bool(keyfile):
        raise ValueError("--datastore-certfile and --datastore-keyfile go together")
    tls = "https" in schemes or bool(cafile or certfile)
    if tls and "http" in schemes:
        raise ValueError(f"datastore endpoint {text!r}: http:// with TLS certificate files")
    return EtcdOptions(tuple(endpoints), tls, cafile, certfile, keyfile)


def prefix_end(prefix: bytes) -> bytes:
    """etcd's range_end for "every key starting with prefix"."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


def _key_value(kv: kv_pb2.KeyValue) -> KeyValue:
    return KeyValue(kv.key.decode(), kv.value, kv.create_revision, kv.mod_revision)


def storage_event(event: kv_pb2.Event) -> StorageEvent | None:
    """An etcd watch event as a storage event; None for a DELETE whose previous value was compacted away."""
    prev = _key_value(event.prev_kv) if event.HasField("prev_kv") else None
    if event.type == kv_pb2.Event.DELETE:
        if prev is None:
            return None
        kv = KeyValue(prev.key, prev.value, prev.create_revision, event.kv.mod_revision)
        return StorageEvent(EventType.DELETE, event.kv.mod_revision, kv, prev)
    kv = _key_value(event.kv)
    if prev is None and event.kv.version > 1:
        prev = kv  # the previous value was compacted away: still an update, not a create
    return StorageEvent(EventType.PUT, event.kv.mod_revision, kv, prev)


class _Endpoints:
    """One lazily opened channel per endpoint; calls go to the current one, failures move to the next."""

    def __init__(self, options: EtcdOptions):
        self._options = options
        self._channels: list[grpc.aio.Channel | None] = [None] * len(options.endpoints)
        self._kv_stubs: list[rpc_pb2_grpc.KVStub | None] = [None] * len(options.endpoints)
        self._credentials = self._load_credentials(options) if options.tls else None
        self.current = 0

    @staticmethod
    def _load_credentials(options: EtcdOptions) -> grpc.ChannelCredentials:
        """Read once at startup (a few small files), so a bad path fails loudly before serving."""
        def read(flag: str, path: str) -> bytes | None:
            if not path:
                return None
            try:
                with open(path, "rb") as f:
                    return f.read()
            except OSError as exc:
                raise StorageError(f"{flag} {path}: {exc.strerror}") from None
        return grpc.ssl_channel_credentials(read("--datastore-cafile", options.cafile),
                                            read("--datastore-keyfile", options.keyfile),
                                            read("--datastore-certfile", options.certfile))

    def channel(self, index: int) -> grpc.aio.Channel:
        channel = self._channels[index]
        if channel is None:
            target = self._options.endpoints[index]
            channel = (grpc.aio.secure_channel(target, self._credentials, options=_CHANNEL_OPTIONS)
                       if self._credentials else grpc.aio.insecure_channel(target, options=_CHANNEL_OPTIONS))
            self._channels[index] = channel
        return channel

    def kv(self, index: int) -> rpc_pb2_grpc.KVStub:
        """The KV stub of an endpoint's channel, made once: a stub builds a callable per RPC method."""
        stub = self._kv_stubs[index]
        if stub is None:
            stub = self._kv_stubs[index] = rpc_pb2_grpc.KVStub(self.channel(index))
        return stub

    def failed(self, index: int) -> None:
        if self.current == index:
            self.current = (index + 1) % len(self._channels)

    @property
    def targets(self) -> tuple[str, ...]:
        return self._options.endpoints

    def endpoint(self, index: int) -> str:
        return self._options.endpoints[index]

    async def close(self) -> None:
        for channel in self._channels:
            if channel is not None:
                await channel.close()
        self._channels = [None] * len(self._channels)
        self._kv_stubs = [None] * len(self._kv_stubs)


class EtcdStorage(Storage):
    def __init__(self, options: EtcdOptions, history_size: int = 10000, request_timeout: float = 10.0,
                 retry_budget: float = 30.0, compaction_interval: float = 300.0):
        self._endpoints = _Endpoints(options)
        self._history = WatchHistory(history_size)
        self._history_size = history_size
        self._request_timeout = request_timeout
        self._retry_budget = retry_budget
        self._compaction_interval = compaction_interval
        self._stream_revision = 0  # every event up to here has been published
        self._tasks: list[asyncio.Task] = []

    # lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        response = await self._call("Range", rpc_pb2.RangeRequest(key=WATCH_PREFIX.encode(), count_only=True))
        current = response.header.revision
        # Refill the history from etcd so watches from before a restart can resume.
        start = max(current - self._history_size, 0)
        self._history.reset(start)
        self._stream_revision = start
        self._tasks = [asyncio.create_task(self._watch_loop(), name="etcd-watch")]
        if self._compaction_interval > 0:
            self._tasks.append(asyncio.create_task(self._compact_loop(), name="etcd-compactor"))
        log.info("storage opened endpoints=%s revision=%d", ",".join(self._endpoints.targets), current)

    async def close(self) -> None:
        await stop_tasks(self._tasks)
        self._tasks = []
        self._history.close_watchers()
        await self._endpoints.close()

    # requests --------------------------------------------------------------------------------
    async def _call(self, method: str, request, *, attempts: list[int] | None = None):
        """A unary KV call with failover: UNAVAILABLE/DEADLINE_EXCEEDED move on to the next endpoint
        until `retry_budget` seconds have passed. `attempts` (if given) collects how many were made."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry_budget
        backoff = 0.05
        tries = 0
        while True:
            index = self._endpoints.current
            stub = self._endpoints.kv(index)
            tries += 1
            if attempts is not None:
                attempts.append(tries)
            try:
                return await getattr(stub, method)(request, timeout=self._request_timeout)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in _RETRYABLE or loop.time() + backoff > deadline:
                    raise StorageError(f"etcd {method} failed endpoint={self._endpoints.endpoint(index)}: "
                                       f"{exc.code().name} {exc.details()}") from None
                log.warning("etcd request failed, trying the next endpoint method=%s endpoint=%s code=%s "
                            "details=%s", method, self._endpoints.endpoint(index), exc.code().name, exc.details())
                self._endpoints.failed(index)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)

    @staticmethod
    def _exists(key: bytes) -> rpc_pb2.Compare:
        return rpc_pb2.Compare(key=key, target=rpc_pb2.Compare.CREATE, result=rpc_pb2.Compare.GREATER,
                               create_revision=0)

    @staticmethod
    def _precondition(key: bytes, expected_revision: int | None) -> rpc_pb2.Compare:
        if expected_revision is None:
            return EtcdStorage._exists(key)
        return rpc_pb2.Compare(key=key, target=rpc_pb2.Compare.MOD, result=rpc_pb2.Compare.EQUAL,
                               mod_revision=expected_revision)

    async def _txn(self, compare: rpc_pb2.Compare, success: rpc_pb2.RequestOp,
                   key: bytes) -> tuple[rpc_pb2.TxnResponse, KeyValue | None, bool]:
        """Run compare → success, else read the key. Returns (response, current key on failure, retried)."""
        attempts: list[int] = []
        failure = rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key))
        response = await self._call("Txn", rpc_pb2.TxnRequest(compare=[compare], success=[success],
                                                              failure=[failure]), attempts=attempts)
        current = None
        if not response.succeeded:
            kvs = response.responses[0].response_range.kvs
            current = _key_value(kvs[0]) if kvs else None
        return response, current, len(attempts) > 1

    # The retried-write checks: a request that timed out may have been applied before the retry,
    # whose compare then fails against our own write; the value (with its uid and timestamps)
    # tells the two apart.
    async def create(self, key: str, value: bytes) -> KeyValue:
        raw = key.encode()
        compare = rpc_pb2.Compare(key=raw, target=rpc_pb2.Compare.CREATE, result=rpc_pb2.Compare.EQUAL,
                                  create_revision=0)
        put = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=raw, value=value))
        response, current, retried = await self._txn(compare, put, raw)
        if response.succeeded:
            revision = response.header.revision
            return KeyValue(key, value, revision, revision)
        if retried and current is not None and current.value == value:
            return current
        raise KeyExists(key)

    async def update(self, key: str, value: bytes, expected_revision: int | None) -> KeyValue:
        raw = key.encode()
        put = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=raw, value=value, prev_kv=True))
        response, current, retried = await self._txn(self._precondition(raw, expected_revision), put, raw)
        if response.succeeded:
            prev = response.responses[0].response_put.prev_kv
            return KeyValue(key, value, prev.create_revision, response.header.revision)
        if current is None:
            raise KeyNotFound(key)
        if retried and current.value == value:
            return current
        raise RevisionMismatch(key, expected_revision or 0, current.mod_revision)

    async def delete(self, key: str, expected_revision: int | None) -> KeyValue:
        raw = key.encode()
        delete = rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=raw, prev_kv=True))
        response, current, _ = await self._txn(self._precondition(raw, expected_revision), delete, raw)
        if response.succeeded:
            prev_kvs = response.responses[0].response_delete_range.prev_kvs
            if not prev_kvs:  # the key vanished between compare and delete: cannot happen in one txn
                raise KeyNotFound(key)
            return _key_value(prev_kvs[0])
        if current is None:
            raise KeyNotFound(key)
        raise RevisionMismatch(key, expected_revision or 0, current.mod_revision)

    async def get(self, key: str) -> KeyValue | None:
        response = await self._call("Range", rpc_pb2.RangeRequest(key=key.encode()))
        return _key_value(response.kvs[0]) if response.kvs else None

    async def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        """Pages of `_LIST_PAGE` keys, all read at the first page's revision (one consistent snapshot)."""
        start, end = prefix.encode(), prefix_end(prefix.encode())
        items: list[KeyValue] = []
        revision = 0
        while True:
            response = await self._call("Range", rpc_pb2.RangeRequest(key=start, range_end=end, limit=_LIST_PAGE,
                                                                      revision=revision))
            revision = revision or response.header.revision
            items.extend(_key_value(kv) for kv in response.kvs)
            if not response.more or not response.kvs:
                return items, revision
            start = response.kvs[-1].key + b"\0"

    async def unchanged_since(self, prefix: str, revision: int, count: int) -> tuple[bool, int]:
        """Whether the keys under `prefix` are the `count` keys they were at `revision`, unchanged, and the
        current revision. One keys-only Range of the keys written after `revision`: none, and as many keys as
        then, means none was written or deleted since (a key written since has a later mod revision; a
        deletion alone changes the count). The store's view of a read cache filled to `revision`."""
        response = await self._call("Range", rpc_pb2.RangeRequest(
            key=prefix.encode(), range_end=prefix_end(prefix.encode()), keys_only=True, min_mod_revision=revision + 1))
        return not response.kvs and response.count == count, response.header.revision

    async def compact(self, revision: int) -> None:
        """Drop etcd's history before `revision` (kube-apiserver's compactor, or `etcdctl compact`)."""
        await self._call("Compact", rpc_pb2.CompactionRequest(revision=revision, physical=True))

    # watch -----------------------------------------------------------------------------------
    def watch(self, prefix: str, from_revision: int) -> QueueWatch:
        return self._history.watch(prefix, from_revision)

    @property
    def revision(self) -> int:
        return self._history.revision

    @property
    def compacted_revision(self) -> int:
        return self._history.compacted_revision

    async def _watch_loop(self) -> None:
        backoff = 0.1
        while True:
            index = self._endpoints.current
            try:
                await self._stream(index)
            except asyncio.CancelledError:
                raise
            except _Compacted as exc:
                self._recover_from_compaction(exc.revision)
                backoff = 0.1
                continue
            except grpc.aio.AioRpcError as exc:
                log.warning("etcd watch stream broke, resuming on the next endpoint endpoint=%s revision=%d "
                            "code=%s details=%s", self._endpoints.endpoint(index), self._stream_revision,
                            exc.code().name, exc.details())
            except Exception as exc:  # noqa: BLE001 - the watch must survive and resume
                log.warning("etcd watch stream failed endpoint=%s revision=%d error=%r",
                            self._endpoints.endpoint(index), self._stream_revision, exc)
            else:
                backoff = 0.1
            self._endpoints.failed(index)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def _stream(self, index: int) -> None:
        """One watch stream from the revision after the last published one until it breaks."""
        create = rpc_pb2.WatchCreateRequest(key=WATCH_PREFIX.encode(), range_end=prefix_end(WATCH_PREFIX.encode()),
                                            start_revision=self._stream_revision + 1, prev_kv=True)
        # hasleader: the member ends the stream when it loses its leader (a partitioned member would
        # otherwise keep the stream open and silently miss every write), as clientv3's WithRequireLeader.
        call = rpc_pb2_grpc.WatchStub(self._endpoints.channel(index)).Watch(metadata=(("hasleader", "true"),))
        try:
            await call.write(rpc_pb2.WatchRequest(create_request=create))
            while True:
                response = await call.read()
                if response is grpc.aio.EOF:
                    return
                if response.compact_revision:
                    raise _Compacted(response.compact_revision)
                if response.canceled:
                    raise StorageError(f"etcd canceled the watch: {response.cancel_reason}")
                if response.created:
                    log.info("etcd watch started endpoint=%s from_revision=%d", self._endpoints.endpoint(index),
                             create.start_revision)
                    continue
                if not response.events:
                    # No progress notifications are asked for: before 3.4.24/3.5.8 etcd could deliver them out
                    # of order with the watcher's events (etcd-io/etcd#15220); resuming from one skips events.
                    continue
                self._publish(response.events)
        finally:
            call.cancel()

    def _publish(self, events) -> None:
        for raw in events:
            event = storage_event(raw)
            if event is None:
                log.warning("etcd delete without its previous value key=%s revision=%d: watchers relist",
                            raw.kv.key.decode(errors="replace"), raw.kv.mod_revision)
                self._history.reset(raw.kv.mod_revision)
            else:
                self._history.publish(event)
            self._stream_revision = raw.kv.mod_revision

    def _recover_from_compaction(self, compact_revision: int) -> None:
        """The stream cannot resume: etcd keeps events from `compact_revision` on. Restart the history
        just before it; watchers close (their events in between are gone) and resume or relist."""
        log.warning("etcd compacted past the watch position revision=%d compacted=%d: watchers resume or relist",
                    self._stream_revision, compact_revision)
        self._history.reset(compact_revision - 1)
        self._stream_revision = compact_revision - 1

    async def _compact_loop(self) -> None:
        previous = 0
        while True:
            await asyncio.sleep(self._compaction_interval)
            try:
                if previous:
                    await self.compact(previous)
                    log.info("etcd compacted revision=%d", previous)
                response = await self._call("Range", rpc_pb2.RangeRequest(key=WATCH_PREFIX.encode(),
                                                                          count_only=True))
                previous = response.header.revision
            except StorageError as exc:
                if "compacted" not in str(exc):  # another server compacted further already
                    log.warning("etcd compaction failed revision=%d error=%s", previous, exc)


class _Compacted(Exception):
    def __init__(self, revision: int):
        super().__init__(f"compacted at {revision}")
        self.revision = revision
