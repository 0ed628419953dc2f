"""Decoding containerd event envelopes and building subscription filters."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from google.protobuf import any_pb2, timestamp_pb2

from cri.events import decode_envelope, subscribe_filters
from cri.gen import container_events_pb2, events_pb2, task_events_pb2

WHEN = datetime(2026, 11, 25, 22, 30, 1, 123456, tzinfo=timezone.utc)


def envelope(topic: str, event, type_url: str | None = None) -> events_pb2.Envelope:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(WHEN)
    # containerd 1.6 sends the bare message name as type_url; Any.Pack adds a host prefix.
    payload = any_pb2.Any(type_url=type_url or event.DESCRIPTOR.full_name, value=event.SerializeToString())
    return events_pb2.Envelope(timestamp=stamp, namespace="k8s.io", topic=topic, event=payload)


def test_task_exit_of_init_process() -> None:
    exited = timestamp_pb2.Timestamp(seconds=1_800_000_000, nanos=5000)
    event = decode_envelope(envelope("/tasks/exit", task_events_pb2.TaskExit(
        container_id="c1", id="c1", pid=42, exit_status=3, exited_at=exited)))
    assert (event.topic, event.namespace, event.type_name) == ("/tasks/exit", "k8s.io", "containerd.events.TaskExit")
    assert event.timestamp == WHEN
    assert (event.container_id, event.pid, event.exit_status) == ("c1", 42, 3)
    assert event.exited_at == datetime.fromtimestamp(1_800_000_000, timezone.utc).replace(microsecond=5)
    assert event.init_process


def test_task_exit_of_exec_process_with_prefixed_type_url() -> None:
    message = task_events_pb2.TaskExit(container_id="c1", id="exec-7", pid=50, exit_status=0)
    event = decode_envelope(envelope("/tasks/exit", message, "type.googleapis.com/containerd.events.TaskExit"))
    assert event.exec_id == "exec-7" and not event.init_process
    assert event.exit_status == 0 and event.exited_at is None


@pytest.mark.parametrize("topic, message, expected", [
    ("/tasks/start", task_events_pb2.TaskStart(container_id="c1", pid=9), dict(container_id="c1", pid=9)),
    ("/tasks/create", task_events_pb2.TaskCreate(container_id="c1", bundle="/b", pid=9), dict(pid=9)),
    ("/tasks/oom", task_events_pb2.TaskOOM(container_id="c1"), dict(container_id="c1", exit_status=None)),
    ("/tasks/exec-started", task_events_pb2.TaskExecStarted(container_id="c1", exec_id="e", pid=3),
     dict(exec_id="e", pid=3)),
    ("/tasks/delete", task_events_pb2.TaskDelete(container_id="c1", pid=9, exit_status=137),
     dict(exit_status=137, exec_id="")),
    ("/containers/delete", container_events_pb2.ContainerDelete(id="c2"), dict(container_id="c2")),
])
def test_other_event_types(topic: str, message, expected: dict) -> None:
    event = decode_envelope(envelope(topic, message))
    for field, value in expected.items():
        assert getattr(event, field) == value, field


def test_unknown_payload_keeps_envelope_fields() -> None:
    unknown = any_pb2.Any(type_url="containerd.events.SomethingNew", value=b"\x0a\x01x")
    stamp = timestamp_pb2.Timestamp(seconds=1)
    event = decode_envelope(events_pb2.Envelope(timestamp=stamp, namespace="k8s.io", topic="/x", event=unknown))
    assert event.type_name == "containerd.events.SomethingNew" and event.container_id == ""


def test_filters() -> None:
    assert subscribe_filters(["/tasks/"], "k8s.io") == ['namespace=="k8s.io",topic~="^/tasks/"']
    assert subscribe_filters(["/tasks/exit", "/containers/"], None) == [
        'topic~="^/tasks/exit"', 'topic~="^/containers/"']
    with pytest.raises(ValueError):
        subscribe_filters(['/tasks/",x'], "k8s.io")
