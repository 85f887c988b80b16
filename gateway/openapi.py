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

Access rules are recognised the same way, by shape (see `_AUDIENCE`): they give each operation
its `security` (`[]` when public, the bearer scheme otherwise) and `x-required-roles`.

Requests and responses: a message has a response form and an input form. The response form
says what is always there: the gateway prints every field without presence (scalars at their
defaults, enums by name, repeated fields as `[]`, maps as `{}`), so those are `required`; fields
with presence (singular messages, oneof members, proto3 `optional`) may be absent and are not.
The input form requires what the contract marks `REQUIRED`. Naming rule: the response form keeps
the message's name (`Course`); the input form of a message that also appears in a response is
`<Name>Input` (`CourseInput`), and a message only ever sent keeps its name
(`CreateCourseRequest`); where the two forms are identical there is one component, under the
name. Error details are printed without defaults, so they are typed like input (only `@type` is
required).

For client generators: component names have no dots (the short name, or PascalCase of the full
name on a clash, suffixes kept); a PATCH body is `<Resource>Update`, the resource with nothing
required and no output-only fields; a oneof is a `oneOf` of "this member, the others absent"
alternatives; `google.rpc.Status` details are a `oneOf` of the standard detail types
discriminated by `@type`; each operation lists the error statuses it can answer (the map of
gateway.errors) as shared `components.responses`.
"""

from __future__ import annotations

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
from google.rpc import error_details_pb2

from gateway.descriptors import Schema
from gateway.errors import HTTP_STATUS
from gateway.routing import Route, Router, SegmentKind, resolve_field_path
from gateway.transcode import WELL_KNOWN_JSON, body_star_update_mask

if TYPE_CHECKING:
    from gateway.proxy import Gateway

log = logging.getLogger("gateway.openapi")

REF = "#/components/schemas/"
RESPONSES = "#/components/responses/"
CONSISTENCY_HEADER = "#/components/headers/ConsistencyToken"
RETRY_AFTER_HEADER = "#/components/headers/RetryAfter"
CONSISTENCY_PARAM = "#/components/parameters/ConsistencyToken"
IDEMPOTENCY_PARAM = "#/components/parameters/IdempotencyKey"
DEPRECATION_HEADER = "#/components/headers/Deprecation"
TYPE_URL_PREFIX = "type.googleapis.com/"
STATUS_SCHEMA = "google.rpc.Status"
ANY_SCHEMA = "google.protobuf.Any"
BEARER = "bearerAuth"
# Options the document renders in their own way rather than as vendor extensions.
_HANDLED_OPTIONS = frozenset({"google.api.http"})
_FIELD_BEHAVIOR = "google.api.field_behavior"
_FIELD_MASK = "google.protobuf.FieldMask"
# AIP-134: a PATCH's update mask. With `body: "*"` the gateway also takes it as a query
# parameter, the form the document gives (see gateway.transcode).
UPDATE_MASK = "update_mask"
# Key suffix of the component that types a PATCH body: the resource with nothing required.
_UPDATE_SUFFIX = "#update"
# Key suffix of a message's input form (what a client sends); the bare full name is its
# response form (what the gateway prints). See `_Builder.message_schema`.
_INPUT_SUFFIX = "#input"
# A custom MethodOptions extension whose message has a field named `audience` and/or a
# repeated field named `roles` is read as the method's access rule (the way size limits are
# recognised): an `audience` whose value (enum value name or string) ends in `PUBLIC` needs no
# token; any other audience, or non-empty `roles`, needs a bearer token; `roles` (enum value
# names or strings) are the roles that may call.
_AUDIENCE = "audience"
_ROLES = "roles"

# The standard error details (google/rpc/error_details.proto) a Status may carry, typed in the
# document; described here because the runtime's copy of that file has no comments.
_DETAILS: dict[str, str] = {
    "ErrorInfo": "Why the call failed: a machine-readable `reason` within a `domain`, with "
    "`metadata` (e.g. the roles that may call, the rate-limit budget).",
    "RetryInfo": "When to retry: wait at least `retryDelay` (also sent as `Retry-After`).",
    "DebugInfo": "Debugging information from the server.",
    "QuotaFailure": "Which quota was exceeded.",
    "PreconditionFailure": "Which preconditions failed (the resource's state forbids the call).",
    "BadRequest": "Which fields of the request are invalid: `field` is the JSON (lowerCamel) "
    "path the client sent.",
    "RequestInfo": "The request the server saw, to quote when reporting a problem.",
    "ResourceInfo": "The resource the error is about.",
    "Help": "Links to documentation about the error.",
    "LocalizedMessage": "The error message in the user's language.",
}
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
    def __init__(self, schema: Schema, *, idempotency_field: str = "request_id") -> None:
        self.schema = schema
        self.idempotency_name = idempotency_field
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

    def message_ref(self, message: Descriptor, *, output: bool) -> dict[str, Any]:
        """The message's response form (`output`) or input form, as a reference."""
        if message.full_name in _WKT_SCHEMAS:
            return dict(_WKT_SCHEMAS[message.full_name])
        key = message.full_name if output else message.full_name + _INPUT_SUFFIX
        if key not in self.components:
            # Reserve the name first: messages may be recursive.
            self.components[key] = {}
            self.components[key] = self.message_schema(message, output=output)
        return {"$ref": REF + key}

    def update_ref(self, message: Descriptor) -> dict[str, Any]:
        """A PATCH body: the resource with nothing required and no output-only fields, so a
        partial update (`{"position": 1}`) is valid; the update mask says what changes."""
        if message.full_name in _WKT_SCHEMAS:
            return dict(_WKT_SCHEMAS[message.full_name])
        key = message.full_name + _UPDATE_SUFFIX
        if key not in self.components:
            self.components[key] = {}
            output_only = frozenset(
                f.name for f in message.fields if "OUTPUT_ONLY" in self.field_behaviors(f)
            )
            schema = self.message_schema(message, exclude=output_only, partial=True, output=False)
            schema["description"] = "\n\n".join(
                filter(
                    None,
                    [
                        schema.get("description"),
                        f"The writable fields of `{message.name}` for a partial update: none "
                        "is required; output-only fields are left out.",
                    ],
                )
            )
            self.components[key] = schema
        return {"$ref": REF + key}

    def detail_schemas(self) -> list[tuple[str, str]]:
        """Adds the standard error details; returns their (type URL, component key)."""
        out: list[tuple[str, str]] = []
        for name, description in _DETAILS.items():
            descriptor = error_details_pb2.DESCRIPTOR.message_types_by_name.get(name)
            if descriptor is None:
                continue  # an older runtime without this detail type
            url = TYPE_URL_PREFIX + descriptor.full_name
            # The gateway prints a backend's details without their default values (unlike
            # responses), so their fields are typed like input: nothing required but `@type`.
            schema = self.message_schema(descriptor, output=False)
            schema["properties"] = {
                "@type": {"type": "string", "const": url},
                **schema["properties"],
            }
            schema["required"] = ["@type", *schema.get("required", [])]
            schema["description"] = description
            self.components[descriptor.full_name] = schema
            out.append((url, descriptor.full_name))
        return out

    def access_rule(self, method: MethodDescriptor) -> tuple[bool | None, list[str]]:
        """(public?, roles) from an access-rule option (see `_AUDIENCE`); None: no rule."""
        if not method.has_options:
            return None, []
        try:
            options_type = self.pool.FindMessageTypeByName("google.protobuf.MethodOptions")
        except KeyError:
            return None, []
        options: Any = None
        for ext in self.pool.FindAllExtensions(options_type):
            rule_type = ext.message_type
            if ext.is_repeated or rule_type is None:
                continue
            audience = rule_type.fields_by_name.get(_AUDIENCE)
            roles = rule_type.fields_by_name.get(_ROLES)
            if audience is not None and audience.is_repeated:
                audience = None
            if roles is not None and not roles.is_repeated:
                roles = None
            if audience is None and roles is None:
                continue
            if options is None:
                options = GetMessageClass(options_type).FromString(
                    method.GetOptions().SerializeToString()
                )
            if not options.HasExtension(ext):
                continue
            rule = options.Extensions[ext]
            names = [_value_name(roles, v) for v in getattr(rule, roles.name)] if roles else []
            if audience is not None:
                said = _value_name(audience, getattr(rule, audience.name)).upper()
                if said.endswith("PUBLIC") and not names:
                    return True, []
                if (said.endswith("UNSPECIFIED") or not said) and not names:
                    return None, []  # declared nothing: as if there were no rule
            return False, names
        return None, []

    def message_schema(
        self,
        message: Descriptor,
        *,
        exclude: frozenset[str] = frozenset(),
        partial: bool = False,
        output: bool,
    ) -> dict[str, Any]:
        """The message's JSON object.

        `output`: the response form. The gateway prints every field without presence (proto3
        scalars at their defaults, enums by name, repeated fields and maps empty), so exactly
        those are required; fields with presence (singular messages, oneof members, proto3
        `optional`) may be absent. Otherwise the input form: the contract's `REQUIRED` fields
        are required, unless `partial` (a PATCH body: nothing is).
        """
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in message.fields:
            if field.name in exclude:
                continue
            prop = self.field_schema(field, output=output)
            behaviors = self.field_behaviors(field)
            if "OUTPUT_ONLY" in behaviors:
                prop["readOnly"] = True
            if "INPUT_ONLY" in behaviors:
                prop["writeOnly"] = True
            if "IMMUTABLE" in behaviors:
                prop["x-immutable"] = True
                note = "Immutable: set when the resource is created, never changed after."
                prop["description"] = " ".join(filter(None, [prop.get("description"), note]))
            if output:
                if not field.has_presence:
                    required.append(field.json_name)
            elif "REQUIRED" in behaviors and not partial:
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
        oneofs = {name: members for name, members in oneofs.items() if members}
        if oneofs:
            schema["x-oneofs"] = oneofs
            choices = [_oneof_choice(members, properties) for members in oneofs.values()]
            if len(choices) == 1:
                schema["oneOf"] = choices[0]
            else:
                schema["allOf"] = [{"oneOf": choice} for choice in choices]
        return schema

    def value_schema(self, field: FieldDescriptor, *, output: bool) -> dict[str, Any]:
        """Schema of one value of the field (an element, for repeated fields)."""
        if field.message_type is not None:
            return self.message_ref(field.message_type, output=output)
        if field.enum_type is not None:
            return self.enum_ref(field.enum_type)
        return dict(_SCALARS[field.type])

    def field_schema(self, field: FieldDescriptor, *, output: bool) -> dict[str, Any]:
        message = field.message_type
        if message is not None and message.GetOptions().map_entry:
            value = message.fields_by_name["value"]
            schema: dict[str, Any] = {
                "type": "object",
                "additionalProperties": self.value_schema(value, output=output),
            }
        elif field.is_repeated:
            schema = {"type": "array", "items": self.value_schema(field, output=output)}
        else:
            schema = self.value_schema(field, output=output)
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
                "schema": self._path_schema(fields[-1]),
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
            mask = _body_star_mask(route)
            if mask is not None:
                # AIP-134: the mask is a query parameter, even where the body is the request.
                param = {
                    "name": mask.json_name,
                    "in": "query",
                    "schema": self.field_schema(mask, output=False),
                }
                if "description" in param["schema"]:
                    param["description"] = param["schema"].pop("description")
                params.append(param)
            return params
        skip = {route.body} if route.body else set()
        params.extend(self._query_params(request, (), (), bound, skip, depth=0))
        idempotency = self.idempotency_field(route)
        for param in params:
            if idempotency is not None and param["name"] == idempotency.json_name:
                param["description"] = _alias_note(param.get("description"))
        return params

    def _path_schema(self, field: FieldDescriptor) -> dict[str, Any]:
        schema = self.value_schema(field, output=False)
        if not field.is_repeated:
            self._apply_limits(field, schema)  # path segments have the field's limits too
        return schema

    def idempotency_field(self, route: Route) -> FieldDescriptor | None:
        """The request's idempotency field, which the `Idempotency-Key` header also fills."""
        field = route.method.input_type.fields_by_name.get(self.idempotency_name)
        if field is None or field.type != _T.TYPE_STRING or field.is_repeated:
            return None
        return field

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
            schema = self.field_schema(field, output=False)
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
            mask = _body_star_mask(route)
            idempotency = self.idempotency_field(route)
            if top_bound or mask is not None or idempotency is not None:
                schema = self.message_schema(request, exclude=top_bound, output=False)
                props = schema["properties"]
                if mask is not None:
                    props[mask.json_name]["deprecated"] = True
                    props[mask.json_name]["description"] = " ".join(
                        filter(
                            None,
                            [
                                props[mask.json_name].get("description"),
                                f"Deprecated here: send `{mask.json_name}` as a query "
                                "parameter (AIP-134). The body form still works for one "
                                "release and is answered with a `Deprecation` header.",
                            ],
                        )
                    )
                if idempotency is not None:
                    prop = props[idempotency.json_name]
                    prop["description"] = _alias_note(prop.get("description"))
            else:
                schema = self.message_ref(request, output=False)
            # An empty body is an empty request message, but a POST documents `{}` as the body.
            required = route.http_method == "POST"
        else:
            field = request.fields_by_name[route.body]
            if (
                route.http_method == "PATCH"
                and field.message_type is not None
                and not field.is_repeated
                and not field.message_type.GetOptions().map_entry
            ):
                schema = self.update_ref(field.message_type)
                description = self.comments.get(f"{request.full_name}.{field.name}")
                if description:
                    schema["description"] = description
            else:
                schema = self.field_schema(field, output=False)
            required = route.http_method == "POST" or "REQUIRED" in self.field_behaviors(field)
        return {"required": required, "content": {"application/json": {"schema": schema}}}

    def response_schema(self, route: Route) -> dict[str, Any]:
        output = route.method.output_type
        if route.response_body:
            return self.field_schema(output.fields_by_name[route.response_body], output=True)
        return self.message_ref(output, output=True)

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
        public, roles = self.access_rule(method)
        ok_headers: dict[str, Any] = {"X-Consistency-Token": {"$ref": CONSISTENCY_HEADER}}
        if route.body == "*" and _body_star_mask(route) is not None:
            ok_headers["Deprecation"] = {"$ref": DEPRECATION_HEADER}
            note = (
                f"`{_body_star_mask_name(route)}` belongs in the query (AIP-134); in the body it "
                "is deprecated, still accepted for one release, and answered with a "
                "`Deprecation: true` header."
            )
            op["description"] = "\n\n".join(filter(None, [op.get("description", comment), note]))
        responses: dict[str, Any] = {
            "200": {"description": description, "headers": ok_headers, "content": content},
        }
        for status, name in _ERROR_RESPONSES:
            if _applies(status, route, public):
                responses[str(status)] = {"$ref": RESPONSES + name}
        responses["default"] = {"$ref": RESPONSES + "Error"}
        op["responses"] = responses
        if public is True:
            op["security"] = []
        elif public is False:
            op["security"] = [{BEARER: []}]
            if roles:
                op["x-required-roles"] = roles
                who = " or ".join(f"`{r}`" for r in roles)
                note = (
                    f"Requires a bearer token of a caller with role {who}; others get 403 "
                    "with an `ErrorInfo` whose `allowedRoles` metadata lists these roles."
                )
            else:
                note = "Requires a bearer token."
            op["description"] = "\n\n".join(filter(None, [op.get("description", comment), note]))
        else:
            op["security"] = [{BEARER: []}, {}]  # no access rule: a token when it needs one
        header_params: list[dict[str, Any]] = []
        if route.http_method == "GET":
            header_params.append({"$ref": CONSISTENCY_PARAM})
        if self.idempotency_field(route) is not None:
            header_params.append({"$ref": IDEMPOTENCY_PARAM})
        if header_params:
            op["parameters"] = [*op.get("parameters", []), *header_params]
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


