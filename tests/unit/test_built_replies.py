"""Replies kept with the cached document they were built from (queries/read_models.py)."""

from __future__ import annotations

from typing import Any

from learnflow.queries.read_models import BuiltFrom


def test_a_reply_is_reused_only_for_the_same_document_object() -> None:
    built = BuiltFrom(max_entries=10)
    calls: list[str] = []

    def build(doc: dict[str, Any]) -> str:
        calls.append(doc["title"])
        return f"reply for {doc['title']}"

    doc = {"_id": "c1", "title": "First"}
    assert built.get(doc, "GetCourse", build) == "reply for First"
    assert built.get(doc, "GetCourse", build) == "reply for First"
    assert calls == ["First"]
    # The cache replaced the document (a new object, even with equal content): built anew.
    changed = {"_id": "c1", "title": "Second"}
    assert built.get(changed, "GetCourse", build) == "reply for Second"
    assert built.get(dict(changed), "GetCourse", build) == "reply for Second"
    assert calls == ["First", "Second", "Second"]
    # Another purpose of the same document is its own entry.
    assert built.get(doc, "Other", lambda d: "other") == "other"


def test_the_entries_are_bounded_least_recently_used_first() -> None:
    built = BuiltFrom(max_entries=3)
    docs = [{"_id": str(i)} for i in range(5)]
    for doc in docs:
        built.get(doc, "p", lambda d: d["_id"])
        built.get(docs[0], "p", lambda d: "rebuilt")  # the first stays in use
    assert len(built) == 3
    assert built.get(docs[1], "p", lambda d: "built again") == "built again"  # was evicted
    assert built.get(docs[0], "p", lambda d: "again") == "0"
