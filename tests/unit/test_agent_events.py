"""The event recorder against an in-process fake API: upstream's event shape, repeats PATCHed with a
count, aggregation of similar events, the spam filter, re-creation of an expired event."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any, AsyncIterator

import pytest
from aiohttp import web

from agent.events import (AGGREGATE_PREFIX, NORMAL, SPAM_BURST, WARNING, EventCorrelator, EventRecorder,
                          container_field_path, make_event, node_reference, object_reference)
from shipmate.kubeclient import KubeClient
from tests.unit.fake_api_server import client_for

POD = {"metadata": {"name": "web", "namespace": "team", "uid": "uid-1", "resourceVersion": "7"},
       "spec": {"containers": [{"name": "app"}]}}


class FakeEvents:
    def __init__(self) -> None:
        self.events: dict[tuple[str, str], dict] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.fail_next = 0
        app = web.Application()
        app.router.add_post("/api/v1/namespaces/{ns}/events", self.create)
        app.router.add_patch("/api/v1/namespaces/{ns}/events/{name}", self.patch)
        self.app = app

    async def create(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(("POST", request.path, body))
        if self.fail_next:
            self.fail_next -= 1
            return web.json_response({"kind": "Status", "code": 500, "reason": "InternalError"}, status=500)
        body["metadata"]["resourceVersion"] = "1"
        self.events[(request.match_info["ns"], body["metadata"]["name"])] = body
        return web.json_response(body, status=201)

    async def patch(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(("PATCH", request.path, body))
        key = (request.match_info["ns"], request.match_info["name"])
        if key not in self.events:
            return web.json_response({"kind": "Status", "code": 404, "reason": "NotFound"}, status=404)
        self.events[key].update(body)
        return web.json_response(self.events[key])


@pytest.fixture
async def api() -> AsyncIterator[tuple[FakeEvents, KubeClient]]:
    fake = FakeEvents()
    async with client_for(fake.app) as client:
        yield fake, client


@pytest.fixture
async def recorder(api: tuple[FakeEvents, KubeClient]) -> AsyncIterator[EventRecorder]:
    _fake, client = api
    recorder = EventRecorder(client, "node-a", retry_sleep=0.01)
    task = asyncio.create_task(recorder.run())
    yield recorder
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def test_event_shape_matches_client_go() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)
    event = make_event(object_reference(POD, container_field_path("app")), WARNING, "BackOff", "Back-off",
                       "kubelet", "node-a", moment)
    assert event["metadata"] == {"name": f"web.{int(moment.timestamp() * 1e9):x}", "namespace": "team"}
    assert event["involvedObject"] == {"kind": "Pod", "namespace": "team", "name": "web", "uid": "uid-1",
                                       "apiVersion": "v1", "resourceVersion": "7",
                                       "fieldPath": "spec.containers{app}"}
    assert event["source"] == {"component": "kubelet", "host": "node-a"}
    assert (event["reportingComponent"], event["reportingInstance"]) == ("kubelet", "node-a")
    assert event["firstTimestamp"] == event["lastTimestamp"] == "2026-01-02T03:04:05Z"
    assert event["count"] == 1 and event["type"] == "Warning"


def test_node_events_go_to_the_default_namespace() -> None:
    event = make_event(object_reference(node_reference("node-a")), NORMAL, "Starting", "Starting kubelet.",
                       "kubelet", "node-a", datetime.now(timezone.utc))
    assert event["metadata"]["namespace"] == "default"
    assert event["involvedObject"] == {"kind": "Node", "name": "node-a", "uid": "node-a"}


def test_init_container_field_path() -> None:
    assert container_field_path("setup", init=True) == "spec.initContainers{setup}"


async def test_posts_then_patches_repeats_with_count(api, recorder: EventRecorder) -> None:
    fake, _client = api
    recorder.event(POD, NORMAL, "Pulled", "Container image already present", container_field_path("app"))
    recorder.event(POD, NORMAL, "Pulled", "Container image already present", container_field_path("app"))
    recorder.event(POD, NORMAL, "Pulled", "Container image already present", container_field_path("app"))
    await recorder.flush()
    await asyncio.sleep(0.05)
    methods = [r[0] for r in fake.requests]
    assert methods == ["POST", "PATCH", "PATCH"]
    (stored,) = fake.events.values()
    assert stored["count"] == 3
    assert fake.requests[-1][1] == f"/api/v1/namespaces/team/events/{stored['metadata']['name']}"


async def test_different_field_paths_are_different_events(api, recorder: EventRecorder) -> None:
    fake, _client = api
    recorder.event(POD, NORMAL, "Started", "Started container app", container_field_path("app"))
    recorder.event(POD, NORMAL, "Started", "Started container app", container_field_path("side"))
    await recorder.flush()
    await asyncio.sleep(0.05)
    assert [r[0] for r in fake.requests] == ["POST", "POST"]


async def test_expired_event_is_created_again(api, recorder: EventRecorder) -> None:
    fake, _client = api
    recorder.event(POD, WARNING, "BackOff", "Back-off restarting failed container")
    await recorder.flush()
    await asyncio.sleep(0.05)
    fake.events.clear()
    recorder.event(POD, WARNING, "BackOff", "Back-off restarting failed container")
    await recorder.flush()
    await asyncio.sleep(0.05)
    assert [r[0] for r in fake.requests] == ["POST", "PATCH", "POST"]
    (stored,) = fake.events.values()
    assert stored["count"] == 2


async def test_server_rejection_is_not_retried_and_recorder_survives(api, recorder: EventRecorder) -> None:
    fake, _client = api
    fake.fail_next = 1
    recorder.event(POD, NORMAL, "Scheduled", "one")
    recorder.event(POD, NORMAL, "Scheduled", "two")
    await recorder.flush()
    await asyncio.sleep(0.05)
    assert [r[2]["message"] for r in fake.requests] == ["one", "two"]
    assert [e["message"] for e in fake.events.values()] == ["two"]


async def test_unreachable_server_is_retried() -> None:
    fake = FakeEvents()
    server_client = client_for(fake.app)
    client = await server_client.__aenter__()
    url = client.config.server
    await server_client.__aexit__(None, None, None)           # the port is closed now
    offline = KubeClient(type(client.config)(server=url))
    recorder = EventRecorder(offline, "node-a", retry_sleep=0.01)
    task = asyncio.create_task(recorder.run())
    try:
        recorder.event(POD, NORMAL, "Scheduled", "x")
        await asyncio.sleep(0.2)
        assert recorder._queue.empty()      # taken, being retried, nothing raised
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await offline.close()


def test_event_never_raises_and_counts_drops() -> None:
    recorder = EventRecorder(client=None, node_name="n")  # type: ignore[arg-type]
    recorder.event(None, NORMAL, "Odd", "not an object")  # type: ignore[arg-type]  # logged, no raise
    for _ in range(1005):
        recorder.event(POD, NORMAL, "Pulling", "Pulling image")
    assert recorder.dropped == 5


def test_aggregates_similar_events_after_ten_messages() -> None:
    now = [0.0]
    correlator = EventCorrelator(clock=lambda: now[0])
    moment = datetime.now(timezone.utc)
    messages = []
    for i in range(12):
        event = make_event(object_reference(POD), WARNING, "FailedMount", f"volume {i}", "kubelet", "n", moment)
        messages.append(correlator.aggregate(event)["message"])
    assert messages[:9] == [f"volume {i}" for i in range(9)]
    assert messages[9] == AGGREGATE_PREFIX + "volume 9"
    now[0] += 601                                          # a new interval starts over
    event = make_event(object_reference(POD), WARNING, "FailedMount", "volume x", "kubelet", "n", moment)
    assert correlator.aggregate(event)["message"] == "volume x"


def test_spam_filter_burst_then_refill() -> None:
    now = [0.0]
    correlator = EventCorrelator(clock=lambda: now[0])
    event = make_event(object_reference(POD), NORMAL, "Pulling", "x", "kubelet", "n", datetime.now(timezone.utc))
    assert all(correlator.allow(event) for _ in range(SPAM_BURST))
    assert not correlator.allow(event)
    now[0] += 300
    assert correlator.allow(event)
    assert not correlator.allow(event)
    other = make_event(object_reference(dict(POD, metadata=dict(POD["metadata"], name="other", uid="u2"))),
                       NORMAL, "Pulling", "x", "kubelet", "n", datetime.now(timezone.utc))
    assert correlator.allow(other)


def test_repeat_keeps_first_timestamp_and_name() -> None:
    correlator = EventCorrelator()
    first_at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    first = make_event(object_reference(POD), NORMAL, "Killing", "Stopping", "kubelet", "n", first_at)
    correlator.posted(first)
    again = make_event(object_reference(POD), NORMAL, "Killing", "Stopping", "kubelet", "n",
                       first_at + timedelta(seconds=30))
    written, repeat = correlator.observe(again)
    assert repeat
    assert written["metadata"]["name"] == first["metadata"]["name"]
    assert written["count"] == 2
    assert written["firstTimestamp"] == "2026-01-01T00:00:00Z"
    assert written["lastTimestamp"] == "2026-01-01T00:00:30Z"
