"""Verified access tokens are remembered until they expire, and only those."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from learnflow.errors import Unauthenticated
from learnflow.security.tokens import TokenService, load_keys


def service(tmp_path: Path, *, ttl_s: int = 900, leeway_s: int = 0, most: int = 8) -> TokenService:
    keys = load_keys(tmp_path, generate_if_empty=True)
    return TokenService(keys, "iss", "aud", ttl_s, leeway_s, verified_max=most)


def test_a_verified_token_is_answered_from_memory(tmp_path: Path) -> None:
    tokens = service(tmp_path)
    token = tokens.issue(uuid.uuid4(), "student", 3)
    first = tokens.verify(token)
    assert tokens.verify(token) is first
    assert first.principal.token_version == 3


def test_a_remembered_token_expires_on_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = service(tmp_path, ttl_s=60, leeway_s=5)
    token = tokens.issue(uuid.uuid4(), "student", 0)
    claims = tokens.verify(token)
    monkeypatch.setattr(time, "time", lambda: claims.expires_at + 4.9)
    assert tokens.verify(token) is claims  # within the leeway
    monkeypatch.setattr(time, "time", lambda: claims.expires_at + 5.0)
    with pytest.raises(Unauthenticated, match="expired"):
        tokens.verify(token)
    assert token not in tokens._verified  # forgotten: from now on PyJWT judges it again


def test_a_tampered_copy_is_verified_and_refused(tmp_path: Path) -> None:
    tokens = service(tmp_path)
    token = tokens.issue(uuid.uuid4(), "student", 0)
    tokens.verify(token)
    header, payload, signature = token.split(".")
    # Change a character in the middle: all its 6 bits are signature bits (the last character's
    # low bits are padding a decoder may ignore, and the old `[:-2] + "AA"` was sometimes the
    # same signature: a flaky test).
    middle = len(signature) // 2
    flipped = "B" if signature[middle] == "A" else "A"
    forged = f"{header}.{payload}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"
    with pytest.raises(Unauthenticated):
        tokens.verify(forged)
    other = service(tmp_path / "other")  # another key set never trusts this one's tokens
    with pytest.raises(Unauthenticated):
        other.verify(token)


def test_memory_is_bounded_least_recently_used_first(tmp_path: Path) -> None:
    tokens = service(tmp_path, most=2)
    a, b, c = (tokens.issue(uuid.uuid4(), "student", 0) for _ in range(3))
    tokens.verify(a)
    tokens.verify(b)
    tokens.verify(a)  # a is now the most recent
    tokens.verify(c)
    assert list(tokens._verified) == [a, c]
