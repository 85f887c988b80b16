"""Check decoded JSON against a message descriptor before protobuf parses it.

protobuf's JSON parser reports the first problem in its own words (`Message type "x.v1.Req"
has no field named ...`, `Couldn't parse integer`, Python's `invalid literal for int()`),
about proto names. This walks the same value first and reports a problem as a `Violation`: the
lowerCamel JSON path of the offending value, from the request message's root (`thing.tags[2]`,
`labels.k`), and a description in the API's terms. It accepts what the proto3 JSON mapping
accepts; anything it lets through that protobuf still refuses is reported by the caller
without protobuf's text.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import math
import re
from collections.abc import Sequence
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor

_T = FieldDescriptor
_INTEGER = re.compile(r"[+-]?[0-9]+")
_LOWER_CAMEL_PATH = re.compile(r"[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)*")
_UNPAIRED_SURROGATE = re.compile(r"[\ud800-\udfff]")
_FLOAT32_MAX = 3.4028234663852886e38
_FLOAT_WORDS = frozenset({"NaN", "Infinity", "-Infinity"})
# (minimum, maximum) of each integer type.
_RANGES: dict[int, tuple[int, int]] = {
    **dict.fromkeys((_T.TYPE_INT32, _T.TYPE_SINT32, _T.TYPE_SFIXED32), (-(2**31), 2**31 - 1)),
    **dict.fromkeys((_T.TYPE_UINT32, _T.TYPE_FIXED32), (0, 2**32 - 1)),
    **dict.fromkeys((_T.TYPE_INT64, _T.TYPE_SINT64, _T.TYPE_SFIXED64), (-(2**63), 2**63 - 1)),
    **dict.fromkeys((_T.TYPE_UINT64, _T.TYPE_FIXED64), (0, 2**64 - 1)),
}
_WRAPPERS = frozenset(
    f"google.protobuf.{name}Value"
    for name in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
)
_EXAMPLE_TIMESTAMP = "2024-05-01T12:00:00Z"


class Violation(Exception):
    """One problem with the request: its JSON path and what is wrong, in the API's words."""

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}" if field else description)
        self.field = field
        self.description = description


def join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def json_path(fields: Sequence[FieldDescriptor]) -> str:
    """The lowerCamel JSON path of a chain of fields."""
    return ".".join(f.json_name for f in fields)


def field_by_any_name(message: Descriptor, name: str) -> FieldDescriptor | None:
    """A field by its proto name or its JSON (lowerCamel) name, as proto3 JSON accepts both."""
    field = message.fields_by_name.get(name)
    if field is not None:
        return field
    for candidate in message.fields:
        if candidate.json_name == name:
            return candidate
    return None


def unknown_field(message: Descriptor, name: str) -> str:
    names = [f.json_name for f in message.fields]
    close = difflib.get_close_matches(name, names, n=1)
    if close:
        return f'unknown field "{name}"; did you mean "{close[0]}"?'
    if not names:
        return f'unknown field "{name}"; this object has no fields'
    return f'unknown field "{name}"'


def check_message(value: Any, message: Descriptor, path: str) -> None:
    """Check `value` as the JSON form of `message`; raise Violation on the first problem."""
    full = message.full_name
    if full == "google.protobuf.Timestamp":
        _check_timestamp(value, path)
    elif full == "google.protobuf.Duration":
        _check_duration(value, path)
    elif full == "google.protobuf.FieldMask":
        _check_field_mask(value, path)
    elif full in _WRAPPERS:
        check_value(message.fields_by_name["value"], value, path)
    elif full == "google.protobuf.Struct":
        if not isinstance(value, dict):
            raise Violation(path, "must be a JSON object")
    elif full == "google.protobuf.ListValue":
        if not isinstance(value, list):
            raise Violation(path, "must be a JSON array")
    elif full == "google.protobuf.Value":
        pass  # any JSON value
    elif full == "google.protobuf.Any":
        if not isinstance(value, dict) or not isinstance(value.get("@type"), str):
            raise Violation(path, 'must be a JSON object with an "@type" string')
    else:
        _check_fields(value, message, path)


def _check_fields(value: Any, message: Descriptor, path: str) -> None:
    if not isinstance(value, dict):
        raise Violation(path, "must be a JSON object")
    seen: dict[str, str] = {}  # proto field name -> key as sent
    oneofs: dict[str, str] = {}  # oneof name -> key as sent
    for key, item in value.items():
        field = field_by_any_name(message, key)
        if field is None:
            raise Violation(join(path, key), unknown_field(message, key))
        child = join(path, field.json_name)
        if field.name in seen:
            raise Violation(child, f'is given twice, as "{seen[field.name]}" and "{key}"')
        seen[field.name] = key
        if item is None:
            continue  # null leaves a field unset
        oneof = field.containing_oneof
        if oneof is not None and not getattr(oneof, "is_synthetic", False):
            if oneof.name in oneofs:
                members = ", ".join(f.json_name for f in oneof.fields)
                raise Violation(child, f"only one of {members} may be set")
            oneofs[oneof.name] = key
        check_field(field, item, child)


