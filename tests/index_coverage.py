"""Index coverage: every read-model query and projector write must be served by an index.

A pytest plugin (registered by tests/conftest.py). At configure time it registers a global
PyMongo `CommandListener`, before any client exists, that sees every command the session
sends. A command counts when a frame of the read side is on the stack: learnflow/projections,
learnflow/queries or learnflow/dependencies.py (commands of test code are not the product's).
For each `find`, `count`, `distinct`, `aggregate` (its leading `$match`, then `$sort`),
`update` and `delete` (each statement's `q`) and `findAndModify` (`query` and `sort`) it keeps
the *shape* of the filter and sort: which fields are compared by equality (a value, `$eq`,
`$in`, `$all`), which by anything else (a range: `$gt`, `$lt`, `$ne`, `$not`, `$exists`,
`$regex`...), and the sort keys. The PyMongo listener runs synchronously in the task that issues the
command (async PyMongo included), so the stack names the call site.

At the end of the session each shape is checked against the indexes the projections declare
(their `ensure_indexes`, run against a recording stand-in at configure time, plus every
`createIndexes` learnflow sends during the session) by MongoDB's rules, ESR: an index serves
a shape when a prefix of its keys holds every equality field (any order), then the sort fields
in order (directions all the same as the index's or all reversed; sorting on a field fixed by
equality costs nothing), then at most one range field (a range on a sort field is bounded by
the sort itself). A shape with an equality on `_id` is served by the `_id` index whatever
else it filters on. A query with neither filter nor sort reads the whole collection and is
never served: it must be allow-listed. Key patterns are pooled by collection name: the
projections declare the same indexes in every read-model database (each generation
`<name>_g<N>`, and the databases some tests fill through `Batch` without `ensure_indexes`).

Any unserved shape fails the run (exit status 1) with a report naming the collection, the
shape and the call sites. `LEARNFLOW_INDEX_COVERAGE=0` switches the plugin off (benchmarks).
Nothing here depends on the server: FerretDB and MongoDB see the same commands.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, cast

import pytest
from bson.regex import Regex
from pymongo import monitoring

import learnflow

ENABLE_ENV = "LEARNFLOW_INDEX_COVERAGE"

IndexKey = tuple[tuple[str, int], ...]
ID_INDEX: IndexKey = (("_id", 1),)

# Collections and databases whose every command is accepted, however it filters. Each says why.
ALLOWED_DATABASE_SUFFIXES: dict[str, str] = {
    "_meta": "the generation pointer and the leader epoch: two documents, read and written by "
    "`_id` (ReadStore.active_generation, activate, next_epoch)",
}
ALLOWED_COLLECTIONS: dict[str, str] = {
    "checkpoints": "one document per generation, read and written by `_id` (the projector's "
    "checkpoint)",
    "parked_events": "the projector's dead-letter list: empty in normal operation and bounded by "
    "the events that failed; `projections status`, `retry` and health read it whole",
}

# Shapes learnflow issues today that no declared index serves, each a (collection, shape) as
# the report prints it. They are reported but do not fail the run; each entry is a debt to pay
# (add the index or change the query) and then remove from here.
# Shapes known to be unserved, each with the issue that will fix it: reported, not failing.
# Empty: the four found when this plugin arrived (ListAuditEvents by actor and action;
# ListCourses by tag and level, and its title search) got indexes in the same change.
KNOWN_GAPS: dict[tuple[str, str], str] = {}

# `$all` on an indexed (multikey) array field: MongoDB bounds the index scan by one of the
# values, a point like an equality (then checks the others on the documents it fetched), so the
# keys after it (a sort, a range) are used just as after an equality.
EQUALITY_OPERATORS = frozenset({"$eq", "$in", "$all"})
# Top-level operators whose clauses this checker does not analyse: such a shape is unserved
# unless an `_id` equality bounds it (`$comment` only annotates the query).
IGNORED_TOP_LEVEL = frozenset({"$comment"})

_LEARNFLOW = Path(learnflow.__file__).resolve().parent
_REPOSITORY = _LEARNFLOW.parent
_READ_SIDE_PREFIXES = (
    f"{_LEARNFLOW / 'projections'}{os.sep}",
    f"{_LEARNFLOW / 'queries'}{os.sep}",
)
_READ_SIDE_FILES = frozenset({str(_LEARNFLOW / "dependencies.py")})


def is_read_side(filename: str) -> bool:
    """Whether a frame of `filename` makes a command the product's (the default predicate)."""
    return filename.startswith(_READ_SIDE_PREFIXES) or filename in _READ_SIDE_FILES


