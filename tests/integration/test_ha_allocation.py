"""Two API servers (two API objects with their own in-memory allocators, as two processes) on one real etcd:
ClusterIPs, NodePorts and node podCIDRs stay unique when both allocate at once; the `kubernetes` Endpoints
list every live server; stale claims are taken over."""
from __future__ import annotations

import asyncio
import datetime
import json

import pytest

from apiserver import errors
from apiserver.api import API
from apiserver.allocation.claims import Claims, ClaimConflict, Holder, claim_key
from apiserver.controllers.kubernetes_service import KubernetesService
from apiserver.registry import DeleteOptions
from apiserver.storage.etcd import EtcdStorage, parse_etcd_endpoint
from apiserver.storage.sqlite import SQLiteStorage
from tests.integration.etcd_support import EtcdCluster, etcd_available

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    if not etcd_available():
        pytest.skip("etcd-server/etcd-client not installed (hack/up.sh --test-extras installs them)")
    cluster = EtcdCluster(tmp_path_factory.mktemp("etcd"), size=1).start()
    yield cluster
    cluster.stop()


@pytest.fixture
async def two_apis(etcd):
    etcd.etcdctl("del", "/", "--prefix")
    stores, apis = [], []
    for _ in range(2):
        store = EtcdStorage(parse_etcd_endpoint(etcd.endpoint), history_size=1000, compaction_interval=0)
        await store.start()
        api = API(store, "10.244.0.0/16", 24, service_cluster_ip_range="10.96.0.0/26",
                  service_node_port_range=(30000, 30047))
        await api.start()
        stores.append(store)
        apis.append(api)
    followers = [asyncio.create_task(api.follow_service_allocations()) for api in apis]  # as `shipmate server`
    yield apis
    for follower in followers:
        follower.cancel()
    await asyncio.gather(*followers, return_exceptions=True)
    for store in stores:
        await store.close()


def service(name, node_port=None, cluster_ip=None):
    port = {"port": 80, **({"nodePort": node_port} if node_port else {})}
    spec = {"type": "NodePort", "selector": {"app": name}, "ports": [port]}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    return {"metadata": {"name": name}, "spec": spec}


