"""The demo catalog: three published courses with lessons of every content type.

Written through the course command handlers, in-process, as the demo instructor, so every row
comes with its audit record and events and the read models are projected as usual. Skipped
when the instructor already owns a course, so loading the demo data twice changes nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select

from learnflow.commands.courses import CourseCommands
from learnflow.context import CallContext, Principal, reset_call, set_call
from learnflow.storage import tables
from learnflow.storage.unit_of_work import Database
from learnflow.v1 import courses_pb2

C = courses_pb2


def _quiz(threshold: int, *questions: tuple[str, list[str], list[int]]) -> courses_pb2.Quiz:
    return C.Quiz(
        pass_threshold_percent=threshold,
        questions=[
            C.QuizQuestion(prompt=prompt, choices=choices, correct_choice_indexes=correct)
            for prompt, choices, correct in questions
        ],
    )


CATALOG: list[dict[str, Any]] = [
    {
        "course": C.Course(
            title="Python Foundations",
            summary="Variables, functions and data structures: a first course in Python.",
            tags=["python", "programming", "beginners"],
            level=C.COURSE_LEVEL_BEGINNER,
            capacity=0,
        ),
        "lessons": [
            C.Lesson(
                title="Why Python?",
                article=C.Article(
                    markdown="# Why Python?\n\nPython reads like pseudo-code and runs almost "
                    "everywhere. In this course you will write small programs from day one."
                ),
            ),
            C.Lesson(
                title="Setting up your editor",
                video=C.Video(
                    url="https://videos.learnflow.dev/python/setup.mp4", duration_seconds=420
                ),
            ),
            C.Lesson(
                title="Check your understanding: values and types",
                quiz=_quiz(
                    70,
                    ("What is the type of `3 / 2`?", ["int", "float", "str"], [1]),
                    ("Which of these are immutable?", ["list", "tuple", "str", "dict"], [1, 2]),
                    ("What does `len('abc')` return?", ["2", "3", "'abc'"], [1]),
                ),
            ),
            C.Lesson(
                title="Exercise: FizzBuzz",
                code_exercise=C.CodeExercise(
                    language="python",
                    prompt="Print the numbers 1 to 100, but Fizz for multiples of 3, Buzz for "
                    "multiples of 5 and FizzBuzz for multiples of both.",
                    starter_code="def fizzbuzz(n: int) -> str:\n    ...\n",
                ),
            ),
        ],
    },
    {
        "course": C.Course(
            title="Practical SQL with PostgreSQL",
            summary="Query, join and aggregate real data; transactions and indexes explained.",
            tags=["sql", "postgresql", "databases"],
            level=C.COURSE_LEVEL_INTERMEDIATE,
            capacity=50,
        ),
        "lessons": [
            C.Lesson(
                title="Joins without fear",
                article=C.Article(
                    markdown="## Joins\n\nAn inner join keeps the rows that match on both "
                    "sides; a left join keeps every row of the left table."
                ),
            ),
            C.Lesson(
                title="Transactions in ten minutes",
                video=C.Video(
                    url="https://videos.learnflow.dev/sql/transactions.mp4", duration_seconds=600
                ),
            ),
            C.Lesson(
                title="Quiz: aggregates",
                quiz=_quiz(
                    60,
                    (
                        "Which clause filters groups after aggregation?",
                        ["WHERE", "HAVING", "ORDER BY"],
                        [1],
                    ),
                    ("Does `count(column)` count NULLs?", ["yes", "no"], [1]),
                ),
            ),
            C.Lesson(
                title="Exercise: top customers",
                code_exercise=C.CodeExercise(
                    language="sql",
                    prompt="List the five customers with the highest total order amount.",
                    starter_code="SELECT customer_id\nFROM orders\n-- your query here\n",
                ),
            ),
        ],
    },
    {
        "course": C.Course(
            title="Designing gRPC APIs",
            summary="Resource-oriented design, errors, pagination and evolution of gRPC APIs.",
            tags=["grpc", "api-design", "protobuf"],
            level=C.COURSE_LEVEL_ADVANCED,
            capacity=25,
        ),
        "lessons": [
            C.Lesson(
                title="Resources and standard methods",
                article=C.Article(
                    markdown="# Resources first\n\nName the nouns of your API, then give each "
                    "the standard methods Get, List, Create, Update and Delete."
                ),
            ),
            C.Lesson(
                title="Rich errors in practice",
                video=C.Video(
                    url="https://videos.learnflow.dev/grpc/errors.mp4", duration_seconds=900
                ),
            ),
            C.Lesson(
                title="Quiz: field masks and pagination",
                quiz=_quiz(
                    80,
                    (
                        "What does an update_mask name?",
                        ["fields to update", "fields to return", "fields to delete"],
                        [0],
                    ),
                    (
                        "Which are AIP pagination fields?",
                        ["page_size", "offset", "page_token", "next_page_token"],
                        [0, 2, 3],
                    ),
                ),
            ),
            C.Lesson(
                title="Exercise: a breaking-change checker",
                code_exercise=C.CodeExercise(
                    language="go",
                    prompt="Compare two descriptor sets and report removed fields and renumbered "
                    "tags.",
                    starter_code="package main\n\nfunc main() {}\n",
                ),
            ),
        ],
    },
]


async def load_catalog(db: Database, instructor_id: uuid.UUID) -> int:
    """Creates and publishes the demo courses; returns how many the instructor owns."""
    async with db.engine.connect() as conn:
        owned = (
            await conn.execute(
                select(func.count()).where(tables.courses.c.owner_id == instructor_id)
            )
        ).scalar_one()
    if owned:
        return int(owned)
    commands = CourseCommands(db)
    token = set_call(
        CallContext(
            method="demo-catalog",
            request_id="demo-catalog",
            client_address="local",
            principal=Principal(instructor_id, "instructor"),
        )
    )
    try:
        for entry in CATALOG:
            created = await commands.CreateCourse(C.CreateCourseRequest(course=entry["course"]))
            course_id = created.course.id
            for lesson in entry["lessons"]:
                await commands.CreateLesson(
                    C.CreateLessonRequest(course_id=course_id, lesson=lesson)
                )
            await commands.PublishCourse(C.PublishCourseRequest(course_id=course_id))
    finally:
        reset_call(token)
    return len(CATALOG)
