"""RFC 3339 timestamps as the API writes and reads them (metav1.Time, metav1.MicroTime)."""
from __future__ import annotations

import datetime


def _moment(value: datetime.datetime | int) -> datetime.datetime:
    """A datetime as given, or one from nanoseconds since the epoch (the CRI's timestamps)."""
    if isinstance(value, datetime.datetime):
        return value
    return datetime.datetime.fromtimestamp(value / 1e9, datetime.timezone.utc)


def rfc3339(moment: datetime.datetime | int) -> str:
    """metav1.Time as serialized: whole seconds, UTC, "Z"."""
    return _moment(moment).astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(moment: datetime.datetime | int) -> str:
    """metav1.MicroTime as serialized: RFC 3339 with exactly six fractional digits, UTC (Lease and Event times)."""
    return _moment(moment).astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(text: str | None) -> datetime.datetime | None:
    """The moment of an RFC 3339 time (naive input taken as UTC); None when absent or unreadable."""
    if not text:
        return None
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)
