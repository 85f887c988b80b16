"""The projection base: staleness, sortable UTC keys, and handler registration."""

from __future__ import annotations

import datetime as dt

import pytest

from learnflow import events as ev
from learnflow.positions import EventKey
from learnflow.projections.base import Batch, Event, Projection, on, stale, utc_key
from learnflow.projections.memory import MemoryBatch, MemoryStore
from learnflow.projections.registry import all_projections


def event(position: int, event_type: str = "user.registered") -> Event:
    return Event(
        key=EventKey(10, position),
        event_type=event_type,
        aggregate_type="user",
        aggregate_id="u",
        schema_version=1,
        payload={},
        occurred_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )


def test_the_version_of_an_event_is_its_position_not_its_transaction() -> None:
    assert event(7).version == 7


def test_a_document_is_stale_for_an_event_it_already_reflects() -> None:
    assert stale(None, event(1)) is False  # nothing yet: apply
    assert stale({"v": 4}, event(5)) is False
    assert stale({"v": 5}, event(5)) is True  # the same event again: a replay
    assert stale({"v": 6}, event(5)) is True  # a later event was applied
    assert stale({}, event(1)) is False  # no version: as old as can be


def test_staleness_can_follow_another_version_field() -> None:
    doc = {"v": 100, "v_course": 3}
    assert stale(doc, event(4), "v_course") is False
    assert stale(doc, event(3), "v_course") is True


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("2026-03-01T12:00:00+02:00", "2026-03-01T10:00:00.000000Z"),
        ("2026-03-01T10:00:00Z", "2026-03-01T10:00:00.000000Z"),
        ("2026-03-01T10:00:00", "2026-03-01T10:00:00.000000Z"),  # naive: taken as UTC
        ("2026-03-01T10:00:00.5-01:30", "2026-03-01T11:30:00.500000Z"),
        ("2025-12-31T23:30:00-01:00", "2026-01-01T00:30:00.000000Z"),
        ("", ""),
        (None, ""),
    ],
)
def test_utc_key(value: str | None, key: str) -> None:
    assert utc_key(value) == key


def test_utc_keys_sort_like_the_times_they_name() -> None:
    times = [
        "2026-03-01T10:00:00.000001+00:00",
        "2026-03-01T11:59:59+02:00",  # 09:59:59 UTC: earliest
        "2026-03-01T10:00:00+00:00",
        "2026-03-01T09:00:00-01:00",  # 10:00 UTC: ties with the one above
        "2026-03-01T10:00:00.5+00:00",
    ]
    by_text = sorted(times, key=utc_key)
    by_time = sorted(times, key=dt.datetime.fromisoformat)
    assert [utc_key(t) for t in by_text] == [utc_key(t) for t in by_time]
    assert len({len(utc_key(t)) for t in times}) == 1  # fixed width


def test_a_malformed_time_is_an_error_not_a_wrong_key() -> None:
    with pytest.raises(ValueError):
        utc_key("yesterday")


class Recorder(Projection):
    name = "recorder"

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    @on(ev.USER_REGISTERED, ev.USER_DISABLED)
    async def users(self, batch: Batch, event: Event) -> None:
        self.seen.append(("users", event.event_type))

    @on(ev.COMMENT_CREATED)
    async def comments(self, batch: Batch, event: Event) -> None:
        self.seen.append(("comments", event.event_type))


class Other(Projection):
    @on(ev.COURSE_CREATED)
    async def courses(self, batch: Batch, event: Event) -> None:
        raise AssertionError("not called")


def test_on_registers_handlers_by_event_name_per_class() -> None:
    assert set(Recorder.handlers) == {"user.registered", "user.disabled", "comment.created"}
    assert Recorder.handlers["user.disabled"] is Recorder.users
    assert set(Other.handlers) == {"course.created"}  # subclasses don't share a registry
    assert Projection.__dict__.get("handlers") is None


async def test_apply_calls_the_registered_handler_and_skips_other_events() -> None:
    recorder = Recorder()
    batch = MemoryBatch(MemoryStore())
    for event_type in ("user.disabled", "session.created", "comment.created", "no.such"):
        await recorder.apply(batch, event(1, event_type))
    assert recorder.seen == [("users", "user.disabled"), ("comments", "comment.created")]


def test_every_event_type_with_a_read_model_has_a_handler() -> None:
    handled = {name for p in all_projections() for name in p.handlers}
    catalogue = {value.name for value in vars(ev).values() if isinstance(value, ev.EventType)}
    sessions = {name for name in catalogue if name.startswith("session.")}
    # Written only so that a taken-email registration appends as many events as a new one;
    # no read model shows that it happened (the owner is told by mail, the audit log keeps it).
    unprojected = sessions | {ev.USER_REGISTRATION_REPEATED.name}
    assert handled <= catalogue  # no handler listens for a name no command emits
    assert handled == catalogue - unprojected


def test_the_projector_order_puts_the_catalog_before_progress() -> None:
    names = [p.name for p in all_projections()]
    assert names.index("catalog") < names.index("progress")
    assert len(set(names)) == len(names)
