"""The router alone: paths, converters, conflicts found when a route is added, url building."""

from __future__ import annotations

import re
import uuid

import pytest

from netassist.web.routing import BuildError, Converter, RouteConflict, Router


def handler(name: str):
    def view(request, **params):
        return name

    view.__name__ = view.__qualname__ = name
    return view


def router_with(*routes: tuple[str, list[str]]) -> Router:
    router = Router()
    for number, (path, methods) in enumerate(routes):
        router.add(path, handler(f"r{number}"), methods)
    return router


def found(router: Router, method: str, path: str):
    match = router.match(method, path)
    return None if match is None else (match[0].endpoint, match[1])


def test_static_and_dynamic_paths_with_every_built_in_converter():
    router = router_with(
        ("/", ["GET"]),
        ("/users/<int:id>", ["GET"]),
        ("/users/<name>", ["GET"]),
        ("/price/<float:amount>", ["GET"]),
        ("/files/<path:rest>", ["GET"]),
        ("/items/<uuid:key>", ["GET"]),
        ("/tags/<str:tag>/posts", ["GET"]),
    )
    key = uuid.uuid4()
    assert found(router, "GET", "/") == ("r0", {})
    assert found(router, "GET", "/users/42") == ("r1", {"id": 42})
    assert found(router, "GET", "/users/bob") == ("r2", {"name": "bob"})
    assert found(router, "GET", "/price/9.50") == ("r3", {"amount": 9.5})
    assert found(router, "GET", "/files/a/b/c.txt") == ("r4", {"rest": "a/b/c.txt"})
    assert found(router, "GET", f"/items/{key}") == ("r5", {"key": key})
    assert found(router, "GET", "/tags/中文/posts") == ("r6", {"tag": "中文"})
    # What the converters refuse:
    assert found(router, "GET", "/price/9") is None
    assert found(router, "GET", "/items/not-a-uuid") is None
    assert found(router, "GET", "/files/") is None
    assert found(router, "GET", "/users/") is None
    assert found(router, "GET", "/users/a/b") is None


def test_int_takes_ascii_digits_only_and_too_many_digits_fall_through():
    router = router_with(("/n/<int:n>", ["GET"]), ("/n/<s>", ["GET"]))
    assert found(router, "GET", "/n/٣") == ("r1", {"s": "٣"})  # Arabic-Indic three
    # int() refuses more than 4300 digits: the next route takes it, nothing crashes.
    assert found(router, "GET", "/n/" + "9" * 5000)[0] == "r1"


def test_a_converter_that_refuses_a_value_passes_on_to_the_next_route():
    class Even(Converter):
        regex = "[0-9]+"

        def to_python(self, value):
            if int(value) % 2:
                raise ValueError("odd")
            return int(value)

    router = Router()
    router.converters["even"] = Even
    router.add("/n/<even:n>", handler("even"))
    router.add("/n/<int:n>", handler("any"))
    assert found(router, "GET", "/n/4") == ("even", {"n": 4})
    assert found(router, "GET", "/n/5") == ("any", {"n": 5})


def test_custom_converter_round_trip_and_a_capturing_regex_is_refused():
    class Lang(Converter):
        regex = "(?:zh|en)(?:-[A-Z]{2})?"

        def to_python(self, value):
            return value.lower()

    router = Router()
    router.converters["lang"] = Lang
    router.add("/<lang:code>/about", handler("about"))
    assert found(router, "GET", "/zh-CN/about") == ("about", {"code": "zh-cn"})
    assert found(router, "GET", "/fr/about") is None
    assert router.build("about", {"code": "en"}) == "/en/about"

    class Capturing(Converter):
        regex = "(a|b)"

    router.converters["cap"] = Capturing
    with pytest.raises(ValueError, match=r"must not capture"):
        router.add("/x/<cap:v>", handler("x"))


def test_methods_head_comes_with_get_and_allowed_lists_them():
    router = router_with(("/a", ["GET"]), ("/a", ["POST"]), ("/b/<int:id>", ["PUT", "DELETE"]))
    assert found(router, "HEAD", "/a") == ("r0", {})
    assert found(router, "POST", "/a") == ("r1", {})
    assert found(router, "PATCH", "/a") is None
    assert router.allowed("/a") == {"GET", "HEAD", "POST"}
    assert router.allowed("/b/3") == {"PUT", "DELETE"}
    assert router.allowed("/b/x") == set()
    assert router.allowed("/nothing") == set()


