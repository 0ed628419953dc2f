"""shipmate.sd_notify: addresses, watchdog interval, messages, and datagrams to a real socket."""
from __future__ import annotations

import asyncio
import os
import socket

import pytest

from shipmate.sd_notify import Notifier, message, socket_address, watchdog_interval


def test_socket_address_path_and_abstract() -> None:
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@abc/def") == b"\0abc/def"
    assert socket_address("") is None and socket_address("relative") is None


def test_watchdog_interval_is_half_and_only_for_our_pid() -> None:
    assert watchdog_interval("30000000", None, 42) == 15.0
    assert watchdog_interval("30000000", "42", 42) == 15.0
    assert watchdog_interval("30000000", "43", 42) is None
    assert watchdog_interval(None, None, 42) is None
    assert watchdog_interval("0", None, 42) is None and watchdog_interval("x", None, 42) is None


def test_message_format() -> None:
    assert message(ready=1, status="node a registered") == b"READY=1\nSTATUS=node a registered"
    with pytest.raises(ValueError):
        message(status="two\nlines")


def test_without_socket_everything_is_a_no_op() -> None:
    notifier = Notifier.from_environment({})
    assert not notifier.enabled and notifier.watchdog_period is None
    assert notifier.ready() is False


def _listen_abstract() -> tuple[socket.socket, str]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"shipmate-test-{os.getpid()}-{id(sock)}"
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2)
    return sock, "@" + name


def test_datagrams_reach_an_abstract_socket() -> None:
    sock, address = _listen_abstract()
    with sock:
        notifier = Notifier.from_environment({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"})
        assert notifier.watchdog_period == 0.1
        assert notifier.ready("up")
        assert sock.recv(4096) == b"READY=1\nSTATUS=up"


async def test_watchdog_task_sends_keepalives() -> None:
    sock, address = _listen_abstract()
    with sock:
        notifier = Notifier.from_environment({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "100000"})
        task = asyncio.create_task(notifier.run_watchdog())
        await asyncio.sleep(0.23)
        task.cancel()
        sock.setblocking(False)
        received = []
        while True:
            try:
                received.append(sock.recv(64))
            except BlockingIOError:
                break
        assert received.count(b"WATCHDOG=1") >= 4


async def test_watchdog_task_without_watchdog_never_returns() -> None:
    task = asyncio.create_task(Notifier(None, None).run_watchdog())
    await asyncio.sleep(0.05)
    assert not task.done()
    task.cancel()


def test_missing_receiver_is_not_an_error() -> None:
    assert Notifier("/nonexistent/notify", None).notify(ready=1) is False
