"""DNS wire format (RFC 1035, EDNS0 from RFC 6891): what the cluster DNS needs, as pure functions.

Queries are decoded (header, questions, the OPT record's UDP size); answers are encoded with
name compression. Forwarded queries are relayed as raw bytes and never decoded here.
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

CLASS_IN = 1
TYPE_A, TYPE_NS, TYPE_CNAME, TYPE_SOA, TYPE_PTR = 1, 2, 5, 6, 12
TYPE_AAAA, TYPE_SRV, TYPE_OPT, TYPE_ANY = 28, 33, 41, 255
RCODE_NOERROR, RCODE_FORMERR, RCODE_SERVFAIL, RCODE_NXDOMAIN, RCODE_NOTIMP, RCODE_REFUSED = 0, 1, 2, 3, 4, 5
OPCODE_QUERY = 0

FLAG_QR = 0x8000
FLAG_AA = 0x0400
FLAG_TC = 0x0200
FLAG_RD = 0x0100
FLAG_RA = 0x0080

CLASSIC_UDP_SIZE = 512      # without EDNS (RFC 1035 4.2.1)
OUR_EDNS_UDP_SIZE = 1232    # the size the DNS flag day 2020 settled on
MAX_NAME_LENGTH = 255
MAX_LABEL_LENGTH = 63
_HEADER = struct.Struct("!HHHHHH")


class FormatError(ValueError):
    """The bytes are not a DNS message we can read (answered with FORMERR when the header is)."""


@dataclass(frozen=True, slots=True)
class Question:
    name: str          # as asked, without the trailing dot ("" for the root)
    qtype: int
    qclass: int = CLASS_IN

    @property
    def key(self) -> str:
        """The name for lookups: DNS names compare case-insensitively."""
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Query:
    id: int
    flags: int
    questions: tuple[Question, ...]
    udp_size: int = CLASSIC_UDP_SIZE    # what the client accepts over UDP
    edns: bool = False

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF

    @property
    def recursion_desired(self) -> bool:
        return bool(self.flags & FLAG_RD)


@dataclass(frozen=True, slots=True)
class Record:
    name: str
    rtype: int
    ttl: int
    rdata: tuple  # per type: see _encode_rdata
    rclass: int = CLASS_IN


@dataclass(slots=True)
class Answer:
    rcode: int = RCODE_NOERROR
    answers: list[Record] = field(default_factory=list)
    authority: list[Record] = field(default_factory=list)
    additional: list[Record] = field(default_factory=list)
    authoritative: bool = True


# ------------------------------------------------------------------------------------- decode
def read_header_id(data: bytes) -> int | None:
    return struct.unpack_from("!H", data)[0] if len(data) >= 2 else None


def decode_name(data: bytes, offset: int) -> tuple[str, int]:
    """The name at `offset` (following compression pointers) and the offset after it."""
    labels: list[str] = []
    end: int | None = None
    jumps = 0
    length_total = 0
    while True:
        if offset >= len(data):
            raise FormatError("name runs past the end of the message")
        length = data[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(data):
                raise FormatError("truncated compression pointer")
            if end is None:
                end = offset + 2
            jumps += 1
            if jumps > 64:
                raise FormatError("compression pointer loop")
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            continue
        if length & 0xC0:
            raise FormatError(f"unsupported label type 0x{length:02x}")
        offset += 1
        if length == 0:
            break
        label = data[offset:offset + length]
        if len(label) != length:
            raise FormatError("label runs past the end of the message")
        length_total += length + 1
        if length_total > MAX_NAME_LENGTH:
            raise FormatError("name longer than 255 octets")
        labels.append(label.decode("ascii", errors="replace"))
        offset += length
    return ".".join(labels), (end if end is not None else offset)


def decode_query(data: bytes) -> Query:
    if len(data) < _HEADER.size:
        raise FormatError("message shorter than a DNS header")
    ident, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    if flags & FLAG_QR:
        raise FormatError("a response, not a query")
    offset = _HEADER.size
    questions = []
    for _ in range(qdcount):
        name, offset = decode_name(data, offset)
        if offset + 4 > len(data):
            raise FormatError("truncated question")
        qtype, qclass = struct.unpack_from("!HH", data, offset)
        offset += 4
        questions.append(Question(name, qtype, qclass))
    udp_size, edns = CLASSIC_UDP_SIZE, False
    for index in range(ancount + nscount + arcount):
        _, offset = decode_name(data, offset)
        if offset + 10 > len(data):
            raise FormatError("truncated resource record")
        rtype, rclass, _ttl, rdlength = struct.unpack_from("!HHIH", data, offset)
        offset += 10 + rdlength
        if offset > len(data):
            raise FormatError("resource record data runs past the end of the message")
        if rtype == TYPE_OPT and index >= ancount + nscount:
            edns, udp_size = True, max(CLASSIC_UDP_SIZE, rclass)  # OPT's class is the UDP size
    return Query(ident, flags, tuple(questions), udp_size, edns)


# ------------------------------------------------------------------------------------- encode
class _Writer:
    def __init__(self) -> None:
        self.buffer = bytearray()
        self._names: dict[str, int] = {}   # suffix → offset, for compression (exact case kept)

    def name(self, name: str) -> None:
        labels = [label for label in name.split(".") if label] if name else []
        for i in range(len(labels)):
            suffix = ".".join(labels[i:])
            pointer = self._names.get(suffix)
            if pointer is not None:
                self.buffer += struct.pack("!H", 0xC000 | pointer)
                return
            if len(self.buffer) < 0x4000:
                self._names[suffix] = len(self.buffer)
            raw = labels[i].encode("ascii")
            if not raw or len(raw) > MAX_LABEL_LENGTH:
                raise ValueError(f"bad label {labels[i]!r} in {name!r}")
            self.buffer.append(len(raw))
            self.buffer += raw
        self.buffer.append(0)

    def record(self, record: Record) -> None:
        self.name(record.name)
        self.buffer += struct.pack("!HHI", record.rtype, record.rclass, record.ttl)
        length_at = len(self.buffer)
        self.buffer += b"\0\0"
        _encode_rdata(self, record)
        struct.pack_into("!H", self.buffer, length_at, len(self.buffer) - length_at - 2)


def _encode_rdata(writer: _Writer, record: Record) -> None:
    rtype, rdata = record.rtype, record.rdata
    if rtype == TYPE_A:
        writer.buffer += ipaddress.IPv4Address(rdata[0]).packed
    elif rtype == TYPE_AAAA:
        writer.buffer += ipaddress.IPv6Address(rdata[0]).packed
    elif rtype in (TYPE_CNAME, TYPE_PTR, TYPE_NS):
        writer.name(rdata[0])
    elif rtype == TYPE_SRV:
        priority, weight, port, target = rdata
        writer.buffer += struct.pack("!HHH", priority, weight, port)
        writer.name(target)
    elif rtype == TYPE_SOA:
        mname, rname, serial, refresh, retry, expire, minimum = rdata
        writer.name(mname)
        writer.name(rname)
        writer.buffer += struct.pack("!IIIII", serial, refresh, retry, expire, minimum)
    else:
        raise ValueError(f"cannot encode record type {rtype}")


def _opt_record(udp_size: int) -> bytes:
    # Root name, type OPT, class = UDP payload size, TTL = extended rcode/version/flags, no options.
    return b"\0" + struct.pack("!HHIH", TYPE_OPT, udp_size, 0, 0)


def encode_response(query: Query, answer: Answer, max_size: int | None = None) -> bytes:
    """The response to `query`; over `max_size` bytes it keeps only whole records that fit and
    sets TC, so the client retries over TCP (RFC 2181 9)."""
    flags = FLAG_QR | (query.opcode << 11) | (query.flags & FLAG_RD) | FLAG_RA | (answer.rcode & 0xF)
    if answer.authoritative:
        flags |= FLAG_AA
    sections = (answer.answers, answer.authority, answer.additional)
    opt = _opt_record(OUR_EDNS_UDP_SIZE) if query.edns else b""
    writer = _Writer()
    writer.buffer += _HEADER.pack(query.id, flags, len(query.questions), 0, 0, 0)
    for question in query.questions:
        writer.name(question.name)
        writer.buffer += struct.pack("!HH", question.qtype, question.qclass)
    counts = [0, 0, 0]
    truncated = False
    limit = None if max_size is None else max_size - len(opt)
    for index, records in enumerate(sections):
        for record in records:
            mark = len(writer.buffer)
            writer.record(record)
            if limit is not None and len(writer.buffer) > limit:
                del writer.buffer[mark:]
                truncated = index < 2   # a dropped additional record is not truncation (RFC 2181)
                break
            counts[index] += 1
        else:
            continue
        break
    if truncated:
        flags |= FLAG_TC
    struct.pack_into("!HHHHHH", writer.buffer, 0, query.id, flags, len(query.questions), counts[0], counts[1],
                     counts[2] + (1 if opt else 0))
    return bytes(writer.buffer) + opt


def error_response(data: bytes, rcode: int) -> bytes | None:
    """A bare answer with `rcode` to a message we could not decode (None: not even a header)."""
    if len(data) < _HEADER.size:
        return None
    ident, flags = struct.unpack_from("!HH", data)
    if flags & FLAG_QR:
        return None   # never answer a response: that is how reflection loops start
    flags = FLAG_QR | (flags & 0x7800) | (flags & FLAG_RD) | FLAG_RA | rcode
    return _HEADER.pack(ident, flags, 0, 0, 0, 0)


def encode_query(ident: int, name: str, qtype: int, recursion_desired: bool = True) -> bytes:
    """A one-question query (the tests' client and probes)."""
    writer = _Writer()
    writer.buffer += _HEADER.pack(ident, FLAG_RD if recursion_desired else 0, 1, 0, 0, 0)
    writer.name(name)
    writer.buffer += struct.pack("!HH", qtype, CLASS_IN)
    return bytes(writer.buffer)


@dataclass(frozen=True, slots=True)
class DecodedResponse:
    id: int
    flags: int
    rcode: int
    answers: tuple[Record, ...]
    authority: tuple[Record, ...]
    additional: tuple[Record, ...]


def decode_response(data: bytes) -> DecodedResponse:
    """Decode a response (the record types we encode; others keep raw rdata). For tests and tools."""
    if len(data) < _HEADER.size:
        raise FormatError("message shorter than a DNS header")
    ident, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    offset = _HEADER.size
    for _ in range(qdcount):
        _, offset = decode_name(data, offset)
        offset += 4
    sections: list[list[Record]] = [[], [], []]
    for index, count in enumerate((ancount, nscount, arcount)):
        for _ in range(count):
            name, offset = decode_name(data, offset)
            rtype, rclass, ttl, rdlength = struct.unpack_from("!HHIH", data, offset)
            offset += 10
            start = offset
            offset += rdlength
            if rtype == TYPE_A:
                rdata: tuple = (str(ipaddress.IPv4Address(data[start:offset])),)
            elif rtype == TYPE_AAAA:
                rdata = (str(ipaddress.IPv6Address(data[start:offset])),)
            elif rtype in (TYPE_CNAME, TYPE_PTR, TYPE_NS):
                rdata = (decode_name(data, start)[0],)
            elif rtype == TYPE_SRV:
                priority, weight, port = struct.unpack_from("!HHH", data, start)
                rdata = (priority, weight, port, decode_name(data, start + 6)[0])
            elif rtype == TYPE_SOA:
                mname, at = decode_name(data, start)
                rname, at = decode_name(data, at)
                rdata = (mname, rname, *struct.unpack_from("!IIIII", data, at))
            else:
                rdata = (bytes(data[start:offset]),)
            sections[index].append(Record(name, rtype, ttl, rdata, rclass))
    return DecodedResponse(ident, flags, flags & 0xF, *(tuple(s) for s in sections))
