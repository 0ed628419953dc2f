"""nf_tables set-element changes sent straight to the kernel over netlink: one batch (one transaction)
of element deletes and adds, without `nft`.

`nft` (and libnftables) fetches the table's chains and sets before it applies even one element, which
costs tens of milliseconds on a table with ten thousand service chains; an element batch needs none of
that. Only what `nft` would send is sent: the elements' keys and values as the set stores them, each
part of a concatenation in its own 32-bit-aligned slot (addresses and ports in network order, integers
such as a `numgen` bucket in host order). Encoding is pure (`element_batch`); `ElementSocket` sends.
"""
from __future__ import annotations

import errno
import os
import socket
import struct
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END = 0x10, 0x11
NFT_MSG_NEWSETELEM, NFT_MSG_DELSETELEM = 12, 14
NFT_MSG_GETTABLE, NFT_MSG_GETCHAIN = 1, 4
NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME = 1, 1, 3
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_CREATE = 0x1, 0x4, 0x400
NLA_F_NESTED = 0x8000
NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_LIST_SET, NFTA_SET_ELEM_LIST_ELEMENTS = 1, 2, 3
NFTA_LIST_ELEM = 1
NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_DATA = 1, 2
NFTA_DATA_VALUE = 1
FAMILIES = {"ip": socket.AF_INET, "ip6": socket.AF_INET6, "inet": 1}
ELEMENTS_PER_MESSAGE = 256

# Field kinds of a concatenation.
IPV4, PORT, U32 = "ipv4", "port", "u32"


class NetlinkError(RuntimeError):
    def __init__(self, message: str, errno: int = 0):
        super().__init__(message)
        self.errno = errno


def encode(kinds: Sequence[str], text: str) -> bytes:
    """`10.96.0.1 . 80 . 3` with kinds (ipv4, port, u32) → the bytes the set holds (the parts split on the
    concatenation operator ` . `: addresses have dots of their own). A full sync encodes ~100k of these."""
    values = text.split(" . ")
    if len(values) != len(kinds):
        raise ValueError(f"{text!r} does not have {len(kinds)} parts")
    out = []
    for kind, value in zip(kinds, values):
        value = value.strip()
        if kind == IPV4:
            try:
                out.append(socket.inet_pton(socket.AF_INET, value))      # dotted quad only, as ipaddress
            except OSError:
                raise ValueError(f"{value!r} is not an IPv4 address") from None
        elif kind == PORT:
            out.append(int(value).to_bytes(2, "big") + b"\0\0")
        elif kind == U32:
            out.append(int(value).to_bytes(4, sys.byteorder))
        else:
            raise ValueError(f"unknown field kind {kind}")
    return b"".join(out)


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _message(kind: int, flags: int, seq: int, family: int, payload: bytes, res_id: int = 0) -> bytes:
    body = struct.pack("=BBH", family, 0, socket.htons(res_id)) + payload
    return struct.pack("=IHHII", 16 + len(body), kind, flags, seq, 0) + body


@dataclass(frozen=True, slots=True)
class ElementChange:
    """Elements of one set to delete or add: (key bytes, value bytes or None for a plain set)."""
    set: str
    delete: bool
    elements: tuple[tuple[bytes, bytes | None], ...]


def element_batch(family: str, table: str, changes: Iterable[ElementChange], seq: int) -> tuple[bytes, int]:
    """One transaction: BATCH_BEGIN, the element messages (each asking for an ack), BATCH_END.
    Returns the bytes and the number of acks to wait for."""
    fam = FAMILIES[family]
    messages = [_message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq, socket.AF_UNSPEC, b"", NFNL_SUBSYS_NFTABLES)]
    acks = 0
    for change in changes:
        for start in range(0, len(change.elements), ELEMENTS_PER_MESSAGE):
            items = b""
            for key, value in change.elements[start:start + ELEMENTS_PER_MESSAGE]:
                elem = _attr(NFTA_SET_ELEM_KEY | NLA_F_NESTED, _attr(NFTA_DATA_VALUE, key))
                if value is not None and not change.delete:
                    elem += _attr(NFTA_SET_ELEM_DATA | NLA_F_NESTED, _attr(NFTA_DATA_VALUE, value))
                items += _attr(NFTA_LIST_ELEM | NLA_F_NESTED, elem)
            payload = (_attr(NFTA_SET_ELEM_LIST_TABLE, table.encode() + b"\0")
                       + _attr(NFTA_SET_ELEM_LIST_SET, change.set.encode() + b"\0")
                       + _attr(NFTA_SET_ELEM_LIST_ELEMENTS | NLA_F_NESTED, items))
            kind = (NFNL_SUBSYS_NFTABLES << 8) | (NFT_MSG_DELSETELEM if change.delete else NFT_MSG_NEWSETELEM)
            flags = NLM_F_REQUEST | NLM_F_ACK | (0 if change.delete else NLM_F_CREATE)
            seq += 1
            messages.append(_message(kind, flags, seq, fam, payload))
            acks += 1
    seq += 1
    messages.append(_message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq, socket.AF_UNSPEC, b"", NFNL_SUBSYS_NFTABLES))
    return b"".join(messages), acks


