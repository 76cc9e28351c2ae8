"""The path a user walks, end to end through a real Crossbar, Beater and Tailor."""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Dict, List

import ijson

from tests.integration.conftest import Estrom, http_get_json

HEADER = b'"hits": ['


def close_prefix(received: bytes) -> Dict[str, Any]:
    """Parse a tail's bytes as JSON by closing the open array: proves they are a valid prefix."""
    text = received.decode().rstrip()
    if text.endswith("]}"):
        return json.loads(text)
    if text.endswith(","):
        text = text[:-1]
    return json.loads(text + "]}")


def test_tail_answers_header_with_subscription_id_at_once(estrom: Estrom) -> None:
    """The header arrives before any document, and names the subscription."""
    tail = estrom.tail(i="events", q="header AND check")
    received = tail.read_until(HEADER)
    tail.close()
    assert tail.status == 200
    assert close_prefix(received)["hits"] == []
    assert len(close_prefix(received)["subscription_id"]) == 16


def test_matching_document_reaches_the_http_tail(estrom: Estrom) -> None:
    """A posted document matching the query is streamed to the open tail."""
    tail = estrom.tail(i="events", q="foo AND bar")
    tail.read_until(HEADER)
    status, answer = estrom.post("events", {"message": "bar and foo"})
    assert status == 200 and answer["accepted"] == 1 and answer["deliveries"] >= 1
    received = tail.read_until(b"bar and foo")
    tail.close()
    hits = close_prefix(received)["hits"]
    assert [h["_source"] for h in hits] == [{"message": "bar and foo"}]
    assert set(hits[0]) == {"_index", "_id", "_seq", "_beater", "_received", "_source"}
    assert hits[0]["_index"] == "events"


def test_non_matching_documents_are_not_delivered(estrom: Estrom) -> None:
    """Only matching documents are streamed; others are skipped."""
    tail = estrom.tail(i="events", q="alpha AND beta", limit=1)
    tail.read_until(HEADER)
    estrom.post("events", [{"message": "alpha only"}, {"message": "beta only"}, {"message": "alpha and beta"}])
    body = close_prefix(tail.read_all())
    assert [h["_source"]["message"] for h in body["hits"]] == ["alpha and beta"]


def test_limit_ends_the_stream_with_valid_json(estrom: Estrom) -> None:
    """With limit=N the response ends after N hits as one complete JSON document."""
    tail = estrom.tail(i="events", q="limited", limit=2)
    tail.read_until(HEADER)
    estrom.post("events", "\n".join(json.dumps({"n": i, "text": "limited"}) for i in range(3)), "application/x-ndjson")
    body = json.loads(tail.read_all())
    assert [h["_source"]["n"] for h in body["hits"]] == [0, 1]


def test_timeout_ends_the_stream_with_valid_json(estrom: Estrom) -> None:
    """With timeout=S the response ends after S seconds as complete JSON."""
    tail = estrom.tail(i="events", q="never-posted-term", timeout=0.5)
    body = json.loads(tail.read_all())
    assert body["hits"] == []


def test_equivalent_queries_share_one_id_over_http_and_wamp(estrom: Estrom) -> None:
    """`foo AND bar` over HTTP and `bar AND foo` over WAMP are one subscription, one topic."""
    tail = estrom.tail(i="events", q="shared AND topic")
    http_id = close_prefix(tail.read_until(HEADER))["subscription_id"]
    tail.close()
    [answer] = estrom.wamp("call", "estrom.register", json.dumps(["events", "topic AND shared"]))
    registration = answer["result"]
    assert registration["id"] == http_id
    assert registration["topic"] == f"docs-for-{http_id}"
    assert registration["index"] == "events"
    assert "canonical" in registration


def test_http_and_wamp_clients_of_one_subscription_both_receive(estrom: Estrom) -> None:
    """One document matching a shared subscription reaches the HTTP tail and the WAMP subscriber."""
    [answer] = estrom.wamp("call", "estrom.register", json.dumps(["events", "both AND receive"]))
    topic = answer["result"]["topic"]
    subscriber = estrom.wamp_subscriber(topic, count=1)
    tail = estrom.tail(i="events", q="receive AND both", limit=1)
    tail.read_until(HEADER)
    estrom.post("events", {"message": "both receive this"})
    http_hits = close_prefix(tail.read_all())["hits"]
    wamp_out, _ = subscriber.communicate(timeout=30)
    wamp_hits = [json.loads(line) for line in wamp_out.splitlines()]
    assert [h["_source"] for h in http_hits] == [{"message": "both receive this"}]
    assert [h["_source"] for h in wamp_hits] == [{"message": "both receive this"}]
    assert http_hits[0]["_id"] == wamp_hits[0]["_id"]


