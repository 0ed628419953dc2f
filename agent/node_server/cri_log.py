"""CRI container log format and kubelet's log options; pure.

containerd writes one record per line: `<RFC3339Nano timestamp> <stdout|stderr> <P|F> <text>`, where P
marks a partial line (the text continues in the next record) and F a full one. kubelet prints the
text, a newline after F records, and with `timestamps` the record's time before each new line.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$")
TAIL_BLOCK = 4096


class LogOptionsError(ValueError):
    """A query parameter kubelet would reject."""


def parse_rfc3339_ns(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time with up to 9 fractional digits."""
    match = _RFC3339.match(text)
    if not match:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    whole, fraction, zone = match.groups()
    offset = "+00:00" if zone == "Z" else zone
    seconds = datetime.fromisoformat(whole + offset).timestamp()
    return int(seconds) * 1_000_000_000 + int((fraction or "0").ljust(9, "0"))


@dataclass(frozen=True)
class LogOptions:
    """kubelet's PodLogOptions as the node server uses them."""
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None
    since_ns: int | None = None


def _flag(query: Mapping[str, str], name: str) -> bool:
    value = query.get(name, "false")
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0", ""):
        return False
    raise LogOptionsError(f"{name}: invalid boolean value {value!r}")


def _integer(query: Mapping[str, str], name: str, minimum: int) -> int | None:
    if name not in query:
        return None
    try:
        value = int(query[name])
    except ValueError:
        raise LogOptionsError(f"{name}: invalid integer value {query[name]!r}") from None
    if value < minimum:
        raise LogOptionsError(f"{name}: must be greater than {'or equal to ' if minimum == 0 else ''}"
                              f"{0 if minimum == 0 else minimum - 1}")
    return value


def parse_log_query(query: Mapping[str, str], now_ns: int) -> LogOptions:
    """The query of `/containerLogs/...` (the names and checks of upstream's PodLogOptions)."""
    since_seconds = _integer(query, "sinceSeconds", 1)
    since_time = query.get("sinceTime")
    if since_seconds is not None and since_time:
        raise LogOptionsError("at most one of sinceTime or sinceSeconds may be specified")
    since_ns = None
    if since_seconds is not None:
        since_ns = now_ns - since_seconds * 1_000_000_000
    elif since_time:
        try:
            since_ns = parse_rfc3339_ns(since_time)
        except ValueError as error:
            raise LogOptionsError(f"sinceTime: {error}") from None
    return LogOptions(follow=_flag(query, "follow"), previous=_flag(query, "previous"),
                      timestamps=_flag(query, "timestamps"), tail_lines=_integer(query, "tailLines", 0),
                      limit_bytes=_integer(query, "limitBytes", 1), since_ns=since_ns)


@dataclass(frozen=True)
class LogRecord:
    timestamp: str
    stream: str
    partial: bool
    text: bytes

    @property
    def time_ns(self) -> int:
        return parse_rfc3339_ns(self.timestamp)


def parse_cri_line(line: bytes) -> LogRecord:
    """One line of a CRI log file, without its trailing newline."""
    parts = line.split(b" ", 3)
    if len(parts) < 3:
        raise ValueError(f"not a CRI log line: {line[:80]!r}")
    timestamp, stream, tag = parts[0].decode("ascii", "replace"), parts[1].decode("ascii", "replace"), parts[2]
    if stream not in ("stdout", "stderr"):
        raise ValueError(f"unknown stream {stream!r} in CRI log line")
    if tag[:1] not in (b"P", b"F"):
        raise ValueError(f"unknown tag {tag!r} in CRI log line")
    return LogRecord(timestamp, stream, tag[:1] == b"P", parts[3] if len(parts) == 4 else b"")


class LogFormatter:
    """Turns records into the bytes kubelet sends, honouring since, timestamps and limitBytes."""

    def __init__(self, options: LogOptions) -> None:
        self.options = options
        self._at_line_start = True
        self._remaining = options.limit_bytes

    @property
    def exhausted(self) -> bool:
        return self._remaining is not None and self._remaining <= 0

    def format(self, record: LogRecord) -> bytes:
        if self.exhausted:
            return b""
        if self.options.since_ns is not None and record.time_ns < self.options.since_ns:
            return b""
        out = record.text if record.partial else record.text + b"\n"
        if self.options.timestamps and self._at_line_start:
            out = record.timestamp.encode() + b" " + out
        self._at_line_start = not record.partial
        if self._remaining is not None:
            out = out[:self._remaining]
            self._remaining -= len(out)
        return out


def tail_start(handle: BinaryIO, lines: int, end: int | None = None) -> int:
    """Offset of the start of the last `lines` lines of a seekable binary file that ends at `end` (default:
    where it ends now; blocking)."""
    end = handle.seek(0, 2) if end is None else end
    if lines == 0:
        return end
    position, newlines = end, 0
    # A final newline ends the last line; it does not start another one.
    handle.seek(max(end - 1, 0))
    if end and handle.read(1) == b"\n":
        position -= 1
    while position > 0:
        start = max(position - TAIL_BLOCK, 0)
        handle.seek(start)
        block = handle.read(position - start)
        for index in range(len(block) - 1, -1, -1):
            if block[index] == 0x0A:
                newlines += 1
                if newlines == lines:
                    return start + index + 1
        position = start
    return 0