def _oneof_choice(members: Sequence[str], properties: dict[str, Any]) -> list[dict[str, Any]]:
    """One alternative per member (that member set, the others absent) and one with none set.

    The members also stay in `properties` (so `additionalProperties: false` admits them); the
    alternatives are what make a generated client a union (`{article: Article; video?: never}
    | ...`) rather than an intersection with `unknown`, and make "at most one" checkable.
    """
    absent: dict[str, Any] = {m: False for m in members}
    out: list[dict[str, Any]] = []
    for member in members:
        prop = {k: v for k, v in properties[member].items() if k != "description"}
        out.append(
            {
                "type": "object",
                "title": member,
                "properties": {**absent, member: prop},
                "required": [member],
            }
        )
    out.append({"type": "object", "title": "none", "properties": absent})
    return out


def _body_star_mask(route: Route) -> FieldDescriptor | None:
    """A `body: "*"` PATCH's update mask, which the gateway also takes from the query."""
    return body_star_update_mask(route)


def _body_star_mask_name(route: Route) -> str:
    field = _body_star_mask(route)
    return field.json_name if field is not None else ""


def _alias_note(description: str | None) -> str:
    note = (
        "An alias of the `Idempotency-Key` header, the documented place for it over HTTP; "
        "send one or the other (the same value in both is accepted)."
    )
    return " ".join(filter(None, [description, note]))


