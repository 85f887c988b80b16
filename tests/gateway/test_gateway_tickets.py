"""Stream tickets: single use, short-lived, bounded in number."""

from __future__ import annotations

import time

import pytest

from gateway.tickets import StreamTickets


def test_a_ticket_stands_for_its_authorization_once() -> None:
    tickets = StreamTickets()
    ticket = tickets.issue("Bearer abc")
    assert len(ticket) >= 32
    assert tickets.redeem(ticket) == "Bearer abc"
    assert tickets.redeem(ticket) is None
    assert tickets.redeem("made-up") is None


def test_an_expired_ticket_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    tickets = StreamTickets(ttl_s=60)
    ticket = tickets.issue("Bearer abc")
    later = time.monotonic() + 61
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert tickets.redeem(ticket) is None


def test_the_oldest_tickets_go_first_beyond_the_bound() -> None:
    tickets = StreamTickets(max_tickets=3)
    issued = [tickets.issue(f"Bearer {i}") for i in range(5)]
    assert [tickets.redeem(t) for t in issued] == [None, None, "Bearer 2", "Bearer 3", "Bearer 4"]
