"""Course authoring commands against the real server and PostgreSQL: courses (create, update
with a FieldMask, publish, archive) and lessons of every content type (create, update,
reorder, delete).

"Nothing written" after a failure means every table of `WRITTEN_TABLES` keeps its row count:
no domain row, no audit row, no outbox event. Refused commands are *not* audited: the audit
log records state changes and authentication events (DESIGN.md §2), and a command that was
refused changed no state; its refusal is in the structured RPC log. The one failure that is
audited, a failed login, has its own test in test_commands_audit.py.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2, timestamp_pb2
from google.rpc import error_details_pb2

from learnflow.v1 import courses_pb2, learning_pb2
from tests.commands_support import (
    Pg,
    add_lesson,
    article,
    courses,
    enroll,
    fails,
    learning,
    new_course,
    published_course,
    quiz_lesson,
)
from tests.support import Caller, field_violations, rich_status


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


def ts(value: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def video(url: str = "https://videos.example.com/v/1", seconds: int = 300) -> courses_pb2.Lesson:
    return courses_pb2.Lesson(
        title="Video", video=courses_pb2.Video(url=url, duration_seconds=seconds)
    )


def exercise(language: str = "python", prompt: str = "Write fizzbuzz") -> courses_pb2.Lesson:
    return courses_pb2.Lesson(
        title="Exercise",
        code_exercise=courses_pb2.CodeExercise(
            language=language, prompt=prompt, starter_code="def fizzbuzz(n):\n    ...\n"
        ),
    )


async def positions(pg: Pg, course_id: str) -> list[tuple[str, int]]:
    rows = await pg.rows(
        "SELECT title, position FROM lessons WHERE course_id = %s ORDER BY position", course_id
    )
    return [(title, position) for title, position in rows]


def precondition_types(error: grpc.aio.AioRpcError) -> list[str]:
    for detail in rich_status(error).details:
        failure = error_details_pb2.PreconditionFailure()
        if detail.Unpack(failure):
            return [v.type for v in failure.violations]
    raise AssertionError("no PreconditionFailure detail")


# ---------------------------------------------------------------------------- courses


async def test_instructor_creates_a_draft_course_with_row_audit_and_event(
    instructor: Caller, pg: Pg
) -> None:
    before = await pg.counts()
    reply = await courses(instructor.channel).CreateCourse(
        courses_pb2.CreateCourseRequest(
            course=courses_pb2.Course(
                title="  Intro to Ünicode Strings ",
                summary="All about text",
                tags=["python", "text"],
                level=courses_pb2.COURSE_LEVEL_BEGINNER,
                capacity=25,
            )
        ),
        metadata=instructor.metadata(),
    )
    course = reply.course
    assert course.title == "Intro to Ünicode Strings"
    assert course.slug.startswith("intro-to-unicode-strings")
    assert course.state == courses_pb2.COURSE_STATE_DRAFT
    assert course.owner_id == instructor.user_id
    assert course.instructor_name == "Instructor"
    assert (course.capacity, course.lesson_count, course.enrollment_count) == (25, 0, 0)
    assert reply.consistency_token

    row = (
        await pg.rows(
            "SELECT owner_id::text, title, tags, level, state, capacity FROM courses WHERE id = %s",
            course.id,
        )
    )[0]
    assert row == (
        instructor.user_id,
        "Intro to Ünicode Strings",
        ["python", "text"],
        "beginner",
        "draft",
        25,
    )
    assert await pg.audit(f"courses/{course.id}") == [
        ("course.create", "success", instructor.user_id)
    ]
    [(event_type, payload)] = await pg.events(course.id)
    assert event_type == "course.created"
    assert payload["title"] == course.title and payload["state"] == "draft"
    after = await pg.counts()
    # One course, one audit row, two events (course.created + audit.recorded).
    assert after["courses"] - before["courses"] == 1
    assert after["audit_log"] - before["audit_log"] == 1
    assert after["events"] - before["events"] == 2


async def test_a_slug_tells_nothing_of_other_instructors_drafts(
    instructor: Caller, channel: grpc.aio.Channel, postgres_url: str
) -> None:
    """The slug is the title's plus a random suffix whether or not a course of that title
    exists: an instructor cannot probe for another's unpublished draft (it was `title-2`)."""
    other = await Caller.with_role(channel, postgres_url, "instructor", name="Other")
    taken = f"Secret Plan {uuid.uuid4().hex[:6]}"
    fresh = f"Open Plan {uuid.uuid4().hex[:6]}"
    theirs = await new_course(other, title=taken)  # a draft nobody else can see
    mine = [await new_course(instructor, title=title) for title in (taken, fresh, taken, fresh)]

    def shape(course: courses_pb2.Course) -> str:
        base = course.title.lower().replace(" ", "-")
        match = re.fullmatch(rf"{re.escape(base)}-([a-z0-9]{{8}})", course.slug)
        assert match, course.slug
        return "suffix of 8"

    # The same shape for the first course of a title, a title someone else holds, a title
    # never used, and one's own repeats; every slug distinct and none predictable.
    assert {shape(course) for course in [theirs, *mine]} == {"suffix of 8"}
    slugs = [course.slug for course in [theirs, *mine]]
    assert len(set(slugs)) == len(slugs)


