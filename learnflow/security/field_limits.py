"""Size limits of request fields, read from the `(learnflow.v1.limits)` field option.

At start, one plan per request message type is compiled from the descriptors: for each field
that can hold unbounded data (strings, bytes, repeated fields, maps, FieldMask paths) its
declared `max_length` / `max_items`, and for message fields the plan of the nested type. The
interceptor runs the plan on every request before the NUL scan and before the handler.

The cost is bounded by the limits themselves, not by the request: a repeated field's or a
map's `len()` (O(1)) is compared with `max_items` before any element is looked at, and an
over-long field is reported without being walked. A 3.5-million-element `choice_indexes` is
refused after one `len()`.

Compiling refuses (`MissingFieldLimit`) when a string, bytes, repeated or map field reachable
from an RPC input lacks a limit, so the server cannot start with an unbounded request field:
like the access rules, the contract is the only list of limits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor, ServiceDescriptor
from google.protobuf.message import Message

from learnflow.errors import FieldViolation
from learnflow.v1 import limits_pb2

# Beyond this many, further violations are not collected (the error details stay small).
MAX_VIOLATIONS = 100
FIELD_MASK = "google.protobuf.FieldMask"

_STRINGS = (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES)


class MissingFieldLimit(Exception):
    pass


@dataclass(frozen=True)
class _Check:
    name: str
    max_length: int  # 0: unbounded (only for non-string elements)
    max_items: int  # 0: not a collection
    is_map: bool = False
    is_mask: bool = False
    # Plan of the (element / map value) message type, when it has anything to check.
    nested: MessagePlan | None = None
    # Map fields: whether the key / value are strings bounded by max_length.
    key_is_text: bool = False
    value_is_text: bool = False
    unit: str = "characters"  # "bytes" for bytes fields


@dataclass
class MessagePlan:
    full_name: str
    checks: dict[int, _Check] = field(default_factory=dict)


def _limits(f: FieldDescriptor) -> tuple[int, int] | None:
    if not f.has_options:
        return None
    options: Any = f.GetOptions()
    if not options.HasExtension(limits_pb2.limits):
        return None
    declared = options.Extensions[limits_pb2.limits]
    return int(declared.max_length), int(declared.max_items)


def _flat_fields(message: Descriptor) -> tuple[tuple[str, int, bool], ...] | None:
    """(name, max_length, is text) of the string and bytes fields of a message whose fields
    are all singular scalars with declared limits; None for any other message."""
    out: list[tuple[str, int, bool]] = []
    for f in message.fields:
        if f.is_repeated or f.message_type is not None:
            return None
        if f.type in _STRINGS:
            declared = _limits(f)
            if declared is None or not declared[0]:
                return None
            out.append((f.name, declared[0], f.type == FieldDescriptor.TYPE_STRING))
    return tuple(out)


class _Compiler:
    def __init__(self) -> None:
        self.plans: dict[str, MessagePlan] = {}
        self.messages: dict[str, Descriptor] = {}
        self.missing: list[str] = []

    def plan(self, message: Descriptor) -> MessagePlan:
        found = self.plans.get(message.full_name)
        if found is not None:
            return found
        plan = MessagePlan(message.full_name)
        self.plans[message.full_name] = plan  # before the fields: types may be recursive
        self.messages[message.full_name] = message
        for f in message.fields:
            check = self._field(f)
            if check is not None:
                plan.checks[f.number] = check
        return plan

    def _field(self, f: FieldDescriptor) -> _Check | None:
        declared = _limits(f)
        where = f.full_name
        nested = f.message_type
        if nested is not None and nested.GetOptions().map_entry:
            key, value = nested.fields_by_name["key"], nested.fields_by_name["value"]
            value_plan = self._nested(value.message_type)
            text = key.type in _STRINGS or value.type in _STRINGS
            if declared is None or not declared[1] or (text and not declared[0]):
                self._missing(where, "max_items" + (" and max_length" if text else ""))
                return None
            return _Check(
                f.name,
                declared[0],
                declared[1],
                is_map=True,
                nested=value_plan,
                key_is_text=key.type in _STRINGS,
                value_is_text=value.type in _STRINGS,
                unit=_unit(value),
            )
        if nested is not None and nested.full_name == FIELD_MASK:
            if declared is None or not declared[0] or not declared[1] or f.is_repeated:
                self._missing(where, "max_items and max_length (of its paths)")
                return None
            return _Check(f.name, declared[0], declared[1], is_mask=True)
        text = f.type in _STRINGS
        plan = self._nested(nested)
        if f.is_repeated:
            if declared is None or not declared[1] or (text and not declared[0]):
                self._missing(where, "max_items" + (" and max_length" if text else ""))
                return None
            return _Check(
                f.name, declared[0] if text else 0, declared[1], nested=plan, unit=_unit(f)
            )
        if text:
            if declared is None or not declared[0]:
                self._missing(where, "max_length")
                return None
            return _Check(f.name, declared[0], 0, unit=_unit(f))
        if plan is not None:
            return _Check(f.name, 0, 0, nested=plan)
        return None

    def _nested(self, message: Descriptor | None) -> MessagePlan | None:
        # Kept even when empty: a recursive type's plan is still being filled in here.
        return None if message is None else self.plan(message)

    def _missing(self, where: str, what: str) -> None:
        self.missing.append(f"{where} declares no (learnflow.v1.limits) {what}")


class RequestLimits:
    """Plans for the input messages of the given services, by message full name."""

    def __init__(self, services: Iterable[ServiceDescriptor], *, strict: bool = True) -> None:
        compiler = _Compiler()
        for service in services:
            for method in service.methods:
                compiler.plan(method.input_type)
        if strict and compiler.missing:
            raise MissingFieldLimit("; ".join(sorted(set(compiler.missing))))
        self.missing = sorted(set(compiler.missing))
        self._plans = compiler.plans
        self._flat = {
            name: flat
            for name, flat in (
                (name, _flat_fields(pool_message))
                for name, pool_message in compiler.messages.items()
            )
            if flat is not None
        }

    def plainly_valid(self, message: Message) -> bool:
        """True when `message` is of a type whose fields are all singular scalars (most
        reads: ids and page tokens) and every text in it is within its limit and free of NUL:
        then neither `violations` nor the NUL scan can find anything, and both are skipped
        (4 us a call). False says nothing: run them."""
        flat = self._flat.get(message.DESCRIPTOR.full_name)
        if flat is None:
            return False
        for name, max_length, text in flat:
            value = getattr(message, name)
            if len(value) > max_length or (text and "\x00" in value):
                return False
        return True

    def violations(self, message: Message) -> list[FieldViolation]:
        """Every field of `message` beyond its declared limits (at most MAX_VIOLATIONS)."""
        plan = self._plans.get(message.DESCRIPTOR.full_name)
        out: list[FieldViolation] = []
        if plan is not None and plan.checks:
            _check(message, plan, "", out)
        return out


def _unit(f: FieldDescriptor) -> str:
    return "bytes" if f.type == FieldDescriptor.TYPE_BYTES else "characters"


def _too_long(check: _Check) -> str:
    return f"must be at most {check.max_length} {check.unit}"


def _too_many(max_items: int) -> str:
    return f"must have at most {max_items} items"


def _check(message: Any, plan: MessagePlan, prefix: str, out: list[FieldViolation]) -> None:
    checks = plan.checks
    for f, value in message.ListFields():
        if len(out) >= MAX_VIOLATIONS:
            return
        check = checks.get(f.number)
        if check is None:
            continue
        path = prefix + check.name
        if check.is_mask:
            value = value.paths
        if check.max_items:
            # The count first, in O(1): an over-long collection is never walked.
            if len(value) > check.max_items:
                out.append(FieldViolation(path, _too_many(check.max_items)))
                continue
            if check.is_map:
                _check_map(value, check, path, out)
            elif check.max_length:
                for index, item in enumerate(value):
                    if len(item) > check.max_length:
                        out.append(FieldViolation(f"{path}[{index}]", _too_long(check)))
            elif check.nested is not None and check.nested.checks:
                for index, item in enumerate(value):
                    _check(item, check.nested, f"{path}[{index}].", out)
        elif check.max_length:
            if len(value) > check.max_length:
                out.append(FieldViolation(path, _too_long(check)))
        elif check.nested is not None and check.nested.checks:
            _check(value, check.nested, f"{path}.", out)


def _check_map(value: Any, check: _Check, path: str, out: list[FieldViolation]) -> None:
    for key, item in value.items():
        item_path = f"{path}[{key!r}]"
        if check.key_is_text and len(key) > check.max_length:
            out.append(FieldViolation(path, "keys " + _too_long(check)))
        if check.value_is_text and len(item) > check.max_length:
            out.append(FieldViolation(item_path, _too_long(check)))
        elif check.nested is not None and check.nested.checks:
            _check(item, check.nested, f"{item_path}.", out)
