"""Stream a container's CRI log file as kubelet does: tail, since, timestamps, limitBytes, follow.

Following survives rotation: when the log path names a new file (the log manager renamed the old one
and the runtime reopened), the rest of the old file is read, then the new one from its start.
Following ends when the container stops running and its file has been read to the end.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import BinaryIO

from agent.node_server.cri_log import LogFormatter, LogOptions, parse_cri_line, tail_start

log = logging.getLogger(__name__)

READ_SIZE = 64 * 1024
FOLLOW_POLL = 0.1          # seconds between looks at a quiet file
RUNNING_CHECK = 1.0        # seconds between asking the runtime whether the container still runs

Write = Callable[[bytes], Awaitable[None]]
StillRunning = Callable[[], Awaitable[bool]]


def _open_at(path: str, tail_lines: int | None) -> tuple[BinaryIO, int]:
    """The log opened at the start of its last `tail_lines` lines (all: None), and where it ended then."""
    handle = open(path, "rb")  # noqa: SIM115 - closed by stream_log
    end = handle.seek(0, 2)
    handle.seek(tail_start(handle, tail_lines, end) if tail_lines is not None else 0)
    return handle, end


def _replaced(handle: BinaryIO, path: str) -> bool:
    """Whether path now names another file than the open handle (rotation happened)."""
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return False   # between the rename and the runtime's reopen
    opened = os.fstat(handle.fileno())
    return (current.st_dev, current.st_ino) != (opened.st_dev, opened.st_ino)


class _LineSplitter:
    """Whole lines of the file → formatted output; its work runs in a thread, one call at a time."""

    def __init__(self, formatter: LogFormatter) -> None:
        self.formatter = formatter
        self._pending = b""

    def read(self, handle: BinaryIO, size: int = -1) -> tuple[bool, bytes]:
        """Blocking: read from handle; (whether anything was read, the output it makes)."""
        chunk = handle.read(size)
        return bool(chunk), self.feed(chunk) if chunk else b""

    def feed(self, chunk: bytes) -> bytes:
        lines = (self._pending + chunk).split(b"\n")
        self._pending = lines.pop()
        out = []
        for line in lines:
            try:
                out.append(self.formatter.format(parse_cri_line(line)))
            except ValueError as error:
                log.warning("skipping unparsable log line error=%s", error)
        return b"".join(out)


async def stream_log(path: str, options: LogOptions, write: Write, still_running: StillRunning) -> None:
    """Write the log at path (blocking file work runs in threads)."""
    splitter = _LineSplitter(LogFormatter(options))
    handle, opened_end = await asyncio.to_thread(_open_at, path, options.tail_lines)
    # Without follow, the log as it was when the request came: a writer that goes on does not add lines
    # past `tail` (or past the end) while they are being sent.
    end = None if options.follow else opened_end
    try:
        last_check = time.monotonic()
        stopping = False
        while True:
            size = READ_SIZE if end is None else min(READ_SIZE, end - handle.tell())
            if size <= 0:
                return
            got, out = await asyncio.to_thread(splitter.read, handle, size)
            if got:
                if out:
                    await write(out)
                if splitter.formatter.exhausted:
                    return
                continue
            if not options.follow or stopping:
                return
            if await asyncio.to_thread(_replaced, handle, path):
                _, out = await asyncio.to_thread(splitter.read, handle)
                if out:
                    await write(out)
                await asyncio.to_thread(handle.close)
                handle, _ = await asyncio.to_thread(_open_at, path, None)
                splitter = _LineSplitter(splitter.formatter)
                continue
            if time.monotonic() - last_check >= RUNNING_CHECK:
                last_check = time.monotonic()
                # Read once more after the container stopped: its last lines may have just landed.
                stopping = not await still_running()
                continue
            await asyncio.sleep(FOLLOW_POLL)
    finally:
        await asyncio.to_thread(handle.close)