# Shared error responses: (HTTP status, component name), and when an operation lists them.
_ERROR_RESPONSES = (
    (400, "BadRequest"),
    (401, "Unauthenticated"),
    (403, "PermissionDenied"),
    (404, "NotFound"),
    (409, "Conflict"),
    (413, "PayloadTooLarge"),
    (429, "TooManyRequests"),
    (503, "Unavailable"),
    (504, "GatewayTimeout"),
)


def _applies(status: int, route: Route, public: bool | None) -> bool:
    if status == 403:
        return public is not True  # a role or ownership refusal needs a caller
    if status == 404:
        return bool(route.template.variables)  # the path names a resource
    if status == 409:
        return route.http_method != "GET"  # ALREADY_EXISTS / ABORTED come from writes
    if status == 413:
        return bool(route.body)
    # 400 (input), 401 (a bad token is refused even where none is needed), 429 (budgets),
    # 503 and 504 (the backend) can answer any call.
    return True


def _codes_for(status: int) -> str:
    """The gRPC codes the gateway answers with this HTTP status (gateway.errors)."""
    return ", ".join(
        f"`{code.name}`" for code, http in HTTP_STATUS.items() if http == status and http != 200
    )


def _error_response(description: str, status: int, headers: dict[str, Any] | None = None) -> Any:
    codes = _codes_for(status)
    response: dict[str, Any] = {
        "description": f"{description} (gRPC {codes})." if codes else description + ".",
        "content": {"application/json": {"schema": {"$ref": REF + STATUS_SCHEMA}}},
    }
    if headers:
        response["headers"] = headers
    return response


