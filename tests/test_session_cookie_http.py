"""A browser's session through the gateway: the refresh token only ever travels as an
HttpOnly cookie (REFRESH_TOKEN_DELIVERY_COOKIE), set and read through the gateway's generic
allow-lists (LEARNFLOW_GATEWAY_FORWARD_COOKIES, LEARNFLOW_GATEWAY_METADATA_HEADERS), never in a
body or a header a script could read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from http.cookies import SimpleCookie

import httpx
import pytest

from learnflow.server import Backend
from tests.gateway_support import PASSWORD, RunningServer, register_over_http, running_gateway

COOKIE = "REFRESH_TOKEN_DELIVERY_COOKIE"
BROWSER_GATEWAY = {
    "LEARNFLOW_GATEWAY_FORWARD_COOKIES": "lf_refresh",
    "LEARNFLOW_GATEWAY_METADATA_HEADERS": "set-cookie",
}


@pytest.fixture(scope="module")
async def gateway(backend: Backend) -> AsyncIterator[RunningServer]:
    async with running_gateway(f"127.0.0.1:{backend.port}", environ=BROWSER_GATEWAY) as running:
        yield running


@pytest.fixture
async def http(gateway: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        yield client


def refresh_cookies(response: httpx.Response) -> dict[str, SimpleCookie]:
    """The response's Set-Cookie headers for lf_refresh, by Path."""
    found: dict[str, SimpleCookie] = {}
    for header in response.headers.get_list("set-cookie"):
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        found[jar["lf_refresh"]["path"]] = jar
    return found


def token_of(response: httpx.Response) -> str:
    return next(iter(refresh_cookies(response).values()))["lf_refresh"].value


async def test_login_sets_an_httponly_strict_cookie_scoped_to_refresh_and_revoke(
    http: httpx.AsyncClient,
) -> None:
    user = await register_over_http(http, name="Cookie Student")
    login = await http.post(
        "/v1/sessions",
        json={"email": user.email, "password": PASSWORD, "refreshTokenDelivery": COOKIE},
    )
    assert login.status_code == 200, login.text
    body = login.json()
    assert body["accessToken"] and not body.get("refreshToken")
    cookies = refresh_cookies(login)
    assert set(cookies) == {"/v1/sessions:refresh", "/v1/sessions:revoke"}
    for jar in cookies.values():
        morsel = jar["lf_refresh"]
        assert morsel.value.startswith("rt_")
        assert morsel["httponly"] and morsel["secure"]
        assert morsel["samesite"] == "Strict"
        assert int(morsel["max-age"]) > 0
    # Never also as a metadata echo that fetch() could read.
    assert not any(k.lower().startswith("grpc-metadata-set-cookie") for k in login.headers)


async def test_refresh_by_cookie_rotates_it_and_a_spent_cookie_ends_the_family(
    http: httpx.AsyncClient,
) -> None:
    user = await register_over_http(http, name="Cookie Refresher")
    login = await http.post(
        "/v1/sessions",
        json={"email": user.email, "password": PASSWORD, "refreshTokenDelivery": COOKIE},
    )
    first = token_of(login)
    refreshed = await http.post(
        "/v1/sessions:refresh",
        json={"refreshTokenDelivery": COOKIE},
        headers={"Cookie": f"theme=dark; lf_refresh={first}"},
    )
    assert refreshed.status_code == 200, refreshed.text
    assert not refreshed.json().get("refreshToken")
    second = token_of(refreshed)
    assert second != first
    me = await http.get(
        "/v1/users/me", headers={"Authorization": f"Bearer {refreshed.json()['accessToken']}"}
    )
    assert me.status_code == 200, me.text

    spent = await http.post(
        "/v1/sessions:refresh",
        json={"refreshTokenDelivery": COOKIE},
        headers={"Cookie": f"lf_refresh={first}"},
    )
    assert spent.status_code == 401, spent.text
    # Reuse revoked the family: the rotated cookie is dead too.
    after = await http.post(
        "/v1/sessions:refresh",
        json={"refreshTokenDelivery": COOKIE},
        headers={"Cookie": f"lf_refresh={second}"},
    )
    assert after.status_code == 401, after.text


