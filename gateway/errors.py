"""gRPC status -> HTTP error response with a `google.rpc.Status` JSON body."""

from __future__ import annotations

import base64
import functools
import logging
import math
import re
from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf import any_pb2, descriptor_pool, json_format
from google.protobuf.descriptor import Descriptor
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import DecodeError
from google.protobuf.message_factory import GetMessageClass
from google.rpc import error_details_pb2, status_pb2

from gateway.metadata import pairs

log = logging.getLogger("gateway.errors")

STATUS_DETAILS_KEY = "grpc-status-details-bin"

# The same table as grpc-gateway's runtime.HTTPStatusFromCode.
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}

_RETRY_INFO = error_details_pb2.RetryInfo.DESCRIPTOR.full_name
_BAD_REQUEST_URL = "type.googleapis.com/" + error_details_pb2.BadRequest.DESCRIPTOR.full_name
# One segment of a field path: a field name, optionally followed by an index or map key.
_SEGMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(\[[^\]]*\])?")
# A snake_case word not in quotes (quoted text is what the client sent: left as it is).
_SNAKE_WORD = re.compile(r"""(?<!["'])\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b""")


def http_status(code: grpc.StatusCode) -> int:
    return HTTP_STATUS.get(code, 500)


def code_number(code: grpc.StatusCode) -> int:
    number: int = code.value[0]
    return number


class HttpError:
    """An error answer: HTTP status, Status JSON body and extra headers."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        self.status = status
        self.body = body
        self.headers = headers


def status_json(
    code: grpc.StatusCode, message: str, details: list[Any] | None = None
) -> dict[str, Any]:
    return {"code": code_number(code), "message": message, "details": details or []}


def simple_error(code: grpc.StatusCode, message: str, *, status: int | None = None) -> HttpError:
    headers = {"WWW-Authenticate": "Bearer"} if code is grpc.StatusCode.UNAUTHENTICATED else {}
    return HttpError(status or http_status(code), status_json(code, message), headers)


def bad_request(message: str, field: str, description: str, *, status: int = 400) -> HttpError:
    """INVALID_ARGUMENT with one BadRequest field violation (`field` "" for the whole request)."""
    violation = error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
    detail = {
        "@type": "type.googleapis.com/" + error_details_pb2.BadRequest.DESCRIPTOR.full_name,
        # An empty field (the request as a whole) is still printed: clients read it.
        **json_format.MessageToDict(
            error_details_pb2.BadRequest(field_violations=[violation]),
            always_print_fields_with_no_presence=True,
        ),
    }
    code = grpc.StatusCode.INVALID_ARGUMENT
    return HttpError(status, status_json(code, message, [detail]), {})


def _detail_json(detail: any_pb2.Any, pools: Iterable[DescriptorPool]) -> dict[str, Any]:
    """One `Any` detail as proto3 JSON, resolving its type in the backend's pool first."""
    type_name = detail.type_url.rsplit("/", 1)[-1]
    for pool in pools:
        try:
            descriptor = pool.FindMessageTypeByName(type_name)
        except KeyError:
            continue
        message = GetMessageClass(descriptor)()
        try:
            message.ParseFromString(detail.value)
        except DecodeError:
            break
        body: Any = json_format.MessageToDict(message, descriptor_pool=pool)
        if not isinstance(body, dict):
            # A well-known type with a scalar JSON form nests under "value" inside an Any.
            body = {"value": body}
        return {"@type": detail.type_url, **body}
    # Unknown or undecodable type: keep the bytes rather than dropping the detail.
    return {"@type": detail.type_url, "value": base64.b64encode(detail.value).decode()}


def _retry_after(details: Iterable[any_pb2.Any]) -> str | None:
    for detail in details:
        if detail.type_url.rsplit("/", 1)[-1] == _RETRY_INFO:
            info = error_details_pb2.RetryInfo.FromString(detail.value)
            delay = info.retry_delay
            return str(max(0, math.ceil(delay.seconds + delay.nanos / 1e9)))
    return None


def rich_status(trailing: Iterable[tuple[str, str | bytes]]) -> status_pb2.Status | None:
    for key, value in trailing:
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except Exception:  # a malformed trailer must not hide the original error
                log.warning("unparseable %s trailer", STATUS_DETAILS_KEY)
    return None


