"""Authorization refusals leave a trace: each PERMISSION_DENIED is audited with outcome
`denied`, in a transaction of its own (the handler's, if any, rolled back with its writes).

A client that probes cannot flood the audit log with refusals: per client, the first
`per_minute` refusals of a minute are recorded one by one; the rest of that minute are
counted and recorded as one aggregated row (`authorization.denied.aggregated`, with the
count) by the first refusal of a later minute, or at shutdown.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from learnflow.context import CallContext, reset_call, set_call
from learnflow.storage.unit_of_work import Database

log = logging.getLogger("learnflow.audit")

DENIED = "denied"
ACTION = "authorization.denied"
AGGREGATED = "authorization.denied.aggregated"
MAX_CLIENTS = 10_000  # windows kept in memory; the oldest go first


@dataclass
class _Window:
    started: float
    call: CallContext
    recorded: int = 0
    suppressed: int = 0


class DenialAudit:
    def __init__(self, db: Database, per_minute: int = 10) -> None:
        self.db = db
        self.per_minute = per_minute
        self._windows: dict[str, _Window] = {}

    async def record(self, call: CallContext, reason: str) -> None:
        """Audit one refusal of `call` (never raises: auditing must not change the answer)."""
        client = f"user:{call.actor_id}" if call.actor_id else f"addr:{call.client_address}"
        now = time.monotonic()
        window = self._windows.get(client)
        if window is None or now - window.started >= 60:
            if window is not None and window.suppressed:
                await self._write(window.call, AGGREGATED, {"count": window.suppressed})
            if window is None and len(self._windows) >= MAX_CLIENTS:
                self._windows.pop(next(iter(self._windows)))
            window = self._windows[client] = _Window(now, call)
        if window.recorded >= self.per_minute:
            window.suppressed += 1
            window.call = call
            return
        window.recorded += 1
        await self._write(call, ACTION, {"reason": reason[:200]})

    async def flush(self) -> None:
        """Records what is still counted (at shutdown)."""
        windows, self._windows = self._windows, {}
        for window in windows.values():
            if window.suppressed:
                await self._write(window.call, AGGREGATED, {"count": window.suppressed})

    async def _write(self, call: CallContext, action: str, details: dict[str, object]) -> None:
        token = set_call(call)  # the row names the refused caller, even when flushed later
        try:
            await self.db.audit_alone(action, call.method, DENIED, details)
        except Exception as exc:
            log.error("could not audit a refusal of %s: %s", call.method, type(exc).__name__)
        finally:
            reset_call(token)
