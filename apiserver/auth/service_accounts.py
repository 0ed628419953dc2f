"""Service account tokens: their claims (as upstream's pkg/serviceaccount), who they authenticate, and
the checks a presented token must pass.

Two kinds of tokens, both RS256 JWTs signed with the key every server shares through the datastore
(`pki_bootstrap.load_or_create_service_account_key`):
- bound tokens (TokenRequest, `serviceaccounts/<name>/token`): `iss` = the first `--service-account-issuer`,
  `aud` (default: `--api-audiences`), `exp`/`iat`/`nbf`, `jti`, `sub` and the `kubernetes.io` claim naming the
  namespace, the ServiceAccount {name, uid} and what the token is bound to (pod, secret and/or node
  {name, uid}). Valid until `exp` (60 s leeway, as go-jose's) and only while the account and the bound object
  still exist with the same uid (a pod past its deletion grace invalidates its tokens);
- legacy tokens (the `token` of a Secret of type `kubernetes.io/service-account-token`): `iss`
  `kubernetes/serviceaccount`, no expiry; valid while the Secret exists and holds this token, and the account
  exists with the uid the token names. Audience-agnostic: accepted where the API's audiences are accepted.
The user is `system:serviceaccount:<ns>:<name>` (uid: the account's), groups `system:serviceaccounts`,
`system:serviceaccounts:<ns>` and `system:authenticated`, with upstream's `authentication.kubernetes.io/*`
extra values (pod name/uid, node name/uid, credential id).
"""
from __future__ import annotations

import base64
import binascii
import datetime
import hmac
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, Sequence

from cryptography.hazmat.primitives.asymmetric import rsa

from apiserver import errors
from apiserver.auth import jwt
from apiserver.auth.user import AUTHENTICATED, UserInfo

log = logging.getLogger(__name__)

Obj = dict[str, Any]
DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
LEGACY_ISSUER = "kubernetes/serviceaccount"
USER_PREFIX = "system:serviceaccount:"
ALL_GROUP = "system:serviceaccounts"
NAMESPACE_GROUP_PREFIX = "system:serviceaccounts:"
LEEWAY_SECONDS = 60  # go-jose's jwt.DefaultLeeway, which upstream's validator uses
# TokenRequest bounds (upstream's defaulting and ValidateTokenRequest).
DEFAULT_EXPIRATION_SECONDS = 3600
MIN_EXPIRATION_SECONDS = 600
MAX_EXPIRATION_SECONDS = 1 << 32
# What the ServiceAccount admission plugin asks for (upstream's WarnOnlyBoundTokenExpirationSeconds).
PROJECTED_EXPIRATION_SECONDS = 3607
SECRET_TYPE = "kubernetes.io/service-account-token"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_UID_ANNOTATION = "kubernetes.io/service-account.uid"
# UserInfo.extra keys (upstream's serviceaccount package).
POD_NAME_KEY = "authentication.kubernetes.io/pod-name"
POD_UID_KEY = "authentication.kubernetes.io/pod-uid"
NODE_NAME_KEY = "authentication.kubernetes.io/node-name"
NODE_UID_KEY = "authentication.kubernetes.io/node-uid"
CREDENTIAL_ID_KEY = "authentication.kubernetes.io/credential-id"


def username(namespace: str, name: str) -> str:
    return f"{USER_PREFIX}{namespace}:{name}"


def split_username(user: str) -> tuple[str, str] | None:
    """(namespace, name) of a `system:serviceaccount:<ns>:<name>` user name, else None."""
    if not user.startswith(USER_PREFIX):
        return None
    namespace, sep, name = user[len(USER_PREFIX):].partition(":")
    if not sep or not namespace or not name or ":" in name:
        return None
    return namespace, name


def groups(namespace: str) -> tuple[str, ...]:
    return (ALL_GROUP, NAMESPACE_GROUP_PREFIX + namespace, AUTHENTICATED)


def _meta(obj: Obj | None) -> Obj:
    return (obj or {}).get("metadata") or {}


def _ref(obj: Obj) -> dict[str, str]:
    return {"name": _meta(obj).get("name", ""), "uid": _meta(obj).get("uid", "")}


def bound_claims(now: datetime.datetime, issuer: str, audiences: Sequence[str], expiration_seconds: int,
                 service_account: Obj, pod: Obj | None = None, secret: Obj | None = None,
                 node: Obj | None = None, jti: str | None = None) -> Obj:
    """The claims of a TokenRequest's token (upstream's serviceaccount.Claims)."""
    issued = int(now.timestamp())
    private: Obj = {"namespace": _meta(service_account).get("namespace", ""),
                    "serviceaccount": _ref(service_account)}
    if pod is not None:
        private["pod"] = _ref(pod)
    if secret is not None:
        private["secret"] = _ref(secret)
    if node is not None:
        private["node"] = _ref(node)
    return {"iss": issuer, "sub": username(private["namespace"], private["serviceaccount"]["name"]),
            "aud": list(audiences), "iat": issued, "nbf": issued, "exp": issued + int(expiration_seconds),
            "jti": jti or str(uuid.uuid4()), "kubernetes.io": private}


