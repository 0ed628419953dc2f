"""The status manager against an in-process fake API: one PATCH per change, no-op updates skipped,
terminated pods deleted with a UID precondition."""
from __future__ import annotations

import asyncio
from typing import AsyncIterator

import pytest

from agent.status_manager import StatusManager
from shipmate.kubeclient import PODS, KubeClient
from tests.unit.fake_api_server import client_for
from tests.unit.test_kubeclient import FakeApi, pod


@pytest.fixture
async def api() -> AsyncIterator[tuple[FakeApi, KubeClient]]:
    fake = FakeApi()
    async with client_for(fake.app) as client:
        yield fake, client


async def until(predicate, timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)


def writes(fake: FakeApi) -> list[tuple]:
    return [r for r in fake.requests if r[0] in ("PATCH", "DELETE")]


async def test_patches_once_per_change_and_deletes_with_uid(api: tuple[FakeApi, KubeClient]) -> None:
    fake, client = api
    created = await client.create(PODS, pod("p"))
    manager = StatusManager(client)
    task = asyncio.create_task(manager.run())
    try:
        manager.set_status(created, {"phase": "Pending"})
        manager.set_status(created, {"phase": "Running"})       # coalesced with the first
        await until(lambda: fake.pods["p"].get("status", {}).get("phase") == "Running")
        manager.set_status(created, {"phase": "Running"})       # no-op: not written again
        await asyncio.sleep(0.1)
        patches = [r for r in writes(fake) if r[0] == "PATCH"]
        assert len(patches) == 1
        assert patches[0][1] == "/api/v1/namespaces/ns/pods/p/status"
        assert patches[0][2] == {"metadata": {"uid": "uid-p"}, "status": {"phase": "Running"}}

        manager.set_status(created, {"phase": "Failed"})
        manager.request_deletion(created)
        await until(lambda: "p" not in fake.pods)
        method, _path, body, _type = writes(fake)[-1]
        assert method == "DELETE"
        assert body["gracePeriodSeconds"] == 0 and body["preconditions"] == {"uid": "uid-p"}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_deletion_of_a_replaced_pod_is_not_retried_forever(api: tuple[FakeApi, KubeClient]) -> None:
    fake, client = api
    await client.create(PODS, pod("p"))
    stale = {"metadata": {"name": "p", "namespace": "ns", "uid": "old-uid"}}
    manager = StatusManager(client)
    task = asyncio.create_task(manager.run())
    try:
        manager.request_deletion(stale)
        await until(lambda: any(r[0] == "DELETE" for r in fake.requests))
        await asyncio.sleep(0.3)
        assert "p" in fake.pods                                  # the new pod of that name survives
        assert sum(1 for r in fake.requests if r[0] == "DELETE") == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_status_the_api_already_has_is_not_rewritten(api: tuple[FakeApi, KubeClient]) -> None:
    fake, client = api
    created = await client.create(PODS, pod("p"))
    created["status"] = {"phase": "Running", "podIP": "10.244.0.9"}
    manager = StatusManager(client, api_pod=lambda uid: created)
    task = asyncio.create_task(manager.run())
    try:
        manager.set_status(created, {"phase": "Running", "podIP": "10.244.0.9"})
        await asyncio.sleep(0.2)
        assert writes(fake) == []
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_no_status_write_for_a_pod_the_api_no_longer_has(api: tuple[FakeApi, KubeClient]) -> None:
    fake, client = api
    created = await client.create(PODS, pod("p"))
    manager = StatusManager(client, api_pod=lambda uid: None)     # e.g. replaced by a new pod of that name
    task = asyncio.create_task(manager.run())
    try:
        manager.set_status(created, {"phase": "Running"})
        await asyncio.sleep(0.2)
        assert writes(fake) == []
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_null_field_the_api_leaves_out_is_not_drift(api: tuple[FakeApi, KubeClient],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A strategic merge patch's null deletes the field (conditions' `lastProbeTime: null`): the reconcile must
    not take the API's view without it for drift and re-send the status forever; a real difference it re-sends."""
    from agent import status_manager
    monkeypatch.setattr(status_manager, "RECONCILE_INTERVAL", 0.05)
    fake, client = api
    created = await client.create(PODS, pod("p"))
    ours = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": None,
                                                 "lastTransitionTime": "2026-12-07T23:43:23Z"}]}
    shown = dict(created, status={"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-07T23:43:23Z"}]})
    manager = StatusManager(client, api_pod=lambda uid: shown)
    task = asyncio.create_task(manager.run())
    try:
        manager.set_status(created, ours)
        await asyncio.sleep(0.4)                     # several reconciles
        assert writes(fake) == []                    # the API already shows it
        shown["status"]["conditions"][0]["status"] = "False"        # someone else changed it
        await until(lambda: len(writes(fake)) == 1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