# --------------------------------------------------------------------------------------------
# Shapes


@dataclass(frozen=True)
class Shape:
    """The index-relevant part of a filter and sort. `ranges` maps a field to its operators."""

    equality: frozenset[str] = frozenset()
    ranges: tuple[tuple[str, tuple[str, ...]], ...] = ()
    sort: tuple[tuple[str, int], ...] = ()
    opaque: tuple[str, ...] = ()  # operators not analysed ($or, $expr, ...)

    @property
    def range_fields(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.ranges)

    @property
    def full_scan(self) -> bool:
        return not (self.equality or self.ranges or self.sort or self.opaque)

    def render(self) -> str:
        parts = [f"{name}: =" for name in sorted(self.equality)]
        parts += [f"{name}: {'/'.join(ops)}" for name, ops in self.ranges]
        parts += [f"{op}: ?" for op in self.opaque]
        text = "filter {" + ", ".join(parts) + "}"
        if self.sort:
            text += " sort {" + ", ".join(f"{name}: {d}" for name, d in self.sort) + "}"
        return text

    def __str__(self) -> str:
        return self.render()


def _is_operator_document(value: object) -> bool:
    return isinstance(value, Mapping) and any(str(k).startswith("$") for k in value)


def _collect(
    query: Mapping[str, Any],
    equality: set[str],
    ranges: dict[str, set[str]],
    opaque: set[str],
) -> None:
    for key, value in query.items():
        name = str(key)
        if name == "$and" and isinstance(value, Sequence):
            for clause in value:
                if isinstance(clause, Mapping):
                    _collect(clause, equality, ranges, opaque)
                else:
                    opaque.add(name)
        elif name in IGNORED_TOP_LEVEL:
            continue
        elif name.startswith("$"):
            opaque.add(name)
        elif _is_operator_document(value):
            operators = {str(op) for op in cast(Mapping[str, Any], value)} - {"$options"}
            if operators & EQUALITY_OPERATORS:
                equality.add(name)
            else:
                ranges.setdefault(name, set()).update(operators)
        elif isinstance(value, re.Pattern | Regex):
            ranges.setdefault(name, set()).add("$regex")
        else:  # a plain value, or an embedded document compared whole
            equality.add(name)


def normalize_sort(sort: object) -> tuple[tuple[str, int], ...]:
    """A sort as (field, 1 | -1) pairs; `{"$meta": ...}` and other non-numbers become 0."""
    if not sort:
        return ()
    items: Iterable[Any]
    if isinstance(sort, Mapping):
        items = sort.items()
    elif isinstance(sort, str):
        items = [(sort, 1)]
    else:
        items = cast(Iterable[Any], sort)
    pairs: list[tuple[str, int]] = []
    for item in items:
        name, direction = (item, 1) if isinstance(item, str) else item
        number = direction if isinstance(direction, int | float) else 0
        pairs.append((str(name), 1 if number > 0 else -1 if number < 0 else 0))
    return tuple(pairs)


def shape_of(query: Mapping[str, Any] | None, sort: object = None) -> Shape:
    """The shape of a filter (a MongoDB query document) and a sort specification."""
    equality: set[str] = set()
    ranges: dict[str, set[str]] = {}
    opaque: set[str] = set()
    _collect(query or {}, equality, ranges, opaque)
    return Shape(
        equality=frozenset(equality),
        ranges=tuple(
            sorted(
                (name, tuple(sorted(ops))) for name, ops in ranges.items() if name not in equality
            )
        ),
        sort=normalize_sort(sort),
        opaque=tuple(sorted(opaque)),
    )


