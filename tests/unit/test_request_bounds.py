"""Request bounds: max requests in flight (429), watch caps per user, list chunking tokens."""
from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from apiserver import errors
from apiserver.auth.user import UserInfo
from apiserver.http import paging
from apiserver.http.limits import InflightLimiter, client_key


def test_inflight_limits_reads_and_mutations_separately_and_exempts_system_masters():
    limiter = InflightLimiter(max_reads=2, max_mutating=1)
    with limiter.hold(False), limiter.hold(False):
        with pytest.raises(errors.APIError) as caught:
            with limiter.hold(False):
                pass
        assert (caught.value.code, caught.value.reason, caught.value.message) == (
            429, "TooManyRequests", "Too many requests, please try again later.")
        assert caught.value.headers == {"Retry-After": "1"}
        with limiter.hold(True):  # mutations have their own budget
            with pytest.raises(errors.APIError):
                with limiter.hold(True):
                    pass
            with limiter.hold(True, exempt=True):  # system:masters always gets through
                pass
    assert (limiter.reads, limiter.mutating) == (0, 0)  # slots are given back
    unlimited = InflightLimiter(0, 0)
    with unlimited.hold(False), unlimited.hold(False), unlimited.hold(True), unlimited.hold(True):
        pass


def test_watches_are_counted_per_user_whatever_the_connection_or_user_agent():
    def request(user, remote, agent):
        values = {"user": user} if user else {}
        return SimpleNamespace(get=values.get, remote=remote, headers={"User-Agent": agent})
    alice = UserInfo("alice")
    assert client_key(request(alice, "10.0.0.1", "a")) == client_key(request(alice, "10.0.0.2", "b"))
    assert client_key(request(alice, "10.0.0.1", "a")) != client_key(request(UserInfo("bob"), "10.0.0.1", "a"))
    assert client_key(request(None, "10.0.0.1", "a")) == client_key(request(None, "10.0.0.1", "b"))


def test_continue_tokens_round_trip_and_bad_ones_are_400():
    token = paging.encode_continue(42, "default/b\x00")
    assert paging.decode_continue(token) == paging.Continue(42, "default/b\x00")
    for bad in ("!!!", "e30", paging.encode_continue(0, "a"), paging.encode_continue(5, "/abs"),
                paging.encode_continue(5, "../x")):
        with pytest.raises(errors.APIError) as caught:
            paging.decode_continue(bad)
        assert caught.value.code == 400 and caught.value.message.startswith("continue key is not valid: ")


def test_pages_follow_keys_and_an_expired_token_is_410_with_an_inconsistent_continuation():
    keyed = [(f"ns/{name}", name) for name in "abcde"]
    first = paging.page(keyed, 2, "", 9)
    assert (first.items, first.remaining) == (["a", "b"], 3)
    token = paging.decode_continue(first.continue_token)
    second = paging.page(keyed, 2, token.start, 9)
    third = paging.page(keyed, 2, paging.decode_continue(second.continue_token).start, 9)
    assert (second.items, third.items, third.continue_token) == (["c", "d"], ["e"], "")
    assert paging.page(keyed, 0, "", 9).items == list("abcde")
    paging.check_expired(token, 9)
    with pytest.raises(errors.APIError) as caught:
        paging.check_expired(token, 10)
    status = caught.value.status()
    assert (status["code"], status["reason"]) == (410, "Expired")
    assert status["message"].startswith("The provided continue parameter is too old to display a consistent list")
    assert paging.decode_continue(status["metadata"]["continue"]) == paging.Continue(-1, token.start)
    with pytest.raises(errors.APIError):
        paging.parse_limit({"limit": "ten"})
    assert paging.parse_limit({"limit": "-3"}) == 0 and paging.parse_limit({}) == 0


def test_paging_a_large_list_is_linear():
    keyed = [(f"ns/{index:08d}", index) for index in range(200_000)]
    started = time.process_time()
    chunk = paging.page(keyed, 500, paging.decode_continue(paging.encode_continue(3, "ns/00100000\x00")).start, 3)
    assert chunk.items[0] == 100_001 and time.process_time() - started < 0.5


def test_requests_aiohttp_cannot_parse_are_not_logged_as_errors(caplog):
    """A client sending over-long request lines must not fill the server's log with tracebacks."""
    import logging
    from aiohttp.http_exceptions import LineTooLong
    from apiserver.http.serving import log_client_errors_at_debug
    log_client_errors_at_debug()
    logger = logging.getLogger("aiohttp.server")
    with caplog.at_level(logging.DEBUG):
        try:
            raise LineTooLong("x" * 100, "8190")
        except LineTooLong as error:
            logger.error("Error handling request", exc_info=error)
        try:
            raise RuntimeError("a real bug")
        except RuntimeError as error:
            logger.error("Error handling request", exc_info=error)
    errors_logged = [r for r in caplog.records if r.name == "aiohttp.server" and r.levelno >= logging.ERROR]
    assert [r.exc_info[1].__class__.__name__ for r in errors_logged] == ["RuntimeError"]
