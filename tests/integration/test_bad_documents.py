"""A bad document fails alone, over HTTP, WAMP and Kafka, against a real ``estrom up``; every limit is named.

The instance runs with a few limits lowered (body size, documents per request, query length,
registrations per index) so that passing them costs little; the document limits keep their defaults
(1 MiB, 100 levels, 1000 fields).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from tests.integration.conftest import Estrom
from tests.integration.tailclients import ReaderThread, TailClient, hits_of, open_tail

DEEP = '{"a":' * 100_000 + "1" + "}" * 100_000
MAX_BODY = 4_000_000


def nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estrom]:
    instance = Estrom(tmp_path_factory.mktemp("estrom-limits"), extra_args=[
        "--max-body-bytes", str(MAX_BODY), "--max-docs-per-request", "50", "--max-query-chars", "500",
        "--max-registrations-per-index", "3",
    ])
    instance.start()
    yield instance
    instance.stop()


def index_name() -> str:
    return "bad-" + uuid.uuid4().hex[:8]


def post(instance: Estrom, index: str, body: bytes) -> Tuple[int, Dict[str, Any]]:
    return instance.post(index, body, content_type="application/x-ndjson")


def tail_titles(tail: TailClient, expected: int) -> List[str]:
    records = ReaderThread(tail).join(expected, timeout=30)
    return [hit["_source"]["t"] for hit in hits_of(records)]


def test_a_document_100000_levels_deep_between_good_ones_fails_alone_and_the_good_ones_reach_the_tail(limited: Estrom) -> None:
    index = index_name()
    tail = open_tail(limited, i=index, q="t:good*")
    status, answer = post(limited, index, ('{"t": "good1"}\n' + DEEP + '\n{"t": "good2"}\n').encode())
    assert status == 200, answer
    assert (answer["accepted"], answer["rejected"]) == (2, 1)
    [error] = answer["errors"]
    assert (error["error"], error["line"], error["limit"], error["value"]) == ("estrom.error.limit_exceeded", 2, "max_depth", 100)
    assert tail_titles(tail, 2) == ["good1", "good2"]


def test_the_same_body_again_is_answered_the_same_not_503(limited: Estrom) -> None:
    index = index_name()
    body = ('{"t": "good1"}\n' + DEEP + '\n{"t": "good2"}\n').encode()
    for _ in range(2):
        status, answer = post(limited, index, body)
        assert (status, answer["accepted"], answer["rejected"]) == (200, 2, 1)


def test_a_document_at_the_depth_limit_is_delivered_end_to_end(limited: Estrom) -> None:
    index = index_name()
    tail = open_tail(limited, i=index, q="t:deepest")
    document = {"t": "deepest", "nest": nested(99, "leaf")}  # 100 levels with the document itself
    status, answer = post(limited, index, json.dumps(document).encode())
    assert (status, answer["accepted"]) == (200, 1), answer
    assert tail_titles(tail, 1) == ["deepest"]


def test_a_document_over_max_document_bytes_is_its_error_and_its_neighbours_go_on(limited: Estrom) -> None:
    index = index_name()
    tail = open_tail(limited, i=index, q="t:small")
    big = json.dumps({"t": "big", "blob": "x" * 2_000_000})
    body = json.dumps({"t": "small"}) + "\n" + big + "\n" + json.dumps({"t": "small"}) + "\n"
    status, answer = post(limited, index, body.encode())
    assert status == 200
    [error] = answer["errors"]
    assert (error["line"], error["limit"], error["value"]) == (2, "max_line_bytes", 1048576)
    assert tail_titles(tail, 2) == ["small", "small"]


def test_a_lone_surrogate_huge_number_or_bad_utf8_line_fails_alone_and_the_good_ones_reach_the_tail(limited: Estrom) -> None:
    """Found by the fuzz run: each used to fail its batch (503) or the whole body (400)."""
    index = index_name()
    tail = open_tail(limited, i=index, q="*")
    body = (b'{"t": "good1"}\n{"t": "lone", "a": "\\ud800"}\n{"n": ' + b"9" * 5000 + b'}\n'
            b'{"t": "\xff"}\n{"t": "good2"}\n')
    status, answer = post(limited, index, body)
    assert (status, answer["accepted"], answer["rejected"]) == (200, 2, 3), answer
    assert [e["line"] for e in answer["errors"]] == [2, 3, 4]
    assert tail_titles(tail, 2) == ["good1", "good2"]


def test_a_single_document_over_max_document_bytes_is_400_naming_the_limit(limited: Estrom) -> None:
    status, answer = limited.post(index_name(), json.dumps({"blob": "x" * 2_000_000}))
    assert status == 400
    assert [(e["line"], e["limit"]) for e in answer["errors"]] == [(1, "max_document_bytes")]


def test_too_many_fields_is_that_documents_error(limited: Estrom) -> None:
    status, answer = limited.post(index_name(), json.dumps([{"ok": 1}, {f"f{i}": i for i in range(1001)}]))
    assert status == 200 and answer["accepted"] == 1
    assert [(e["item"], e["limit"], e["value"]) for e in answer["errors"]] == [(1, "max_fields", 1000)]


def test_a_body_over_max_body_bytes_is_413_naming_the_limit(limited: Estrom) -> None:
    status, answer = limited.post(index_name(), json.dumps({"blob": "x" * (MAX_BODY + 10)}))
    assert status == 413
    assert (answer["error"], answer["limit"], answer["value"]) == ("estrom.error.limit_exceeded", "max_body_bytes", MAX_BODY)


def test_more_documents_than_max_docs_per_request_is_413_naming_the_limit(limited: Estrom) -> None:
    status, answer = post(limited, index_name(), ("\n".join('{"n": 1}' for _ in range(51)) + "\n").encode())
    assert status == 413
    assert (answer["limit"], answer["value"]) == ("max_docs_per_request", 50)


def test_over_wamp_a_poison_document_between_good_ones_is_its_items_error(limited: Estrom) -> None:
    index = index_name()
    tail = open_tail(limited, i=index, q="t:good*")
    ticket = json.loads((limited.data_dir / "secrets.json").read_text())["beater"]
    documents = [{"t": "good1"}, nested(150, 1), {"t": "good2"}]  # as deep as a WAMP client can still send
    [answer] = limited.wamp("ingest", "beater", ticket, index, json.dumps(documents))
    report = answer["result"]
    assert (report["accepted"], report["rejected"]) == (2, 1)
    assert [(e["item"], e["limit"]) for e in report["errors"]] == [(1, "max_depth")]
    assert tail_titles(tail, 2) == ["good1", "good2"]


def test_over_wamp_too_many_documents_is_limit_exceeded_naming_the_limit(limited: Estrom) -> None:
    ticket = json.loads((limited.data_dir / "secrets.json").read_text())["beater"]
    [answer] = limited.wamp("ingest", "beater", ticket, index_name(), json.dumps([{"n": 1}] * 51))
    assert answer["error"] == "estrom.error.limit_exceeded"
    assert (answer["kwargs"]["limit"], answer["kwargs"]["value"]) == ("max_docs_per_request", 50)


def tail_status(instance: Estrom, **params: Any) -> Tuple[int, Any]:
    client = TailClient.get(instance.tailor_port, params, None, "json")
    return client.status, client.body_json()


def test_a_query_over_max_query_chars_is_413_over_http_and_limit_exceeded_over_wamp(limited: Estrom) -> None:
    query = " OR ".join(f"word{i}" for i in range(100))  # about 900 characters
    status, body = tail_status(limited, i=index_name(), q=query)
    assert status == 413
    assert (body["error"], body["limit"], body["value"]) == ("estrom.error.limit_exceeded", "max_query_chars", 500)
    [answer] = limited.wamp("call", "estrom.register", json.dumps([index_name(), query]))
    assert answer["error"] == "estrom.error.limit_exceeded" and answer["kwargs"]["limit"] == "max_query_chars"


def test_one_registration_past_max_registrations_per_index_is_429_and_a_known_query_still_works(limited: Estrom) -> None:
    index = index_name()
    for word in ("one", "two", "three"):
        [answer] = limited.wamp("call", "estrom.register", json.dumps([index, word]))
        assert "result" in answer, answer
    [answer] = limited.wamp("call", "estrom.register", json.dumps([index, "four"]))
    assert answer["error"] == "estrom.error.too_many_registrations"
    assert (answer["kwargs"]["limit"], answer["kwargs"]["value"]) == ("max_registrations_per_index", 3)
    status, body = tail_status(limited, i=index, q="five")
    assert status == 429 and body["limit"] == "max_registrations_per_index"
    [again] = limited.wamp("call", "estrom.register", json.dumps([index, "two"]))
    assert "result" in again  # registering a known query again is no new registration


def test_over_kafka_a_record_too_deep_between_good_ones_is_poison_and_its_neighbours_arrive(tmp_path: Path) -> None:
    from tests.integration.test_kafka_ingest import Producer, bootstrap, create_topics, estrom_on_kafka, metric, positions_of

    address = bootstrap()
    unique = uuid.uuid4().hex[:10]
    topic, dead_letters = f"estrom-it-{unique}", f"estrom-it-{unique}-dlq"
    create_topics(address, topic, dead_letters)
    with estrom_on_kafka(tmp_path, address, topic, f"estrom-it-{unique}", dead_letters) as instance:
        tail = open_tail(instance, i="events", q="type:edit")
        reader = ReaderThread(tail)
        producer = Producer(address, topic)
        try:
            before = producer.send(b'{"type": "edit", "t": "before"}', 0)
            poison = producer.send(DEEP.encode(), 0)
            after = producer.send(b'{"type": "edit", "t": "after"}', 0)
        finally:
            producer.close()
        received = positions_of(reader.join(2, timeout=60), topic)
        assert before in received and after in received and poison not in received
        assert metric(instance, "estrom_kafka_poison_records_total", topic=topic, reason="too_deep") == 1.0
        tail.close()