def json_field_path(path: str, message: Descriptor | None) -> str:
    """A field path in proto names (`course.display_name`, `lessons[2].title`), as the JSON
    names the client sent (`course.displayName`), walking the request message's descriptor.
    Segments it cannot resolve (not a field of the message) are kept as they are."""
    if message is None or not path:
        return path
    out: list[str] = []
    current: Descriptor | None = message
    for segment in path.split("."):
        match = _SEGMENT.fullmatch(segment)
        field = current.fields_by_name.get(match.group(1)) if match and current else None
        if match is None or field is None:
            out.append(segment)
            current = None
            continue
        out.append(field.json_name + (match.group(2) or ""))
        current = field.message_type
    return ".".join(out)


@functools.lru_cache(maxsize=256)
def _json_names(message: Descriptor) -> dict[str, str]:
    """Proto name -> JSON name of every field whose two differ, in the message and in every
    message it holds (a resource's fields, which an update mask names)."""
    names: dict[str, str] = {}
    seen: set[str] = set()
    stack = [message]
    while stack:
        current = stack.pop()
        if current.full_name in seen:
            continue
        seen.add(current.full_name)
        for field in current.fields:
            if field.json_name != field.name:
                names[field.name] = field.json_name
            if field.message_type is not None:
                stack.append(field.message_type)
    return names


def json_field_words(text: str, message: Descriptor | None) -> str:
    """`text` with each snake_case field name of the request (`enrollment_close_time`, as a
    backend lists what an update mask may name) in the JSON form the client must send
    (`enrollmentCloseTime`). Other words, and anything in quotes, are left alone."""
    if message is None or "_" not in text:
        return text
    names = _json_names(message)
    return _SNAKE_WORD.sub(lambda m: names.get(m.group(0), m.group(0)), text)


def _json_violation_paths(
    details: list[Any], message: Descriptor | None, body_field: str = ""
) -> bool:
    """Field violations as the client addressed the fields: JSON names, and relative to the
    body when the body is one field of the request (a PATCH's resource: the client sent
    `{"avatarUrl": …}`, not `{"user": {"avatarUrl": …}}`); field names in their descriptions
    too. Whether there were any."""
    if message is None:
        return False
    body = message.fields_by_name.get(body_field) if body_field not in ("", "*") else None
    prefix = body.json_name + "." if body is not None else ""
    found = False
    for detail in details:
        if isinstance(detail, dict) and detail.get("@type") == _BAD_REQUEST_URL:
            for violation in detail.get("fieldViolations", ()):
                if not isinstance(violation, dict):
                    continue
                found = True
                if isinstance(violation.get("field"), str):
                    path = json_field_path(violation["field"], message)
                    if prefix and path.startswith(prefix):
                        path = path[len(prefix) :]
                    violation["field"] = path
                if isinstance(violation.get("description"), str):
                    violation["description"] = json_field_words(violation["description"], message)
    return found


def from_status(
    code: grpc.StatusCode,
    message: str,
    trailing: Iterable[tuple[str, str | bytes]],
    pool: DescriptorPool | None,
    request_type: Descriptor | None = None,
    body_field: str = "",
) -> HttpError:
    """The HTTP error for a gRPC status; field violations of a call whose request message is
    `request_type` (its HTTP body: `body_field`) are given the JSON (camelCase) paths the
    client used."""
    details: list[Any] = []
    headers: dict[str, str] = {}
    rich = rich_status(trailing)
    if rich is not None:
        pools = [p for p in (pool, descriptor_pool.Default()) if p is not None]
        details = [_detail_json(d, pools) for d in rich.details]
        violations = _json_violation_paths(details, request_type, body_field)
        retry_after = _retry_after(rich.details)
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        message = message or rich.message
        if violations:
            # The backend's message repeats its violations in proto names: say them as JSON.
            message = json_field_words(message, request_type)
    if code is grpc.StatusCode.UNAUTHENTICATED:
        headers["WWW-Authenticate"] = "Bearer"
    return HttpError(http_status(code), status_json(code, message, details), headers)


def from_rpc_error(
    error: grpc.aio.AioRpcError,
    pool: DescriptorPool | None,
    request_type: Descriptor | None = None,
    body_field: str = "",
) -> HttpError:
    trailing = pairs(error.trailing_metadata())
    return from_status(
        error.code(), error.details() or "", trailing, pool, request_type, body_field
    )
