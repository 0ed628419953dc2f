"""The served set of custom resources and the CRD controller, in process: a CRD is served once its names are
accepted, a conflicting one is not, the number of CRDs is bounded, and deleting a CRD deletes its objects first."""
import asyncio

import pytest

from apiserver import errors
from apiserver.api import API
from apiserver.controllers.crd import CRDController
from apiserver.crd import definition
from apiserver.informer import SharedInformers
from apiserver.registry import DeleteOptions
from apiserver.storage.sqlite import SQLiteStorage


def crd(plural: str, kind: str, short: list[str] = ()) -> dict:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.serve.example.com"},
            "spec": {"group": "serve.example.com", "scope": "Namespaced",
                     "names": {"plural": plural, "kind": kind, "shortNames": list(short)},
                     "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                         "type": "object", "properties": {"spec": {"type": "object", "properties": {
                             "size": {"type": "integer", "default": 2}}}}}}}]}}


@pytest.fixture
def api(tmp_path):
    storage = SQLiteStorage(str(tmp_path / "state.db"))
    loop = asyncio.new_event_loop()
    loop.run_until_complete(storage.start())
    server = API(storage)
    loop.run_until_complete(server.start())
    yield server, loop
    loop.run_until_complete(storage.close())
    loop.close()


async def settle(api: API, controller: CRDController, informers: SharedInformers) -> None:
    for _ in range(40):
        await asyncio.sleep(0.05)
        for key in list(controller._dirty):
            controller._dirty.discard(key)
            await controller.sync_key(key)
    await api.custom_resources.refresh()


def test_served_after_names_accepted_and_conflicts_refused(api):
    server, loop = api
    crds = server.registry("apiextensions.k8s.io", "customresourcedefinitions")

    async def scenario():
        informers = SharedInformers()
        controller = CRDController(server, informers)
        runner = asyncio.create_task(informers.run())
        await server.create(crds, "", crd("widgets", "Widget", ["wd"]))
        await server.custom_resources.refresh()
        assert server.served_registry("serve.example.com", "v1", "widgets") is None  # names not accepted yet
        await settle(server, controller, informers)
        registry = server.served_registry("serve.example.com", "v1", "widgets")
        assert registry is not None and registry.info.short_names == ("wd",)
        obj = await server.create(registry, "default", {"apiVersion": "serve.example.com/v1", "kind": "Widget",
                                                        "metadata": {"name": "w"}, "spec": {}})
        assert obj["spec"] == {"size": 2}
        # another CRD of the group asking for the short name and kind already held
        await server.create(crds, "", crd("gizmos", "Widget", ["wd"]))
        await settle(server, controller, informers)
        gizmos = await crds.get("", "gizmos.serve.example.com")
        accepted = definition.condition(gizmos, "NamesAccepted")
        # as upstream, the last conflicting name checked (list kind) is the one reported
        assert (accepted["status"], accepted["reason"]) == ("False", "ListKindConflict")
        assert accepted["message"] == '"WidgetList" is already in use'
        assert not definition.is_true(gizmos, "Established")
        assert server.served_registry("serve.example.com", "v1", "gizmos") is None
        # deleting the CRD deletes its objects, then the CRD
        await server.delete(crds, "", "widgets.serve.example.com", DeleteOptions())
        await settle(server, controller, informers)
        with pytest.raises(errors.APIError):
            await crds.get("", "widgets.serve.example.com")
        assert (await server.storage.list("/registry/serve.example.com/widgets/"))[0] == []
        assert server.served_registry("serve.example.com", "v1", "widgets") is None
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    loop.run_until_complete(scenario())


def test_the_number_of_crds_is_bounded(api, monkeypatch):
    server, loop = api
    monkeypatch.setattr(definition, "MAX_CRDS", 2)
    crds = server.registry("apiextensions.k8s.io", "customresourcedefinitions")

    async def scenario():
        for plural, kind in (("ones", "One"), ("twos", "Two")):
            await server.create(crds, "", crd(plural, kind))
            await server.custom_resources.refresh()
        with pytest.raises(errors.APIError) as refused:
            await server.create(crds, "", crd("threes", "Three"))
        assert refused.value.code == 403
        assert refused.value.message == 'customresourcedefinitions.apiextensions.k8s.io "threes.serve.example.com" ' \
                                        'is forbidden: this cluster already has 2 CustomResourceDefinitions, the ' \
                                        'most a server serves'
    loop.run_until_complete(scenario())