def normalize_index(keys: object) -> IndexKey | None:
    """An index key pattern as (field, 1 | -1) pairs; None for a text, hashed, geo or wildcard
    index, which this checker does not count as serving anything."""
    pairs = normalize_sort(keys)
    if not pairs or any(d == 0 or "$**" in name for name, d in pairs):
        return None
    return pairs


def serves(index: IndexKey, shape: Shape) -> bool:
    """Whether `index` serves `shape` by the ESR rule (see the module docstring)."""
    if shape.opaque or shape.full_scan:
        return False
    names = [name for name, _ in index]
    count = len(shape.equality)
    if set(names[:count]) != shape.equality or len(names) < count:
        return False
    sort = [(name, d) for name, d in shape.sort if name not in shape.equality]
    rest = index[count:]
    if len(rest) < len(sort):
        return False
    if sort:
        if any(d == 0 for _, d in sort):
            return False
        if [name for name, _ in sort] != [name for name, _ in rest[: len(sort)]]:
            return False
        signs = {d * own for (_, d), (_, own) in zip(sort, rest, strict=False)}
        if len(signs) != 1:
            return False
    sorted_fields = {name for name, _ in sort}
    ranges = [
        name
        for name in shape.range_fields
        if name not in shape.equality and name not in sorted_fields
    ]
    if len(ranges) > 1:
        return False
    if ranges:
        after = rest[len(sort) :]
        return bool(after) and after[0][0] == ranges[0]
    return True


def serving_index(shape: Shape, indexes: Iterable[IndexKey]) -> IndexKey | None:
    """The index that serves `shape` (the `_id` index for an `_id` equality), or None."""
    if "_id" in shape.equality:
        return ID_INDEX
    for index in (ID_INDEX, *indexes):
        if serves(index, shape):
            return index
    return None


# --------------------------------------------------------------------------------------------
# Commands


def shapes_of_command(name: str, command: Mapping[str, Any]) -> list[tuple[str, Shape]]:
    """(collection, shape) of each filter a command carries; [] for commands without one."""
    target = command.get(name)
    if not isinstance(target, str):  # `aggregate: 1` on a database, or no collection
        return []
    if name == "find":
        return [(target, shape_of(command.get("filter"), command.get("sort")))]
    if name in ("count", "distinct"):
        return [(target, shape_of(command.get("query")))]
    if name == "findAndModify":
        return [(target, shape_of(command.get("query"), command.get("sort")))]
    if name == "update":
        return [(target, shape_of(s.get("q"))) for s in command.get("updates", ())]
    if name == "delete":
        return [(target, shape_of(s.get("q"))) for s in command.get("deletes", ())]
    if name == "aggregate":
        stages = list(command.get("pipeline", ()))
        query: Mapping[str, Any] | None = None
        sort: object = None
        if stages and "$match" in stages[0]:
            query = stages[0]["$match"]
            stages = stages[1:]
        if stages and "$sort" in stages[0]:
            sort = stages[0]["$sort"]
        return [(target, shape_of(query, sort))]
    return []


FILTERING_COMMANDS = frozenset(
    {"find", "count", "distinct", "findAndModify", "update", "delete", "aggregate"}
)


def allowance(database: str, collection: str) -> str | None:
    """Why every command on this collection is accepted, or None."""
    for suffix, why in ALLOWED_DATABASE_SUFFIXES.items():
        if database.endswith(suffix):
            return why
    return ALLOWED_COLLECTIONS.get(collection)


@functools.lru_cache(maxsize=512)
def _shown(filename: str) -> str:
    try:
        return str(Path(filename).relative_to(_REPOSITORY))
    except ValueError:
        return filename


def call_site(
    frame: FrameType | None,
    counts: Callable[[str], bool],
    depth: int = 3,
    cache: dict[str, bool] | None = None,
) -> str | None:
    """The innermost counted frame and up to `depth - 1` counted callers, or None.
    `cache` keeps `counts` per file name (the walk runs for every command)."""
    sites: list[str] = []
    while frame is not None and len(sites) < depth:
        code = frame.f_code
        filename = code.co_filename
        counted = cache.get(filename) if cache is not None else None
        if counted is None:
            counted = counts(filename)
            if cache is not None:
                cache[filename] = counted
        if counted:
            sites.append(f"{_shown(filename)}:{frame.f_lineno} {code.co_qualname}")
        frame = frame.f_back
    return " <- ".join(sites) if sites else None


