"""Page sizes and opaque page tokens: round trips, scope checks, and tampered tokens."""

from __future__ import annotations

import base64
import json

import pytest

from learnflow.errors import InvalidArgument
from learnflow.queries.pagination import MAX_PAGE_SIZE, decode_token, encode_token, page_size


@pytest.mark.parametrize(
    ("asked", "given"), [(0, 20), (1, 1), (100, 100), (101, 100), (10**9, 100)]
)
def test_page_size_defaults_and_caps(asked: int, given: int) -> None:
    assert page_size(asked, default=20) == given
    assert MAX_PAGE_SIZE == 100


def test_a_negative_page_size_is_refused() -> None:
    with pytest.raises(InvalidArgument) as caught:
        page_size(-1, default=20)
    assert [v.field for v in caught.value.violations] == ["page_size"]


@pytest.mark.parametrize(
    "position", ["2026-03-01T10:00:00.000000Z|c0ffee", "", "ünï|côdé", 0, 41, 2**63 - 1, -5]
)
def test_a_token_round_trips_its_position(position: str | int) -> None:
    token = encode_token(position, "published|tag=rust")
    assert decode_token(token, "published|tag=rust") == position
    assert type(decode_token(token, "published|tag=rust")) is type(position)


def test_a_token_is_url_safe_without_padding() -> None:
    for n in range(12):  # every padding length
        token = encode_token("x" * n + "?>~", "q")
        assert "=" not in token
        assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        assert decode_token(token, "q") == "x" * n + "?>~"


def test_no_token_is_the_first_page() -> None:
    assert decode_token("", "any") is None


def test_a_token_of_another_query_is_refused() -> None:
    token = encode_token("k", "published|tag=rust")
    with pytest.raises(InvalidArgument) as caught:
        decode_token(token, "published|tag=go")
    assert [v.field for v in caught.value.violations] == ["page_token"]


def forged(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def fingerprint_of(scope: str) -> object:
    raw = encode_token(0, scope)
    return json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))["q"]


@pytest.mark.parametrize(
    "token",
    [
        "not base64 at all!",
        "a",  # one character is no base64 quantum
        "____",  # decodes to bytes that are not UTF-8 JSON
        forged([1, 2]),
        forged("k"),
        forged(None),
        forged({"k": "x"}),  # no fingerprint
        forged({"k": "x", "q": None}),
        base64.urlsafe_b64encode(b'{"k": 1, ').decode(),  # truncated JSON
    ],
)
def test_a_malformed_token_is_refused_not_a_crash(token: str) -> None:
    with pytest.raises(InvalidArgument):
        decode_token(token, "scope")


@pytest.mark.parametrize("position", [None, True, False, 1.5, [1], {"a": 1}])
def test_a_token_whose_position_is_not_a_string_or_integer_is_refused(position: object) -> None:
    token = forged({"k": position, "q": fingerprint_of("scope")})
    with pytest.raises(InvalidArgument):
        decode_token(token, "scope")


def test_a_token_without_a_position_is_refused() -> None:
    with pytest.raises(InvalidArgument):
        decode_token(forged({"q": fingerprint_of("scope")}), "scope")


def number_token(digits: str) -> str:
    fp = json.dumps(fingerprint_of("scope"))
    return base64.urlsafe_b64encode(f'{{"k": {digits}, "q": {fp}}}'.encode()).decode()


@pytest.mark.parametrize("digits", ["9" * 5000, "1e999", "-1e999", "NaN", "Infinity"])
def test_a_number_json_cannot_hold_as_an_int_is_refused_not_a_crash(digits: str) -> None:
    """JSON numbers are unbounded: Python refuses to parse more than 4300 digits (ValueError),
    and 1e999 parses as a float infinity."""
    with pytest.raises(InvalidArgument):
        decode_token(number_token(digits), "scope")


@pytest.mark.parametrize("digits", ["9" * 40, str(2**63), str(-(2**63) - 1)])
def test_an_integer_position_outside_int64_is_refused(digits: str) -> None:
    with pytest.raises(InvalidArgument):
        decode_token(number_token(digits), "scope")
