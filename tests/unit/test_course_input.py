"""Course and lesson input: every field rule, with the request path each violation names."""

from __future__ import annotations

import datetime as dt

import pytest
from google.protobuf import timestamp_pb2

from learnflow.commands.course_input import (
    COURSE_CREATE_FIELDS,
    COURSE_MASK_PATHS,
    LESSON_MASK_PATHS,
    course_values,
    lesson_content,
    lesson_title,
    mask_paths,
    window_violations,
)
from learnflow.errors import FieldViolation, InvalidArgument
from learnflow.v1 import courses_pb2


def fields_of(violations: list[FieldViolation]) -> list[str]:
    return [v.field for v in violations]


def valid_course(**changes: object) -> courses_pb2.Course:
    course = courses_pb2.Course(
        title="  Intro to Rust  ",
        summary=" Ownership ",
        tags=["rust", "systems-2"],
        level=courses_pb2.COURSE_LEVEL_BEGINNER,
        capacity=30,
    )
    for name, value in changes.items():
        if isinstance(value, list):
            course.ClearField(name)  # type: ignore[arg-type]
            getattr(course, name).extend(value)
        else:
            setattr(course, name, value)
    return course


def ts(seconds: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds)


# ---------------------------------------------------------------------------- courses


def test_a_valid_course_gives_trimmed_column_values() -> None:
    course = valid_course()
    course.enrollment_open_time.CopyFrom(ts(1_700_000_000))
    values, violations = course_values(course, COURSE_CREATE_FIELDS)
    assert violations == []
    assert values == {
        "title": "Intro to Rust",
        "summary": "Ownership",
        "tags": ["rust", "systems-2"],
        "level": "beginner",
        "capacity": 30,
        "enrollment_open_at": dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC),
        "enrollment_close_at": None,  # not set: no close time
    }


def test_only_the_named_fields_are_validated() -> None:
    values, violations = course_values(valid_course(title="x", capacity=-1), ["summary"])
    assert violations == []
    assert values == {"summary": "Ownership"}


@pytest.mark.parametrize(
    ("title", "ok"),
    [("abc", True), ("  ab  ", False), ("x" * 120, True), ("x" * 121, False), ("", False)],
)
def test_a_title_has_3_to_120_characters_after_trimming(title: str, ok: bool) -> None:
    _, violations = course_values(valid_course(title=title), ["title"])
    assert fields_of(violations) == ([] if ok else ["course.title"])


def test_a_summary_has_at_most_2000_characters() -> None:
    assert course_values(valid_course(summary="s" * 2000), ["summary"])[1] == []
    _, violations = course_values(valid_course(summary="s" * 2001), ["summary"])
    assert fields_of(violations) == ["course.summary"]


@pytest.mark.parametrize(
    "tag", ["Rust", "with space", "", "x" * 31, "under_score", "ünï", "tag!", "a\nb"]
)
def test_a_bad_tag_is_named_by_its_index(tag: str) -> None:
    _, violations = course_values(valid_course(tags=["ok", tag]), ["tags"])
    assert violations == [
        FieldViolation("course.tags[1]", "must be 1 to 30 characters of a-z, 0-9 and '-'")
    ]


def test_a_tag_of_30_characters_and_digits_is_fine() -> None:
    assert course_values(valid_course(tags=["a" * 30, "2024", "-"]), ["tags"])[1] == []


def test_a_trailing_newline_does_not_sneak_past_the_tag_pattern() -> None:
    _, violations = course_values(valid_course(tags=["rust\n"]), ["tags"])
    assert fields_of(violations) == ["course.tags[0]"]


def test_duplicate_tags_are_named_after_their_first_use() -> None:
    _, violations = course_values(valid_course(tags=["a", "b", "a", "b", "a"]), ["tags"])
    assert violations == [
        FieldViolation("course.tags[2]", "duplicate tag"),
        FieldViolation("course.tags[3]", "duplicate tag"),
        FieldViolation("course.tags[4]", "duplicate tag"),
    ]


