"""The server's JSON encoder and event loop helpers (shipmate/jsoncodec.py, shipmate/event_loop.py)."""
from __future__ import annotations

import asyncio
import json
import threading

import pytest
import uvloop

from shipmate import event_loop, jsoncodec


def test_encodes_as_compact_json_and_decodes_back_the_same() -> None:
    value = {"kind": "Pod", "metadata": {"name": "a", "labels": {"app": "x"}}, "n": [1, 2.5, True, None],
             "text": "café <b>&"}
    encoded = jsoncodec.dumps(value)
    assert isinstance(encoded, bytes)
    assert json.loads(encoded) == value
    assert b" " not in encoded.replace(b"caf\xc3\xa9 <b>&", b"")      # compact separators


def test_an_integer_beyond_64_bits_stays_exact() -> None:
    value = {"big": 2 ** 70, "negative": -(2 ** 65)}
    assert json.loads(jsoncodec.dumps(value)) == value
    assert jsoncodec.dumps_line(value).endswith(b"}\n")


def test_a_watch_frame_ends_with_one_newline() -> None:
    assert jsoncodec.dumps_line({"type": "ADDED", "object": {}}) == b'{"type":"ADDED","object":{}}\n'


def test_runs_on_uvloop_and_leaves_the_policy_to_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(event_loop.ENV, raising=False)
    seen: dict[str, object] = {}

    def other_thread_loop() -> None:        # as pyroute2 makes one for its netlink sockets
        loop = asyncio.new_event_loop()
        seen["thread loop"] = type(loop)
        loop.close()

    async def main() -> str:
        seen["loop"] = type(asyncio.get_running_loop())
        thread = threading.Thread(target=other_thread_loop)
        thread.start()
        thread.join()
        return "done"

    assert event_loop.run(main()) == "done"
    assert seen["loop"] is uvloop.Loop
    assert seen["thread loop"] is not uvloop.Loop


def test_asyncio_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(event_loop.ENV, "asyncio")

    async def loop_type() -> type:
        return type(asyncio.get_running_loop())

    assert event_loop.run(loop_type()) is not uvloop.Loop


def test_kept_bytes_and_watch_frames_hold_only_their_own_size() -> None:
    import tracemalloc
    value = {"metadata": {"name": "p", "labels": {"app": "x"}}, "spec": {"containers": [{"name": "c"}]}}
    tracemalloc.start()
    try:
        kept = [jsoncodec.dumps(value, kept=True) for _ in range(1000)]
        frames = [jsoncodec.dumps_line({"type": "ADDED", "object": value}) for _ in range(1000)]
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    own = sum(len(b) for b in kept + frames)
    assert held < 3 * own            # orjson's own bytes held 8 KiB each, ~100 times these
