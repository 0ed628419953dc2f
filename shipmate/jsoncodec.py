"""Compact JSON for the hot paths (API responses, watch events, stored objects).

orjson writes the same compact JSON as `json.dumps(separators=(",", ":"))` at a fraction of the CPU
(non-ASCII characters as UTF-8 rather than \\u escapes, as Go's encoding/json). What it refuses —
integers beyond 64 bits, which Python's json keeps exact — goes through the standard library instead.
`loads` reads such integers as floats, as Go's decoding of untyped JSON does (typed fields never hold them:
validation refuses them before they are stored).
"""
from __future__ import annotations

import json
from typing import Any

import orjson

_STDLIB = json.JSONEncoder(separators=(",", ":"))   # json.dumps with arguments builds an encoder per call
ORJSON_MIN_BUFFER = 8192      # what orjson's bytes hold at least, however short the JSON (measured: 3.13)


def dumps(value: Any, kept: bool = False) -> bytes:
    """`kept`: the bytes outlive the request (a stored object, held by the watch history): orjson's bytes hold
    the buffer it wrote into, 8 KiB at least, so they are copied to their own size (10k stored pods held
    ~60 MiB more without the copy)."""
    try:
        out = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:                 # orjson.JSONEncodeError: e.g. an int over 64 bits
        return _STDLIB.encode(value).encode()
    return memoryview(out).tobytes() if kept else out


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def dumps_line(value: Any) -> bytes:
    """One JSON document and a newline (a watch stream's frame; Go's json.Encoder ends with one). Frames can
    wait in a slow watcher's send buffer: a small one is copied to its own size, as `kept`."""
    try:
        out = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        return _STDLIB.encode(value).encode() + b"\n"
    return memoryview(out).tobytes() if len(out) < ORJSON_MIN_BUFFER else out
