"""Offline care of the SQLite store: the data-dir lock, `--snapshot` and `--restore` (sqlite3 backup API).

A snapshot is taken through SQLite's online backup API from a read-only connection, so it is
consistent even while a server writes (WAL readers see one committed state). A restore needs the
server stopped: it takes the same lock a running server holds.
"""
from __future__ import annotations

import fcntl
import os
import sqlite3
from dataclasses import dataclass


class StoreAdminError(Exception):
    pass


@dataclass(frozen=True)
class StoreSummary:
    revision: int
    keys: int


class DataDirLock:
    """An exclusive flock on `<db>.lock` held for the life of a server: one process per store."""

    def __init__(self, db_path: str):
        self.path = db_path + ".lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreAdminError(f"{self.path} is locked: another shipmate server uses this data dir") from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def summarize(path: str) -> StoreSummary:
    """Check that `path` is a healthy shipmate store; StoreAdminError saying why not."""
    if not os.path.isfile(path):
        raise StoreAdminError(f"{path}: no such file")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise StoreAdminError(f"{path}: the database fails its integrity check")
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not {"kv", "meta"} <= tables:
                raise StoreAdminError(f"{path}: not a shipmate store (tables kv and meta missing)")
            revision = conn.execute("SELECT value FROM meta WHERE name='revision'").fetchone()
            keys = conn.execute("SELECT count(*) FROM kv").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise StoreAdminError(f"{path}: {exc}") from None
    return StoreSummary(revision[0] if revision else 0, keys)


def _copy(source: str, dest: str) -> None:
    """Back `source` up into a new file `dest` durably (temp file, fsync, rename, fsync the dir)."""
    tmp = dest + ".tmp"
    if os.path.exists(tmp):
        os.unlink(tmp)
    src_conn = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst_conn = sqlite3.connect(tmp)
    try:
        src_conn.backup(dst_conn)
        dst_conn.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
    finally:
        dst_conn.close()
        src_conn.close()
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, dest)
    dir_fd = os.open(os.path.dirname(os.path.abspath(dest)), os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def snapshot(db_path: str, dest: str) -> StoreSummary:
    """Write a consistent copy of the store at db_path to dest; safe while a server runs."""
    summarize(db_path)
    _copy(db_path, dest)
    return summarize(dest)


def restore(source: str, db_path: str) -> StoreSummary:
    """Replace the store at db_path with the snapshot `source`; refused while a server holds the store."""
    summary = summarize(source)
    lock = DataDirLock(db_path)
    lock.acquire()
    try:
        for suffix in ("-wal", "-shm"):
            if os.path.exists(db_path + suffix):
                os.unlink(db_path + suffix)
        _copy(source, db_path)
    finally:
        lock.release()
    return summary
