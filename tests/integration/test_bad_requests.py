"""Malformed HTTP requests to a real ``estrom up`` get a status and a JSON body, never a hang, an HTML page
or a connection closed unanswered (the fuzzer's findings, sent byte for byte over raw sockets).
"""

from __future__ import annotations

import json
import socket
from typing import Any, Dict, Tuple

from tests.integration.conftest import Estrom

Answer = Tuple[int, Dict[str, str], Any]

ANSWER_WITHIN_S = 10.0  # an answer later than this is a hang (the fuzzer's bound)


def exchange(port: int, raw: bytes) -> Answer:
    """Send ``raw`` and read the whole answer (the request asks for ``Connection: close``): status, headers, JSON body."""
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_WITHIN_S) as sock:
        sock.sendall(raw)
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                raise AssertionError(f"no complete answer within {ANSWER_WITHIN_S} s, got {data!r}") from None
            if not chunk:
                break
            data += chunk
    assert data, "the connection was closed with no answer"
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    if headers.get("transfer-encoding") == "chunked":
        body = unchunk(body)
    assert headers.get("content-type") == "application/json", f"not a JSON answer: {data!r}"
    return int(status_line.split()[1]), headers, json.loads(body)


def unchunk(data: bytes) -> bytes:
    """The body of a complete chunked answer."""
    body = b""
    while True:
        size, _, data = data.partition(b"\r\n")
        if int(size, 16) == 0:
            return body
        body, data = body + data[:int(size, 16)], data[int(size, 16) + 2:]


def request(method: bytes, target: bytes, *headers: bytes, body: bytes = b"") -> bytes:
    """A raw HTTP/1.1 request that closes its connection; headers are sent as given, bytes included."""
    head = [method + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close", *headers]
    if body and not any(h.lower().startswith(b"transfer-encoding") for h in headers):
        head.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def assert_method_refused(answer: Answer, allow: str) -> None:
    status, headers, body = answer
    assert status == 405
    assert headers["allow"] == allow
    assert body["error"] == "estrom.error.method_not_allowed"
    assert body["part"] == "method"


# --- headers and arguments that are not text ----------------------------------------------------------------------

def test_a_tail_with_a_non_utf8_last_event_id_is_answered_400(estrom: Estrom) -> None:
    status, _, body = exchange(estrom.tailor_port, request(b"GET", b"/api/v0.1/docs?i=x&q=foo", b"Last-Event-ID: \xa6"))
    assert status == 400
    assert body["error"] == "estrom.error.invalid_argument"
    assert body["part"] == "Last-Event-ID"


def test_a_tail_with_a_non_utf8_accept_is_answered_400(estrom: Estrom) -> None:
    status, _, body = exchange(estrom.tailor_port, request(b"GET", b"/api/v0.1/docs?i=x&q=foo", b"Accept: \xff\xfe"))
    assert status == 400
    assert body["part"] == "Accept"


def test_a_tail_whose_query_is_not_utf8_once_decoded_is_answered_400(estrom: Estrom) -> None:
    status, _, body = exchange(estrom.tailor_port, request(b"GET", b"/api/v0.1/docs?i=x&q=%C3%28"))
    assert status == 400
    assert body["part"] == "q"


def test_a_chunked_post_with_a_non_utf8_content_type_is_answered(estrom: Estrom) -> None:
    raw = request(b"POST", b"/api/v0.1/beat/badrequests", b"Content-Type: \xba", b"Transfer-Encoding: chunked",
                  body=b'7\r\n{"a":1}\r\n0\r\n\r\n')
    status, _, body = exchange(estrom.beater_port, raw)
    assert status == 200
    assert body["accepted"] == 1


def test_a_post_whose_content_type_twisted_cannot_parse_is_answered(estrom: Estrom) -> None:
    raw = request(b"POST", b"/api/v0.1/beat/badrequests", b"Content-Type: ;\xf3\xfc\xbe\xb6*", body=b'{"a":1}')
    status, _, body = exchange(estrom.beater_port, raw)
    assert status == 200
    assert body["accepted"] == 1


def test_a_post_to_an_index_that_is_not_utf8_is_answered_400(estrom: Estrom) -> None:
    status, _, body = exchange(estrom.beater_port, request(b"POST", b"/api/v0.1/beat/a%FF", body=b'{"a":1}'))
    assert status == 400
    assert body["error"] == "estrom.error.invalid_index"


# --- methods --------------------------------------------------------------------------------------------------------

def test_options_on_the_beater_is_a_json_405(estrom: Estrom) -> None:
    assert_method_refused(exchange(estrom.beater_port, request(b"OPTIONS", b"/api/v0.1/beat/fz0")), "POST")


def test_an_unknown_method_on_the_beater_is_a_json_405(estrom: Estrom) -> None:
    assert_method_refused(exchange(estrom.beater_port, request(b"BREW", b"/api/v0.1/beat/fz0")), "POST")


def test_delete_on_the_tailors_docs_is_a_json_405(estrom: Estrom) -> None:
    assert_method_refused(exchange(estrom.tailor_port, request(b"DELETE", b"/api/v0.1/docs?i=x&q=y")), "GET, HEAD")


def test_a_lowercase_get_on_the_tailor_is_a_json_405(estrom: Estrom) -> None:
    assert_method_refused(exchange(estrom.tailor_port, request(b"get", b"/api/v0.1/docs")), "GET, HEAD")


def test_post_on_the_health_of_either_service_is_a_json_405(estrom: Estrom) -> None:
    for port in (estrom.beater_port, estrom.tailor_port):
        assert_method_refused(exchange(port, request(b"POST", b"/api/v0.1/health", body=b"{}")), "GET, HEAD")


def test_post_star_on_either_service_is_a_json_405(estrom: Estrom) -> None:
    for port in (estrom.beater_port, estrom.tailor_port):
        raw = request(b"POST", b"*", b"Content-Type: application/json", body=b'{"a": 1}')
        assert_method_refused(exchange(port, raw), "OPTIONS")
