"""Service account tokens: the RS256 signer/verifier (apiserver/auth/jwt.py) and who a token is, with every
reason one must not authenticate (apiserver/auth/service_accounts.py)."""
from __future__ import annotations

import asyncio
import base64
import datetime
import json

import pytest
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from apiserver.auth import jwt
from apiserver.auth.service_accounts import (InvalidToken, TokenIssuer, authenticate, bound_claims,
                                             legacy_claims)

NOW = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=datetime.timezone.utc)
KEY = jwt.SigningKey.generate()
OTHER_KEY = jwt.SigningKey.generate()
ISSUER = TokenIssuer(KEY)
ACCOUNT = {"metadata": {"name": "x", "namespace": "a", "uid": "sa-uid"}}
POD = {"metadata": {"name": "p", "namespace": "a", "uid": "pod-uid"}, "spec": {"serviceAccountName": "x"}}
NODE = {"metadata": {"name": "n1", "uid": "node-uid"}}


def run(coro):
    return asyncio.new_event_loop().run_until_complete(coro)


def lookup_of(*objects):
    stored = {}
    for obj in objects:
        meta = obj["metadata"]
        plural = {"p": "pods", "x": "serviceaccounts", "n1": "nodes"}.get(meta["name"], "secrets")
        stored[(plural, meta.get("namespace", ""), meta["name"])] = obj

    async def lookup(plural, namespace, name):
        return stored.get((plural, namespace, name))
    return lookup


def token(issuer=ISSUER, now=NOW, audiences=None, seconds=3600, pod=POD, node=NODE, key=None):
    claims = bound_claims(now, issuer.issuer, audiences or list(issuer.audiences), seconds, ACCOUNT, pod, None, node)
    return jwt.sign(claims, key or issuer.key), claims


def who(presented, *objects, now=NOW, audiences=None, issuer=ISSUER):
    return run(authenticate(presented, issuer, lookup_of(*objects), now, audiences))


