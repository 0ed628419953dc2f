"""DefaultIngressClass admission: Ingresses created without a class get the default IngressClass (the newest
when several are marked), unless they name one or carry the legacy class annotation."""
from __future__ import annotations

import asyncio
import datetime

import pytest

from apiserver.admission.default_ingress_class import IS_DEFAULT_CLASS, default_class
from apiserver.api import API
from apiserver.storage.sqlite import SQLiteStorage


def ingress_class(name: str, created: str = "2025-01-01T00:00:00Z", default: str | None = "true") -> dict:
    annotations = {IS_DEFAULT_CLASS: default} if default is not None else {}
    return {"metadata": {"name": name, "creationTimestamp": created, "annotations": annotations},
            "spec": {"controller": "example.com/ingress"}}


def test_the_newest_default_class_wins_then_the_first_name():
    assert default_class([]) is None
    assert default_class([ingress_class("plain", default=None), ingress_class("off", default="false")]) is None
    assert default_class([ingress_class("a")])["metadata"]["name"] == "a"
    assert default_class([ingress_class("old", "2025-01-01T00:00:00Z"), ingress_class("new", "2025-01-02T00:00:00Z"),
                          ingress_class("plain", "2025-01-03T00:00:00Z", default=None)])["metadata"]["name"] == "new"
    assert default_class([ingress_class("b"), ingress_class("a"), ingress_class("c")])["metadata"]["name"] == "a"


class Clock:
    def __init__(self):
        self.now = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)

    def __call__(self) -> datetime.datetime:
        self.now += datetime.timedelta(seconds=1)
        return self.now


@pytest.fixture
def api(tmp_path):
    storage = SQLiteStorage(str(tmp_path / "state.db"))
    loop = asyncio.new_event_loop()
    loop.run_until_complete(storage.start())
    server = API(storage, clock=Clock())
    loop.run_until_complete(server.start())
    yield server, loop
    loop.run_until_complete(storage.close())
    loop.close()


def ingress(name: str, annotations: dict | None = None, **spec) -> dict:
    return {"metadata": {"name": name, "annotations": annotations or {}},
            "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}, **spec}}


def test_ingresses_without_a_class_get_the_default(api):
    server, loop = api
    classes = server.registry("networking.k8s.io", "ingressclasses")
    ingresses = server.registry("networking.k8s.io", "ingresses")

    def create(registry, namespace, body):
        return loop.run_until_complete(server.create(registry, namespace, body))
    assert "ingressClassName" not in create(ingresses, "default", ingress("before"))["spec"]
    for name, default in (("nginx", "true"), ("traefik", "false")):
        create(classes, "", {"metadata": {"name": name, "annotations": {IS_DEFAULT_CLASS: default}},
                             "spec": {"controller": f"example.com/{name}"}})
    assert create(ingresses, "default", ingress("plain"))["spec"]["ingressClassName"] == "nginx"
    assert create(ingresses, "default", ingress("named", ingressClassName="traefik"))["spec"]["ingressClassName"] \
        == "traefik"
    legacy = create(ingresses, "default", ingress("legacy", {"kubernetes.io/ingress.class": "traefik"}))
    assert "ingressClassName" not in legacy["spec"]
    create(classes, "", {"metadata": {"name": "haproxy", "annotations": {IS_DEFAULT_CLASS: "true"}},
                         "spec": {"controller": "example.com/haproxy"}})
    assert create(ingresses, "default", ingress("newest"))["spec"]["ingressClassName"] == "haproxy"
    # Updates keep what the Ingress has.
    stored = loop.run_until_complete(ingresses.get("default", "before"))
    stored["metadata"]["labels"] = {"x": "y"}
    updated, _ = loop.run_until_complete(server.update(ingresses, "default", "before", stored))
    assert "ingressClassName" not in updated["spec"]