async def test_invalid_course_names_every_bad_field_and_writes_nothing(
    instructor: Caller, pg: Pg
) -> None:
    now = dt.datetime.now(dt.UTC)
    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await courses(instructor.channel).CreateCourse(
            courses_pb2.CreateCourseRequest(
                course=courses_pb2.Course(
                    title="ab",
                    tags=["ok", "Not Ok", "ok"],
                    level=99,  # type: ignore[arg-type]
                    capacity=-1,
                    enrollment_open_time=ts(now),
                    enrollment_close_time=ts(now - dt.timedelta(days=1)),
                )
            ),
            metadata=instructor.metadata(),
        )
    assert set(field_violations(err.value)) == {
        "course.title",
        "course.tags[1]",
        "course.tags[2]",
        "course.level",
        "course.capacity",
        "course.enrollment_close_time",
    }


async def test_fields_beyond_their_declared_limits_are_refused_first(
    instructor: Caller, pg: Pg
) -> None:
    # The contract's size limits are checked before the handler runs (issue 12), so they are
    # reported on their own, ahead of the handler's finer rules (here the short title).
    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await courses(instructor.channel).CreateCourse(
            courses_pb2.CreateCourseRequest(
                course=courses_pb2.Course(title="ab", summary="x" * 2001)
            ),
            metadata=instructor.metadata(),
        )
    assert field_violations(err.value) == {"course.summary": "must be at most 2000 characters"}


async def test_too_many_tags_is_refused(instructor: Caller, pg: Pg) -> None:
    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await new_course(instructor, tags=[f"t{i}" for i in range(11)])
    assert "course.tags" in field_violations(err.value)


async def test_a_student_cannot_create_a_course(caller: Caller, pg: Pg) -> None:
    async with fails(grpc.StatusCode.PERMISSION_DENIED, pg):
        await new_course(caller, title="Not allowed")


async def test_an_anonymous_caller_cannot_create_a_course(
    channel: grpc.aio.Channel, pg: Pg
) -> None:
    async with fails(grpc.StatusCode.UNAUTHENTICATED, pg):
        await courses(channel).CreateCourse(
            courses_pb2.CreateCourseRequest(course=courses_pb2.Course(title="Anonymous"))
        )


async def test_update_changes_only_the_masked_fields(instructor: Caller, pg: Pg) -> None:
    course = await new_course(instructor, title="Before Title", summary="old summary", tags=["a"])
    reply = await courses(instructor.channel).UpdateCourse(
        courses_pb2.UpdateCourseRequest(
            course=courses_pb2.Course(
                id=course.id, title="After Title", summary="ignored", tags=["b", "c"]
            ),
            update_mask=mask("title", "tags"),
        ),
        metadata=instructor.metadata(),
    )
    assert reply.course.title == "After Title"
    assert list(reply.course.tags) == ["b", "c"]
    assert reply.course.summary == "old summary"  # not in the mask
    assert reply.course.slug.startswith("after-title")  # a draft's slug follows its title
    assert await pg.rows("SELECT title, summary, tags FROM courses WHERE id = %s", course.id) == [
        ("After Title", "old summary", ["b", "c"])
    ]
    assert [a for a, _, _ in await pg.audit(f"courses/{course.id}")] == [
        "course.create",
        "course.update",
    ]
    assert [t for t, _ in await pg.events(course.id)] == ["course.created", "course.updated"]


async def test_a_published_course_keeps_its_slug_when_renamed(instructor: Caller) -> None:
    course, _ = await published_course(instructor)
    reply = await courses(instructor.channel).UpdateCourse(
        courses_pb2.UpdateCourseRequest(
            course=courses_pb2.Course(id=course.id, title="A Brand New Name"),
            update_mask=mask("title"),
        ),
        metadata=instructor.metadata(),
    )
    assert reply.course.title == "A Brand New Name"
    assert reply.course.slug == course.slug


@pytest.mark.parametrize(
    ("paths", "named"),
    [
        (["title", "no_such_field"], "no_such_field"),
        (["slug"], "slug"),  # output only
        (["state"], "state"),  # changed by :publish / :archive, not by an update
        ([], "update_mask"),
    ],
)
async def test_update_mask_with_unknown_or_read_only_paths_is_refused(
    instructor: Caller, pg: Pg, paths: list[str], named: str
) -> None:
    course = await new_course(instructor)
    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await courses(instructor.channel).UpdateCourse(
            courses_pb2.UpdateCourseRequest(
                course=courses_pb2.Course(id=course.id, title="Whatever Title"),
                update_mask=mask(*paths),
            ),
            metadata=instructor.metadata(),
        )
    violations = field_violations(err.value)
    assert set(violations) == {"update_mask"}
    assert named in violations["update_mask"] or named == "update_mask"


