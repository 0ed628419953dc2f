"""The API server's /metrics: upstream request labels, the middleware's figures, parseable text."""
from __future__ import annotations

from types import SimpleNamespace

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from apiserver.control_loop_metrics import ControlLoopMetrics
from apiserver.http.metrics import ServerMetrics, request_labels


def test_request_labels_follow_upstream_verbs_and_scopes():
    def verb_scope(method, path, query=None, content_type=""):
        labels = request_labels(method, path, query or {}, content_type)
        return labels.verb, labels.scope, labels.resource, labels.subresource, labels.group

    assert verb_scope("GET", "/api/v1/namespaces/a/pods") == ("LIST", "namespace", "pods", "", "")
    assert verb_scope("GET", "/api/v1/pods", {"watch": "1"}) == ("WATCH", "cluster", "pods", "", "")
    assert verb_scope("GET", "/api/v1/namespaces/a/pods/p") == ("GET", "resource", "pods", "", "")
    assert verb_scope("PATCH", "/api/v1/namespaces/a/pods/p/status") == ("PATCH", "resource", "pods", "status", "")
    assert verb_scope("PATCH", "/apis/apps/v1/namespaces/a/deployments/d", {},
                      "application/apply-patch+yaml") == ("APPLY", "resource", "deployments", "", "apps")
    assert verb_scope("DELETE", "/api/v1/namespaces/a/pods") == ("DELETECOLLECTION", "namespace", "pods", "", "")
    assert verb_scope("POST", "/api/v1/namespaces/a/pods/p/exec") == ("CONNECT", "resource", "pods", "exec", "")
    assert verb_scope("GET", "/healthz") == ("GET", "", "", "", "")
    assert request_labels("POST", "/api/v1/namespaces", {"dryRun": "All"}).dry_run == "All"
    assert request_labels("GET", "/api/v1/pods", {"watch": "1"}).long_running


class _Storage:
    def __init__(self, keys: list[str]):
        self.keys = keys

    async def list(self, prefix: str):
        return [k for k in self.keys if k.startswith(prefix)], 7


def _registry(plural: str, namespaced: bool = True):
    return SimpleNamespace(prefix=lambda namespace="": f"/registry/{plural}/")


async def test_metrics_endpoint_counts_requests_objects_and_control_loops():
    fake_api = SimpleNamespace(
        storage=_Storage(["/registry/pods/a/p1", "/registry/pods/b/p2", "/registry/events/a/e1"]),
        registries={("", "pods"): _registry("pods"), ("", "events"): _registry("events"),
                    ("events.k8s.io", "events"): _registry("events")})
    loops = ControlLoopMetrics()
    metrics = ServerMetrics(fake_api, loops)
    app = web.Application()

    async def ok(request):
        return web.json_response({})

    async def missing(request):
        raise web.HTTPNotFound()

    app.router.add_get("/api/v1/namespaces/{ns}/pods", ok)
    app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}", missing)
    metrics.install(app)
    with loops.sync("deployment"):
        pass
    loops.observe_scheduling(0.004)
    async with TestClient(TestServer(app)) as client:
        for _ in range(3):
            assert (await client.get("/api/v1/namespaces/a/pods")).status == 200
        assert (await client.get("/api/v1/namespaces/a/pods/nope")).status == 404
        response = await client.get("/metrics")
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}

    def value(metric, **labels):
        return samples[(metric, tuple(sorted(labels.items())))]

    common = dict(dry_run="", group="", version="v1", resource="pods", subresource="", component="apiserver")
    assert value("apiserver_request_total", verb="LIST", scope="namespace", code="200", **common) == 3
    assert value("apiserver_request_total", verb="GET", scope="resource", code="404", **common) == 1
    assert value("apiserver_request_duration_seconds_count", verb="LIST", scope="namespace", **common) == 3
    assert families["apiserver_request_duration_seconds"].type == "histogram"
    assert value("apiserver_storage_objects", resource="pods") == 2
    assert value("apiserver_storage_objects", resource="events") == 1   # shared prefix counted once
    assert ("apiserver_storage_objects", (("resource", "events.events.k8s.io"),)) not in samples
    assert value("workqueue_work_duration_seconds_count", name="deployment") == 1
    assert families["scheduler_scheduling_attempt_duration_seconds"].type == "histogram"
    assert families["process_resident_memory_bytes"].samples[0].value > 10 * 2 ** 20
