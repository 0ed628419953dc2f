"""`shipmate agent`: parse flags, set up logging, run the agent until a root task fails or a signal."""
from __future__ import annotations

import asyncio
import logging
import sys

from agent.config import AgentConfig, parse_args
from shipmate.supervisor import cancel_on_signals


def _configure_logging(level: int) -> None:
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


async def _run(config: AgentConfig) -> int:
    from agent.bootstrap import BootstrapError
    from agent.kubelet import Agent
    cancel_on_signals()
    try:
        return await Agent(config).run()
    except BootstrapError as error:
        logging.getLogger("agent").error("cannot get credentials node=%s: %s", config.node_name, error)
        return 1
    except asyncio.CancelledError:
        logging.getLogger("agent").info("agent stopping on signal node=%s", config.node_name)
        return 0


async def _cleanup_iptables() -> int:
    from agent.proxy.proxier import cleanup_iptables, cleanup_nftables
    for item in [*await cleanup_iptables(), *await cleanup_nftables()]:
        logging.getLogger("agent").info("removed %s", item)
    return 0


def main(argv: list[str]) -> int:
    config = parse_args(argv)
    _configure_logging(config.log_level)
    if config.cleanup_iptables:
        return asyncio.run(_cleanup_iptables())
    return asyncio.run(_run(config))
