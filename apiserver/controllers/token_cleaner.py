"""Deletes expired bootstrap-token Secrets (kube-controller-manager's tokencleaner).

Unlike upstream, which deletes a token the moment it expires, an expired token is kept for
EXPIRED_TOKEN_RETENTION first: while its Secret exists, an agent still presenting it is told that this
token expired and when (issue 6: "an expired join token: refused with a clear message"); a deleted one
would be indistinguishable from a token that never existed. Expired tokens never authenticate."""
from __future__ import annotations

import asyncio
import datetime
import logging

from apiserver import errors
from apiserver.api import API
from apiserver.kinds.base import Obj
from apiserver.registry import DeleteOptions
from shipmate import bootstrap_token
from shipmate.selectors import parse_field_selector

log = logging.getLogger(__name__)

EXPIRED_TOKEN_RETENTION = datetime.timedelta(hours=1)
SWEEP_INTERVAL = 30.0
_TOKENS = parse_field_selector(f"type={bootstrap_token.SECRET_TYPE}")


def due_for_deletion(secrets: list[Obj], now: datetime.datetime,
                     retention: datetime.timedelta = EXPIRED_TOKEN_RETENTION) -> list[Obj]:
    """The bootstrap-token Secrets expired more than `retention` ago (an unparseable expiration counts as
    expired, as upstream, and goes at once)."""
    due = []
    for secret in secrets:
        stored = bootstrap_token.stored_token(secret)
        if not stored.expired(now):
            continue
        expires = stored.expires
        if expires is None or now - expires >= retention:
            due.append(secret)
    return due


async def sweep_tokens(api: API) -> int:
    registry = api.registry("", "secrets")
    secrets, _ = await registry.list(bootstrap_token.NAMESPACE, fields=_TOKENS)
    removed = 0
    for secret in due_for_deletion(secrets, api.clock()):
        meta = secret["metadata"]
        try:  # the UID precondition: never delete a token re-created under the same name meanwhile
            await api.delete(registry, meta["namespace"], meta["name"], DeleteOptions(precondition_uid=meta["uid"]))
        except errors.APIError as exc:
            if exc.code not in (404, 409):
                raise
            continue
        removed += 1
        log.info("deleted expired bootstrap token secret=%s expiration=%s", meta["name"],
                 bootstrap_token.stored_token(secret).expiration_text)
    return removed


async def run_token_cleaner(api: API, interval: float = SWEEP_INTERVAL) -> None:
    backoff = interval
    while True:
        try:
            await sweep_tokens(api)
            backoff = interval
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - retried on the next sweep
            log.exception("bootstrap token sweep failed retry_in=%.0fs", backoff)
            backoff = min(backoff * 2, 600.0)
        await asyncio.sleep(backoff)
