"""Pure parts of the etcd backend: endpoint flags, key ranges, watch-event conversion, generated stubs."""
from __future__ import annotations

from pathlib import Path

import pytest

from apiserver.storage import etcd_generate, open_storage
from apiserver.storage.etcd import EtcdOptions, EtcdStorage, parse_etcd_endpoint, prefix_end, storage_event
from apiserver.storage.etcd_gen import kv_pb2, rpc_pb2
from cri.generate import stale_stubs
from apiserver.storage.interface import EventType
from apiserver.storage.sqlite import SQLiteStorage


def test_endpoint_forms():
    assert parse_etcd_endpoint("etcd://h1:2379,h2:2380") == EtcdOptions(("h1:2379", "h2:2380"))
    assert parse_etcd_endpoint("etcd://h1") == EtcdOptions(("h1:2379",))
    assert parse_etcd_endpoint("https://h1:2379,https://h2:2379").tls
    assert parse_etcd_endpoint("http://127.0.0.1:2379") == EtcdOptions(("127.0.0.1:2379",))
    tls = parse_etcd_endpoint("etcd://h1:2379", cafile="/ca.pem", certfile="/c.pem", keyfile="/k.pem")
    assert tls.tls and (tls.cafile, tls.certfile, tls.keyfile) == ("/ca.pem", "/c.pem", "/k.pem")
    assert parse_etcd_endpoint("etcd://[::1]:2379").endpoints == ("[::1]:2379",)


@pytest.mark.parametrize("text, kw, message", [
    ("h1:2379", {}, "scheme"),
    ("etcd://", {}, "host:port"),
    ("etcd://h1:2379/path", {}, "host:port"),
    ("etcd://h1:99999", {}, "bad port"),
    ("http://h1:2379,https://h2:2379", {}, "mixes"),
    ("etcd://h1:2379", {"certfile": "/c.pem"}, "go together"),
    ("http://h1:2379", {"cafile": "/ca.pem"}, "TLS"),
])
def test_endpoint_errors_say_why(text, kw, message):
    with pytest.raises(ValueError, match=message):
        parse_etcd_endpoint(text, **kw)


def test_prefix_end():
    assert prefix_end(b"/registry/") == b"/registry0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") == b"\0"


def test_factory_picks_the_backend(tmp_path):
    assert isinstance(open_storage("", str(tmp_path / "state.db"), 10), SQLiteStorage)
    assert isinstance(open_storage("etcd://127.0.0.1:1", str(tmp_path / "state.db"), 10), EtcdStorage)


def _kv(key: str, value: bytes, create: int, mod: int, version: int) -> kv_pb2.KeyValue:
    return kv_pb2.KeyValue(key=key.encode(), value=value, create_revision=create, mod_revision=mod, version=version)


def test_watch_events_become_storage_events():
    created = storage_event(kv_pb2.Event(type=kv_pb2.Event.PUT, kv=_kv("/registry/a", b"1", 5, 5, 1)))
    assert created.type == EventType.PUT and created.created and created.revision == 5
    updated = storage_event(kv_pb2.Event(type=kv_pb2.Event.PUT, kv=_kv("/registry/a", b"2", 5, 7, 2),
                                         prev_kv=_kv("/registry/a", b"1", 5, 5, 1)))
    assert not updated.created and updated.prev.value == b"1" and updated.kv.create_revision == 5
    compacted_prev = storage_event(kv_pb2.Event(type=kv_pb2.Event.PUT, kv=_kv("/registry/a", b"3", 5, 9, 3)))
    assert not compacted_prev.created
    deleted = storage_event(kv_pb2.Event(type=kv_pb2.Event.DELETE, kv=kv_pb2.KeyValue(key=b"/registry/a",
                                                                                     mod_revision=11),
                                         prev_kv=_kv("/registry/a", b"3", 5, 9, 3)))
    assert deleted.type == EventType.DELETE and deleted.revision == 11 and deleted.kv.value == b"3"
    assert deleted.kv.mod_revision == 11 and deleted.prev.mod_revision == 9
    assert storage_event(kv_pb2.Event(type=kv_pb2.Event.DELETE, kv=kv_pb2.KeyValue(key=b"/registry/a"))) is None


def test_committed_stubs_are_current(tmp_path: Path):
    etcd_generate.generate(tmp_path)
    assert not stale_stubs(tmp_path, etcd_generate.GEN_DIR), "stale stubs: run `python -m apiserver.storage.etcd_generate`"


def test_upstream_field_numbers_and_service_paths():
    def number(message, field: str) -> int:
        return message.DESCRIPTOR.fields_by_name[field].number

    assert number(rpc_pb2.WatchResponse, "events") == 11
    assert number(rpc_pb2.WatchResponse, "compact_revision") == 5
    assert number(rpc_pb2.WatchCreateRequest, "prev_kv") == 6
    assert number(rpc_pb2.Compare, "range_end") == 64
    assert number(rpc_pb2.Compare, "mod_revision") == 6
    assert number(rpc_pb2.DeleteRangeResponse, "prev_kvs") == 3
    assert number(kv_pb2.KeyValue, "value") == 5
    assert rpc_pb2.DESCRIPTOR.services_by_name["KV"].full_name == "etcdserverpb.KV"
    assert rpc_pb2.DESCRIPTOR.services_by_name["Watch"].full_name == "etcdserverpb.Watch"


def test_server_flags():
    from apiserver.config import parse_args
    config = parse_args(["--datastore-endpoint", "etcd://127.0.0.1:2379,127.0.0.1:22379",
                         "--datastore-cafile", "/ca.pem", "--advertise-address", "127.0.0.1"])
    assert config.datastore_endpoint == "etcd://127.0.0.1:2379,127.0.0.1:22379"
    assert config.datastore_cafile == "/ca.pem" and not config.snapshot_path
    assert parse_args(["--snapshot", "/tmp/s.db", "--advertise-address", "127.0.0.1"]).snapshot_path == "/tmp/s.db"


@pytest.mark.parametrize("argv, message", [
    (["--datastore-endpoint", "h1:2379"], "scheme"),
    (["--datastore-cafile", "/ca.pem"], "need --datastore-endpoint"),
    (["--datastore-endpoint", "etcd://h1", "--snapshot", "/s.db"], "etcdctl snapshot"),
    (["--snapshot", "/a", "--restore", "/b"], "exclude each other"),
])
def test_server_flag_errors(argv, message, capsys):
    from apiserver.config import parse_args
    with pytest.raises(SystemExit):
        parse_args([*argv, "--advertise-address", "127.0.0.1"])
    assert message in capsys.readouterr().err


def test_missing_certificate_file_is_a_clear_error(tmp_path):
    from apiserver.storage.interface import StorageError
    with pytest.raises(StorageError, match="--datastore-cafile .*/missing.pem: No such file"):
        EtcdStorage(parse_etcd_endpoint("etcd://127.0.0.1:2379", cafile=str(tmp_path / "missing.pem")))
