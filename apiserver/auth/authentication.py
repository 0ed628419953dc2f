"""Who is asking: a client certificate the TLS layer verified against the cluster CA, or a bearer token
(the static `--token-auth-file`, then bootstrap tokens, then service account tokens: auth/service_accounts.py). As upstream's authenticators: certificate CN →
user name, O → groups; every authenticated user is also in group system:authenticated. Anonymous
requests are refused with 401 (no anonymous user), except for the health and CA-bundle paths."""
from __future__ import annotations

import csv
import io
import logging
import ssl
import time
from typing import TYPE_CHECKING, Any, Mapping

from aiohttp import web

from apiserver import errors
from apiserver.auth import bootstrap_tokens, service_accounts
from apiserver.auth.user import AUTHENTICATED, UserInfo

if TYPE_CHECKING:
    from apiserver.api import API

log = logging.getLogger(__name__)

# Answered without credentials: health probes, and the CA bundle a joining agent pins by its hash.
EXEMPT_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/cacerts"})
_CERT_CACHE_SIZE = 4096


def unauthorized(message: str = "Unauthorized") -> errors.APIError:
    return errors.APIError(401, "Unauthorized", message)


def with_authenticated(user: UserInfo) -> UserInfo:
    if AUTHENTICATED in user.groups:
        return user
    return UserInfo(user.name, (*user.groups, AUTHENTICATED), user.uid, user.extra)


def parse_token_file(text: str, path: str = "token file") -> dict[str, UserInfo]:
    """Upstream's static token CSV: `token,user,uid[,"group1,group2"]` per line (blank lines skipped).
    A line with fewer than 3 columns is an error; an empty token is skipped; a repeated token: last wins."""
    tokens: dict[str, UserInfo] = {}
    try:
        rows = list(csv.reader(io.StringIO(text), strict=True))
    except csv.Error as exc:
        raise ValueError(f"token file '{path}': {exc}") from None
    record = 0
    for row in rows:
        if not row:
            continue
        if len(row) < 3:
            raise ValueError(f"token file '{path}' must have at least 3 columns (token, user name, user uid), "
                             f"found {len(row)}")
        record += 1
        token, name, uid = row[0], row[1], row[2]
        if not token:
            log.warning("empty token in token file path=%s record=%d", path, record)
            continue
        if token in tokens:
            log.warning("duplicate token in token file path=%s record=%d", path, record)
        groups = tuple(row[3].split(",")) if len(row) >= 4 else ()
        tokens[token] = UserInfo(name, groups, uid)
    return tokens


def load_token_file(path: str) -> dict[str, UserInfo]:
    """The tokens of `--token-auth-file` (ValueError with the reason when unreadable or malformed)."""
    try:
        with open(path, encoding="utf-8", newline="") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read token file '{path}': {exc}") from None
    return parse_token_file(text, path)


def certificate_subject(peercert: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    """(CN, O's) of `ssl.SSLObject.getpeercert()`'s dict form: subject is a tuple of RDNs of (key, value)."""
    common_name = ""
    organizations: list[str] = []
    for rdn in peercert.get("subject") or ():
        for key, value in rdn:
            if key == "commonName" and not common_name:
                common_name = value
            elif key == "organizationName":
                organizations.append(value)
    return common_name, tuple(organizations)


def bearer_token(authorization: str) -> str:
    """The token of `Authorization: Bearer <token>` ("" for another scheme or an empty token)."""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return token.strip()


class Authenticator:
    def __init__(self, api: "API", static_tokens: Mapping[str, UserInfo] | None = None):
        self.api = api
        # In system:authenticated once, so that the requests of a token share one user (with_authenticated
        # built one per request, and the middleware's attributes cache kept one per entry).
        self.static_tokens = {token: with_authenticated(user) for token, user in (static_tokens or {}).items()}
        # (subject, notAfter) of a verified certificate → (user, expiry): one parse per certificate, not per request.
        self._certificates: dict[tuple[Any, str], tuple[UserInfo, float]] = {}

    def from_certificate(self, request: web.Request) -> UserInfo | None:
        """The user of the client certificate the TLS handshake verified against the cluster CA, if any."""
        transport = request.transport
        peercert = transport.get_extra_info("peercert") if transport is not None else None
        return self.certificate_user(peercert) if peercert else None

    async def from_token(self, request: web.Request) -> UserInfo:
        """The user of the bearer token, or a 401 APIError (C's clear message for an expired bootstrap token)."""
        token = bearer_token(request.headers.get("Authorization", ""))
        if token:
            try:
                found = await self.token_user(token)
            except service_accounts.InvalidToken as error:
                log.info("service account token refused path=%s reason=%s", request.path, error)
                raise unauthorized() from None
            if found is not None:
                return found[0]
        raise unauthorized()

    async def token_user(self, token: str, audiences: tuple[str, ...] = ()) -> tuple[UserInfo, tuple[str, ...]] | None:
        """(user, the audiences it is valid for) of a bearer token, None when no authenticator knows it; raises
        service_accounts.InvalidToken for a service account token that fails (expired, another audience, a
        deleted pod or account, another key) and a 401 APIError for an expired bootstrap token. Static and
        bootstrap tokens are audience-agnostic: valid for the API's audiences (upstream's
        WrapAudienceAgnosticToken)."""
        issuer = getattr(self.api, "token_issuer", None)
        api_audiences = issuer.audiences if issuer is not None else ()
        agnostic = tuple(a for a in audiences if a in api_audiences) if audiences else api_audiences
        user = self.static_tokens.get(token)
        if user is None and (not audiences or agnostic):
            user = await bootstrap_tokens.authenticate(self.api, token)
        if user is not None:
            if audiences and not agnostic:
                return None
            return with_authenticated(user), agnostic
        if issuer is None:
            return None
        found = await service_accounts.authenticate(
            token, issuer, service_accounts.registry_lookup(self.api.registries), self.api.clock(), audiences or None)
        return (found.user, found.audiences) if found is not None else None

    async def authenticate(self, request: web.Request) -> UserInfo:
        """The request's user (certificate first, then token), or a 401 APIError."""
        return self.from_certificate(request) or await self.from_token(request)

    def certificate_user(self, peercert: Mapping[str, Any]) -> UserInfo | None:
        key = (peercert.get("subject"), peercert.get("notAfter", ""))
        cached = self._certificates.get(key)
        if cached is None:
            common_name, organizations = certificate_subject(peercert)
            if not common_name:
                return None
            try:
                expires = float(ssl.cert_time_to_seconds(key[1])) if key[1] else float("inf")
            except ValueError:
                return None
            if len(self._certificates) >= _CERT_CACHE_SIZE:
                self._certificates.clear()
            cached = self._certificates[key] = (with_authenticated(UserInfo(common_name, organizations)), expires)
        user, expires = cached
        if time.time() >= expires:  # a keep-alive connection outliving its certificate
            return None
        return user
