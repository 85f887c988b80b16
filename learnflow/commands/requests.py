"""What every command handler does with its request first: who is calling, and its ids."""

from __future__ import annotations

import uuid

from learnflow.context import Principal, current_call
from learnflow.errors import FieldViolation, InvalidArgument, PermissionDenied
from learnflow.values import parse_uuid


def caller() -> Principal:
    principal = current_call().principal
    if principal is None:  # the interceptor refuses anonymous calls to these methods
        raise PermissionDenied("this method requires an authenticated caller")
    return principal


def parse_ids(*fields: tuple[str, str]) -> list[uuid.UUID]:
    """Parse several `(field name, value)` UUIDs, reporting every bad one at once."""
    violations: list[FieldViolation] = []
    parsed: list[uuid.UUID] = []
    for field, value in fields:
        try:
            parsed.append(parse_uuid(value, field))
        except InvalidArgument as error:
            violations.extend(error.violations)
    if violations:
        raise InvalidArgument(violations)
    return parsed
