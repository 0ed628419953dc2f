"""Storage backends; `open_storage` picks one from `--datastore-endpoint` (empty: SQLite in the data dir)."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apiserver.storage.interface import Storage


def open_storage(endpoint: str, sqlite_path: str, history_size: int, cafile: str = "", certfile: str = "",
                 keyfile: str = "") -> "Storage":
    """The backend for `endpoint`: `etcd://h1:2379,h2:2379` / `https://h1:2379,…` → etcd, "" → SQLite at
    sqlite_path. Backends are imported lazily so SQLite-only servers never load gRPC."""
    if not endpoint:
        from apiserver.storage.sqlite import SQLiteStorage
        return SQLiteStorage(sqlite_path, history_size=history_size)
    from apiserver.storage.etcd import EtcdStorage, parse_etcd_endpoint
    return EtcdStorage(parse_etcd_endpoint(endpoint, cafile, certfile, keyfile), history_size=history_size)
