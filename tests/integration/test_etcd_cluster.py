"""The etcd backend on a real 3-member cluster: failover of requests and of the watch stream when a
member dies, and a watch stream that comes back after etcd compacted past it (watchers close, 410, relist)."""
from __future__ import annotations

import asyncio

import pytest

from apiserver.api import API
from apiserver.storage.etcd import EtcdStorage, parse_etcd_endpoint
from apiserver.storage.interface import RevisionCompacted, WatchClosed
from shipmate.selectors import parse_field_selector, parse_label_selector
from tests.integration.etcd_support import EtcdCluster, etcd_available
from tests.integration.test_apiserver_kubectl import Server

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not etcd_available(), reason="etcd-server/etcd-client not installed "
                                                              "(hack/up.sh --test-extras installs them)")]


@pytest.fixture
def cluster(tmp_path):
    etcd = EtcdCluster(tmp_path, size=3).start()
    yield etcd
    etcd.stop()


async def test_requests_and_watch_fail_over_when_a_member_dies(cluster):
    store = EtcdStorage(parse_etcd_endpoint(cluster.endpoint), compaction_interval=0)
    await store.start()
    try:
        first = await store.create("/registry/configmaps/j/0", b"0")
        watch = store.watch("/registry/configmaps/j/", first.mod_revision)
        before = [await store.create(f"/registry/configmaps/j/{i}", b"v") for i in range(1, 5)]
        used = store._endpoints.current
        cluster.kill_member(used)
        after = [await store.create(f"/registry/configmaps/j/{i}", b"v") for i in range(5, 10)]
        assert store._endpoints.current != used
        received = [await watch.next(15) for _ in range(9)]
        assert [e.revision for e in received] == [kv.mod_revision for kv in before + after]
        assert [e.kv.key for e in received] == [f"/registry/configmaps/j/{i}" for i in range(1, 10)]
        cluster.start_member(used)
        cluster.wait_healthy()
        items, _ = await store.list("/registry/configmaps/j/")
        assert len(items) == 10
    finally:
        await store.close()


async def test_watch_back_after_compaction_closes_watchers_then_410_and_relist(cluster):
    only_first = parse_etcd_endpoint(f"etcd://127.0.0.1:{cluster.members[0].client_port}")
    store = EtcdStorage(only_first, compaction_interval=0)
    await store.start()
    try:
        api = API(store)
        await api.start()
        cms = api.registry("", "configmaps")
        created = await api.create(cms, "default", {"metadata": {"name": "before"}})
        seen = created["metadata"]["resourceVersion"]
        resource_watch = await cms.watch("default", parse_label_selector(""), parse_field_selector(""),
                                                    seen)
        cluster.kill_member(0)
        cluster.wait_healthy(members=[1, 2])  # a new leader, if m0 led
        # While this server's only member is down, others write and compact through the rest of the cluster.
        for i in range(3):
            cluster.etcdctl("put", f"/registry/configmaps/default/x{i}",
                            '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x%d","namespace":"default",'
                            '"uid":"u%d","creationTimestamp":"2026-01-01T00:00:00Z"}}' % (i, i), members=[1, 2])
        status = cluster.etcdctl("get", "/registry/configmaps/default/x2", "-w", "json", members=[1, 2])
        latest = int(status.split('"revision":')[1].split(",")[0])
        cluster.etcdctl("compact", str(latest), members=[1, 2])
        cluster.start_member(0)
        with pytest.raises(WatchClosed):
            while True:
                await resource_watch.next(20)
        with pytest.raises(RevisionCompacted):
            await cms.watch("default", parse_label_selector(""), parse_field_selector(""), seen)
        items, revision = await cms.list("default", parse_label_selector(""), parse_field_selector(""))
        assert sorted(obj["metadata"]["name"] for obj in items) == ["before", "x0", "x1", "x2"]
        relisted = await cms.watch("default", parse_label_selector(""), parse_field_selector(""),
                                              str(revision))
        await api.create(cms, "default", {"metadata": {"name": "after"}})
        event = await relisted.next(10)
        assert event.type == "ADDED" and event.object["metadata"]["name"] == "after"
        relisted.stop()
    finally:
        await store.close()


async def test_writes_wait_out_a_lost_quorum_then_succeed(cluster):
    store = EtcdStorage(parse_etcd_endpoint(cluster.endpoint), compaction_interval=0, request_timeout=2)
    await store.start()
    try:
        cluster.kill_member(1)
        cluster.kill_member(2)
        pending = asyncio.create_task(store.create("/registry/configmaps/j/q", b"q"))
        await asyncio.sleep(1.5)
        assert not pending.done()
        cluster.start_member(1)
        kv = await asyncio.wait_for(pending, 30)
        assert (await store.get("/registry/configmaps/j/q")).mod_revision == kv.mod_revision
    finally:
        await store.close()


def test_shipmate_server_keeps_serving_kubectl_when_its_etcd_member_dies(cluster, tmp_path):
    (tmp_path / "server").mkdir()
    server = Server(tmp_path / "server")
    server.extra_args = ["--datastore-endpoint", cluster.endpoint]
    server.start()
    try:
        server.kubectl("create", "configmap", "before", "--from-literal=k=v")
        cluster.kill_member(0)  # the endpoint listed first, the one the server talks to
        server.kubectl("create", "configmap", "after", "--from-literal=k=v", timeout=60)
        names = server.kubectl("get", "configmaps", "-o", "name").stdout.split()
        assert {"configmap/before", "configmap/after"} <= set(names)
        keys = cluster.etcdctl("get", "/registry/configmaps/default/", "--prefix", "--keys-only",
                               members=[1, 2]).split()
        assert {"/registry/configmaps/default/before", "/registry/configmaps/default/after"} <= set(keys)
    finally:
        server.stop()
