"""The kubelet's event recorder: `event()` queues (never blocks, never raises); `run()` posts core/v1
Events, correlating them as client-go's recorder does.

Correlation, in order, per event: a spam filter (token bucket per source + involved object: burst
25, one token per 5 minutes), an aggregator (more than 10 events differing only by message within
10 minutes become one "(combined from similar events): …" event), and a logger that turns a repeat
of an event already posted into a PATCH of its `count`/`lastTimestamp` instead of a new object.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import aiohttp

from shipmate.kubeclient import EVENTS, ApiError, KubeClient, NotFound
from shipmate.timeutil import rfc3339

log = logging.getLogger(__name__)

Obj = dict[str, Any]

NORMAL, WARNING = "Normal", "Warning"
QUEUE_LENGTH = 1000
LRU_ENTRIES = 4096
SPAM_BURST, SPAM_QPS = 25, 1.0 / 300.0
AGGREGATE_MAX_EVENTS, AGGREGATE_INTERVAL = 10, 600.0
MAX_TRIES, RETRY_SLEEP = 12, 10.0
AGGREGATE_PREFIX = "(combined from similar events): "


def object_reference(obj: Obj, field_path: str = "") -> Obj:
    """The involvedObject for an API object (as client-go's reference.GetReference). Pods from a
    list carry no kind: an object with `spec.containers` is a Pod."""
    meta = obj.get("metadata") or {}
    kind = obj.get("kind") or ("Pod" if "containers" in (obj.get("spec") or {}) else "")
    api_version = obj.get("apiVersion") or ("v1" if kind == "Pod" else "")
    reference = {"kind": kind, "namespace": meta.get("namespace", ""), "name": meta.get("name", ""),
                 "uid": meta.get("uid", ""), "apiVersion": api_version,
                 "resourceVersion": meta.get("resourceVersion", ""), "fieldPath": field_path}
    return {k: v for k, v in reference.items() if v}


def node_reference(node_name: str) -> Obj:
    """What kubelet passes for node events: kind Node, the node's name as UID, no namespace."""
    return {"kind": "Node", "metadata": {"name": node_name, "uid": node_name}}


def container_field_path(container_name: str, init: bool = False, ephemeral: bool = False) -> str:
    kind = "ephemeralContainers" if ephemeral else "initContainers" if init else "containers"
    return f"spec.{kind}{{{container_name}}}"


def make_event(reference: Obj, event_type: str, reason: str, message: str, component: str, host: str,
               moment: datetime) -> Obj:
    timestamp = rfc3339(moment)
    nanos = int(moment.timestamp() * 1e9)
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{reference.get('name', '')}.{nanos:x}",
                     "namespace": reference.get("namespace") or "default"},
        "involvedObject": reference, "reason": reason, "message": message, "type": event_type,
        "source": {"component": component, "host": host},
        "firstTimestamp": timestamp, "lastTimestamp": timestamp, "count": 1,
        "eventTime": None, "reportingComponent": component, "reportingInstance": host,
    }


def _involved_key(event: Obj) -> tuple:
    source, ref = event["source"], event["involvedObject"]
    return (source.get("component", ""), source.get("host", ""), ref.get("kind", ""), ref.get("namespace", ""),
            ref.get("name", ""), ref.get("uid", ""), ref.get("apiVersion", ""))


def event_key(event: Obj) -> tuple:
    """Events with the same key are one event with a count (client-go's getEventKey)."""
    return _involved_key(event) + (event["involvedObject"].get("fieldPath", ""), event.get("type", ""),
                                   event.get("reason", ""), event.get("message", ""))


def _aggregate_key(event: Obj) -> tuple:
    return _involved_key(event) + (event.get("type", ""), event.get("reason", ""),
                                   event.get("reportingComponent", ""), event.get("reportingInstance", ""))


