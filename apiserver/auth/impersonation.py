"""Acting as another user (`kubectl --as/--as-group/--as-uid`), as upstream's WithImpersonation filter.

Headers: Impersonate-User, Impersonate-Group (repeatable), Impersonate-Uid, Impersonate-Extra-<key>.
The requester needs verb `impersonate` on each thing it asks for: users/<name>, groups/<name>,
serviceaccounts/<name> in its namespace (for a system:serviceaccount:<ns>:<name> user), uids/<uid> and
userextras/<key> (both in group authentication.k8s.io). The result replaces the requester entirely."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from multidict import CIMultiDict, CIMultiDictProxy

from apiserver import errors
from apiserver.auth.attributes import forbidden
from apiserver.auth.authorizer import Attributes, Authorizer
from apiserver.auth.user import AUTHENTICATED, UserInfo

USER_HEADER = "Impersonate-User"
GROUP_HEADER = "Impersonate-Group"
UID_HEADER = "Impersonate-Uid"
EXTRA_HEADER_PREFIX = "Impersonate-Extra-"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
ANONYMOUS = "system:anonymous"
UNAUTHENTICATED = "system:unauthenticated"
AUTHENTICATION_GROUP = "authentication.k8s.io"


@dataclass(frozen=True)
class Request:
    """What the headers ask for (empty user: no impersonation)."""
    user: str = ""
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def wanted(self) -> bool:
        return bool(self.user or self.groups or self.uid or self.extra)


NO_IMPERSONATION = Request()


def parse_headers(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> Request:
    if "impersonate-" not in ",".join(headers.keys()).lower():
        return NO_IMPERSONATION  # every request passes here: one cheap look at the header names

    def values(name: str) -> list[str]:
        return list(headers.getall(name, []))

    extra = []
    for key in headers.keys():
        if key.lower().startswith(EXTRA_HEADER_PREFIX.lower()):
            extra_key = unquote(key[len(EXTRA_HEADER_PREFIX):]).lower()
            extra.extend((extra_key, value) for value in values(key))
    users = values(USER_HEADER)
    uids = values(UID_HEADER)
    return Request(users[0] if users else "", tuple(values(GROUP_HEADER)), uids[0] if uids else "",
                   tuple(dict.fromkeys(extra)))


def _service_account(name: str) -> tuple[str, str] | None:
    if not name.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    namespace, sep, account = name[len(SERVICE_ACCOUNT_PREFIX):].partition(":")
    if not sep or not namespace or not account or ":" in account:
        return None
    return namespace, account


def checks(requester: UserInfo, wanted: Request) -> list[Attributes]:
    """The `impersonate` authorizations the request needs, in upstream's order."""
    def attrs(resource: str, name: str, namespace: str = "", group: str = "", subresource: str = "") -> Attributes:
        return Attributes(requester, "impersonate", namespace, group, "v1", resource, subresource, name)

    needed = []
    account = _service_account(wanted.user)
    if account is not None:
        needed.append(attrs("serviceaccounts", account[1], namespace=account[0]))
    else:
        needed.append(attrs("users", wanted.user))
    needed.extend(attrs("groups", group) for group in wanted.groups)
    needed.extend(attrs("userextras", value, group=AUTHENTICATION_GROUP, subresource=key)
                  for key, value in wanted.extra)
    if wanted.uid:
        needed.append(attrs("uids", wanted.uid, group=AUTHENTICATION_GROUP))
    return needed


def impersonated_user(wanted: Request) -> UserInfo:
    groups = list(wanted.groups)
    account = _service_account(wanted.user)
    if account is not None and not groups:
        groups = ["system:serviceaccounts", f"system:serviceaccounts:{account[0]}"]
    if wanted.user != ANONYMOUS:
        if not any(g in (AUTHENTICATED, UNAUTHENTICATED) for g in groups):
            groups.append(AUTHENTICATED)
    elif UNAUTHENTICATED not in groups:
        groups.append(UNAUTHENTICATED)
    extra: dict[str, tuple[str, ...]] = {}
    for key, value in wanted.extra:
        extra[key] = (*extra.get(key, ()), value)
    return UserInfo(wanted.user, tuple(groups), wanted.uid, extra)


async def impersonate(requester: UserInfo, wanted: Request, authorizer: Authorizer) -> UserInfo:
    """The user the request acts as: the requester, or whom it may impersonate (403 otherwise)."""
    if not wanted.wanted:
        return requester
    if not wanted.user:
        parts = [f"{kind}={value}" for kind, value in (("groups", ",".join(wanted.groups)), ("uid", wanted.uid))
                 if value] + [f"extra[{k}]={v}" for k, v in wanted.extra]
        raise errors.internal_error(f"requested {' '.join(parts)} without impersonating a user")
    for attributes in checks(requester, wanted):
        verdict = await authorizer.authorize(attributes)
        if not verdict.allowed:
            raise forbidden(attributes, verdict.reason)
    return impersonated_user(wanted)