def _responses_components() -> dict[str, Any]:
    retry = {"Retry-After": {"$ref": RETRY_AFTER_HEADER}}
    return {
        "BadRequest": _error_response(
            "The request is invalid, or the resource's state forbids it: `BadRequest` details "
            "name each field by its JSON path, `PreconditionFailure` details the state",
            400,
        ),
        "Unauthenticated": _error_response(
            "No valid bearer token where one is needed, or an invalid one was sent",
            401,
            {
                "WWW-Authenticate": {
                    "description": "`Bearer`: send an access token.",
                    "schema": {"type": "string"},
                }
            },
        ),
        "PermissionDenied": _error_response(
            "The caller may not do this: an `ErrorInfo` detail says why (for a role refusal, "
            "`allowedRoles` lists the roles that may)",
            403,
        ),
        "NotFound": _error_response(
            "The resource does not exist or the caller may not see it", 404
        ),
        "Conflict": _error_response(
            "The resource already exists, or a concurrent change got there first (retry "
            "after reading it again)",
            409,
        ),
        "PayloadTooLarge": _error_response("The request body is too large", 413),
        "TooManyRequests": _error_response(
            "A rate limit or quota is spent: retry after `Retry-After` seconds (also in the "
            "`RetryInfo` detail)",
            429,
            retry,
        ),
        "Unavailable": _error_response(
            "The backend is unavailable for now: retry after `Retry-After` seconds when given",
            503,
            retry,
        ),
        "GatewayTimeout": _error_response("The call's deadline passed", 504),
        "Error": {
            "description": "Any other error, as a `Status`.",
            "content": {"application/json": {"schema": {"$ref": REF + STATUS_SCHEMA}}},
        },
    }


