"""systemd's sd_notify protocol, stdlib only: READY/STATUS/STOPPING/WATCHDOG datagrams to $NOTIFY_SOCKET.

Both daemons run as `Type=notify` units. A datagram is `KEY=VALUE` lines; the socket is a path or,
when it starts with `@`, an abstract socket. `$WATCHDOG_USEC` (with `$WATCHDOG_PID`, when set,
naming us) asks for `WATCHDOG=1` more often than that interval: we send at half of it, from a task on
the daemon's event loop, so a blocked loop stops the keep-alives and systemd restarts the daemon.

Sending never blocks (a full receive queue drops the message) and never raises: outside systemd
every call is a no-op.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass

log = logging.getLogger(__name__)

NOTIFY_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def socket_address(value: str) -> str | bytes | None:
    """$NOTIFY_SOCKET → an AF_UNIX address: `@name` is the abstract socket `\\0name`."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None


def watchdog_interval(usec: str | None, pid: str | None, own_pid: int) -> float | None:
    """The keep-alive period in seconds (half of $WATCHDOG_USEC), or None when no watchdog is asked
    of this process."""
    if not usec:
        return None
    if pid and pid.strip() != str(own_pid):
        return None
    try:
        timeout = int(usec)
    except ValueError:
        return None
    if timeout <= 0:
        return None
    return timeout / 2 / 1_000_000


def message(**fields: str | int) -> bytes:
    """`ready=1, status="x"` → b"READY=1\\nSTATUS=x"."""
    lines = []
    for key, value in fields.items():
        text = str(value)
        if "\n" in text:
            raise ValueError(f"sd_notify field {key} must be one line")
        lines.append(f"{key.upper()}={text}")
    return "\n".join(lines).encode()


@dataclass
class Notifier:
    address: str | bytes | None
    watchdog_period: float | None

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None, unset: bool = True) -> "Notifier":
        """Reads $NOTIFY_SOCKET/$WATCHDOG_USEC/$WATCHDOG_PID; with `unset` removes them from
        os.environ so processes we start do not talk to our service manager in our name."""
        env = os.environ if environ is None else environ
        address = socket_address(env.get("NOTIFY_SOCKET", ""))
        period = watchdog_interval(env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID"), os.getpid())
        if unset and environ is None:
            for name in NOTIFY_ENV:
                os.environ.pop(name, None)
        return cls(address, period if address is not None else None)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, **fields: str | int) -> bool:
        """Sends one datagram; False when there is no socket or it could not be sent."""
        if self.address is None:
            return False
        payload = message(**fields)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)
                sock.sendto(payload, self.address)
        except OSError as error:
            log.warning("sd_notify failed address=%r error=%s", self.address, error)
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.notify(ready=1, status=status) if status else self.notify(ready=1)

    def status(self, text: str) -> bool:
        return self.notify(status=text)

    def stopping(self) -> bool:
        return self.notify(stopping=1)

    async def run_watchdog(self) -> None:
        """A root task: WATCHDOG=1 every half interval; without a watchdog it just waits (never
        returns, so a supervisor waiting on the first finished task is not fooled)."""
        if self.watchdog_period is None:
            await asyncio.Event().wait()
            return
        log.info("systemd watchdog keep-alives every %.1fs", self.watchdog_period)
        while True:
            self.notify(watchdog=1)
            await asyncio.sleep(self.watchdog_period)