async def test_update_validates_the_masked_fields(instructor: Caller, pg: Pg) -> None:
    course = await new_course(instructor)
    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await courses(instructor.channel).UpdateCourse(
            courses_pb2.UpdateCourseRequest(
                course=courses_pb2.Course(id=course.id, title="", capacity=-5),
                update_mask=mask("title", "capacity"),
            ),
            metadata=instructor.metadata(),
        )
    assert set(field_violations(err.value)) == {"course.title", "course.capacity"}


async def test_update_checks_the_window_against_the_stored_values(
    instructor: Caller, pg: Pg
) -> None:
    now = dt.datetime.now(dt.UTC)
    course = await new_course(instructor, enrollment_open_time=ts(now))
    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await courses(instructor.channel).UpdateCourse(
            courses_pb2.UpdateCourseRequest(
                course=courses_pb2.Course(
                    id=course.id, enrollment_close_time=ts(now - dt.timedelta(hours=1))
                ),
                update_mask=mask("enrollment_close_time"),
            ),
            metadata=instructor.metadata(),
        )
    assert set(field_violations(err.value)) == {"course.enrollment_close_time"}


async def test_malformed_course_id_names_the_field(instructor: Caller, pg: Pg) -> None:
    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await courses(instructor.channel).UpdateCourse(
            courses_pb2.UpdateCourseRequest(
                course=courses_pb2.Course(id="not-a-uuid", title="Whatever"),
                update_mask=mask("title"),
            ),
            metadata=instructor.metadata(),
        )
    assert set(field_violations(err.value)) == {"course.id"}
    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await courses(instructor.channel).PublishCourse(
            courses_pb2.PublishCourseRequest(course_id=""), metadata=instructor.metadata()
        )
    assert set(field_violations(err.value)) == {"course_id"}


async def test_unknown_course_is_not_found(instructor: Caller, pg: Pg) -> None:
    async with fails(grpc.StatusCode.NOT_FOUND, pg):
        await courses(instructor.channel).PublishCourse(
            courses_pb2.PublishCourseRequest(course_id=str(uuid.uuid4())),
            metadata=instructor.metadata(),
        )


async def test_another_instructor_cannot_touch_the_course(
    channel: grpc.aio.Channel, postgres_url: str, instructor: Caller, pg: Pg
) -> None:
    other = await Caller.with_role(channel, postgres_url, "instructor", name="Other")
    stub = courses(channel)
    draft = await new_course(instructor)
    # Someone else's draft does not exist as far as they can tell.
    async with fails(grpc.StatusCode.NOT_FOUND, pg):
        await stub.UpdateCourse(
            courses_pb2.UpdateCourseRequest(
                course=courses_pb2.Course(id=draft.id, title="Hijacked"), update_mask=mask("title")
            ),
            metadata=other.metadata(),
        )
    async with fails(grpc.StatusCode.NOT_FOUND, pg):
        await add_lesson(other, draft.id)

    course, [lesson] = await published_course(instructor)
    async with fails(grpc.StatusCode.PERMISSION_DENIED, pg):
        await stub.UpdateCourse(
            courses_pb2.UpdateCourseRequest(
                course=courses_pb2.Course(id=course.id, title="Hijacked"),
                update_mask=mask("title"),
            ),
            metadata=other.metadata(),
        )
    async with fails(grpc.StatusCode.PERMISSION_DENIED, pg):
        await stub.ArchiveCourse(
            courses_pb2.ArchiveCourseRequest(course_id=course.id), metadata=other.metadata()
        )
    async with fails(grpc.StatusCode.PERMISSION_DENIED, pg):
        await add_lesson(other, course.id)
    async with fails(grpc.StatusCode.PERMISSION_DENIED, pg):
        await stub.UpdateLesson(
            courses_pb2.UpdateLessonRequest(
                lesson=courses_pb2.Lesson(id=lesson.id, course_id=course.id, title="Mine now"),
                update_mask=mask("title"),
            ),
            metadata=other.metadata(),
        )
    async with fails(grpc.StatusCode.PERMISSION_DENIED, pg):
        await stub.DeleteLesson(
            courses_pb2.DeleteLessonRequest(course_id=course.id, lesson_id=lesson.id),
            metadata=other.metadata(),
        )
    assert await pg.value("SELECT title FROM courses WHERE id = %s", course.id) == course.title


async def test_an_admin_may_edit_any_course(instructor: Caller, admin: Caller) -> None:
    course = await new_course(instructor)
    reply = await courses(admin.channel).UpdateCourse(
        courses_pb2.UpdateCourseRequest(
            course=courses_pb2.Course(id=course.id, summary="Edited by an admin"),
            update_mask=mask("summary"),
        ),
        metadata=admin.metadata(),
    )
    assert reply.course.summary == "Edited by an admin"
    assert reply.course.owner_id == instructor.user_id


