"""JSON/HTTP request -> protobuf request, protobuf response -> JSON."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from gateway import jsonlimits
from gateway.jsoncheck import (
    Violation,
    check_field,
    check_message,
    field_by_any_name,
    json_path,
)
from gateway.jsoncheck import unknown_field as unknown_field_text
from gateway.routing import Route

log = logging.getLogger("gateway.transcode")

FIELD_MASK = "google.protobuf.FieldMask"
# Well-known messages whose JSON form is a single string or scalar, so a query parameter or
# path segment can carry them.
_STRING_WKT = frozenset({"google.protobuf.Timestamp", "google.protobuf.Duration", FIELD_MASK})
_WRAPPERS = frozenset(
    f"google.protobuf.{name}Value"
    for name in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
)
# Well-known messages with a JSON form of their own: a body field mask stops descending here.
WELL_KNOWN_JSON = (
    _STRING_WKT
    | _WRAPPERS
    | {
        "google.protobuf.Struct",
        "google.protobuf.Value",
        "google.protobuf.ListValue",
        "google.protobuf.Any",
        "google.protobuf.Empty",
    }
)


class TranscodeError(Exception):
    """The HTTP request cannot become a gRPC request; carries the HTTP status to answer.

    `field` is the lowerCamel JSON path of the offending value from the request message's root
    ("" for the request as a whole); with a field, the answer carries a BadRequest detail.
    """

    def __init__(
        self,
        message: str,
        *,
        http_status: int = 400,
        code: grpc.StatusCode | None = None,
        field: str | None = None,
        description: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.code = code or grpc.StatusCode.INVALID_ARGUMENT
        self.field = field
        self.description = description or message

    @classmethod
    def from_violation(cls, violation: Violation) -> TranscodeError:
        return cls(str(violation), field=violation.field, description=violation.description)


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _resolve_param(message: Descriptor, name: str) -> list[FieldDescriptor]:
    """Resolve a dotted query/path name, accepting proto and lowerCamel JSON names."""
    fields: list[FieldDescriptor] = []
    current: Descriptor | None = message
    for part in name.split("."):
        field = field_by_any_name(current, part) if current is not None else None
        if field is None:
            raise TranscodeError(
                f'unknown query parameter "{name}"',
                field=name,
                description=(
                    unknown_field_text(current, part)
                    if current is not None
                    else f'"{json_path(fields)}" has no fields'
                ),
            )
        if fields and (fields[-1].is_repeated):
            raise TranscodeError(
                f'query parameter "{name}" goes through a repeated field', field=json_path(fields)
            )
        fields.append(field)
        full = field.message_type.full_name if field.message_type else ""
        # A well-known type is a leaf: its JSON form is a scalar.
        current = None if full in WELL_KNOWN_JSON else field.message_type
    return fields


def _scalar_json(field: FieldDescriptor, raw: str, name: str, path: str) -> Any:
    """Turn one query/path string into the JSON value ParseDict expects for the field.

    `name` is the parameter as the client sent it, `path` its field's lowerCamel JSON path.
    """
    if field.message_type is not None:
        full = field.message_type.full_name
        if full in _STRING_WKT:
            return raw
        if full in _WRAPPERS:
            return _scalar_json(field.message_type.fields_by_name["value"], raw, name, path)
        if full in ("google.protobuf.Value", "google.protobuf.Struct", "google.protobuf.ListValue"):
            try:
                return jsonlimits.loads(raw)
            except jsonlimits.JsonTooDeep as exc:
                raise TranscodeError(f'parameter "{name}" is {exc}', field=path) from None
            except ValueError:
                if full == "google.protobuf.Value":
                    return raw
                raise TranscodeError(
                    f'parameter "{name}" must be JSON', field=path, description="must be JSON"
                ) from None
        raise TranscodeError(
            f'parameter "{name}" names a message, not a value',
            field=path,
            description="is a message: set its fields as name.field=value instead",
        )
    if field.type == FieldDescriptor.TYPE_BOOL:
        lowered = raw.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise TranscodeError(
            f'parameter "{name}" must be true or false, got "{raw}"',
            field=path,
            description=f'must be true or false, got "{raw}"',
        )
    # Integers, floats, enums (name or number), strings and base64 bytes: ParseDict accepts
    # the string form of all of them.
    return raw


def _assign(
    target: dict[str, Any],
    fields: Sequence[FieldDescriptor],
    raw_values: Sequence[str],
    name: str,
) -> None:
    path = json_path(fields)
    node = target
    for field in fields[:-1]:
        child = node.setdefault(field.name, {})
        if not isinstance(child, dict):
            raise TranscodeError(
                f'parameter "{name}" conflicts with another parameter',
                field=path,
                description="conflicts with another parameter",
            )
        node = child
    leaf = fields[-1]
    if _is_map(leaf):
        raise TranscodeError(
            f'parameter "{name}" names a map field',
            field=path,
            description="is a map, which has no query parameter form: send it in a body",
        )
    once = f'parameter "{name}" is given more than once'
    if leaf.name in node:
        raise TranscodeError(once, field=path, description="is given more than once")
    try:
        if leaf.is_repeated:
            if leaf.message_type is not None and leaf.message_type.full_name not in WELL_KNOWN_JSON:
                raise TranscodeError(
                    f'parameter "{name}" names a repeated message field',
                    field=path,
                    description="is a list of messages, which has no query parameter form",
                )
            values = [_scalar_json(leaf, v, name, path) for v in raw_values]
            check_field(leaf, values, path)
            node[leaf.name] = values
            return
        if len(raw_values) != 1:
            raise TranscodeError(once, field=path, description="is given more than once")
        value = _scalar_json(leaf, raw_values[0], name, path)
        check_field(leaf, value, path)
        node[leaf.name] = value
    except Violation as exc:
        raise TranscodeError.from_violation(exc) from None


def _covers(prefix: Sequence[str], path: Sequence[str]) -> bool:
    return len(prefix) <= len(path) and tuple(path[: len(prefix)]) == tuple(prefix)


def _parse_error(exc: Exception) -> TranscodeError:
    # jsoncheck has already refused what it knows; protobuf's own words (proto names, Python
    # exception text) are not the API's, so they go to the log only.
    log.info("request refused by the protobuf JSON parser: %s", str(exc).splitlines()[:1])
    return TranscodeError(
        "the request does not match the API's schema",
        field="",
        description="does not match the API's schema (see /openapi.json)",
    )


@dataclass(frozen=True)
class BodyInput:
    """The decoded JSON body (None when the request had none)."""

    value: Any


def build_request(
    route: Route,
    path_params: dict[str, str],
    query: Iterable[tuple[str, str]],
    body: BodyInput | None,
    pool: DescriptorPool,
) -> Message:
    request_type = route.method.input_type
    if body is None and not route.body and not query:
        plain = _plain_path_request(route, path_params)
        if plain is not None:
            return plain
    message = GetMessageClass(request_type)()

    # 1. The body.
    body_value = body.value if body is not None else None
    if route.body == "*":
        if body_value is None:
            body_value = {}
        if not isinstance(body_value, dict):
            raise TranscodeError(
                "request body must be a JSON object", field="", description="must be a JSON object"
            )
        _check(lambda: check_message(body_value, request_type, ""))
        _parse_into(body_value, message, pool)
    elif route.body and body_value is not None:
        body_field = request_type.fields_by_name[route.body]
        _check(lambda: check_field(body_field, body_value, body_field.json_name))
        _parse_into({route.body: body_value}, message, pool)

    # 2. Path variables and query parameters, merged over the body.
    bound: list[tuple[str, ...]] = []
    params: dict[str, Any] = {}
    for name, chain in route.path_fields:
        bound.append(tuple(f.name for f in chain))
        _assign(params, chain, [path_params[name]], name)

    grouped: dict[str, list[str]] = {}
    for name, value in query:
        grouped.setdefault(name, []).append(value)
    mask_field = body_star_update_mask(route)
    for name, values in grouped.items():
        if mask_field is not None and name in (mask_field.name, mask_field.json_name):
            # AIP-134 puts the update mask in the query, whatever the body binding.
            if isinstance(body_value, dict) and (
                mask_field.name in body_value or mask_field.json_name in body_value
            ):
                raise TranscodeError(
                    f'"{mask_field.json_name}" is both in the query and in the body',
                    field=mask_field.json_name,
                    description="send it once, as a query parameter",
                )
            _assign(params, [mask_field], values, name)
            continue
        if route.body == "*":
            raise TranscodeError(
                f'unknown query parameter "{name}"',
                field=name,
                description="this method takes no query parameters: send it in the JSON body",
            )
        fields = _resolve_param(request_type, name)
        proto_path = tuple(f.name for f in fields)
        if route.body and _covers((route.body,), proto_path):
            raise TranscodeError(
                f'query parameter "{name}" is bound by the request body',
                field=json_path(fields),
                description="is sent in the request body, not as a query parameter",
            )
        if any(_covers(p, proto_path) or _covers(proto_path, p) for p in bound):
            raise TranscodeError(
                f'query parameter "{name}" is bound by the path',
                field=json_path(fields),
                description="is part of the URL path, not a query parameter",
            )
        _assign(params, fields, values, name)
    if params:
        _merge_params(params, message, request_type, pool)

    if route.http_method == "PATCH" and route.body not in ("", "*"):
        _infer_update_mask(route, message, body_value)
    return message


def body_star_update_mask(route: Route) -> FieldDescriptor | None:
    """The update mask of a `body: "*"` PATCH, the one query parameter such a route takes."""
    if route.body != "*" or route.http_method != "PATCH":
        return None
    field = route.method.input_type.fields_by_name.get("update_mask")
    if field is None or field.message_type is None or field.message_type.full_name != FIELD_MASK:
        return None
    return field


def uses_deprecated_body_mask(route: Route, body: BodyInput | None) -> bool:
    """Whether the request sent a `body: "*"` PATCH's update mask in the body, the form before
    the query parameter (answered with a `Deprecation` header for one release)."""
    field = body_star_update_mask(route)
    if field is None or body is None or not isinstance(body.value, dict):
        return False
    return field.name in body.value or field.json_name in body.value


def _check(run: Callable[[], None]) -> None:
    try:
        run()
    except Violation as exc:
        raise TranscodeError.from_violation(exc) from None


def _settable(field: FieldDescriptor | None) -> bool:
    """A plain top-level string field: set on the message directly (see `_merge_params`)."""
    return (
        field is not None
        and field.type == FieldDescriptor.TYPE_STRING
        and not field.is_repeated
        and field.containing_oneof is None
    )


def _plain_path_request(route: Route, path_params: dict[str, str]) -> Message | None:
    """The request of a call that sends nothing but path variables, each a plain top-level
    string field (every `Get` and `Delete` of a resource by id): `_assign`'s checks, then
    the values set directly, without the general merge's dictionaries. None for anything
    else, or a value protobuf refuses (the general path then answers)."""
    chains = route.path_fields
    if not all(len(fields) == 1 and _settable(fields[0]) for _, fields in chains):
        return None
    message = GetMessageClass(route.method.input_type)()
    for name, (field,) in chains:
        value = path_params[name]
        try:
            check_field(field, value, field.json_name)
            setattr(message, field.name, value)
        except Violation as exc:
            raise TranscodeError.from_violation(exc) from None
        except (ValueError, TypeError):
            return None
    return message


def _merge_params(
    params: dict[str, Any], message: Message, request_type: Descriptor, pool: DescriptorPool
) -> None:
    """The path and query values (checked by `_assign`) into `message`. A plain top-level
    string field, such as every resource id in a path, is set directly: json_format.ParseDict
    walks the descriptors for the same result at ten times the cost, on every call. Anything
    else, or a value protobuf refuses, goes through the parser and its errors."""
    rest: dict[str, Any] = {}
    for name, value in params.items():
        field = request_type.fields_by_name.get(name)
        if field is not None and isinstance(value, str) and _settable(field):
            try:
                setattr(message, name, value)
                continue
            except (ValueError, TypeError):
                pass
        rest[name] = value
    if rest:
        _parse_into(rest, message, pool)


def _parse_into(value: dict[str, Any], message: Message, pool: DescriptorPool) -> None:
    try:
        json_format.ParseDict(value, message, descriptor_pool=pool)
    except (json_format.ParseError, ValueError, TypeError, AttributeError) as exc:
        raise _parse_error(exc) from None


def _infer_update_mask(route: Route, message: Message, body_value: Any) -> None:
    """PATCH without an explicit `update_mask`: the mask is the set of body keys present."""
    mask_field = route.method.input_type.fields_by_name.get("update_mask")
    if (
        mask_field is None
        or mask_field.message_type is None
        or mask_field.message_type.full_name != FIELD_MASK
        or not isinstance(body_value, dict)
    ):
        return
    mask: Any = getattr(message, "update_mask")  # noqa: B009 - the field exists only at runtime
    if message.HasField("update_mask") and list(mask.paths):
        return
    body_field = route.method.input_type.fields_by_name[route.body]
    if body_field.message_type is None:
        return
    mask.paths.extend(_mask_paths(body_value, body_field.message_type, ""))


def _mask_paths(obj: dict[str, Any], message: Descriptor, prefix: str) -> list[str]:
    paths: list[str] = []
    for key, value in obj.items():
        field = field_by_any_name(message, key)
        if field is None:
            continue  # ParseDict has already rejected unknown keys
        path = prefix + field.name
        nested = field.message_type
        if (
            nested is not None
            and not field.is_repeated
            and nested.full_name not in WELL_KNOWN_JSON
            and isinstance(value, dict)
            and value
        ):
            paths.extend(_mask_paths(value, nested, path + "."))
        else:
            paths.append(path)
    return paths


def message_to_json(message: Message, pool: DescriptorPool) -> Any:
    return json_format.MessageToDict(
        message, always_print_fields_with_no_presence=True, descriptor_pool=pool
    )


def response_to_json(route: Route, message: Message, pool: DescriptorPool) -> Any:
    if not route.response_body:
        return message_to_json(message, pool)
    field = route.method.output_type.fields_by_name[route.response_body]
    if field.message_type is not None and not field.is_repeated:
        return message_to_json(getattr(message, field.name), pool)
    return message_to_json(message, pool).get(field.json_name)
