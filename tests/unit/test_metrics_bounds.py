"""Request metrics name only what the server serves: random URLs and methods add no series."""
from __future__ import annotations

import random
import string
from types import SimpleNamespace

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from apiserver.http.metrics import OTHER_VERB, UNKNOWN, ServerMetrics, clean_verb, request_labels


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase + string.digits + "-._~") for _ in range(rng.randint(1, 12)))


def test_unserved_resources_and_odd_methods_get_one_label_value():
    served = {("", "pods")}.__contains__
    labels = request_labels("GET", "/apis/evil.example/v9/namespaces/a/things/x/y", {}, "",
                            lambda info: served((info.group, info.resource)))
    assert (labels.group, labels.version, labels.resource, labels.subresource) == (UNKNOWN,) * 4
    assert labels.scope == "resource"
    labels = request_labels("GET", "/api/v1/namespaces/a/pods", {}, "", lambda info: served((info.group, info.resource)))
    assert labels.resource == "pods"
    assert clean_verb("BREW") == OTHER_VERB and clean_verb("get") == "GET"
    assert request_labels("XYZZY", "/whatever", {}).verb == OTHER_VERB


async def test_two_thousand_random_urls_add_a_bounded_number_of_series():
    pods = SimpleNamespace(prefix=lambda namespace="": "/registry/pods/",
                           info=SimpleNamespace(version="v1", subresources=("status",), proxied_subresources=()))
    metrics = ServerMetrics(SimpleNamespace(storage=SimpleNamespace(list=None), registries={("", "pods"): pods}))
    app = web.Application()

    async def anything(request):
        raise web.HTTPNotFound()

    app.router.add_route("*", "/{tail:.*}", anything)
    metrics.install(app)
    rng = random.Random(7)
    shapes = ["/api/{w}/{w}", "/apis/{w}/{w}/{w}", "/apis/{w}/{w}/namespaces/{w}/{w}/{w}/{w}",
              "/api/v1/namespaces/{w}/pods/{w}/{w}", "/api/{w}/pods", "/{w}/{w}"]
    async with TestClient(TestServer(app)) as client:
        for _ in range(2000):
            path = "/".join(
                _word(rng) if part == "{w}" else part for part in rng.choice(shapes).split("/"))
            method = rng.choice(["GET", "POST", "PUT", "DELETE", "PATCH", "PROPFIND", "X" + _word(rng).upper()])
            await client.request(method, path)
    series = {labels for labels in metrics._request_children}
    assert len(series) < 60, sorted(series)
