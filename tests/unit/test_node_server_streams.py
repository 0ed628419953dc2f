"""SPDY framing and header compression, remote command options and channel framing, TLS names."""
from __future__ import annotations

import struct
import zlib

import pytest
from multidict import MultiDict

from agent.node_server import spdy
from agent.node_server.remotecommand import (CLOSE, STDIN, RemoteCommandError, StreamOptions, frame,
                                             parse_stream_options, unframe)
from agent.node_server.tls import serving_names


def test_dictionary_is_the_spdy3_one() -> None:
    assert len(spdy.HEADER_DICTIONARY) == 1423
    assert spdy.HEADER_DICTIONARY.startswith(b"\x00\x00\x00\x07options") and spdy.HEADER_DICTIONARY.endswith(b"enq=0.")


def test_syn_stream_round_trips_through_a_peer_codec() -> None:
    ours, peer = spdy.HeaderCodec(), spdy.HeaderCodec()
    parser = spdy.FrameParser(peer)
    wire = spdy.syn_stream(ours, 1, {"streamType": "error"}) + spdy.syn_stream(ours, 3, {"streamType": "stdin"})
    first, second = parser.feed(wire[:5]) + parser.feed(wire[5:])
    assert (first.control, first.kind, first.stream_id, first.headers) == (True, spdy.SYN_STREAM, 1,
                                                                           {"streamtype": "error"})
    assert (second.stream_id, second.headers) == (3, {"streamtype": "stdin"})


def test_header_blocks_use_the_preset_dictionary() -> None:
    compressed = spdy.HeaderCodec().encode({"streamtype": "stdout"})
    with pytest.raises(zlib.error):
        zlib.decompressobj().decompress(compressed)  # needs the dictionary
    assert zlib.decompressobj(zdict=spdy.HEADER_DICTIONARY).decompress(compressed) == \
        struct.pack(">I", 1) + struct.pack(">I", 10) + b"streamtype" + struct.pack(">I", 6) + b"stdout"


def test_data_rst_ping_goaway_frames_parse() -> None:
    parser = spdy.FrameParser(spdy.HeaderCodec())
    goaway = struct.pack(">HHI", 0x8003, spdy.GOAWAY, 8) + struct.pack(">II", 7, 0)
    frames = parser.feed(spdy.data_frame(5, b"hello", fin=True) + spdy.rst_stream(3) + spdy.ping_frame(2) + goaway)
    data, rst, ping, away = frames
    assert (data.control, data.stream_id, data.data, data.fin) == (False, 5, b"hello", True)
    assert (rst.kind, rst.stream_id, rst.status) == (spdy.RST_STREAM, 3, spdy.RST_CANCEL)
    assert (ping.kind, ping.status) == (spdy.PING, 2)
    assert (away.kind, away.stream_id) == (spdy.GOAWAY, 7)
    assert spdy.data_frame(1, b"", fin=True) == b"\x00\x00\x00\x01\x01\x00\x00\x00"


def test_wrong_version_is_refused() -> None:
    with pytest.raises(spdy.SpdyError):
        spdy.FrameParser(spdy.HeaderCodec()).feed(struct.pack(">HHI", 0x8002, spdy.PING, 4) + b"\x00\x00\x00\x01")


def test_upgrade_request_and_response() -> None:
    request = spdy.upgrade_request("http://127.0.0.1:4000/exec/abc?x=1", ["v4.channel.k8s.io"]).decode()
    assert request.startswith("POST /exec/abc?x=1 HTTP/1.1\r\nHost: 127.0.0.1:4000\r\n")
    assert "Upgrade: SPDY/3.1\r\n" in request and "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n" in request
    assert request.endswith("\r\n\r\n")
    status, headers = spdy.parse_upgrade_response(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: SPDY/3.1\r\n"
        b"X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n")
    assert status == 101 and headers["x-stream-protocol-version"] == "v4.channel.k8s.io"
    with pytest.raises(spdy.SpdyError):
        spdy.parse_upgrade_response(b"nonsense\r\n\r\n")


def test_stream_options_from_kubelet_and_plain_names() -> None:
    options = parse_stream_options(MultiDict(input="1", output="1", error="1"))
    assert options == StreamOptions(stdin=True, stdout=True, stderr=True, tty=False)
    assert options.stream_types() == ["error", "stdin", "stdout", "stderr"]
    tty = parse_stream_options(MultiDict(stdin="true", stdout="true", stderr="true", tty="true"))
    assert tty == StreamOptions(stdin=True, stdout=True, stderr=False, tty=True)
    assert tty.stream_types() == ["error", "stdin", "stdout", "resize"]
    with pytest.raises(RemoteCommandError, match="at least 1 of stdin, stdout, stderr"):
        parse_stream_options(MultiDict(tty="1"))


def test_channel_framing() -> None:
    assert frame(1, b"out") == b"\x01out"
    assert unframe(b"\x00in") == (STDIN, b"in")
    assert unframe(bytes([CLOSE, STDIN])) == (CLOSE, b"\x00")
    with pytest.raises(RemoteCommandError):
        unframe(b"")


def test_serving_names_are_the_node_addresses() -> None:
    node = {"status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.2"},
                                     {"type": "Hostname", "address": "vm"}, {"type": "Hostname", "address": "vm"},
                                     {"type": "ExternalDNS", "address": "vm.example.com"}]}}
    assert serving_names(node) == (["vm", "vm.example.com"], ["192.0.2.2"])
    assert serving_names({}) == ([], [])