def test_at_most_ten_tags() -> None:
    ten = [f"t{i}" for i in range(10)]
    assert course_values(valid_course(tags=ten), ["tags"])[1] == []
    _, violations = course_values(valid_course(tags=[*ten, "t10"]), ["tags"])
    assert fields_of(violations) == ["course.tags"]


def test_an_unknown_level_is_refused() -> None:
    course = valid_course()
    course.level = 99  # type: ignore[assignment]
    values, violations = course_values(course, ["level"])
    assert fields_of(violations) == ["course.level"]
    assert values["level"] is None


def test_an_unspecified_level_is_a_level() -> None:
    values, violations = course_values(valid_course(level=0), ["level"])
    assert (values["level"], violations) == ("unspecified", [])


@pytest.mark.parametrize(("capacity", "ok"), [(0, True), (1, True), (-1, False)])
def test_capacity_is_zero_for_unlimited_or_positive(capacity: int, ok: bool) -> None:
    _, violations = course_values(valid_course(capacity=capacity), ["capacity"])
    assert fields_of(violations) == ([] if ok else ["course.capacity"])


def test_an_out_of_range_timestamp_is_a_violation_not_a_crash() -> None:
    course = valid_course()
    course.enrollment_close_time.CopyFrom(ts(10**15))
    values, violations = course_values(course, ["enrollment_close_time"])
    assert violations == [
        FieldViolation("course.enrollment_close_time", "is not a valid timestamp")
    ]
    assert values == {"enrollment_close_at": None}


def test_every_violation_is_reported_at_once() -> None:
    course = valid_course(title="", summary="s" * 2001, tags=["A"], capacity=-5)
    _, violations = course_values(course, COURSE_CREATE_FIELDS)
    assert fields_of(violations) == [
        "course.title",
        "course.summary",
        "course.tags[0]",
        "course.capacity",
    ]


# ---------------------------------------------------------------------------- window


def test_the_enrollment_window_must_close_after_it_opens() -> None:
    opens = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert window_violations(opens, opens + dt.timedelta(seconds=1)) == []
    for close in (opens, opens - dt.timedelta(days=1)):
        assert fields_of(window_violations(opens, close)) == ["course.enrollment_close_time"]


def test_a_half_open_window_is_fine() -> None:
    opens = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert window_violations(opens, None) == []
    assert window_violations(None, opens) == []
    assert window_violations(None, None) == []


# ---------------------------------------------------------------------------- masks


def test_mask_paths_are_returned_as_given() -> None:
    assert mask_paths(["title", "tags", "title"], COURSE_MASK_PATHS) == ["title", "tags", "title"]


def test_an_empty_mask_names_the_updatable_fields() -> None:
    with pytest.raises(InvalidArgument) as caught:
        mask_paths([], COURSE_MASK_PATHS)
    (violation,) = caught.value.violations
    assert violation.field == "update_mask"
    assert "capacity, enrollment_close_time, enrollment_open_time, level" in violation.description


