"""Positions in the event log, and the consistency token that carries one to the read side.

An event's place in commit order is `(txid, position)`: the PostgreSQL transaction that wrote
it, then its sequence position. A command's response carries the key of the last event it
appended as a *consistency token*, `"<txid>.<position>"`; a query given that token waits until
the read models' checkpoint reaches it. `EventKey` is the one type that builds and parses it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from learnflow.errors import FieldViolation, InvalidArgument

CONSISTENCY_HEADER = "x-consistency-token"
# Both parts are non-negative integers that fit PostgreSQL's xid8 / bigint (and int64 in MongoDB).
_TOKEN = re.compile(r"([0-9]{1,19})\.([0-9]{1,19})")
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True, order=True)
class EventKey:
    """Commit order of an event: its transaction id, then its position."""

    txid: int
    position: int

    def token(self) -> str:
        """The consistency token of this event, as returned by commands."""
        return f"{self.txid}.{self.position}"

    @classmethod
    def parse(cls, token: str) -> EventKey:
        """The key a consistency token names; INVALID_ARGUMENT naming the header otherwise."""
        match = _TOKEN.fullmatch(token)
        if match is None or int(match.group(1)) > _INT64_MAX or int(match.group(2)) > _INT64_MAX:
            raise InvalidArgument(
                [FieldViolation(CONSISTENCY_HEADER, "not a token returned by a command")]
            )
        return cls(int(match.group(1)), int(match.group(2)))


ZERO = EventKey(0, 0)
