"""A method an endpoint does not serve is answered 405 with ``Allow`` and a JSON body, on both services.

Twisted's own answers are an HTML "501 Huh?" page (any method but GET, HEAD and POST, lowercase
``get`` included), an HTML 405, and for ``POST *`` a 405 with no body at all.
"""

from __future__ import annotations

from typing import Tuple

from twisted.internet.testing import StringTransport

from estrom import auth
from estrom.web import JsonErrorsChannel
from router import contract
from tests.unit.test_web_channel import answer, beater_site_channel, connected, tailor_site_channel


def send(pair: Tuple[JsonErrorsChannel, StringTransport], request_line: bytes, extra: bytes = b"") -> Tuple[bytes, dict, dict]:
    channel, transport = pair
    channel.dataReceived(request_line + b"\r\nHost: x\r\n" + extra + b"\r\n")
    return answer(transport)


def assert_405(answered: Tuple[bytes, dict, dict], method: str, allow: bytes) -> dict:
    """A 405 naming the method, its Allow header and its body's ``allowed`` agreeing."""
    status, headers, body = answered
    assert status.startswith(b"HTTP/1.1 405 ")
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"allow"] == allow
    assert body["error"] == contract.ERROR_METHOD_NOT_ALLOWED == "estrom.error.method_not_allowed"
    assert body["part"] == "method"
    assert body["method"] == method
    assert body["allowed"] == allow.decode().split(", ")
    assert body["message"]
    return body


def test_delete_on_the_tailors_docs_is_a_json_405_allowing_get_and_head() -> None:
    assert_405(send(tailor_site_channel(), b"DELETE /api/v0.1/docs?i=x&q=y HTTP/1.1"), "DELETE", b"GET, HEAD")


def test_put_on_the_beaters_beat_is_a_json_405_allowing_post() -> None:
    body = assert_405(send(beater_site_channel(), b"PUT /api/v0.1/beat/idx HTTP/1.1"), "PUT", b"POST")
    assert "POST" in body["message"]


def test_get_on_the_beaters_beat_says_how_to_ingest() -> None:
    body = assert_405(send(beater_site_channel(), b"GET /api/v0.1/beat/idx HTTP/1.1"), "GET", b"POST")
    assert body["message"] == "use POST with a JSON object, a JSON array or NDJSON"


def test_options_on_the_beater_is_a_json_405() -> None:
    assert_405(send(beater_site_channel(), b"OPTIONS /api/v0.1/beat/idx HTTP/1.1"), "OPTIONS", b"POST")


def test_an_unknown_method_is_a_405_not_twisteds_501() -> None:
    assert_405(send(beater_site_channel(), b"BREW /api/v0.1/beat/idx HTTP/1.1"), "BREW", b"POST")


def test_a_lowercase_method_is_a_405_saying_methods_are_case_sensitive() -> None:
    body = assert_405(send(tailor_site_channel(), b"get /api/v0.1/docs HTTP/1.1"), "get", b"GET, HEAD")
    assert "case-sensitive" in body["message"]


def test_post_on_either_health_is_a_json_405() -> None:
    assert_405(send(tailor_site_channel(), b"POST /api/v0.1/health HTTP/1.1", b"Content-Length: 0\r\n"), "POST", b"GET, HEAD")
    assert_405(send(beater_site_channel(), b"POST /api/v0.1/health HTTP/1.1", b"Content-Length: 0\r\n"), "POST", b"GET, HEAD")


def test_head_on_a_get_endpoint_is_still_answered_from_get() -> None:
    """HEAD is not refused where GET is served: Twisted answers it from GET, without a body."""
    channel, transport = tailor_site_channel()
    channel.dataReceived(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, rest = transport.value().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"content-type: text/plain" in head.lower()
    assert rest == b""


def test_post_star_is_a_json_405_allowing_options() -> None:
    assert_405(send(beater_site_channel(), b"POST * HTTP/1.1", b"Content-Length: 0\r\n"), "POST", b"OPTIONS")


def test_options_star_is_still_answered_200() -> None:
    channel, transport = tailor_site_channel()
    channel.dataReceived(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 200 ")


def cors_tailor() -> Tuple[JsonErrorsChannel, StringTransport]:
    from twisted.internet.task import Clock

    from estrom.settings import Settings
    from tailor import http as tailor_http
    from tailor.subscriptions import SubscriptionHub

    root = tailor_http.Root(SubscriptionHub(), lambda: None, Clock(), Settings())
    return connected(auth.Cors(root, ["https://app.example"]))


def test_a_cors_preflight_is_still_answered_204() -> None:
    channel, transport = cors_tailor()
    channel.dataReceived(b"OPTIONS /api/v0.1/docs HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\n"
                         b"Access-Control-Request-Method: GET\r\n\r\n")
    head = transport.value().partition(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 204 ")
    assert b"access-control-allow-methods: get, options" in head


def test_options_that_is_not_a_preflight_is_a_json_405_with_the_cors_headers() -> None:
    status, headers, _ = send(cors_tailor(), b"OPTIONS /api/v0.1/docs HTTP/1.1", b"Origin: https://app.example\r\n")
    assert status.startswith(b"HTTP/1.1 405 ")
    assert headers[b"access-control-allow-origin"] == b"https://app.example"


def test_head_on_a_post_only_endpoint_is_a_json_405_not_a_500() -> None:
    """Twisted's Resource answers HEAD from a render_GET the endpoint lacks (a 500): here it is a 405."""
    channel, transport = beater_site_channel()
    channel.dataReceived(b"HEAD /api/v0.1/beat/idx HTTP/1.1\r\nHost: x\r\n\r\n")
    head = transport.value().partition(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 405 ")
    assert b"\r\nallow: post\r\n" in head + b"\r\n"
