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


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:                 # orjson.JSONEncodeError: e.g. an int over 64 bits
        return _STDLIB.encode(value).encode()


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def dumps_line(value: Any) -> bytes:
    """One JSON document and a newline (a watch stream's frame; Go's json.Encoder ends with one)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        return _STDLIB.encode(value).encode() + b"\n"
