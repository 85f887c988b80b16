"""One suite of projection tests, many read stores (the eventsourcing pattern).

`ProjectionSuite` drives every projection handler, through `all_projections()` in the
projector's order, with realistic events built from the typed payloads of the event catalogue,
and asserts the read-model documents they leave. A subclass supplies the store under test by
implementing `open_stores`: an async context manager yielding a factory of fresh, empty
`ReadModel`s (a batch factory plus a way to read documents back). tests/unit runs the suite
on the in-memory batch, tests/test_projections_read_store.py on MongoDB/FerretDB.
"""

from __future__ import annotations

import abc
import datetime as dt
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

import pytest

from learnflow import events as ev
from learnflow.events import EventType
from learnflow.positions import EventKey
from learnflow.projections.base import Batch, Event
from learnflow.projections.catalog import answers_by_question
from learnflow.projections.registry import all_projections
from learnflow.projections.store import Document

P = TypeVar("P")

COLLECTIONS = (
    "users",
    "audit_events",
    "courses",
    "lessons",
    "quiz_answers",
    "progress",
    "progress_courses",
    "progress_users",
    "dashboards",
    "comments",
)


class ReadModel(abc.ABC):
    """One empty read store under test."""

    @abc.abstractmethod
    def batch(self) -> Batch:
        """A batch over this store, as the projector makes one per batch of events."""

    @abc.abstractmethod
    async def documents(self, collection: str) -> list[Document]:
        """Every document of `collection` as stored, by `_id`."""

    async def get(self, collection: str, doc_id: str) -> Document:
        found = [d for d in await self.documents(collection) if d["_id"] == doc_id]
        assert found, f"no {collection} document {doc_id!r}"
        return found[0]

    async def snapshot(self) -> dict[str, list[Document]]:
        return {name: await self.documents(name) for name in COLLECTIONS}

    async def apply(self, events: Sequence[Event], per_batch: int | None = None) -> None:
        """Applies `events` like the projector: every projection in order, one flush per batch
        of `per_batch` events (all in one batch when None)."""
        size = per_batch or max(len(events), 1)
        projections = all_projections()
        for start in range(0, len(events), size):
            batch = self.batch()
            for event in events[start : start + size]:
                for projection in projections:
                    await projection.apply(batch, event)
            await batch.flush()


StoreFactory = Callable[[], Awaitable[ReadModel]]


# ---------------------------------------------------------------------------- events


class Stream:
    """Events in commit order: each gets the next position (its `v` in the documents)."""

    def __init__(self) -> None:
        self._positions = itertools.count(1)
        self.events: list[Event] = []

    def add(self, kind: EventType[P], aggregate_id: str, payload: P) -> Event:
        position = next(self._positions)
        event = Event(
            key=EventKey(1000 + position, position),
            event_type=kind.name,
            aggregate_type=kind.aggregate_type,
            aggregate_id=aggregate_id,
            schema_version=ev.SCHEMA_VERSION,
            # Through JSON, as the projector reads payloads from jsonb.
            payload=json.loads(json.dumps(payload)),
            occurred_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=position),
        )
        self.events.append(event)
        return event


def new_id() -> str:
    return str(uuid.uuid4())


def at(minute: int, offset: str = "+00:00") -> str:
    return f"2026-03-01T10:{minute:02d}:00{offset}"


def user(
    user_id: str, role: str = "student", disabled: bool = False, name: str = "Ada Lovelace"
) -> ev.UserPayload:
    return {
        "id": user_id,
        "email": f"{user_id}@example.com",
        "display_name": name,
        "role": role,
        "disabled": disabled,
        "created_at": at(0),
    }


def course(
    course_id: str,
    owner_id: str,
    *,
    title: str = "Intro to Rust",
    state: str = "draft",
    lesson_count: int = 0,
    enrolled: int = 0,
    published_at: str | None = None,
) -> ev.CoursePayload:
    return {
        "id": course_id,
        "owner_id": owner_id,
        "owner_name": "Grace Hopper",
        "title": title,
        "slug": "intro-to-rust",
        "summary": "Ownership and borrowing",
        "tags": ["rust", "systems"],
        "level": "beginner",
        "state": state,
        "capacity": 30,
        "enrollment_open_at": None,
        "enrollment_close_at": at(59),
        "lesson_count": lesson_count,
        "active_enrollment_count": enrolled,
        "created_at": at(1),
        "updated_at": at(2),
        "published_at": published_at,
    }


QUIZ_CONTENT: dict[str, object] = {
    "questions": [
        {"id": "q1", "prompt": "2+2?", "choices": ["3", "4"], "correct_choice_indexes": [1]},
        {
            "id": "q2",
            "prompt": "Primes?",
            "choices": ["2", "4", "5"],
            "correct_choice_indexes": [0, 2],
        },
    ],
    "pass_threshold_percent": 70,
}
ARTICLE_CONTENT: dict[str, object] = {"markdown": "# Hello"}
VIDEO_CONTENT: dict[str, object] = {"url": "https://videos.example/1", "duration_seconds": 60}


