"""Client GETs and LISTs served from the read cache (apiserver/read_cache.py) on SQLite: no storage read, no
decoding, and the same JSON the decoded objects gave (resourceVersion, List metadata, selectors, pages,
Tables), current with every acknowledged write."""
from __future__ import annotations

import json
import logging

import pytest
from aiohttp.test_utils import TestClient, TestServer

from apiserver.api import API
from apiserver.http.server import HTTPServer
from apiserver.read_cache import splice_point
from apiserver.registry import Registry, encode
from apiserver.storage.interface import KeyValue
from apiserver.storage.sqlite import SQLiteStorage
from shipmate import jsoncodec

TOKEN = "read-cache-admin"
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


class StoreReadSQLite(SQLiteStorage):
    """A storage that can neither publish before acknowledging nor confirm a cache: reads go to the store (the
    path custom resources take), which answers the same."""
    publishes_before_ack = False


async def _served(tmp_path, storage_class):
    tokens = tmp_path / "tokens.csv"
    tokens.write_text(f'{TOKEN},admin,admin,"system:masters"\n')
    storage = storage_class(str(tmp_path / "state.db"))
    await storage.start()
    api = API(storage)
    await api.start()
    server = HTTPServer(api, token_auth_file=str(tokens))
    client = TestClient(TestServer(server.app), headers={"Authorization": f"Bearer {TOKEN}"})
    await client.start_server()
    return client, api


@pytest.fixture(params=[SQLiteStorage, StoreReadSQLite], ids=["read-cache", "store"])
async def served(tmp_path, request):
    client, api = await _served(tmp_path, request.param)
    yield client, api
    await client.close()
    await api.storage.close()


@pytest.fixture
async def cached(tmp_path):
    client, api = await _served(tmp_path, SQLiteStorage)
    yield client, api
    await client.close()
    await api.storage.close()


def configmap(name: str, **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels},
            "data": {"k": f"value of {name} \u00e9 \"quoted\" \"metadata\":{{"}}


async def create(client: TestClient, body: dict, namespace: str = "default") -> dict:
    response = await client.post(f"/api/v1/namespaces/{namespace}/configmaps", json=body)
    assert response.status == 201, await response.text()
    return await response.json()


def decoded_json(registry: Registry, kv: KeyValue) -> bytes:
    """What the server answered before the cache: the decoded object encoded again."""
    return jsoncodec.dumps(registry.decode(kv))


async def test_get_and_list_are_served_without_reading_or_decoding_stored_objects(cached, monkeypatch):
    client, api = cached
    made = [await create(client, configmap(f"cm-{i}", app="a" if i % 2 else "b")) for i in range(6)]
    registry = api.registry("", "configmaps")
    expected = {}
    for obj in made:
        kv = await api.storage.get(registry.key("default", obj["metadata"]["name"]))
        expected[obj["metadata"]["name"]] = decoded_json(registry, kv)

    async def no_storage_read(*args):
        raise AssertionError("a client read went to the storage")

    decodes = []
    real_decode = Registry.decode
    await (await client.get(CONFIGMAPS)).read()  # the cache fills once (it lists, when it has no watch yet)
    monkeypatch.setattr(SQLiteStorage, "get", no_storage_read)
    monkeypatch.setattr(SQLiteStorage, "list", no_storage_read)
    monkeypatch.setattr(Registry, "decode", lambda self, kv: decodes.append(kv) or real_decode(self, kv))

    response = await client.get(f"{CONFIGMAPS}/cm-3")
    assert response.status == 200 and response.headers["Content-Type"] == "application/json"
    assert await response.read() == expected["cm-3"]  # byte for byte what decoding and encoding gave
    listed = await client.get(f"{CONFIGMAPS}?labelSelector=app%3Da")
    body = await listed.read()
    document = json.loads(body)
    assert document["kind"] == "ConfigMapList" and document["apiVersion"] == "v1"
    assert document["metadata"] == {"resourceVersion": str(api.storage.revision)}
    assert [item["metadata"]["name"] for item in document["items"]] == ["cm-1", "cm-3", "cm-5"]
    assert body == jsoncodec.dumps({"kind": "ConfigMapList", "apiVersion": "v1", "metadata": document["metadata"],
                                    "items": [json.loads(expected[n]) for n in ("cm-1", "cm-3", "cm-5")]})
    assert decodes == []
    missing = await client.get(f"{CONFIGMAPS}/nope")
    assert missing.status == 404 and (await missing.json())["reason"] == "NotFound"


