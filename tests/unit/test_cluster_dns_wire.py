"""DNS wire encoding/decoding (agent.cluster_dns.wire)."""
from __future__ import annotations

import struct

import pytest

from agent.cluster_dns import wire
from agent.cluster_dns.wire import Answer, Record

# `dig +noedns db-service.dev.svc.cluster.local A` as captured bytes: id 0x1234, RD.
DIG_QUERY = bytes.fromhex("1234 0100 0001 0000 0000 0000"
                          "0a 64622d73657276696365 03 646576 03 737663 07 636c7573746572 05 6c6f63616c 00"
                          "0001 0001")


def test_decodes_a_plain_query() -> None:
    query = wire.decode_query(wire.encode_query(0x1234, "db-service.dev.svc.cluster.local", wire.TYPE_A))
    assert query.id == 0x1234 and query.recursion_desired and not query.edns
    assert query.questions == (wire.Question("db-service.dev.svc.cluster.local", wire.TYPE_A),)
    assert query.udp_size == 512


def test_decodes_hand_written_bytes() -> None:
    query = wire.decode_query(DIG_QUERY)
    assert query.questions[0].name == "db-service.dev.svc.cluster.local"
    assert query.questions[0].qtype == wire.TYPE_A


def test_edns_opt_gives_the_udp_size_and_is_echoed() -> None:
    data = bytearray(wire.encode_query(7, "a.cluster.local", wire.TYPE_A))
    struct.pack_into("!H", data, 10, 1)   # ARCOUNT 1
    data += b"\0" + struct.pack("!HHIH", wire.TYPE_OPT, 4096, 0, 0)
    query = wire.decode_query(bytes(data))
    assert query.edns and query.udp_size == 4096
    response = wire.encode_response(query, Answer())
    assert struct.unpack_from("!H", response, 10)[0] == 1
    assert response.endswith(b"\0" + struct.pack("!HHIH", wire.TYPE_OPT, wire.OUR_EDNS_UDP_SIZE, 0, 0))


def test_response_round_trip_with_compression() -> None:
    query = wire.decode_query(wire.encode_query(9, "Web.NS.svc.cluster.local", wire.TYPE_SRV))
    answer = Answer(answers=[Record("Web.NS.svc.cluster.local", wire.TYPE_SRV, 5,
                                    (0, 100, 80, "web.ns.svc.cluster.local"))],
                    authority=[Record("cluster.local", wire.TYPE_SOA, 5,
                                      ("ns.dns.cluster.local", "hostmaster.cluster.local", 42, 7200, 1800, 86400, 5))],
                    additional=[Record("web.ns.svc.cluster.local", wire.TYPE_A, 5, ("10.96.0.10",))])
    data = wire.encode_response(query, answer)
    decoded = wire.decode_response(data)
    assert decoded.id == 9 and decoded.flags & wire.FLAG_QR and decoded.flags & wire.FLAG_AA
    assert decoded.flags & wire.FLAG_RD and decoded.rcode == wire.RCODE_NOERROR
    assert decoded.answers == tuple(answer.answers)
    assert decoded.authority == tuple(answer.authority)
    assert decoded.additional == tuple(answer.additional)
    # The question's name is written once; every later mention of it or its suffixes is a pointer.
    assert data.count(b"cluster") == 1


def test_too_big_for_udp_is_truncated_to_whole_records() -> None:
    query = wire.decode_query(wire.encode_query(1, "h.ns.svc.cluster.local", wire.TYPE_A))
    answer = Answer(answers=[Record("h.ns.svc.cluster.local", wire.TYPE_A, 5, (f"10.244.{i // 250}.{i % 250}",))
                             for i in range(100)])
    data = wire.encode_response(query, answer, max_size=512)
    assert len(data) <= 512
    decoded = wire.decode_response(data)
    assert decoded.flags & wire.FLAG_TC
    assert 0 < len(decoded.answers) < 100
    assert not wire.decode_response(wire.encode_response(query, answer)).flags & wire.FLAG_TC


@pytest.mark.parametrize("data, why", [
    (b"\x00\x01", "shorter than a DNS header"),
    (wire.encode_query(1, "a.b", wire.TYPE_A)[:-3], "truncated question"),
    (bytes.fromhex("000101000001000000000000") + b"\xc0\x0c" + b"\x00\x01\x00\x01", "pointer loop"),
    (bytes.fromhex("000181000001000000000000") + b"\x01a\x00\x00\x01\x00\x01", "a response"),
])
def test_malformed_messages_are_format_errors(data: bytes, why: str) -> None:
    with pytest.raises(wire.FormatError, match=why):
        wire.decode_query(data)


def test_error_response_keeps_id_and_never_answers_a_response() -> None:
    bad = bytes.fromhex("abcd0100000100000000000005")
    response = wire.error_response(bad, wire.RCODE_FORMERR)
    ident, flags = struct.unpack_from("!HH", response)
    assert ident == 0xABCD and flags & wire.FLAG_QR and flags & 0xF == wire.RCODE_FORMERR
    assert wire.error_response(b"\x00\x01\x80\x00" + b"\0" * 8, wire.RCODE_FORMERR) is None
    assert wire.error_response(b"\x00", wire.RCODE_FORMERR) is None


def test_names_are_validated_when_encoding() -> None:
    with pytest.raises(ValueError, match="bad label"):
        wire.encode_query(1, "x" * 64 + ".cluster.local", wire.TYPE_A)