@pytest.mark.parametrize("path", ["id", "slug", "state", "lesson_count", "Title", "title.x", ""])
def test_an_unknown_or_read_only_mask_path_is_refused(path: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        mask_paths(["title", path], COURSE_MASK_PATHS)
    (violation,) = caught.value.violations
    assert violation.field == "update_mask"
    assert violation.description.startswith(f"unknown or read-only field(s) {path};")


def test_unknown_mask_paths_are_listed_once_and_sorted() -> None:
    with pytest.raises(InvalidArgument) as caught:
        mask_paths(["zeta", "alpha", "zeta", "position"], LESSON_MASK_PATHS)
    assert "field(s) alpha, zeta;" in caught.value.violations[0].description


def test_lesson_masks_accept_the_content_kinds() -> None:
    paths = ["title", "position", "content", "article", "video", "quiz", "code_exercise"]
    assert mask_paths(paths, LESSON_MASK_PATHS) == paths


# ---------------------------------------------------------------------------- lessons


def test_a_lesson_title_is_trimmed_and_1_to_120_characters() -> None:
    violations: list[FieldViolation] = []
    assert lesson_title(courses_pb2.Lesson(title="  Hi "), violations) == "Hi"
    assert lesson_title(courses_pb2.Lesson(title="x" * 120), violations) == "x" * 120
    assert violations == []
    lesson_title(courses_pb2.Lesson(title="   "), violations)
    lesson_title(courses_pb2.Lesson(title="x" * 121), violations)
    assert fields_of(violations) == ["lesson.title", "lesson.title"]


def content_of(lesson: courses_pb2.Lesson) -> tuple[str, dict[str, object], list[str]]:
    violations: list[FieldViolation] = []
    kind, content = lesson_content(lesson, violations)
    return kind, content, fields_of(violations)


def test_a_lesson_needs_some_content() -> None:
    assert content_of(courses_pb2.Lesson(title="t")) == ("", {}, ["lesson.content"])


def test_an_article_needs_non_blank_markdown_of_bounded_length() -> None:
    ok = courses_pb2.Lesson(article=courses_pb2.Article(markdown="# Hi"))
    assert content_of(ok) == ("article", {"markdown": "# Hi"}, [])
    for markdown in (" \n ", "x" * 100_001):
        lesson = courses_pb2.Lesson(article=courses_pb2.Article(markdown=markdown))
        assert content_of(lesson)[2] == ["lesson.article.markdown"]
    longest = courses_pb2.Lesson(article=courses_pb2.Article(markdown="x" * 100_000))
    assert content_of(longest)[2] == []


def video(url: str, seconds: int = 60) -> courses_pb2.Lesson:
    return courses_pb2.Lesson(video=courses_pb2.Video(url=url, duration_seconds=seconds))


def test_a_video_is_an_https_url_with_a_duration() -> None:
    assert content_of(video(" https://v.example/a?b=1 ")) == (
        "video",
        {"url": "https://v.example/a?b=1", "duration_seconds": 60},
        [],
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://v.example/a",
        "HTTPS",
        "ftp://v.example/a",
        "javascript:alert(1)",
        "https://",
        "https:///path-only",
        "https://v.example/a b",
        "https://v.example/\ta",
        "//v.example/a",
        "https://v.example/" + "a" * 2048,
        "",
    ],
)
def test_a_video_url_must_be_https_with_a_host(url: str) -> None:
    assert content_of(video(url))[2] == ["lesson.video.url"]


def test_a_video_url_of_2048_characters_is_fine() -> None:
    url = "https://v.example/"
    assert content_of(video(url + "a" * (2048 - len(url))))[2] == []


@pytest.mark.parametrize(
    ("seconds", "ok"), [(0, False), (1, True), (86_400, True), (86_401, False)]
)
def test_a_video_lasts_one_second_to_one_day(seconds: int, ok: bool) -> None:
    expected = [] if ok else ["lesson.video.duration_seconds"]
    assert content_of(video("https://v.example/a", seconds))[2] == expected


def question(
    qid: str = "q1",
    prompt: str = "2+2?",
    choices: tuple[str, ...] = ("3", "4"),
    correct: tuple[int, ...] = (1,),
) -> courses_pb2.QuizQuestion:
    return courses_pb2.QuizQuestion(
        id=qid, prompt=prompt, choices=choices, correct_choice_indexes=correct
    )


def quiz(*questions: courses_pb2.QuizQuestion, threshold: int = 0) -> courses_pb2.Lesson:
    return courses_pb2.Lesson(
        quiz=courses_pb2.Quiz(questions=questions, pass_threshold_percent=threshold)
    )


