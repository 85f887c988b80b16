"""Event keys and the consistency tokens that carry them."""

from __future__ import annotations

import pytest

from learnflow.errors import InvalidArgument
from learnflow.positions import CONSISTENCY_HEADER, ZERO, EventKey

INT64_MAX = 2**63 - 1


@pytest.mark.parametrize("key", [ZERO, EventKey(1, 2), EventKey(INT64_MAX, INT64_MAX)])
def test_a_token_round_trips(key: EventKey) -> None:
    assert EventKey.parse(key.token()) == key


def test_the_token_is_txid_dot_position() -> None:
    assert EventKey(1234, 56).token() == "1234.56"


def test_keys_order_by_transaction_then_position_numerically() -> None:
    keys = [EventKey(1000, 1), EventKey(999, 5), EventKey(999, 10), ZERO]
    assert sorted(keys) == [ZERO, EventKey(999, 5), EventKey(999, 10), EventKey(1000, 1)]
    # Not as text: "999" > "1000", and a later position of an earlier transaction is earlier.
    assert EventKey(999, 10) < EventKey(1000, 1)
    assert EventKey.parse("999.9") < EventKey.parse("1000.0")


def test_leading_zeros_name_the_same_key() -> None:
    assert EventKey.parse("007.010") == EventKey(7, 10)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "1",
        "1.",
        ".1",
        "1.2.3",
        "-1.2",
        "1.-2",
        "+1.2",
        "1.2 ",
        " 1.2",
        "1.2\n",
        "a.b",
        "1,2",
        "0x1.2",
        "1_000.2",
        f"{2**63}.1",
        f"1.{2**63}",
        "9" * 20 + ".1",
        "1." + "9" * 5000,
    ],
)
def test_a_malformed_token_names_the_header(token: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        EventKey.parse(token)
    assert [v.field for v in caught.value.violations] == [CONSISTENCY_HEADER]


def test_only_ascii_digits_make_a_token() -> None:
    with pytest.raises(InvalidArgument):
        EventKey.parse("\u0661.\u0662")


def test_the_largest_int64_parts_are_accepted() -> None:
    assert EventKey.parse(f"{INT64_MAX}.0") == EventKey(INT64_MAX, 0)
