"""The daemons' event loop: uvloop where it serves, asyncio's own otherwise.

uvloop's loop runs the API server's HTTP and TLS work at a lower CPU cost per request (measured in
bench/datastore.py and bench/exit_to_status.py). Only the loop this runs is uvloop's: the global
policy stays asyncio's, because code that makes its own loops needs asyncio's (pyroute2's
netlink sockets, which uvloop cannot open: "invalid family 16").
"""
from __future__ import annotations

import asyncio
import os
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")

ENV = "SHIPMATE_EVENT_LOOP"          # "asyncio" turns uvloop off (e.g. to compare)


def run(main: Coroutine[Any, Any, T]) -> T:
    if os.environ.get(ENV, "uvloop") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(main)
    return asyncio.run(main)
