"""Access tokens (EdDSA JWT with `kid`), JWKS, and opaque refresh tokens.

Keys are Ed25519 PEM files in one directory: every key there verifies, the newest (by file
name, e.g. `2026-11-24.pem`) signs. Rotation: add a newer key, later remove the old one.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from learnflow.context import Principal
from learnflow.errors import Unauthenticated

ALGORITHMS = ["EdDSA"]  # the allow-list: nothing else is ever accepted
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "jti"]
TOKEN_USE = "access"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: Ed25519PrivateKey | None
    public: Ed25519PublicKey

    def jwk(self) -> dict[str, str]:
        raw = self.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": x,
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        }


def _kid_for(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_keys(directory: Path, generate_if_empty: bool) -> list[SigningKey]:
    """Load every `*.pem` in `directory` (private or public keys), newest file name last."""
    directory.mkdir(parents=True, exist_ok=True)
    files = sorted(directory.glob("*.pem"))
    if not files and generate_if_empty:
        key = Ed25519PrivateKey.generate()
        path = directory / time.strftime("%Y%m%dT%H%M%S.pem")
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        path.chmod(0o600)
        files = [path]
    keys: list[SigningKey] = []
    for path in files:
        data = path.read_bytes()
        if b"PRIVATE KEY" in data:
            private = serialization.load_pem_private_key(data, password=None)
            if not isinstance(private, Ed25519PrivateKey):
                raise SystemExit(f"{path}: only Ed25519 keys are supported")
            public = private.public_key()
            keys.append(SigningKey(_kid_for(public), private, public))
        else:
            loaded = serialization.load_pem_public_key(data)
            if not isinstance(loaded, Ed25519PublicKey):
                raise SystemExit(f"{path}: only Ed25519 keys are supported")
            keys.append(SigningKey(_kid_for(loaded), None, loaded))
    if not any(k.private for k in keys):
        raise SystemExit(f"no Ed25519 private key in {directory}: cannot sign access tokens")
    return keys


@dataclass(frozen=True)
class AccessClaims:
    principal: Principal
    jti: str
    expires_at: int


# Access tokens whose signature was verified, remembered until they expire: verifying an
# EdDSA JWT costs a few hundred microseconds, more than the rest of a cached read, and a client
# sends the same token for its whole lifetime. Bounded (least recently used first out).
VERIFIED_TOKENS_MAX = 8192


class TokenService:
    def __init__(
        self,
        keys: list[SigningKey],
        issuer: str,
        audience: str,
        ttl_s: int,
        leeway_s: int,
        verified_max: int = VERIFIED_TOKENS_MAX,
    ) -> None:
        self.keys = {k.kid: k for k in keys}
        # Only tokens that passed `verify` in full; the keys never change while this lives,
        # so a remembered verification stays true until the token expires.
        self._verified: OrderedDict[str, AccessClaims] = OrderedDict()
        self._verified_max = verified_max
        signers = [k.private for k in keys if k.private is not None]
        self.signer = [k for k in keys if k.private is not None][-1]
        self._signing_key: Ed25519PrivateKey = signers[-1]
        self.issuer = issuer
        self.audience = audience
        self.ttl_s = ttl_s
        self.leeway_s = leeway_s

    def jwks(self) -> list[dict[str, str]]:
        return [k.jwk() for k in self.keys.values()]

    def issue(self, user_id: uuid.UUID, role: str, token_version: int) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(user_id),
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl_s,
            "jti": uuid.uuid4().hex,
            "role": role,
            "tv": token_version,
            "use": TOKEN_USE,
        }
        return jwt.encode(
            claims, self._signing_key, algorithm="EdDSA", headers={"kid": self.signer.kid}
        )

    def verify(self, token: str) -> AccessClaims:
        """Verify signature, algorithm, issuer, audience, time claims. Raises Unauthenticated.
        A token verified before is answered from memory until it expires (the account's
        live state is checked by the caller on every call all the same)."""
        known = self._verified.get(token)
        if known is not None:
            # PyJWT's rule: expired once `exp` is `leeway` seconds in the past.
            if known.expires_at + self.leeway_s > time.time():
                self._verified.move_to_end(token)
                return known
            del self._verified[token]
            raise Unauthenticated("access token expired")
        claims = self._verify_signed(token)
        self._verified[token] = claims
        if len(self._verified) > self._verified_max:
            self._verified.popitem(last=False)
        return claims

    def _verify_signed(self, token: str) -> AccessClaims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("malformed access token") from None
        if header.get("alg") not in ALGORITHMS:
            raise Unauthenticated("access token algorithm not allowed")
        key = self.keys.get(str(header.get("kid", "")))
        if key is None:
            raise Unauthenticated("access token signed by an unknown key")
        try:
            claims = jwt.decode(
                token,
                key.public,
                algorithms=ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("access token expired") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid access token: {exc}") from None
        if claims.get("use") != TOKEN_USE:
            raise Unauthenticated("not an access token")
        try:
            user_id = uuid.UUID(str(claims["sub"]))
            role = str(claims["role"])
            token_version = int(claims["tv"])
        except (KeyError, ValueError, TypeError):
            raise Unauthenticated("access token lacks LearnFlow claims") from None
        return AccessClaims(
            Principal(user_id, role, token_version), str(claims["jti"]), claims["exp"]
        )


def new_refresh_token() -> tuple[str, bytes]:
    """An opaque refresh token and the hash stored in place of it."""
    token = "rt_" + secrets.token_urlsafe(32)
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> bytes:
    # The token has 256 bits of entropy, so a fast hash is enough (no need for bcrypt).
    return hashlib.sha256(token.encode()).digest()