async def test_reads_see_every_acknowledged_write(served):
    client, api = served
    created = await create(client, configmap("a", tier="x"))
    await (await client.get(CONFIGMAPS)).read()  # the cache exists from here on
    got = await (await client.get(f"{CONFIGMAPS}/a")).json()
    assert got == created
    updated = {**created, "data": {"k": "new"}}
    response = await client.put(f"{CONFIGMAPS}/a", json=updated)
    assert response.status == 200
    after = await response.json()
    assert after["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]
    assert await (await client.get(f"{CONFIGMAPS}/a")).json() == after
    listed = await (await client.get(CONFIGMAPS)).json()
    assert listed["items"] == [after] and listed["metadata"]["resourceVersion"] == after["metadata"]["resourceVersion"]
    await create(client, configmap("b"), namespace="kube-system")
    assert [i["metadata"]["name"] for i in (await (await client.get(CONFIGMAPS)).json())["items"]] == ["a"]
    everywhere = await (await client.get("/api/v1/configmaps")).json()
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in everywhere["items"]] == \
        [("default", "a"), ("kube-system", "b")]
    assert (await client.delete(f"{CONFIGMAPS}/a")).status == 200
    assert (await client.get(f"{CONFIGMAPS}/a")).status == 404
    assert (await (await client.get(CONFIGMAPS)).json())["items"] == []


async def test_cached_lists_keep_pages_field_selectors_and_tables(served):
    client, api = served
    for i in range(5):
        await create(client, configmap(f"cm-{i}"))
    first = await (await client.get(f"{CONFIGMAPS}?limit=2")).json()
    revision = first["metadata"]["resourceVersion"]
    assert [i["metadata"]["name"] for i in first["items"]] == ["cm-0", "cm-1"]
    assert first["metadata"]["remainingItemCount"] == 3 and first["metadata"]["continue"]
    await create(client, configmap("cm-5"))
    token = first["metadata"]["continue"]
    second = await (await client.get(f"{CONFIGMAPS}?limit=2&continue={token}")).json()
    assert [i["metadata"]["name"] for i in second["items"]] == ["cm-2", "cm-3"]
    assert second["metadata"]["resourceVersion"] == revision
    last = await (await client.get(f"{CONFIGMAPS}?limit=5&continue={second['metadata']['continue']}")).json()
    assert [i["metadata"]["name"] for i in last["items"]] == ["cm-4", "cm-5"] and "continue" not in last["metadata"]

    by_name = await (await client.get(f"{CONFIGMAPS}?fieldSelector=metadata.name%3Dcm-4")).json()
    assert [i["metadata"]["name"] for i in by_name["items"]] == ["cm-4"]
    assert (await client.get(f"{CONFIGMAPS}?fieldSelector=data.k%3Dx")).status == 400

    table = await (await client.get(CONFIGMAPS, headers={"Accept": TABLE})).json()
    assert table["kind"] == "Table" and [row["cells"][0] for row in table["rows"]] == [f"cm-{i}" for i in range(6)]
    assert table["rows"][0]["object"]["metadata"]["resourceVersion"]
    one = await (await client.get(f"{CONFIGMAPS}/cm-1", headers={"Accept": TABLE})).json()
    assert one["kind"] == "Table" and one["rows"][0]["cells"][0] == "cm-1"
    partial = await (await client.get(
        CONFIGMAPS, headers={"Accept": "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"})).json()
    assert partial["kind"] == "PartialObjectMetadataList" and len(partial["items"]) == 6


