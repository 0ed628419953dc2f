"""Validation of a webhook's client config (URL or Service, caBundle), shared by admission webhook
configurations and CRD conversion webhooks: k8s.io/apiserver's util/webhook validation, same messages."""
from __future__ import annotations

import base64
import ssl
import urllib.parse
from typing import Any

from apiserver import errors
from apiserver.errors import FieldError
from apiserver.validation import dns1123_subdomain

_FORM = "; desired format: https://host[/path]"


def url_errors(path: str, url: Any, force_https: bool = True) -> list[FieldError]:
    if not isinstance(url, str):
        return [errors.required(path, "url must be a valid URL: not a string" + _FORM)]
    try:
        parsed = urllib.parse.urlsplit(url)
        _ = parsed.port  # a bad port is a parse error, as Go's url.Parse
    except ValueError as exc:
        return [errors.required(path, f"url must be a valid URL: parse {url!r}: {exc}{_FORM}")]
    found = []
    if force_https and parsed.scheme != "https":
        found.append(errors.invalid(path, parsed.scheme, "'https' is the only allowed URL scheme" + _FORM))
    host = parsed.netloc.rpartition("@")[2]
    if not host:
        found.append(errors.invalid(path, host, "host must be specified" + _FORM))
    if "@" in parsed.netloc:
        found.append(errors.invalid(path, parsed.netloc.rpartition("@")[0], "user information is not permitted in "
                                                                             "the URL"))
    if parsed.fragment:
        found.append(errors.invalid(path, parsed.fragment, "fragments are not permitted in the URL"))
    if parsed.query:
        found.append(errors.invalid(path, parsed.query, "query parameters are not permitted in the URL"))
    return found


def service_errors(path: str, service: dict) -> list[FieldError]:
    found = []
    if not service.get("name"):
        found.append(errors.required(f"{path}.name"))
    if not service.get("namespace"):
        found.append(errors.required(f"{path}.namespace"))
    port = service.get("port", 443)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        found.append(errors.invalid(f"{path}.port", port, "port is not valid: must be between 1 and 65535, "
                                                          "inclusive"))
    url_path = service.get("path")
    if url_path is None or url_path in ("", "/"):
        return found
    if url_path == "//":
        return found + [errors.invalid(f"{path}.path", url_path, "segment[0] may not be empty")]
    if not url_path.startswith("/"):
        found.append(errors.invalid(f"{path}.path", url_path, "must start with a '/'"))
    check = url_path[1:]
    if check.endswith("/"):
        check = check[:-1]
    for index, step in enumerate(check.split("/")):
        if not step:
            found.append(errors.invalid(f"{path}.path", url_path, f"segment[{index}] may not be empty"))
            continue
        found += [errors.invalid(f"{path}.path", url_path, f"segment[{index}]: {p}") for p in dns1123_subdomain(step)]
    return found


def ca_bundle_errors(path: str, ca_bundle: Any) -> list[FieldError]:
    """The caBundle (base64 in JSON) must hold PEM certificates a TLS client can trust."""
    if ca_bundle in (None, ""):
        return []
    try:
        pem = base64.b64decode(ca_bundle, validate=True)
        context = ssl.create_default_context()
        context.load_verify_locations(cadata=pem.decode("ascii"))
    except (ValueError, ssl.SSLError, UnicodeDecodeError):
        return [errors.invalid(path, "<value omitted>", "unable to load root certificates: unable to parse bytes as "
                                                        "PEM block")]
    return []


def client_config_errors(path: str, config: Any, check_ca_bundle: bool = True) -> list[FieldError]:
    if not isinstance(config, dict):
        return [errors.required(path, "exactly one of url or service is required")]
    url, service = config.get("url"), config.get("service")
    found: list[FieldError] = []
    if (url is None) == (service is None):
        found.append(errors.required(path, "exactly one of url or service is required"))
    elif url is not None:
        found += url_errors(f"{path}.url", url)
    elif isinstance(service, dict):
        found += service_errors(f"{path}.service", service)
    if check_ca_bundle:
        found += ca_bundle_errors(f"{path}.caBundle", config.get("caBundle"))
    return found