async def test_concurrent_service_creates_on_two_servers_get_unique_values(two_apis):
    a, b = two_apis
    # 40 NodePort services over a 48-port range and a /26 (61 usable IPs): both servers pick at once, so
    # their in-memory views (which do not see each other's picks in flight) collide often.
    results = await asyncio.gather(*(api.create(api.services, "default", service(f"svc-{i}"))
                                     for i, api in enumerate([a, b] * 20)), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, failures
    stored, _ = await a.services.list("default")
    stored = [s for s in stored if s["metadata"]["name"].startswith("svc-")]
    assert len(stored) == 40
    ips = [s["spec"]["clusterIP"] for s in stored]
    ports = [s["spec"]["ports"][0]["nodePort"] for s in stored]
    assert len(set(ips)) == 40 and len(set(ports)) == 40 and set(ports) <= set(range(30000, 30048))
    # The last 8 ports, one create at a time on alternating servers, then the range is full on both.
    for i, api in enumerate([a, b] * 4):
        await api.create(api.services, "default", service(f"late-{i}"))
    stored, _ = await a.services.list("default")
    assert len({s["spec"]["ports"][0]["nodePort"] for s in stored if s["spec"].get("ports")[0].get("nodePort")}) == 48
    for api in (a, b):
        with pytest.raises(errors.APIError) as caught:
            await api.create(api.services, "default", service("one-too-many"))
        assert caught.value.code == 422 and "range is full" in caught.value.message


async def test_the_same_requested_value_on_two_servers_goes_to_exactly_one(two_apis):
    a, b = two_apis
    for round_ in range(5):
        results = await asyncio.gather(
            a.create(a.services, "default", service(f"a-{round_}", 30001 + round_, f"10.96.0.{10 + round_}")),
            b.create(b.services, "default", service(f"b-{round_}", 30001 + round_, f"10.96.0.{10 + round_}")),
            return_exceptions=True)
        created = [r for r in results if isinstance(r, dict)]
        refused = [r for r in results if isinstance(r, errors.APIError)]
        assert len(created) == 1 and len(refused) == 1, results
        assert refused[0].code == 422 and "already allocated" in refused[0].message


async def test_values_freed_on_one_server_are_reusable_on_the_other(two_apis):
    a, b = two_apis
    await a.create(a.services, "default", service("first", 30020, "10.96.0.20"))
    for _ in range(100):  # b's view follows a's writes through its watch (follow_services)
        if b.service_allocator.node_ports.range.owner(30020) == "default/first":
            break
        await asyncio.sleep(0.05)
    assert b.service_allocator.ips.range.owner(20) == "default/first"
    await a.delete(a.services, "default", "first", DeleteOptions())
    for _ in range(100):
        if b.service_allocator.node_ports.range.owner(30020) is None:
            break
        await asyncio.sleep(0.05)
    assert b.service_allocator.ips.range.owner(20) is None
    created = await b.create(b.services, "default", service("second", 30020, "10.96.0.20"))
    assert created["spec"]["clusterIP"] == "10.96.0.20"


async def test_concurrent_node_creates_on_two_servers_get_unique_pod_cidrs(two_apis):
    a, b = two_apis
    nodes = await asyncio.gather(*(api.create(api.nodes, "", {"metadata": {"name": f"node-{i}"}})
                                   for i, api in enumerate([a, b] * 15)))
    cidrs = [n["spec"]["podCIDR"] for n in nodes]
    assert len(set(cidrs)) == 30, sorted(cidrs)
    await a.delete(a.nodes, "", "node-0", DeleteOptions())
    assert await a.storage.get(claim_key("podcidrs", nodes[0]["spec"]["podCIDR"])) is None
    assert await a.storage.get(claim_key("podcidrs", nodes[1]["spec"]["podCIDR"])) is not None


async def test_kubernetes_endpoints_list_every_live_server_and_both_agree(two_apis):
    a, b = two_apis
    one, two = KubernetesService(a, "127.0.0.1", 6443), KubernetesService(b, "127.0.0.2", 6443)
    for _ in range(2):  # both reconcile twice: the second pass must change nothing (no fight)
        await one.reconcile()
        await two.reconcile()
    endpoints = await a.endpoints.get("default", "kubernetes")
    revision = endpoints["metadata"]["resourceVersion"]
    assert endpoints["subsets"] == [{"addresses": [{"ip": "127.0.0.1"}, {"ip": "127.0.0.2"}],
                                     "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]
    await one.reconcile()
    await two.reconcile()
    assert (await a.endpoints.get("default", "kubernetes"))["metadata"]["resourceVersion"] == revision
    slice_ = await a.endpoint_slices.get("default", "kubernetes")
    assert [e["addresses"] for e in slice_["endpoints"]] == [["127.0.0.1"], ["127.0.0.2"]]
    leases, _ = await a.registry("coordination.k8s.io", "leases").list("kube-system")
    identity = [l for l in leases if (l["metadata"].get("labels") or {}).get("apiserver.kubernetes.io/identity")]
    assert len(identity) == 2 and all(l["metadata"]["name"].startswith("apiserver-") for l in identity)
    assert all(l["spec"]["leaseDurationSeconds"] == 30 for l in identity)

    # Server two shuts down: it withdraws at once (server one remains).
    running = asyncio.create_task(two.run())
    await asyncio.sleep(0.2)
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    endpoints = await a.endpoints.get("default", "kubernetes")
    assert endpoints["subsets"][0]["addresses"] == [{"ip": "127.0.0.1"}]
    await two.reconcile()  # back

    # Server two stops renewing: once its lease expires, server one drops it from the Endpoints.
    registry = a.registry("coordination.k8s.io", "leases")
    lease = await registry.get("kube-system", two.identity.name)
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=31)
    lease["spec"]["renewTime"] = old.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    await a.update(registry, "kube-system", two.identity.name, lease)
    await one.reconcile()
    endpoints = await a.endpoints.get("default", "kubernetes")
    assert endpoints["subsets"][0]["addresses"] == [{"ip": "127.0.0.1"}]
    service = await a.services.get("default", "kubernetes")
    assert service["spec"]["clusterIP"] == "10.96.0.1" and service["spec"]["ports"][0]["targetPort"] == 6443


async def test_stale_claims_are_taken_over_only_after_the_grace_period(tmp_path):
    store = SQLiteStorage(str(tmp_path / "state.db"))
    await store.start()
    now = [1000.0]
    live: set[str] = set()

    async def holder_is_live(holder: Holder, value: str) -> bool:
        return holder.owner in live

    claims = Claims(store, "serviceips", holder_is_live, grace=30, clock=lambda: now[0])
    try:
        assert await claims.claim("10.96.0.5", "default/a", "uid-a")
        assert not await claims.claim("10.96.0.5", "default/a", "uid-a")  # already ours
        with pytest.raises(ClaimConflict):  # fresh: a write may be in flight on another server
            await claims.claim("10.96.0.5", "default/b", "uid-b")
        now[0] += 31
        live.add("default/a")
        with pytest.raises(ClaimConflict):  # old, but its holder still holds the value
            await claims.claim("10.96.0.5", "default/b", "uid-b")
        live.clear()
        assert await claims.claim("10.96.0.5", "default/b", "uid-b")  # stale: taken over
        stored = json.loads((await store.get(claim_key("serviceips", "10.96.0.5"))).value)
        assert stored["owner"] == "default/b" and stored["uid"] == "uid-b"
        await claims.release("10.96.0.5", "default/a", "uid-a")  # not a's any more: left alone
        assert await store.get(claim_key("serviceips", "10.96.0.5")) is not None
        await claims.release("10.96.0.5", "default/b", "uid-b")
        assert await store.get(claim_key("serviceips", "10.96.0.5")) is None
    finally:
        await store.close()


async def test_one_server_creates_and_repairs_the_kubernetes_service(tmp_path):
    store = SQLiteStorage(str(tmp_path / "state.db"))
    await store.start()
    try:
        api = API(store)
        await api.start()
        kubernetes = KubernetesService(api, "192.0.2.5", 6443)
        await kubernetes.reconcile()
        service = await api.services.get("default", "kubernetes")
        assert service["spec"]["clusterIP"] == "10.96.0.1"
        assert service["spec"]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]
        await api.delete(api.services, "default", "kubernetes", DeleteOptions())
        await api.patch(api.endpoints, "default", "kubernetes", "application/merge-patch+json",
                        {"subsets": [{"addresses": [{"ip": "192.0.2.99"}], "ports": [{"port": 1}]}]})
        await kubernetes.reconcile()
        service = await api.services.get("default", "kubernetes")
        assert service["spec"]["clusterIP"] == "10.96.0.1" and service["spec"]["ports"][0]["targetPort"] == 6443
        endpoints = await api.endpoints.get("default", "kubernetes")
        assert endpoints["subsets"] == [{"addresses": [{"ip": "192.0.2.5"}],
                                         "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]
        endpoint_slice = await api.endpoint_slices.get("default", "kubernetes")
        assert endpoint_slice["endpoints"][0]["addresses"] == ["192.0.2.5"]
    finally:
        await store.close()
