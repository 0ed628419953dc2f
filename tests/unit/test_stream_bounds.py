"""Hostile SPDY frames from the runtime side: oversize frames and header-block compression bombs are
refused before they are buffered or inflated."""
from __future__ import annotations

import struct
import time
import tracemalloc
import zlib

import pytest

from agent.node_server.spdy import (HEADER_DICTIONARY, MAX_FRAME_LENGTH, MAX_HEADER_BLOCK_BYTES, SYN_REPLY, VERSION,
                                    FrameParser, HeaderCodec, SpdyError, data_frame)


def _syn_reply(stream_id: int, compressed_block: bytes) -> bytes:
    payload = struct.pack(">I", stream_id) + compressed_block
    return struct.pack(">HHI", 0x8000 | VERSION, SYN_REPLY, len(payload)) + payload


def test_a_frame_longer_than_the_limit_is_refused_from_its_header_alone():
    parser = FrameParser(HeaderCodec())
    header = struct.pack(">II", 1, MAX_FRAME_LENGTH + 1)  # a DATA frame announcing more than the limit
    with pytest.raises(SpdyError, match="larger than the limit"):
        parser.feed(header)


def test_frames_up_to_the_limit_still_parse_in_pieces():
    parser = FrameParser(HeaderCodec())
    frame = data_frame(3, b"x" * MAX_FRAME_LENGTH, fin=True)
    assert parser.feed(frame[:1000]) == []
    (parsed,) = parser.feed(frame[1000:])
    assert (parsed.stream_id, len(parsed.data), parsed.fin) == (3, MAX_FRAME_LENGTH, True)


def test_a_header_block_that_inflates_past_the_limit_is_refused_without_inflating_it():
    compressor = zlib.compressobj(9, zdict=HEADER_DICTIONARY)
    block = struct.pack(">I", 1) + struct.pack(">I", 1) + b"a" + struct.pack(">I", 200_000_000)
    bomb = compressor.compress(block) + b"".join(compressor.compress(b"a" * 1_000_000) for _ in range(200))
    bomb += compressor.flush(zlib.Z_SYNC_FLUSH)
    assert len(bomb) < 300_000  # 200 MB once inflated
    parser = FrameParser(HeaderCodec())
    tracemalloc.start()
    started = time.process_time()
    try:
        with pytest.raises(SpdyError, match="larger than"):
            parser.feed(_syn_reply(1, bomb))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.process_time() - started < 1
    assert peak < 4 * (MAX_HEADER_BLOCK_BYTES + len(bomb))


def test_ordinary_header_blocks_still_decode():
    sender, receiver = HeaderCodec(), FrameParser(HeaderCodec())
    compressed = sender.encode({"streamtype": "stdout", "x": "y" * 1000})
    (frame,) = receiver.feed(_syn_reply(5, compressed))
    assert frame.headers == {"streamtype": "stdout", "x": "y" * 1000}
