"""JSON parsing with a nesting bound, checked before the parser runs.

Python's `json` recurses once per level: input nested a few thousand levels deep raises
RecursionError (a 500) instead of a parse error. A linear pre-scan of the bracket structure
(string literals removed first, all of it in C) refuses such input before `json.loads` sees it.
"""

from __future__ import annotations

import json
import re
from typing import Any

DEFAULT_MAX_DEPTH = 64

# A complete JSON string literal (escapes included); linear, no backtracking.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
# Bytes translation: `{}` become `[]`; everything else but brackets is deleted.
_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


class JsonTooDeep(ValueError):
    """The document nests arrays/objects deeper than allowed."""


def exceeds(text: str, max_depth: int) -> bool:
    """Whether `text` nests arrays/objects deeper than `max_depth` (for malformed input: whether
    a recursive parser could be led deeper than that before finding the error).

    Each `bytes.replace` pass strips one level of innermost pairs, so a document of depth d
    is consumed in d passes; what stays without pairs can only be unclosed brackets.
    """
    if text.count("[") + text.count("{") <= max_depth:
        return False
    skeleton = _STRING.sub("", text).encode("utf-8", "surrogatepass")
    brackets = skeleton.translate(_SQUARE, _NOT_BRACKET)
    if b"[" * (max_depth + 1) in brackets:  # that many opened in a row: no need to count
        return True
    for _ in range(max_depth + 1):
        if not brackets:
            return False
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            return brackets.count(b"[") > max_depth
        brackets = shorter
    return True


def loads(data: bytes | str, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """`json.loads` that raises JsonTooDeep beyond `max_depth` levels (ValueError otherwise)."""
    if isinstance(data, str):
        text = data
    else:
        text = data.decode(json.detect_encoding(data), "surrogatepass")
    if exceeds(text, max_depth):
        raise JsonTooDeep(f"nested deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except RecursionError:  # only if max_depth is set above what the stack allows
        raise JsonTooDeep(f"nested deeper than {max_depth} levels") from None