class _Lru(OrderedDict):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def touch(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class _Logged:
    name: str
    namespace: str
    count: int
    first_timestamp: str
    resource_version: str = ""


@dataclass
class _Aggregate:
    messages: set[str]
    last: float


@dataclass
class EventCorrelator:
    """Pure bookkeeping (no I/O): decides whether an event is dropped, created or a repeat."""
    clock: Callable[[], float] = time.monotonic
    _buckets: _Lru = field(default_factory=lambda: _Lru(LRU_ENTRIES))
    _aggregates: _Lru = field(default_factory=lambda: _Lru(LRU_ENTRIES))
    _logged: _Lru = field(default_factory=lambda: _Lru(LRU_ENTRIES))

    def allow(self, event: Obj) -> bool:
        key, now = _involved_key(event), self.clock()
        bucket = self._buckets.get(key) or _Bucket(float(SPAM_BURST), now)
        bucket.tokens = min(float(SPAM_BURST), bucket.tokens + (now - bucket.at) * SPAM_QPS)
        bucket.at = now
        allowed = bucket.tokens >= 1.0
        if allowed:
            bucket.tokens -= 1.0
        self._buckets.touch(key, bucket)
        return allowed

    def aggregate(self, event: Obj) -> Obj:
        key, now = _aggregate_key(event), self.clock()
        record = self._aggregates.get(key)
        if record is None or now - record.last > AGGREGATE_INTERVAL:
            record = _Aggregate(set(), now)
        record.messages.add(event.get("message", ""))
        record.last = now
        self._aggregates.touch(key, record)
        if len(record.messages) < AGGREGATE_MAX_EVENTS:
            return event
        return dict(event, message=AGGREGATE_PREFIX + event.get("message", ""))

    def observe(self, event: Obj) -> tuple[Obj, bool]:
        """(the event to write, whether it repeats one already posted: then PATCH, else POST)."""
        previous = self._logged.get(event_key(event))
        if previous is None:
            return event, False
        meta = dict(event["metadata"], name=previous.name, namespace=previous.namespace)
        return dict(event, metadata=meta, count=previous.count + 1, firstTimestamp=previous.first_timestamp), True

    def posted(self, event: Obj) -> None:
        meta = event.get("metadata") or {}
        self._logged.touch(event_key(event), _Logged(meta.get("name", ""), meta.get("namespace", ""),
                                                     int(event.get("count") or 1), event.get("firstTimestamp", ""),
                                                     meta.get("resourceVersion", "")))


class EventRecorder:
    def __init__(self, client: KubeClient, node_name: str, component: str = "kubelet",
                 retry_sleep: float = RETRY_SLEEP, wall_clock: Callable[[], datetime] | None = None):
        self.client = client
        self.node_name = node_name
        self.component = component
        self.retry_sleep = retry_sleep
        self.dropped = 0
        self._now = wall_clock or (lambda: datetime.now(timezone.utc))
        self._queue: asyncio.Queue[Obj] = asyncio.Queue(QUEUE_LENGTH)
        self._correlator = EventCorrelator()

    def event(self, obj: Obj, event_type: str, reason: str, message: str, field_path: str = "") -> None:
        try:
            event = make_event(object_reference(obj, field_path), event_type, reason, message, self.component,
                               self.node_name, self._now())
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("event queue full, event dropped reason=%s object=%s dropped=%d", reason,
                        (obj.get("metadata") or {}).get("name"), self.dropped)
        except Exception:  # noqa: BLE001 - recording an event must never break the caller
            log.exception("event not recorded reason=%s", reason)

    async def run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._record(event)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one bad event must not stop the recorder
                log.exception("event recording failed reason=%s", event.get("reason"))

    async def flush(self, timeout: float = 5.0) -> None:
        """Waits until the queue is empty (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while not self._queue.empty() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def _record(self, event: Obj) -> None:
        if not self._correlator.allow(event):
            log.debug("event dropped by spam filter reason=%s object=%s", event["reason"],
                      event["involvedObject"].get("name"))
            return
        event, repeat = self._correlator.observe(self._correlator.aggregate(event))
        for attempt in range(1, MAX_TRIES + 1):
            try:
                self._correlator.posted(await self._write(event, repeat))
                return
            except ApiError as error:
                # As client-go: the server rejected it (invalid, namespace gone…): retrying will not help.
                log.info("server rejected event (not retried) reason=%s object=%s error=%s", event["reason"],
                         event["involvedObject"].get("name"), error)
                return
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as error:
                log.warning("event write failed reason=%s attempt=%d/%d error=%r", event["reason"], attempt,
                            MAX_TRIES, error)
                # The first retry is jittered so that many agents do not hammer a recovering server at once.
                await asyncio.sleep(self.retry_sleep * (random.random() if attempt == 1 else 1.0))
        log.error("event dropped after %d tries reason=%s object=%s", MAX_TRIES, event["reason"],
                  event["involvedObject"].get("name"))

    async def _write(self, event: Obj, repeat: bool) -> Obj:
        meta = event["metadata"]
        if repeat:
            patch = {"count": event["count"], "lastTimestamp": event["lastTimestamp"], "message": event["message"]}
            try:
                return await self.client.patch(EVENTS, meta["name"], patch, meta["namespace"])
            except NotFound:
                pass                        # the event expired or was deleted: post it again
        return await self.client.create(EVENTS, event, meta["namespace"])
