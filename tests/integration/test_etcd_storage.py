"""The storage contract against both backends (SQLite file, single-member etcd), plus etcd's own paths:
the key layout etcdctl sees, resume after a restart of the server, compaction → 410."""
from __future__ import annotations

import asyncio
import json
import os

import pytest

from apiserver import pki_bootstrap
from apiserver.api import API
from apiserver.storage.etcd import EtcdStorage, parse_etcd_endpoint
from apiserver.storage.interface import (EventType, KeyExists, KeyNotFound, RevisionCompacted, RevisionMismatch,
                                         StorageError)
from apiserver.storage.sqlite import SQLiteStorage
from tests.integration.etcd_support import EtcdCluster, EtcdPKI, etcd_available
from tests.integration.test_apiserver_kubectl import Server
# The registry-level contract tests of the SQLite suite, collected here again against every backend.
from tests.integration.test_apiserver_storage import test_registry_watch_selectors_and_graceful_delete  # noqa: F401

pytestmark = pytest.mark.integration
needs_etcd = pytest.mark.skipif(not etcd_available(), reason="etcd-server/etcd-client not installed "
                                                             "(hack/up.sh --test-extras installs them)")


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    if not etcd_available():
        pytest.skip("etcd-server/etcd-client not installed (hack/up.sh --test-extras installs them)")
    cluster = EtcdCluster(tmp_path_factory.mktemp("etcd"), size=1).start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", pytest.param("etcd", marks=needs_etcd)])
async def storage(request, tmp_path):
    if request.param == "sqlite":
        store = SQLiteStorage(str(tmp_path / "state.db"), history_size=50)
    else:
        # An etcd of its own: one that other tests compacted would make the history this store refills at
        # start restart under the test's first watch (as after a real compaction: watchers relist).
        if not etcd_available():
            pytest.skip("etcd-server/etcd-client not installed (hack/up.sh --test-extras installs them)")
        cluster = EtcdCluster(tmp_path / "etcd", size=1).start()
        request.addfinalizer(cluster.stop)
        store = EtcdStorage(parse_etcd_endpoint(cluster.endpoint), history_size=50, compaction_interval=0)
    await store.start()
    yield store
    await store.close()