def _accepts_null(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.full_name in (
        "google.protobuf.Value",
        "google.protobuf.NullValue",
    )


def check_field(field: FieldDescriptor, value: Any, path: str) -> None:
    """Check a whole field's JSON value: a map, a list or a single value."""
    entry = field.message_type
    if entry is not None and entry.GetOptions().map_entry:
        if not isinstance(value, dict):
            raise Violation(path, "must be a JSON object (a map)")
        key_field = entry.fields_by_name["key"]
        value_field = entry.fields_by_name["value"]
        for key, item in value.items():
            child = join(path, str(key))
            _check_map_key(key_field, key, child)
            if item is None and not _accepts_null(value_field):
                raise Violation(child, "must not be null")
            check_value(value_field, item, child)
    elif field.is_repeated:
        if not isinstance(value, list):
            raise Violation(path, "must be a JSON array")
        for i, item in enumerate(value):
            child = f"{path}[{i}]"
            if item is None and not _accepts_null(field):
                raise Violation(child, "must not be null")
            check_value(field, item, child)
    else:
        check_value(field, value, path)


def _check_map_key(field: FieldDescriptor, key: str, path: str) -> None:
    if field.type == _T.TYPE_BOOL:
        if key not in ("true", "false"):
            raise Violation(path, "map key must be true or false")
    elif field.type in _RANGES:
        _check_integer(field, key, path)


def check_value(field: FieldDescriptor, value: Any, path: str) -> None:
    """Check one value of the field (an element, for repeated fields)."""
    if value is None:
        return
    if field.message_type is not None:
        check_message(value, field.message_type, path)
    elif field.enum_type is not None:
        _check_enum(field, value, path)
    elif field.type in _RANGES:
        _check_integer(field, value, path)
    elif field.type in (_T.TYPE_DOUBLE, _T.TYPE_FLOAT):
        _check_float(field, value, path)
    elif field.type == _T.TYPE_BOOL:
        if not isinstance(value, bool):
            raise Violation(path, "must be true or false")
    elif field.type == _T.TYPE_STRING:
        if not isinstance(value, str):
            raise Violation(path, "must be a string")
        if _UNPAIRED_SURROGATE.search(value):
            raise Violation(path, "must be valid Unicode text (it has an unpaired surrogate)")
    elif field.type == _T.TYPE_BYTES:
        _check_bytes(value, path)


def _check_integer(field: FieldDescriptor, value: Any, path: str) -> None:
    low, high = _RANGES[field.type]
    wide = field.type in (_T.TYPE_INT64, _T.TYPE_SINT64, _T.TYPE_SFIXED64) or field.type in (
        _T.TYPE_UINT64,
        _T.TYPE_FIXED64,
    )
    kind = "an integer (a decimal string or a number)" if wide else "an integer"
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, str) and _INTEGER.fullmatch(value)
    ):
        number = int(value)
    if number is None:
        shown = f' "{value}"' if isinstance(value, str) and len(value) <= 40 else ""
        raise Violation(path, f"must be {kind}, got{shown or ' ' + _json_kind(value)}")
    if not low <= number <= high:
        raise Violation(path, f"must be between {low} and {high}")


def _check_float(field: FieldDescriptor, value: Any, path: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Violation(path, f"must be a number, got {_json_kind(value)}")
    if isinstance(value, str):
        if value in _FLOAT_WORDS:
            return
        try:
            number = float(value)
        except ValueError:
            raise Violation(path, 'must be a number (or "NaN", "Infinity", "-Infinity")') from None
        if math.isnan(number) or math.isinf(number):
            raise Violation(path, 'must be a number; write "NaN", "Infinity" or "-Infinity"')
    else:
        number = float(value)
        if math.isinf(number):
            raise Violation(path, 'is too large; write "Infinity" or "-Infinity"')
    if field.type == _T.TYPE_FLOAT and abs(number) > _FLOAT32_MAX:
        raise Violation(path, "is out of range for a 32-bit float")


def _check_enum(field: FieldDescriptor, value: Any, path: str) -> None:
    enum = field.enum_type
    assert enum is not None
    if isinstance(value, str) and value in enum.values_by_name:
        return
    if isinstance(value, int) and not isinstance(value, bool):
        if -(2**31) <= value < 2**31:
            return
    elif isinstance(value, str) and _INTEGER.fullmatch(value) and -(2**31) <= int(value) < 2**31:
        return
    names = ", ".join(v.name for v in enum.values)
    shown = f'"{value}"' if isinstance(value, str) and len(value) <= 60 else _json_kind(value)
    raise Violation(path, f"must be one of {names}; got {shown}")


def _check_bytes(value: Any, path: str) -> None:
    if not isinstance(value, str):
        raise Violation(path, "must be a base64 string")
    encoded = value.encode("utf-8", "surrogatepass")
    try:
        base64.urlsafe_b64decode(encoded + b"=" * (4 - len(encoded) % 4))
    except (binascii.Error, ValueError):
        raise Violation(path, "must be base64 (standard or URL-safe alphabet)") from None


def _check_timestamp(value: Any, path: str) -> None:
    if isinstance(value, str):
        try:
            timestamp_pb2.Timestamp().FromJsonString(value)
            return
        except ValueError:
            pass
    raise Violation(
        path, f"must be an RFC 3339 date-time in UTC or with an offset, e.g. {_EXAMPLE_TIMESTAMP}"
    )


def _check_duration(value: Any, path: str) -> None:
    if isinstance(value, str):
        try:
            duration_pb2.Duration().FromJsonString(value)
            return
        except ValueError:
            pass
    raise Violation(path, 'must be a duration in seconds with an "s" suffix, e.g. "1.5s"')


def _check_field_mask(value: Any, path: str) -> None:
    if not isinstance(value, str):
        raise Violation(path, 'must be a string of comma-separated field paths, e.g. "a,b.c"')
    for part in value.split(","):
        if not part:
            continue
        if "_" in part:
            camel = re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), part)
            raise Violation(path, f'field paths are lowerCamel: send "{camel}", not "{part}"')
        if not _LOWER_CAMEL_PATH.fullmatch(part):
            raise Violation(path, f'"{part}" is not a field path (names separated by ".")')


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
