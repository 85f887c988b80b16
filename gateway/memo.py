"""Remembered transcodings: the JSON body (and its ETag) of a reply the backend sent before.

A reply's JSON is a pure function of its serialized bytes, the method's output type and the
route's `response_body`: the same bytes always print the same JSON. Hot reads (a popular
course, a lesson many learners open) come back byte for byte the same, and turning them into
JSON is most of the gateway's own work per request (protobuf's `json_format` walks every
field in Python). So a reply is looked up by its bytes first; only a new one is parsed,
printed, encoded and digested.

Nothing is shared between callers that they did not already receive: the key *is* the reply
the backend just sent to this caller. Bounded by bytes (least recently used out); a reply
larger than a sixteenth of the budget is never kept. One memo per contract (`Registry`): a
reloaded contract starts empty, since its JSON names may differ.
"""

from __future__ import annotations

import gzip
from collections import OrderedDict

Key = tuple[str, bytes]  # (route identity, reply bytes)


class Printed:
    """A reply's JSON body and ETag, and (made on first use) its gzip-coded form: a reply
    served many times is compressed once."""

    __slots__ = ("_gzipped", "body", "etag")

    def __init__(self, body: bytes, etag: str) -> None:
        self.body = body
        self.etag = etag
        self._gzipped: bytes | None = None

    @property
    def gzipped(self) -> bytes:
        if self._gzipped is None:
            # Level 6 (zlib's default) and no timestamp: the same body always codes the same.
            self._gzipped = gzip.compress(self.body, compresslevel=6, mtime=0)
        return self._gzipped

    @property
    def gzip_etag(self) -> str:
        """The coded representation's own strong validator (RFC 9110 8.8.3.3)."""
        return self.etag[:-1] + '-gzip"'


class JsonMemo:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_bytes // 16
        self.size = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Key, Printed] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> Printed | None:
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return found

    def put(self, key: Key, printed: Printed) -> None:
        cost = _cost(key, printed)
        if cost > self.max_entry_bytes or key in self._entries:
            return
        self._entries[key] = printed
        self.size += cost
        while self.size > self.max_bytes:
            old_key, old = self._entries.popitem(last=False)
            self.size -= _cost(old_key, old)


def _cost(key: Key, printed: Printed) -> int:
    # What the entry keeps alive, give or take the objects' headers; twice the body for the
    # gzip-coded copy it may get later (never larger than the body for what is worth coding).
    return len(key[0]) + len(key[1]) + 2 * len(printed.body) + len(printed.etag) + 200
