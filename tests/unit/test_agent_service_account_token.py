"""The agent's side of service account tokens: the TokenRequest it sends (bound to the pod), the 80 % / 24 h
refresh rule, keeping a valid token when a refresh fails, and the projected kube-api-access volume written
atomically (timestamped directory + `..data` symlink swap) and rewritten on refresh."""
from __future__ import annotations

import asyncio
import datetime
import os
import stat

import pytest

from agent.volumes.errors import VolumeError
from agent.volumes.service_account_token import CachedToken, TokenManager, requires_refresh, token_request
from apiserver.admission.service_account import token_volume_source
from shipmate.timeutil import rfc3339

T0 = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=datetime.timezone.utc)
POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "pod-uid"},
       "spec": {"serviceAccountName": "robot", "containers": [{"name": "c", "image": "i"}]}}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime.datetime:
        return self.now


class FakeClient:
    """Answers TokenRequests (token-1, token-2, ...) and ConfigMap reads."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.requests: list[tuple[str, dict]] = []
        self.fail = False

    async def request(self, method: str, path: str, *, body=None, **_):
        if self.fail:
            raise ConnectionError("server away")
        self.requests.append((path, body))
        expires = self.clock() + datetime.timedelta(seconds=body["spec"]["expirationSeconds"])
        return {"status": {"token": f"token-{len(self.requests)}", "expirationTimestamp": rfc3339(expires)}}

    async def get(self, resource, name, namespace=None, subresource=None):
        assert (resource.plural, name) == ("configmaps", "kube-root-ca.crt")
        return {"data": {"ca.crt": "CA PEM"}}


def test_token_request_is_bound_to_the_pod():
    assert token_request(POD, {"audience": "vault", "expirationSeconds": 7200}) == {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"audiences": ["vault"], "expirationSeconds": 7200,
                 "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "pod-uid"}}}
    assert token_request(POD, {})["spec"]["audiences"] == [] and token_request(POD, {})["spec"]["expirationSeconds"] == 3600


def test_refresh_after_80_percent_or_24_hours():
    hour = CachedToken("t", T0, T0 + datetime.timedelta(hours=1))
    assert not requires_refresh(hour, T0 + datetime.timedelta(minutes=47))
    assert requires_refresh(hour, T0 + datetime.timedelta(minutes=48))
    year = CachedToken("t", T0, T0 + datetime.timedelta(days=365))
    assert not requires_refresh(year, T0 + datetime.timedelta(hours=23))
    assert requires_refresh(year, T0 + datetime.timedelta(hours=24))


async def test_manager_reuses_refreshes_and_keeps_a_valid_token_when_refresh_fails():
    clock = Clock()
    client = FakeClient(clock)
    tokens = TokenManager(client, clock)  # type: ignore[arg-type]
    projection = {"path": "token", "expirationSeconds": 3607}
    assert await tokens.token(POD, projection) == "token-1"
    assert client.requests[0][0] == "/api/v1/namespaces/ns/serviceaccounts/robot/token"
    clock.now = T0 + datetime.timedelta(minutes=40)
    assert await tokens.token(POD, projection) == "token-1"
    clock.now = T0 + datetime.timedelta(minutes=49)
    client.fail = True
    assert await tokens.token(POD, projection) == "token-1"      # still valid: kept
    client.fail = False
    assert await tokens.token(POD, projection) == "token-2"
    clock.now += datetime.timedelta(hours=2)
    client.fail = True
    with pytest.raises(VolumeError, match="failed to fetch token"):
        await tokens.token(POD, projection)                      # expired and no new one: the mount fails
    with pytest.raises(VolumeError, match="at least 600"):
        await tokens.token(POD, {"expirationSeconds": 599})
    tokens.forget("pod-uid")
    assert tokens._tokens == {}


async def test_projected_token_volume_is_written_atomically_and_refreshed(tmp_path):
    from agent.volumes import VolumeManager
    clock = Clock()
    client = FakeClient(clock)
    manager = VolumeManager(str(tmp_path), client, resync_period=0.05)  # type: ignore[arg-type]
    manager.tokens = TokenManager(client, clock)  # type: ignore[arg-type]
    pod = {**POD, "spec": {**POD["spec"], "volumes": [{"name": "kube-api-access-abcde",
                                                        "projected": token_volume_source()}]}}
    paths = await manager.ensure(pod)
    volume = tmp_path / "pods" / "pod-uid" / "volumes" / "kubernetes.io~projected" / "kube-api-access-abcde"
    assert paths["kube-api-access-abcde"] == str(volume) and "kube-api-access-abcde" in paths.read_only
    assert (volume / "token").read_text() == "token-1"
    assert (volume / "ca.crt").read_text() == "CA PEM"
    assert (volume / "namespace").read_text() == "ns"
    for name in ("token", "ca.crt", "namespace"):
        assert os.readlink(volume / name) == f"..data/{name}"
        assert stat.S_IMODE(os.stat(volume / name).st_mode) == 0o644   # defaultMode 420
    first = os.readlink(volume / "..data")
    assert first.startswith("..20")
    clock.now = T0 + datetime.timedelta(minutes=50)                 # past 80 % of 3607 s
    refresh = asyncio.create_task(manager.run())
    try:
        for _ in range(200):
            if (volume / "token").read_text() == "token-2":
                break
            await asyncio.sleep(0.02)
    finally:
        refresh.cancel()
    assert (volume / "token").read_text() == "token-2"
    assert os.readlink(volume / "..data") != first and not (volume / first).exists()  # swapped, old dir gone
    await manager.cleanup("pod-uid")
    assert manager.tokens._tokens == {} and not volume.exists()