async def test_refresh_without_or_with_a_junk_cookie_is_401(http: httpx.AsyncClient) -> None:
    for cookie in ("", "lf_refresh=", "lf_refresh=not-a-token", "other=rt_abc"):
        answer = await http.post(
            "/v1/sessions:refresh",
            json={"refreshTokenDelivery": COOKIE},
            headers={"Cookie": cookie} if cookie else {},
        )
        assert answer.status_code == 401, (cookie, answer.text)
        assert "not-a-token" not in answer.text


async def test_a_cookie_not_on_the_allow_list_is_not_forwarded(
    http: httpx.AsyncClient,
) -> None:
    user = await register_over_http(http, name="Cookie Name Check")
    login = await http.post(
        "/v1/sessions",
        json={"email": user.email, "password": PASSWORD, "refreshTokenDelivery": COOKIE},
    )
    # The same valid token under another cookie name never reaches the server.
    answer = await http.post(
        "/v1/sessions:refresh",
        json={"refreshTokenDelivery": COOKIE},
        headers={"Cookie": f"lf_other={token_of(login)}"},
    )
    assert answer.status_code == 401, answer.text


async def test_revoke_by_cookie_logs_out_and_clears_the_cookie(http: httpx.AsyncClient) -> None:
    user = await register_over_http(http, name="Cookie Leaver")
    login = await http.post(
        "/v1/sessions",
        json={"email": user.email, "password": PASSWORD, "refreshTokenDelivery": COOKIE},
    )
    token = token_of(login)
    bearer = {"Authorization": f"Bearer {login.json()['accessToken']}"}
    revoked = await http.post(
        "/v1/sessions:revoke",
        json={"refreshTokenDelivery": COOKIE},
        headers={**bearer, "Cookie": f"lf_refresh={token}"},
    )
    assert revoked.status_code == 200, revoked.text
    cleared = refresh_cookies(revoked)
    assert set(cleared) == {"/v1/sessions:refresh", "/v1/sessions:revoke"}
    assert all(jar["lf_refresh"]["max-age"] == "0" for jar in cleared.values())
    dead = await http.post(
        "/v1/sessions:refresh",
        json={"refreshTokenDelivery": COOKIE},
        headers={"Cookie": f"lf_refresh={token}"},
    )
    assert dead.status_code == 401, dead.text
    # Logging out again, with no cookie left, still answers "logged out" and clears.
    again = await http.post(
        "/v1/sessions:revoke", json={"refreshTokenDelivery": COOKIE}, headers=bearer
    )
    assert again.status_code == 200, again.text
    assert refresh_cookies(again)


async def test_change_password_hands_the_new_session_over_as_a_cookie(
    http: httpx.AsyncClient,
) -> None:
    user = await register_over_http(http, name="Cookie Changer")
    changed = await http.post(
        "/v1/users/me:changePassword",
        json={
            "currentPassword": PASSWORD,
            "newPassword": "another-long-pass",
            "refreshTokenDelivery": COOKIE,
        },
        headers={"Authorization": f"Bearer {user.access_token}"},
    )
    assert changed.status_code == 200, changed.text
    assert not changed.json().get("refreshToken")
    refreshed = await http.post(
        "/v1/sessions:refresh",
        json={"refreshTokenDelivery": COOKIE},
        headers={"Cookie": f"lf_refresh={token_of(changed)}"},
    )
    assert refreshed.status_code == 200, refreshed.text


async def test_an_unknown_delivery_value_is_a_field_error(http: httpx.AsyncClient) -> None:
    answer = await http.post(
        "/v1/sessions",
        json={"email": "x@example.com", "password": PASSWORD, "refreshTokenDelivery": 9},
    )
    assert answer.status_code == 400, answer.text
    fields = [v["field"] for d in answer.json()["details"] for v in d.get("fieldViolations", [])]
    assert fields == ["refreshTokenDelivery"]
