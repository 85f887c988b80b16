"""One error never outgrows the trailers that carry it: field violations are capped (the first
100, within a text budget, plus one that counts the rest) and the message summarizes."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2

from learnflow.errors import (
    MAX_FIELD_VIOLATIONS,
    MAX_VIOLATIONS_TEXT,
    FieldViolation,
    InvalidArgument,
)
from learnflow.v1 import courses_pb2
from tests.commands_support import courses, fails
from tests.support import Caller, rich_status


def _violations(n: int, field: str = "tags[{i}]") -> list[FieldViolation]:
    return [FieldViolation(field.format(i=i), "is wrong") for i in range(n)]


def test_a_few_violations_are_kept_as_they_are() -> None:
    error = InvalidArgument(_violations(3))
    assert error.violations == _violations(3)
    assert (
        error.message == "invalid argument: tags[0]: is wrong; tags[1]: is wrong; tags[2]: is wrong"
    )


def test_violations_beyond_the_cap_are_counted_not_listed() -> None:
    error = InvalidArgument(_violations(20_000))
    assert len(error.violations) == MAX_FIELD_VIOLATIONS + 1
    assert error.violations[:MAX_FIELD_VIOLATIONS] == _violations(MAX_FIELD_VIOLATIONS)
    assert error.violations[-1] == FieldViolation("", "19900 more violations omitted")
    assert error.message.endswith("; and 19997 more")
    assert len(error.message) < 200
    assert len(error.to_status().SerializeToString()) < 6000


def test_long_violations_are_clipped_and_budgeted() -> None:
    # Map keys end up in field paths: a client chooses their length.
    error = InvalidArgument(_violations(50, field="labels['" + "k" * 10_000 + "{i}']"))
    kept = error.violations[:-1]
    assert all(len(v.field) <= 200 for v in kept)
    assert sum(len(v.field) + len(v.description) for v in kept) <= MAX_VIOLATIONS_TEXT
    assert error.violations[-1].description == f"{50 - len(kept)} more violations omitted"
    assert len(error.message) < 1000


async def test_twenty_thousand_bad_values_answer_invalid_argument(instructor: Caller) -> None:
    """Used to come back as RESOURCE_EXHAUSTED "received metadata size exceeds hard limit"."""
    course = courses_pb2.Course(title="Many tags", tags=["\x00"] * 20_000)
    async with fails(grpc.StatusCode.INVALID_ARGUMENT) as err:
        await courses(instructor.channel).CreateCourse(
            courses_pb2.CreateCourseRequest(course=course), metadata=instructor.metadata()
        )
    bad = error_details_pb2.BadRequest()
    assert any(detail.Unpack(bad) for detail in rich_status(err.value).details)
    assert len(bad.field_violations) <= MAX_FIELD_VIOLATIONS + 1
    # The contract's limit refuses the list from its length alone, before any element is read
    # (so no per-tag violation is ever built); the cap on violations has its own tests.
    assert [v.field for v in bad.field_violations] == ["course.tags"]
