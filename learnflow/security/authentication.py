"""Bearer-token authentication: JWT verification plus the account's live session state."""

from __future__ import annotations

from sqlalchemy import select

from learnflow.context import Principal
from learnflow.errors import Unauthenticated
from learnflow.security.tokens import TokenService
from learnflow.storage import tables
from learnflow.storage.unit_of_work import Database


class Authenticator:
    def __init__(self, tokens: TokenService, db: Database) -> None:
        self.tokens = tokens
        self.db = db

    def expiry(self, authorization: str) -> float:
        """When the bearer token stops being valid (epoch seconds); no database look-up."""
        return float(self.tokens.verify(_bearer(authorization)).expires_at)

    async def authenticate(self, authorization: str) -> Principal:
        claims = self.tokens.verify(_bearer(authorization))
        # One primary-key read per call, so that disabling a user or "log out everywhere"
        # (both bump token_version) takes effect at once rather than when tokens expire.
        async with self.db.engine.connect() as conn:
            account = (
                await conn.execute(
                    select(
                        tables.users.c.role, tables.users.c.disabled, tables.users.c.token_version
                    ).where(tables.users.c.id == claims.principal.user_id)
                )
            ).first()
        if account is None or account.disabled:
            raise Unauthenticated("account disabled or removed")
        if account.token_version != claims.principal.token_version:
            raise Unauthenticated("session revoked; log in again")
        return Principal(claims.principal.user_id, account.role, account.token_version)


def _bearer(authorization: str) -> str:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("authorization must be 'Bearer <access token>'")
    return token.strip()
