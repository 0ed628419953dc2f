"""What the server keeps per connection and for watch fan-out, bounded (docs/security.md, Bounds)."""
from __future__ import annotations

import asyncio
import json
import ssl
from asyncio import sslproto

from apiserver.decoded_objects import DecodedObjects
from apiserver.http.tls_buffers import TLS_READ_BUFFER_BYTES, limit_tls_read_buffer
from apiserver.kinds.configmaps import ConfigMapStrategy
from apiserver.registry import Registry
from apiserver.storage.interface import KeyValue


def test_decoded_objects_are_bounded_in_entries():
    cache = DecodedObjects(max_entries=4, max_bytes=1 << 20)
    for revision in range(10):
        cache.put(("v1", "ConfigMap", "/registry/configmaps/ns/a", revision), {"r": revision}, 10)
    assert len(cache) == 4 and cache.encoded_bytes == 40
    assert cache.get(("v1", "ConfigMap", "/registry/configmaps/ns/a", 5)) is None
    assert cache.get(("v1", "ConfigMap", "/registry/configmaps/ns/a", 9)) == {"r": 9}


def test_decoded_objects_are_bounded_in_encoded_bytes_and_keep_the_newest_even_past_it():
    cache = DecodedObjects(max_entries=512, max_bytes=1000)
    for revision in range(20):
        cache.put(("v1", "ConfigMap", "/registry/configmaps/ns/a", revision), {}, 300)
    assert len(cache) == 3 and cache.encoded_bytes == 900
    cache.put(("v1", "ConfigMap", "/registry/configmaps/ns/big", 20), {"big": True}, 5000)
    assert len(cache) == 1 and cache.encoded_bytes == 5000  # one big event: still decoded once for all
    assert cache.get(("v1", "ConfigMap", "/registry/configmaps/ns/big", 20)) == {"big": True}
    cache.put(("v1", "ConfigMap", "/registry/configmaps/ns/big", 20), {"big": True}, 5000)
    assert len(cache) == 1 and cache.encoded_bytes == 5000


def test_registries_share_one_bound_and_decode_an_event_once():
    shared = DecodedObjects(max_entries=512, max_bytes=64 * 1024)
    configmaps = Registry(ConfigMapStrategy(), storage=None, decoded=shared)
    again = Registry(ConfigMapStrategy(), storage=None, decoded=shared)
    value = json.dumps({"metadata": {"name": "a", "namespace": "ns"},
                        "data": {f"k{i}": "v" for i in range(1000)}}).encode()  # ~11 KiB
    first = configmaps.decode_shared(KeyValue("/registry/configmaps/ns/a", value, 1, 1))
    assert configmaps.decode_shared(KeyValue("/registry/configmaps/ns/a", value, 1, 1)) is first
    assert again.decode_shared(KeyValue("/registry/configmaps/ns/a", value, 1, 1)) is first
    assert first["metadata"]["resourceVersion"] == "1" and first["kind"] == "ConfigMap"
    for revision in range(2, 200):  # a client rewriting the object: the cache keeps a few revisions only
        configmaps.decode_shared(KeyValue("/registry/configmaps/ns/a", value, 1, revision))
    assert len(shared) == 64 * 1024 // len(value)
    assert shared.encoded_bytes <= 64 * 1024


def test_every_registry_of_the_server_shares_the_bound():
    """Subresource and custom resource registries use the server's DecodedObjects too (each with its own
    bound, a user creating CRDs would multiply it); a custom resource registry rebuilt for a changed CRD
    decodes by the new schema, not handed its predecessor's objects."""
    from apiserver.crd.resource import registries_for
    from apiserver.kinds.certificates import CSRStrategy

    shared = DecodedObjects()
    csrs = Registry(CSRStrategy(), storage=None, decoded=shared)
    assert csrs.for_subresource("approval")._decoded is shared
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.com", "uid": "u"},
           "spec": {"group": "example.com", "scope": "Namespaced", "names": {"plural": "widgets", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "properties": {"spec": {"type": "object", "properties": {
                            "size": {"type": "integer", "default": 2}}}}}}}]},
           "status": {"acceptedNames": {"plural": "widgets", "kind": "Widget"}}}
    first = registries_for(crd, None, decoded=shared)["v1"]
    kv = KeyValue("/registry/example.com/widgets/ns/w",
                  b'{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{}}', 1, 7)
    before = len(shared)
    assert first.decode_shared(kv) is first.decode_shared(kv) and len(shared) == before + 1
    props = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    props["size"]["default"] = 3
    rebuilt = registries_for(crd, None, decoded=shared)["v1"]
    assert rebuilt.decode_shared(kv)["spec"] == {"size": 3}


async def test_tls_connections_read_into_a_small_buffer(monkeypatch):
    monkeypatch.setattr(sslproto.SSLProtocol, "max_size", sslproto.SSLProtocol.max_size)  # undone after
    limit_tls_read_buffer()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    protocol = sslproto.SSLProtocol(asyncio.get_running_loop(), asyncio.Protocol(), context, None)
    assert len(protocol.get_buffer(-1)) == TLS_READ_BUFFER_BYTES == 32 * 1024
    limit_tls_read_buffer(1 << 20)  # a larger size never raises it
    assert sslproto.SSLProtocol.max_size == TLS_READ_BUFFER_BYTES

