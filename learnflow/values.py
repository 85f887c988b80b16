"""Small conversions shared by handlers: ids, timestamps, text that storage refuses."""

from __future__ import annotations

import datetime as dt
import re
import uuid

from google.protobuf import timestamp_pb2
from google.protobuf.message import Message

from learnflow.errors import FieldViolation, InvalidArgument


def parse_uuid(value: str, field: str) -> uuid.UUID:
    if not value:
        raise InvalidArgument([FieldViolation(field, "is required")])
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument([FieldViolation(field, "must be a UUID")]) from None


# The canonical text of a UUID: what `str(uuid.UUID)` gives and every read model keys on.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def require_uuid(value: str, field: str) -> str:
    """`value`, when it is a UUID; else INVALID_ARGUMENT naming `field`, as `parse_uuid`.
    The canonical form is recognised without building a UUID (a tenth of the cost, on every
    read); any other spelling goes through `parse_uuid` and is accepted or refused as there."""
    if _CANONICAL_UUID.fullmatch(value) is None:
        parse_uuid(value, field)
    return value


def iso(value: dt.datetime | None) -> str | None:
    """ISO-8601 text of an optional time (event payloads hold times as text)."""
    return value.isoformat() if value is not None else None


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


def nul_text_violations(message: Message, prefix: str = "") -> list[FieldViolation]:
    """Every string field (however deeply nested, repeated or in a map) holding a NUL
    character. PostgreSQL text cannot store NUL, and no LearnFlow text has a use for one, so
    such input is refused as a whole before any handler sees it."""
    violations: list[FieldViolation] = []
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            for key, item in value.items():
                item_path = f"{path}[{key!r}]"
                if isinstance(key, str) and "\x00" in key:
                    violations.append(FieldViolation(path, _NUL_MESSAGE))
                if value_field.message_type is not None:
                    violations.extend(nul_text_violations(item, f"{item_path}."))
                elif isinstance(item, str) and "\x00" in item:
                    violations.append(FieldViolation(item_path, _NUL_MESSAGE))
            continue
        repeated = field.is_repeated
        items = list(value) if repeated else [value]
        for index, item in enumerate(items):
            item_path = f"{path}[{index}]" if repeated else path
            if isinstance(item, Message):
                violations.extend(nul_text_violations(item, f"{item_path}."))
            elif isinstance(item, str) and "\x00" in item:
                violations.append(FieldViolation(item_path, _NUL_MESSAGE))
    return violations


_NUL_MESSAGE = "must not contain NUL (\\u0000) characters"
