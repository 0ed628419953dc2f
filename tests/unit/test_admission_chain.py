"""The admission chain: one ordered list of plugins every write passes (mutating steps before validating ones,
a step held around the write, retries a step asks for, `committed` only for stored writes), and the API built
on it without per-kind branches."""
from __future__ import annotations

import ast
import asyncio
import inspect
from typing import Any

import pytest

from apiserver import api as api_module
from apiserver import errors
from apiserver.admission.chain import CREATE, AdmissionChain, Attributes, Step
from apiserver.api import API
from apiserver.registry import DeleteOptions
from apiserver.storage.sqlite import SQLiteStorage

# kube-apiserver's recommended order of the plugins we have, then our two allocation steps.
UPSTREAM_ORDER = ["NamespaceLifecycle", "LimitRanger", "ServiceAccount", "NodeRestriction", "PodSecurity", "Priority",
                  "DefaultTolerationSeconds", "DefaultStorageClass", "StorageObjectInUseProtection",
                  "PersistentVolumeClaimResize", "CertificateApproval", "DefaultIngressClass", "MutatingAdmissionWebhook",
                  "ValidatingAdmissionWebhook", "ResourceQuota",
                  "NodePodCIDRs", "ServiceClaims"]


class Recorder:
    """A plugin that records what its step saw, in one shared journal."""

    def __init__(self, name: str, journal: list[str], refuse_in: str = "", retries: int = 0):
        self.name, self.journal, self.refuse_in, self.retries = name, journal, refuse_in, retries

    async def start(self, attributes: Attributes) -> Step | None:
        self.journal.append(f"{self.name}.start {attributes.operation}")
        return RecordingStep(self)


class RecordingStep(Step):
    def __init__(self, plugin: Recorder):
        self.plugin = plugin

    def note(self, what: str) -> None:
        self.plugin.journal.append(f"{self.plugin.name}.{what}")
        if self.plugin.refuse_in == what:
            raise errors.forbidden_error("", "configmaps", "c", f"{self.plugin.name} says no")

    async def __aenter__(self) -> "RecordingStep":
        self.note("enter")
        return self

    async def __aexit__(self, kind: Any, error: Any, traceback: Any) -> None:
        self.plugin.journal.append(f"{self.plugin.name}.exit {'failed' if error else 'ok'}")

    async def admit(self, obj: dict, old: dict | None) -> dict:
        self.note("admit")
        labels = obj.setdefault("metadata", {}).setdefault("labels", {})
        labels[self.plugin.name] = "admitted"
        return obj

    async def validate(self, obj: dict | None, old: dict | None) -> None:
        self.note("validate")

    async def committed(self, obj: dict | None) -> None:
        self.note("committed")

    async def retry(self, error: BaseException) -> bool:
        if self.plugin.retries:
            self.plugin.retries -= 1
            self.plugin.journal.append(f"{self.plugin.name}.retry")
            return True
        return False


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


def with_recorders(server: API, journal: list[str], **options: Any) -> None:
    server.admission = AdmissionChain([Recorder("a", journal, **options.get("a", {})),
                                       Recorder("b", journal, **options.get("b", {}))])


CONFIGMAP = {"metadata": {"name": "c"}, "data": {"k": "v"}}


def test_chain_order_of_the_built_api(api):
    server, _ = api
    assert server.admission.names() == UPSTREAM_ORDER


def test_create_runs_every_mutating_step_before_any_validating_one_and_commits_once_stored(api):
    server, loop = api
    journal: list[str] = []
    with_recorders(server, journal)
    created = loop.run_until_complete(server.create(server.registry("", "configmaps"), "default", CONFIGMAP))
    assert journal == ["a.start CREATE", "a.enter", "b.start CREATE", "b.enter", "a.admit", "b.admit",
                       "a.validate", "b.validate", "a.committed", "b.committed", "b.exit ok", "a.exit ok"]
    assert created["metadata"]["labels"] == {"a": "admitted", "b": "admitted"}  # mutations were stored


def test_a_refusal_stops_the_write_and_nothing_is_committed(api):
    server, loop = api
    journal: list[str] = []
    with_recorders(server, journal, b={"refuse_in": "validate"})
    registry = server.registry("", "configmaps")
    with pytest.raises(errors.APIError) as refused:
        loop.run_until_complete(server.create(registry, "default", CONFIGMAP))
    assert refused.value.code == 403 and "b says no" in refused.value.message
    assert "a.committed" not in journal and journal[-2:] == ["b.exit failed", "a.exit failed"]
    with pytest.raises(errors.APIError):
        loop.run_until_complete(registry.get("default", "c"))