def outline(*lessons: tuple[str, str, str]) -> list[ev.OutlineEntry]:
    """(id, title, content type) in course order, positions from 1."""
    return [
        {"id": lesson_id, "title": title, "position": i, "content_type": kind}
        for i, (lesson_id, title, kind) in enumerate(lessons, start=1)
    ]


def lesson(
    lesson_id: str,
    course_id: str,
    title: str,
    kind: str,
    content: dict[str, object],
    course_outline: list[ev.OutlineEntry],
    course_title: str = "Intro to Rust",
) -> ev.LessonPayload:
    position = next(e["position"] for e in course_outline if e["id"] == lesson_id)
    return {
        "id": lesson_id,
        "course_id": course_id,
        "course_title": course_title,
        "title": title,
        "position": position,
        "content_type": kind,
        "content": content,
        "created_at": at(3),
        "updated_at": at(4),
        "outline": course_outline,
    }


def enrollment(
    course_id: str,
    user_id: str,
    state: str = "active",
    updated: str = at(10),
    completed_at: str | None = None,
    count: int = 1,
) -> ev.EnrollmentPayload:
    return {
        "course_id": course_id,
        "user_id": user_id,
        "state": state,
        "enrolled_at": at(10),
        "updated_at": updated,
        "completed_at": completed_at,
        "active_enrollment_count": count,
    }


def comment(
    comment_id: str,
    course_id: str,
    lesson_id: str,
    created: str,
    parent_id: str = "",
    body: str = "A question",
    deleted: bool = False,
) -> ev.CommentPayload:
    return {
        "id": comment_id,
        "course_id": course_id,
        "lesson_id": lesson_id,
        "parent_id": parent_id,
        "author_id": "author-1",
        "author_name": "Ada",
        "body": body,
        "deleted": deleted,
        "created_at": created,
        "updated_at": created,
    }


def audit(seq: int, outcome: str, actor_id: str = "") -> ev.AuditPayload:
    return {
        "id": seq,
        "actor_id": actor_id,
        "action": "Login",
        "resource": "users/x",
        "outcome": outcome,
        "request_id": f"r-{seq}",
        "client_address": "10.0.0.1",
        "occurred_at": at(3),
    }


