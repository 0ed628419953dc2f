"""IPAM store: one file per allocated address under `<state dir>/<network>/`.

The files are the whole state, so allocations survive restarts of the agent and the node. Every
mutation holds an exclusive `flock` on `<network>/lock`, which serializes the agent's threads and
any plugin processes running the in-process fallback at the same time.
"""
from __future__ import annotations

import fcntl
import ipaddress
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

log = logging.getLogger(__name__)

LOCK_FILE = "lock"
LAST_RESERVED_FILE = "last_reserved_ip"


@dataclass(frozen=True)
class Owner:
    container_id: str
    ifname: str


def pick_address(subnet: ipaddress.IPv4Network, gateway: ipaddress.IPv4Address,
                 taken: set[ipaddress.IPv4Address],
                 last_reserved: ipaddress.IPv4Address | None) -> ipaddress.IPv4Address | None:
    """First free host address after `last_reserved`, wrapping around; None when the subnet is full.

    Handing out addresses round-robin delays reuse of a just-released IP, so stale connections
    and ARP entries of a deleted pod do not hit its successor.
    """
    first = int(subnet.network_address) + 1
    last = int(subnet.broadcast_address) - 1
    size = last - first + 1
    start = first
    if last_reserved is not None and first <= int(last_reserved) <= last:
        start = int(last_reserved) + 1
    for step in range(size):
        candidate = ipaddress.IPv4Address(first + (start - first + step) % size)
        if candidate != gateway and candidate not in taken:
            return candidate
    return None


def encode_owner(owner: Owner) -> str:
    return f"{owner.container_id}\n{owner.ifname}\n"


def decode_owner(text: str) -> Owner | None:
    lines = text.splitlines()
    if len(lines) < 2 or not lines[0]:
        return None
    return Owner(container_id=lines[0], ifname=lines[1])


class IPAMExhausted(Exception):
    pass


class IPAMStore:
    def __init__(self, state_dir: str, network: str) -> None:
        self.directory = os.path.join(state_dir, network)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(self.directory, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the flock

    def _read_allocations(self) -> dict[ipaddress.IPv4Address, Owner | None]:
        allocations: dict[ipaddress.IPv4Address, Owner | None] = {}
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return allocations
        for name in names:
            try:
                address = ipaddress.IPv4Address(name)
            except ValueError:
                continue  # lock, last_reserved_ip, temp files
            try:
                with open(os.path.join(self.directory, name), encoding="utf-8") as f:
                    allocations[address] = decode_owner(f.read())
            except FileNotFoundError:
                continue
        return allocations

    def _read_last_reserved(self) -> ipaddress.IPv4Address | None:
        try:
            with open(os.path.join(self.directory, LAST_RESERVED_FILE), encoding="utf-8") as f:
                return ipaddress.IPv4Address(f.read().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _write_file(self, name: str, content: str) -> None:
        temp = os.path.join(self.directory, f".{name}.tmp")
        with open(temp, "w", encoding="utf-8") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, os.path.join(self.directory, name))

    def allocations(self) -> dict[ipaddress.IPv4Address, Owner | None]:
        with self._locked():
            return self._read_allocations()

    def lookup(self, container_id: str, ifname: str) -> ipaddress.IPv4Address | None:
        owner = Owner(container_id, ifname)
        for address, holder in self.allocations().items():
            if holder == owner:
                return address
        return None

    def allocate(self, container_id: str, ifname: str, subnet: ipaddress.IPv4Network,
                 gateway: ipaddress.IPv4Address) -> ipaddress.IPv4Address:
        """Reserves an address for (container, ifname); a repeated ADD gets the same address back."""
        owner = Owner(container_id, ifname)
        with self._locked():
            allocations = self._read_allocations()
            for address, holder in allocations.items():
                if holder == owner and address in subnet:
                    return address
            address = pick_address(subnet, gateway, set(allocations), self._read_last_reserved())
            if address is None:
                raise IPAMExhausted(f"no free address left in {subnet} ({len(allocations)} allocated)")
            self._write_file(str(address), encode_owner(owner))
            self._write_file(LAST_RESERVED_FILE, f"{address}\n")
        log.info("ipam allocated ip=%s container=%s ifname=%s", address, container_id, ifname)
        return address

    def release(self, container_id: str, ifname: str) -> list[ipaddress.IPv4Address]:
        """Frees every address held by (container, ifname); releasing nothing is not an error."""
        owner = Owner(container_id, ifname)
        released: list[ipaddress.IPv4Address] = []
        with self._locked():
            for address, holder in self._read_allocations().items():
                if holder == owner:
                    try:
                        os.unlink(os.path.join(self.directory, str(address)))
                    except FileNotFoundError:
                        continue
                    released.append(address)
        for address in released:
            log.info("ipam released ip=%s container=%s ifname=%s", address, container_id, ifname)
        return released