def legacy_claims(service_account: Obj, secret: Obj) -> Obj:
    """The claims of a Secret-based token (upstream's LegacyClaims)."""
    namespace = _meta(service_account).get("namespace", "")
    name = _meta(service_account).get("name", "")
    return {"iss": LEGACY_ISSUER, "sub": username(namespace, name),
            "kubernetes.io/serviceaccount/namespace": namespace,
            "kubernetes.io/serviceaccount/secret.name": _meta(secret).get("name", ""),
            "kubernetes.io/serviceaccount/service-account.name": name,
            "kubernetes.io/serviceaccount/service-account.uid": _meta(service_account).get("uid", "")}


@dataclass(frozen=True)
class TokenIssuer:
    """The signing key and the issuer/audience settings of this server (`--service-account-issuer`,
    `--api-audiences`); every server on one datastore holds the same key."""
    key: jwt.SigningKey
    issuers: tuple[str, ...] = (DEFAULT_ISSUER,)
    api_audiences: tuple[str, ...] = ()
    jwks_uri: str = ""
    extra_public_keys: tuple[rsa.RSAPublicKey, ...] = ()
    _keys: dict[str, rsa.RSAPublicKey] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._keys[self.key.kid] = self.key.public_key
        for public_key in self.extra_public_keys:
            self._keys[jwt.key_id(public_key)] = public_key

    @property
    def issuer(self) -> str:
        """The issuer of new tokens (the first one; all are accepted)."""
        return self.issuers[0]

    @property
    def audiences(self) -> tuple[str, ...]:
        """The API's audiences: `--api-audiences`, else the issuers (as kube-apiserver defaults them)."""
        return self.api_audiences or self.issuers

    @property
    def public_keys(self) -> Mapping[str, rsa.RSAPublicKey]:
        return self._keys

    def sign(self, claims: Obj) -> str:
        return jwt.sign(claims, self.key)

    def jwks(self) -> Obj:
        return {"keys": [jwt.jwk(key) for key in self._keys.values()]}


class InvalidToken(Exception):
    """A token of ours that must not authenticate (the reason is logged, never sent but in TokenReview)."""


# (kind plural, namespace, name) → the stored object, or None when there is none.
Lookup = Callable[[str, str, str], Awaitable[Obj | None]]


def _claims_for(token: str, issuer: TokenIssuer) -> Obj | None:
    """The verified claims when the token is a JWT from one of our issuers; None when it is not ours at all
    (another authenticator may know it); InvalidToken when it claims to be ours but fails."""
    if not jwt.looks_like_jwt(token):
        return None
    try:
        iss = json.loads(jwt.b64url_decode(token.split(".")[1])).get("iss")
    except (jwt.TokenError, ValueError, AttributeError):
        return None
    if iss != LEGACY_ISSUER and iss not in issuer.issuers:
        return None
    try:
        return jwt.verify(token, issuer.public_keys)
    except jwt.TokenError as error:
        raise InvalidToken(str(error)) from None


def _time_problem(claims: Obj, now: float) -> str | None:
    for name in ("exp", "nbf", "iat"):
        value = claims.get(name)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            return f"malformed {name} claim"
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if exp is None:
        return "token has no expiry"
    if now > exp + LEEWAY_SECONDS:
        return "service account token has expired"
    if nbf is not None and now < nbf - LEEWAY_SECONDS:
        return "service account token is not valid yet"
    iat = claims.get("iat")
    if iat is not None and now < iat - LEEWAY_SECONDS:
        return "service account token issued in the future"
    return None


def _audiences(claims: Obj) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        return aud
    return []


@dataclass(frozen=True)
class Authenticated:
    user: UserInfo
    audiences: tuple[str, ...]  # the requested audiences the token is valid for


