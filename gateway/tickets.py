"""Stream tickets: how a browser's `EventSource` (which cannot send an `Authorization`
header) opens a server stream.

The page asks `POST /-/stream-tickets` with its bearer token and gets a short-lived,
single-use ticket; it then opens `GET <stream path>?ticket=<ticket>`, and the gateway calls the
backend with the `Authorization` the ticket stands for. Generic: the gateway neither reads nor
checks the token (the backend does, on the stream's call); it only keeps it, in memory, for
`ttl_s` seconds, for one use, and for at most `max_tickets` at once (the oldest go first), so a
ticket in a URL (logs, history) is worth nothing a minute later. A ticket opens only server
streams.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict

TICKET_PARAM = "ticket"


class StreamTickets:
    def __init__(self, ttl_s: float = 60.0, max_tickets: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_tickets = max_tickets
        self._tickets: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def issue(self, authorization: str) -> str:
        now = time.monotonic()
        while self._tickets:  # expired ones first
            oldest = next(iter(self._tickets.values()))
            if oldest[0] > now and len(self._tickets) < self.max_tickets:
                break
            self._tickets.popitem(last=False)
        ticket = secrets.token_urlsafe(24)
        self._tickets[ticket] = (now + self.ttl_s, authorization)
        return ticket

    def redeem(self, ticket: str) -> str | None:
        """The authorization `ticket` stands for, once; None if unknown, used or expired."""
        entry = self._tickets.pop(ticket, None)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]
