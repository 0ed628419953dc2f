"""SQLite storage: WAL mode, synchronous=FULL, one writer thread with group commit.

Writes queue to a dedicated thread that applies every pending write in one transaction (one
fsync for the group) and hands results back to the event loop, which publishes the events to
watchers in revision order before completing the callers' futures. Reads use their own
connection on a second thread, so SQLite never blocks the event loop.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import queue
import sqlite3
import threading
from dataclasses import dataclass

from apiserver.storage.history import WatchHistory
from apiserver.storage.interface import (EventType, KeyExists, KeyNotFound, KeyValue, QueueWatch,
                                         RevisionMismatch, Storage, StorageEvent)

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    create_revision INTEGER NOT NULL,
    mod_revision INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_MAX_GROUP = 512


@dataclass
class _Write:
    op: str  # create | update | delete
    key: str
    value: bytes | None
    expected_revision: int | None
    future: asyncio.Future


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def _prefix_end(prefix: str) -> str:
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class SQLiteStorage(Storage):
    publishes_before_ack = True  # _complete publishes a group's events before completing its writes

    def __init__(self, path: str, history_size: int = 10000):
        self._path = path
        self._history = WatchHistory(history_size)
        self._writes: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()  # C-level put: no Condition
        self._writer_thread: threading.Thread | None = None
        self._reader = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-read")
        self._read_conn: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        os.makedirs(os.path.dirname(os.path.abspath(self._path)), exist_ok=True)
        write_conn = await asyncio.to_thread(self._open_writer)
        self._read_conn = await self._loop.run_in_executor(self._reader, _connect, self._path)
        revision = write_conn.execute("SELECT value FROM meta WHERE name='revision'").fetchone()
        self._history.reset(revision[0] if revision else 0)
        self._writer_thread = threading.Thread(target=self._writer_main, args=(write_conn, self._history.revision),
                                               name="sqlite-write", daemon=True)
        self._writer_thread.start()
        log.info("storage opened path=%s revision=%d", self._path, self._history.revision)

    def _open_writer(self) -> sqlite3.Connection:
        conn = _connect(self._path)
        conn.executescript(_SCHEMA)
        return conn

    async def close(self) -> None:
        if self._writer_thread:
            self._writes.put(None)
            await asyncio.to_thread(self._writer_thread.join)
            self._writer_thread = None
        self._history.close_watchers()
        if self._read_conn:
            await asyncio.get_running_loop().run_in_executor(self._reader, self._read_conn.close)
            self._read_conn = None
        self._reader.shutdown(wait=True)

    # reads -----------------------------------------------------------------------------------
    async def _read(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._reader, fn, *args)

    def _get_sync(self, key: str) -> KeyValue | None:
        row = self._read_conn.execute(
            "SELECT key, value, create_revision, mod_revision FROM kv WHERE key=?", (key,)).fetchone()
        return KeyValue(*row) if row else None

    def _list_sync(self, prefix: str) -> tuple[list[KeyValue], int]:
        conn = self._read_conn
        conn.execute("BEGIN")
        try:
            rows = conn.execute(
                "SELECT key, value, create_revision, mod_revision FROM kv WHERE key >= ? AND key < ? ORDER BY key",
                (prefix, _prefix_end(prefix))).fetchall()
            revision = conn.execute("SELECT value FROM meta WHERE name='revision'").fetchone()
        finally:
            conn.execute("COMMIT")
        return [KeyValue(*row) for row in rows], (revision[0] if revision else 0)

    async def get(self, key: str) -> KeyValue | None:
        return await self._read(self._get_sync, key)

    async def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        """The keys and the revision of one read snapshot. Not a later revision: a write committed while the
        list ran is not in the items, so a watch from the list must still deliver it (a `kubectl delete` of an
        object whose finalizer went a moment later waited forever for a DELETED event skipped that way)."""
        return await self._read(self._list_sync, prefix)

    # writes ----------------------------------------------------------------------------------
    def _submit(self, op: str, key: str, value: bytes | None, expected: int | None) -> asyncio.Future:
        if self._writer_thread is None:
            raise RuntimeError("storage is not running")
        future = asyncio.get_running_loop().create_future()
        self._writes.put(_Write(op, key, value, expected, future))
        return future

    async def create(self, key: str, value: bytes) -> KeyValue:
        return await self._submit("create", key, value, None)

    async def update(self, key: str, value: bytes, expected_revision: int | None) -> KeyValue:
        return await self._submit("update", key, value, expected_revision)

    async def delete(self, key: str, expected_revision: int | None) -> KeyValue:
        return await self._submit("delete", key, None, expected_revision)

    def _writer_main(self, conn: sqlite3.Connection, revision: int) -> None:
        while True:
            first = self._writes.get()
            if first is None:
                conn.close()
                return
            batch = [first]
            stop = False
            while len(batch) < _MAX_GROUP:
                try:
                    item = self._writes.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            revision = self._apply_batch(conn, batch, revision)
            if stop:
                conn.close()
                return

    def _apply_batch(self, conn: sqlite3.Connection, batch: list[_Write], revision: int) -> int:
        start_revision = revision
        outcomes: list[tuple[_Write, object]] = []
        events: list[StorageEvent] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for write in batch:
                try:
                    event = self._apply_one(conn, write, revision + 1)
                except (KeyExists, KeyNotFound, RevisionMismatch) as exc:
                    outcomes.append((write, exc))
                    continue
                revision += 1
                events.append(event)
                outcomes.append((write, event.kv if event.type == EventType.PUT else event.prev))
            if revision != start_revision:
                conn.execute("INSERT INTO meta(name, value) VALUES('revision', ?) "
                             "ON CONFLICT(name) DO UPDATE SET value=excluded.value", (revision,))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.error("storage commit failed writes=%d error=%s", len(batch), exc)
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            outcomes = [(write, exc) for write in batch]
            events = []
            revision = start_revision
        self._loop.call_soon_threadsafe(self._complete, outcomes, events)
        return revision

    @staticmethod
    def _apply_one(conn: sqlite3.Connection, write: _Write, revision: int) -> StorageEvent:
        if write.op == "create":  # one statement: the writer thread takes the GIL once per SQLite call
            inserted = conn.execute("INSERT INTO kv(key, value, create_revision, mod_revision) VALUES(?,?,?,?) "
                                    "ON CONFLICT(key) DO NOTHING", (write.key, write.value, revision, revision))
            if inserted.rowcount != 1:
                raise KeyExists(write.key)
            return StorageEvent(EventType.PUT, revision, KeyValue(write.key, write.value, revision, revision), None)
        row = conn.execute("SELECT value, create_revision, mod_revision FROM kv WHERE key=?", (write.key,)).fetchone()
        prev = KeyValue(write.key, row[0], row[1], row[2]) if row else None
        if prev is None:
            raise KeyNotFound(write.key)
        if write.expected_revision is not None and write.expected_revision != prev.mod_revision:
            raise RevisionMismatch(write.key, write.expected_revision, prev.mod_revision)
        if write.op == "update":
            conn.execute("UPDATE kv SET value=?, mod_revision=? WHERE key=?", (write.value, revision, write.key))
            kv = KeyValue(write.key, write.value, prev.create_revision, revision)
            return StorageEvent(EventType.PUT, revision, kv, prev)
        conn.execute("DELETE FROM kv WHERE key=?", (write.key,))
        return StorageEvent(EventType.DELETE, revision,
                            KeyValue(write.key, prev.value, prev.create_revision, revision), prev)

    def _complete(self, outcomes: list[tuple[_Write, object]], events: list[StorageEvent]) -> None:
        for event in events:
            self._history.publish(event)
        for write, outcome in outcomes:
            if write.future.done():
                continue
            if isinstance(outcome, Exception):
                write.future.set_exception(outcome)
            else:
                write.future.set_result(outcome)

    # watch -----------------------------------------------------------------------------------
    def watch(self, prefix: str, from_revision: int) -> QueueWatch:
        return self._history.watch(prefix, from_revision)

    @property
    def revision(self) -> int:
        return self._history.revision

    @property
    def compacted_revision(self) -> int:
        return self._history.compacted_revision