async def test_a_watch_from_a_cached_lists_revision_misses_nothing(served):
    client, api = served
    await create(client, configmap("a"))
    listed = await (await client.get(CONFIGMAPS)).json()
    await create(client, configmap("b"))
    response = await client.get(f"{CONFIGMAPS}?watch=1&resourceVersion={listed['metadata']['resourceVersion']}"
                                "&timeoutSeconds=1")
    events = [json.loads(line) for line in (await response.read()).splitlines()]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "b")]


def _registry(api: API) -> Registry:
    return api.registry("", "configmaps")


@pytest.mark.parametrize("obj", [
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "d", "uid": "u"},
     "data": {"a": "b"}},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}, "data": {}},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "annotations": {
        "k": 'text with "metadata":{"name":"y"} and \u00e9\u4e2d'}}, "data": {"x": "\\"}},
])
async def test_spliced_bytes_are_the_decoded_objects_json(tmp_path, obj):
    api = API(SQLiteStorage(str(tmp_path / "state.db")))
    registry = _registry(api)
    value = encode(obj)
    kv = KeyValue("/registry/configmaps/d/x", value, 3, 7)
    from apiserver.read_cache import CachedObject
    assert splice_point(value, json.loads(value), "v1", "ConfigMap") is not None
    assert CachedObject(kv).json(registry) == decoded_json(registry, kv)


@pytest.mark.parametrize("value", [
    # a nested "metadata" before the top-level one: decoded and encoded instead
    b'{"spec":{"template":{"metadata":{"name":"inner"}}},"apiVersion":"v1","kind":"ConfigMap",'
    b'"metadata":{"name":"x"}}',
    b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","resourceVersion":"1"}}',
    b'{"apiVersion":"v1","metadata":{"name":"x"}}',  # decode() adds the kind
    b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}',  # not orjson's spacing
])
async def test_bytes_that_cannot_be_spliced_are_decoded(tmp_path, value):
    api = API(SQLiteStorage(str(tmp_path / "state.db")))
    registry = _registry(api)
    assert splice_point(value, json.loads(value), "v1", "ConfigMap") is None
    from apiserver.read_cache import CachedObject
    kv = KeyValue("/registry/configmaps/d/x", value, 3, 7)
    assert CachedObject(kv).json(registry) == decoded_json(registry, kv)


@pytest.mark.parametrize("selector", ["app=a", "app==a", "app in (a,c)", "app!=a", "!app", "app", "app=a,tier=x",
                                      "app notin (a)", "tier in (x),app", "app=zzz"])
async def test_cached_label_selection_is_the_registrys(served, selector):
    client, api = served
    for name, labels in (("a1", {"app": "a", "tier": "x"}), ("a2", {"app": "a"}), ("c1", {"app": "c", "tier": "x"}),
                         ("none", {})):
        await create(client, configmap(name, **labels))
    from shipmate.selectors import parse_label_selector
    expected, _ = await api.registry("", "configmaps").list("default", parse_label_selector(selector))
    response = await client.get(CONFIGMAPS, params={"labelSelector": selector})
    assert [i["metadata"]["name"] for i in (await response.json())["items"]] == \
        [o["metadata"]["name"] for o in expected]


async def test_a_cache_read_rarely_does_not_queue_every_write(cached, monkeypatch, caplog):
    """Between reads the cache's watch queues the resource's writes: past a bound it closes (quietly: it is
    expected) and the next read relists, with every write in."""
    import apiserver.read_cache as read_cache
    monkeypatch.setattr(read_cache, "_MAX_PENDING", 5)
    client, api = cached
    await (await client.get(CONFIGMAPS)).read()
    for i in range(12):
        await create(client, configmap(f"cm-{i:02}"))
    cache = api.registry("", "configmaps").read_cache()
    assert cache._watch._stopped  # closed at the bound, holding nothing more
    assert not [r for r in caplog.records if "fell behind" in r.getMessage() and r.levelno >= logging.WARNING]
    listed = await (await client.get(CONFIGMAPS)).json()
    assert [i["metadata"]["name"] for i in listed["items"]] == [f"cm-{i:02}" for i in range(12)]
    assert listed["metadata"]["resourceVersion"] == str(api.storage.revision)