def _value_name(field: FieldDescriptor, value: Any) -> str:
    if field.enum_type is not None:
        enum_value = field.enum_type.values_by_number.get(value)
        return enum_value.name if enum_value is not None else str(value)
    return str(value)


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
    }


def _status_schema(details: Sequence[tuple[str, str]]) -> dict[str, Any]:
    items: dict[str, Any] = {
        "oneOf": [{"$ref": REF + key} for _, key in details],
        "discriminator": {
            "propertyName": "@type",
            "mapping": {url: REF + key for url, key in details},
        },
    }
    return {
        "type": "object",
        "description": (
            "The error model (google.rpc.Status): a gRPC status code, a message for the "
            "developer and typed details, told apart by their `@type`."
        ),
        "properties": {
            "code": {
                "type": "integer",
                "format": "int32",
                "description": "The gRPC status code (e.g. 3 for INVALID_ARGUMENT).",
            },
            "message": {"type": "string", "description": "What went wrong, in English."},
            "details": {"type": "array", "items": items},
        },
        "required": ["code", "message", "details"],
    }


_NAME_PART = re.compile(r"[^A-Za-z0-9]+")


def _pascal(full_name: str) -> str:
    """`google.rpc.Status` -> `GoogleRpcStatus`; `a.v1.Lesson_Kind` -> `AV1LessonKind`."""
    return "".join(p[:1].upper() + p[1:] for p in _NAME_PART.split(full_name) if p)


