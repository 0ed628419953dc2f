"""Cron schedules as the CronJob API reads them (the standard 5-field form, `@hourly`-style descriptors,
`@every <duration>`, an optional `TZ=`/`CRON_TZ=` prefix), with the parse errors and the next-run search
upstream's cron library gives (github.com/robfig/cron/v3 `ParseStandard` and `SpecSchedule.Next`).

Written for shipmate from that library's documented behaviour: fields are sets of allowed values (bits),
`*`/`?` mark a field as unrestricted, which decides how day-of-month and day-of-week combine (both
restricted: either may match; otherwise both must). `next_after` walks month → day → hour → minute → second
in the schedule's time zone with absolute-time steps, so a wall-clock hour skipped by a DST change never
fires and an hour repeated by one fires twice, as upstream's controller does.
"""
from __future__ import annotations

import datetime
import re
import zoneinfo
from dataclasses import dataclass
from typing import Optional

UTC = datetime.timezone.utc
STAR = 1 << 63  # the field was "*" or "?": unrestricted (matters for day-of-month vs day-of-week)


class CronError(ValueError):
    """A schedule the cron library refuses; str() is its message."""


@dataclass(frozen=True)
class _Bounds:
    low: int
    high: int
    names: Optional[dict[str, int]] = None


_MONTH_NAMES = {name: i + 1 for i, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
_DAY_NAMES = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
SECONDS, MINUTES, HOURS = _Bounds(0, 59), _Bounds(0, 59), _Bounds(0, 23)
DAYS_OF_MONTH, MONTHS, DAYS_OF_WEEK = _Bounds(1, 31), _Bounds(1, 12, _MONTH_NAMES), _Bounds(0, 6, _DAY_NAMES)


def _bits(low: int, high: int, step: int) -> int:
    if step == 1:
        return ~(~0 << (high + 1)) & (~0 << low)
    return sum(1 << value for value in range(low, high + 1, step))


def _all(bounds: _Bounds) -> int:
    return _bits(bounds.low, bounds.high, 1) | STAR


def _go_atoi(text: str) -> int:
    """strconv.Atoi: an optional sign and decimal digits only."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueError(text)
    return int(text)


def _must_int(text: str) -> int:
    try:
        number = _go_atoi(text)
    except ValueError:
        raise CronError(f'failed to parse int from {text}: strconv.Atoi: parsing "{text}": invalid syntax') from None
    if number < 0:
        raise CronError(f"negative number ({number}) not allowed: {text}")
    return number


def _int_or_name(text: str, names: Optional[dict[str, int]]) -> int:
    if names and text.lower() in names:
        return names[text.lower()]
    return _must_int(text)


def _range(expr: str, bounds: _Bounds) -> int:
    """One comma-separated part: `*`, `?`, `N`, `N-M`, any of them with `/step` (`N/step` means N to the top)."""
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    single = len(low_and_high) == 1
    extra = 0
    if low_and_high[0] in ("*", "?"):
        start, end, extra = bounds.low, bounds.high, STAR
    else:
        start = _int_or_name(low_and_high[0], bounds.names)
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = _int_or_name(low_and_high[1], bounds.names)
        else:
            raise CronError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _must_int(range_and_step[1])
        if single:
            end = bounds.high
        if step > 1:
            extra = 0
    else:
        raise CronError(f"too many slashes: {expr}")
    if start < bounds.low:
        raise CronError(f"beginning of range ({start}) below minimum ({bounds.low}): {expr}")
    if end > bounds.high:
        raise CronError(f"end of range ({end}) above maximum ({bounds.high}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")
    return _bits(start, end, step) | extra


def _field(text: str, bounds: _Bounds) -> int:
    bits = 0
    for part in text.split(","):
        bits |= _range(part, bounds)
    return bits


def load_zone(name: str) -> datetime.tzinfo:
    """time.LoadLocation: "" and "UTC" are UTC; "Local" is the server's zone (we run in UTC); else the IANA
    database. CronError with Go's message for an unknown name."""
    if name in ("", "UTC"):
        return UTC
    if name == "Local":
        return UTC
    if name.startswith("/") or ".." in name.split("/") or "\\" in name:
        raise CronError(f"unknown time zone {name}")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise CronError(f"unknown time zone {name}") from None


# --- Go-like wall clock arithmetic in a zone -----------------------------------------------------------
def _offset_at(unix: float, zone: datetime.tzinfo) -> int:
    return int(datetime.datetime.fromtimestamp(unix, zone).utcoffset().total_seconds())


def go_date(year: int, month: int, day: int, hour: int, minute: int, second: int,
            zone: datetime.tzinfo) -> datetime.datetime:
    """time.Date: out-of-range fields carry over (month 13 is January of the next year, day 0 the last day
    of the previous month); a wall time a DST change skipped or repeated resolves as Go resolves it."""
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    naive = datetime.datetime(year, month, 1) + datetime.timedelta(days=day - 1, hours=hour, minutes=minute,
                                                                   seconds=second)
    unix = (naive - datetime.datetime(1970, 1, 1)).total_seconds()
    offset = _offset_at(unix, zone)  # the offset in force at the wall time read as UTC
    if offset:
        utc = unix - offset
        if _offset_at(utc, zone) != offset:
            offset = _offset_at(utc, zone)
    return datetime.datetime.fromtimestamp(unix - offset, zone)


def _add(moment: datetime.datetime, **delta: float) -> datetime.datetime:
    """Absolute-time addition (Go's t.Add), staying in the moment's zone."""
    return (moment.astimezone(UTC) + datetime.timedelta(**delta)).astimezone(moment.tzinfo)


# --- schedules -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpecSchedule:
    second: int
    minute: int
    hour: int
    dom: int
    month: int
    dow: int
    zone: Optional[datetime.tzinfo] = None  # None: the zone of the time asked about

    def _day_matches(self, moment: datetime.datetime) -> bool:
        dom_match = bool(1 << moment.day & self.dom)
        dow_match = bool(1 << ((moment.weekday() + 1) % 7) & self.dow)
        if self.dom & STAR or self.dow & STAR:
            return dom_match and dow_match
        return dom_match or dow_match

    def next_after(self, moment: datetime.datetime) -> Optional[datetime.datetime]:
        """The first matching time strictly after `moment` (an aware datetime), in moment's zone; None if
        none within five years (an impossible date such as February 30th)."""
        original_zone = moment.tzinfo
        zone = self.zone if self.zone is not None else original_zone
        t = moment.astimezone(zone)
        t = _add(t.replace(microsecond=0), seconds=1)
        added = False
        year_limit = t.year + 5
        while True:  # WRAP
            if t.year > year_limit:
                return None
            wrapped = False
            while not (1 << t.month) & self.month:
                if not added:
                    added = True
                    t = go_date(t.year, t.month, 1, 0, 0, 0, zone)
                t = go_date(t.year, t.month + 1, t.day, t.hour, t.minute, t.second, zone)
                if t.month == 1:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not self._day_matches(t):
                if not added:
                    added = True
                    t = go_date(t.year, t.month, t.day, 0, 0, 0, zone)
                t = go_date(t.year, t.month, t.day + 1, t.hour, t.minute, t.second, zone)
                if t.hour != 0:  # midnight skipped or repeated by DST: back to a day boundary
                    t = _add(t, hours=24 - t.hour) if t.hour > 12 else _add(t, hours=-t.hour)
                if t.day == 1:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not (1 << t.hour) & self.hour:
                if not added:
                    added = True
                    t = go_date(t.year, t.month, t.day, t.hour, 0, 0, zone)
                t = _add(t, hours=1)
                if t.hour == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not (1 << t.minute) & self.minute:
                if not added:
                    added = True
                    t = t.replace(second=0)
                t = _add(t, minutes=1)
                if t.minute == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not (1 << t.second) & self.second:
                if not added:
                    added = True
                t = _add(t, seconds=1)
                if t.second == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            return t.astimezone(original_zone)


@dataclass(frozen=True)
class EverySchedule:
    """`@every <duration>`: a fixed delay, whole seconds, at least one."""
    seconds: int

    def next_after(self, moment: datetime.datetime) -> datetime.datetime:
        return moment.replace(microsecond=0) + datetime.timedelta(seconds=self.seconds)


Schedule = SpecSchedule | EverySchedule

_DESCRIPTORS = {
    "@yearly": ("0", "0", "1", "1", None), "@annually": ("0", "0", "1", "1", None),
    "@monthly": ("0", "0", "1", None, None), "@weekly": ("0", "0", None, None, "0"),
    "@daily": ("0", "0", None, None, None), "@midnight": ("0", "0", None, None, None),
    "@hourly": ("0", None, None, None, None),
}
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([a-zµμ]+)")


def parse_go_duration(text: str) -> float:
    """time.ParseDuration, in seconds; CronError with Go's message when malformed."""
    original, body, sign = text, text, 1.0
    if body[:1] in "+-" and body:
        sign, body = (-1.0 if body[0] == "-" else 1.0), body[1:]
    if body == "0":
        return 0.0
    if not body:
        raise CronError(f'time: invalid duration "{original}"')
    total, pos = 0.0, 0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if not match or match.group(1) in ("", "."):
            if match is None and re.match(r"[0-9.]+$", body[pos:]):
                raise CronError(f'time: missing unit in duration "{original}"')
            raise CronError(f'time: invalid duration "{original}"')
        unit = _DURATION_UNITS.get(match.group(2))
        if unit is None:
            raise CronError(f'time: unknown unit "{match.group(2)}" in duration "{original}"')
        total += float(match.group(1)) * unit
        pos = match.end()
    return sign * total


def _descriptor(spec: str, zone: Optional[datetime.tzinfo]) -> Schedule:
    fields = _DESCRIPTORS.get(spec)
    if fields is not None:
        minute, hour, dom, month, dow = fields
        return SpecSchedule(
            second=1 << SECONDS.low,
            minute=_field(minute, MINUTES),
            hour=_field(hour, HOURS) if hour else _all(HOURS),
            dom=_field(dom, DAYS_OF_MONTH) if dom else _all(DAYS_OF_MONTH),
            month=_field(month, MONTHS) if month else _all(MONTHS),
            dow=_field(dow, DAYS_OF_WEEK) if dow else _all(DAYS_OF_WEEK), zone=zone)
    if spec.startswith("@every "):
        try:
            duration = parse_go_duration(spec[len("@every "):])
        except CronError as exc:
            raise CronError(f"failed to parse duration {spec}: {exc}") from None
        return EverySchedule(max(int(duration), 1))  # whole seconds, at least one
    raise CronError(f"unrecognized descriptor: {spec}")


def parse_standard(spec: str) -> Schedule:
    """cron.ParseStandard: CronError (upstream's message) when the schedule is not valid."""
    if not spec:
        raise CronError("empty spec string")
    zone: Optional[datetime.tzinfo] = None
    if spec.startswith("TZ=") or spec.startswith("CRON_TZ="):
        space, equals = spec.find(" "), spec.find("=")
        name = spec[equals + 1:space] if space >= 0 else spec[equals + 1:]
        try:
            zone = load_zone(name)
        except CronError as exc:
            raise CronError(f"provided bad location {name}: {exc}") from None
        spec = spec[space:].strip() if space >= 0 else ""
    if spec.startswith("@"):
        return _descriptor(spec, zone)
    fields = spec.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    minute, hour, dom, month, dow = fields
    return SpecSchedule(second=1, minute=_field(minute, MINUTES), hour=_field(hour, HOURS),
                        dom=_field(dom, DAYS_OF_MONTH), month=_field(month, MONTHS), dow=_field(dow, DAYS_OF_WEEK),
                        zone=zone)


def schedule_for(schedule: str, time_zone: Optional[str]) -> Schedule:
    """The CronJob controller's formatSchedule + ParseStandard: an explicit TZ in the schedule wins, else
    spec.timeZone (when it loads), else the controller's zone (UTC here)."""
    if "TZ" not in schedule and time_zone is not None:
        try:
            load_zone(time_zone)
        except CronError:
            return parse_standard(schedule)
        return parse_standard(f"TZ={time_zone} {schedule}")
    parsed = parse_standard(schedule)
    if isinstance(parsed, SpecSchedule) and parsed.zone is None:
        return SpecSchedule(parsed.second, parsed.minute, parsed.hour, parsed.dom, parsed.month, parsed.dow, UTC)
    return parsed
