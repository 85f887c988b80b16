"""Path templates, http rule extraction and route ordering."""

from __future__ import annotations

import dataclasses

import pytest
from starlette.applications import Starlette

from gateway.proxy import Gateway
from gateway.routing import (
    Match,
    MethodNotAllowed,
    Router,
    SegmentKind,
    TemplateError,
    parse_template,
)
from learnflow.v1 import audit_pb2, courses_pb2, discussion_pb2, identity_pb2, learning_pb2


def test_simple_variables_and_literals() -> None:
    t = parse_template("/v1/shelves/{shelf}/books/{book.id}")
    assert [s.kind for s in t.segments] == [
        SegmentKind.LITERAL,
        SegmentKind.LITERAL,
        SegmentKind.WILDCARD,
        SegmentKind.LITERAL,
        SegmentKind.WILDCARD,
    ]
    assert t.match("/v1/shelves/s%20one/books/b1") == {"shelf": "s one", "book.id": "b1"}
    assert t.match("/v1/shelves/s1/books") is None
    assert t.match("/v1/shelves//books/b1") is None  # `*` never matches an empty segment
    assert t.match("/v1/shelves/s1/books/b1/extra") is None
    # A literal matches as sent or percent-encoded, never as something else encoded.
    assert t.match("/v1/%73helves/s1/b%6F%6Fks/b1") == {"shelf": "s1", "book.id": "b1"}
    assert t.match("/v1/%73helve/s1/books/b1") is None
    assert t.match("/v1/shelves%2F/s1/books/b1") is None


def test_verb_is_not_swallowed_by_a_variable() -> None:
    t = parse_template("/v1/users/{user_id}:setRole")
    assert t.verb == "setRole"
    assert t.match("/v1/users/u1:setRole") == {"user_id": "u1"}
    assert t.match("/v1/users/u1") is None
    assert t.match("/v1/users/u1:other") is None
    plain = parse_template("/v1/courses/{course_id}")
    # A template without a verb keeps the colon as part of the value, like grpc-gateway.
    assert plain.match("/v1/courses/c1:publish") == {"course_id": "c1:publish"}


def test_variable_with_pattern_and_deep_wildcard() -> None:
    t = parse_template("/v1/{name=projects/*/docs/**}")
    assert t.match("/v1/projects/p/docs/a/b%2Fc") == {"name": "projects/p/docs/a/b%2Fc"}
    assert t.match("/v1/projects/p/docs") == {"name": "projects/p/docs"}
    assert t.match("/v1/projects/p/other/a") is None
    assert t.openapi_path() == "/v1/{name}"
    with_verb = parse_template("/v1/{name=shelves/*}:archive")
    assert with_verb.match("/v1/shelves/s1:archive") == {"name": "shelves/s1"}
    assert with_verb.openapi_path() == "/v1/{name}:archive"


def test_anonymous_wildcards() -> None:
    t = parse_template("/v1/*/things/**")
    assert t.variables == ()
    assert t.match("/v1/x/things/a/b/c") == {}
    assert t.match("/v1/x/other") is None
    assert t.openapi_path() == "/v1/*/things/**"


@pytest.mark.parametrize(
    "bad",
    [
        "v1/things",
        "/v1/{a",
        "/v1/{a={b}}",
        "/v1/**/x",
        "/v1/things:",
        "/v1/{a}/{a}",
        "/v1/{1a}",
        "/v1//x",
    ],
)
def test_invalid_templates_are_rejected(bad: str) -> None:
    with pytest.raises(TemplateError):
        parse_template(bad)


async def test_routes_from_reflection_include_additional_bindings_and_custom(
    app: Starlette,
) -> None:
    gateway: Gateway = app.state.gateway
    registry = await gateway.wait_loaded()
    routes = {(r.http_method, r.template.source): r for r in registry.router.routes}
    assert ("GET", "/v1/things/{thing_id}") in routes
    assert routes[("GET", "/v1/things/{thing_id}")].additional
    assert routes[("SEARCH", "/v1/{name=projects/*}/search")].method.name == "GetResource"
    assert routes[("PATCH", "/v1/things/{thing.id}")].body == "thing"
    assert routes[("GET", "/v1/things/{thing_id}/inner")].response_body == "inner"
    # Methods without an http option get no route.
    assert all(r.method.name != "Hidden" for r in registry.router.routes)


async def test_longest_literal_wins_and_methods_are_distinguished(app: Starlette) -> None:
    gateway: Gateway = app.state.gateway
    router = (await gateway.wait_loaded()).router
    featured = router.match("GET", "/v1/things/featured")
    assert isinstance(featured, Match) and featured.route.method.name == "GetFeatured"
    other = router.match("GET", "/v1/things/t1")
    assert isinstance(other, Match) and other.route.method.name == "GetThing"
    publish = router.match("POST", "/v1/things/t1:publish")
    assert isinstance(publish, Match) and publish.params == {"thing_id": "t1"}
    stream = router.match("GET", "/v1/things:stream")
    assert isinstance(stream, Match) and stream.route.method.name == "StreamThings"
    wrong = router.match("PUT", "/v1/things:stream")
    assert isinstance(wrong, MethodNotAllowed) and wrong.allowed == ("GET",)
    assert router.match("GET", "/v2/unknown") is None


def _linear_match(router: Router, http_method: str, path: str) -> Match | MethodNotAllowed | None:
    """The reference: every route in order, as the router did before it indexed them."""
    allowed: list[str] = []
    for route in router.routes:
        params = route.template.match(path)
        if params is None:
            continue
        if route.http_method == http_method:
            return Match(route, params)
        if route.http_method not in allowed:
            allowed.append(route.http_method)
    return MethodNotAllowed(tuple(allowed)) if allowed else None


def test_the_indexed_router_answers_exactly_as_a_scan_of_every_route() -> None:
    methods = [
        method
        for module in (courses_pb2, identity_pb2, learning_pb2, discussion_pb2, audit_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    ]
    deep = parse_template("/v1/{name=files/**}")
    router = Router(
        [
            *Router.for_methods(methods).routes,
            # A `**` template: paths longer than every fixed template still reach it.
            dataclasses.replace(Router.for_methods(methods).routes[0], template=deep),
        ]
    )
    paths = {"/", "", "v1/courses", "/v1/files", "/v1/files/a/b/c/d/e/f/g/h/i/j:x"}
    for route in router.routes:
        concrete = route.template.openapi_path().replace("{", "").replace("}", "")
        paths |= {concrete, concrete + ":publish", concrete + "/x", concrete[:-1], concrete + "/"}
        paths.add(concrete.replace("/v1/", "/v1/%63"))  # an encoded literal
    assert len(paths) > 150
    compared = 0
    for path in sorted(paths):
        for verb in ("GET", "POST", "PATCH", "DELETE"):
            assert router.match(verb, path) == _linear_match(router, verb, path), (verb, path)
            compared += 1
    # Something matched, something was refused by method, something found nothing.
    results = [router.match("GET", p) for p in paths]
    assert any(isinstance(r, Match) for r in results)
    assert any(isinstance(r, MethodNotAllowed) for r in results)
    assert any(r is None for r in results)
    assert len(router.candidates("/v1/courses/c1")) < len(router.routes) / 3
