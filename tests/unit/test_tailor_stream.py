"""The tail's bytes are a valid JSON prefix at every moment and a valid document when closed."""

from __future__ import annotations

import json

from tailor import stream


def test_header_opens_an_object_with_the_subscription_id_and_a_hits_array() -> None:
    assert stream.header("abc") == b'{"subscription_id": "abc", "hits": [\n'


def test_header_plus_hits_plus_footer_is_valid_json() -> None:
    body = stream.header("abc") + stream.encode_hits([{"a": 1}], first=True) + stream.encode_hits([{"b": 2}, {"c": 3}], first=False) + stream.FOOTER
    assert json.loads(body) == {"subscription_id": "abc", "hits": [{"a": 1}, {"b": 2}, {"c": 3}]}


def test_heartbeats_between_hits_keep_the_document_valid() -> None:
    body = stream.header("x") + stream.HEARTBEAT + stream.encode_hits([1], True) + stream.HEARTBEAT + stream.FOOTER
    assert json.loads(body)["hits"] == [1]


def test_no_hits_encode_to_nothing() -> None:
    assert stream.encode_hits([], first=False) == b""


def test_non_ascii_is_sent_as_utf8() -> None:
    assert "straße".encode() in stream.encode_hits([{"t": "straße"}], first=True)
