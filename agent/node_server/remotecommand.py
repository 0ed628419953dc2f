"""The remote command protocol (exec, attach): kubectl's WebSocket side bridged to the runtime's SPDY side.

WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`): every binary message is one channel byte and
data: 0 stdin, 1 stdout, 2 stderr, 3 error (a JSON metav1.Status when the command ends), 4 resize
(JSON TerminalSize); a client's text messages count as their UTF-8 bytes; v5 adds 255, a CLOSE signal `[255, channel]` that half-closes a stream (stdin
EOF). SPDY (`v4.channel.k8s.io` to containerd): one stream per channel, named by a `streamType`
header; the same bytes flow as DATA frames, and FIN on stdin is the EOF.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aiohttp import WSMessage, WSMsgType, web

from agent.node_server.spdy import SYN_REPLY, SpdySession

log = logging.getLogger(__name__)

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
WEBSOCKET_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
RUNTIME_PROTOCOL = "v4.channel.k8s.io"
CHANNEL_OF_STREAM = {"stdin": STDIN, "stdout": STDOUT, "stderr": STDERR, "error": ERROR, "resize": RESIZE}
# kubelet's query names (what the API server sends), then the plain names some clients use.
_STREAM_PARAMS = {"stdin": ("input", "stdin"), "stdout": ("output", "stdout"), "stderr": ("error", "stderr")}


class RemoteCommandError(ValueError):
    """The request asks for something the protocol does not allow."""


@dataclass(frozen=True)
class StreamOptions:
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool

    def stream_types(self) -> list[str]:
        """SPDY streams to open, error first as client-go does."""
        wanted = {"stdin": self.stdin, "stdout": self.stdout, "stderr": self.stderr, "resize": self.tty}
        return ["error", *(name for name, on in wanted.items() if on)]


def _on(query: Mapping[str, str], names: Sequence[str]) -> bool:
    return any(query.get(name, "").lower() in ("1", "true") for name in names)


def parse_stream_options(query: Mapping[str, str]) -> StreamOptions:
    tty = _on(query, ("tty",))
    stdin, stdout, stderr = (_on(query, _STREAM_PARAMS[name]) for name in ("stdin", "stdout", "stderr"))
    if tty:
        stderr = False    # a terminal merges stderr into stdout (kubelet drops it the same way)
    if not (stdin or stdout or stderr):
        raise RemoteCommandError("you must specify at least 1 of stdin, stdout, stderr")
    return StreamOptions(stdin, stdout, stderr, tty)


def frame(channel: int, data: bytes) -> bytes:
    return bytes([channel]) + data


def message_bytes(message: WSMessage) -> bytes | None:
    """The bytes of a data message, binary or text; None for any other message.

    Clients may send channel data as text messages: the official Python client writes stdin given as a
    `str` as a text message whose first character is the channel (`"\\x00ls\\n"`). kubelet's wsstream reads a
    text message's UTF-8 bytes exactly as a binary message's, and so do we."""
    if message.type == WSMsgType.BINARY:
        return message.data
    if message.type == WSMsgType.TEXT:
        return message.data.encode()
    return None


def unframe(message: bytes) -> tuple[int, bytes]:
    if not message:
        raise RemoteCommandError("empty remote command message")
    return message[0], message[1:]


# containerd replies to an attach's streams before it adds them to the running container's output: stdin sent at
# once can be answered (`kubectl debug -i` with piped input) before stdout is connected, and that output is lost.
ATTACH_STDIN_SETTLE_SECONDS = 0.25


async def bridge(ws: web.WebSocketResponse, session: SpdySession, options: StreamOptions,
                 stdin_settle: float = 0.0) -> None:
    """Pump bytes both ways until the runtime ends the session or the client goes away; the client's first
    bytes wait `stdin_settle` seconds past the runtime's replies."""
    stream_ids = {name: session.open_stream({"streamType": name}) for name in options.stream_types()}
    names = {stream_id: name for name, stream_id in stream_ids.items()}
    replied = asyncio.Event()
    waiting = set(names)

    async def from_runtime() -> None:
        async for spdy_frame in session.frames():
            if spdy_frame.control and spdy_frame.kind == SYN_REPLY:
                waiting.discard(spdy_frame.stream_id)
                if not waiting:
                    replied.set()
            elif not spdy_frame.control and spdy_frame.data:
                name = names.get(spdy_frame.stream_id)
                if name is not None:
                    await ws.send_bytes(frame(CHANNEL_OF_STREAM[name], spdy_frame.data))

    async def from_client() -> None:
        # spdystream drops data on a stream it has not replied to yet.
        await replied.wait()
        if stdin_settle:
            await asyncio.sleep(stdin_settle)
        async for message in ws:
            raw = message_bytes(message)
            if raw is None:
                if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    return
                continue
            if not raw:
                continue     # an empty message carries no channel: skipped, as kubelet's wsstream does
            channel, data = unframe(raw)
            if channel == STDIN and "stdin" in stream_ids:
                await session.send(stream_ids["stdin"], data)
            elif channel == RESIZE and "resize" in stream_ids:
                await session.send(stream_ids["resize"], data)
            elif channel == CLOSE and data[:1] == bytes([STDIN]) and "stdin" in stream_ids:
                await session.send(stream_ids["stdin"], b"", fin=True)

    runtime_side = asyncio.create_task(from_runtime())
    client_side = asyncio.create_task(from_client())
    try:
        done, _ = await asyncio.wait({runtime_side, client_side}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task.exception() is not None:
                log.warning("remote command stream failed side=%s error=%r",
                            "runtime" if task is runtime_side else "client", task.exception())
    finally:
        client_side.cancel()
        runtime_side.cancel()
        await asyncio.gather(client_side, runtime_side, return_exceptions=True)
        await session.close()
