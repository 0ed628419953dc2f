"""List chunking (`limit` and `continue`) as kube-apiserver: the continue token is opaque base64 of
{"v":"meta.k8s.io/v1","rv":<list revision>,"start":<next key, relative to the list's prefix>}.

Pages are read from the current store after the token's start key (our stores keep no old versions to
read at the first page's revision); the list keeps the first page's resourceVersion. A token whose revision
is older than the watch history's oldest is answered 410 Expired as upstream, with a token that continues
from the same key without a revision (an inconsistent remainder, as upstream offers it)."""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Mapping

from apiserver import errors

CONTINUE_VERSION = "meta.k8s.io/v1"
EXPIRED_MESSAGE = ("The provided continue parameter is too old to display a consistent list result. You can start "
                   "a new list without the continue parameter, or use the continue token in this response to "
                   "retrieve the remainder of the results. Continuing with the provided token results in an "
                   "inconsistent list - objects that were created, modified, or deleted between the time the "
                   "first chunk was returned and now may show up in the list.")


@dataclass(frozen=True)
class Continue:
    revision: int  # the first page's revision; -1: an inconsistent continuation (after 410)
    start: str  # the first key of the next page, relative to the list's prefix


def encode_continue(revision: int, start: str) -> str:
    raw = json.dumps({"v": CONTINUE_VERSION, "rv": revision, "start": start}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _invalid(detail: str) -> errors.APIError:
    return errors.bad_request(f"continue key is not valid: {detail}")


def decode_continue(token: str) -> Continue:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError):
        raise _invalid("illegal base64 data or JSON") from None
    if not isinstance(value, dict) or value.get("v") != CONTINUE_VERSION:
        raise _invalid(f"server does not recognize this encoded key version {value.get('v') if isinstance(value, dict) else value!r}")
    revision, start = value.get("rv"), value.get("start")
    if not isinstance(revision, int) or isinstance(revision, bool) or revision == 0 or revision < -1:
        raise _invalid("incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    if not isinstance(start, str) or not start or start.startswith("/") or ".." in start.split("/"):
        raise _invalid("encoded start key must be a relative key")
    return Continue(revision, start)


def parse_limit(query: Mapping[str, str]) -> int:
    """`limit` (0: everything); a value that is not an integer is a 400 as upstream's query decoding."""
    text = query.get("limit", "")
    if not text:
        return 0
    try:
        limit = int(text)
    except ValueError:
        raise errors.bad_request(f"limit: Invalid value: {text!r}: must be an integer") from None
    return max(limit, 0)


def check_expired(token: Continue, compacted_revision: int) -> None:
    if token.revision != -1 and token.revision < compacted_revision:
        raise errors.APIError(410, "Expired", EXPIRED_MESSAGE,
                              list_meta={"continue": encode_continue(-1, token.start)})


@dataclass(frozen=True)
class Page:
    items: list[Any]
    continue_token: str  # "" on the last page
    remaining: int  # items after this page


def page(keyed_items: list[tuple[str, Any]], limit: int, start: str, revision: int) -> Page:
    """One page of `keyed_items` (relative key, item; sorted by key) from key `start` on."""
    first = 0
    if start:
        first = next((index for index, (key, _) in enumerate(keyed_items) if key >= start), len(keyed_items))
    rest = keyed_items[first:]
    if not limit or len(rest) <= limit:
        return Page([item for _, item in rest], "", 0)
    chosen = rest[:limit]
    return Page([item for _, item in chosen], encode_continue(revision, chosen[-1][0] + "\x00"), len(rest) - limit)
