"""The status manager against an in-process fake API: one PATCH per change, no-op updates skipped,
terminated pods deleted with a UID precondition."""
from __future__ import annotations

import asyncio
import contextlib
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


class _SlowClient:
    """Records PATCHes; a pod named in `held` waits in its PATCH until released."""

    def __init__(self) -> None:
        self.held: dict[str, asyncio.Event] = {}
        self.patches: list[tuple[str, dict]] = []
        self.in_flight: dict[str, int] = {}
        self.most_in_flight = 0
        self.failures = 0

    async def patch(self, resource, name: str, body: dict, namespace: str, subresource: str = "") -> dict:
        self.in_flight[name] = self.in_flight.get(name, 0) + 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight[name])
        try:
            if name in self.held:
                await self.held[name].wait()
            if self.failures:
                self.failures -= 1
                raise ConnectionError("API down")
            self.patches.append((name, body["status"]))
            return {}
        finally:
            self.in_flight[name] -= 1


def _pod(name: str) -> dict:
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"}}


@contextlib.asynccontextmanager
async def _running(client: _SlowClient):
    manager = StatusManager(client)  # type: ignore[arg-type]
    task = asyncio.create_task(manager.run())
    try:
        await asyncio.sleep(0)
        yield manager
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_pods_status_is_not_written_behind_another_pods_slow_write() -> None:
    client = _SlowClient()
    client.held["slow"] = asyncio.Event()
    async with _running(client) as manager:
        manager.set_status(_pod("slow"), {"phase": "Running"})
        await asyncio.sleep(0.05)
        manager.set_status(_pod("fast"), {"phase": "Failed"})
        await until(lambda: ("fast", {"phase": "Failed"}) in client.patches, timeout=1.0)
        client.held["slow"].set()
        await until(lambda: ("slow", {"phase": "Running"}) in client.patches)


async def test_one_write_at_a_time_per_pod_and_the_newest_status_lands_last() -> None:
    client = _SlowClient()
    client.held["p"] = asyncio.Event()
    async with _running(client) as manager:
        manager.set_status(_pod("p"), {"phase": "Running"})
        await asyncio.sleep(0.05)
        manager.set_status(_pod("p"), {"phase": "Failed"})
        manager.set_status(_pod("p"), {"phase": "Succeeded"})
        await asyncio.sleep(0.05)
        client.held["p"].set()
        await until(lambda: client.patches and client.patches[-1] == ("p", {"phase": "Succeeded"}))
        await asyncio.sleep(0.05)
        assert client.most_in_flight == 1
        assert client.patches == [("p", {"phase": "Running"}), ("p", {"phase": "Succeeded"})]


async def test_failed_writes_are_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent import status_manager
    monkeypatch.setattr(status_manager, "RETRY_INITIAL", 0.01)
    client = _SlowClient()
    client.failures = 3
    async with _running(client) as manager:
        manager.set_status(_pod("p"), {"phase": "Running"})
        await until(lambda: client.patches == [("p", {"phase": "Running"})])
        assert client.failures == 0


async def test_stopping_the_manager_stops_its_writes() -> None:
    client = _SlowClient()
    client.held["p"] = asyncio.Event()
    async with _running(client) as manager:
        manager.set_status(_pod("p"), {"phase": "Running"})
        await asyncio.sleep(0.05)
    assert client.in_flight["p"] == 0
