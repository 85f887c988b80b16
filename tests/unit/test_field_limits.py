"""Request size limits: declared in the contract, compiled once, checked in O(fields)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, overload

import pytest
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, field_mask_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message_factory import GetMessageClass

from learnflow.security.access import api_services
from learnflow.security.field_limits import MAX_VIOLATIONS, MissingFieldLimit, RequestLimits
from learnflow.v1 import courses_pb2, learning_pb2, limits_pb2

LIMITS = RequestLimits(api_services())
_F = descriptor_pb2.FieldDescriptorProto
# grpc_tools ships no type information.
protoc: Any = importlib.import_module("grpc_tools.protoc")


def _input_messages() -> Iterator[Descriptor]:
    """Every message reachable from an RPC input, each once."""
    seen: set[str] = set()
    todo = [m.input_type for s in api_services() for m in s.methods]
    while todo:
        message = todo.pop()
        if message.full_name in seen:
            continue
        seen.add(message.full_name)
        yield message
        for field in message.fields:
            if field.message_type is not None and field.message_type.full_name != (
                "google.protobuf.FieldMask"
            ):
                todo.append(field.message_type)


def _declared(field: FieldDescriptor) -> limits_pb2.FieldLimits | None:
    options: Any = field.GetOptions()
    if not options.HasExtension(limits_pb2.limits):
        return None
    declared: limits_pb2.FieldLimits = options.Extensions[limits_pb2.limits]
    return declared


def test_every_string_and_repeated_field_of_every_input_declares_a_limit() -> None:
    text = (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES)
    unbounded: list[str] = []
    checked = 0
    for message in _input_messages():
        for field in message.fields:
            mask = field.message_type is not None and (
                field.message_type.full_name == "google.protobuf.FieldMask"
            )
            if not (field.is_repeated or field.type in text or mask):
                continue
            checked += 1
            declared = _declared(field)
            needs_items = field.is_repeated or mask
            needs_length = field.type in text or mask
            if (
                declared is None
                or (needs_items and declared.max_items <= 0)
                or (needs_length and declared.max_length <= 0)
            ):
                unbounded.append(field.full_name)
    assert unbounded == []
    assert checked > 80  # the walk really covered the contract
    # Including nested ones such as the quiz a lesson carries.
    assert "learnflow.v1.QuizQuestion" in {m.full_name for m in _input_messages()}


def test_limits_match_the_handlers_validation() -> None:
    def limits(message: Any, name: str) -> tuple[int, int]:
        declared = _declared(message.DESCRIPTOR.fields_by_name[name])
        assert declared is not None, name
        return declared.max_length, declared.max_items

    assert limits(courses_pb2.Course, "title") == (120, 0)
    assert limits(courses_pb2.Course, "summary") == (2000, 0)
    assert limits(courses_pb2.Course, "tags") == (30, 10)
    assert limits(courses_pb2.Article, "markdown") == (100_000, 0)
    assert limits(courses_pb2.Quiz, "questions") == (0, 50)
    assert limits(courses_pb2.QuizQuestion, "choices") == (500, 10)
    assert limits(learning_pb2.CreateQuizAttemptRequest, "answers") == (0, 50)
    assert limits(learning_pb2.QuizAnswer, "choice_indexes") == (0, 10)
    assert limits(learning_pb2.CreateQuizAttemptRequest, "request_id") == (128, 0)


def test_a_request_field_without_a_limit_stops_the_server_from_starting() -> None:
    pool = descriptor_pool.DescriptorPool()
    for file in (descriptor_pb2.DESCRIPTOR, limits_pb2.DESCRIPTOR):
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        pool.Add(proto)
    pool.Add(
        descriptor_pb2.FileDescriptorProto(
            name="probe.proto",
            package="probe",
            dependency=["learnflow/v1/limits.proto"],
            message_type=[
                descriptor_pb2.DescriptorProto(
                    name="Req",
                    field=[
                        descriptor_pb2.FieldDescriptorProto(
                            name="free_text", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL
                        ),
                        descriptor_pb2.FieldDescriptorProto(
                            name="ids", number=2, type=_F.TYPE_INT32, label=_F.LABEL_REPEATED
                        ),
                    ],
                )
            ],
            service=[
                descriptor_pb2.ServiceDescriptorProto(
                    name="Probe",
                    method=[
                        descriptor_pb2.MethodDescriptorProto(
                            name="Call", input_type=".probe.Req", output_type=".probe.Req"
                        )
                    ],
                )
            ],
        )
    )
    service = pool.FindServiceByName("probe.Probe")
    with pytest.raises(MissingFieldLimit) as err:
        RequestLimits([service])
    assert "probe.Req.free_text" in str(err.value) and "probe.Req.ids" in str(err.value)
    assert RequestLimits([service], strict=False).missing  # reported, not raised


class _Untouchable(Sequence[int]):
    """A huge repeated field whose elements must never be looked at."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[int]: ...
    def __getitem__(self, index: int | slice) -> int | Sequence[int]:
        raise AssertionError("per-element work on an over-limit field")

    def __iter__(self) -> Iterator[int]:
        raise AssertionError("per-element work on an over-limit field")