async def settle(store, revision: int, timeout: float = 5.0) -> None:
    """Wait until the store's watch side has published `revision` (etcd delivers through its watch)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while store.revision < revision:
        assert loop.time() < deadline, f"revision {revision} not published (at {store.revision})"
        await asyncio.sleep(0.01)


async def test_revisions_and_optimistic_concurrency(storage):
    created = await storage.create("/registry/pods/default/a", b"1")
    base = created.mod_revision
    assert created.create_revision == base and base > 0
    with pytest.raises(KeyExists):
        await storage.create("/registry/pods/default/a", b"2")
    updated = await storage.update("/registry/pods/default/a", b"2", expected_revision=base)
    assert updated.mod_revision == base + 1 and updated.create_revision == base
    with pytest.raises(RevisionMismatch) as mismatch:
        await storage.update("/registry/pods/default/a", b"3", expected_revision=base)
    assert mismatch.value.actual == base + 1
    with pytest.raises(KeyNotFound):
        await storage.update("/registry/pods/default/missing", b"3", expected_revision=None)
    await storage.create("/registry/pods/other/b", b"x")
    items, revision = await storage.list("/registry/pods/default/")
    assert [kv.key for kv in items] == ["/registry/pods/default/a"] and revision == base + 2
    assert (await storage.get("/registry/pods/default/a")).value == b"2"
    assert await storage.get("/registry/pods/default/missing") is None
    with pytest.raises(RevisionMismatch):
        await storage.delete("/registry/pods/default/a", expected_revision=base)
    deleted = await storage.delete("/registry/pods/default/a", expected_revision=base + 1)
    assert deleted.value == b"2" and deleted.create_revision == base
    with pytest.raises(KeyNotFound):
        await storage.delete("/registry/pods/default/a", None)
    await settle(storage, base + 3)
    assert storage.revision == base + 3


async def test_concurrent_writes_get_one_revision_each(storage):
    results = await asyncio.gather(*(storage.create(f"/registry/x/{i:03}", b"v") for i in range(200)))
    revisions = sorted(kv.mod_revision for kv in results)
    assert revisions == list(range(revisions[0], revisions[0] + 200))
    items, _ = await storage.list("/registry/x/")
    assert len(items) == 200 and [kv.key for kv in items] == sorted(kv.key for kv in items)


async def test_watch_from_revision_and_history_bound(storage):
    written = [await storage.create(f"/registry/pods/default/p{i}", b"v") for i in range(5)]
    base = written[0].mod_revision
    watch = storage.watch("/registry/pods/default/", base + 2)
    first, second = await watch.next(5), await watch.next(5)
    assert (first.revision, second.revision) == (base + 3, base + 4) and first.type == EventType.PUT
    assert first.created and first.prev is None
    assert await watch.next(0.2) is None
    updated = await storage.update("/registry/pods/default/p1", b"w", None)
    event = await watch.next(5)
    assert event.revision == updated.mod_revision and not event.created and event.prev.value == b"v"
    await storage.delete("/registry/pods/default/p0", None)
    event = await watch.next(5)
    assert event.type == EventType.DELETE and event.kv.key.endswith("p0") and event.kv.value == b"v"
    watch.stop()
    last = None
    for i in range(60):
        last = await storage.update("/registry/pods/default/p1", b"%d" % i, None)
    await settle(storage, last.mod_revision)
    with pytest.raises(RevisionCompacted):
        storage.watch("/registry/pods/default/", base + 2)


async def test_api_objects_on_etcd_are_listed_by_etcdctl_like_kubeadm(etcd):
    etcd.etcdctl("del", "/registry/", "--prefix")
    store = EtcdStorage(parse_etcd_endpoint(etcd.endpoint), compaction_interval=0)
    await store.start()
    try:
        api = API(store)
        await api.start()
        pod = {"metadata": {"name": "web"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        created = await api.create(api.pods, "default", pod)
        keys = etcd.etcdctl("get", "/registry", "--prefix", "--keys-only").split()
        assert "/registry/pods/default/web" in keys and "/registry/namespaces/default" in keys
        revision = etcd.etcdctl("get", "/registry/pods/default/web", "-w", "json")
        assert f'"mod_revision":{created["metadata"]["resourceVersion"]}' in revision
    finally:
        await store.close()


async def test_watch_resumes_across_a_server_restart_and_410s_after_compaction(etcd):
    etcd.etcdctl("del", "/registry/", "--prefix")
    store = EtcdStorage(parse_etcd_endpoint(etcd.endpoint), compaction_interval=0)
    await store.start()
    try:
        first = await store.create("/registry/configmaps/j/a", b"1")
        second = await store.create("/registry/configmaps/j/b", b"2")
    finally:
        await store.close()
    # A new server process: a client resuming from the first object's resourceVersion gets the rest.
    restarted = EtcdStorage(parse_etcd_endpoint(etcd.endpoint), compaction_interval=0)
    await restarted.start()
    try:
        watch = restarted.watch("/registry/configmaps/j/", first.mod_revision)
        event = await watch.next(5)
        assert event.revision == second.mod_revision and event.kv.value == b"2"
        watch.stop()
        third = await restarted.create("/registry/configmaps/j/c", b"3")
        await restarted.compact(third.mod_revision)
    finally:
        await restarted.close()
    # After etcd compacted, resuming from before the compaction is 410; from after it works.
    compacted = EtcdStorage(parse_etcd_endpoint(etcd.endpoint), compaction_interval=0)
    await compacted.start()
    try:
        await settle(compacted, third.mod_revision)
        with pytest.raises(RevisionCompacted):
            compacted.watch("/registry/configmaps/j/", first.mod_revision)
        watch = compacted.watch("/registry/configmaps/j/", third.mod_revision)
        fourth = await compacted.create("/registry/configmaps/j/d", b"4")
        assert (await watch.next(5)).revision == fourth.mod_revision
        watch.stop()
    finally:
        await compacted.close()


@needs_etcd
async def test_tls_with_client_certificates(tmp_path):
    pki = EtcdPKI.create(tmp_path / "pki")
    cluster = EtcdCluster(tmp_path / "etcd", size=1, pki=pki).start()
    try:
        endpoint = cluster.endpoint  # etcd://…: TLS because certificate files are given
        store = EtcdStorage(parse_etcd_endpoint(endpoint, str(pki.ca), str(pki.client_cert), str(pki.client_key)),
                            compaction_interval=0)
        await store.start()
        try:
            created = await store.create("/registry/secrets/j/tls", b"over tls")
            assert (await store.get("/registry/secrets/j/tls")).mod_revision == created.mod_revision
        finally:
            await store.close()
        https = endpoint.replace("etcd://", "https://")
        anonymous = EtcdStorage(parse_etcd_endpoint(https, str(pki.ca)), compaction_interval=0, retry_budget=1)
        with pytest.raises(StorageError):
            await anonymous.start()
        await anonymous.close()
    finally:
        cluster.stop()


async def test_cluster_ca_lives_outside_registry_lists_and_watches(storage):
    """The CA key (/shipmate/pki/ca) is accepted by both backends, created once by racing servers, and
    no /registry list or watch sees it."""
    if await storage.get(pki_bootstrap.CA_STORAGE_KEY) is not None:
        await storage.delete(pki_bootstrap.CA_STORAGE_KEY, None)
    before = await storage.create("/registry/configmaps/default/before-ca", b"{}")
    await settle(storage, before.mod_revision)  # the etcd watch stream caught up (past any old compaction)
    watch = storage.watch("/registry/", storage.revision)
    first, second = await asyncio.gather(pki_bootstrap.load_or_create_ca(storage),
                                         pki_bootstrap.load_or_create_ca(storage))
    assert first == second
    created = await storage.create("/registry/configmaps/default/after-ca", b"{}")
    listed, _ = await storage.list("/registry/")
    assert sorted(kv.key for kv in listed) == sorted([before.key, created.key])
    event = await watch.next(timeout=5)
    assert event is not None and event.kv.key == created.key
    watch.stop()
    assert await pki_bootstrap.load_or_create_ca(storage) == first


def test_servers_on_one_etcd_share_the_cluster_ca(etcd, tmp_path):
    """A second server on the same etcd loads the first one's CA: the admin kubeconfig of one is
    accepted by the other (its serving certificate chains to the same CA)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = Server(tmp_path / "a"), Server(tmp_path / "b")
    for server in (first, second):
        server.extra_args = ["--datastore-endpoint", etcd.endpoint]
    first.start()
    try:
        second.start()
        try:
            assert etcd.etcdctl("get", pki_bootstrap.CA_STORAGE_KEY, "--keys-only").split() == \
                [pki_bootstrap.CA_STORAGE_KEY]
            ca_files = [open(os.path.join(s.data_dir, "pki", "ca.crt"), "rb").read() for s in (first, second)]
            assert ca_files[0] == ca_files[1]
            across = second.kubectl("--server", first.url, "get", "namespace", "default", "-o", "name")
            assert across.stdout.strip() == "namespace/default"
        finally:
            second.stop()
    finally:
        first.stop()


def test_shipmate_server_on_etcd_with_kubectl(etcd, tmp_path):
    """`shipmate server --datastore-endpoint`: kubectl writes land in etcd and survive a server restart."""
    etcd.etcdctl("del", "/registry/", "--prefix")
    server = Server(tmp_path)
    server.extra_args = ["--datastore-endpoint", etcd.endpoint]
    server.start()
    try:
        server.kubectl("create", "configmap", "j-etcd", "--from-literal=k=v")
        keys = etcd.etcdctl("get", "/registry", "--prefix", "--keys-only").split()
        assert "/registry/configmaps/default/j-etcd" in keys
        assert not os.path.exists(os.path.join(server.data_dir, "state.db"))
        server.stop()
        server.start()
        got = json.loads(server.kubectl("get", "configmap", "j-etcd", "-o", "json").stdout)
        assert got["data"] == {"k": "v"}
        etcd_revision = etcd.etcdctl("get", "/registry/configmaps/default/j-etcd", "-w", "json")
        assert f'"mod_revision":{got["metadata"]["resourceVersion"]}' in etcd_revision
    finally:
        server.stop()
