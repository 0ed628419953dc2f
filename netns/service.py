"""CNIService: the agent's side of the CNI socket. Each request runs `cni_ops.handle` in a thread."""
from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from netns import cni_ops
from netns.cni_codes import ERR_DECODING_FAILURE
from netns.cni_spec import DEFAULT_IPAM_DIR, DEFAULT_SOCKET_PATH, CNIError, CNIReply
from netns.cni_wire import MAX_MESSAGE_BYTES, decode_request, encode_reply
from shipmate.supervisor import cancel_on_signals

log = logging.getLogger(__name__)

# Netlink work of concurrent pod starts runs in parallel up to this; more requests queue.
CNI_WORKER_THREADS = 8
# How long an ADD/DEL waits for `on_change` (the agent programming hostPorts) before answering.
ON_CHANGE_TIMEOUT = 5.0


class CNIService:
    """`on_change`, when given, is awaited after every successful ADD and DEL (the agent applies the
    hostPorts recorded by it before the runtime starts the pod's containers)."""

    def __init__(self, state_dir: str = DEFAULT_IPAM_DIR,
                 on_change: Callable[[], Awaitable[None]] | None = None) -> None:
        self.state_dir = state_dir
        self.on_change = on_change
        self._executor: ThreadPoolExecutor | None = None

    async def serve(self, socket_path: str = DEFAULT_SOCKET_PATH) -> None:
        """Serves until cancelled; the socket file is root-only and removed on the way out."""
        os.makedirs(os.path.dirname(socket_path), mode=0o755, exist_ok=True)
        try:
            os.unlink(socket_path)  # a stale socket of a killed agent
        except FileNotFoundError:
            pass
        # Not the loop's default executor: other blocking agent work (a long iptables-restore)
        # must not delay pod network setup.
        self._executor = ThreadPoolExecutor(max_workers=CNI_WORKER_THREADS, thread_name_prefix="cni")
        server = await asyncio.start_unix_server(self._serve_connection, path=socket_path,
                                                 limit=MAX_MESSAGE_BYTES)
        os.chmod(socket_path, 0o600)
        log.info("cni service listening socket=%s ipam_dir=%s", socket_path, self.state_dir)
        try:
            async with server:
                await server.serve_forever()
        finally:
            self._executor.shutdown(wait=False)
            try:
                os.unlink(socket_path)
            except FileNotFoundError:
                pass

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            data = b""
            while chunk := await reader.read(65536):  # until the plugin's SHUT_WR
                data += chunk
                if len(data) > MAX_MESSAGE_BYTES:
                    break
            reply = await self._execute(data)
            writer.write(encode_reply(reply.exit_code, reply.stdout))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError) as e:
            log.warning("cni client went away error=%s", e)
        finally:
            writer.close()

    async def _execute(self, data: bytes) -> CNIReply:
        if len(data) > MAX_MESSAGE_BYTES:
            error = CNIError(ERR_DECODING_FAILURE, f"request larger than {MAX_MESSAGE_BYTES} bytes")
            return CNIReply(1, json.dumps(error.to_json("1.0.0")))
        try:
            env, stdin = decode_request(data)
        except ValueError as e:
            error = CNIError(ERR_DECODING_FAILURE, "malformed request on the CNI socket", str(e))
            return CNIReply(1, json.dumps(error.to_json("1.0.0")))
        work = functools.partial(cni_ops.handle, env, stdin, ipam_dir=self.state_dir)
        reply = await asyncio.get_running_loop().run_in_executor(self._executor, work)
        if reply.exit_code == 0 and self.on_change is not None and env.get("CNI_COMMAND") in ("ADD", "DEL"):
            try:
                await asyncio.wait_for(self.on_change(), ON_CHANGE_TIMEOUT)
            except Exception as error:  # noqa: BLE001 - the periodic resync retries; the pod still starts
                log.warning("cni change hook failed command=%s error=%r", env.get("CNI_COMMAND"), error)
        return reply


def main(argv: list[str] | None = None) -> int:
    """Runs the service alone, e.g. inside a simulated node's netns in tests."""
    parser = argparse.ArgumentParser(prog="python -m netns.service")
    parser.add_argument("--socket", default=DEFAULT_SOCKET_PATH)
    parser.add_argument("--state-dir", default=DEFAULT_IPAM_DIR)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(_serve_until_signalled(CNIService(args.state_dir), args.socket))
    return 0


async def _serve_until_signalled(service: CNIService, socket_path: str) -> None:
    cancel_on_signals()
    try:
        await service.serve(socket_path)
    except asyncio.CancelledError:
        log.info("cni service stopped socket=%s", socket_path)


if __name__ == "__main__":
    raise SystemExit(main())