class _HugeAttempt:
    """Quacks like a CreateQuizAttemptRequest holding 3.5 million answers."""

    DESCRIPTOR = learning_pb2.CreateQuizAttemptRequest.DESCRIPTOR

    def ListFields(self) -> list[tuple[FieldDescriptor, Any]]:
        return [(self.DESCRIPTOR.fields_by_name["answers"], _Untouchable(3_500_000))]


def test_an_over_limit_collection_is_refused_from_its_length_alone() -> None:
    violations = LIMITS.violations(_HugeAttempt())  # type: ignore[arg-type]
    assert [(v.field, v.description) for v in violations] == [
        ("answers", "must have at most 50 items")
    ]


def test_three_and_a_half_million_choice_indexes_are_refused_by_count() -> None:
    request = learning_pb2.CreateQuizAttemptRequest(
        course_id="c",
        lesson_id="l",
        answers=[learning_pb2.QuizAnswer(question_id="q\x00", choice_indexes=[1] * 3_500_000)],
    )
    violations = LIMITS.violations(request)
    assert [v.field for v in violations] == ["answers[0].choice_indexes"]


def test_nested_paths_name_each_offending_element() -> None:
    question = courses_pb2.QuizQuestion(
        id="q" * 65, prompt="p", choices=["a" * 501, "ok", "b" * 501], correct_choice_indexes=[0]
    )
    lesson = courses_pb2.Lesson(title="t", quiz=courses_pb2.Quiz(questions=[question]))
    request = courses_pb2.UpdateLessonRequest(
        lesson=lesson,
        update_mask=field_mask_pb2.FieldMask(paths=["title", "x" * 65]),
        request_id="r" * 129,
    )
    assert {v.field: v.description for v in LIMITS.violations(request)} == {
        "lesson.quiz.questions[0].id": "must be at most 64 characters",
        "lesson.quiz.questions[0].choices[0]": "must be at most 500 characters",
        "lesson.quiz.questions[0].choices[2]": "must be at most 500 characters",
        "update_mask[1]": "must be at most 64 characters",
        "request_id": "must be at most 128 characters",
    }
    many_tags = courses_pb2.CreateCourseRequest(
        course=courses_pb2.Course(title="t", tags=["x" * 31] * 100_000)
    )
    # The count is over: the (also too long) tags themselves are not walked.
    assert [v.field for v in LIMITS.violations(many_tags)] == ["course.tags"]


def test_a_request_at_its_limits_passes() -> None:
    question = courses_pb2.QuizQuestion(
        id="q" * 64, prompt="p" * 2000, choices=["c" * 500] * 10, correct_choice_indexes=[0] * 10
    )
    lesson = courses_pb2.Lesson(
        id="1" * 36,
        course_id="2" * 36,
        title="t" * 120,
        quiz=courses_pb2.Quiz(questions=[question] * 50),
    )
    assert (
        LIMITS.violations(courses_pb2.CreateLessonRequest(course_id="3" * 36, lesson=lesson)) == []
    )
    attempt = learning_pb2.CreateQuizAttemptRequest(
        answers=[learning_pb2.QuizAnswer(question_id="q" * 64, choice_indexes=range(10))] * 50
    )
    assert LIMITS.violations(attempt) == []
    # Response messages and services without plans are not checked at all.
    assert (
        LIMITS.violations(
            courses_pb2.GetCourseResponse(lessons=[courses_pb2.LessonSummary()] * 500)
        )
        == []
    )