async def test_publishing_needs_a_lesson_and_a_draft(instructor: Caller, pg: Pg) -> None:
    course = await new_course(instructor)
    stub = courses(instructor.channel)
    publish = courses_pb2.PublishCourseRequest(course_id=course.id)
    async with fails(grpc.StatusCode.FAILED_PRECONDITION, pg) as err:
        await stub.PublishCourse(publish, metadata=instructor.metadata())
    assert precondition_types(err.value) == ["LESSONS"]
    assert "lesson" in (err.value.details() or "")

    await add_lesson(instructor, course.id)
    reply = await stub.PublishCourse(publish, metadata=instructor.metadata())
    assert reply.course.state == courses_pb2.COURSE_STATE_PUBLISHED
    assert reply.course.HasField("publish_time")
    assert await pg.value("SELECT state FROM courses WHERE id = %s", course.id) == "published"
    assert (await pg.events(course.id, "course.published"))[0][1]["state"] == "published"

    async with fails(grpc.StatusCode.FAILED_PRECONDITION, pg) as err:
        await stub.PublishCourse(publish, metadata=instructor.metadata())
    assert precondition_types(err.value) == ["COURSE_STATE"]


async def test_an_archived_course_is_frozen(instructor: Caller, pg: Pg) -> None:
    course, [lesson] = await published_course(instructor)
    stub = courses(instructor.channel)
    reply = await stub.ArchiveCourse(
        courses_pb2.ArchiveCourseRequest(course_id=course.id), metadata=instructor.metadata()
    )
    assert reply.course.state == courses_pb2.COURSE_STATE_ARCHIVED
    assert ("course.archive", "success", instructor.user_id) in await pg.audit(
        f"courses/{course.id}"
    )
    async with fails(grpc.StatusCode.FAILED_PRECONDITION, pg):
        await stub.ArchiveCourse(
            courses_pb2.ArchiveCourseRequest(course_id=course.id), metadata=instructor.metadata()
        )
    async with fails(grpc.StatusCode.FAILED_PRECONDITION, pg):
        await stub.PublishCourse(
            courses_pb2.PublishCourseRequest(course_id=course.id), metadata=instructor.metadata()
        )
    async with fails(grpc.StatusCode.FAILED_PRECONDITION, pg):
        await stub.UpdateCourse(
            courses_pb2.UpdateCourseRequest(
                course=courses_pb2.Course(id=course.id, title="Revived"),
                update_mask=mask("title"),
            ),
            metadata=instructor.metadata(),
        )
    async with fails(grpc.StatusCode.FAILED_PRECONDITION, pg):
        await add_lesson(instructor, course.id)
    async with fails(grpc.StatusCode.FAILED_PRECONDITION, pg):
        await stub.DeleteLesson(
            courses_pb2.DeleteLessonRequest(course_id=course.id, lesson_id=lesson.id),
            metadata=instructor.metadata(),
        )


async def test_capacity_cannot_drop_below_active_enrollments(
    channel: grpc.aio.Channel, instructor: Caller, pg: Pg
) -> None:
    course, _ = await published_course(instructor, capacity=5)
    for _ in range(2):
        await enroll(await Caller.register(channel), course.id)
    stub = courses(instructor.channel)
    async with fails(grpc.StatusCode.FAILED_PRECONDITION, pg) as err:
        await stub.UpdateCourse(
            courses_pb2.UpdateCourseRequest(
                course=courses_pb2.Course(id=course.id, capacity=1), update_mask=mask("capacity")
            ),
            metadata=instructor.metadata(),
        )
    assert precondition_types(err.value) == ["CAPACITY"]
    reply = await stub.UpdateCourse(
        courses_pb2.UpdateCourseRequest(
            course=courses_pb2.Course(id=course.id, capacity=2), update_mask=mask("capacity")
        ),
        metadata=instructor.metadata(),
    )
    assert (reply.course.capacity, reply.course.enrollment_count) == (2, 2)


# ---------------------------------------------------------------------------- lessons


