"""The read cache (apiserver/read_cache.py) on etcd, whose watch stream trails the writes: a list from the
cache still holds every write acknowledged before it, confirmed by the store, and the revision it reports
is one a watch can resume from."""
from __future__ import annotations

import asyncio
import time

import pytest

from apiserver.api import API
from apiserver.read_cache import select
from apiserver.storage.etcd import EtcdStorage, parse_etcd_endpoint
from shipmate.selectors import FieldSelector, LabelSelector
from tests.integration.etcd_support import EtcdCluster, etcd_available

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(tmp_path):
    if not etcd_available():
        pytest.skip("etcd-server/etcd-client not installed (hack/up.sh --test-extras installs them)")
    cluster = EtcdCluster(tmp_path / "etcd", size=1).start()
    storage = EtcdStorage(parse_etcd_endpoint(cluster.endpoint), compaction_interval=0)
    await storage.start()
    try:
        yield API(storage)
    finally:
        await storage.close()
        cluster.stop()


def configmap(name: str) -> dict:
    return {"metadata": {"name": name, "labels": {"app": "x"}}, "data": {"k": name}}


async def names(cache, namespace: str = "default") -> tuple[list[str], int]:
    revision = await cache.current()
    chosen = select(cache.registry, cache.under(cache.registry.prefix(namespace)), LabelSelector(), FieldSelector())
    return [cached.kv.key.rsplit("/", 1)[1] for cached in chosen], revision


async def test_a_list_from_the_cache_holds_every_acknowledged_write(api):
    registry = api.registry("", "configmaps")
    cache = registry.read_cache()
    assert cache is not None and not cache.serves_gets  # GETs read etcd, as upstream's
    listed, revision = await names(cache)
    assert listed == [] and revision >= api.storage.revision
    for i in range(20):  # each list right after its write: the watch stream may not have delivered it yet
        created = await registry.create("default", configmap(f"cm-{i:02}"))
        listed, revision = await names(cache)
        assert listed == [f"cm-{j:02}" for j in range(i + 1)]
        assert revision >= int(created["metadata"]["resourceVersion"])
    await registry.delete("default", "cm-03")
    assert "cm-03" not in (await names(cache))[0]
    # A write outside the watched keys moves etcd's revision without an event: the store confirms the cache.
    other = await api.storage.create("/shipmate/read-cache-test", b"x")
    started = time.monotonic()
    listed, revision = await names(cache)
    assert len(listed) == 19 and revision >= other.mod_revision and time.monotonic() - started < 0.5
    watch = api.storage.watch(registry.prefix(), revision)  # the reported revision is one to watch from
    await registry.create("default", configmap("after"))
    event = await watch.next(5)
    assert event is not None and event.kv.key.endswith("/after")
    watch.stop()


async def test_a_cache_whose_watch_stalls_relists_rather_than_serve_stale_objects(api, monkeypatch):
    registry = api.registry("", "configmaps")
    cache = registry.read_cache()
    await registry.create("default", configmap("a"))
    assert (await names(cache))[0] == ["a"]
    held = []
    publish = api.storage._publish
    monkeypatch.setattr(api.storage, "_publish", held.append)  # the watch stream delivers nothing for now
    await registry.create("default", configmap("b"))
    assert (await names(cache))[0] == ["a", "b"]
    monkeypatch.setattr(api.storage, "_publish", publish)
    for events in held:
        publish(events)
    await registry.create("default", configmap("c"))
    assert (await names(cache))[0] == ["a", "b", "c"]
    await asyncio.sleep(0)
