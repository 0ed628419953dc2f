"""Priority admission: pods get their class's priority and preemption policy (or the global default's, else 0),
values of their own that differ are refused, and only one class may be the global default."""
from __future__ import annotations

import asyncio

import pytest

from apiserver import errors
from apiserver.api import API
from apiserver.storage.sqlite import SQLiteStorage


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


def pod(name: str, **spec) -> dict:
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}


def priority_class(name: str, value: int, **fields) -> dict:
    return {"metadata": {"name": name}, "value": value, **fields}


def test_pods_get_the_priority_of_their_class_or_zero(api):
    server, loop = api
    classes = server.registry("scheduling.k8s.io", "priorityclasses")
    loop.run_until_complete(server.create(classes, "", priority_class("high", 1000, preemptionPolicy="Never")))
    plain = loop.run_until_complete(server.create(server.pods, "default", pod("plain")))
    assert plain["spec"]["priority"] == 0 and plain["spec"]["preemptionPolicy"] == "PreemptLowerPriority"
    assert "priorityClassName" not in plain["spec"]
    high = loop.run_until_complete(server.create(server.pods, "default", pod("high", priorityClassName="high")))
    assert high["spec"]["priority"] == 1000 and high["spec"]["preemptionPolicy"] == "Never"


def test_a_missing_class_and_a_priority_of_the_pods_own_are_refused(api):
    server, loop = api
    with pytest.raises(errors.APIError) as missing:
        loop.run_until_complete(server.create(server.pods, "default", pod("p", priorityClassName="nope")))
    assert missing.value.code == 403
    assert missing.value.message == 'pods "p" is forbidden: no PriorityClass with name nope was found'
    with pytest.raises(errors.APIError) as own:
        loop.run_until_complete(server.create(server.pods, "default", pod("q", priority=5)))
    assert own.value.code == 403 and own.value.message == (
        'pods "q" is forbidden: the integer value of priority (5) must not be provided in pod spec; priority '
        'admission controller computed 0 from the given PriorityClass name')
    same = loop.run_until_complete(server.create(server.pods, "default", pod("r", priority=0)))
    assert same["spec"]["priority"] == 0


def test_the_global_default_class_applies_and_there_is_only_one(api):
    server, loop = api
    classes = server.registry("scheduling.k8s.io", "priorityclasses")
    loop.run_until_complete(server.create(classes, "", priority_class("normal", 100, globalDefault=True)))
    created = loop.run_until_complete(server.create(server.pods, "default", pod("p")))
    assert created["spec"]["priority"] == 100 and created["spec"]["priorityClassName"] == "normal"
    with pytest.raises(errors.APIError) as second:
        loop.run_until_complete(server.create(classes, "", priority_class("other", 5, globalDefault=True)))
    assert second.value.code == 403 and second.value.message == (
        'priorityclasses.scheduling.k8s.io "other" is forbidden: PriorityClass normal is already marked as '
        'default. Only one default can exist')
