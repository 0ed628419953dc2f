"""NamespaceLifecycle and ResourceQuota admission answer from watched caches (informer.StorageCache) on a
real SQLite store and, when etcd is installed, a real etcd member: a write the server acknowledged is
seen by the very next create, and a closed watch is relisted."""
import asyncio

import pytest

from apiserver import errors
from apiserver.api import API
from apiserver.informer import StorageCache
from apiserver.registry import DeleteOptions
from apiserver.storage.etcd import EtcdStorage, parse_etcd_endpoint
from apiserver.storage.sqlite import SQLiteStorage
from tests.integration.etcd_support import EtcdCluster, etcd_available

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "etcd"])
async def api(request, tmp_path):
    cluster = None
    if request.param == "sqlite":
        storage = SQLiteStorage(str(tmp_path / "state.db"))
    else:
        if not etcd_available():
            pytest.skip("etcd not installed")
        (tmp_path / "etcd").mkdir()
        cluster = EtcdCluster(tmp_path / "etcd", size=1).start()
        storage = EtcdStorage(parse_etcd_endpoint(cluster.endpoint), compaction_interval=0)
    await storage.start()
    server = API(storage)
    await server.start()
    yield server
    await storage.close()
    if cluster:
        cluster.stop()


def configmap(name: str) -> dict:
    return {"metadata": {"name": name}, "data": {"k": "v"}}


async def eventually_forbidden(create) -> errors.APIError:
    """On SQLite the first try is refused (the event is queued before the write is acknowledged); on etcd
    the cache follows the watch stream, so a few retries are allowed."""
    for _ in range(50):
        try:
            await create()
        except errors.APIError as exc:
            return exc
        await asyncio.sleep(0.02)
    raise AssertionError("create kept being admitted")


async def test_namespace_lifecycle_from_the_cache(api, request):
    configmaps = api.registry("", "configmaps")
    await api.create(api.namespaces, "", {"metadata": {"name": "team"}})
    await api.create(configmaps, "team", configmap("first"))  # a namespace created a moment ago is found
    with pytest.raises(errors.APIError) as missing:
        await api.create(configmaps, "absent", configmap("x"))
    assert missing.value.code == 404

    await api.delete(api.namespaces, "", "team", DeleteOptions())  # Terminating: the "kubernetes" finalizer
    sqlite = request.node.callspec.params["api"] == "sqlite"
    counter = iter(range(1000))

    async def create():
        await api.create(configmaps, "team", configmap(f"late-{next(counter)}"))
    refused = await eventually_forbidden(create)
    assert refused.code == 403 and "being terminated" in refused.message
    if sqlite:
        assert next(counter) == 1  # refused on the first try


async def test_quota_is_charged_right_after_it_is_created(api, request):
    configmaps = api.registry("", "configmaps")
    quotas = api.registry("", "resourcequotas")
    await api.create(configmaps, "default", configmap("free"))
    await api.create(quotas, "default", {"metadata": {"name": "q"}, "spec": {"hard": {"count/configmaps": "1"}}})
    counter = iter(range(1000))

    async def create():
        await api.create(configmaps, "default", configmap(f"over-{next(counter)}"))
    refused = await eventually_forbidden(create)
    assert refused.code == 403 and "exceeded quota: q" in refused.message
    admitted = next(counter) - 1  # creates that went through before the quota was seen
    if request.node.callspec.params["api"] == "sqlite":
        assert admitted == 0  # the cache holds every acknowledged write: refused on the first try
    # On etcd the cache trails the watch stream by a moment (as upstream's informer-fed quota admission):
    # what was admitted in that moment exists, and nothing after the first refusal.
    names = sorted(cm["metadata"]["name"] for cm in (await configmaps.list("default"))[0])
    assert names == sorted(["free", *(f"over-{i}" for i in range(admitted))])
    await api.delete(quotas, "default", "q", DeleteOptions())
    for _ in range(50):  # no quota left: admitted again
        try:
            await api.create(configmaps, "default", configmap("after"))
            break
        except errors.APIError as exc:
            assert exc.code == 403
            await asyncio.sleep(0.02)
    assert (await configmaps.get("default", "after"))["metadata"]["name"] == "after"


async def test_cache_relists_after_its_watch_closes(api):
    cache = StorageCache(api.namespaces)
    assert await cache.get("", "default") is not None
    cache._watch.stop()  # as a storage reset or a watcher that fell behind would
    await api.create(api.namespaces, "", {"metadata": {"name": "later"}})
    assert (await cache.get("", "later"))["metadata"]["name"] == "later"
    assert {ns["metadata"]["name"] for ns in await cache.items("")} >= {"default", "kube-system", "later"}
