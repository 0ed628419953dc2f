"""SQLite storage and registry against a real database file: revisions, concurrency, watch, 410, restart."""
import asyncio

import pytest

from apiserver import errors
from apiserver.api import API
from apiserver.registry import DeleteOptions
from apiserver.storage.interface import EventType, KeyExists, RevisionCompacted, RevisionMismatch
from apiserver.storage.sqlite import SQLiteStorage
from shipmate.selectors import parse_field_selector, parse_label_selector

pytestmark = pytest.mark.integration


@pytest.fixture
async def storage(tmp_path):
    store = SQLiteStorage(str(tmp_path / "state.db"), history_size=50)
    await store.start()
    yield store
    await store.close()


async def test_revisions_and_optimistic_concurrency(storage):
    created = await storage.create("/registry/pods/default/a", b"1")
    assert created.mod_revision == created.create_revision == 1
    with pytest.raises(KeyExists):
        await storage.create("/registry/pods/default/a", b"2")
    updated = await storage.update("/registry/pods/default/a", b"2", expected_revision=1)
    assert updated.mod_revision == 2 and updated.create_revision == 1
    with pytest.raises(RevisionMismatch):
        await storage.update("/registry/pods/default/a", b"3", expected_revision=1)
    await storage.create("/registry/pods/other/b", b"x")
    items, revision = await storage.list("/registry/pods/default/")
    assert [kv.key for kv in items] == ["/registry/pods/default/a"] and revision == 3
    deleted = await storage.delete("/registry/pods/default/a", expected_revision=2)
    assert deleted.value == b"2" and storage.revision == 4


async def test_group_commit_keeps_one_revision_per_write(storage):
    results = await asyncio.gather(*(storage.create(f"/registry/x/{i}", b"v") for i in range(200)))
    assert sorted(kv.mod_revision for kv in results) == list(range(1, 201))
    assert storage.revision == 200


async def test_watch_from_revision_and_compaction(storage):
    for i in range(5):
        await storage.create(f"/registry/pods/default/p{i}", b"v")
    watch = storage.watch("/registry/pods/default/", 3)
    first, second = await watch.next(1), await watch.next(1)
    assert (first.revision, second.revision) == (4, 5) and first.type == EventType.PUT and first.created
    assert await watch.next(0.05) is None
    await storage.delete("/registry/pods/default/p0", None)
    event = await watch.next(1)
    assert event.type == EventType.DELETE and event.kv.key.endswith("p0")
    watch.stop()
    for i in range(60):
        await storage.update("/registry/pods/default/p1", b"%d" % i, None)
    with pytest.raises(RevisionCompacted):
        storage.watch("/registry/pods/default/", 3)


async def test_data_survives_restart(tmp_path):
    path = str(tmp_path / "state.db")
    store = SQLiteStorage(path)
    await store.start()
    await store.create("/registry/a", b"1")
    await store.update("/registry/a", b"2", None)
    await store.close()
    reopened = SQLiteStorage(path)
    await reopened.start()
    try:
        kv = await reopened.get("/registry/a")
        assert kv.value == b"2" and kv.mod_revision == 2 and reopened.revision == 2
        with pytest.raises(RevisionCompacted):
            reopened.watch("/registry/", 1)
        assert (await reopened.create("/registry/b", b"x")).mod_revision == 3
    finally:
        await reopened.close()


async def test_registry_watch_selectors_and_graceful_delete(storage):
    api = API(storage)
    await api.start()
    pod = {"metadata": {"name": "p", "labels": {"app": "web"}},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    created = await api.create(api.pods, "default", pod)
    watch = await api.pods.watch("default", parse_label_selector("app=web"), parse_field_selector(""),
                                 created["metadata"]["resourceVersion"])
    await api.pods.patch("default", "p", "application/merge-patch+json", {"metadata": {"labels": {"app": "db"}}})
    left = await watch.next(1)
    assert left.type == "DELETED" and left.object["metadata"]["labels"]["app"] == "db"
    watch.stop()
    await api.bind("default", "p", {"target": {"name": "node-a"}})
    result = await api.delete(api.pods, "default", "p", DeleteOptions())
    assert not result.removed and result.object["metadata"]["deletionGracePeriodSeconds"] == 30
    with pytest.raises(errors.APIError) as conflict:
        await api.delete(api.pods, "default", "p", DeleteOptions(0, precondition_uid="wrong"))
    assert conflict.value.code == 409
    removed = await api.delete(api.pods, "default", "p", DeleteOptions(0, precondition_uid=created["metadata"]["uid"]))
    assert removed.removed
    with pytest.raises(errors.APIError) as missing:
        await api.pods.get("default", "p")
    assert missing.value.message == 'pods "p" not found'


async def test_slow_watcher_is_closed_not_buffered_forever(storage, monkeypatch):
    from apiserver.storage.interface import QueueWatch, WatchClosed
    monkeypatch.setattr(QueueWatch, "max_pending", 3)
    watch = storage.watch("/registry/", storage.revision)
    for i in range(5):
        await storage.create(f"/registry/slow/{i}", b"v")
    received = []
    with pytest.raises(WatchClosed):
        while True:
            received.append(await watch.next(1))
    assert [e.revision for e in received] == [1, 2, 3]
