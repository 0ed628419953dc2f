import datetime

from apiserver.controllers.event_ttl import expired

NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.timezone.utc)


def event(name, **fields):
    return {"metadata": {"name": name, "namespace": "default", "creationTimestamp": "2026-01-01T09:00:00Z"}, **fields}


def test_events_expire_an_hour_after_last_occurrence():
    events = [event("old", lastTimestamp="2026-01-01T10:30:00Z"), event("recent", lastTimestamp="2026-01-01T11:30:00Z"),
              event("series", lastTimestamp="2026-01-01T09:00:00Z",
                    series={"count": 3, "lastObservedTime": "2026-01-01T11:59:00.000000Z"}),
              event("created-only")]
    assert [e["metadata"]["name"] for e in expired(events, NOW)] == ["old", "created-only"]
