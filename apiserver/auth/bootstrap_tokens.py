"""Bearer bootstrap tokens (`<id>.<secret>`): the identity of an agent joining the cluster.

As upstream's bootstrap token authenticator: the token is valid while the Secret kube-system/
bootstrap-token-<id> (type bootstrap.kubernetes.io/token) holds the same id and secret, is marked
usage-bootstrap-authentication=true and has not expired. The user is system:bootstrap:<id> in group
system:bootstrappers plus the Secret's auth-extra-groups. Unlike upstream, which answers an expired token
with a bare 401, the 401 says which token expired and when, so an operator knows to make a new one.
"""
from __future__ import annotations

import datetime
import hmac
import logging
from typing import TYPE_CHECKING, Any

from apiserver import errors
from apiserver.auth.user import UserInfo
from shipmate import bootstrap_token
from shipmate.bootstrap_token import StoredToken

if TYPE_CHECKING:
    from apiserver.api import API

log = logging.getLogger(__name__)


def expired_error(stored: StoredToken) -> errors.APIError:
    return errors.APIError(401, "Unauthorized", f"bootstrap token {stored.id} expired at {stored.expiration_text}: "
                           "create a new one with `shipmate token create`")


async def authenticate(api: "API", token: str) -> UserInfo | None:
    """The token's user; None when it is not a (valid) bootstrap token. Raises a 401 APIError when it is
    the right secret of a token that expired."""
    presented = bootstrap_token.parse(token)
    if presented is None:
        return None
    try:
        secret = await api.registry("", "secrets").get(bootstrap_token.NAMESPACE, presented.secret_name)
    except errors.APIError as exc:
        if exc.code == 404:
            log.info("no secret for bootstrap token token_id=%s", presented.id)
            return None
        raise
    return user_for(secret, presented, api.clock())


def user_for(secret: dict[str, Any], presented: bootstrap_token.Token, now: datetime.datetime) -> UserInfo | None:
    """The decision on one presented token against its Secret (pure: tests call it directly)."""
    name = secret.get("metadata", {}).get("name", "")
    if secret.get("metadata", {}).get("deletionTimestamp"):
        log.info("bootstrap token secret is being deleted secret=%s", name)
        return None
    if secret.get("type") != bootstrap_token.SECRET_TYPE or not secret.get("data"):
        log.info("bootstrap token secret has the wrong type secret=%s type=%s", name, secret.get("type"))
        return None
    stored = bootstrap_token.stored_token(secret)
    if not hmac.compare_digest(stored.secret.encode(), presented.secret.encode()):
        log.info("bootstrap token secret does not match token_id=%s", presented.id)
        return None
    if stored.id != presented.id:
        log.info("bootstrap token secret has another token-id secret=%s", name)
        return None
    if stored.expired(now):
        log.info("bootstrap token expired token_id=%s expiration=%s", stored.id, stored.expiration_text)
        raise expired_error(stored)
    if bootstrap_token.USAGE_AUTHENTICATION not in stored.usages:
        log.info("bootstrap token not marked for authentication token_id=%s", stored.id)
        return None
    for group in stored.extra_groups:
        problem = bootstrap_token.group_problem(group)
        if problem:
            log.info("bootstrap token has a bad extra group token_id=%s problem=%s", stored.id, problem)
            return None
    return UserInfo(bootstrap_token.USER_PREFIX + stored.id,
                    tuple(dict.fromkeys((bootstrap_token.DEFAULT_GROUP, *stored.extra_groups))))