def test_violations_are_capped() -> None:
    question = courses_pb2.QuizQuestion(choices=["x" * 501] * 10)
    lesson = courses_pb2.Lesson(quiz=courses_pb2.Quiz(questions=[question] * 50))
    violations = LIMITS.violations(courses_pb2.CreateLessonRequest(lesson=lesson))
    assert len(violations) == MAX_VIOLATIONS


def test_each_limit_is_said_in_the_fields_comment(tmp_path: Path) -> None:
    """The contract's readers see the limits in the comments (and so in generated docs)."""
    root = Path(__file__).resolve().parents[2]
    googleapis = Path(annotations_pb2.__file__).parent.parent.parent
    well_known = Path(str(resources.files("grpc_tools") / "_proto"))
    out = tmp_path / "contract.pb"
    files = sorted(str(p.relative_to(root / "protos")) for p in (root / "protos").rglob("*.proto"))
    args = [
        "protoc",
        f"-I{root / 'protos'}",
        f"-I{googleapis}",
        f"-I{well_known}",
        f"--descriptor_set_out={out}",
        "--include_source_info",
        *files,
    ]
    assert protoc.main(args) == 0
    silent: list[str] = []
    seen = 0
    for file in descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file:
        comments = {tuple(loc.path): loc.leading_comments for loc in file.source_code_info.location}
        for i, message in enumerate(file.message_type):
            for j, field in enumerate(message.field):
                pool_field = descriptor_pool.Default().FindFieldByName(
                    f"{file.package}.{message.name}.{field.name}"
                )
                declared = _declared(pool_field)
                if declared is None:
                    continue
                seen += 1
                comment = comments.get((4, i, 2, j), "")
                for limit in (declared.max_length, declared.max_items):
                    if limit and f"{limit:,}" not in comment and str(limit) not in comment:
                        silent.append(f"{pool_field.full_name}: {limit}")
    assert silent == []
    assert seen > 80


def test_plainly_valid_never_passes_what_the_full_checks_refuse() -> None:
    """The fast path for flat requests agrees with `violations` + the NUL scan: whatever it
    lets through, they find nothing in; on flat types it lets through all they find nothing
    in; it never claims a message with nested or repeated fields."""
    import random

    from learnflow.values import nul_text_violations

    limits = RequestLimits(api_services())
    rng = random.Random(7)
    flat_types = 0
    for service in api_services():
        for method in service.methods:
            message_type = GetMessageClass(method.input_type)
            flat = all(
                not f.is_repeated and f.message_type is None for f in method.input_type.fields
            )
            flat_types += flat
            for _ in range(40):
                message = message_type()
                for f in method.input_type.fields:
                    if f.is_repeated or f.message_type is not None:
                        continue
                    if f.type not in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
                        continue
                    declared = f.GetOptions().Extensions[limits_pb2.limits].max_length
                    size = rng.choice([0, 1, declared - 1, declared, declared + 1])
                    text = "x" * max(size, 0)
                    if text and rng.random() < 0.3:
                        at = rng.randrange(len(text))
                        text = text[:at] + "\x00" + text[at + 1 :]
                    if f.type == FieldDescriptor.TYPE_BYTES:
                        setattr(message, f.name, text.encode())
                    else:
                        setattr(message, f.name, text)
                clean = not limits.violations(message) and not nul_text_violations(message)
                fast = limits.plainly_valid(message)
                assert not fast or clean, (method.full_name, message)
                if flat:
                    assert fast == clean, (method.full_name, message)
                else:
                    assert not fast
    assert flat_types >= 10  # most reads: the fast path is taken