def _component_names(keys: Sequence[str]) -> dict[str, str]:
    """Component keys (full proto names; `#input` and `#update` forms) -> names without dots.

    The short name where no other message has it; on a clash, PascalCase of the full name
    (`GoogleRpcStatus`) for every claimant, in all its forms. A message's response form keeps
    the name; its input form is `<Name>Input` when the message also has a response form (else
    it is the only form and keeps the name); a PATCH body is `<Name>Update`.
    """

    def suffix(key: str) -> str:
        full, _, form = key.partition("#")
        if form == _UPDATE_SUFFIX[1:]:
            return "Update"
        if form == _INPUT_SUFFIX[1:] and full in keys:
            return "Input"
        return ""

    # Clashes are settled per message, so that all forms of one message share a base name.
    claims: dict[str, list[str]] = {}
    for full in sorted({key.partition("#")[0] for key in keys}):
        claims.setdefault(full.rsplit(".", 1)[-1], []).append(full)
    base = {
        full: short if len(owners) == 1 else _pascal(full)
        for short, owners in claims.items()
        for full in owners
    }
    names: dict[str, str] = {}
    taken: set[str] = set()
    # Bare names first: a message's own name wins over another's suffixed form.
    for key in sorted(keys, key=lambda k: ("#" in k, k)):
        name = base[key.partition("#")[0]] + suffix(key)
        while name in taken:  # never seen in practice; keeps names unique regardless
            name += "_"
        names[key] = name
        taken.add(name)
    return names


