"""The index-coverage plugin catches an unindexed query on the real store (FerretDB/MongoDB).

The test's own frames count as the product's for an isolated recorder, attached to this test's
client only, so the session's recorder (which counts learnflow frames) is not affected."""

from __future__ import annotations

import uuid

import pytest
from pymongo import AsyncMongoClient

from learnflow.projections.store import Document
from tests.conftest import MONGO_URL
from tests.index_coverage import RECORDER, CoverageListener, Recorder


def _this_file(filename: str) -> bool:
    return filename == __file__


async def test_an_unindexed_query_is_reported(pytestconfig: pytest.Config) -> None:
    recorder = Recorder(counts=_this_file)
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        MONGO_URL, serverSelectionTimeoutMS=3000, event_listeners=[CoverageListener(recorder)]
    )
    name = f"lfcover_{uuid.uuid4().hex[:8]}"
    things = client[name]["things"]  # a fresh collection: only the `_id` index
    try:
        await things.insert_one({"_id": "a", "title": "x", "nope": 1})
        found = await things.find({"title": "x"}).sort("nope", 1).to_list()  # unserved
        await things.find_one({"_id": "a"})  # served by `_id`
        await things.replace_one({"_id": "a", "e": {"$not": {"$gt": 3}}}, found[0])  # `_id`
    finally:
        await client.drop_database(name)
        await client.close()

    [finding] = recorder.unserved()
    assert (finding.collection, finding.shape.render(), finding.commands) == (
        "things",
        "filter {title: =} sort {nope: 1}",
        ("find",),
    )
    [site] = finding.sites
    line = _line_of("# unserved")
    assert site.startswith(f"tests/test_index_coverage_live.py:{line} ")
    assert site.endswith("test_an_unindexed_query_is_reported")
    assert len(recorder.observations) == 3

    session = pytestconfig.stash.get(RECORDER, None)
    if session is not None:  # on unless LEARNFLOW_INDEX_COVERAGE=0
        assert all(collection != "things" for collection, _ in session.observations)


def _line_of(text: str) -> int:
    with open(__file__, encoding="utf-8") as source:
        return next(n for n, line in enumerate(source, 1) if line.rstrip().endswith(text))
