"""Bearer-token authentication: JWT verification plus the account's live session state."""

from __future__ import annotations

from learnflow.context import Principal
from learnflow.errors import Unauthenticated
from learnflow.security.accounts import AccountStates
from learnflow.security.tokens import TokenService
from learnflow.storage.unit_of_work import Database


class Authenticator:
    def __init__(
        self, tokens: TokenService, db: Database, accounts: AccountStates | None = None
    ) -> None:
        self.tokens = tokens
        self.db = db
        self.accounts = accounts or AccountStates(db)

    def expiry(self, authorization: str) -> float:
        """When the bearer token stops being valid (epoch seconds); no database look-up."""
        return float(self.tokens.verify(_bearer(authorization)).expires_at)

    async def authenticate(self, authorization: str) -> Principal:
        claims = self.tokens.verify(_bearer(authorization))
        # The account's live state (cached; see learnflow.security.accounts), so that disabling
        # a user or "log out everywhere" (both bump token_version) takes effect at once rather
        # than when tokens expire.
        user_id = claims.principal.user_id
        account = await self.accounts.get(user_id)
        if (
            account is None
            or account.disabled
            or account.token_version != claims.principal.token_version
            or account.role != claims.principal.role
        ):
            # Before refusing (or taking another role than the token's), make sure the cache
            # is not the stale side: the change may be announced but not heard yet.
            account = await self.accounts.get(user_id, fresh=True)
        if account is None or account.disabled:
            raise Unauthenticated("account disabled or removed")
        if account.token_version != claims.principal.token_version:
            raise Unauthenticated("session revoked; log in again")
        if account.role == claims.principal.role:
            return claims.principal  # the one kept with the verified token (and its text forms)
        return Principal(claims.principal.user_id, account.role, account.token_version)


def _bearer(authorization: str) -> str:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("authorization must be 'Bearer <access token>'")
    return token.strip()