def lookup_message(family: str, table: str, chain: str | None, seq: int) -> bytes:
    """A GET of one table, or of one chain of it, by name (answered by the object and an ack, or ENOENT)."""
    name = _attr(NFTA_TABLE_NAME, table.encode() + b"\0")
    kind = NFT_MSG_GETTABLE
    if chain is not None:
        name = _attr(NFTA_CHAIN_TABLE, table.encode() + b"\0") + _attr(NFTA_CHAIN_NAME, chain.encode() + b"\0")
        kind = NFT_MSG_GETCHAIN
    return _message((NFNL_SUBSYS_NFTABLES << 8) | kind, NLM_F_REQUEST | NLM_F_ACK, seq, FAMILIES[family], name)


def _acks(data: bytes) -> Iterable[tuple[int, int]]:
    """(sequence number, error code: 0 or a negative errno) of each ack in a netlink reply buffer."""
    offset = 0
    while offset + 16 <= len(data):
        length, kind, _flags, seq = struct.unpack_from("=IHHI", data, offset)
        if length < 16:
            break
        if kind == NLMSG_ERROR and length >= 20:
            yield seq, struct.unpack_from("=i", data, offset + 16)[0]
        offset += (length + 3) & ~3


def ack_of(data: bytes, seq: int) -> int | None:
    """The error code (0: success) of the ack for `seq` in a netlink reply buffer, None when it is not in it."""
    return next((code for acked, code in _acks(data) if acked == seq), None)


def parse_acks(data: bytes) -> tuple[int, int]:
    """(acks seen, first non-zero error as a negative errno or 0) in a netlink reply buffer."""
    codes = [code for _seq, code in _acks(data)]
    return len(codes), next((code for code in codes if code), 0)


SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33
ACK_TRUESIZE = 2048
SOL_NETLINK, NETLINK_CAP_ACK = 270, 10


class ElementSocket:
    """A netfilter netlink socket in the network namespace of the thread that creates it. Blocking: use it
    from a worker thread."""

    def __init__(self, timeout: float = 5.0):
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self._sock.bind((0, 0))
        # Acks without a copy of each request: a big batch's acks then fit the receive buffer (ENOBUFS else).
        self._sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        self._sock.settimeout(timeout)
        self._seq = int.from_bytes(os.urandom(2), "little") << 8

    def apply(self, family: str, table: str, changes: Iterable[ElementChange]) -> None:
        """All the changes in one transaction, or none of them (NetlinkError)."""
        batch, expected = element_batch(family, table, changes, self._seq)
        self._seq += expected + 2
        if not expected:
            return
        self._fit_buffers(len(batch), expected)
        self._sock.sendall(batch)
        seen, error = 0, 0
        while seen < expected and not error:
            got, error = parse_acks(self._sock.recv(65536))
            seen += got
        if error:
            self._drain()
            raise NetlinkError(f"nf_tables element batch failed: {os.strerror(-error)}", -error)

    def exists(self, family: str, table: str, chain: str | None = None) -> bool:
        """Whether the table (or a chain of it) exists: one GET by name, where `nft list` fetches the whole
        ruleset first (over a second at 10k services)."""
        seq = self._seq
        self._seq += 1
        self._sock.sendall(lookup_message(family, table, chain, seq))
        while (code := ack_of(self._sock.recv(65536), seq)) is None:
            pass
        if code == 0:
            return True
        if code == -errno.ENOENT:
            return False
        raise NetlinkError(f"nf_tables lookup of {table} {chain or ''} failed: {os.strerror(-code)}", -code)

    def _fit_buffers(self, size: int, acks: int) -> None:
        """nfnetlink takes a batch in one message, which the send buffer must hold (a full sync's elements at
        10k services are megabytes), and the receive buffer must hold its acks (each counted at its skb's
        size, ~1 KiB, whatever NETLINK_CAP_ACK saves) or the kernel drops them (ENOBUFS). As nft does, root
        raises them past net.core.[rw]mem_max."""
        for option, forced, need in ((socket.SO_SNDBUF, SO_SNDBUFFORCE, size),
                                     (socket.SO_RCVBUF, SO_RCVBUFFORCE, acks * ACK_TRUESIZE)):
            if need <= self._sock.getsockopt(socket.SOL_SOCKET, option) // 2:
                continue
            try:
                self._sock.setsockopt(socket.SOL_SOCKET, forced, need)
            except PermissionError:
                self._sock.setsockopt(socket.SOL_SOCKET, option, need)

    def _drain(self) -> None:
        """Drop the acks of an aborted batch that were not read, so they do not answer the next one."""
        while True:
            try:
                self._sock.recv(65536, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return

    def close(self) -> None:
        self._sock.close()
