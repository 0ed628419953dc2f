"""The plugin ⇄ agent protocol on the CNI unix socket.

Imports nothing: the plugin's fast path pays for every module it loads (json, socket and
dataclasses alone would triple its start-up time), so the framing is plain bytes.

One request per connection. The plugin sends `<header length>\\n<header><network config>` where the
header is its CNI_* environment as NUL-separated `KEY=VALUE` entries, then shuts down its write
side. The agent answers `<exit code>\\n<stdout>` and closes: exactly what the plugin would have
exited with and printed, had it done the work itself.
"""
from __future__ import annotations

MAX_MESSAGE_BYTES = 4 << 20


def encode_request(env: dict[str, str], stdin: bytes) -> bytes:
    header = "\0".join(f"{k}={v}" for k, v in env.items() if k.startswith("CNI_")).encode()
    return b"%d\n" % len(header) + header + stdin


def decode_request(data: bytes) -> tuple[dict[str, str], str]:
    """Raises ValueError for anything malformed (including a config that is not UTF-8)."""
    length_text, newline, rest = data.partition(b"\n")
    if not newline or not length_text.isdigit() or int(length_text) > len(rest):
        raise ValueError("bad request framing")
    header, stdin = rest[:int(length_text)], rest[int(length_text):]
    env: dict[str, str] = {}
    for entry in filter(None, header.decode("utf-8").split("\0")):
        key, sep, value = entry.partition("=")
        if not sep or not key.startswith("CNI_"):
            raise ValueError(f"bad environment entry {entry!r}")
        env[key] = value
    return env, stdin.decode("utf-8")


def encode_reply(exit_code: int, stdout: str) -> bytes:
    return b"%d\n" % exit_code + stdout.encode("utf-8")


def decode_reply(data: bytes) -> tuple[int, str]:
    code_text, newline, stdout = data.partition(b"\n")
    if not newline or not code_text.isdigit():
        raise ValueError("bad reply framing")
    return int(code_text), stdout.decode("utf-8")