@dataclass
class Observation:
    collection: str
    shape: Shape
    commands: set[str] = field(default_factory=set)
    databases: set[str] = field(default_factory=set)
    sites: dict[str, int] = field(default_factory=dict)
    count: int = 0


@dataclass(frozen=True)
class Finding:
    collection: str
    shape: Shape
    commands: tuple[str, ...]
    sites: tuple[str, ...]
    count: int
    known_gap: str | None = None

    def report(self) -> str:
        lines = [
            f"{self.collection}: {self.shape}  ({', '.join(self.commands)}; {self.count}x)",
            *(f"    at {site}" for site in self.sites),
        ]
        return "\n".join(lines)


MAX_SITES = 5


class Recorder:
    """Shapes seen and indexes declared; `findings()` says which shapes no index serves."""

    def __init__(
        self,
        counts: Callable[[str], bool] = is_read_side,
        declared: Mapping[str, Iterable[IndexKey]] | None = None,
    ) -> None:
        self.counts = counts
        self.indexes: dict[str, set[IndexKey]] = {
            name: set(keys) for name, keys in (declared or {}).items()
        }
        self.observations: dict[tuple[str, Shape], Observation] = {}
        self.allowed: dict[str, int] = {}
        self.errors: list[str] = []
        self.commands = 0
        self.seconds = 0.0
        self._lock = threading.Lock()
        self._counted: dict[str, bool] = {}

    def declare(self, collection: str, keys: object) -> None:
        index = normalize_index(keys)
        if index is not None:
            with self._lock:
                self.indexes.setdefault(collection, set()).add(index)

    def observe(self, database: str, name: str, command: Mapping[str, Any], site: str) -> None:
        """Records one command of counted code."""
        if name == "createIndexes":
            collection = command.get(name)
            for spec in command.get("indexes", ()):
                if isinstance(collection, str) and isinstance(spec, Mapping):
                    self.declare(collection, spec.get("key"))
            return
        for collection, shape in shapes_of_command(name, command):
            with self._lock:
                why = allowance(database, collection)
                if why is not None:
                    self.allowed[collection] = self.allowed.get(collection, 0) + 1
                    continue
                seen = self.observations.get((collection, shape))
                if seen is None:
                    seen = self.observations[(collection, shape)] = Observation(collection, shape)
                seen.count += 1
                seen.commands.add(name)
                seen.databases.add(database)
                if site in seen.sites or len(seen.sites) < MAX_SITES:
                    seen.sites[site] = seen.sites.get(site, 0) + 1

    def on_command(self, database: str, name: str, command: Mapping[str, Any]) -> None:
        """The listener's entry: finds the call site on the current stack, then observes."""
        if name not in FILTERING_COMMANDS and name != "createIndexes":
            return
        started = time.perf_counter()
        try:
            site = call_site(sys._getframe(1), self.counts, cache=self._counted)
            if site is None:
                return
            self.commands += 1
            self.observe(database, name, command, site)
        except Exception as exc:  # never break the driver; report it at the end instead
            self.errors.append(f"{name} on {database}: {type(exc).__name__}: {exc}")
        finally:
            self.seconds += time.perf_counter() - started

    def findings(self) -> list[Finding]:
        """Every observed shape no declared index serves (known gaps marked as such)."""
        found: list[Finding] = []
        with self._lock:
            observations = list(self.observations.values())
        for seen in observations:
            if serving_index(seen.shape, self.indexes.get(seen.collection, ())) is not None:
                continue
            found.append(
                Finding(
                    collection=seen.collection,
                    shape=seen.shape,
                    commands=tuple(sorted(seen.commands)),
                    sites=tuple(sorted(seen.sites)),
                    count=seen.count,
                    known_gap=KNOWN_GAPS.get((seen.collection, seen.shape.render())),
                )
            )
        return sorted(found, key=lambda f: (f.collection, f.shape.render()))

    def unserved(self) -> list[Finding]:
        """The findings that fail the run: unserved shapes that are not known gaps."""
        return [f for f in self.findings() if f.known_gap is None]