def test_more_leading_literal_segments_win_then_registration_order():
    router = router_with(("/<lang>/about", ["GET"]), ("/docs/<page>", ["GET"]))
    assert found(router, "GET", "/docs/about") == ("r1", {"page": "about"})
    assert found(router, "GET", "/en/about") == ("r0", {"lang": "en"})
    router = router_with(("/u/<int:id>", ["GET"]), ("/u/<name>", ["GET"]))
    assert found(router, "GET", "/u/7") == ("r0", {"id": 7})
    assert found(router, "GET", "/u/seven") == ("r1", {"name": "seven"})


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        ("/users/<int:id>", "/users/<int:uid>", "already routed"),
        ("/about", "/about", "already routed"),
        ("/users/<name>", "/users/<int:id>", "can never match"),
        ("/u/<a>/<b>", "/u/<x>/edit", "can never match"),
        ("/files/<path:p>", "/files/<name>/raw", "can never match"),
    ],
)
def test_conflicts_are_errors_when_the_second_route_is_added(first, second, message):
    router = Router()
    router.add(first, handler("first"))
    with pytest.raises(RouteConflict, match=message) as caught:
        router.add(second, handler("second"))
    assert "second" in str(caught.value) and "first" in str(caught.value)


def test_no_conflict_where_methods_or_shapes_differ_or_a_head_only_came_along():
    router = Router()
    router.add("/users/<int:id>", handler("get"), ["GET"])
    router.add("/users/<int:id>", handler("delete"), ["DELETE"])
    router.add("/users/<int:id>/posts", handler("posts"))
    router.add("/users/<int:id>", handler("head"), ["HEAD"])  # asks for what GET brought along
    router.add("/users/<name>", handler("by_name"))  # narrower first, then the wider
    assert found(router, "HEAD", "/users/1") == ("head", {"id": 1})
    assert found(router, "GET", "/users/1") == ("get", {"id": 1})
    with pytest.raises(RouteConflict, match="endpoint 'get' is taken"):
        router.add("/other", handler("get"))


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("users", "starts with /"),
        ("/u/<nope:x>", "unknown converter 'nope'"),
        ("/u/<a>/<a>", "appears twice"),
        ("/u/<1bad>", "cannot read the parameter"),
        ("/u/<a", "cannot read the parameter"),
    ],
)
def test_bad_rules_say_what_is_wrong(path, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Router().add(path, handler("x"))


def test_methods_must_be_a_list_of_names():
    with pytest.raises(TypeError, match=r"methods=\['GET'\]"):
        Router().add("/", handler("x"), "GET")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a method name"):
        Router().add("/", handler("x"), ["G ET"])


def test_build_quotes_parameters_and_puts_the_rest_in_the_query():
    router = router_with(
        ("/users/<int:id>", ["GET"]), ("/files/<path:p>", ["GET"]), ("/t/<name>", ["GET"])
    )
    assert router.build("r0", {"id": 5, "tab": "posts"}) == "/users/5?tab=posts"
    assert router.build("r1", {"p": "a b/中.txt"}) == "/files/a%20b/%E4%B8%AD.txt"
    assert router.build("r2", {"name": "a b?c"}) == "/t/a%20b%3Fc"
    assert router.build("r2", {"name": "x", "tag": ["a", "b"]}) == "/t/x?tag=a&tag=b"
    with pytest.raises(BuildError, match="needs a value for 'id'"):
        router.build("r0", {})
    with pytest.raises(BuildError, match="does not fit"):
        router.build("r0", {"id": "abc"})
    with pytest.raises(BuildError, match="does not fit"):  # the path would not route back
        router.build("r2", {"name": "a/b"})
    with pytest.raises(BuildError, match="no route is named"):
        router.build("nope", {})


def test_a_handler_on_two_paths_builds_its_first():
    router = Router()
    home = handler("home")
    router.add("/", home)
    router.add("/index.html", home)
    assert router.build("home", {}) == "/"
    assert found(router, "GET", "/index.html") == ("home", {})


def test_the_last_of_200_routes_is_found_by_one_match_per_node():
    router = Router()
    for number in range(200):
        router.add(f"/r{number}/<int:id>", handler(f"r{number}"))
    for number in range(200):
        router.add(f"/api/v1/thing{number}/<int:id>", handler(f"t{number}"))
    assert found(router, "GET", "/r199/5") == ("r199", {"id": 5})
    assert found(router, "GET", "/api/v1/thing199/5") == ("t199", {"id": 5})
    assert found(router, "GET", "/r200/5") is None
    # Each group holds one rule: a dict lookup, not a 200-way alternation, does the choosing.
    assert len(router._groups["/api/v1/thing199/"].rules) == 1