def test_dry_run_admits_and_validates_but_commits_nothing(api):
    server, loop = api
    journal: list[str] = []
    with_recorders(server, journal)
    loop.run_until_complete(server.create(server.registry("", "configmaps"), "default", CONFIGMAP, dry_run=True))
    assert "a.validate" in journal and not any(entry.endswith("committed") for entry in journal)


def test_updates_and_patches_pass_the_chain_with_the_stored_object(api):
    server, loop = api
    registry = server.registry("", "configmaps")
    loop.run_until_complete(server.create(registry, "default", CONFIGMAP))
    journal: list[str] = []
    with_recorders(server, journal)
    loop.run_until_complete(server.patch(registry, "default", "c", "application/merge-patch+json",
                                         {"data": {"k": "w"}}))
    assert journal[0] == "a.start UPDATE" and "b.validate" in journal and "b.committed" in journal


def test_delete_validates_before_and_commits_after(api):
    server, loop = api
    registry = server.registry("", "configmaps")
    loop.run_until_complete(server.create(registry, "default", CONFIGMAP))
    journal: list[str] = []
    with_recorders(server, journal)
    loop.run_until_complete(server.delete(registry, "default", "c", DeleteOptions()))
    assert journal == ["a.start DELETE", "a.enter", "b.start DELETE", "b.enter", "a.validate", "b.validate",
                       "a.committed", "b.committed", "b.exit ok", "a.exit ok"]


def test_a_step_may_ask_for_the_failed_write_to_be_tried_again(api):
    server, loop = api
    registry = server.registry("", "configmaps")
    loop.run_until_complete(server.create(registry, "default", CONFIGMAP))
    journal: list[str] = []
    with_recorders(server, journal, a={"retries": 1})
    with pytest.raises(errors.APIError) as exists:  # AlreadyExists, retried once, then given up
        loop.run_until_complete(server.create(registry, "default", CONFIGMAP))
    assert exists.value.reason == "AlreadyExists"
    assert journal.count("a.retry") == 1 and journal.count("a.admit") == 2


def test_binding_is_a_create_of_the_subresource(api):
    server, loop = api
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    loop.run_until_complete(server.create(server.pods, "default", pod))
    seen: list[Attributes] = []

    class Watcher:
        name = "watcher"

        async def start(self, attributes: Attributes) -> Step | None:
            seen.append(attributes)
            return None
    server.admission = AdmissionChain([Watcher()])
    loop.run_until_complete(server.bind("default", "p", {"target": {"kind": "Node", "name": "n1"}}))
    assert [(a.operation, a.plural, a.subresource, a.name) for a in seen] == [(CREATE, "pods", "binding", "p")]


def test_system_namespaces_cannot_be_deleted(api):
    server, loop = api
    with pytest.raises(errors.APIError) as refused:
        loop.run_until_complete(server.delete(server.namespaces, "", "kube-system", DeleteOptions()))
    assert refused.value.code == 403 and refused.value.message == \
        'namespaces "kube-system" is forbidden: this namespace may not be deleted'


def test_namespace_finalize_changes_only_the_finalizers(api):
    server, loop = api
    loop.run_until_complete(server.create(server.namespaces, "", {"metadata": {"name": "gone", "labels": {"a": "b"}}}))
    updated, _ = loop.run_until_complete(server.update(
        server.namespaces, "", "gone", {"metadata": {"name": "gone", "labels": {}}, "spec": {"finalizers": []},
                                        "status": {"phase": "Bogus"}}, "finalize"))
    assert updated["spec"]["finalizers"] == []
    assert updated["metadata"]["labels"]["a"] == "b" and updated["status"]["phase"] == "Active"


def test_api_has_no_per_kind_branches():
    """Kinds differ through their strategies and the chain's plugins, never through `registry is self.<kind>`
    tests in the write path."""
    source = inspect.getsource(api_module)
    tree = ast.parse(source)
    branches = [ast.unparse(node) for node in ast.walk(tree)
                if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Is, ast.IsNot)) for op in node.ops)
                and "registry" in ast.unparse(node) and "self." in ast.unparse(node)]
    assert branches == []


def test_created_pods_get_the_configured_toleration_seconds_once(api):
    server, loop = api
    server.default_tolerations.seconds = 3
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}],
                                               "tolerations": [{"key": "node.kubernetes.io/unreachable",
                                                                "operator": "Exists", "effect": "NoExecute"}]}}
    created = loop.run_until_complete(server.create(server.pods, "default", pod))
    assert created["spec"]["tolerations"] == [
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 3}]
