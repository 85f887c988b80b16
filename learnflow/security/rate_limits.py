"""Rate limits with the `limits` library: per principal and method class, plus per account
for logins. In-memory by default; `LEARNFLOW_RATE_LIMIT_STORAGE=redis://…` shares one budget
across server processes."""

from __future__ import annotations

import logging
import time

import redis.exceptions
from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from learnflow.errors import Unavailable
from learnflow.security.denials import RateLimited
from learnflow.settings import Settings

log = logging.getLogger("learnflow.rate_limits")

# Raised when the shared storage cannot be reached or answers garbage.
_STORAGE_ERRORS = (redis.exceptions.RedisError, StorageError, OSError)


class RateLimiter:
    def __init__(self, settings: Settings) -> None:
        uri = settings.rate_limit_storage
        if not uri.startswith("async+"):
            uri = "async+" + uri
        # redis-py's asyncio client rather than limits' default (coredis): one less dependency.
        options: dict[str, str] = {}
        if uri.startswith("async+redis"):
            options = {"implementation": "redispy", "key_prefix": settings.rate_limit_key_prefix}
        self.storage = storage_from_string(uri, **options)
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.classes: dict[str, RateLimitItem] = {
            "read": parse(settings.rate_limit_read),
            "write": parse(settings.rate_limit_write),
            "auth": parse(settings.rate_limit_auth),
            # Health and reflection, keyed by client address.
            "infra": parse(settings.rate_limit_infra),
        }
        self.login_per_account = parse(settings.rate_limit_login_per_account)

    async def hit(self, rate_class: str, principal: str) -> None:
        await self._hit(
            self.classes[rate_class], f"class:{rate_class}", "class", rate_class, principal
        )

    async def hit_login_account(self, email: str) -> None:
        await self._hit(self.login_per_account, "login-account", "login-account", email)

    async def _hit(self, item: RateLimitItem, scope: str, *identifiers: str) -> None:
        # Fail closed: without its counters the server cannot tell a burst from a trickle, so
        # it answers UNAVAILABLE (retryable) rather than serving unmetered or failing INTERNAL.
        try:
            if await self.limiter.hit(item, *identifiers):
                return
            stats = await self.limiter.get_window_stats(item, *identifiers)
        except _STORAGE_ERRORS as exc:
            log.error("rate-limit storage unreachable: %s: %s", type(exc).__name__, exc)
            raise Unavailable(
                "rate limiting is temporarily unavailable; retry shortly", 1.0
            ) from None
        retry_after = max(1.0, stats.reset_time - time.time())
        raise RateLimited(
            f"rate limit exceeded ({item}); retry in {retry_after:.0f}s",
            retry_after,
            scope=scope,
            limit=str(item),
        )