async def test_lessons_of_every_content_type_are_stored_and_returned(
    instructor: Caller, pg: Pg
) -> None:
    course = await new_course(instructor)
    first = await add_lesson(instructor, course.id, article("Read me", "# Title\n\nBody"))
    second = await add_lesson(instructor, course.id, video())
    third = await add_lesson(instructor, course.id, quiz_lesson(threshold=0))
    fourth = await add_lesson(instructor, course.id, exercise())

    assert first.article.markdown == "# Title\n\nBody"
    assert (second.video.url, second.video.duration_seconds) == (
        "https://videos.example.com/v/1",
        300,
    )
    assert third.quiz.pass_threshold_percent == 70  # the default when unset
    assert [list(q.correct_choice_indexes) for q in third.quiz.questions] == [[1], [0, 2]]
    assert fourth.code_exercise.language == "python"
    assert [lesson.position for lesson in (first, second, third, fourth)] == [1, 2, 3, 4]
    assert fourth.previous_lesson_id == third.id and not fourth.next_lesson_id
    assert not first.previous_lesson_id and not first.next_lesson_id  # alone when added
    assert fourth.course_title == course.title

    rows = await pg.rows(
        "SELECT content_type, content FROM lessons WHERE course_id = %s ORDER BY position",
        course.id,
    )
    assert [kind for kind, _ in rows] == ["article", "video", "quiz", "code_exercise"]
    quiz: dict[str, Any] = rows[2][1]
    assert quiz["pass_threshold_percent"] == 70
    assert quiz["questions"][1] == {
        "id": "q2",
        "prompt": "Even numbers?",
        "choices": ["2", "3", "4"],
        "correct_choice_indexes": [0, 2],
    }
    assert rows[3][1]["starter_code"].startswith("def fizzbuzz")
    assert await pg.value("SELECT lesson_count FROM courses WHERE id = %s", course.id) == 4
    [(_, payload)] = await pg.events(third.id, "lesson.created")
    assert payload["content"]["questions"][0]["correct_choice_indexes"] == [1]
    assert [entry["id"] for entry in payload["outline"]] == [first.id, second.id, third.id]
    counts = await pg.events(course.id, "course.counts_changed")
    assert [p["lesson_count"] for _, p in counts] == [1, 2, 3, 4]


async def test_quiz_question_ids_are_generated_when_missing(instructor: Caller) -> None:
    course = await new_course(instructor)
    lesson = await add_lesson(
        instructor,
        course.id,
        courses_pb2.Lesson(
            title="Quiz",
            quiz=courses_pb2.Quiz(
                questions=[
                    courses_pb2.QuizQuestion(
                        prompt="A?", choices=["x", "y"], correct_choice_indexes=[0]
                    ),
                    courses_pb2.QuizQuestion(
                        prompt="B?", choices=["x", "y"], correct_choice_indexes=[1]
                    ),
                ]
            ),
        ),
    )
    ids = [q.id for q in lesson.quiz.questions]
    assert all(ids) and len(set(ids)) == 2


@pytest.mark.parametrize(
    ("lesson", "fields"),
    [
        (courses_pb2.Lesson(title="No content"), {"lesson.content"}),
        (courses_pb2.Lesson(title="", article=courses_pb2.Article(markdown="x")), {"lesson.title"}),
        (article(markdown="   "), {"lesson.article.markdown"}),
        (video(url="http://insecure.example.com/v"), {"lesson.video.url"}),
        (video(url="not a url"), {"lesson.video.url"}),
        (video(seconds=0), {"lesson.video.duration_seconds"}),
        (video(seconds=86_401), {"lesson.video.duration_seconds"}),
        (
            courses_pb2.Lesson(title="Quiz", quiz=courses_pb2.Quiz()),
            {"lesson.quiz.questions"},
        ),
        (
            courses_pb2.Lesson(
                title="Quiz",
                quiz=courses_pb2.Quiz(
                    pass_threshold_percent=101,
                    questions=[
                        courses_pb2.QuizQuestion(
                            id="a", prompt="", choices=["only one"], correct_choice_indexes=[]
                        ),
                        courses_pb2.QuizQuestion(
                            id="a", prompt="Dup?", choices=["x", " "], correct_choice_indexes=[5]
                        ),
                    ],
                ),
            ),
            {
                "lesson.quiz.pass_threshold_percent",
                "lesson.quiz.questions[0].prompt",
                "lesson.quiz.questions[0].choices",
                "lesson.quiz.questions[0].correct_choice_indexes",
                "lesson.quiz.questions[1].id",
                "lesson.quiz.questions[1].choices[1]",
                "lesson.quiz.questions[1].correct_choice_indexes",
            },
        ),
        (
            exercise(language="", prompt=""),
            {
                "lesson.code_exercise.language",
                "lesson.code_exercise.prompt",
            },
        ),
        (
            courses_pb2.Lesson(title="Far", position=-1, article=courses_pb2.Article(markdown="x")),
            {"lesson.position"},
        ),
    ],
)
async def test_invalid_lesson_names_the_field_and_writes_nothing(
    instructor: Caller, pg: Pg, lesson: courses_pb2.Lesson, fields: set[str]
) -> None:
    course = await new_course(instructor)
    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await add_lesson(instructor, course.id, lesson)
    assert set(field_violations(err.value)) == fields


async def test_position_beyond_the_end_is_refused(instructor: Caller, pg: Pg) -> None:
    course = await new_course(instructor)
    await add_lesson(instructor, course.id)
    lesson = article()
    lesson.position = 3
    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await add_lesson(instructor, course.id, lesson)
    assert "1 to 2" in field_violations(err.value)["lesson.position"]


