"""`google.api.http` rules -> HTTP routes, and matching a request against them.

Path templates follow google/api/http.proto:

    Template = "/" Segments [ Verb ] ;
    Segments = Segment { "/" Segment } ;
    Segment  = "*" | "**" | LITERAL | Variable ;
    Variable = "{" FieldPath [ "=" Segments ] "}" ;
    FieldPath = IDENT { "." IDENT } ;
    Verb     = ":" LITERAL ;
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from urllib.parse import unquote

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor

log = logging.getLogger("gateway.routing")

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TemplateError(ValueError):
    """A path template that does not follow the http.proto grammar."""


class SegmentKind(Enum):
    LITERAL = "literal"
    WILDCARD = "*"
    DEEP_WILDCARD = "**"


@dataclass(frozen=True)
class Segment:
    kind: SegmentKind
    value: str = ""


@dataclass(frozen=True)
class Variable:
    field_path: tuple[str, ...]
    # Segment span [start, end) the variable captures; end is None when it runs to a `**`.
    start: int
    end: int | None

    @cached_property
    def name(self) -> str:
        return ".".join(self.field_path)

    @cached_property
    def multi_segment(self) -> bool:
        return self.end is None or self.end - self.start != 1


@dataclass(frozen=True)
class PathTemplate:
    source: str
    segments: tuple[Segment, ...]
    variables: tuple[Variable, ...]
    verb: str

    @property
    def literal_count(self) -> int:
        return sum(1 for s in self.segments if s.kind is SegmentKind.LITERAL)

    # Cached: asked for every candidate route of every request.
    @cached_property
    def has_deep_wildcard(self) -> bool:
        return any(s.kind is SegmentKind.DEEP_WILDCARD for s in self.segments)

    @cached_property
    def fixed_segments(self) -> int:
        """Segments a path must have exactly (or at least, with a trailing `**`)."""
        return len(self.segments) - (1 if self.has_deep_wildcard else 0)

    @cached_property
    def _literals(self) -> tuple[tuple[int, str], ...]:
        """Each literal among the fixed segments: its index and text."""
        return tuple(
            (index, segment.value)
            for index, segment in enumerate(self.segments[: self.fixed_segments])
            if segment.kind is SegmentKind.LITERAL
        )

    @cached_property
    def _wildcards(self) -> tuple[int, ...]:
        """The index of each `*` among the fixed segments."""
        return tuple(
            index
            for index, segment in enumerate(self.segments[: self.fixed_segments])
            if segment.kind is SegmentKind.WILDCARD
        )

    def accepts_segment_count(self, count: int) -> bool:
        if self.has_deep_wildcard:
            return count >= self.fixed_segments
        return count == self.fixed_segments

    def match(self, path: str) -> dict[str, str] | None:
        """Bind variables for a raw (still percent-encoded) request path, or None."""
        if self.verb:
            suffix = ":" + self.verb
            if not path.endswith(suffix):
                return None
            path = path[: -len(suffix)]
        if not path.startswith("/"):
            return None
        parts = path[1:].split("/")
        deep = self.has_deep_wildcard
        fixed = self.fixed_segments
        if len(parts) < fixed or (not deep and len(parts) != fixed):
            return None
        for index, literal in self._literals:
            part = parts[index]
            # Compared as sent first: decoding is only for a literal sent percent-encoded.
            if part != literal and ("%" not in part or unquote(part) != literal):
                return None
        for index in self._wildcards:
            if not parts[index]:
                return None  # `*` needs a non-empty segment
        bound: dict[str, str] = {}
        for var in self.variables:
            captured = parts[var.start : var.end]
            if var.multi_segment:
                # RFC 6570 reserved expansion: an encoded "/" stays encoded so it cannot be
                # confused with a separator.
                bound[var.name] = "/".join(_unquote_keep_slash(p) for p in captured)
            else:
                bound[var.name] = unquote(captured[0])
        return bound

    def openapi_path(self, names: Sequence[str] | None = None) -> str:
        """The template as an OpenAPI path: each variable one `{name}` parameter.

        `names` (one per variable, in order) replaces the variables' field paths as the
        parameter names.
        """
        out: list[str] = []
        i = 0
        by_start = {v.start: v for v in self.variables}
        renamed = dict(zip((v.start for v in self.variables), names or (), strict=False))
        while i < len(self.segments):
            var = by_start.get(i)
            if var is not None:
                out.append("{" + renamed.get(i, var.name) + "}")
                i = len(self.segments) if var.end is None else var.end
                continue
            seg = self.segments[i]
            out.append(seg.value if seg.kind is SegmentKind.LITERAL else seg.kind.value)
            i += 1
        return "/" + "/".join(out) + (":" + self.verb if self.verb else "")


def _unquote_keep_slash(part: str) -> str:
    return "%2F".join(unquote(chunk) for chunk in re.split("%2[fF]", part))


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.segments: list[Segment] = []
        self.variables: list[Variable] = []

    def fail(self, why: str) -> TemplateError:
        return TemplateError(f"invalid path template {self.text!r} at {self.pos}: {why}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def parse_segments(self, in_variable: bool) -> None:
        while True:
            self.parse_segment(in_variable)
            if self.peek() != "/":
                return
            self.pos += 1

    def parse_segment(self, in_variable: bool) -> None:
        rest = self.text[self.pos :]
        if rest.startswith("**"):
            self.segments.append(Segment(SegmentKind.DEEP_WILDCARD))
            self.pos += 2
        elif rest.startswith("*"):
            self.segments.append(Segment(SegmentKind.WILDCARD))
            self.pos += 1
        elif rest.startswith("{"):
            if in_variable:
                raise self.fail("nested variable")
            self.parse_variable()
        else:
            end = self.pos
            while end < len(self.text) and self.text[end] not in "/{}*":
                end += 1
            literal = self.text[self.pos : end]
            if not literal:
                raise self.fail("empty segment")
            self.segments.append(Segment(SegmentKind.LITERAL, literal))
            self.pos = end

    def parse_variable(self) -> None:
        self.pos += 1  # "{"
        close = self.text.find("}", self.pos)
        if close < 0:
            raise self.fail("unclosed variable")
        head = self.text[self.pos : close]
        field_path = head.split("=", 1)[0]
        parts = tuple(field_path.split("."))
        if not all(_IDENT.fullmatch(p) for p in parts):
            raise self.fail(f"bad field path {field_path!r}")
        if any(v.field_path == parts for v in self.variables):
            raise self.fail(f"variable {field_path!r} bound twice")
        start = len(self.segments)
        self.pos += len(field_path)
        if self.peek() == "=":
            self.pos += 1
            self.parse_segments(in_variable=True)
        else:
            self.segments.append(Segment(SegmentKind.WILDCARD))
        if self.peek() != "}":
            raise self.fail("expected '}'")
        self.pos += 1
        deep = any(s.kind is SegmentKind.DEEP_WILDCARD for s in self.segments[start:])
        self.variables.append(Variable(parts, start, None if deep else len(self.segments)))


def _split_verb(template: str) -> tuple[str, str | None]:
    """Split a trailing `:verb` found after the last "/" outside any variable."""
    depth = 0
    last_slash = -1
    colon = -1
    for i, ch in enumerate(template):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif depth == 0 and ch == "/":
            last_slash = i
            colon = -1
        elif depth == 0 and ch == ":" and colon < 0 and i > last_slash:
            colon = i
    if colon < 0:
        return template, None
    return template[:colon], template[colon + 1 :]


def parse_template(template: str) -> PathTemplate:
    if not template.startswith("/"):
        raise TemplateError(f"path template {template!r} must start with '/'")
    path, verb = _split_verb(template)
    if verb is not None and (not verb or ":" in verb):
        raise TemplateError(f"bad verb in {template!r}")
    parser = _Parser(path)
    parser.pos = 1
    parser.parse_segments(in_variable=False)
    if parser.pos != len(path):
        raise parser.fail("unexpected character")
    segments = tuple(parser.segments)
    deep = [i for i, s in enumerate(segments) if s.kind is SegmentKind.DEEP_WILDCARD]
    if deep and deep != [len(segments) - 1]:
        raise TemplateError(f"'**' must be the last segment in {template!r}")
    return PathTemplate(template, segments, tuple(parser.variables), verb or "")


@dataclass(frozen=True)
class Route:
    http_method: str
    template: PathTemplate
    method: MethodDescriptor
    body: str  # "" no body, "*" the whole request, else a top-level request field
    response_body: str
    # 0 for the rule itself, n for its n-th additional binding.
    binding: int

    @property
    def additional(self) -> bool:
        return self.binding > 0

    @cached_property
    def grpc_path(self) -> str:
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @cached_property
    def path_fields(self) -> tuple[tuple[str, tuple[FieldDescriptor, ...]], ...]:
        """Each path variable's name and the chain of request fields it names (checked when
        the route was built), resolved once rather than on every request."""
        chains: list[tuple[str, tuple[FieldDescriptor, ...]]] = []
        for variable in self.template.variables:
            fields = [self.method.input_type.fields_by_name[variable.field_path[0]]]
            for part in variable.field_path[1:]:
                parent = fields[-1].message_type
                assert parent is not None
                fields.append(parent.fields_by_name[part])
            chains.append((variable.name, tuple(fields)))
        return tuple(chains)

    @cached_property
    def label(self) -> str:
        """The template as metrics and logs name it (`/v1/courses/{course_id}`)."""
        return self.template.openapi_path()

    @cached_property
    def memo_key(self) -> str:
        """What, beside the reply's bytes, decides its JSON: the method (hence the output
        type) and the part of the reply the binding prints."""
        return f"{self.grpc_path} {self.response_body}"

    def specificity(self) -> tuple[int, int, int, int]:
        # Longest literal prefix wins, like grpc-gateway: more literal segments first, then
        # templates without `**`, then those with a verb, then longer templates.
        t = self.template
        return (-t.literal_count, int(t.has_deep_wildcard), -int(bool(t.verb)), -len(t.segments))


def http_rule(method: MethodDescriptor) -> http_pb2.HttpRule | None:
    """The method's `google.api.http` option, or None.

    The method comes from a dynamic pool, whose copy of annotations.proto is not the one the
    generated `annotations_pb2` registered: re-parse the option bytes with the generated
    MethodOptions so the extension resolves.
    """
    if not method.has_options:
        return None
    raw = method.GetOptions().SerializeToString()
    options = descriptor_pb2.MethodOptions.FromString(raw)
    if not options.HasExtension(annotations_pb2.http):
        return None
    rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]
    return rule


def _pattern(rule: http_pb2.HttpRule) -> tuple[str, str] | None:
    kind = rule.WhichOneof("pattern")
    if kind is None:
        return None
    if kind == "custom":
        return rule.custom.kind.upper(), rule.custom.path
    path: str = getattr(rule, kind)
    return kind.upper(), path


def resolve_field_path(message: Descriptor, path: Sequence[str]) -> list[FieldDescriptor]:
    """Resolve a dotted proto field path; KeyError names the first unknown part."""
    fields: list[FieldDescriptor] = []
    current: Descriptor | None = message
    for part in path:
        if current is None:
            raise KeyError(part)
        field = current.fields_by_name.get(part)
        if field is None:
            raise KeyError(part)
        fields.append(field)
        current = field.message_type
    return fields


def _check_route(route: Route) -> None:
    request = route.method.input_type
    for var in route.template.variables:
        fields = resolve_field_path(request, var.field_path)
        leaf = fields[-1]
        if leaf.is_repeated or leaf.message_type is not None:
            raise TemplateError(f"path variable {var.name} must be a singular scalar")
        if any(f.is_repeated for f in fields[:-1]):
            raise TemplateError(f"path variable {var.name} crosses a repeated field")
    if route.body not in ("", "*"):
        resolve_field_path(request, [route.body])
    if route.response_body:
        resolve_field_path(route.method.output_type, [route.response_body])


def routes_for_method(method: MethodDescriptor) -> list[Route]:
    rule = http_rule(method)
    if rule is None:
        return []
    routes: list[Route] = []
    for index, binding in enumerate([rule, *rule.additional_bindings]):
        pattern = _pattern(binding)
        if pattern is None:
            continue
        verb, path = pattern
        try:
            route = Route(
                http_method=verb,
                template=parse_template(path),
                method=method,
                body=binding.body,
                response_body=binding.response_body,
                binding=index,
            )
            _check_route(route)
        except (TemplateError, KeyError) as exc:
            # One bad annotation must not take the whole gateway down.
            log.error("skipping %s %s for %s: %s", verb, path, method.full_name, exc)
            continue
        routes.append(route)
    return routes


@dataclass(frozen=True)
class Match:
    route: Route
    params: dict[str, str]


@dataclass(frozen=True)
class MethodNotAllowed:
    allowed: tuple[str, ...]


class Router:
    def __init__(self, routes: Iterable[Route]) -> None:
        # Stable sort: among equally specific templates, declaration order decides.
        self.routes: tuple[Route, ...] = tuple(sorted(routes, key=Route.specificity))
        # Candidates by the path's segment count (a verb never contains "/", so the count is
        # the same with or without it), in the order above: a request tries the few templates
        # of its length instead of every one. Counts beyond the longest fixed template can only
        # match templates ending in `**`. Bounded by the templates, not by what clients send.
        # A template with a verb needs a path whose last segment has a ":", so paths without
        # one skip those templates too.
        longest = max((r.template.fixed_segments for r in self.routes), default=0)
        self._by_shape: dict[tuple[int, bool], tuple[Route, ...]] = {
            (count, colon): tuple(
                r
                for r in self.routes
                if r.template.accepts_segment_count(count) and (colon or not r.template.verb)
            )
            for count in range(longest + 1)
            for colon in (False, True)
        }
        self._longer = {
            colon: tuple(
                r
                for r in self.routes
                if r.template.has_deep_wildcard and (colon or not r.template.verb)
            )
            for colon in (False, True)
        }

    @classmethod
    def for_methods(cls, methods: Iterable[MethodDescriptor]) -> Router:
        return cls(route for m in methods for route in routes_for_method(m))

    def candidates(self, path: str) -> tuple[Route, ...]:
        """The routes that can match `path`, in matching order."""
        shape = (path.count("/"), ":" in path[path.rfind("/") + 1 :])
        found = self._by_shape.get(shape)
        return self._longer[shape[1]] if found is None else found

    def match(self, http_method: str, path: str) -> Match | MethodNotAllowed | None:
        """The first candidate of `http_method` whose template matches `path`; else the
        methods of the candidates that match it (405), or None (404). Templates of other
        methods are matched only when the request's own found nothing."""
        candidates = self.candidates(path)
        for route in candidates:
            if route.http_method == http_method:
                params = route.template.match(path)
                if params is not None:
                    return Match(route, params)
        allowed: list[str] = []
        for route in candidates:
            if (
                route.http_method != http_method
                and route.http_method not in allowed
                and route.template.match(path) is not None
            ):
                allowed.append(route.http_method)
        return MethodNotAllowed(tuple(allowed)) if allowed else None
