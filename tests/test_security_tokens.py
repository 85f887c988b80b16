"""Attack matrix: every forged, stale or misused token is refused with UNAUTHENTICATED and
nothing runs."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from learnflow.server import Backend
from learnflow.v1 import identity_pb2, identity_pb2_grpc
from tests.support import Caller


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(backend: Backend, caller: Caller, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": backend.settings.jwt_issuer,
        "aud": backend.settings.jwt_audience,
        "sub": caller.user_id,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "role": "admin",
        "tv": 0,
        "use": "access",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(backend: Backend, claims: dict[str, Any]) -> str:
    tokens = backend.tokens
    return jwt.encode(
        claims, tokens._signing_key, algorithm="EdDSA", headers={"kid": tokens.signer.kid}
    )


def forge_alg_none(backend: Backend, caller: Caller) -> str:
    header = {"alg": "none", "typ": "JWT", "kid": backend.tokens.signer.kid}
    body = _claims(backend, caller)
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(body).encode())}."


def forge_hs256_with_public_key(backend: Backend, caller: Caller) -> str:
    public_pem = backend.tokens.signer.public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": backend.tokens.signer.kid}
    signing_input = (
        f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(_claims(backend, caller)).encode())}"
    )
    import hashlib
    import hmac

    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def forge_unknown_kid(backend: Backend, caller: Caller) -> str:
    other = Ed25519PrivateKey.generate()
    return jwt.encode(
        _claims(backend, caller), other, algorithm="EdDSA", headers={"kid": "not-a-known-key"}
    )


def forge_tampered_payload(backend: Backend, caller: Caller) -> str:
    genuine = caller.access_token
    header, payload, signature = genuine.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "admin"
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


ATTACKS: dict[str, Callable[[Backend, Caller], str]] = {
    "malformed": lambda b, c: "not.a.jwt",
    "alg none": forge_alg_none,
    "HS256 with the public key": forge_hs256_with_public_key,
    "expired": lambda b, c: _sign(
        b, _claims(b, c, iat=int(time.time()) - 7200, nbf=None, exp=int(time.time()) - 3600)
    ),
    "not yet valid": lambda b, c: _sign(b, _claims(b, c, nbf=int(time.time()) + 3600)),
    "wrong audience": lambda b, c: _sign(b, _claims(b, c, aud="someone-else")),
    "wrong issuer": lambda b, c: _sign(b, _claims(b, c, iss="https://evil.example")),
    "missing jti": lambda b, c: _sign(b, _claims(b, c, jti=None)),
    "unknown kid": forge_unknown_kid,
    "tampered payload": forge_tampered_payload,
    "refresh token as access token": lambda b, c: c.refresh_token,
}


async def _revoke_with(channel: grpc.aio.Channel, victim: Caller, authorization: str) -> None:
    """An authenticated command that would revoke the victim's refresh token if it ran."""
    stub = identity_pb2_grpc.IdentityServiceStub(channel)
    metadata = (("authorization", authorization),) if authorization else ()
    await stub.RevokeSession(
        identity_pb2.RevokeSessionRequest(refresh_token=victim.refresh_token), metadata=metadata
    )


@pytest.mark.parametrize("attack", [*ATTACKS, "no token"])
async def test_forged_or_misused_tokens_are_refused_and_nothing_runs(
    attack: str, backend: Backend, channel: grpc.aio.Channel
) -> None:
    victim = await Caller.register(channel)
    authorization = "" if attack == "no token" else f"Bearer {ATTACKS[attack](backend, victim)}"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _revoke_with(channel, victim, authorization)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # Nothing ran: the victim's refresh token still works.
    stub = identity_pb2_grpc.IdentityServiceStub(channel)
    refreshed = await stub.RefreshSession(
        identity_pb2.RefreshSessionRequest(refresh_token=victim.refresh_token)
    )
    assert refreshed.access_token


async def test_the_genuine_token_is_accepted(channel: grpc.aio.Channel) -> None:
    """The control case: the same call with the real token does run."""
    victim = await Caller.register(channel)
    await _revoke_with(channel, victim, f"Bearer {victim.access_token}")
    stub = identity_pb2_grpc.IdentityServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.RefreshSession(
            identity_pb2.RefreshSessionRequest(refresh_token=victim.refresh_token)
        )
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_token_of_a_disabled_user_is_refused(
    channel: grpc.aio.Channel, admin: Caller
) -> None:
    victim = await Caller.register(channel)
    stub = identity_pb2_grpc.IdentityServiceStub(channel)
    await stub.SetUserDisabled(
        identity_pb2.SetUserDisabledRequest(user_id=victim.user_id, disabled=True),
        metadata=admin.metadata(),
    )
    profiles = identity_pb2_grpc.ProfileServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await profiles.GetCurrentUser(
            identity_pb2.GetCurrentUserRequest(), metadata=victim.metadata()
        )
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_token_issued_before_logout_everywhere_is_refused(
    channel: grpc.aio.Channel,
) -> None:
    victim = await Caller.register(channel)
    stub = identity_pb2_grpc.IdentityServiceStub(channel)
    second = await stub.CreateSession(
        identity_pb2.CreateSessionRequest(email=victim.user.email, password="a-good-password")
    )
    await stub.RevokeSession(
        identity_pb2.RevokeSessionRequest(all_sessions=True), metadata=victim.metadata()
    )
    profiles = identity_pb2_grpc.ProfileServiceStub(channel)
    for token in (victim.access_token, second.access_token):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await profiles.GetCurrentUser(
                identity_pb2.GetCurrentUserRequest(),
                metadata=(("authorization", f"Bearer {token}"),),
            )
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as refresh_err:
        await stub.RefreshSession(
            identity_pb2.RefreshSessionRequest(refresh_token=second.refresh_token)
        )
    assert refresh_err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_keys_rotate_old_key_still_verifies(tmp_path: Any) -> None:
    from learnflow.security.tokens import TokenService, load_keys

    old_keys = load_keys(tmp_path, generate_if_empty=True)
    old = TokenService(old_keys, "iss", "aud", 60, 0)
    token = old.issue(uuid.uuid4(), "student", 0)
    newer = Ed25519PrivateKey.generate()
    (tmp_path / "99999999T999999.pem").write_bytes(
        newer.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    rotated = TokenService(load_keys(tmp_path, generate_if_empty=False), "iss", "aud", 60, 0)
    assert rotated.signer.kid != old.signer.kid  # the newest key signs
    assert rotated.verify(token).principal.role == "student"  # the old one still verifies
    assert {k["kid"] for k in rotated.jwks()} == {old.signer.kid, rotated.signer.kid}
