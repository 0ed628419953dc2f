"""Bootstrap tokens: format, the Secret they live in, authentication, expiry, cleanup, `shipmate token` output."""
from __future__ import annotations

import argparse
import base64
import datetime

import pytest

from apiserver import errors
from apiserver.api import API
from apiserver.auth import bootstrap_tokens
from apiserver.controllers.token_cleaner import due_for_deletion, sweep_tokens
from apiserver.storage.sqlite import SQLiteStorage
from shipmate import bootstrap_token, tokens
from shipmate.bootstrap_token import Token

NOW = datetime.datetime(2026, 11, 26, 5, 0, tzinfo=datetime.timezone.utc)
TOKEN = Token("abcdef", "0123456789abcdef")


def stored(token: Token = TOKEN, ttl: float = 3600, now: datetime.datetime = NOW, **kwargs) -> dict:
    secret = bootstrap_token.secret_for(token, ttl, now, **kwargs)
    secret["metadata"]["uid"] = "uid-1"
    return secret


def test_generated_tokens_have_the_upstream_form_and_differ():
    made = {str(bootstrap_token.generate()) for _ in range(50)}
    assert len(made) == 50
    for text in made:
        assert bootstrap_token.TOKEN_RE.fullmatch(text)
        assert bootstrap_token.parse(text) is not None


@pytest.mark.parametrize("text", ["abcdef.0123456789abcdef\n", "ABCDEF.0123456789abcdef", "abcde.0123456789abcdef",
                                  "abcdef.0123456789abcde", "abcdef:0123456789abcdef", ""])
def test_malformed_tokens_are_not_bootstrap_tokens(text):
    assert bootstrap_token.parse(text) is None


def test_secret_layout_is_upstreams():
    secret = bootstrap_token.secret_for(TOKEN, 3600, NOW, description="for n1",
                                        extra_groups=("system:bootstrappers:workers",))
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    assert secret["metadata"] == {"name": "bootstrap-token-abcdef", "namespace": "kube-system"}
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data == {"token-id": "abcdef", "token-secret": "0123456789abcdef", "expiration": "2026-11-26T06:00:00Z",
                    "usage-bootstrap-authentication": "true", "description": "for n1",
                    "auth-extra-groups": "system:bootstrappers:workers"}
    assert "expiration" not in bootstrap_token.secret_for(TOKEN, 0, NOW)["data"]  # ttl 0: never expires


def test_authentication_gives_the_bootstrap_user():
    user = bootstrap_tokens.user_for(stored(extra_groups=("system:bootstrappers:workers",)), TOKEN, NOW)
    assert user.name == "system:bootstrap:abcdef"
    assert user.groups == ("system:bootstrappers", "system:bootstrappers:workers")
    assert bootstrap_tokens.user_for(stored(ttl=0), TOKEN, NOW + datetime.timedelta(days=3650)) is not None


@pytest.mark.parametrize("change", [
    lambda s: s.update(type="Opaque"),
    lambda s: s["data"].update(**{"token-secret": base64.b64encode(b"ffffffffffffffff").decode()}),
    lambda s: s["data"].update(**{"token-id": base64.b64encode(b"zzzzzz").decode()}),
    lambda s: s["data"].pop("usage-bootstrap-authentication"),
    lambda s: s["data"].update(**{"auth-extra-groups": base64.b64encode(b"system:masters").decode()}),
    lambda s: s["metadata"].update(deletionTimestamp="2026-11-26T04:00:00Z"),
])
def test_tokens_that_do_not_authenticate(change):
    secret = stored()
    change(secret)
    assert bootstrap_tokens.user_for(secret, TOKEN, NOW) is None


def test_an_expired_token_is_refused_with_a_clear_401():
    secret = stored(ttl=60)
    with pytest.raises(errors.APIError) as caught:
        bootstrap_tokens.user_for(secret, TOKEN, NOW + datetime.timedelta(seconds=60))
    assert caught.value.code == 401 and caught.value.reason == "Unauthorized"
    assert caught.value.message == ("bootstrap token abcdef expired at 2026-11-26T05:01:00Z: create a new one with "
                                    "`shipmate token create`")
    # only the holder of the right secret learns that it expired
    assert bootstrap_tokens.user_for(secret, Token("abcdef", "ffffffffffffffff"), NOW + datetime.timedelta(hours=1)) \
        is None


def test_an_unparseable_expiration_counts_as_expired():
    secret = stored()
    secret["data"]["expiration"] = base64.b64encode(b"tomorrow").decode()
    with pytest.raises(errors.APIError):
        bootstrap_tokens.user_for(secret, TOKEN, NOW)


@pytest.fixture
async def api(tmp_path):
    storage = SQLiteStorage(str(tmp_path / "state.db"))
    await storage.start()
    api = API(storage, clock=lambda: NOW)
    await api.start()
    yield api
    await storage.close()