async def test_lessons_insert_reorder_and_renumber_on_removal(instructor: Caller, pg: Pg) -> None:
    course = await new_course(instructor)
    stub = courses(instructor.channel)
    a = await add_lesson(instructor, course.id, article("A"))
    b = await add_lesson(instructor, course.id, article("B"))
    c = await add_lesson(instructor, course.id, article("C"))
    first = article("Z")
    first.position = 1
    z = await add_lesson(instructor, course.id, first)
    assert await positions(pg, course.id) == [("Z", 1), ("A", 2), ("B", 3), ("C", 4)]
    assert z.next_lesson_id == a.id

    async def move(lesson_id: str, position: int) -> courses_pb2.Lesson:
        reply = await stub.UpdateLesson(
            courses_pb2.UpdateLessonRequest(
                lesson=courses_pb2.Lesson(id=lesson_id, course_id=course.id, position=position),
                update_mask=mask("position"),
            ),
            metadata=instructor.metadata(),
        )
        return reply.lesson

    moved = await move(z.id, 4)  # down to the end
    assert moved.position == 4 and moved.previous_lesson_id == c.id
    assert await positions(pg, course.id) == [("A", 1), ("B", 2), ("C", 3), ("Z", 4)]
    await move(c.id, 1)  # up to the top
    assert await positions(pg, course.id) == [("C", 1), ("A", 2), ("B", 3), ("Z", 4)]
    await move(a.id, 3)  # down by one
    assert await positions(pg, course.id) == [("C", 1), ("B", 2), ("A", 3), ("Z", 4)]
    [*_, (_, payload)] = await pg.events(a.id, "lesson.updated")
    assert [e["title"] for e in payload["outline"]] == ["C", "B", "A", "Z"]

    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await move(a.id, 5)
    assert "1 to 4" in field_violations(err.value)["lesson.position"]
    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await move(a.id, 0)
    assert set(field_violations(err.value)) == {"lesson.position"}

    await stub.DeleteLesson(
        courses_pb2.DeleteLessonRequest(course_id=course.id, lesson_id=b.id),
        metadata=instructor.metadata(),
    )
    assert await positions(pg, course.id) == [("C", 1), ("A", 2), ("Z", 3)]
    assert await pg.value("SELECT lesson_count FROM courses WHERE id = %s", course.id) == 3
    [(_, deleted)] = await pg.events(b.id, "lesson.deleted")
    assert [e["position"] for e in deleted["outline"]] == [1, 2, 3]
    assert ("lesson.delete", "success", instructor.user_id) in await pg.audit(
        f"courses/{course.id}/lessons/{b.id}"
    )
    async with fails(grpc.StatusCode.NOT_FOUND, pg):
        await stub.DeleteLesson(
            courses_pb2.DeleteLessonRequest(course_id=course.id, lesson_id=b.id),
            metadata=instructor.metadata(),
        )


async def test_update_lesson_title_and_content(instructor: Caller, pg: Pg) -> None:
    course = await new_course(instructor)
    lesson = await add_lesson(instructor, course.id, article("Old"))
    stub = courses(instructor.channel)
    reply = await stub.UpdateLesson(
        courses_pb2.UpdateLessonRequest(
            lesson=courses_pb2.Lesson(
                id=lesson.id,
                course_id=course.id,
                title="Now a video",
                video=courses_pb2.Video(url="https://v.example.com/x", duration_seconds=60),
            ),
            update_mask=mask("title", "video"),
        ),
        metadata=instructor.metadata(),
    )
    assert reply.lesson.title == "Now a video"
    assert reply.lesson.WhichOneof("content") == "video"
    assert await pg.rows("SELECT content_type, content FROM lessons WHERE id = %s", lesson.id) == [
        ("video", {"url": "https://v.example.com/x", "duration_seconds": 60})
    ]
    # Title only: the content stays as it is.
    reply = await stub.UpdateLesson(
        courses_pb2.UpdateLessonRequest(
            lesson=courses_pb2.Lesson(id=lesson.id, course_id=course.id, title="Renamed"),
            update_mask=mask("title"),
        ),
        metadata=instructor.metadata(),
    )
    assert reply.lesson.title == "Renamed" and reply.lesson.video.duration_seconds == 60


@pytest.mark.parametrize(
    ("lesson", "paths", "fields"),
    [
        (courses_pb2.Lesson(title="x"), ["title", "bogus"], {"update_mask"}),
        (courses_pb2.Lesson(title="x"), ["course_title"], {"update_mask"}),
        (article(), ["quiz"], {"update_mask"}),
        (courses_pb2.Lesson(), ["content"], {"lesson.content"}),
        (video(seconds=-3), ["video"], {"lesson.video.duration_seconds"}),
        (courses_pb2.Lesson(title=""), ["title"], {"lesson.title"}),
    ],
)
async def test_invalid_lesson_update_names_the_field(
    instructor: Caller,
    pg: Pg,
    lesson: courses_pb2.Lesson,
    paths: list[str],
    fields: set[str],
) -> None:
    course = await new_course(instructor)
    existing = await add_lesson(instructor, course.id)
    lesson.id, lesson.course_id = existing.id, course.id
    async with fails(grpc.StatusCode.INVALID_ARGUMENT, pg) as err:
        await courses(instructor.channel).UpdateLesson(
            courses_pb2.UpdateLessonRequest(lesson=lesson, update_mask=mask(*paths)),
            metadata=instructor.metadata(),
        )
    assert set(field_violations(err.value)) == fields


