"""Bootstrap tokens as upstream stores them: `<id>.<secret>`, one Secret per token in kube-system.

Shared by `shipmate token` (writes and lists them) and the API server (authenticates with them, deletes
expired ones). Names, keys and formats are upstream's (k8s.io/cluster-bootstrap/token/api).
"""
from __future__ import annotations

import base64
import datetime
import re
import secrets
import string
from dataclasses import dataclass, field
from typing import Any

from shipmate.timeutil import parse_rfc3339, rfc3339

NAMESPACE = "kube-system"
SECRET_TYPE = "bootstrap.kubernetes.io/token"
SECRET_PREFIX = "bootstrap-token-"
USER_PREFIX = "system:bootstrap:"
DEFAULT_GROUP = "system:bootstrappers"  # every bootstrap token user is in it (upstream BootstrapDefaultGroup)

KEY_ID = "token-id"
KEY_SECRET = "token-secret"
KEY_EXPIRATION = "expiration"
KEY_DESCRIPTION = "description"
KEY_EXTRA_GROUPS = "auth-extra-groups"
USAGE_PREFIX = "usage-bootstrap-"
USAGE_AUTHENTICATION = "authentication"

TOKEN_RE = re.compile(r"([a-z0-9]{6})\.([a-z0-9]{16})")  # whole string: fullmatch
TOKEN_ID_RE = re.compile(r"[a-z0-9]{6}")
GROUP_PATTERN = r"\Asystem:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]\z"  # upstream's, in Go's syntax
_GROUP_RE = re.compile(r"system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]")
_ALPHABET = string.ascii_lowercase + string.digits


@dataclass(frozen=True)
class Token:
    id: str
    secret: str

    def __str__(self) -> str:
        return f"{self.id}.{self.secret}"

    @property
    def secret_name(self) -> str:
        return SECRET_PREFIX + self.id


def generate() -> Token:
    """A new random token (`secrets`: cryptographically strong)."""
    return Token("".join(secrets.choice(_ALPHABET) for _ in range(6)),
                 "".join(secrets.choice(_ALPHABET) for _ in range(16)))


def parse(text: str) -> Token | None:
    """The token in `text`, or None when it does not have the bootstrap-token form."""
    match = TOKEN_RE.fullmatch(text)
    return Token(match.group(1), match.group(2)) if match else None


def group_problem(group: str) -> str | None:
    if _GROUP_RE.fullmatch(group):
        return None
    return f'bootstrap group "{group}" is invalid (must match {GROUP_PATTERN})'


def secret_for(token: Token, ttl_seconds: float, now: datetime.datetime, description: str = "",
               extra_groups: tuple[str, ...] = ()) -> dict[str, Any]:
    """The Secret that makes `token` valid for authentication; ttl 0 never expires."""
    data = {KEY_ID: token.id, KEY_SECRET: token.secret, USAGE_PREFIX + USAGE_AUTHENTICATION: "true"}
    if ttl_seconds > 0:
        data[KEY_EXPIRATION] = rfc3339(now + datetime.timedelta(seconds=ttl_seconds))
    if description:
        data[KEY_DESCRIPTION] = description
    if extra_groups:
        data[KEY_EXTRA_GROUPS] = ",".join(extra_groups)
    return {"apiVersion": "v1", "kind": "Secret", "type": SECRET_TYPE,
            "metadata": {"name": token.secret_name, "namespace": NAMESPACE},
            "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}}


def secret_value(secret: dict[str, Any], key: str) -> str:
    """A data value of the Secret as text ("" when absent or not base64)."""
    raw = (secret.get("data") or {}).get(key)
    if not isinstance(raw, str):
        return ""
    try:
        return base64.b64decode(raw, validate=True).decode()
    except ValueError:
        return ""


@dataclass(frozen=True)
class StoredToken:
    """What a bootstrap-token Secret says, decoded."""
    id: str
    secret: str
    expiration_text: str = ""  # as stored; "" never expires
    description: str = ""
    usages: tuple[str, ...] = ()
    extra_groups: tuple[str, ...] = field(default=())

    @property
    def expires(self) -> datetime.datetime | None:
        return parse_rfc3339(self.expiration_text)

    def expired(self, now: datetime.datetime) -> bool:
        """Upstream treats an expiration that does not parse as already expired."""
        if not self.expiration_text:
            return False
        moment = self.expires
        return moment is None or now >= moment


def stored_token(secret: dict[str, Any]) -> StoredToken:
    data = secret.get("data") or {}
    usages = tuple(sorted(key[len(USAGE_PREFIX):] for key in data
                          if key.startswith(USAGE_PREFIX) and secret_value(secret, key) == "true"))
    groups = tuple(g.strip() for g in secret_value(secret, KEY_EXTRA_GROUPS).split(",") if g.strip())
    return StoredToken(secret_value(secret, KEY_ID), secret_value(secret, KEY_SECRET),
                       secret_value(secret, KEY_EXPIRATION), secret_value(secret, KEY_DESCRIPTION), usages, groups)
