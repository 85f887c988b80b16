"""Small conversions shared by handlers: ids, timestamps."""

from __future__ import annotations

import datetime as dt
import uuid

from google.protobuf import timestamp_pb2

from learnflow.errors import FieldViolation, InvalidArgument


def parse_uuid(value: str, field: str) -> uuid.UUID:
    if not value:
        raise InvalidArgument([FieldViolation(field, "is required")])
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument([FieldViolation(field, "must be a UUID")]) from None


def timestamp(value: dt.datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value.astimezone(dt.UTC))
    return ts


def parse_timestamp(value: str | dt.datetime | None) -> timestamp_pb2.Timestamp | None:
    """Read-model timestamps are ISO-8601 strings (portable across MongoDB and FerretDB)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return timestamp(value)
