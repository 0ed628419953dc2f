"""Run `nft` (nftables' own tool): apply `nft -f` transactions, check and delete the proxy's table.

The rules are rendered elsewhere (agent.proxy.nft); this module only runs the tool, asynchronously,
optionally inside a network namespace (tests, benchmarks), as netns.iptables does for iptables.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import ctypes.util
import logging
import os
import re
import shutil
import threading
from collections.abc import Iterable

from netns.iptables import netns_prefix
from netns.nft_netlink import ElementChange, ElementSocket, NetlinkError

log = logging.getLogger(__name__)

NFT = "nft"
_CLONE_NEWNET = 0x40000000
_LOCATION = re.compile(r"^(?:/dev/stdin|-|<cmdline>):(\d+):", re.MULTILINE)


class NftError(RuntimeError):
    """`nft` failed; `line_number`/`line` point at the failing input line when nft names one."""

    def __init__(self, message: str, line_number: int | None = None, line: str | None = None):
        super().__init__(message)
        self.line_number = line_number
        self.line = line


def nft_available() -> bool:
    return shutil.which(NFT) is not None


async def _run(argv: tuple[str, ...], stdin: str | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


class _Libnftables:
    """libnftables (the library behind `nft`) called in-process through ctypes, on one worker thread that
    entered the network namespace once (setns moves only the calling thread): no fork, exec or nsenter per
    transaction, and the library's context lives across transactions."""

    def __init__(self, netns: str | None):
        name = ctypes.util.find_library("nftables") or "libnftables.so.1"
        lib = ctypes.CDLL(name, use_errno=True)
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        self._lib = lib
        self._netns = netns
        self._ctx = None
        self._elements: ElementSocket | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="nft",
                                                           initializer=self._enter)
        self._pool.submit(lambda: None).result()   # enter now: a missing netns fails here, not mid-sync

    def _enter(self) -> None:
        if self._netns:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            fd = os.open(f"/var/run/netns/{self._netns}", os.O_RDONLY)
            try:
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {self._netns}")
            finally:
                os.close(fd)
        self._ctx = self._lib.nft_ctx_new(0)
        self._lib.nft_ctx_buffer_output(self._ctx)
        self._lib.nft_ctx_buffer_error(self._ctx)
        try:
            self._elements = ElementSocket()   # created here: in the namespace entered above
        except OSError as error:
            log.info("netfilter netlink socket not usable (%s): element changes go through nft", error)

    def _run(self, text: str) -> tuple[int, str]:
        rc = self._lib.nft_run_cmd_from_buffer(self._ctx, text.encode())
        err = self._lib.nft_ctx_get_error_buffer(self._ctx) or b""
        return rc, err.decode(errors="replace")

    async def run(self, text: str) -> tuple[int, str]:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._run, text)

    @property
    def has_elements(self) -> bool:
        return self._elements is not None

    async def apply_elements(self, family: str, table: str, changes: Iterable[ElementChange]) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, self._elements.apply, family, table, changes)

    async def exists(self, family: str, table: str, chain: str | None = None) -> bool:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._elements.exists, family, table,
                                                                chain)


_LIB_LOCK = threading.Lock()


class Nft:
    """`nft` in the current or a named network namespace. Transactions go through libnftables in-process
    when the library loads (`in_process`), else through the `nft` command."""

    def __init__(self, netns: str | None = None, in_process: bool = True):
        self.netns = netns
        self._prefix = netns_prefix(netns)
        self._lib: _Libnftables | None = None
        if in_process:
            try:
                with _LIB_LOCK:
                    self._lib = _Libnftables(netns)
            except OSError as error:
                log.info("libnftables not usable in-process (%s): running the nft command", error)

    @property
    def in_process(self) -> bool:
        return self._lib is not None

    @property
    def elements_by_netlink(self) -> bool:
        return self._lib is not None and self._lib.has_elements

    async def apply(self, text: str) -> None:
        """One atomic transaction (all of `text` or nothing); raise NftError on failure."""
        if not text.strip():
            return
        if self._lib is not None:
            rc, err = await self._lib.run(text)
        else:
            rc, _, err = await _run((*self._prefix, NFT, "-f", "-"), text)
        if rc != 0:
            found = _LOCATION.search(err)
            number = int(found.group(1)) if found else None
            lines = text.splitlines()
            line = lines[number - 1] if number and 0 < number <= len(lines) else None
            raise NftError(f"nft -f failed: {err.strip()[:2000]}", number, line)

    async def apply_elements(self, family: str, table: str, changes: Iterable[ElementChange], text: str) -> None:
        """Element deletes and adds in one transaction, straight over netlink where the in-process worker
        has a socket (no cache fetch), else `text` (the same change as nft commands) through `apply`."""
        if not self.elements_by_netlink:
            await self.apply(text)
            return
        try:
            await self._lib.apply_elements(family, table, tuple(changes))
        except NetlinkError as error:
            raise NftError(str(error)) from error

    async def run(self, *args: str) -> str:
        rc, out, err = await _run((*self._prefix, NFT, *args))
        if rc != 0:
            raise NftError(f"nft {' '.join(args)}: {err.strip()[:2000]}")
        return out

    async def has_table(self, family: str, table: str) -> bool:
        """Whether the table exists. Over the in-process worker's netlink socket where there is one: `nft list`
        fetches the whole ruleset first, over a second at 10k services."""
        if self.elements_by_netlink:
            try:
                return await self._lib.exists(family, table)
            except (NetlinkError, OSError) as error:
                log.debug("netlink table lookup failed (%s): asking nft", error)
        return f"table {family} {table}" in (await self.run("list", "tables")).splitlines()

    async def has_chain(self, family: str, table: str, chain: str) -> bool:
        if self.elements_by_netlink:
            try:
                return await self._lib.exists(family, table, chain)
            except (NetlinkError, OSError) as error:
                log.debug("netlink chain lookup failed (%s): asking nft", error)
        rc, _, _ = await _run((*self._prefix, NFT, "list", "chain", family, table, chain))
        return rc == 0

    async def delete_table(self, family: str, table: str) -> bool:
        """Delete the table if it exists; True when one was deleted."""
        if not await self.has_table(family, table):
            return False
        await self.apply(f"delete table {family} {table}\n")
        return True
