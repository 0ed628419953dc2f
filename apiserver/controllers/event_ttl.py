"""Events expire an hour after their last occurrence (upstream: --event-ttl=1h via etcd leases)."""
from __future__ import annotations

import asyncio
import datetime
import logging

from apiserver import errors
from apiserver.api import API
from apiserver.kinds.base import Obj
from shipmate.timeutil import parse_rfc3339
from apiserver.registry import DeleteOptions

log = logging.getLogger(__name__)

EVENT_TTL = datetime.timedelta(hours=1)
SWEEP_INTERVAL = 300.0


def last_seen(event: Obj) -> datetime.datetime | None:
    series = event.get("series") or {}
    for text in (series.get("lastObservedTime"), event.get("lastTimestamp"), event.get("eventTime"),
                 event.get("metadata", {}).get("creationTimestamp")):
        moment = parse_rfc3339(text)
        if moment is not None:
            return moment
    return None


def expired(events: list[Obj], now: datetime.datetime, ttl: datetime.timedelta = EVENT_TTL) -> list[Obj]:
    return [e for e in events if (seen := last_seen(e)) is not None and now - seen > ttl]


async def sweep_events(api: API) -> int:
    events, _ = await api.events.list()
    removed = 0
    for event in expired(events, api.clock()):
        meta = event["metadata"]
        try:
            await api.events.delete(meta["namespace"], meta["name"], DeleteOptions())
            removed += 1
        except errors.APIError as exc:
            if exc.code != 404:
                raise
    return removed


async def run_event_ttl(api: API) -> None:
    while True:
        try:
            removed = await sweep_events(api)
            if removed:
                log.info("expired events removed=%d", removed)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - retried on the next sweep
            log.exception("event expiry sweep failed")
        await asyncio.sleep(SWEEP_INTERVAL)