def test_ijson_yields_the_first_hit_while_the_response_is_open(estrom: Estrom) -> None:
    """ijson.items(stream, "hits.item") gives each hit as it arrives, long before the end."""
    from examples.tail_ijson import LiveStream, open_tail

    response = open_tail(f"http://127.0.0.1:{estrom.tailor_port}", "events", "ijson AND streaming")
    items = ijson.items(LiveStream(response), "hits.item")
    got: List[Any] = []
    reader = threading.Thread(target=lambda: got.append(next(items)), daemon=True)
    reader.start()
    time.sleep(0.3)  # the reader is blocked inside the open response
    estrom.post("events", {"message": "ijson streaming works"})
    reader.join(15)
    still_open = not response.isclosed()
    response.close()
    assert got and got[0]["_source"] == {"message": "ijson streaming works"}
    assert still_open


def test_bad_query_is_a_400_with_a_json_error(estrom: Estrom) -> None:
    """An unparsable query is refused over HTTP with a JSON body naming the problem."""
    tail = estrom.tail(i="events", q='title:"unclosed')
    body = json.loads(tail.read_all())
    assert tail.status == 400
    assert body["error"] == "estrom.error.invalid_query"
    assert body["message"]


def test_bad_query_over_wamp_is_an_invalid_query_error(estrom: Estrom) -> None:
    """An unparsable query is refused over WAMP with estrom.error.invalid_query."""
    [answer] = estrom.wamp("call", "estrom.register", json.dumps(["events", "(unbalanced"]))
    assert answer["error"] == "estrom.error.invalid_query"


def test_bad_ndjson_line_is_reported_and_good_lines_are_delivered(estrom: Estrom) -> None:
    """A bad NDJSON line is reported with its line number; its good neighbours are delivered."""
    tail = estrom.tail(i="events", q="neighbour", limit=2)
    tail.read_until(HEADER)
    body = '{"m": "neighbour one"}\n{not json}\n{"m": "neighbour two"}\n'
    status, answer = estrom.post("events", body, "application/x-ndjson")
    assert status == 200
    assert answer["accepted"] == 2
    assert [e["line"] for e in answer["errors"]] == [2]
    hits = json.loads(tail.read_all())["hits"]
    assert [h["_source"]["m"] for h in hits] == ["neighbour one", "neighbour two"]


def test_anonymous_publish_to_a_docs_topic_is_refused(estrom: Estrom) -> None:
    """Anonymous clients may subscribe to docs-for-* but never publish there."""
    [answer] = estrom.wamp("publish", "docs-for-0123456789abcdef", json.dumps([{"forged": True}]))
    assert answer == {"error": "wamp.error.not_authorized"}


def test_unknown_subscription_is_a_404_with_a_json_error(estrom: Estrom) -> None:
    """s=<id> naming no registration is 404 with a JSON body."""
    tail = estrom.tail(s="0000000000000000")
    body = json.loads(tail.read_all())
    assert tail.status == 404
    assert body["error"] == "estrom.error.unknown_subscription"


def test_tail_by_subscription_id_receives_documents(estrom: Estrom) -> None:
    """s=<id> of a registered query tails the same documents."""
    [answer] = estrom.wamp("call", "estrom.register", json.dumps(["events", "by AND id"]))
    tail = estrom.tail(s=answer["result"]["id"], limit=1)
    tail.read_until(HEADER)
    estrom.post("events", {"message": "found by id"})
    assert [h["_source"] for h in json.loads(tail.read_all())["hits"]] == [{"message": "found by id"}]


def test_health_reports_the_router_session(estrom: Estrom) -> None:
    """Both services report a live router session."""
    assert http_get_json(f"http://127.0.0.1:{estrom.beater_port}/api/v0.1/health")[1]["router"] is True
    assert http_get_json(f"http://127.0.0.1:{estrom.tailor_port}/api/v0.1/health")[1]["router"] is True


def test_documents_keep_integers_of_any_size_and_unicode(estrom: Estrom) -> None:
    """A document travels unchanged: JSON integers beyond 64 bits and non-ASCII text survive."""
    tail = estrom.tail(i="events", q="fidelity", limit=1)
    tail.read_until(HEADER)
    document = {"message": "fidelity straße 😀", "big": 2**70, "neg": -(2**65), "pi": 3.14159, "none": None}
    status, _ = estrom.post("events", json.dumps(document))
    assert status == 200
    body = close_prefix(tail.read_all())
    assert body["hits"][0]["_source"] == document
