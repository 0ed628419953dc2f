"""The server's memo caches are bounded in entries and, whatever a client sends, in bytes: keys past a length
are answered without being remembered (docs/security.md, Bounds)."""
from __future__ import annotations

from fractions import Fraction

from aiohttp.test_utils import make_mocked_request

from apiserver.auth import authentication, middleware, rbac
from apiserver.auth.authentication import Authenticator
from apiserver.auth.middleware import ATTRIBUTES_CACHE_KEY_LENGTH, ATTRIBUTES_CACHE_SIZE, AuthMiddleware
from apiserver.auth.rbac import SOURCE_CACHE_KEY_LENGTH, SOURCE_CACHE_SIZE, RBACIndex
from apiserver.auth.user import UserInfo
from apiserver.certificates import requests
from apiserver.requestinfo import _CACHED_PATH_LENGTH, _parse_cached, parse_resource_path
from shipmate import pki, pod_resources

USER = UserInfo("mallory", ("soakers", "system:authenticated"))


def attributes_cache() -> tuple[AuthMiddleware, dict]:
    auth = AuthMiddleware(api=None, authenticator=None, authorizer=None, pod_index=None)  # type: ignore[arg-type]
    return auth, auth._attributes_cache


def test_request_attributes_are_remembered_up_to_a_number_of_short_keys(monkeypatch):
    monkeypatch.setattr(middleware, "ATTRIBUTES_CACHE_SIZE", 100)
    auth, cache = attributes_cache()
    for index in range(250):
        auth._attributes(USER, make_mocked_request("GET", f"/api/v1/namespaces/soak/configmaps/c{index}"))
        assert len(cache) <= 100
    assert ATTRIBUTES_CACHE_SIZE == 8192 and ATTRIBUTES_CACHE_KEY_LENGTH == 512


def test_long_paths_selectors_and_impersonated_names_are_not_remembered():
    auth, cache = attributes_cache()
    long_path = "/api/v1/namespaces/" + "n" * 500 + "/pods"
    assert auth._attributes(USER, make_mocked_request("GET", long_path)).namespace == "n" * 500
    selector = "metadata.name=" + "x" * 500
    by_selector = auth._attributes(USER, make_mocked_request("GET", f"/api/v1/pods?fieldSelector={selector}"))
    assert by_selector.name == "x" * 500
    auth._attributes(USER, make_mocked_request("GET", "/api/v1/pods?labelSelector=app%3D" + "y" * 500))
    impersonated = UserInfo("system:serviceaccount:soak:" + "s" * 500, ("system:serviceaccounts",))
    assert auth._attributes(impersonated, make_mocked_request("GET", "/api/v1/pods")).user is impersonated
    assert not cache
    auth._attributes(USER, make_mocked_request("GET", "/api/v1/pods"))
    assert len(cache) == 1


async def test_the_requests_of_a_token_share_one_user_and_attributes_have_no_dict():
    tokens = {"t0k3n": UserInfo("mallory", ("soakers",))}
    authenticator = Authenticator(api=None, static_tokens=tokens)  # type: ignore[arg-type]
    users = [await authenticator.from_token(make_mocked_request("GET", "/api/v1/pods",
                                                                headers={"Authorization": "Bearer t0k3n"}))
             for _ in range(3)]
    assert users[0] is users[1] is users[2]
    assert users[0].groups == ("soakers", "system:authenticated")
    auth, cache = attributes_cache()
    for index in range(3):
        auth._attributes(users[index], make_mocked_request("GET", f"/api/v1/namespaces/soak/pods/p{index}"))
    assert all(attributes.user is users[0] and not hasattr(attributes, "__dict__") for attributes in cache.values())


def test_rule_sources_are_memoized_for_a_number_of_short_keys(monkeypatch):
    monkeypatch.setattr(rbac, "SOURCE_CACHE_SIZE", 50)
    index = RBACIndex()
    for number in range(120):
        assert index.sources(USER, f"ns-{number}") == ()
        assert len(index._sources) <= 50
    index._sources.clear()
    index.sources(USER, "n" * (SOURCE_CACHE_KEY_LENGTH + 1))                  # a namespace from the URL
    index.sources(UserInfo("u" * (SOURCE_CACHE_KEY_LENGTH + 1)), "default")  # an impersonated user
    assert not index._sources
    assert SOURCE_CACHE_SIZE == 4096


def test_resource_paths_are_remembered_only_when_short():
    _parse_cached.cache_clear()
    assert parse_resource_path("/api/v1/namespaces/" + "n" * _CACHED_PATH_LENGTH + "/pods").resource == "pods"
    assert _parse_cached.cache_info().currsize == 0
    parse_resource_path("/api/v1/namespaces/default/pods")
    assert _parse_cached.cache_info().currsize == 1
    assert _parse_cached.cache_parameters()["maxsize"] == 4096


def test_certificate_users_are_remembered_up_to_a_number(monkeypatch):
    monkeypatch.setattr(authentication, "_CERT_CACHE_SIZE", 20)
    authenticator = Authenticator(api=None)  # type: ignore[arg-type]
    for index in range(50):
        peercert = {"subject": ((("commonName", f"system:node:n{index}"),), (("organizationName", "system:nodes"),)),
                    "notAfter": "Jan  1 00:00:00 2099 GMT"}
        assert authenticator.certificate_user(peercert).name == f"system:node:n{index}"
        assert len(authenticator._certificates) <= 20


def test_big_certificate_requests_are_parsed_each_time():
    requests._parse_request_cached.cache_clear()
    groups = tuple(f"group-{index:04d}-" + "g" * 40 for index in range(400))
    big = pki.make_csr(pki.new_key_pem(), "system:node:n1", groups)
    assert len(big) > requests._CACHED_REQUEST_BYTES
    assert len(requests.parse_request(big).organizations) == 400
    assert requests._parse_request_cached.cache_info().currsize == 0
    requests.parse_request(pki.make_csr(pki.new_key_pem(), "system:node:n1", ("system:nodes",)))
    assert requests._parse_request_cached.cache_info().currsize == 1


def test_long_quantities_are_parsed_each_time():
    pod_resources._parsed_cached.cache_clear()
    assert pod_resources._quantity("0" * 100 + "2") == 2
    assert pod_resources._quantity(10 ** 100) == 10 ** 100
    assert pod_resources._parsed_cached.cache_info().currsize == 0
    assert pod_resources._quantity("500m") == Fraction(1, 2)
    assert pod_resources._parsed_cached.cache_info().currsize == 1