async def authenticate(token: str, issuer: TokenIssuer, lookup: Lookup, now: datetime.datetime,
                       audiences: Sequence[str] | None = None) -> Authenticated | None:
    """Who the token is (None: not a service account token of ours). `audiences`: what the caller accepts
    (default: the API's); the token must be meant for one of them. Raises InvalidToken for a token of ours
    that is expired, for another audience, forged, or whose account or bound object is gone."""
    claims = _claims_for(token, issuer)
    if claims is None:
        return None
    wanted = list(audiences) if audiences else list(issuer.audiences)
    if claims.get("iss") == LEGACY_ISSUER:
        return await _legacy(token, claims, wanted, issuer, lookup)
    problem = _time_problem(claims, now.timestamp())
    if problem:
        raise InvalidToken(problem)
    matched = [a for a in wanted if a in _audiences(claims)]
    if not matched:
        raise InvalidToken("token audiences do not match the audiences accepted here")
    private = claims.get("kubernetes.io")
    if not isinstance(private, dict):
        raise InvalidToken("token has no kubernetes.io claim")
    namespace = private.get("namespace")
    account = private.get("serviceaccount") or {}
    if not isinstance(namespace, str) or not namespace or not isinstance(account, dict) \
            or not isinstance(account.get("name"), str) or not account.get("name"):
        raise InvalidToken("token names no service account")
    if claims.get("sub") != username(namespace, account["name"]):
        raise InvalidToken("token subject does not match its service account")
    stored = await lookup("serviceaccounts", namespace, account["name"])
    if stored is None or _meta(stored).get("deletionTimestamp"):
        raise InvalidToken(f"service account {namespace}/{account['name']} has been deleted")
    if account.get("uid") and _meta(stored).get("uid") != account.get("uid"):
        raise InvalidToken(f"service account UID ({_meta(stored).get('uid')}) does not match claim "
                           f"({account.get('uid')})")
    extra: dict[str, tuple[str, ...]] = {}
    for kind, plural in (("pod", "pods"), ("secret", "secrets")):
        ref = private.get(kind)
        if ref is None:
            continue
        if not isinstance(ref, dict) or not ref.get("name"):
            raise InvalidToken(f"malformed {kind} claim")
        bound = await lookup(plural, namespace, ref["name"])
        if bound is None:
            raise InvalidToken(f"{kind} {namespace}/{ref['name']} the token is bound to has been deleted")
        if _meta(bound).get("uid") != ref.get("uid"):
            raise InvalidToken(f"{kind} UID ({_meta(bound).get('uid')}) does not match claim ({ref.get('uid')})")
        deleted_at = _meta(bound).get("deletionTimestamp")
        if deleted_at and _parse_time(deleted_at) <= now:
            raise InvalidToken(f"{kind} {namespace}/{ref['name']} the token is bound to has been deleted")
        if kind == "pod":
            extra[POD_NAME_KEY], extra[POD_UID_KEY] = (ref["name"],), (str(ref.get("uid", "")),)
    node = private.get("node")
    if isinstance(node, dict) and node.get("name"):
        extra[NODE_NAME_KEY] = (node["name"],)
        if node.get("uid"):
            extra[NODE_UID_KEY] = (str(node["uid"]),)
        if private.get("pod") is None and private.get("secret") is None:
            # Bound to the node itself: valid only while that node exists.
            bound = await lookup("nodes", "", node["name"])
            if bound is None or (node.get("uid") and _meta(bound).get("uid") != node.get("uid")):
                raise InvalidToken(f"node {node['name']} the token is bound to has been deleted")
    if isinstance(claims.get("jti"), str) and claims["jti"]:
        extra[CREDENTIAL_ID_KEY] = (f"JTI={claims['jti']}",)
    user = UserInfo(username(namespace, account["name"]), groups(namespace), str(_meta(stored).get("uid", "")),
                    extra)
    return Authenticated(user, tuple(matched))


async def _legacy(token: str, claims: Obj, wanted: list[str], issuer: TokenIssuer,
                  lookup: Lookup) -> Authenticated:
    matched = [a for a in wanted if a in issuer.audiences]  # audience-agnostic: valid for the API's audiences
    if not matched:
        raise InvalidToken("legacy token used for an audience other than the API's")
    namespace = claims.get("kubernetes.io/serviceaccount/namespace")
    secret_name = claims.get("kubernetes.io/serviceaccount/secret.name")
    name = claims.get("kubernetes.io/serviceaccount/service-account.name")
    uid = claims.get("kubernetes.io/serviceaccount/service-account.uid")
    if not all(isinstance(v, str) and v for v in (namespace, secret_name, name, uid)):
        raise InvalidToken("legacy token lacks its service account claims")
    if claims.get("sub") != username(namespace, name):
        raise InvalidToken("token subject does not match its service account")
    secret = await lookup("secrets", namespace, secret_name)
    if secret is None or _meta(secret).get("deletionTimestamp"):
        raise InvalidToken(f"secret {namespace}/{secret_name} of the legacy token has been deleted")
    stored_token = ((secret.get("data") or {}).get("token") or "")
    try:
        stored_bytes = base64.b64decode(stored_token, validate=True)
    except (binascii.Error, ValueError):
        stored_bytes = b""
    if not hmac.compare_digest(stored_bytes, token.encode()):
        raise InvalidToken(f"the token in secret {namespace}/{secret_name} is another one")
    stored = await lookup("serviceaccounts", namespace, name)
    if stored is None or _meta(stored).get("deletionTimestamp"):
        raise InvalidToken(f"service account {namespace}/{name} has been deleted")
    if _meta(stored).get("uid") != uid:
        raise InvalidToken(f"service account UID ({_meta(stored).get('uid')}) does not match claim ({uid})")
    extra = {CREDENTIAL_ID_KEY: (f"secret={_meta(secret).get('uid', '')}",)}
    return Authenticated(UserInfo(username(namespace, name), groups(namespace), uid, extra), tuple(matched))


def _parse_time(text: str) -> datetime.datetime:
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return datetime.datetime.max.replace(tzinfo=datetime.timezone.utc)


def registry_lookup(registries: Mapping[tuple[str, str], Any]) -> Lookup:
    """A Lookup over the API's registries (one storage read per object; the request path reads at most
    the account and the bound object)."""
    async def lookup(plural: str, namespace: str, name: str) -> Obj | None:
        try:
            return await registries[("", plural)].get(namespace, name)
        except errors.APIError as error:
            if error.code == 404:
                return None
            raise
    return lookup
