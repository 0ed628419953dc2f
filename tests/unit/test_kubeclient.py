"""shipmate.kubeclient against a tiny in-process aiohttp API server."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import tempfile
from typing import Any, AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from tests.unit.fake_api_server import client_for
from tests.unit.https_fake import HttpsServer, ClusterCA, peer_common_name, serving

from shipmate import kubeclient, pki
from shipmate.informer import Informer
from shipmate.kubeclient import (NODES, PODS, AlreadyExists, Conflict, Gone, Invalid, KubeClient, KubeConfig,
                                 NotFound, Resource, ResourceSource, ServerError, config_from_flags, parse_kubeconfig,
                                 in_cluster_config, parse_servers)


def status(code: int, reason: str, message: str) -> web.Response:
    return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                              "reason": reason, "message": message}, status=code)


class FakeApi:
    """Pods in one namespace with resourceVersions, watch streams fed from a queue, and a way to
    make the next watch answer 410."""

    def __init__(self) -> None:
        self.pods: dict[str, dict] = {}
        self.rv = 10
        self.requests: list[tuple[str, str, Any]] = []
        self.watch_queues: list[asyncio.Queue] = []
        self.expire_next_watch = False
        app = web.Application()
        app.router.add_route("*", "/api/v1/namespaces/{ns}/pods", self.collection)
        app.router.add_route("*", "/api/v1/namespaces/{ns}/pods/{name}", self.item)
        app.router.add_route("*", "/api/v1/namespaces/{ns}/pods/{name}/status", self.item)
        self.app = app

    def bump(self, pod: dict) -> dict:
        self.rv += 1
        pod["metadata"]["resourceVersion"] = str(self.rv)
        return pod

    def emit(self, kind: str, obj: dict) -> None:
        for queue in self.watch_queues:
            queue.put_nowait({"type": kind, "object": obj})

    async def collection(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            body = await request.json()
            self.requests.append(("POST", request.path, body))
            name = body["metadata"]["name"]
            if name in self.pods:
                return status(409, "AlreadyExists", f'pods "{name}" already exists')
            if not body.get("spec", {}).get("containers"):
                return status(422, "Invalid", "spec.containers: Required value")
            body["metadata"]["uid"] = f"uid-{name}"
            self.pods[name] = self.bump(body)
            self.emit("ADDED", body)
            return web.json_response(body, status=201)
        self.requests.append(("GET", request.path_qs, None))
        if request.query.get("watch"):
            if self.expire_next_watch:
                self.expire_next_watch = False
                return status(410, "Expired", "too old resource version")
            response = web.StreamResponse()
            await response.prepare(request)
            queue: asyncio.Queue = asyncio.Queue()
            self.watch_queues.append(queue)
            try:
                while True:
                    event = await queue.get()
                    if event is None:
                        break
                    await response.write(json.dumps(event).encode() + b"\n")
            finally:
                self.watch_queues.remove(queue)
            return response
        return web.json_response({"kind": "PodList", "metadata": {"resourceVersion": str(self.rv)},
                                  "items": list(self.pods.values())})

    async def item(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        pod = self.pods.get(name)
        body = await request.json() if request.can_read_body else None
        self.requests.append((request.method, request.path_qs, body, request.content_type))
        if pod is None:
            return status(404, "NotFound", f'pods "{name}" not found')
        if request.method == "GET":
            return web.json_response(pod)
        if request.method == "PATCH":
            for key, value in body.items():
                if isinstance(value, dict):
                    pod.setdefault(key, {}).update(value)
            self.emit("MODIFIED", self.bump(pod))
            return web.json_response(pod)
        if request.method == "PUT":
            if body["metadata"].get("resourceVersion") != pod["metadata"]["resourceVersion"]:
                return status(409, "Conflict", "the object has been modified")
            self.pods[name] = self.bump(body)
            return web.json_response(body)
        if request.method == "DELETE":
            uid = (body or {}).get("preconditions", {}).get("uid")
            if uid and uid != pod["metadata"]["uid"]:
                return status(409, "Conflict", "Precondition failed: UID in precondition")
            del self.pods[name]
            self.emit("DELETED", self.bump(pod))
            return web.json_response(pod)
        return status(405, "MethodNotAllowed", "no")


@pytest.fixture
async def api() -> AsyncIterator[tuple[FakeApi, KubeClient]]:
    fake = FakeApi()
    async with client_for(fake.app) as client:
        try:
            yield fake, client
        finally:
            for queue in list(fake.watch_queues):
                queue.put_nowait(None)


def pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "ns"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def test_resource_paths() -> None:
    assert PODS.path("ns", "p", "status") == "/api/v1/namespaces/ns/pods/p/status"
    assert NODES.path(None, "n") == "/api/v1/nodes/n"
    assert Resource("coordination.k8s.io/v1", "leases").path("kube-node-lease", "n") == \
        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n"


async def test_crud_and_typed_errors(api: tuple[FakeApi, KubeClient]) -> None:
    fake, client = api
    created = await client.create(PODS, pod("a"))
    assert created["metadata"]["uid"] == "uid-a"
    with pytest.raises(AlreadyExists) as exists:
        await client.create(PODS, pod("a"))
    assert exists.value.code == 409 and exists.value.status["reason"] == "AlreadyExists"
    bad = pod("b")
    bad["spec"]["containers"] = []
    with pytest.raises(Invalid, match="Required value"):
        await client.create(PODS, bad)
    with pytest.raises(NotFound):
        await client.get(PODS, "missing", "ns")
    assert (await client.get(PODS, "a", "ns"))["metadata"]["name"] == "a"
    listing = await client.list(PODS, "ns", field_selector="spec.nodeName=n1")
    assert [p["metadata"]["name"] for p in listing["items"]] == ["a"]
    assert "fieldSelector=spec.nodeName%3Dn1" in fake.requests[-1][1]

    patched = await client.patch(PODS, "a", {"status": {"phase": "Running"}}, "ns", subresource="status")
    assert patched["status"]["phase"] == "Running"
    method, path, body, content_type = fake.requests[-1]
    assert (method, path, content_type) == ("PATCH", "/api/v1/namespaces/ns/pods/a/status", "application/merge-patch+json")

    stale = dict(created)
    with pytest.raises(Conflict):
        await client.update(PODS, stale)

    with pytest.raises(Conflict, match="Precondition"):
        await client.delete(PODS, "a", "ns", grace_period_seconds=0, uid="other")
    await client.delete(PODS, "a", "ns", grace_period_seconds=0, uid="uid-a")
    assert fake.requests[-1][2] == {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                                    "preconditions": {"uid": "uid-a"}}
    assert "a" not in fake.pods


async def test_watch_raises_gone_on_410(api: tuple[FakeApi, KubeClient]) -> None:
    fake, client = api
    fake.expire_next_watch = True
    with pytest.raises(Gone):
        async for _ in client.watch(PODS, "ns", resource_version="1"):
            pass


async def wait_until(predicate, timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_informer_lists_watches_resumes_and_relists_after_410(api: tuple[FakeApi, KubeClient]) -> None:
    fake, client = api
    await client.create(PODS, pod("first"))
    changes: list[tuple[str, str]] = []
    informer = Informer(ResourceSource(client, PODS, "ns"),
                        lambda kind, obj, _old: changes.append((kind, obj["metadata"]["name"])), min_backoff=0.01)
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.synced.wait(), 3)
        await wait_until(lambda: fake.watch_queues)
        assert changes == [("ADDED", "first")]
        await client.create(PODS, pod("second"))
        await client.patch(PODS, "first", {"status": {"phase": "Running"}}, "ns", subresource="status")
        await wait_until(lambda: len(changes) == 3)
        assert changes[1:] == [("ADDED", "second"), ("MODIFIED", "first")]
        rv = informer.resource_version
        fake.watch_queues[0].put_nowait({"type": "BOOKMARK", "object": {"kind": "Pod", "metadata": {"resourceVersion": "99"}}})
        await wait_until(lambda: informer.resource_version == "99")
        assert rv != "99"

        # The stream ends; the informer resumes from the bookmark's resourceVersion.
        fake.watch_queues[0].put_nowait(None)
        await wait_until(lambda: any("resourceVersion=99" in r[1] and "watch=1" in r[1] for r in fake.requests if r[0] == "GET"))

        # While disconnected the store drifts; a 410 forces a relist that emits the differences.
        await wait_until(lambda: fake.watch_queues)
        fake.expire_next_watch = True
        del fake.pods["second"]
        fake.watch_queues[0].put_nowait({"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}})
        await wait_until(lambda: ("DELETED", "second") in changes)
        assert set(informer.cache) == {"ns/first"}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_parse_kubeconfig_and_flags(tmp_path) -> None:
    document = {
        "apiVersion": "v1", "kind": "Config", "current-context": "admin",
        "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443/",
                                              "certificate-authority-data": base64.b64encode(b"CA").decode()}}],
        "users": [{"name": "u", "user": {"token": "secret", "client-certificate": "cert.pem", "client-key": "key.pem"}}],
        "contexts": [{"name": "admin", "context": {"cluster": "c", "user": "u", "namespace": "team"}}],
    }
    config = parse_kubeconfig(document, base_dir="/etc/shipmate")
    assert config.server == "https://10.0.0.1:6443"
    assert config.certificate_authority_data == b"CA"
    assert config.token == "secret"
    assert config.client_certificate == "/etc/shipmate/cert.pem"
    assert config.namespace == "team"
    with pytest.raises(ValueError, match="context 'nope'|contexts|not found"):
        parse_kubeconfig(document, context="nope")

    path = tmp_path / "kubeconfig"
    document["clusters"][0]["cluster"] = {"server": "http://127.0.0.1:6443"}
    document["users"][0]["user"] = {}
    path.write_text(json.dumps(document))
    assert config_from_flags(None, str(path)).server == "http://127.0.0.1:6443"
    assert config_from_flags("http://other:1", str(path)).server == "http://other:1"
    assert config_from_flags("http://only:2/", None).server == "http://only:2"
    with pytest.raises(FileNotFoundError):
        config_from_flags(None, str(tmp_path / "missing"))


# ---------------------------------------------------------------- HTTPS, client certificates, failover

class Replica:
    """A fake API server replica over HTTPS: answers GET /api/v1/nodes/n with its own name and the
    client's certificate CN, can answer 503 (a dying server), and streams one watch event then
    breaks the connection or ends it cleanly."""

    def __init__(self, name: str, ca: ClusterCA) -> None:
        self.name, self.failing, self.break_watch, self.hold_watch = name, False, False, False
        self.hits: list[str] = []
        app = web.Application()
        app.router.add_get("/api/v1/nodes/n", self.node)
        app.router.add_get("/api/v1/nodes", self.watch)
        self.server = HttpsServer(app, ca.server_context())

    async def node(self, request: web.Request) -> web.Response:
        self.hits.append("get")
        if self.failing:
            return status(503, "ServiceUnavailable", "apiserver is shutting down")
        return web.json_response({"metadata": {"name": "n", "annotations": {
            "served-by": self.name, "client-cn": peer_common_name(request)}}})

    async def watch(self, request: web.Request) -> web.StreamResponse:
        self.hits.append("watch")
        response = web.StreamResponse()
        await response.prepare(request)
        event = {"type": "ADDED", "object": {"metadata": {"name": self.name, "resourceVersion": "1"}}}
        await response.write(json.dumps(event).encode() + b"\n")
        if self.break_watch:
            request.transport.abort()      # a dying server: the chunked stream ends without its last chunk
            return response
        if self.hold_watch:
            await asyncio.sleep(60)        # a long watch, open until the client goes
        await response.write_eof()
        return response


def served_by(node: dict) -> tuple[str, str]:
    annotations = node["metadata"]["annotations"]
    return annotations["served-by"], annotations["client-cn"]


@pytest.fixture
def ca(tmp_path) -> ClusterCA:
    return ClusterCA.create(tmp_path / "pki")


async def test_client_certificate_data_in_a_kubeconfig_works_over_https(ca: ClusterCA, tmp_path) -> None:
    replica = Replica("a", ca)
    cert, key = pki.issue(ca.cert, ca.key, "kubernetes-admin", ("system:masters",), client=True)
    async with serving(replica.server):
        document = {"apiVersion": "v1", "kind": "Config", "current-context": "x",
                    "clusters": [{"name": "c", "cluster": {"server": replica.server.url,
                                                          "certificate-authority-data": base64.b64encode(ca.cert).decode()}}],
                    "users": [{"name": "u", "user": {"client-certificate-data": base64.b64encode(cert).decode(),
                                                     "client-key-data": base64.b64encode(key).decode()}}],
                    "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}]}
        before = set(os.listdir(tempfile.gettempdir()))
        async with KubeClient(parse_kubeconfig(document)) as client:
            assert served_by(await client.get(NODES, "n")) == ("a", "kubernetes-admin")
        assert not {n for n in set(os.listdir(tempfile.gettempdir())) - before if n.startswith("shipmate-kube-")}


async def test_server_with_another_ca_is_refused(ca: ClusterCA, tmp_path) -> None:
    stranger = ClusterCA.create(tmp_path / "other")
    replica = Replica("a", stranger)
    async with serving(replica.server):
        async with KubeClient(KubeConfig(server=replica.server.url, certificate_authority=ca.cert_path)) as client:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await client.get(NODES, "n")


async def test_failover_on_refused_connection_then_stays_on_the_working_server(ca: ClusterCA) -> None:
    a, b = Replica("a", ca), Replica("b", ca)
    async with serving(a.server, b.server):
        config = KubeConfig(server=a.server.url, extra_servers=(b.server.url,),
                            certificate_authority=ca.cert_path, client_certificate=ca.client_pem("c.pem", "u1"),
                            client_key=str(ca.directory / "c.pem"))
        async with KubeClient(config) as client:
            assert served_by(await client.get(NODES, "n")) == ("a", "u1")
            await a.server.stop()                       # connection refused from now on
            assert served_by(await client.get(NODES, "n"))[0] == "b"
            assert client.server == b.server.url
            await a.server.start()                      # back, but the client keeps the server that works
            assert served_by(await client.get(NODES, "n"))[0] == "b"
            assert a.hits == ["get"]


async def test_failover_on_5xx_and_wraps_around(ca: ClusterCA) -> None:
    a, b = Replica("a", ca), Replica("b", ca)
    async with serving(a.server, b.server):
        config = KubeConfig(server=a.server.url, extra_servers=(b.server.url,), certificate_authority=ca.cert_path)
        async with KubeClient(config) as client:
            a.failing = True
            assert served_by(await client.get(NODES, "n"))[0] == "b"
            a.failing, b.failing = False, True
            assert served_by(await client.get(NODES, "n"))[0] == "a"     # b → a: the list wraps around
            a.failing = True
            with pytest.raises(ServerError):                            # every server failing: the error
                await client.get(NODES, "n")


async def test_single_server_5xx_is_an_error_not_a_retry(ca: ClusterCA) -> None:
    a = Replica("a", ca)
    async with serving(a.server):
        async with KubeClient(KubeConfig(server=a.server.url, certificate_authority=ca.cert_path)) as client:
            a.failing = True
            with pytest.raises(ServerError):
                await client.get(NODES, "n")
            assert a.hits == ["get"]


async def test_broken_watch_moves_the_next_watch_to_the_next_server(ca: ClusterCA) -> None:
    a, b = Replica("a", ca), Replica("b", ca)
    async with serving(a.server, b.server):
        config = KubeConfig(server=a.server.url, extra_servers=(b.server.url,), certificate_authority=ca.cert_path)
        async with KubeClient(config) as client:
            names = [e.object["metadata"]["name"] async for e in client.watch(NODES)]
            assert names == ["a"] and client.server == a.server.url     # a clean end keeps the server
            a.break_watch = True
            seen = []
            with pytest.raises((aiohttp.ClientPayloadError, aiohttp.ClientConnectionError)):
                async for event in client.watch(NODES):
                    seen.append(event.object["metadata"]["name"])
            assert seen == ["a"] and client.server == b.server.url
            assert [e.object["metadata"]["name"] async for e in client.watch(NODES)] == ["b"]


async def test_watch_closed_by_a_credentials_reload_does_not_fail_over(ca: ClusterCA, monkeypatch) -> None:
    monkeypatch.setattr(kubeclient, "RETIRED_SESSION_GRACE", 0.05)
    a, b = Replica("a", ca), Replica("b", ca)
    a.hold_watch = True
    async with serving(a.server, b.server):
        config = KubeConfig(server=a.server.url, extra_servers=(b.server.url,), certificate_authority=ca.cert_path)
        async with KubeClient(config) as client:
            stream = client.watch(NODES)
            assert (await stream.__anext__()).object["metadata"]["name"] == "a"
            client.reload_credentials()
            with pytest.raises((aiohttp.ClientPayloadError, aiohttp.ClientConnectionError)):
                await asyncio.wait_for(stream.__anext__(), 5)
            assert client.server == a.server.url


async def test_rotated_client_certificate_is_used_without_a_new_client(ca: ClusterCA, monkeypatch) -> None:
    monkeypatch.setattr(kubeclient, "CREDENTIALS_CHECK_PERIOD", 0.0)
    a = Replica("a", ca)
    pem = ca.client_pem("node.pem", "system:node:n1")
    async with serving(a.server):
        config = KubeConfig(server=a.server.url, certificate_authority=ca.cert_path, client_certificate=pem,
                            client_key=pem)
        async with KubeClient(config) as client:
            assert served_by(await client.get(NODES, "n"))[1] == "system:node:n1"
            ca.client_pem("next.pem", "system:node:renewed")
            os.replace(ca.directory / "next.pem", pem)           # as the rotation replaces the file
            assert served_by(await client.get(NODES, "n"))[1] == "system:node:renewed"


def test_parse_servers() -> None:
    assert parse_servers("https://a:6443/, https://b:6443") == ("https://a:6443", "https://b:6443")
    for bad in ("", "a:6443", "https://a,ftp://b"):
        with pytest.raises(ValueError):
            parse_servers(bad)
    config = config_from_flags("https://a:1,https://b:2", None)
    assert (config.server, config.extra_servers) == ("https://a:1", ("https://b:2",))


def test_in_cluster_config_as_client_go(tmp_path) -> None:
    """rest.InClusterConfig: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, the mounted service
    account's CA, token (a file: the kubelet rotates it) and namespace."""
    (tmp_path / "token").write_text("first\n")
    (tmp_path / "namespace").write_text("kube-system")
    config = in_cluster_config({"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"},
                               str(tmp_path))
    assert (config.server, config.certificate_authority, config.namespace) == \
        ("https://10.96.0.1:443", str(tmp_path / "ca.crt"), "kube-system")
    assert config.bearer_token() == "first" and str(tmp_path / "token") in config.credential_files()
    (tmp_path / "token").write_text("rotated")
    assert config.bearer_token() == "rotated"
    assert in_cluster_config({"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"},
                             str(tmp_path)).server == "https://[fd00::1]:443"
    with pytest.raises(ValueError, match="not in a cluster"):
        in_cluster_config({}, str(tmp_path))


async def test_rotated_token_file_is_sent_without_a_new_client(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(kubeclient, "CREDENTIALS_CHECK_PERIOD", 0.0)
    seen: list[str] = []

    async def node(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response({"kind": "Node", "metadata": {"name": "n"}})
    app = web.Application()
    app.router.add_get("/api/v1/nodes/n", node)
    token = tmp_path / "token"
    token.write_text("one")
    async with client_for(app) as plain:
        config = KubeConfig(server=plain.server, token_file=str(token))
        async with KubeClient(config) as client:
            await client.get(NODES, "n")
            token.write_text("two")
            os.utime(token, (1, 1))   # a rotation is seen by the file's stamp, whatever the clock's resolution
            await client.get(NODES, "n")
    assert seen == ["Bearer one", "Bearer two"]
