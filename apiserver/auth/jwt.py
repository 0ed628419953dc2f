"""Compact JWS (RFC 7515) with RS256 only: what service account tokens are (pure, over `cryptography`).

Verification accepts nothing but `alg: RS256` with a `kid` naming one of the given public keys (a token
signed by a key we do not hold, `alg: none`, or HMAC with the public key as secret are all refused), and
bounds the token's size before decoding anything.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ALGORITHM = "RS256"
MAX_TOKEN_BYTES = 16 * 1024  # far above any token we issue (~1.3 KiB); a bearer header past it is not ours


class TokenError(ValueError):
    """The token is not a valid JWS of ours (the reason is for logs and TokenReview's status.error)."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    if not isinstance(text, str) or any(c in text for c in "=+/ \n"):
        raise TokenError("malformed token segment")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise TokenError("malformed token segment") from None


def key_id(public_key: rsa.RSAPublicKey) -> str:
    """As upstream's keyIDFromPublicKey: base64url(SHA-256(DER SubjectPublicKeyInfo)), unpadded."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return b64url(hashlib.sha256(der).digest())


def _int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")


def jwk(public_key: rsa.RSAPublicKey) -> dict[str, str]:
    """The key as a JWKS entry (`/openid/v1/jwks`)."""
    numbers = public_key.public_numbers()
    return {"use": "sig", "kty": "RSA", "kid": key_id(public_key), "alg": ALGORITHM,
            "n": b64url(_int_bytes(numbers.n)), "e": b64url(_int_bytes(numbers.e))}


@dataclass(frozen=True)
class SigningKey:
    private_key: rsa.RSAPrivateKey

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    @property
    def kid(self) -> str:
        return key_id(self.public_key)

    @classmethod
    def generate(cls) -> "SigningKey":
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def from_pem(cls, pem: bytes) -> "SigningKey":
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the service account signing key must be an RSA key")
        return cls(key)

    def pem(self) -> bytes:
        return self.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption())


def _json_segment(value: Mapping[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":"), sort_keys=True).encode())


def sign(claims: Mapping[str, Any], key: SigningKey) -> str:
    """A compact RS256 JWS of `claims`, its header naming the key (`kid`) as upstream's."""
    signing_input = f"{_json_segment({'alg': ALGORITHM, 'kid': key.kid})}.{_json_segment(claims)}"
    signature = key.private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


def looks_like_jwt(token: str) -> bool:
    """Three dot-separated segments, the header a JSON object with `alg` (cheap: no signature check)."""
    parts = token.split(".")
    if len(parts) != 3 or len(token) > MAX_TOKEN_BYTES:
        return False
    try:
        header = json.loads(b64url_decode(parts[0]))
    except (TokenError, ValueError):
        return False
    return isinstance(header, dict) and "alg" in header


def verify(token: str, public_keys: Mapping[str, rsa.RSAPublicKey]) -> dict[str, Any]:
    """The claims of a token signed by one of `public_keys` (kid → key); TokenError otherwise. Times,
    issuer and audience are the caller's to check."""
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenError("token too large")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("not a compact JWS")
    try:
        header = json.loads(b64url_decode(parts[0]))
    except ValueError:
        raise TokenError("malformed token header") from None
    if not isinstance(header, dict) or header.get("alg") != ALGORITHM:
        raise TokenError(f"unsupported signing algorithm {header.get('alg') if isinstance(header, dict) else None!r}")
    if "crit" in header:
        raise TokenError("critical header parameters are not supported")
    kid = header.get("kid")
    candidates = [public_keys[kid]] if isinstance(kid, str) and kid in public_keys else \
        (list(public_keys.values()) if not kid else [])
    if not candidates:
        raise TokenError("token signed by an unknown key")
    signature = b64url_decode(parts[2])
    signing_input = f"{parts[0]}.{parts[1]}".encode()
    for public_key in candidates:
        try:
            public_key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
            break
        except InvalidSignature:
            continue
    else:
        raise TokenError("invalid signature")
    try:
        claims = json.loads(b64url_decode(parts[1]))
    except ValueError:
        raise TokenError("malformed token claims") from None
    if not isinstance(claims, dict):
        raise TokenError("malformed token claims")
    return claims