async def test_a_lesson_of_another_course_is_not_found(instructor: Caller, pg: Pg) -> None:
    one = await new_course(instructor)
    two = await new_course(instructor)
    lesson = await add_lesson(instructor, one.id)
    async with fails(grpc.StatusCode.NOT_FOUND, pg):
        await courses(instructor.channel).UpdateLesson(
            courses_pb2.UpdateLessonRequest(
                lesson=courses_pb2.Lesson(id=lesson.id, course_id=two.id, title="Moved"),
                update_mask=mask("title"),
            ),
            metadata=instructor.metadata(),
        )
    async with fails(grpc.StatusCode.NOT_FOUND, pg):
        await courses(instructor.channel).DeleteLesson(
            courses_pb2.DeleteLessonRequest(course_id=two.id, lesson_id=lesson.id),
            metadata=instructor.metadata(),
        )


async def test_a_published_course_keeps_its_last_lesson(instructor: Caller, pg: Pg) -> None:
    course, [only] = await published_course(instructor)
    async with fails(grpc.StatusCode.FAILED_PRECONDITION, pg) as err:
        await courses(instructor.channel).DeleteLesson(
            courses_pb2.DeleteLessonRequest(course_id=course.id, lesson_id=only.id),
            metadata=instructor.metadata(),
        )
    assert precondition_types(err.value) == ["LESSONS"]
    # A draft may drop to zero lessons.
    draft = await new_course(instructor)
    lesson = await add_lesson(instructor, draft.id)
    await courses(instructor.channel).DeleteLesson(
        courses_pb2.DeleteLessonRequest(course_id=draft.id, lesson_id=lesson.id),
        metadata=instructor.metadata(),
    )
    assert await pg.value("SELECT lesson_count FROM courses WHERE id = %s", draft.id) == 0


# ---------------------------------------------------------------------------- lifecycle


async def test_unpublish_returns_a_course_without_active_learners_to_draft(
    instructor: Caller, caller: Caller, pg: Pg
) -> None:
    course, _ = await published_course(instructor)
    stub = courses(instructor.channel)
    await enroll(caller, course.id)
    async with fails(grpc.StatusCode.FAILED_PRECONDITION, pg) as err:
        await stub.UnpublishCourse(
            courses_pb2.UnpublishCourseRequest(course_id=course.id), metadata=instructor.metadata()
        )
    assert precondition_types(err.value) == ["ENROLLMENTS"]
    await learning(caller.channel).WithdrawEnrollment(
        learning_pb2.WithdrawEnrollmentRequest(course_id=course.id), metadata=caller.metadata()
    )
    request = courses_pb2.UnpublishCourseRequest(course_id=course.id, request_id="unpub-1")
    reply = await stub.UnpublishCourse(request, metadata=instructor.metadata())
    assert reply.course.state == courses_pb2.COURSE_STATE_DRAFT
    assert not reply.course.HasField("publish_time")
    assert reply.consistency_token
    assert await pg.value("SELECT state FROM courses WHERE id = %s", course.id) == "draft"
    assert ("course.unpublish", "success", instructor.user_id) in await pg.audit(
        f"courses/{course.id}"
    )
    assert (await pg.events(course.id, "course.unpublished"))[0][1]["state"] == "draft"
    # A retry with the same request id answers the same and writes nothing.
    async with pg.unchanged():
        again = await stub.UnpublishCourse(request, metadata=instructor.metadata())
    assert again == reply
    # Without the request id, the second unpublish is refused: it is a draft now.
    async with fails(grpc.StatusCode.FAILED_PRECONDITION, pg) as err:
        await stub.UnpublishCourse(
            courses_pb2.UnpublishCourseRequest(course_id=course.id), metadata=instructor.metadata()
        )
    assert precondition_types(err.value) == ["COURSE_STATE"]
    # A draft again: it can be published again.
    republished = await stub.PublishCourse(
        courses_pb2.PublishCourseRequest(course_id=course.id), metadata=instructor.metadata()
    )
    assert republished.course.state == courses_pb2.COURSE_STATE_PUBLISHED


