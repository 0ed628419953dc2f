"""An HTTP request as authorization sees it (upstream's RequestInfoFactory + authorizer.Attributes)."""
from __future__ import annotations

from typing import Mapping

from apiserver import errors
from apiserver.auth.authorizer import Attributes
from apiserver.auth.user import UserInfo
from apiserver.requestinfo import parse_resource_path

# Subresources that open a stream to the node; a websocket GET of one also needs `create` (upstream's
# AuthorizePodWebsocketUpgradeCreatePermission), as the POST it replaces.
CONNECT_SUBRESOURCES = frozenset({"exec", "attach", "portforward"})
_TRUE = ("1", "true", "True")


def _verb(method: str, has_name: bool, watching: bool) -> str:
    if method in ("GET", "HEAD"):
        if watching:
            return "watch"
        return "get" if has_name else "list"
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete" if has_name else "deletecollection"
    return method.lower()


def name_from_field_selector(selector: str) -> str:
    """`metadata.name=x` in a list/watch's fieldSelector names the one object read (as upstream)."""
    for term in selector.split(","):
        field, sep, value = term.partition("==")
        if not sep:
            field, sep, value = term.partition("=")
        if sep and field.strip() == "metadata.name":
            return value.strip()
    return ""


def request_attributes(user: UserInfo, method: str, path: str, query: Mapping[str, str]) -> Attributes:
    """Verbs: GET → get (with a name) / list / watch (watch=true), POST → create, PUT → update,
    PATCH → patch, DELETE → delete / deletecollection; non-resource paths: the lower-cased method."""
    info = parse_resource_path(path)
    if info is None:
        return Attributes(user, method.lower(), path=path, resource_request=False)
    method = method.upper()
    watching = method in ("GET", "HEAD") and query.get("watch") in _TRUE
    verb = _verb(method, bool(info.name), watching)
    name, namespace = info.name, info.namespace
    if info.resource == "namespaces" and not info.group and name:
        namespace = name  # /api/v1/namespaces/<name>: the namespace is its own namespace
    label_selector = ""
    if verb in ("list", "watch"):
        label_selector = query.get("labelSelector", "")
        if not name:
            name = name_from_field_selector(query.get("fieldSelector", ""))
    return Attributes(user, verb, namespace, info.group, info.version, info.resource, info.subresource, name,
                      path, True, label_selector)


def forbidden_message(attributes: Attributes) -> str:
    """Upstream's `User "x" cannot <verb> resource "<res>[/<sub>]" in API group "<g>" ...` sentence."""
    user = attributes.user.name
    if not attributes.resource_request:
        return f'User "{user}" cannot {attributes.verb} path "{attributes.path}"'
    resource = attributes.resource
    if attributes.subresource:
        resource = f"{resource}/{attributes.subresource}"
    scope = f'in the namespace "{attributes.namespace}"' if attributes.namespace else "at the cluster scope"
    return f'User "{user}" cannot {attributes.verb} resource "{resource}" in API group "{attributes.api_group}" {scope}'


def forbidden(attributes: Attributes, reason: str) -> errors.APIError:
    """Upstream's 403 for a denied request: `<res> "<name>" is forbidden: User ... cannot ...[: reason]`."""
    message = forbidden_message(attributes)
    if reason:
        message = f"{message}: {reason}"
    if not attributes.resource_request:
        return errors.APIError(403, "Forbidden", f"forbidden: {message}", {})
    return errors.forbidden_error(attributes.api_group, attributes.resource, attributes.name, message)