class Course:
    """A course with three lessons (article, quiz, video) and one enrolled student."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.id, self.owner, self.student = new_id(), new_id(), new_id()
        self.article, self.quiz, self.video = new_id(), new_id(), new_id()
        s = stream
        s.add(ev.USER_REGISTERED, self.owner, user(self.owner, "instructor"))
        s.add(ev.USER_REGISTERED, self.student, user(self.student))
        s.add(ev.COURSE_CREATED, self.id, course(self.id, self.owner))
        entries = [(self.article, "Welcome", "article")]
        self._lesson(ev.LESSON_CREATED, self.article, "Welcome", ARTICLE_CONTENT, entries)
        entries.append((self.quiz, "Check", "quiz"))
        self._lesson(ev.LESSON_CREATED, self.quiz, "Check", QUIZ_CONTENT, entries)
        entries.append((self.video, "Watch", "video"))
        self._lesson(ev.LESSON_CREATED, self.video, "Watch", VIDEO_CONTENT, entries)
        self.entries = entries
        s.add(ev.COURSE_COUNTS_CHANGED, self.id, course(self.id, self.owner, lesson_count=3))
        s.add(
            ev.COURSE_PUBLISHED,
            self.id,
            course(self.id, self.owner, state="published", lesson_count=3, published_at=at(5)),
        )
        s.add(ev.ENROLLMENT_ACTIVATED, self.id, enrollment(self.id, self.student))
        s.add(
            ev.COURSE_COUNTS_CHANGED,
            self.id,
            course(
                self.id,
                self.owner,
                state="published",
                lesson_count=3,
                enrolled=1,
                published_at=at(5),
            ),
        )

    def _lesson(
        self,
        kind: EventType[ev.LessonPayload],
        lesson_id: str,
        title: str,
        content: dict[str, object],
        entries: list[tuple[str, str, str]],
    ) -> Event:
        content_type = next(k for i, _, k in entries if i == lesson_id)
        return self.stream.add(
            kind,
            lesson_id,
            lesson(lesson_id, self.id, title, content_type, content, outline(*entries)),
        )

    def complete(self, lesson_id: str, done: list[str], minute: int = 20) -> Event:
        payload: ev.LessonCompletedPayload = {
            "user_id": self.student,
            "course_id": self.id,
            "lesson_id": lesson_id,
            "completed_at": at(minute),
            "completed_lesson_ids": done,
            "lesson_count": 3,
        }
        return self.stream.add(ev.LESSON_COMPLETED, self.id, payload)

    def attempt(self, best: int, minute: int = 25) -> Event:
        payload: ev.QuizAttemptedPayload = {
            "user_id": self.student,
            "course_id": self.id,
            "lesson_id": self.quiz,
            "attempt_id": new_id(),
            "score": best,
            "passed": best >= 70,
            "best_score": best,
            "attempted_at": at(minute),
        }
        return self.stream.add(ev.QUIZ_ATTEMPTED, self.id, payload)

    def delete_quiz(self) -> Event:
        self.entries = [e for e in self.entries if e[0] != self.quiz]
        payload: ev.LessonDeletedPayload = {
            "id": self.quiz,
            "course_id": self.id,
            "outline": outline(*self.entries),
        }
        return self.stream.add(ev.LESSON_DELETED, self.quiz, payload)

    def update_lesson(
        self, lesson_id: str, title: str, kind: str, content: dict[str, object]
    ) -> Event:
        self.entries = [
            (i, title, kind) if i == lesson_id else (i, t, k) for i, t, k in self.entries
        ]
        return self._lesson(ev.LESSON_UPDATED, lesson_id, title, content, self.entries)

    def counts(self, lesson_count: int, title: str = "Intro to Rust") -> Event:
        payload = course(
            self.id,
            self.owner,
            title=title,
            state="published",
            lesson_count=lesson_count,
            enrolled=1,
            published_at=at(5),
        )
        return self.stream.add(ev.COURSE_COUNTS_CHANGED, self.id, payload)


def full_history() -> tuple[Stream, Course]:
    """Every kind of event the projections follow, in a plausible order."""
    s = Stream()
    c = Course(s)
    s.add(ev.USER_ROLE_CHANGED, c.student, user(c.student, "instructor"))
    session: ev.SessionPayload = {"user_id": c.student}
    s.add(ev.SESSION_CREATED, c.student, session)  # followed by no projection
    s.add(ev.AUDIT_RECORDED, "41", audit(41, "success", c.owner))
    c.complete(c.article, [c.article])
    c.attempt(50)
    c.complete(c.quiz, [c.article, c.quiz], minute=26)
    comment_id = new_id()
    s.add(ev.COMMENT_CREATED, comment_id, comment(comment_id, c.id, c.article, at(30)))
    c.delete_quiz()
    c.counts(2, "Rust, Renamed")
    s.add(
        ev.ENROLLMENT_COMPLETED,
        c.id,
        enrollment(c.id, c.student, "completed", at(40), completed_at=at(40)),
    )
    # The student's name changes (a state-carrying user event), and a draft comes and goes.
    s.add(ev.USER_ROLE_CHANGED, c.student, user(c.student, "instructor", name="Ada King"))
    draft_id, draft_lesson = new_id(), new_id()
    s.add(ev.COURSE_CREATED, draft_id, course(draft_id, c.owner, title="Scratch"))
    entries = outline((draft_lesson, "Notes", "article"))
    s.add(
        ev.LESSON_CREATED,
        draft_lesson,
        lesson(draft_lesson, draft_id, "Notes", "article", ARTICLE_CONTENT, entries, "Scratch"),
    )
    s.add(ev.COURSE_DELETED, draft_id, deleted_course(draft_id, c.owner, [draft_lesson]))
    return s, c


def deleted_course(course_id: str, owner_id: str, lesson_ids: list[str]) -> ev.CourseDeletedPayload:
    return {
        "id": course_id,
        "owner_id": owner_id,
        "lesson_ids": lesson_ids,
        "deleted_at": at(45),
    }


# ---------------------------------------------------------------------------- the suite


class ProjectionSuite(abc.ABC):
    """Tests every read store must pass. Subclasses implement `open_stores`."""

    @abc.abstractmethod
    def open_stores(self) -> AbstractAsyncContextManager[StoreFactory]:
        """Yields a factory of fresh, empty read stores, cleaned up on exit."""

    @pytest.fixture
    async def new_store(self) -> AsyncIterator[StoreFactory]:
        async with self.open_stores() as factory:
            yield factory

    @pytest.fixture
    async def store(self, new_store: StoreFactory) -> ReadModel:
        return await new_store()

    # ------------------------------------------------------------------ users and audit

    async def test_a_user_profile_follows_role_changes_and_disabling(
        self, store: ReadModel
    ) -> None:
        s = Stream()
        uid = new_id()
        s.add(ev.USER_REGISTERED, uid, user(uid))
        s.add(ev.USER_ROLE_CHANGED, uid, user(uid, "instructor"))
        last = s.add(ev.USER_DISABLED, uid, user(uid, "instructor", disabled=True))
        await store.apply(s.events)
        assert await store.documents("users") == [
            {
                "_id": uid,
                "email": f"{uid}@example.com",
                "display_name": "Ada Lovelace",
                "role": "instructor",
                "disabled": True,
                "created_at": at(0),
                "bio": "",
                "avatar_url": "",
                "email_verified": False,
                "search_terms": [f"{uid}@example.com", "ada lovelace", "lovelace"],
                "v": last.version,
            }
        ]

    async def test_a_verified_email_shows_and_survives_a_replay(self, store: ReadModel) -> None:
        s = Stream()
        uid = new_id()
        s.add(ev.USER_REGISTERED, uid, user(uid))
        verified = user(uid)
        verified["email_verified"] = True
        s.add(ev.USER_EMAIL_VERIFIED, uid, verified)
        await store.apply(s.events)
        await store.apply(s.events)  # replayed: the same document
        (doc,) = await store.documents("users")
        assert doc["email_verified"] is True

    async def test_a_profile_change_is_projected_with_its_search_terms(
        self, store: ReadModel
    ) -> None:
        s = Stream()
        uid = new_id()
        s.add(ev.USER_REGISTERED, uid, user(uid))
        changed = user(uid)
        changed["display_name"] = "Ádá  KING Lovelace"
        changed["bio"] = "Notes."
        changed["avatar_url"] = "https://a/b.png"
        s.add(ev.USER_PROFILE_CHANGED, uid, changed)
        await store.apply(s.events)
        doc = await store.get("users", uid)
        assert (doc["display_name"], doc["bio"], doc["avatar_url"]) == (
            "Ádá  KING Lovelace",
            "Notes.",
            "https://a/b.png",
        )
        assert doc["search_terms"] == [
            f"{uid}@example.com",
            "ada king lovelace",
            "king lovelace",
            "lovelace",
        ]

    async def test_an_audit_record_is_stored_once_with_its_sequence(self, store: ReadModel) -> None:
        s = Stream()
        s.add(ev.AUDIT_RECORDED, "7", audit(7, "failure"))
        s.add(ev.AUDIT_RECORDED, "8", audit(8, "success"))
        # The replay: in the same batch, then in a later one.
        await store.apply([*s.events, s.events[0]])
        await store.apply(s.events)
        docs = await store.documents("audit_events")
        assert [(d["_id"], d["seq"], d["outcome"]) for d in docs] == [
            ("7", 7, "failure"),
            ("8", 8, "success"),
        ]
        assert docs[0] == {
            "_id": "7",
            "actor_id": "",
            "action": "Login",
            "resource": "users/x",
            "outcome": "failure",
            "request_id": "r-7",
            "client_address": "10.0.0.1",
            "occurred_at": at(3),
            "seq": 7,
        }

    # ------------------------------------------------------------------ catalog

    async def test_a_course_entry_follows_its_lifecycle(self, store: ReadModel) -> None:
        s = Stream()
        cid, owner = new_id(), new_id()
        s.add(ev.COURSE_CREATED, cid, course(cid, owner, title="Intro To RUST"))
        await store.apply(s.events)
        draft = await store.get("courses", cid)
        assert draft["state"] == "draft"
        assert draft["sort_key"] == ""  # unpublished: not in the catalog's order
        # Title, summary and tags, folded for the search; the keyset key of each order.
        assert draft["search_text"] == "intro to rust ownership and borrowing rust systems"
        assert draft["title_key"] == f"intro to rust|{cid}"
        assert draft["created_key"] == f"2026-03-01T10:01:00.000000Z|{cid}"
        assert draft["popularity_key"] == f"0000000000|{cid}"
        assert draft["deleted"] is False
        assert draft["outline"] == []
        published = s.add(
            ev.COURSE_PUBLISHED,
            cid,
            course(cid, owner, state="published", published_at="2026-03-01T12:00:00+02:00"),
        )
        await store.apply(s.events[1:])
        doc = await store.get("courses", cid)
        assert doc["state"] == "published"
        assert doc["published_at"] == "2026-03-01T12:00:00+02:00"
        assert doc["sort_key"] == f"2026-03-01T10:00:00.000000Z|{cid}"  # UTC, fixed width
        assert doc["tags"] == ["rust", "systems"]
        assert doc["enrollment_close_at"] == at(59)
        assert doc["v"] == published.version
        s.add(ev.COURSE_ARCHIVED, cid, course(cid, owner, state="archived", published_at=at(5)))
        await store.apply(s.events[2:])
        assert (await store.get("courses", cid))["state"] == "archived"
        s.add(ev.COURSE_RESTORED, cid, course(cid, owner))
        await store.apply(s.events[3:])
        restored = await store.get("courses", cid)
        assert (restored["state"], restored["sort_key"]) == ("draft", "")
        s.add(ev.COURSE_PUBLISHED, cid, course(cid, owner, state="published", published_at=at(7)))
        s.add(
            ev.COURSE_COUNTS_CHANGED,
            cid,
            course(cid, owner, state="published", published_at=at(7), enrolled=12),
        )
        await store.apply(s.events[4:])
        popular = await store.get("courses", cid)
        assert popular["popularity_key"] == f"0000000012|2026-03-01T10:07:00.000000Z|{cid}"
        s.add(ev.COURSE_UNPUBLISHED, cid, course(cid, owner))
        await store.apply(s.events[6:])
        assert (await store.get("courses", cid))["state"] == "draft"

    async def test_a_deleted_course_leaves_tombstones_that_stay(self, store: ReadModel) -> None:
        s = Stream()
        cid, owner, lid = new_id(), new_id(), new_id()
        created = s.add(ev.COURSE_CREATED, cid, course(cid, owner, title="Scratch"))
        entries = outline((lid, "Quiz", "quiz"))
        made = s.add(
            ev.LESSON_CREATED, lid, lesson(lid, cid, "Quiz", "quiz", QUIZ_CONTENT, entries)
        )
        gone = s.add(ev.COURSE_DELETED, cid, deleted_course(cid, owner, [lid]))
        await store.apply(s.events)
        assert await store.get("courses", cid) == {
            "_id": cid,
            "owner_id": owner,
            "state": "deleted",
            "deleted": True,
            "deleted_at": at(45),
            "v": gone.version,
        }
        for collection in ("lessons", "quiz_answers"):
            assert await store.get(collection, lid) == {
                "_id": lid,
                "course_id": cid,
                "deleted": True,
                "v": gone.version,
            }
        before = await store.snapshot()
        for late in (created, made, gone):  # replayed or late: nothing comes back
            await store.apply([late])
        assert await store.snapshot() == before

    async def test_lessons_get_positions_neighbours_and_a_course_outline(
        self, store: ReadModel
    ) -> None:
        s = Stream()
        c = Course(s)
        await store.apply(s.events)
        doc = await store.get("courses", c.id)
        assert [(e["id"], e["position"], e["content_type"]) for e in doc["outline"]] == [
            (c.article, 1, "article"),
            (c.quiz, 2, "quiz"),
            (c.video, 3, "video"),
        ]
        assert (doc["lesson_count"], doc["active_enrollment_count"]) == (3, 1)
        neighbours = {}
        for lesson_id in (c.article, c.quiz, c.video):
            item = await store.get("lessons", lesson_id)
            assert item["owner_id"] == c.owner
            assert item["course_title"] == "Intro to Rust"
            assert item["deleted"] is False
            neighbours[lesson_id] = (
                item["position"],
                item["previous_lesson_id"],
                item["next_lesson_id"],
            )
        assert neighbours == {
            c.article: (1, "", c.quiz),
            c.quiz: (2, c.article, c.video),
            c.video: (3, c.quiz, ""),
        }

    async def test_quiz_answers_are_kept_apart_from_what_students_see(
        self, store: ReadModel
    ) -> None:
        s = Stream()
        c = Course(s)
        await store.apply(s.events)
        quiz = await store.get("lessons", c.quiz)
        assert quiz["content"]["pass_threshold_percent"] == 70
        for question in quiz["content"]["questions"]:
            assert "correct_choice_indexes" not in question
        assert [q["choices"] for q in quiz["content"]["questions"]] == [
            ["3", "4"],
            ["2", "4", "5"],
        ]
        answers = await store.get("quiz_answers", c.quiz)
        assert answers_by_question(answers["answers"]) == {"q1": [1], "q2": [0, 2]}
        assert answers["course_id"] == c.id
        assert (await store.get("lessons", c.article))["content"] == ARTICLE_CONTENT
        assert [d["_id"] for d in await store.documents("quiz_answers")] == [c.quiz]

    async def test_a_quiz_turned_into_an_article_loses_its_answers(self, store: ReadModel) -> None:
        s = Stream()
        c = Course(s)
        c.update_lesson(c.quiz, "Read", "article", ARTICLE_CONTENT)
        await store.apply(s.events)
        assert answers_by_question((await store.get("quiz_answers", c.quiz))["answers"]) == {}
        lesson_doc = await store.get("lessons", c.quiz)
        assert lesson_doc["title"] == "Read"
        assert lesson_doc["content"] == ARTICLE_CONTENT

    async def test_question_ids_are_the_instructors_text_not_document_keys(
        self, store: ReadModel
    ) -> None:
        """Question ids are input (any text up to 64 characters): `.` and `$` must not reach
        a document key, which the store would refuse."""
        s = Stream()
        c = Course(s)
        tricky: dict[str, object] = {
            "questions": [
                {"id": "1.1", "prompt": "a", "choices": ["x", "y"], "correct_choice_indexes": [0]},
                {"id": "$set", "prompt": "b", "choices": ["x", "y"], "correct_choice_indexes": [1]},
            ],
            "pass_threshold_percent": 50,
        }
        c.update_lesson(c.quiz, "Tricky", "quiz", tricky)
        await store.apply(s.events)
        answers = await store.get("quiz_answers", c.quiz)
        assert answers_by_question(answers["answers"]) == {"1.1": [0], "$set": [1]}
        ids = [q["id"] for q in (await store.get("lessons", c.quiz))["content"]["questions"]]
        assert ids == ["1.1", "$set"]

    async def test_a_deleted_lesson_leaves_a_tombstone_and_closes_the_gap(
        self, store: ReadModel
    ) -> None:
        s = Stream()
        c = Course(s)
        await store.apply(s.events)
        deleted = c.delete_quiz()
        await store.apply([deleted])
        assert await store.get("lessons", c.quiz) == {
            "_id": c.quiz,
            "course_id": c.id,
            "deleted": True,
            "v": deleted.version,
        }
        assert (await store.get("quiz_answers", c.quiz))["deleted"] is True
        video = await store.get("lessons", c.video)
        assert (video["position"], video["previous_lesson_id"], video["next_lesson_id"]) == (
            2,
            c.article,
            "",
        )
        assert (await store.get("lessons", c.article))["next_lesson_id"] == c.video
        outline_ids = [e["id"] for e in (await store.get("courses", c.id))["outline"]]
        assert outline_ids == [c.article, c.video]

    async def test_renaming_a_course_renames_it_in_its_lessons(self, store: ReadModel) -> None:
        s = Stream()
        c = Course(s)
        await store.apply(s.events)
        renamed = s.add(
            ev.COURSE_UPDATED,
            c.id,
            course(
                c.id,
                c.owner,
                title="Rust in Depth",
                state="published",
                lesson_count=3,
                enrolled=1,
                published_at=at(5),
            ),
        )
        await store.apply([renamed])
        for lesson_id in (c.article, c.quiz, c.video):
            doc = await store.get("lessons", lesson_id)
            assert (doc["course_title"], doc["v"]) == ("Rust in Depth", renamed.version)
        renamed_doc = await store.get("courses", c.id)
        assert renamed_doc["title_key"] == f"rust in depth|{c.id}"
        assert renamed_doc["search_text"].startswith("rust in depth ")
        progress = await store.get("progress", f"{c.student}:{c.id}")
        assert progress["course_title"] == "Rust in Depth"

    # ------------------------------------------------------------------ learning

    async def test_progress_and_dashboard_follow_the_learner(self, store: ReadModel) -> None:
        s = Stream()
        c = Course(s)
        await store.apply(s.events)
        pid = f"{c.student}:{c.id}"
        progress = await store.get("progress", pid)
        assert progress["state"] == "active"
        assert (progress["course_title"], progress["lesson_count"]) == ("Intro to Rust", 3)
        assert (progress["completed_lesson_ids"], progress["percent_complete"]) == ([], 0)
        assert progress["user_id"] == c.student
        c.complete(c.article, [c.article])
        c.attempt(50)
        last = c.complete(c.quiz, [c.article, c.quiz], minute=26)
        c.attempt(100, minute=27)
        await store.apply(s.events[-4:])
        progress = await store.get("progress", pid)
        assert progress["completed_lesson_ids"] == [c.article, c.quiz]
        assert progress["percent_complete"] == 66
        assert progress["quiz_best_scores"] == {c.quiz: 100}
        assert progress["last_activity_at"] == at(27)
        assert progress["activity_key"] == f"2026-03-01T10:27:00.000000Z|{c.id}"
        assert progress["v"] == last.version + 1
        # Resume: the quiz was touched last; the video is the first lesson not completed.
        assert (progress["last_lesson_id"], progress["next_lesson_id"]) == (c.quiz, c.video)
        dashboard = await store.get("dashboards", c.student)
        assert list(dashboard["courses"]) == [c.id]
        entry = dashboard["courses"][c.id]
        assert entry["percent_complete"] == 66
        assert entry["quiz_best_scores"] == {c.quiz: 100}
        assert entry == {
            name: progress.get(name)
            for name in (
                "course_id",
                "course_title",
                "state",
                "enrolled_at",
                "completed_at",
                "completed_lesson_ids",
                "lesson_count",
                "percent_complete",
                "quiz_best_scores",
                "last_activity_at",
                "activity_key",
                "last_lesson_id",
                "next_lesson_id",
                "certificate_id",
                "v",
                "v_course",
            )
        }

    async def test_progress_carries_the_learners_name_and_roster_keys(
        self, store: ReadModel
    ) -> None:
        s = Stream()
        c = Course(s)
        c.complete(c.article, [c.article], minute=21)
        await store.apply(s.events)
        pid = f"{c.student}:{c.id}"
        progress = await store.get("progress", pid)
        assert progress["display_name"] == "Ada Lovelace"
        assert progress["name_key"] == f"ada lovelace|{c.student}"
        assert progress["percent_key"] == f"033|{c.student}"
        assert progress["roster_activity_key"] == f"2026-03-01T10:21:00.000000Z|{c.student}"
        # A later change of the name (any user event carries it) follows into the progress.
        renamed = s.add(ev.USER_ROLE_CHANGED, c.student, user(c.student, name="Ádá Byron"))
        await store.apply([renamed])
        progress = await store.get("progress", pid)
        assert (progress["display_name"], progress["v_user"]) == ("Ádá Byron", renamed.version)
        assert progress["name_key"] == f"ada byron|{c.student}"
        # The registration, replayed late, brings the old name back nowhere.
        await store.apply([s.events[1]])
        assert (await store.get("progress", pid))["display_name"] == "Ádá Byron"
        assert (await store.get("progress_users", c.student))["display_name"] == "Ádá Byron"

    async def test_a_certificate_is_projected_and_linked_from_progress(
        self, store: ReadModel
    ) -> None:
        s = Stream()
        c = Course(s)
        c.complete(c.article, [c.article])
        c.attempt(100)
        c.complete(c.quiz, [c.article, c.quiz], minute=26)
        c.complete(c.video, [c.article, c.quiz, c.video], minute=30)
        cert_id = "A" * 22
        payload: ev.CertificatePayload = {
            "id": cert_id,
            "user_id": c.student,
            "course_id": c.id,
            "learner_name": "Ada Lovelace",
            "course_title": "Intro to Rust",
            "instructor_name": "Grace Hopper",
            "completed_at": at(30),
            "issued_at": at(30),
        }
        issued = s.add(ev.CERTIFICATE_ISSUED, c.id, payload)
        await store.apply(s.events)
        await store.apply(s.events)  # a replay changes nothing
        progress = await store.get("progress", f"{c.student}:{c.id}")
        assert (progress["last_lesson_id"], progress["next_lesson_id"]) == (c.video, "")
        assert progress["certificate_id"] == cert_id
        dashboard = await store.get("dashboards", c.student)
        assert dashboard["courses"][c.id]["certificate_id"] == cert_id
        assert await store.documents("certificates") == [
            {
                "_id": cert_id,
                **{k: v for k, v in payload.items() if k != "id"},
                "v": issued.version,
            }
        ]

    async def test_a_deleted_lesson_drops_out_of_progress(self, store: ReadModel) -> None:
        s, c = full_history()
        await store.apply(s.events)
        progress = await store.get("progress", f"{c.student}:{c.id}")
        assert progress["completed_lesson_ids"] == [c.article]
        assert progress["quiz_best_scores"] == {}
        assert progress["lesson_count"] == 2
        assert progress["percent_complete"] == 50
        assert progress["course_title"] == "Rust, Renamed"
        assert progress["state"] == "completed"
        assert progress["completed_at"] == at(40)
        meta = await store.get("progress_courses", c.id)
        assert meta["lesson_ids"] == [c.article, c.video]
        assert meta["has_enrollments"] is True
        dashboard = await store.get("dashboards", c.student)
        assert dashboard["courses"][c.id]["percent_complete"] == 50

    async def test_withdrawing_and_re_enrolling_keeps_the_progress(self, store: ReadModel) -> None:
        s = Stream()
        c = Course(s)
        c.complete(c.article, [c.article])
        s.add(ev.ENROLLMENT_WITHDRAWN, c.id, enrollment(c.id, c.student, "withdrawn", at(30)))
        await store.apply(s.events)
        pid = f"{c.student}:{c.id}"
        withdrawn = await store.get("progress", pid)
        assert (withdrawn["state"], withdrawn["last_activity_at"]) == ("withdrawn", at(30))
        assert (await store.get("dashboards", c.student))["courses"][c.id]["state"] == "withdrawn"
        s.add(ev.ENROLLMENT_ACTIVATED, c.id, enrollment(c.id, c.student, "active", at(35)))
        await store.apply(s.events[-1:])
        back = await store.get("progress", pid)
        assert (back["state"], back["completed_lesson_ids"]) == ("active", [c.article])
        assert back["percent_complete"] == 33

    async def test_a_completion_without_an_enrollment_is_ignored(self, store: ReadModel) -> None:
        s = Stream()
        c = Course(s)
        stranger = new_id()
        completion: ev.LessonCompletedPayload = {
            "user_id": stranger,
            "course_id": c.id,
            "lesson_id": c.article,
            "completed_at": at(9),
            "completed_lesson_ids": [c.article],
            "lesson_count": 3,
        }
        s.add(ev.LESSON_COMPLETED, c.id, completion)
        await store.apply(s.events)
        assert [d["_id"] for d in await store.documents("progress")] == [f"{c.student}:{c.id}"]
        assert [d["_id"] for d in await store.documents("dashboards")] == [c.student]

    # ------------------------------------------------------------------ discussion

    async def test_comments_sort_into_threads_and_deletion_keeps_the_place(
        self, store: ReadModel
    ) -> None:
        s = Stream()
        cid, lid = new_id(), new_id()
        first, reply, later, nested = new_id(), new_id(), new_id(), new_id()
        s.add(ev.COMMENT_CREATED, first, comment(first, cid, lid, at(10)))
        # Same instant in another offset: sorting by UTC puts it after the first thread.
        s.add(ev.COMMENT_CREATED, later, comment(later, cid, lid, "2026-03-01T12:11:00+02:00"))
        s.add(ev.COMMENT_CREATED, reply, comment(reply, cid, lid, at(12), parent_id=first))
        s.add(ev.COMMENT_CREATED, nested, comment(nested, cid, lid, at(13), parent_id=reply))
        s.add(ev.COMMENT_UPDATED, reply, comment(reply, cid, lid, at(12), first, "Edited"))
        gone = s.add(
            ev.COMMENT_DELETED, first, comment(first, cid, lid, at(10), body="", deleted=True)
        )
        await store.apply(s.events)
        docs = sorted(await store.documents("comments"), key=lambda d: str(d["sort_key"]))
        assert [d["_id"] for d in docs] == [first, reply, nested, later]
        by_id = {d["_id"]: d for d in docs}
        thread = f"2026-03-01T10:10:00.000000Z|{first}"
        assert {by_id[i]["thread"] for i in (first, reply, nested)} == {thread}
        assert by_id[first]["sort_key"] == f"{thread}|0"
        assert by_id[nested]["sort_key"] == f"{thread}|1|2026-03-01T10:13:00.000000Z|{nested}"
        assert (by_id[reply]["body"], by_id[reply]["parent_id"]) == ("Edited", first)
        assert by_id[first]["deleted"] is True
        assert by_id[first]["body"] == ""
        assert by_id[first]["v"] == gone.version

    # ------------------------------------------------------------------ replay and order

    async def test_replaying_everything_changes_nothing(self, store: ReadModel) -> None:
        s, _ = full_history()
        await store.apply(s.events)
        once = await store.snapshot()
        assert all(once[name] for name in COLLECTIONS), "the history touches every collection"
        await store.apply(s.events)
        assert await store.snapshot() == once
        await store.apply(s.events, per_batch=1)
        assert await store.snapshot() == once

    async def test_the_batch_size_does_not_change_the_result(self, new_store: StoreFactory) -> None:
        s, _ = full_history()
        snapshots = []
        for per_batch in (None, 1, 4):
            store = await new_store()
            await store.apply(s.events, per_batch)
            snapshots.append(await store.snapshot())
        assert snapshots[1] == snapshots[0]
        assert snapshots[2] == snapshots[0]

    async def test_a_replay_after_a_partial_write_converges(self, new_store: StoreFactory) -> None:
        """The projector died after writing some batches and before its checkpoint moved:
        it replays from the checkpoint onto documents already ahead of it."""
        s, _ = full_history()
        straight = await new_store()
        await straight.apply(s.events)
        crashed = await new_store()
        half = len(s.events) // 2
        await crashed.apply(s.events[: half + 3])
        await crashed.apply(s.events[half - 2 :], per_batch=3)
        assert await crashed.snapshot() == await straight.snapshot()

    async def test_an_older_event_after_a_newer_one_changes_nothing(self, store: ReadModel) -> None:
        s, c = full_history()
        stale_user = s.events[0]  # the owner's registration
        s.add(ev.USER_ROLE_CHANGED, c.owner, user(c.owner, "admin"))
        lesson_created = next(e for e in s.events if e.aggregate_id == c.quiz)
        c_id = new_id()
        s.add(ev.COMMENT_CREATED, c_id, comment(c_id, c.id, c.video, at(41)))
        deleted = s.add(
            ev.COMMENT_DELETED, c_id, comment(c_id, c.id, c.video, at(41), deleted=True)
        )
        await store.apply(s.events)
        before = await store.snapshot()
        late = [
            stale_user,
            # an earlier course state: draft, three lessons, the old title
            s.events[2],
            lesson_created,  # the deleted quiz must not come back
            s.events[-2],  # the comment's creation, after its deletion
            next(e for e in s.events if e.event_type == ev.ENROLLMENT_ACTIVATED.name),
            next(e for e in s.events if e.event_type == ev.QUIZ_ATTEMPTED.name),
        ]
        for event in late:
            await store.apply([event])
        assert await store.snapshot() == before
        assert (await store.get("users", c.owner))["role"] == "admin"
        assert (await store.get("lessons", c.quiz))["deleted"] is True
        assert (await store.get("comments", c_id))["v"] == deleted.version
        assert (await store.get("courses", c.id))["title"] == "Rust, Renamed"