class CoverageListener(monitoring.CommandListener):
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.recorder.on_command(event.database_name, event.command_name, event.command)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        return None

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        return None


# --------------------------------------------------------------------------------------------
# The indexes the projections declare


class _DeclaringCollection:
    def __init__(self, name: str, declared: dict[str, set[IndexKey]]) -> None:
        self.name = name
        self.declared = declared

    async def create_index(self, keys: object, **_: object) -> str:
        index = normalize_index(keys)
        if index is not None:
            self.declared.setdefault(self.name, set()).add(index)
        return self.name


class _DeclaringDatabase:
    """Stands in for an `AsyncDatabase` in `Projection.ensure_indexes`: records, sends nothing."""

    def __init__(self) -> None:
        self.declared: dict[str, set[IndexKey]] = {}

    def __getitem__(self, name: str) -> _DeclaringCollection:
        return _DeclaringCollection(name, self.declared)


def declared_indexes() -> dict[str, set[IndexKey]]:
    """The key patterns every projection's `ensure_indexes` creates, by collection."""
    from learnflow.projections.registry import all_projections

    db = _DeclaringDatabase()
    for projection in all_projections():
        coroutine = projection.ensure_indexes(cast(Any, db))
        try:  # the stand-in never suspends: the coroutine runs to its end in one step
            coroutine.send(None)
        except StopIteration:
            continue
        coroutine.close()
        raise RuntimeError(f"{type(projection).__name__}.ensure_indexes awaited real I/O")
    return db.declared


# --------------------------------------------------------------------------------------------
# The pytest plugin

RECORDER = pytest.StashKey[Recorder]()
FINDINGS = pytest.StashKey[list[Finding]]()


def enabled() -> bool:
    return os.environ.get(ENABLE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def pytest_configure(config: pytest.Config) -> None:
    if not enabled():
        return
    recorder = Recorder(declared=declared_indexes())
    monitoring.register(CoverageListener(recorder))
    config.stash[RECORDER] = recorder


def pytest_sessionfinish(session: pytest.Session, exitstatus: int | pytest.ExitCode) -> None:
    recorder = session.config.stash.get(RECORDER, None)
    if recorder is None:
        return
    findings = recorder.findings()
    session.config.stash[FINDINGS] = findings
    failing = [f for f in findings if f.known_gap is None] or recorder.errors
    if failing and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    recorder = config.stash.get(RECORDER, None)
    if recorder is None or not (recorder.commands or recorder.observations or recorder.errors):
        return
    findings = config.stash.get(FINDINGS, None)
    if findings is None:
        findings = recorder.findings()
    write = terminalreporter.write_line
    unserved = [f for f in findings if f.known_gap is None]
    known = [f for f in findings if f.known_gap is not None]
    shapes = len(recorder.observations)
    summary = (
        f"{recorder.commands} read-side commands, {shapes} shapes checked against the declared "
        f"indexes ({sum(recorder.allowed.values())} on allow-listed collections); listener "
        f"time {recorder.seconds * 1000:.0f} ms"
    )
    if unserved or recorder.errors:
        terminalreporter.write_sep("=", "index coverage: FAILED", red=True, bold=True)
        write(summary)
        if unserved:
            write(f"{len(unserved)} shape(s) no declared index serves (ESR rule):")
            for finding in unserved:
                write(finding.report())
        for error in recorder.errors:
            write(f"could not analyse a command: {error}")
    else:
        terminalreporter.write_sep("-", "index coverage: every shape index-served")
        write(summary)
    if terminalreporter.verbosity > 0:
        write("every shape seen, with the index that serves it:")
        for (collection, shape), seen in sorted(
            recorder.observations.items(), key=lambda item: (item[0][0], item[0][1].render())
        ):
            index = serving_index(shape, recorder.indexes.get(collection, ()))
            served_by = dict(index) if index is not None else "NOT SERVED"
            write(f"  {collection}: {shape}  ({seen.count}x) <- {served_by}")
    if known:
        write(f"{len(known)} known gap(s), reported but not failing (KNOWN_GAPS):")
        for finding in known:
            write(f"{finding.report()}\n    known gap: {finding.known_gap}")
