"""Domain errors and their one mapping to rich gRPC statuses (google.rpc.Status).

Handlers raise these; the error interceptor turns them into a status with details. Anything
else becomes INTERNAL with a request id to quote, never a stack trace.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


@dataclass(frozen=True)
class PreconditionViolation:
    type: str
    subject: str
    description: str


class DomainError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def details(self) -> list[any_pb2.Any]:
        return []

    def to_status(self) -> status_pb2.Status:
        status = status_pb2.Status(code=self.code.value[0], message=self.message)
        status.details.extend(self.details())
        return status


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


# Error details travel in gRPC trailers, whose size is limited (8 KiB by default): one error
# carries at most this many field violations, this much violation text and this much message;
# a final violation says how many more were left out.
MAX_FIELD_VIOLATIONS = 100
MAX_VIOLATIONS_TEXT = 4096
MAX_VIOLATION_PART = 200
MAX_SUMMARIZED = 3


def _clip(text: str, limit: int = MAX_VIOLATION_PART) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def capped_violations(violations: Sequence[FieldViolation]) -> list[FieldViolation]:
    """The first violations (at most MAX_FIELD_VIOLATIONS, within MAX_VIOLATIONS_TEXT), each
    clipped, plus one saying how many more were omitted."""
    kept: list[FieldViolation] = []
    used = 0
    for violation in violations:
        clipped = FieldViolation(_clip(violation.field), _clip(violation.description))
        used += len(clipped.field) + len(clipped.description)
        if len(kept) == MAX_FIELD_VIOLATIONS or used > MAX_VIOLATIONS_TEXT:
            break
        kept.append(clipped)
    omitted = len(violations) - len(kept)
    if omitted:
        kept.append(FieldViolation("", f"{omitted} more violations omitted"))
    return kept


class InvalidArgument(DomainError):
    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, violations: Sequence[FieldViolation], message: str = "") -> None:
        given = list(violations)
        self.violations = capped_violations(given)
        summary = "; ".join(
            f"{_clip(v.field)}: {_clip(v.description)}" for v in given[:MAX_SUMMARIZED]
        )
        if len(given) > MAX_SUMMARIZED:
            summary += f"; and {len(given) - MAX_SUMMARIZED} more"
        super().__init__(_clip(message, 1024) if message else f"invalid argument: {summary}")

    def details(self) -> list[any_pb2.Any]:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description
                )
                for v in self.violations
            ]
        )
        return [_pack(bad_request)]


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND

    def __init__(self, resource_type: str, name: str) -> None:
        super().__init__(f"{resource_type} {name!r} not found")
        self.resource_type = resource_type
        self.name = name

    def details(self) -> list[any_pb2.Any]:
        info = error_details_pb2.ResourceInfo(
            resource_type=self.resource_type, resource_name=self.name
        )
        return [_pack(info)]


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS

    def __init__(self, resource_type: str, name: str, message: str = "") -> None:
        super().__init__(message or f"{resource_type} {name!r} already exists")
        self.resource_type = resource_type
        self.name = name

    def details(self) -> list[any_pb2.Any]:
        info = error_details_pb2.ResourceInfo(
            resource_type=self.resource_type, resource_name=self.name
        )
        return [_pack(info)]


class FailedPrecondition(DomainError):
    code = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, type_: str, subject: str, description: str) -> None:
        super().__init__(description)
        self.violation = PreconditionViolation(type_, subject, description)

    def details(self) -> list[any_pb2.Any]:
        failure = error_details_pb2.PreconditionFailure(
            violations=[
                error_details_pb2.PreconditionFailure.Violation(
                    type=self.violation.type,
                    subject=self.violation.subject,
                    description=self.violation.description,
                )
            ]
        )
        return [_pack(failure)]


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED


class _RetryableError(DomainError):
    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def details(self) -> list[any_pb2.Any]:
        seconds = max(1, math.ceil(self.retry_after_s))
        info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=seconds))
        return [_pack(info)]


class ResourceExhausted(_RetryableError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(_RetryableError):
    code = grpc.StatusCode.UNAVAILABLE


def internal_status(request_id: str) -> status_pb2.Status:
    return status_pb2.Status(
        code=code_pb2.INTERNAL,
        message=f"internal error; quote request id {request_id} when reporting it",
    )