async def test_authenticate_reads_the_secret_from_the_api(api):
    await api.create(api.registry("", "secrets"), "kube-system", bootstrap_token.secret_for(TOKEN, 3600, NOW))
    assert (await bootstrap_tokens.authenticate(api, str(TOKEN))).name == "system:bootstrap:abcdef"
    assert await bootstrap_tokens.authenticate(api, "zzzzzz.0123456789abcdef") is None  # no such token
    assert await bootstrap_tokens.authenticate(api, "not-a-bootstrap-token") is None


def test_cleaner_keeps_expired_tokens_for_an_hour_then_deletes_them():
    fresh, expired, ancient, forever = (stored(Token(i * 6, "0123456789abcdef"), ttl)
                                        for i, ttl in (("a", 3600), ("b", 60), ("c", 1), ("d", 0)))
    later = NOW + datetime.timedelta(hours=1, seconds=30)
    assert [s["metadata"]["name"] for s in due_for_deletion([fresh, expired, ancient, forever], later)] == [
        "bootstrap-token-cccccc"]


async def test_sweep_deletes_only_long_expired_bootstrap_tokens(api):
    secrets = api.registry("", "secrets")
    old = NOW - datetime.timedelta(hours=2)
    await api.create(secrets, "kube-system", bootstrap_token.secret_for(Token("aaaaaa", "0123456789abcdef"), 60, old))
    await api.create(secrets, "kube-system", bootstrap_token.secret_for(Token("bbbbbb", "0123456789abcdef"), 60, NOW))
    long_ago = base64.b64encode(b"2000-01-01T00:00:00Z").decode()
    await api.create(secrets, "kube-system", {"metadata": {"name": "bootstrap-token-cccccc"}, "type": "Opaque",
                                              "data": {"expiration": long_ago}})  # not a bootstrap token
    assert await sweep_tokens(api) == 1
    left, _ = await secrets.list("kube-system")
    assert sorted(s["metadata"]["name"] for s in left) == ["bootstrap-token-bbbbbb", "bootstrap-token-cccccc"]


# `shipmate token` ------------------------------------------------------------------------------
def test_list_rows_as_kubeadm_prints_them():
    secrets = [stored(description="first node", extra_groups=("system:bootstrappers:workers",)),
               stored(Token("zzzzzz", "0123456789abcdef"), ttl=0),
               {"metadata": {"name": "bootstrap-token-broken"}, "data": {}}]
    rows, problems = tokens.list_rows(secrets, NOW + datetime.timedelta(minutes=30))
    assert rows == [["TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS"],
                    ["abcdef.0123456789abcdef", "30m", "2026-11-26T06:00:00Z", "authentication", "first node",
                     "system:bootstrappers:workers"],
                    ["zzzzzz.0123456789abcdef", "<forever>", "<never>", "authentication", "<none>", "<none>"]]
    assert problems == ["bootstrap token has no token-id data: bootstrap-token-broken"]
    assert tokens.tabulate(rows[:2]).splitlines() == [
        "TOKEN                     TTL       EXPIRES                USAGES           DESCRIPTION   EXTRA GROUPS",
        "abcdef.0123456789abcdef   30m       2026-11-26T06:00:00Z   authentication   first node    "
        "system:bootstrappers:workers"]


@pytest.mark.parametrize("seconds,text", [(-5, "<invalid>"), (59, "59s"), (3599, "59m"), (86399, "23h"),
                                          (86400 * 3, "3d"), (86400 * 800, "2y")])
def test_short_human_duration(seconds, text):
    assert tokens.short_human_duration(datetime.timedelta(seconds=seconds)) == text


def test_create_arguments():
    args = argparse.Namespace(token="", ttl="1h30m", description="d", groups="system:bootstrappers:a",
                              print_join_command=False)
    request = tokens.parse_create(args)
    assert request.ttl_seconds == 5400 and request.extra_groups == ("system:bootstrappers:a",)
    for bad in ({"ttl": "forever"}, {"ttl": "-1h"}, {"groups": "system:masters"}, {"token": "abc"}):
        with pytest.raises(tokens.TokenError):
            tokens.parse_create(argparse.Namespace(**{**vars(args), **bad}))
    assert tokens.token_id_of("abcdef") == tokens.token_id_of("abcdef.0123456789abcdef") == "abcdef"
    with pytest.raises(tokens.TokenError):
        tokens.token_id_of("abc")


def test_join_servers_come_from_the_kubernetes_endpoints():
    endpoints = {"subsets": [{"addresses": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}],
                              "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]}
    assert tokens.endpoint_urls(endpoints) == ["https://10.0.0.5:6443", "https://[fd00::5]:6443"]
    assert tokens.is_loopback_url("https://127.0.0.1:6443") and tokens.is_loopback_url("https://localhost:1")
    assert not tokens.is_loopback_url("https://10.0.0.5:6443")
