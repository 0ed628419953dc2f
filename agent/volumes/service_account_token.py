"""Service account tokens of projected volumes (`serviceAccountToken` sources), as kubelet's token manager.

The agent asks `serviceaccounts/<account>/token` with its node credentials for a token bound to the pod
(`boundObjectRef` Pod name + uid: the only kind NodeRestriction lets a node ask for), with the source's
audience (none: the API's) and expirationSeconds (default 3600, at least 600). A token is reused until 80 %
of its lifetime has passed or it is 24 h old, then requested again; the volume manager's periodic refresh
writes the new one atomically (atomic_writer.py). Tokens are kept per pod and forgotten with it.
"""
from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from typing import Any, Callable

from shipmate.kubeclient import KubeClient
from shipmate.timeutil import parse_rfc3339

from agent.volumes.errors import VolumeError

log = logging.getLogger(__name__)

Obj = dict[str, Any]
DEFAULT_EXPIRATION_SECONDS = 3600
MIN_EXPIRATION_SECONDS = 600
REFRESH_FRACTION = 0.8          # kubelet refreshes once 80 % of the token's lifetime has passed
MAX_TOKEN_AGE = datetime.timedelta(hours=24)


@dataclass(frozen=True)
class CachedToken:
    token: str
    issued: datetime.datetime
    expires: datetime.datetime


def requires_refresh(cached: CachedToken, now: datetime.datetime) -> bool:
    """Past 80 % of its lifetime, older than 24 h, or expired."""
    if now >= cached.expires or now - cached.issued >= MAX_TOKEN_AGE:
        return True
    return now >= cached.issued + (cached.expires - cached.issued) * REFRESH_FRACTION


def token_request(pod: Obj, projection: Obj) -> Obj:
    meta = pod.get("metadata") or {}
    expiration = projection.get("expirationSeconds") or DEFAULT_EXPIRATION_SECONDS
    audience = projection.get("audience") or ""
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"audiences": [audience] if audience else [], "expirationSeconds": int(expiration),
                     "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta.get("name", ""),
                                        "uid": meta.get("uid", "")}}}


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class TokenManager:
    def __init__(self, client: KubeClient, clock: Callable[[], datetime.datetime] = _now):
        self.client = client
        self.clock = clock
        self._tokens: dict[tuple[str, str, str, str, int], CachedToken] = {}

    @staticmethod
    def _key(pod: Obj, projection: Obj) -> tuple[str, str, str, str, int]:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        return (meta.get("uid", ""), meta.get("namespace", ""), spec.get("serviceAccountName") or "default",
                projection.get("audience") or "", int(projection.get("expirationSeconds") or DEFAULT_EXPIRATION_SECONDS))

    async def token(self, pod: Obj, projection: Obj) -> str:
        """The pod's current token for this projection (requested when missing or due for refresh). When a
        refresh fails, the old token is kept while it is still valid (as kubelet)."""
        key = self._key(pod, projection)
        cached = self._tokens.get(key)
        now = self.clock()
        if cached is not None and not requires_refresh(cached, now):
            return cached.token
        if key[4] < MIN_EXPIRATION_SECONDS:
            raise VolumeError(f"serviceAccountToken expirationSeconds must be at least {MIN_EXPIRATION_SECONDS}")
        path = f"/api/v1/namespaces/{key[1]}/serviceaccounts/{key[2]}/token"
        try:
            answer = await self.client.request("POST", path, body=token_request(pod, projection))
            status = answer.get("status") or {}
            token, expires = status.get("token"), parse_rfc3339(status.get("expirationTimestamp") or "")
            if not token or expires is None:
                raise VolumeError("the TokenRequest answer has no token")
        except Exception as error:
            if cached is not None and now < cached.expires:
                log.warning("token refresh failed, keeping the current one pod=%s/%s account=%s error=%s", key[1],
                            (pod.get("metadata") or {}).get("name"), key[2], error)
                return cached.token
            raise VolumeError(f'failed to fetch token: {error}') from None
        # The lifetime granted: what we asked for, ending at the expiry the server answered (never in our future).
        issued = min(expires - datetime.timedelta(seconds=key[4]), now)
        self._tokens[key] = CachedToken(token, issued, expires)
        log.info("service account token %s pod=%s/%s account=%s expires=%s", "refreshed" if cached else "fetched",
                 key[1], (pod.get("metadata") or {}).get("name"), key[2], status.get("expirationTimestamp"))
        return token

    def forget(self, pod_uid: str) -> None:
        for key in [k for k in self._tokens if k[0] == pod_uid]:
            del self._tokens[key]