# ---------------------------------------------------------------------------------------------- JWS
def test_sign_and_verify_roundtrip_with_upstream_header_and_claims():
    presented, claims = token()
    header = json.loads(jwt.b64url_decode(presented.split(".")[0]))
    assert header == {"alg": "RS256", "kid": KEY.kid}
    assert jwt.verify(presented, ISSUER.public_keys) == claims
    assert set(claims) == {"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "kubernetes.io"}
    assert claims["iss"] == "https://kubernetes.default.svc.cluster.local"
    assert claims["sub"] == "system:serviceaccount:a:x"
    assert claims["aud"] == ["https://kubernetes.default.svc.cluster.local"]
    assert claims["exp"] - claims["iat"] == 3600 and claims["nbf"] == claims["iat"]
    assert claims["kubernetes.io"] == {"namespace": "a", "serviceaccount": {"name": "x", "uid": "sa-uid"},
                                       "pod": {"name": "p", "uid": "pod-uid"}, "node": {"name": "n1", "uid": "node-uid"}}


def test_key_id_is_the_sha256_of_the_public_key_der():
    der = KEY.public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    assert KEY.kid == base64.urlsafe_b64encode(digest.finalize()).rstrip(b"=").decode()
    entry = ISSUER.jwks()["keys"][0]
    assert entry["kid"] == KEY.kid and entry["alg"] == "RS256" and entry["kty"] == "RSA" and entry["e"] == "AQAB"


def test_pem_roundtrip_keeps_the_key():
    assert jwt.SigningKey.from_pem(KEY.pem()).kid == KEY.kid


def test_tampered_claims_fail_verification():
    presented, claims = token()
    header, _, signature = presented.split(".")
    forged = dict(claims, sub="system:serviceaccount:kube-system:admin")
    tampered = f"{header}.{jwt.b64url(json.dumps(forged).encode())}.{signature}"
    with pytest.raises(jwt.TokenError, match="invalid signature"):
        jwt.verify(tampered, ISSUER.public_keys)
    with pytest.raises(InvalidToken):
        who(tampered, ACCOUNT, POD, NODE)


def test_token_signed_by_another_key_is_refused_even_with_our_kid():
    presented, claims = token(key=OTHER_KEY)
    with pytest.raises(InvalidToken, match="unknown key"):
        who(presented, ACCOUNT, POD, NODE)
    header = jwt.b64url(json.dumps({"alg": "RS256", "kid": KEY.kid}).encode())
    body = jwt.b64url(json.dumps(claims).encode())
    signature = OTHER_KEY.private_key.sign(f"{header}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(InvalidToken, match="invalid signature"):
        who(f"{header}.{body}.{jwt.b64url(signature)}", ACCOUNT, POD, NODE)


@pytest.mark.parametrize("alg", ["none", "HS256", "RS384", "ES256"])
def test_other_algorithms_are_refused(alg):
    _, claims = token()
    header = jwt.b64url(json.dumps({"alg": alg, "kid": KEY.kid}).encode())
    body = jwt.b64url(json.dumps(claims).encode())
    if alg == "HS256":  # the classic confusion: the public key used as an HMAC secret
        mac = hmac.HMAC(KEY.public_key.public_bytes(serialization.Encoding.PEM,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo), hashes.SHA256())
        mac.update(f"{header}.{body}".encode())
        signature = jwt.b64url(mac.finalize())
    else:
        signature = ""
    with pytest.raises(InvalidToken, match="unsupported signing algorithm"):
        who(f"{header}.{body}.{signature}", ACCOUNT, POD, NODE)


def test_not_our_tokens_are_left_to_other_authenticators():
    assert who("abcdef.0123456789abcdef", ACCOUNT) is None          # a bootstrap token
    assert who("static-token", ACCOUNT) is None
    foreign = jwt.sign({"iss": "https://elsewhere", "sub": "x"}, OTHER_KEY)
    assert who(foreign, ACCOUNT) is None
    with pytest.raises(jwt.TokenError):
        jwt.verify("a" * (jwt.MAX_TOKEN_BYTES + 1), ISSUER.public_keys)


# ---------------------------------------------------------------------------------------------- who
def test_bound_token_authenticates_as_the_account_with_groups_and_extra():
    presented, claims = token()
    found = who(presented, ACCOUNT, POD, NODE)
    assert found.user.name == "system:serviceaccount:a:x"
    assert found.user.uid == "sa-uid"
    assert found.user.groups == ("system:serviceaccounts", "system:serviceaccounts:a", "system:authenticated")
    assert found.user.extra == {"authentication.kubernetes.io/pod-name": ("p",),
                                "authentication.kubernetes.io/pod-uid": ("pod-uid",),
                                "authentication.kubernetes.io/node-name": ("n1",),
                                "authentication.kubernetes.io/node-uid": ("node-uid",),
                                "authentication.kubernetes.io/credential-id": (f"JTI={claims['jti']}",)}
    assert found.audiences == ("https://kubernetes.default.svc.cluster.local",)


def test_expired_token_is_refused_past_the_leeway():
    presented, _ = token(seconds=600)
    assert who(presented, ACCOUNT, POD, NODE, now=NOW + datetime.timedelta(seconds=650)) is not None  # leeway
    with pytest.raises(InvalidToken, match="expired"):
        who(presented, ACCOUNT, POD, NODE, now=NOW + datetime.timedelta(seconds=661))


def test_token_from_the_future_is_refused():
    presented, _ = token(now=NOW + datetime.timedelta(hours=1))
    with pytest.raises(InvalidToken, match="not valid yet"):
        who(presented, ACCOUNT, POD, NODE)


def test_token_for_another_audience_is_refused_and_a_review_may_ask_for_it():
    presented, _ = token(audiences=["vault"])
    with pytest.raises(InvalidToken, match="audiences"):
        who(presented, ACCOUNT, POD, NODE)
    assert who(presented, ACCOUNT, POD, NODE, audiences=["vault", "other"]).audiences == ("vault",)


def test_token_of_a_deleted_or_recreated_pod_is_refused():
    presented, _ = token()
    with pytest.raises(InvalidToken, match="deleted"):
        who(presented, ACCOUNT, NODE)
    recreated = {**POD, "metadata": {**POD["metadata"], "uid": "another"}}
    with pytest.raises(InvalidToken, match="does not match"):
        who(presented, ACCOUNT, recreated, NODE)
    terminating = {**POD, "metadata": {**POD["metadata"], "deletionTimestamp": "2026-06-01T11:59:00Z"}}
    with pytest.raises(InvalidToken, match="deleted"):
        who(presented, ACCOUNT, terminating, NODE)
    graceful = {**POD, "metadata": {**POD["metadata"], "deletionTimestamp": "2026-06-01T12:00:30Z"}}
    assert who(presented, ACCOUNT, graceful, NODE) is not None  # still in its grace period


def test_token_of_a_deleted_or_recreated_account_is_refused():
    presented, _ = token()
    with pytest.raises(InvalidToken, match="service account a/x has been deleted"):
        who(presented, POD, NODE)
    with pytest.raises(InvalidToken, match="does not match"):
        who(presented, {"metadata": {**ACCOUNT["metadata"], "uid": "new"}}, POD, NODE)


def test_token_bound_to_a_node_needs_the_node():
    claims = bound_claims(NOW, ISSUER.issuer, list(ISSUER.audiences), 3600, ACCOUNT, None, None, NODE)
    presented = jwt.sign(claims, KEY)
    assert who(presented, ACCOUNT, NODE).user.extra["authentication.kubernetes.io/node-name"] == ("n1",)
    with pytest.raises(InvalidToken, match="node n1"):
        who(presented, ACCOUNT)


def test_several_issuers_are_accepted_and_the_first_signs():
    issuer = TokenIssuer(KEY, ("https://new", "https://old"))
    assert issuer.issuer == "https://new" and issuer.audiences == ("https://new", "https://old")
    old = jwt.sign(bound_claims(NOW, "https://old", ["https://old"], 3600, ACCOUNT, POD), KEY)
    assert who(old, ACCOUNT, POD, issuer=issuer) is not None
    api_audience = TokenIssuer(KEY, api_audiences=("api",))
    presented, _ = token(issuer=api_audience)
    assert who(presented, ACCOUNT, POD, NODE, issuer=api_audience).audiences == ("api",)


def test_legacy_secret_token():
    secret = {"metadata": {"name": "s", "namespace": "a", "uid": "secret-uid"}, "type": "kubernetes.io/service-account-token"}
    presented = jwt.sign(legacy_claims(ACCOUNT, secret), KEY)
    stored = {**secret, "data": {"token": base64.b64encode(presented.encode()).decode()}}
    found = who(presented, ACCOUNT, stored)
    assert found.user.name == "system:serviceaccount:a:x" and found.user.uid == "sa-uid"
    assert found.user.extra == {"authentication.kubernetes.io/credential-id": ("secret=secret-uid",)}
    with pytest.raises(InvalidToken, match="secret a/s"):
        who(presented, ACCOUNT)                                   # the Secret is gone
    with pytest.raises(InvalidToken, match="another one"):
        who(presented, ACCOUNT, {**secret, "data": {"token": base64.b64encode(b"other").decode()}})
    with pytest.raises(InvalidToken, match="does not match"):
        who(presented, {"metadata": {**ACCOUNT["metadata"], "uid": "new"}}, stored)
    with pytest.raises(InvalidToken, match="audience"):
        who(presented, ACCOUNT, stored, audiences=["vault"])


# ---------------------------------------------------------------------------------------------- shared key
def test_signing_key_is_created_once_in_the_datastore_and_shared(tmp_path):
    from apiserver.pki_bootstrap import load_or_create_service_account_key
    from apiserver.storage.sqlite import SQLiteStorage

    async def scenario():
        storage = SQLiteStorage(str(tmp_path / "state.db"))
        await storage.start()
        try:
            racing = await asyncio.gather(*(load_or_create_service_account_key(storage) for _ in range(3)))
            again = await load_or_create_service_account_key(storage)
        finally:
            await storage.close()
        return racing, again
    racing, again = run(scenario())
    assert len({key.kid for key in racing}) == 1 and again.kid == racing[0].kid
    # A token one server signs, another (same datastore key) accepts.
    first, second = TokenIssuer(racing[0]), TokenIssuer(again)
    presented, _ = token(issuer=first)
    assert who(presented, ACCOUNT, POD, NODE, issuer=second) is not None