def _same_forms(components: dict[str, Any]) -> dict[str, str]:
    """Input forms identical to their message's response form -> that response form's key.

    Identical means equal once each reference to an input form is read as one to its
    response form, for messages whose two forms are themselves identical: the largest such
    set, found by dropping messages whose forms differ until none changes (messages may
    refer to each other in cycles).
    """
    same = {key for key in components if key + _INPUT_SUFFIX in components}

    def equal(out: Any, inp: Any) -> bool:
        if isinstance(out, dict) and isinstance(inp, dict):
            if out.keys() != inp.keys():
                return False
            for name, value in out.items():
                other = inp[name]
                if name == "$ref" and isinstance(value, str) and isinstance(other, str):
                    if value != other and not (
                        other == value + _INPUT_SUFFIX and value[len(REF) :] in same
                    ):
                        return False
                elif not equal(value, other):
                    return False
            return True
        if isinstance(out, list) and isinstance(inp, list):
            return len(out) == len(inp) and all(map(equal, out, inp))
        return bool(out == inp)

    changed = True
    while changed:
        changed = False
        for key in sorted(same):
            if not equal(components[key], components[key + _INPUT_SUFFIX]):
                same.discard(key)
                changed = True
    return {key + _INPUT_SUFFIX: key for key in same}


def _rename_refs(node: Any, names: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(REF):
                out[key] = REF + names.get(value[len(REF) :], value[len(REF) :])
            elif key == "discriminator" and isinstance(value, dict):
                out[key] = {
                    **value,
                    "mapping": {
                        k: REF + names.get(v[len(REF) :], v[len(REF) :])
                        for k, v in value.get("mapping", {}).items()
                    },
                }
            else:
                out[key] = _rename_refs(value, names)
        return out
    if isinstance(node, list):
        return [_rename_refs(item, names) for item in node]
    return node


def build_document(
    schema: Schema,
    router: Router,
    *,
    title: str = "API",
    version: str | None = None,
    idempotency_field: str = "request_id",
) -> dict[str, Any]:
    builder = _Builder(schema, idempotency_field=idempotency_field)
    builder.components.update(_static_components())
    builder.components[STATUS_SCHEMA] = _status_schema(builder.detail_schemas())
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
    merged = _same_forms(builder.components)
    for key in merged:
        del builder.components[key]
    component_names = _component_names(list(builder.components))
    component_names.update({key: component_names[target] for key, target in merged.items()})
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version or schema.fingerprint[:12]},
        "tags": tags,
        "paths": {p: item for p, item in paths.items() if item},
        "components": {
            "schemas": {component_names[key]: value for key, value in builder.components.items()},
            "responses": _responses_components(),
            "parameters": {
                "ConsistencyToken": {
                    "name": "X-Consistency-Token",
                    "in": "header",
                    "description": (
                        "The token a write answered with (its `X-Consistency-Token` response "
                        "header): the read waits until it reflects that write (read your "
                        "writes)."
                    ),
                    # Its format is the backend's business: the backend refuses a bad one.
                    "schema": {"type": "string"},
                },
                "IdempotencyKey": {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "description": (
                        f"Makes a retried write safe: the same key within the retention "
                        f"window returns the first outcome instead of writing twice. It fills "
                        f"the request's `{idempotency_field}` field (AIP-155), whose JSON "
                        f"form is an alias: send one or the other, or the same value in both."
                    ),
                    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
                },
            },
            "headers": {
                "ConsistencyToken": {
                    "description": (
                        "The backend's `x-consistency-token` response metadata, when it sends "
                        "one: send it back as the `X-Consistency-Token` request header so a "
                        "later read waits until it reflects this write."
                    ),
                    "schema": {"type": "string"},
                },
                "RetryAfter": {
                    "description": "Seconds to wait before retrying.",
                    "schema": {"type": "integer", "minimum": 0},
                },
                "Deprecation": {
                    "description": (
                        "`true` when the request used a deprecated form (RFC 9745); the "
                        "operation's description says which."
                    ),
                    "schema": {"type": "string"},
                },
            },
            "securitySchemes": {BEARER: {"type": "http", "scheme": "bearer"}},
        },
        # Each operation says its own; this is for tools that read only the top level.
        "security": [{BEARER: []}, {}],
    }
    document["components"]["schemas"] = dict(sorted(document["components"]["schemas"].items()))
    renamed: dict[str, Any] = _rename_refs(document, component_names)
    return renamed


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
            self._document = build_document(
                registry.schema,
                registry.router,
                title=self._title,
                idempotency_field=self._gateway.settings.idempotency_field,
            )
            self._fingerprint = registry.schema.fingerprint
        return self._document