async def test_restore_brings_an_archived_course_back_as_a_draft(
    instructor: Caller, pg: Pg
) -> None:
    course, _ = await published_course(instructor)
    stub = courses(instructor.channel)
    async with fails(grpc.StatusCode.FAILED_PRECONDITION, pg) as err:
        await stub.RestoreCourse(
            courses_pb2.RestoreCourseRequest(course_id=course.id), metadata=instructor.metadata()
        )
    assert precondition_types(err.value) == ["COURSE_STATE"]
    await stub.ArchiveCourse(
        courses_pb2.ArchiveCourseRequest(course_id=course.id), metadata=instructor.metadata()
    )
    reply = await stub.RestoreCourse(
        courses_pb2.RestoreCourseRequest(course_id=course.id), metadata=instructor.metadata()
    )
    assert reply.course.state == courses_pb2.COURSE_STATE_DRAFT
    assert ("course.restore", "success", instructor.user_id) in await pg.audit(
        f"courses/{course.id}"
    )
    assert [t for t, _ in await pg.events(course.id, "course.restored")] == ["course.restored"]
    # Editable again, unlike while archived.
    await stub.UpdateCourse(
        courses_pb2.UpdateCourseRequest(
            course=courses_pb2.Course(id=course.id, title="Revived"), update_mask=mask("title")
        ),
        metadata=instructor.metadata(),
    )


async def test_delete_removes_a_draft_that_never_had_learners(instructor: Caller, pg: Pg) -> None:
    course = await new_course(instructor)
    await add_lesson(instructor, course.id)
    await add_lesson(instructor, course.id, quiz_lesson())
    stub = courses(instructor.channel)
    request = courses_pb2.DeleteCourseRequest(course_id=course.id, request_id="del-1")
    reply = await stub.DeleteCourse(request, metadata=instructor.metadata())
    assert reply.consistency_token
    assert await pg.value("SELECT count(*) FROM courses WHERE id = %s", course.id) == 0
    assert await pg.value("SELECT count(*) FROM lessons WHERE course_id = %s", course.id) == 0
    assert ("course.delete", "success", instructor.user_id) in await pg.audit(
        f"courses/{course.id}"
    )
    [(_, payload)] = await pg.events(course.id, "course.deleted")
    assert (payload["owner_id"], len(payload["lesson_ids"])) == (instructor.user_id, 2)
    async with pg.unchanged():  # the retry answers as the first call did
        assert await stub.DeleteCourse(request, metadata=instructor.metadata()) == reply
    async with fails(grpc.StatusCode.NOT_FOUND, pg):
        await stub.DeleteCourse(
            courses_pb2.DeleteCourseRequest(course_id=course.id), metadata=instructor.metadata()
        )


async def test_only_a_draft_without_any_learner_ever_can_be_deleted(
    instructor: Caller, caller: Caller, pg: Pg
) -> None:
    course, _ = await published_course(instructor)
    stub = courses(instructor.channel)
    delete = courses_pb2.DeleteCourseRequest(course_id=course.id)
    async with fails(grpc.StatusCode.FAILED_PRECONDITION, pg) as err:
        await stub.DeleteCourse(delete, metadata=instructor.metadata())
    assert precondition_types(err.value) == ["COURSE_STATE"]
    # A learner came and went; unpublished, the course is a draft that had a learner.
    await enroll(caller, course.id)
    await learning(caller.channel).WithdrawEnrollment(
        learning_pb2.WithdrawEnrollmentRequest(course_id=course.id), metadata=caller.metadata()
    )
    await stub.UnpublishCourse(
        courses_pb2.UnpublishCourseRequest(course_id=course.id), metadata=instructor.metadata()
    )
    async with fails(grpc.StatusCode.FAILED_PRECONDITION, pg) as err:
        await stub.DeleteCourse(delete, metadata=instructor.metadata())
    assert precondition_types(err.value) == ["ENROLLMENTS"]


async def test_lifecycle_changes_are_for_the_owner_and_admins(
    channel: grpc.aio.Channel, instructor: Caller, admin: Caller, postgres_url: str, pg: Pg
) -> None:
    other = await Caller.with_role(channel, postgres_url, "instructor", name="Other")
    published, _ = await published_course(instructor)
    draft = await new_course(instructor)
    stub = courses(channel)
    async with fails(grpc.StatusCode.PERMISSION_DENIED, pg):
        await stub.UnpublishCourse(
            courses_pb2.UnpublishCourseRequest(course_id=published.id), metadata=other.metadata()
        )
    # Someone else's draft is as missing as a course that does not exist.
    async with fails(grpc.StatusCode.NOT_FOUND, pg):
        await stub.DeleteCourse(
            courses_pb2.DeleteCourseRequest(course_id=draft.id), metadata=other.metadata()
        )
    unpublished = await stub.UnpublishCourse(
        courses_pb2.UnpublishCourseRequest(course_id=published.id), metadata=admin.metadata()
    )
    assert unpublished.course.state == courses_pb2.COURSE_STATE_DRAFT
    await stub.DeleteCourse(
        courses_pb2.DeleteCourseRequest(course_id=draft.id), metadata=admin.metadata()
    )
    assert ("course.delete", "success", admin.user_id) in await pg.audit(f"courses/{draft.id}")
