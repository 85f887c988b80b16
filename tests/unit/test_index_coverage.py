"""The index-coverage plugin's shape analysis and ESR rule (tests/index_coverage.py), and that
an unserved shape really fails a pytest run. No services."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from bson.regex import Regex

from tests.index_coverage import (
    ID_INDEX,
    KNOWN_GAPS,
    IndexKey,
    Recorder,
    Shape,
    declared_indexes,
    enabled,
    normalize_index,
    serving_index,
    shape_of,
    shapes_of_command,
)

REPOSITORY = Path(__file__).resolve().parents[2]


def index(*keys: tuple[str, int]) -> IndexKey:
    return tuple(keys)


def served(query: dict[str, Any], sort: object, *indexes: IndexKey) -> IndexKey | None:
    return serving_index(shape_of(query, sort), indexes)


class TestShapes:
    def test_plain_values_eq_and_in_are_equality(self) -> None:
        shape = shape_of({"a": 1, "b": {"$eq": 2}, "c": {"$in": [1, 2]}, "d": {"x": 1}})
        assert shape.equality == {"a", "b", "c", "d"}
        assert shape.ranges == ()

    def test_all_on_an_array_is_equality_on_one_of_its_values(self) -> None:
        """Several tags at once (`$all`): the index bounds are a point on one tag, so a sort
        and a range after it are served as after an equality."""
        shape = shape_of({"state": "published", "tags": {"$all": ["a", "b"]}})
        assert shape.equality == {"state", "tags"}
        assert shape.ranges == ()
        index_ = index(("state", 1), ("tags", 1), ("sort_key", -1), ("search_text", 1))
        query = {"state": "published", "tags": {"$all": ["a", "b"]}, "search_text": Regex("x")}
        assert served(query, [("sort_key", -1)], index_) == index_
        assert served(query, [("title_key", 1)], index_) is None

    def test_comparisons_negations_and_patterns_are_ranges(self) -> None:
        shape = shape_of(
            {
                "a": {"$gt": 1, "$lte": 5},
                "b": {"$ne": 1},
                "c": {"$not": {"$gt": 3}},
                "d": {"$exists": True},
                "e": {"$regex": "x", "$options": "i"},
                "f": re.compile("^x"),
                "g": Regex("y"),
            }
        )
        assert shape.equality == frozenset()
        assert dict(shape.ranges) == {
            "a": ("$gt", "$lte"),
            "b": ("$ne",),
            "c": ("$not",),
            "d": ("$exists",),
            "e": ("$regex",),
            "f": ("$regex",),
            "g": ("$regex",),
        }

    def test_and_is_flattened_and_equality_wins_over_a_range(self) -> None:
        shape = shape_of({"$and": [{"a": 1}, {"a": {"$gt": 0}}, {"b": {"$lt": 2}}]})
        assert shape.equality == {"a"}
        assert shape.range_fields == ("b",)

    def test_or_and_expr_are_opaque(self) -> None:
        assert shape_of({"$or": [{"a": 1}, {"b": 2}]}).opaque == ("$or",)
        assert shape_of({"$expr": {"$eq": ["$a", 1]}}).opaque == ("$expr",)
        assert shape_of({"a": 1, "$comment": "why"}).opaque == ()

    def test_sort_forms(self) -> None:
        assert shape_of({}, {"a": 1, "b": -1}).sort == (("a", 1), ("b", -1))
        assert shape_of({}, [("a", -1)]).sort == (("a", -1),)
        assert shape_of({}, {"s": {"$meta": "textScore"}}).sort == (("s", 0),)

    def test_rendering_names_fields_and_operators(self) -> None:
        shape = shape_of({"state": "p", "sort_key": {"$lt": "k"}}, {"sort_key": -1})
        assert shape.render() == "filter {state: =, sort_key: $lt} sort {sort_key: -1}"
        assert Shape().full_scan
        assert not shape_of({}, {"a": 1}).full_scan


class TestESR:
    def test_equality_only_any_order_in_the_prefix(self) -> None:
        ab = index(("a", 1), ("b", 1), ("c", 1))
        assert served({"a": 1}, None, ab) == ab
        assert served({"b": 1, "a": 2}, None, ab) == ab
        assert served({"b": 1}, None, ab) is None  # not a prefix
        assert served({"a": 1, "c": 1}, None, ab) is None  # a gap in the prefix

    def test_equality_then_sort(self) -> None:
        ix = index(("state", 1), ("sort_key", -1))
        assert served({"state": "p"}, {"sort_key": -1}, ix) == ix
        assert served({"state": "p"}, {"sort_key": 1}, ix) == ix  # walked backwards

    def test_sort_directions_all_same_or_all_reversed(self) -> None:
        ix = index(("a", 1), ("b", -1))
        assert served({}, {"a": 1, "b": -1}, ix) == ix
        assert served({}, {"a": -1, "b": 1}, ix) == ix
        assert served({}, {"a": 1, "b": 1}, ix) is None

    def test_sort_on_a_field_fixed_by_equality_is_free(self) -> None:
        ix = index(("a", 1), ("b", 1))
        assert served({"a": 1}, {"a": -1, "b": 1}, ix) == ix

    def test_range_after_sort_is_served(self) -> None:
        ix = index(("a", 1), ("s", 1), ("r", 1))
        assert served({"a": 1, "r": {"$gt": 2}}, {"s": 1}, ix) == ix

    def test_range_before_sort_is_not_served(self) -> None:
        ix = index(("a", 1), ("r", 1), ("s", 1))
        assert served({"a": 1, "r": {"$gt": 2}}, {"s": 1}, ix) is None

    def test_range_on_the_sort_field_is_bounded_by_the_sort(self) -> None:
        ix = index(("lesson_id", 1), ("sort_key", 1))
        query = {"lesson_id": "l", "sort_key": {"$gt": "k"}}
        assert served(query, {"sort_key": 1}, ix) == ix
        assert served(query, None, ix) == ix

    def test_at_most_one_range_field(self) -> None:
        ix = index(("a", 1), ("r", 1), ("t", 1))
        assert served({"a": 1, "r": {"$gt": 1}}, None, ix) == ix
        assert served({"a": 1, "r": {"$gt": 1}, "t": {"$lt": 2}}, None, ix) is None

    def test_in_counts_as_equality(self) -> None:
        ix = index(("course_id", 1), ("position", 1))
        assert served({"course_id": {"$in": ["a", "b"]}}, {"position": 1}, ix) == ix

    def test_id_equality_is_served_whatever_else_is_filtered(self) -> None:
        assert served({"_id": "x"}, None) == ID_INDEX
        assert served({"_id": {"$in": ["x", "y"]}}, None) == ID_INDEX
        assert served({"_id": "x", "e": {"$not": {"$gt": 3}}}, None) == ID_INDEX
        assert served({"_id": "x"}, {"other": 1}) == ID_INDEX

    def test_id_range_and_sort_use_the_id_index(self) -> None:
        assert served({"_id": {"$gt": "a"}}, {"_id": 1}) == ID_INDEX
        assert served({"_id": {"$gt": "a"}, "x": 1}, None) is None

    def test_compound_prefix_versus_non_prefix(self) -> None:
        ix = index(("state", 1), ("tags", 1), ("sort_key", -1))
        assert served({"state": "p", "tags": "t"}, {"sort_key": -1}, ix) == ix
        assert served({"state": "p"}, None, ix) == ix
        # Skipping `tags` leaves `sort_key` unordered for a `state` alone: a blocking sort.
        assert served({"state": "p"}, {"sort_key": -1}, ix) is None
        assert served({"tags": "t"}, None, ix) is None

    def test_sort_on_an_unindexed_field_is_not_served(self) -> None:
        ix = index(("a", 1))
        assert served({"a": 1}, {"nope": 1}, ix) is None
        assert served({}, {"nope": 1}, ix) is None

    def test_an_unindexed_filter_field_is_not_served(self) -> None:
        ix = index(("a", 1))
        assert served({"a": 1, "b": 2}, None, ix) is None
        assert served({"title": "x"}, None) is None

    def test_a_full_scan_and_opaque_filters_are_never_served(self) -> None:
        ix = index(("a", 1))
        assert served({}, None, ix) is None
        assert served({"$or": [{"a": 1}]}, None, ix) is None

    def test_special_indexes_serve_nothing(self) -> None:
        assert normalize_index({"title": "text"}) is None
        assert normalize_index({"$**": 1}) is None
        assert normalize_index([("a", 1), ("b", -1)]) == (("a", 1), ("b", -1))


class TestCommands:
    def test_the_filters_of_each_command(self) -> None:
        assert shapes_of_command("find", {"find": "c", "filter": {"a": 1}, "sort": {"b": -1}}) == [
            ("c", shape_of({"a": 1}, {"b": -1}))
        ]
        assert shapes_of_command(
            "update", {"update": "c", "updates": [{"q": {"_id": 1}}, {"q": {"a": 2}}]}
        ) == [("c", shape_of({"_id": 1})), ("c", shape_of({"a": 2}))]
        assert shapes_of_command("delete", {"delete": "c", "deletes": [{"q": {"a": 1}}]}) == [
            ("c", shape_of({"a": 1}))
        ]
        assert shapes_of_command(
            "findAndModify", {"findAndModify": "c", "query": {"a": 1}, "sort": {"b": 1}}
        ) == [("c", shape_of({"a": 1}, {"b": 1}))]
        pipeline = [{"$match": {"a": 1}}, {"$sort": {"b": 1}}, {"$limit": 1}]
        assert shapes_of_command("aggregate", {"aggregate": "c", "pipeline": pipeline}) == [
            ("c", shape_of({"a": 1}, {"b": 1}))
        ]
        count = [{"$match": {}}, {"$group": {"_id": 1, "n": {"$sum": 1}}}]
        assert shapes_of_command("aggregate", {"aggregate": "c", "pipeline": count}) == [
            ("c", Shape())
        ]
        assert shapes_of_command("aggregate", {"aggregate": 1, "pipeline": []}) == []
        assert shapes_of_command("insert", {"insert": "c", "documents": []}) == []

    def test_recorder_pools_declared_and_created_indexes_and_allow_lists(self) -> None:
        recorder = Recorder(declared={"courses": {(("state", 1), ("sort_key", -1))}})
        recorder.observe("x_g1", "find", {"find": "courses", "filter": {"state": 1}}, "s1")
        recorder.observe("x_g1", "find", {"find": "lessons", "filter": {"course_id": 1}}, "s2")
        recorder.observe("x_g2", "find", {"find": "lessons", "filter": {"course_id": 2}}, "s3")
        recorder.observe("x_meta", "find", {"find": "generations", "filter": {}}, "s4")
        recorder.observe("x_g1", "find", {"find": "parked_events", "filter": {}}, "s5")
        assert [(f.collection, f.shape.render(), f.sites) for f in recorder.unserved()] == [
            ("lessons", "filter {course_id: =}", ("s2", "s3"))
        ]
        index = {"createIndexes": "lessons", "indexes": [{"key": {"course_id": 1}, "name": "c"}]}
        recorder.observe("other_g5", "createIndexes", index, "s6")
        assert recorder.unserved() == []
        assert recorder.allowed == {"generations": 1, "parked_events": 1}

    def test_known_gaps_are_reported_but_do_not_fail(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(KNOWN_GAPS, ("things", "filter {a: =}"), "a debt")
        recorder = Recorder()
        recorder.observe("db", "find", {"find": "things", "filter": {"a": 1}}, "here")
        [finding] = recorder.findings()
        assert finding.known_gap == "a debt"
        assert recorder.unserved() == []

    def test_the_projections_declared_indexes_are_read_without_a_database(self) -> None:
        declared = declared_indexes()
        assert (("lesson_id", 1), ("sort_key", 1)) in declared["comments"]
        assert (("state", 1), ("sort_key", -1), ("search_text", 1)) in declared["courses"]


INNER_CONFTEST = """
pytest_plugins = ["tests.index_coverage"]
"""

INNER_TEST = """
from tests.index_coverage import RECORDER


def test_issues_an_unindexed_query(pytestconfig):
    recorder = pytestconfig.stash[RECORDER]
    command = {"find": "courses", "filter": {"title": "x"}, "sort": {"nope": 1}}
    recorder.observe("lf_g1", "find", command, "learnflow/queries/example.py:1 Example")
"""


def _run_inner(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(textwrap.dedent(INNER_CONFTEST))
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER_TEST))
    environ = {**os.environ, "PYTHONPATH": str(REPOSITORY), **env}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", "."],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_an_unserved_shape_fails_the_pytest_run(tmp_path: Path) -> None:
    result = _run_inner(tmp_path)
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert "index coverage: FAILED" in result.stdout
    assert "courses: filter {title: =} sort {nope: 1}" in result.stdout
    assert "at learnflow/queries/example.py:1 Example" in result.stdout


def test_the_plugin_switches_off_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEARNFLOW_INDEX_COVERAGE", raising=False)
    assert enabled()
    monkeypatch.setenv("LEARNFLOW_INDEX_COVERAGE", "0")
    assert not enabled()
