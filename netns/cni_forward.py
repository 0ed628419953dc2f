"""Entry point of the installed `shipmate-cni` / `loopback` executables.

The launcher written by `netns.install` runs this under `python -I -S`: no site-packages. On the
fast path (agent up) only `os`, `sys` and the `_socket` C module load; the request goes to the
agent's CNIService over its unix socket. Only when no agent listens there is the work done in
this process (importing pyroute2), so DEL still works while the agent is down.
"""
from __future__ import annotations

import os
import sys

# The C module, not `socket`: that one pulls in enum and selectors, several times the rest of
# this program's start-up.
import _socket

from netns.cni_codes import ERR_INTERNAL, ERR_TRY_AGAIN_LATER
from netns.cni_wire import MAX_MESSAGE_BYTES, decode_reply, encode_request

AGENT_REPLY_TIMEOUT_SECONDS = 120.0


class AgentUnavailable(Exception):
    """Nobody listens on the socket: the caller falls back to working in-process."""


class AgentFailed(Exception):
    """The agent took the request but gave no answer."""


def forward(socket_path: str, env: dict[str, str], stdin: bytes) -> tuple[int, str]:
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(AGENT_REPLY_TIMEOUT_SECONDS)
        try:
            sock.connect(socket_path)
        except (FileNotFoundError, ConnectionRefusedError) as e:
            raise AgentUnavailable(str(e)) from None
        try:
            sock.sendall(encode_request(env, stdin))
            sock.shutdown(_socket.SHUT_WR)
            chunks: list[bytes] = []
            size = 0
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_MESSAGE_BYTES:
                    raise ValueError("reply too large")
            return decode_reply(b"".join(chunks))
        except (OSError, ValueError) as e:
            raise AgentFailed(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__) from None
    finally:
        sock.close()


def run_in_process(env: dict[str, str], stdin: bytes) -> tuple[int, str]:
    import logging
    import site

    site.main()  # the launcher ran with -S: make the venv's site-packages (pyroute2) importable
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="shipmate-cni %(levelname)s %(name)s: %(message)s")
    from netns.cni_ops import handle

    reply = handle(env, stdin)
    return reply.exit_code, reply.stdout


def error_reply(stdin: bytes, code: int, msg: str, details: str) -> tuple[int, str]:
    """The spec's error JSON, built here because the failure left nobody else to do it."""
    import json

    try:
        version = json.loads(stdin).get("cniVersion") or "1.0.0"
    except (ValueError, AttributeError):
        version = "1.0.0"
    return 1, json.dumps({"cniVersion": version, "code": code, "msg": msg, "details": details})


def execute(env: dict[str, str], stdin: bytes, socket_path: str) -> tuple[int, str]:
    try:
        return forward(socket_path, env, stdin)
    except AgentUnavailable:
        pass
    except AgentFailed as e:
        # It may have done part of the work: the runtime retries (ADD and DEL are idempotent).
        return error_reply(stdin, ERR_TRY_AGAIN_LATER,
                           f"shipmate agent at {socket_path} did not answer", str(e))
    try:
        return run_in_process(env, stdin)
    except Exception as e:  # e.g. pyroute2 missing: still answer in the spec's format
        return error_reply(stdin, ERR_INTERNAL, "shipmate-cni failed without an agent",
                           f"{type(e).__name__}: {e}")


def main(socket_path: str) -> int:
    env = {k: v for k, v in os.environ.items() if k.startswith("CNI_")}
    exit_code, stdout = execute(env, sys.stdin.buffer.read(), socket_path)
    if stdout:
        sys.stdout.write(stdout + "\n")
    sys.stdout.flush()
    return exit_code
