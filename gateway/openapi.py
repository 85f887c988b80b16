"""OpenAPI 3.1 document generated from the loaded descriptors and HTTP routes.

Schemas follow the proto3 JSON mapping the gateway itself speaks: lowerCamel names, 64-bit
integers as strings, enums as value names, well-known types in their JSON forms.

Size limits: the gateway knows no particular validation option, but any custom field option
(an extension of `google.protobuf.FieldOptions` in the reflected contract) whose type is a
message with an integer field named `max_length` and/or `max_items` is read as a size limit
(0 or unset: none; several such options: the tightest wins). In the document they become:
strings `maxLength` (characters), bytes `maxLength` of their base64 form, repeated fields
`maxItems` (and `maxLength` on string elements), maps `maxProperties` (and `maxLength` on
string values), and a FieldMask field, a comma-separated string, the `maxLength` that
`max_items` paths of `max_length` characters allow. The gateway only documents them; the
backend enforces its own limits.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from google.protobuf import descriptor_pb2, json_format
from google.protobuf.descriptor import (
    Descriptor,
    EnumDescriptor,
    FieldDescriptor,
    MethodDescriptor,
)
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from gateway.descriptors import Schema
from gateway.routing import Route, Router, SegmentKind, resolve_field_path
from gateway.transcode import WELL_KNOWN_JSON

if TYPE_CHECKING:
    from gateway.proxy import Gateway

log = logging.getLogger("gateway.openapi")

REF = "#/components/schemas/"
CONSISTENCY_HEADER = "#/components/headers/ConsistencyToken"
STATUS_SCHEMA = "google.rpc.Status"
ANY_SCHEMA = "google.protobuf.Any"
BEARER = "bearerAuth"
# Options the document renders in their own way rather than as vendor extensions.
_HANDLED_OPTIONS = frozenset({"google.api.http"})
_FIELD_BEHAVIOR = "google.api.field_behavior"
_FIELD_MASK = "google.protobuf.FieldMask"
# Field names that make a FieldOptions extension a size limit (see the module docstring).
_LIMIT_FIELDS = ("max_length", "max_items")

_T = FieldDescriptor
_INTEGERS = frozenset(
    {
        _T.TYPE_INT32,
        _T.TYPE_INT64,
        _T.TYPE_UINT32,
        _T.TYPE_UINT64,
        _T.TYPE_SINT32,
        _T.TYPE_SINT64,
        _T.TYPE_FIXED32,
        _T.TYPE_FIXED64,
        _T.TYPE_SFIXED32,
        _T.TYPE_SFIXED64,
    }
)
_SCALARS: dict[int, dict[str, Any]] = {
    _T.TYPE_DOUBLE: {"type": "number", "format": "double"},
    _T.TYPE_FLOAT: {"type": "number", "format": "float"},
    _T.TYPE_INT32: {"type": "integer", "format": "int32"},
    _T.TYPE_SINT32: {"type": "integer", "format": "int32"},
    _T.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    _T.TYPE_UINT32: {"type": "integer", "minimum": 0, "maximum": 4294967295},
    _T.TYPE_FIXED32: {"type": "integer", "minimum": 0, "maximum": 4294967295},
    # proto3 JSON writes 64-bit integers as strings (JavaScript numbers lose precision).
    _T.TYPE_INT64: {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"},
    _T.TYPE_SINT64: {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"},
    _T.TYPE_SFIXED64: {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"},
    _T.TYPE_UINT64: {"type": "string", "format": "uint64", "pattern": "^[0-9]+$"},
    _T.TYPE_FIXED64: {"type": "string", "format": "uint64", "pattern": "^[0-9]+$"},
    _T.TYPE_BOOL: {"type": "boolean"},
    _T.TYPE_STRING: {"type": "string"},
    _T.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}

_WKT_SCHEMAS: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {
        "type": "string",
        "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$",
        "description": "Duration in seconds with an `s` suffix, e.g. `1.5s`.",
    },
    "google.protobuf.FieldMask": {
        "type": "string",
        "description": "Comma-separated lowerCamel field paths, e.g. `displayName,inner.note`.",
    },
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {"description": "Any JSON value."},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
    ANY_SCHEMA: {"$ref": REF + ANY_SCHEMA},
}
_WRAPPED = {
    "DoubleValue": _T.TYPE_DOUBLE,
    "FloatValue": _T.TYPE_FLOAT,
    "Int64Value": _T.TYPE_INT64,
    "UInt64Value": _T.TYPE_UINT64,
    "Int32Value": _T.TYPE_INT32,
    "UInt32Value": _T.TYPE_UINT32,
    "BoolValue": _T.TYPE_BOOL,
    "StringValue": _T.TYPE_STRING,
    "BytesValue": _T.TYPE_BYTES,
}
for _name, _kind in _WRAPPED.items():
    _WKT_SCHEMAS[f"google.protobuf.{_name}"] = dict(_SCALARS[_kind])


def _comments(schema: Schema) -> dict[str, str]:
    """Leading (else trailing) comments by element full name, from source info if present."""
    out: dict[str, str] = {}
    for file in schema.files:
        if file.source_code_info.location:
            out.update(_file_comments(file))
    return out


def _file_comments(file: descriptor_pb2.FileDescriptorProto) -> dict[str, str]:
    texts: dict[tuple[int, ...], str] = {}
    for loc in file.source_code_info.location:
        text = (loc.leading_comments or loc.trailing_comments).strip()
        if text:
            texts[tuple(loc.path)] = "\n".join(line.strip() for line in text.splitlines())
    out: dict[str, str] = {}

    # Source locations are addressed by field-number paths into the FileDescriptorProto,
    # e.g. (4, i, 2, j) is field j of top-level message i.
    def note(path: tuple[int, ...], name: str) -> None:
        if path in texts:
            out[name] = texts[path]

    def enum(e: descriptor_pb2.EnumDescriptorProto, path: tuple[int, ...], prefix: str) -> None:
        name = f"{prefix}.{e.name}" if prefix else e.name
        note(path, name)
        for i, value in enumerate(e.value):
            note((*path, 2, i), f"{name}.{value.name}")

    def message(m: descriptor_pb2.DescriptorProto, path: tuple[int, ...], prefix: str) -> None:
        name = f"{prefix}.{m.name}" if prefix else m.name
        note(path, name)
        for i, field in enumerate(m.field):
            note((*path, 2, i), f"{name}.{field.name}")
        for i, nested in enumerate(m.nested_type):
            message(nested, (*path, 3, i), name)
        for i, nested_enum in enumerate(m.enum_type):
            enum(nested_enum, (*path, 4, i), name)

    for i, m in enumerate(file.message_type):
        message(m, (4, i), file.package)
    for i, e in enumerate(file.enum_type):
        enum(e, (5, i), file.package)
    for i, service in enumerate(file.service):
        service_name = f"{file.package}.{service.name}" if file.package else service.name
        note((6, i), service_name)
        for j, method in enumerate(service.method):
            note((6, i, 2, j), f"{service_name}.{method.name}")
    return out


class _Builder:
    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.pool = schema.pool
        self.comments = _comments(schema)
        self.components: dict[str, Any] = {}
        self._field_options_class: type[Message] | None = None
        self._field_behavior: FieldDescriptor | None = None
        self._limit_options: list[FieldDescriptor] = []
        try:
            field_options = self.pool.FindMessageTypeByName("google.protobuf.FieldOptions")
        except KeyError:
            return  # no file imports descriptor.proto: no custom field options at all
        self._field_options_class = GetMessageClass(field_options)
        try:
            self._field_behavior = self.pool.FindExtensionByName(_FIELD_BEHAVIOR)
        except KeyError:
            pass  # the backend does not use field_behavior at all
        self._limit_options = [
            ext
            for ext in self.pool.FindAllExtensions(field_options)
            if not ext.is_repeated
            and ext.message_type is not None
            and any(
                (f := ext.message_type.fields_by_name.get(name)) is not None
                and f.type in _INTEGERS
                and not f.is_repeated
                for name in _LIMIT_FIELDS
            )
        ]

    # -- options ---------------------------------------------------------------------------

    def field_behaviors(self, field: FieldDescriptor) -> set[str]:
        if self._field_options_class is None or self._field_behavior is None:
            return set()
        if not field.has_options:
            return set()
        # Parse with the pool's own FieldOptions class so its copy of the extension resolves.
        options: Any = self._field_options_class.FromString(field.GetOptions().SerializeToString())
        enum_type = self._field_behavior.enum_type
        assert enum_type is not None
        names: set[str] = set()
        for number in options.Extensions[self._field_behavior]:
            value = enum_type.values_by_number.get(number)
            if value is not None:
                names.add(value.name)
        return names

    def field_limits(self, field: FieldDescriptor) -> tuple[int, int]:
        """The field's (max_length, max_items) from size-limit options; 0 means none."""
        if not self._limit_options or self._field_options_class is None or not field.has_options:
            return 0, 0
        options: Any = self._field_options_class.FromString(field.GetOptions().SerializeToString())
        found = {name: 0 for name in _LIMIT_FIELDS}
        for ext in self._limit_options:
            if not options.HasExtension(ext):
                continue
            value = options.Extensions[ext]
            for name in _LIMIT_FIELDS:
                if name in value.DESCRIPTOR.fields_by_name:
                    limit = int(getattr(value, name))
                    if limit > 0 and (found[name] == 0 or limit < found[name]):
                        found[name] = limit
        return found["max_length"], found["max_items"]

    def _apply_limits(self, field: FieldDescriptor, schema: dict[str, Any]) -> None:
        max_length, max_items = self.field_limits(field)
        if not max_length and not max_items:
            return
        message = field.message_type
        if message is not None and message.GetOptions().map_entry:
            if max_items:
                schema["maxProperties"] = max_items
            value = message.fields_by_name["value"]
            if max_length and value.type in (_T.TYPE_STRING, _T.TYPE_BYTES):
                _max_length(value, schema["additionalProperties"], max_length)
        elif field.is_repeated:
            if max_items:
                schema["maxItems"] = max_items
            if max_length and field.type in (_T.TYPE_STRING, _T.TYPE_BYTES):
                _max_length(field, schema["items"], max_length)
        elif message is not None and message.full_name == _FIELD_MASK:
            if max_items and max_length:  # lowerCamel paths are never longer than snake_case
                schema["maxLength"] = max_items * (max_length + 1) - 1
        elif max_length and field.type in (_T.TYPE_STRING, _T.TYPE_BYTES):
            _max_length(field, schema, max_length)

    def method_extensions(self, method: MethodDescriptor) -> dict[str, Any]:
        """Custom MethodOptions extensions, whatever they are, as `x-<full name>` entries."""
        if not method.has_options:
            return {}
        try:
            options_type = self.pool.FindMessageTypeByName("google.protobuf.MethodOptions")
        except KeyError:
            return {}
        extensions = [
            ext
            for ext in self.pool.FindAllExtensions(options_type)
            if ext.full_name not in _HANDLED_OPTIONS
        ]
        if not extensions:
            return {}
        options: Any = GetMessageClass(options_type).FromString(
            method.GetOptions().SerializeToString()
        )
        out: dict[str, Any] = {}
        for ext in extensions:
            value = options.Extensions[ext]
            if ext.is_repeated:
                if len(value):
                    out["x-" + ext.full_name] = [self._option_json(ext, v) for v in value]
            elif options.HasExtension(ext):
                out["x-" + ext.full_name] = self._option_json(ext, value)
        return out

    def _option_json(self, ext: FieldDescriptor, value: Any) -> Any:
        if ext.message_type is not None:
            return json_format.MessageToDict(value, descriptor_pool=self.pool)
        if ext.enum_type is not None:
            enum_value = ext.enum_type.values_by_number.get(value)
            return enum_value.name if enum_value is not None else value
        if isinstance(value, bytes):
            return value.hex()
        if ext.type in (_T.TYPE_INT64, _T.TYPE_UINT64, _T.TYPE_SINT64, _T.TYPE_FIXED64):
            return str(value)
        return value

    # -- schemas ---------------------------------------------------------------------------

    def enum_ref(self, enum: EnumDescriptor) -> dict[str, Any]:
        if enum.full_name not in self.components:
            schema: dict[str, Any] = {"type": "string", "enum": [v.name for v in enum.values]}
            self._describe(schema, enum.full_name)
            values = [
                f"- `{v.name}`: {self.comments[f'{enum.full_name}.{v.name}']}"
                for v in enum.values
                if f"{enum.full_name}.{v.name}" in self.comments
            ]
            if values:
                schema["description"] = "\n".join(
                    filter(None, [schema.get("description", ""), *values])
                )
            self.components[enum.full_name] = schema
        return {"$ref": REF + enum.full_name}

    def message_ref(self, message: Descriptor) -> dict[str, Any]:
        if message.full_name in _WKT_SCHEMAS:
            return dict(_WKT_SCHEMAS[message.full_name])
        if message.full_name not in self.components:
            # Reserve the name first: messages may be recursive.
            self.components[message.full_name] = {}
            self.components[message.full_name] = self.message_schema(message)
        return {"$ref": REF + message.full_name}

    def message_schema(
        self, message: Descriptor, *, exclude: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in message.fields:
            if field.name in exclude:
                continue
            prop = self.field_schema(field)
            behaviors = self.field_behaviors(field)
            if "OUTPUT_ONLY" in behaviors:
                prop["readOnly"] = True
            if "INPUT_ONLY" in behaviors:
                prop["writeOnly"] = True
            if "REQUIRED" in behaviors:
                required.append(field.json_name)
            oneof = field.containing_oneof
            if oneof is not None and not _synthetic(oneof):
                others = [f.json_name for f in oneof.fields if f is not field]
                note = f"Member of oneof `{oneof.name}`; excludes {', '.join(others)}."
                prop["description"] = " ".join(filter(None, [prop.get("description"), note]))
            properties[field.json_name] = prop
        schema: dict[str, Any] = {
            "type": "object",
            "properties": properties,
            # The gateway rejects unknown fields, so say so.
            "additionalProperties": False,
        }
        self._describe(schema, message.full_name)
        if required:
            schema["required"] = required
        oneofs = {
            o.name: [f.json_name for f in o.fields if f.name not in exclude]
            for o in message.oneofs
            if not _synthetic(o)
        }
        if oneofs:
            schema["x-oneofs"] = oneofs
            # At most one member of each oneof: no pair may appear together.
            pairs = [
                {"not": {"required": list(pair)}}
                for members in oneofs.values()
                for pair in itertools.combinations(members, 2)
            ]
            if pairs:
                schema["allOf"] = pairs
        return schema

    def value_schema(self, field: FieldDescriptor) -> dict[str, Any]:
        """Schema of one value of the field (an element, for repeated fields)."""
        if field.message_type is not None:
            return self.message_ref(field.message_type)
        if field.enum_type is not None:
            return self.enum_ref(field.enum_type)
        return dict(_SCALARS[field.type])

    def field_schema(self, field: FieldDescriptor) -> dict[str, Any]:
        message = field.message_type
        if message is not None and message.GetOptions().map_entry:
            schema: dict[str, Any] = {
                "type": "object",
                "additionalProperties": self.value_schema(message.fields_by_name["value"]),
            }
        elif field.is_repeated:
            schema = {"type": "array", "items": self.value_schema(field)}
        else:
            schema = self.value_schema(field)
        self._apply_limits(field, schema)
        owner = field.containing_type
        description = self.comments.get(f"{owner.full_name}.{field.name}") if owner else None
        if description:
            schema["description"] = description
        return schema

    def _describe(self, schema: dict[str, Any], full_name: str) -> None:
        if full_name in self.comments:
            schema["description"] = self.comments[full_name]

    # -- operations ------------------------------------------------------------------------

    def parameters(self, route: Route, names: Sequence[str]) -> list[dict[str, Any]]:
        request = route.method.input_type
        params: list[dict[str, Any]] = []
        bound: list[tuple[str, ...]] = []
        for var, name in zip(route.template.variables, names, strict=True):
            fields = resolve_field_path(request, var.field_path)
            bound.append(var.field_path)
            param: dict[str, Any] = {
                "name": name,
                "in": "path",
                "required": True,
                "schema": self.value_schema(fields[-1]),
            }
            notes = []
            if name != var.name:
                notes.append(f"Binds the request field `{var.name}`.")
            if var.multi_segment:
                # OpenAPI has no multi-segment path parameters: document the pattern.
                pattern = "/".join(
                    s.value if s.kind is SegmentKind.LITERAL else s.kind.value
                    for s in route.template.segments[var.start : var.end]
                )
                notes.append(f"Matches `{pattern}`; may contain `/`.")
            if notes:
                param["description"] = " ".join(notes)
            params.append(param)
        if route.body == "*":
            return params
        skip = {route.body} if route.body else set()
        params.extend(self._query_params(request, (), (), bound, skip, depth=0))
        return params

    def _query_params(
        self,
        message: Descriptor,
        proto_prefix: tuple[str, ...],
        json_prefix: tuple[str, ...],
        bound: list[tuple[str, ...]],
        skip: set[str],
        depth: int,
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for field in message.fields:
            proto_path = (*proto_prefix, field.name)
            if not proto_prefix and field.name in skip:
                continue
            if proto_path in bound:
                continue
            nested = field.message_type
            if nested is not None and nested.GetOptions().map_entry:
                continue  # maps have no query form
            name = ".".join((*json_prefix, field.json_name))
            if nested is not None and nested.full_name not in WELL_KNOWN_JSON:
                # Nested messages become dotted names; stop at repeated ones and at cycles.
                if field.is_repeated or depth >= 3:
                    continue
                out.extend(
                    self._query_params(
                        nested, proto_path, (*json_prefix, field.json_name), bound, skip, depth + 1
                    )
                )
                continue
            if nested is not None and nested.full_name in (
                "google.protobuf.Struct",
                "google.protobuf.ListValue",
                "google.protobuf.Any",
                "google.protobuf.Empty",
            ):
                continue
            schema = self.field_schema(field)
            param: dict[str, Any] = {"name": name, "in": "query", "schema": schema}
            if "description" in schema:
                param["description"] = schema.pop("description")
            if field.is_repeated:
                param["explode"] = True  # repeat the key once per value
            out.append(param)
        return out

    def request_body(self, route: Route) -> dict[str, Any] | None:
        if not route.body:
            return None
        request = route.method.input_type
        if route.body == "*":
            top_bound = frozenset(
                v.field_path[0] for v in route.template.variables if len(v.field_path) == 1
            )
            schema = (
                self.message_schema(request, exclude=top_bound)
                if top_bound
                else self.message_ref(request)
            )
            # An empty body is an empty request message, but a POST documents `{}` as the body.
            required = route.http_method == "POST"
        else:
            field = request.fields_by_name[route.body]
            schema = self.field_schema(field)
            required = route.http_method == "POST" or "REQUIRED" in self.field_behaviors(field)
        return {"required": required, "content": {"application/json": {"schema": schema}}}

    def response_schema(self, route: Route) -> dict[str, Any]:
        output = route.method.output_type
        if route.response_body:
            return self.field_schema(output.fields_by_name[route.response_body])
        return self.message_ref(output)

    def operation(self, route: Route, operation_id: str, names: Sequence[str]) -> dict[str, Any]:
        method = route.method
        service = method.containing_service
        op: dict[str, Any] = {"operationId": operation_id, "tags": [service.full_name]}
        comment = self.comments.get(method.full_name)
        if comment:
            op["summary"] = comment.splitlines()[0]
            if "\n" in comment:
                op["description"] = comment
        params = self.parameters(route, names)
        if params:
            op["parameters"] = params
        body = self.request_body(route)
        if body is not None:
            op["requestBody"] = body
        schema = self.response_schema(route)
        if method.server_streaming:
            content = {
                "application/x-ndjson": {"schema": schema},
                "text/event-stream": {"schema": schema},
            }
            description = (
                "A stream of messages: one JSON document per line, or Server-Sent Events "
                "with `Accept: text/event-stream`. A failure mid-stream ends the stream with "
                'an `{"error": Status}` line or an `error` event.'
            )
        else:
            content = {"application/json": {"schema": schema}}
            description = "OK"
        op["responses"] = {
            "200": {
                "description": description,
                "headers": {"X-Consistency-Token": {"$ref": CONSISTENCY_HEADER}},
                "content": content,
            },
            "default": {"$ref": "#/components/responses/Error"},
        }
        if method.GetOptions().deprecated:
            op["deprecated"] = True
        op["x-grpc-method"] = route.grpc_path
        op.update(self.method_extensions(method))
        return op


_PLACEHOLDER = re.compile(r"\{[^}]*\}")
_NOT_NAME = re.compile(r"[^A-Za-z0-9_]")


def _shape(route: Route) -> str:
    """The OpenAPI path with its parameter names blanked: paths of one shape are one path."""
    return _PLACEHOLDER.sub("{}", route.template.openapi_path())


def _parameter_names(routes: Sequence[Route]) -> dict[str, tuple[str, ...]]:
    """Path parameter names per path shape.

    OpenAPI forbids two templated paths that differ only in their parameter names (e.g.
    `/v1/things/{thing_id}` and `/v1/things/{thing.id}`: one path), and tools that expand
    templates with format strings choke on `.` in a name. So each shape gets one set of plain
    names, taken from the route whose variables are simplest (top-level fields), with dots
    turned into underscores; every route of that shape uses them by position.
    """
    candidates: dict[str, list[Route]] = {}
    for route in routes:
        candidates.setdefault(_shape(route), []).append(route)
    out: dict[str, tuple[str, ...]] = {}
    for shape, members in candidates.items():
        best = min(members, key=lambda r: sum(len(v.field_path) for v in r.template.variables))
        names: list[str] = []
        for var in best.template.variables:
            name = _NOT_NAME.sub("_", var.name)
            while name in names:
                name += "_"
            names.append(name)
        out[shape] = tuple(names)
    return out


def _max_length(field: FieldDescriptor, schema: dict[str, Any], max_length: int) -> None:
    # JSON carries bytes as base64: 4 characters per started 3 bytes.
    binary = field.type == _T.TYPE_BYTES
    schema["maxLength"] = 4 * -(-max_length // 3) if binary else max_length


def _synthetic(oneof: Any) -> bool:
    # proto3 `optional` fields live in a one-member synthetic oneof; not a real choice.
    return bool(getattr(oneof, "is_synthetic", False))


def _static_components() -> dict[str, Any]:
    return {
        ANY_SCHEMA: {
            "type": "object",
            "properties": {"@type": {"type": "string"}},
            "required": ["@type"],
            "additionalProperties": True,
            "description": "A message of the type named by `@type`, in its JSON form.",
        },
        STATUS_SCHEMA: {
            "type": "object",
            "description": "The error model: a gRPC status code, message and details.",
            "properties": {
                "code": {"type": "integer", "format": "int32"},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {"$ref": REF + ANY_SCHEMA}},
            },
            "required": ["code", "message", "details"],
        },
    }


def build_document(
    schema: Schema, router: Router, *, title: str = "API", version: str | None = None
) -> dict[str, Any]:
    builder = _Builder(schema)
    builder.components.update(_static_components())
    order = {
        method.full_name: (i, j)
        for i, service in enumerate(schema.services)
        for j, method in enumerate(service.methods)
    }
    routes = sorted(
        router.routes, key=lambda r: (*order.get(r.method.full_name, (0, 0)), r.binding)
    )
    names = _parameter_names(routes)
    paths: dict[str, dict[str, Any]] = {}
    custom: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation_id = f"{route.method.containing_service.name}_{route.method.name}"
        if route.binding:
            operation_id += f"_{route.binding}"
        route_names = names[_shape(route)]
        path = route.template.openapi_path(route_names)
        verb = route.http_method.lower()
        item = paths.setdefault(path, {})
        if verb in ("get", "put", "post", "delete", "patch", "head", "options", "trace"):
            if verb in item:
                log.warning("%s %s is mapped twice; documenting the first", verb, path)
                continue
            item[verb] = builder.operation(route, operation_id, route_names)
        else:
            # OpenAPI 3.1 has no slot for other HTTP methods: keep them as an extension.
            custom.setdefault(path, {})[route.http_method] = builder.operation(
                route, operation_id, route_names
            )
    for path, operations in custom.items():
        paths[path]["x-custom-methods"] = operations
    tags = []
    for service in schema.services:
        tag: dict[str, Any] = {"name": service.full_name}
        if service.full_name in builder.comments:
            tag["description"] = builder.comments[service.full_name]
        tags.append(tag)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version or schema.fingerprint[:12]},
        "tags": tags,
        "paths": {p: item for p, item in paths.items() if item},
        "components": {
            "schemas": dict(sorted(builder.components.items())),
            "responses": {
                "Error": {
                    "description": "Error, as a google.rpc.Status",
                    "content": {"application/json": {"schema": {"$ref": REF + STATUS_SCHEMA}}},
                }
            },
            "headers": {
                "ConsistencyToken": {
                    "description": (
                        "The backend's `x-consistency-token` response metadata, when it sends "
                        "one: send it back as the `X-Consistency-Token` request header so a "
                        "later read waits until it reflects this write."
                    ),
                    "schema": {"type": "string"},
                }
            },
            "securitySchemes": {BEARER: {"type": "http", "scheme": "bearer"}},
        },
        # A bearer token when the operation needs one; anonymous access otherwise.
        "security": [{BEARER: []}, {}],
    }


class OpenApiCache:
    """Regenerates the document only when the backend's contract changed."""

    def __init__(self, gateway: Gateway, *, title: str = "API") -> None:
        self._gateway = gateway
        self._title = title
        self._fingerprint = ""
        self._document: dict[str, Any] | None = None

    def document(self) -> dict[str, Any] | None:
        registry = self._gateway.registry
        if registry is None:
            return None
        if self._document is None or registry.schema.fingerprint != self._fingerprint:
            self._document = build_document(registry.schema, registry.router, title=self._title)
            self._fingerprint = registry.schema.fingerprint
        return self._document
