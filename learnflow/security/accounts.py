"""What authenticates a caller beyond a valid token — role, disabled flag, token version —
cached per user in each server process, so that an authenticated call needs no database round
trip once the account is known.

Freshness: migration 0004's trigger announces every change of those columns on the
`learnflow_accounts` channel when its transaction commits, and every process listens
(`AccountStates.listen`) and drops the entry at once (well within a second: disabling a user,
"log out everywhere", a role change and refresh-token reuse all change one of them). If the
listening connection is down, nothing can be trusted for long: entries then live at most
`fallback_ttl_s`, and the whole cache is dropped when listening resumes. Entries also expire
after `ttl_s` in any case, as a safety net.

A look-up racing with a change must not store the old state after the change was announced:
each look-up remembers how many announcements it started after and stores its result only if
none arrived meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import select

from learnflow.storage import tables
from learnflow.storage.unit_of_work import Database

log = logging.getLogger("learnflow.accounts")

CHANNEL = "learnflow_accounts"


@dataclass(frozen=True)
class AccountState:
    role: str
    disabled: bool
    token_version: int


class AccountStates:
    def __init__(
        self,
        db: Database,
        *,
        ttl_s: float = 30.0,
        fallback_ttl_s: float = 0.5,
        max_entries: int = 100_000,
    ) -> None:
        self.db = db
        self.ttl_s = ttl_s
        self.fallback_ttl_s = fallback_ttl_s
        self.max_entries = max_entries
        self.listening = False
        self.lookups = 0  # database look-ups made (the cache's misses), for tests and metrics
        self._entries: dict[uuid.UUID, tuple[float, AccountState | None]] = {}
        self._announcements = 0

    async def get(self, user_id: uuid.UUID, fresh: bool = False) -> AccountState | None:
        """The account's state, or None when there is no such user; `fresh` reads it from the
        database whatever the cache holds."""
        now = time.monotonic()
        cached = self._entries.get(user_id)
        ttl = self.ttl_s if self.listening else self.fallback_ttl_s
        if cached is not None and now - cached[0] < ttl and not fresh:
            return cached[1]
        seen = self._announcements
        state = await self._load(user_id)
        if self._announcements == seen:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()  # rare: a cold start beats an unbounded cache
            self._entries[user_id] = (now, state)
        return state

    def forget(self, user_id: uuid.UUID | None = None) -> None:
        """Drops one entry (or all): the next call reads the database."""
        self._announcements += 1
        if user_id is None:
            self._entries.clear()
        else:
            self._entries.pop(user_id, None)

    async def _load(self, user_id: uuid.UUID) -> AccountState | None:
        self.lookups += 1
        async with self.db.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        tables.users.c.role, tables.users.c.disabled, tables.users.c.token_version
                    ).where(tables.users.c.id == user_id)
                )
            ).first()
        return AccountState(row.role, row.disabled, row.token_version) if row else None

    async def listen(self, postgres_url: str, stop: asyncio.Event) -> None:
        """Follows the announcements until `stop`; reconnects when the connection drops."""
        while not stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(
                    postgres_url, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.forget()  # whatever changed while nobody listened
                    self.listening = True
                    log.info("following account changes")
                    await self._follow(conn, stop)
            except (psycopg.Error, OSError) as exc:
                log.warning("account changes unavailable (%s); short-lived cache", exc)
            finally:
                self.listening = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    async def _follow(self, conn: psycopg.AsyncConnection[Any], stop: asyncio.Event) -> None:
        while not stop.is_set():
            async for note in conn.notifies(timeout=1.0):
                try:
                    self.forget(uuid.UUID(note.payload))
                except ValueError:
                    self.forget()