def test_a_quiz_keeps_ids_sorts_correct_indexes_and_defaults_its_threshold() -> None:
    kind, content, violations = content_of(
        quiz(question(" q1 ", " Why? ", ("a", "b", "c"), (2, 0, 2)))
    )
    assert (kind, violations) == ("quiz", [])
    assert content == {
        "questions": [
            {
                "id": "q1",
                "prompt": "Why?",
                "choices": ["a", "b", "c"],
                "correct_choice_indexes": [0, 2],
            }
        ],
        "pass_threshold_percent": 70,
        "max_attempts": 0,
    }


def test_a_question_without_an_id_gets_one_that_no_other_question_has() -> None:
    _, content, violations = content_of(quiz(question(""), question("x"), question("  ")))
    assert violations == []
    ids = [q["id"] for q in content["questions"]]  # type: ignore[attr-defined]
    assert ids[1] == "x"
    assert len(set(ids)) == 3
    assert all(len(i) == 12 for i in (ids[0], ids[2]))


def test_duplicate_and_overlong_question_ids_are_refused() -> None:
    _, _, violations = content_of(quiz(question("a"), question(" a"), question("x" * 65)))
    assert violations == ["lesson.quiz.questions[1].id", "lesson.quiz.questions[2].id"]
    assert content_of(quiz(question("x" * 64)))[2] == []


def test_a_quiz_has_one_to_fifty_questions() -> None:
    assert content_of(quiz())[2] == ["lesson.quiz.questions"]
    many = [question(f"q{i}") for i in range(51)]
    assert content_of(quiz(*many))[2] == ["lesson.quiz.questions"]
    assert content_of(quiz(*many[:50]))[2] == []


def test_a_question_needs_a_prompt_and_two_to_ten_choices() -> None:
    _, _, violations = content_of(
        quiz(
            question("a", prompt="  "),
            question("b", choices=("only",), correct=(0,)),
            question("c", choices=tuple("abcdefghijk")),
            question("d", choices=("ok", " ")),
            question("e", choices=("ok", "x" * 501)),
        )
    )
    assert violations == [
        "lesson.quiz.questions[0].prompt",
        "lesson.quiz.questions[1].choices",
        "lesson.quiz.questions[2].choices",
        "lesson.quiz.questions[3].choices[1]",
        "lesson.quiz.questions[4].choices[1]",
    ]


@pytest.mark.parametrize(
    ("correct", "ok"), [((), False), ((0, 1), True), ((2,), False), ((-1,), False)]
)
def test_correct_indexes_are_required_and_point_into_the_choices(
    correct: tuple[int, ...], ok: bool
) -> None:
    violations = content_of(quiz(question(correct=correct)))[2]
    assert violations == ([] if ok else ["lesson.quiz.questions[0].correct_choice_indexes"])


def test_the_index_range_is_named_in_the_violation() -> None:
    violations: list[FieldViolation] = []
    lesson_content(quiz(question(correct=(5,))), violations)
    assert violations[0].description == "must be indexes into choices (0 to 1)"


@pytest.mark.parametrize(("threshold", "ok"), [(1, True), (100, True), (101, False), (-1, False)])
def test_a_pass_threshold_is_a_percentage(threshold: int, ok: bool) -> None:
    expected = [] if ok else ["lesson.quiz.pass_threshold_percent"]
    assert content_of(quiz(question(), threshold=threshold))[2] == expected


def test_a_code_exercise_needs_a_language_and_a_prompt() -> None:
    ok = courses_pb2.Lesson(
        code_exercise=courses_pb2.CodeExercise(
            language=" rust ", prompt="Write fib", starter_code="fn main() {}"
        )
    )
    assert content_of(ok) == (
        "code_exercise",
        {"language": "rust", "prompt": "Write fib", "starter_code": "fn main() {}"},
        [],
    )
    bad = courses_pb2.Lesson(
        code_exercise=courses_pb2.CodeExercise(
            language="x" * 41, prompt=" ", starter_code="x" * 100_001
        )
    )
    assert content_of(bad)[2] == [
        "lesson.code_exercise.language",
        "lesson.code_exercise.prompt",
        "lesson.code_exercise.starter_code",
    ]
