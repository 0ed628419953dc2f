"""containerd's event stream (containerd.services.events.v1.Events/Subscribe), decoded.

containerd 1.6 does not implement CRI GetContainerEvents, so task starts, exits
and OOMs come from here. The stream ends when containerd goes away; the
caller reconnects (and relists, since events may have been missed meanwhile).
"""
from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

import grpc
from google.protobuf import any_pb2, message, timestamp_pb2

from cri.channel import DEFAULT_ENDPOINT, ChannelClient
from cri.errors import RuntimeUnavailable, error_from_rpc, unavailable_message
from cri.gen import container_events_pb2, events_pb2, events_pb2_grpc, task_events_pb2

_EVENT_TYPES: dict[str, type[message.Message]] = {
    descriptor.full_name: getattr(module, name)
    for module in (task_events_pb2, container_events_pb2)
    for name, descriptor in module.DESCRIPTOR.message_types_by_name.items()
}

# containerd topics look like /tasks/exit; anything else would need regex escaping in the filter.
_TOPIC_PREFIX = re.compile(r"^/[a-z0-9/_-]*$")


@dataclass(frozen=True)
class ContainerdEvent:
    """One event. Fields a given event type does not carry keep their defaults.

    exec_id is the exec process of TaskExit/TaskDelete/TaskExec*; for the
    container's own (init) process it is empty or the container id, see
    init_process.
    """

    topic: str
    namespace: str
    timestamp: datetime
    type_name: str  # e.g. "containerd.events.TaskExit"
    container_id: str = ""
    exec_id: str = ""
    pid: int = 0
    exit_status: int | None = None
    exited_at: datetime | None = None

    @property
    def init_process(self) -> bool:
        return self.exec_id in ("", self.container_id)


def _to_datetime(stamp: timestamp_pb2.Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=timezone.utc)


def subscribe_filters(topics: Iterable[str], namespace: str | None) -> list[str]:
    """containerd filters selecting topics starting with any of topics, in namespace."""
    filters = []
    for topic in topics:
        if not _TOPIC_PREFIX.match(topic):
            raise ValueError(f"invalid containerd topic prefix {topic!r}: want e.g. '/tasks/'")
        terms = [f'topic~="^{topic}"']
        if namespace:
            terms.insert(0, f'namespace=="{namespace}"')
        filters.append(",".join(terms))
    return filters


def decode_envelope(envelope: events_pb2.Envelope) -> ContainerdEvent:
    """Typed event of an Envelope; unknown payload types keep only the envelope's fields."""
    payload: any_pb2.Any = envelope.event
    type_name = payload.type_url.rsplit("/", 1)[-1]
    common = dict(topic=envelope.topic, namespace=envelope.namespace,
                  timestamp=_to_datetime(envelope.timestamp), type_name=type_name)
    event_type = _EVENT_TYPES.get(type_name)
    if event_type is None:
        return ContainerdEvent(**common)
    event = event_type.FromString(payload.value)
    fields = {field.name for field in event.DESCRIPTOR.fields}
    container_id = event.container_id if "container_id" in fields else event.id
    if "exec_id" in fields:
        exec_id = event.exec_id
    elif "container_id" in fields and "id" in fields:
        exec_id = event.id
    else:
        exec_id = ""
    exited = "exited_at" in fields and event.HasField("exited_at")
    return ContainerdEvent(
        **common,
        container_id=container_id,
        exec_id=exec_id,
        pid=event.pid if "pid" in fields else 0,
        exit_status=event.exit_status if "exit_status" in fields else None,
        exited_at=_to_datetime(event.exited_at) if exited else None,
    )


class ContainerdEvents(ChannelClient):
    """Subscriptions to containerd's events; construct it inside the running event loop."""

    def __init__(self, address: str = DEFAULT_ENDPOINT, namespace: str | None = "k8s.io") -> None:
        self.address = address
        self.namespace = namespace
        super().__init__(address)
        self._stub = events_pb2_grpc.EventsStub(self._channel)

    async def subscribe(self, topics: Iterable[str] = ("/tasks/",)) -> AsyncIterator[ContainerdEvent]:
        """Yield events whose topic starts with one of topics, until the stream breaks.

        Raises RuntimeUnavailable when containerd is unreachable or closes the
        stream, another CRIError on other gRPC failures.
        """
        request = events_pb2.SubscribeRequest(filters=subscribe_filters(topics, self.namespace))
        call = self._stub.Subscribe(request)
        try:
            async for envelope in call:
                yield decode_envelope(envelope)
        except grpc.aio.AioRpcError as error:
            raise error_from_rpc(error, endpoint=self.address, method="Subscribe") from None
        finally:
            call.cancel()
        raise RuntimeUnavailable(grpc.StatusCode.UNAVAILABLE,
                                 unavailable_message(self.address, "containerd closed the event stream"),
                                 "Subscribe")
