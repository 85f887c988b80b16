"""The refresh-token cookie: scoped to the contract's refresh and revoke paths, HttpOnly,
SameSite=Strict, and read back only when it looks like a refresh token."""

from __future__ import annotations

from learnflow.security.session_cookie import SessionCookie


def test_paths_come_from_the_contract_bindings() -> None:
    assert SessionCookie().paths == ("/v1/sessions:refresh", "/v1/sessions:revoke")


def test_set_and_clear_give_one_cookie_per_path() -> None:
    cookie = SessionCookie(name="lf_refresh", max_age_s=60, secure=True)
    set_ = cookie.set("rt_abc")
    assert [key for key, _ in set_] == ["set-cookie", "set-cookie"]
    assert set_[0][1] == (
        "lf_refresh=rt_abc; Path=/v1/sessions:refresh; Max-Age=60; HttpOnly; Secure; "
        "SameSite=Strict"
    )
    cleared = SessionCookie(secure=False).clear()
    assert all("Max-Age=0" in value and "Secure" not in value for _, value in cleared)
    assert all(value.startswith("lf_refresh=;") for _, value in cleared)


def test_read_takes_the_named_cookie_among_others() -> None:
    cookie = SessionCookie()
    metadata = [("x-request-id", "r"), ("cookie", "theme=dark; lf_refresh=rt_A-b_9; x=1")]
    assert cookie.read(metadata) == "rt_A-b_9"


def test_read_ignores_what_is_not_a_refresh_token() -> None:
    cookie = SessionCookie()
    for value in (
        "lf_refresh=",
        "lf_refresh=abc",
        "lf_refresh=rt_a b",
        "lf_refresh=rt_" + "a" * 200,
        "lf_refresh_x=rt_abc",
        "other=rt_abc",
    ):
        assert cookie.read([("cookie", value)]) == "", value
    assert cookie.read([("cookie-bin", b"lf_refresh=rt_abc")]) == ""
