"""bcrypt password hashing, always in a worker thread: a cost-12 hash takes ~250 ms of CPU."""

from __future__ import annotations

import asyncio

import bcrypt

from learnflow.errors import FieldViolation

MIN_PASSWORD_BYTES = 8
# bcrypt only reads the first 72 bytes; longer passwords are refused rather than truncated.
MAX_PASSWORD_BYTES = 72


def password_violation(password: str, field: str = "password") -> FieldViolation | None:
    size = len(password.encode("utf-8"))
    if size < MIN_PASSWORD_BYTES:
        return FieldViolation(field, f"must be at least {MIN_PASSWORD_BYTES} bytes of UTF-8")
    if size > MAX_PASSWORD_BYTES:
        return FieldViolation(
            field, f"must be at most {MAX_PASSWORD_BYTES} bytes of UTF-8 (got {size})"
        )
    return None


class PasswordHasher:
    def __init__(self, rounds: int = 12) -> None:
        self.rounds = rounds
        # Verified against when an email is unknown, so that login takes the same time.
        self._decoy = bcrypt.hashpw(b"decoy-password-never-matches", bcrypt.gensalt(rounds))

    async def hash(self, password: str) -> bytes:
        salt = bcrypt.gensalt(self.rounds)
        return await asyncio.to_thread(bcrypt.hashpw, password.encode("utf-8"), salt)

    async def verify(self, password: str, hashed: bytes | None) -> bool:
        """Whether `password` matches `hashed`. The same bcrypt work is done whatever the
        outcome: against the decoy when there is no account (`hashed` is None) or when the
        password is longer than registration accepts, which never matches (bcrypt would only
        read its first 72 bytes, so a registered password plus any suffix would)."""
        candidate = password.encode("utf-8")
        acceptable = hashed is not None and len(candidate) <= MAX_PASSWORD_BYTES
        target = hashed if acceptable and hashed is not None else self._decoy
        ok = await asyncio.to_thread(bcrypt.checkpw, candidate[:MAX_PASSWORD_BYTES], target)
        return ok and acceptable
