"""The Tailor's limits answer with a status and a JSON body naming the limit, never a silent drop.

One ``estrom up`` with ``--max-tails-per-client 2 --max-tails 3`` serves the
limit and validation tests (clients come from several loopback addresses, so
the total limit can be reached before the per-client one); another with
``--max-tail-s 1`` serves the longest-tail tests.
"""

from __future__ import annotations

import json
from typing import Iterator, List

import pytest

from tests.integration.conftest import Estrom, http_get_json
from tests.integration.processes import wait_for
from tests.integration.tailclients import (
    HttpStream, TailClient, connect, controls_of, hits_of, open_tail, post_docs, request_bytes,
)

PER_CLIENT, TOTAL = 2, 3


@pytest.fixture(scope="module")
def estrom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estrom]:
    """``estrom up`` allowing 2 tails per client address and 3 in total."""
    instance = Estrom(tmp_path_factory.mktemp("estrom-limits"),
                      ["--max-tails-per-client", str(PER_CLIENT), "--max-tails", str(TOTAL)])
    instance.start()
    yield instance
    instance.stop()


def open_tails(estrom: Estrom) -> int:
    """How many tails the Tailor has open, from its health."""
    return http_get_json(f"http://127.0.0.1:{estrom.tailor_port}/api/v0.1/health")[1]["tails"]


@pytest.fixture
def tails(estrom: Estrom) -> Iterator[List[TailClient]]:
    """Tails a test opened; closed afterwards, and the Tailor has counted them closed."""
    opened: List[TailClient] = []
    wait_for("no open tails before the test", lambda: True if open_tails(estrom) == 0 else None, 20, estrom)
    yield opened
    for tail in opened:
        tail.close()
    wait_for("the test's tails closed", lambda: True if open_tails(estrom) == 0 else None, 20, estrom)


def tail_from(estrom: Estrom, source: str, query: str = "limits") -> TailClient:
    """A JSON tail opened from loopback address ``source`` (the header read, if it was a 200)."""
    client = TailClient.get(estrom.tailor_port, {"i": "events", "q": query}, source=source)
    if client.status == 200:
        client.read_until(lambda c: c.parser.header is not None, what="the header")
    return client


def assert_too_many(refused: TailClient, limit: str, value: int) -> None:
    """A 429 with Retry-After and a JSON body naming the limit."""
    assert refused.status == 429
    assert int(refused.headers["retry-after"]) > 0
    assert refused.headers["content-type"].startswith("application/json")
    body = refused.body_json()
    assert body["error"] == "estrom.error.too_many_tails"
    assert body["limit"] == limit and body["value"] == value
    assert body["message"]


def test_a_client_past_its_tail_limit_gets_429_naming_the_limit(estrom: Estrom, tails: List[TailClient]) -> None:
    """With --max-tails-per-client 2, the third tail of one address is a 429 naming max_tails_per_client."""
    tails += [tail_from(estrom, "127.0.0.1") for _ in range(PER_CLIENT)]
    assert [t.status for t in tails] == [200] * PER_CLIENT
    refused = tail_from(estrom, "127.0.0.1")
    tails.append(refused)
    assert_too_many(refused, "max_tails_per_client", PER_CLIENT)


def test_another_address_is_not_limited_by_the_first_ones_tails(estrom: Estrom, tails: List[TailClient]) -> None:
    """The per-client limit counts per address: a second address still gets its tail."""
    tails += [tail_from(estrom, "127.0.0.1") for _ in range(PER_CLIENT)]
    other = tail_from(estrom, "127.0.0.2")
    tails.append(other)
    assert other.status == 200


def test_closing_a_tail_frees_its_place(estrom: Estrom, tails: List[TailClient]) -> None:
    """Once a client closes one of its tails, it may open another."""
    tails += [tail_from(estrom, "127.0.0.1") for _ in range(PER_CLIENT)]
    tails[0].close()
    wait_for("the closed tail counted", lambda: True if open_tails(estrom) == PER_CLIENT - 1 else None, 20, estrom)
    again = tail_from(estrom, "127.0.0.1")
    tails.append(again)
    assert again.status == 200


def test_past_the_total_tail_limit_every_client_gets_429(estrom: Estrom, tails: List[TailClient]) -> None:
    """With --max-tails 3 and three tails open (from two addresses), a fresh address gets a 429 naming max_tails."""
    tails += [tail_from(estrom, "127.0.0.1"), tail_from(estrom, "127.0.0.1"), tail_from(estrom, "127.0.0.2")]
    assert [t.status for t in tails] == [200] * TOTAL
    refused = tail_from(estrom, "127.0.0.3")
    tails.append(refused)
    assert_too_many(refused, "max_tails", TOTAL)


def test_open_tails_keep_streaming_while_others_are_refused(estrom: Estrom, tails: List[TailClient]) -> None:
    """A refusal costs the open tails nothing: they still get their documents."""
    tails += [tail_from(estrom, "127.0.0.1", "refusalcheck") for _ in range(PER_CLIENT)]
    tails.append(tail_from(estrom, "127.0.0.1", "refusalcheck"))
    assert tails[-1].status == 429
    post_docs(estrom, "events", [{"message": "refusalcheck passes"}])
    for tail in tails[:PER_CLIENT]:
        assert [h["_source"] for h in tail.read_hits(1)] == [{"message": "refusalcheck passes"}]


def raw_exchange(port: int, request: bytes, timeout: float = 20.0) -> HttpStream:
    """Send ``request`` on a fresh connection; read the whole answer (an error answer ends the connection)."""
    sock = connect(port)
    try:
        sock.sendall(request)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may stop reading once it has answered; the answer must still be there
    stream = HttpStream(sock)
    stream.read_head(timeout)
    return stream


def read_body(stream: HttpStream, timeout: float = 20.0) -> bytes:
    """The rest of the answer's body."""
    body = b""
    while not stream.eof:
        body += stream.read_body(timeout)
    return body


def test_a_200_kb_query_string_is_a_414_with_a_json_body(estrom: Estrom) -> None:
    """A request line far over 16 KiB is answered 414 with a JSON body, not dropped."""
    query = "q=" + "a" * (200 * 1024)
    stream = raw_exchange(estrom.tailor_port, request_bytes("GET", f"/api/v0.1/docs?i=events&{query}", estrom.tailor_port))
    body = json.loads(read_body(stream))
    stream.sock.close()
    assert stream.status == 414
    assert stream.headers["content-type"] == "application/json"
    assert body["error"] == "estrom.error.request_too_large"
    assert body["limit"] == 16384 and body["message"]


def test_the_tailor_serves_tails_after_a_414(estrom: Estrom, tails: List[TailClient]) -> None:
    """An over-long request costs only its own connection."""
    raw_exchange(estrom.tailor_port, request_bytes("GET", "/api/v0.1/docs?q=" + "b" * 100000, estrom.tailor_port)).sock.close()
    tail = tail_from(estrom, "127.0.0.1")
    tails.append(tail)
    assert tail.status == 200


@pytest.mark.parametrize("parameter, value", [
    ("timeout", "1e309"),
    ("timeout", "nan"),
    ("timeout", "-1"),
    ("limit", "0"),
    ("limit", "1.5"),
    ("format", "xml"),
    ("since", "yesterday"),
    ("on_slow", "wait"),
])
def test_a_bad_parameter_is_a_400_naming_it(estrom: Estrom, parameter: str, value: str) -> None:
    """Non-finite, absurd or unknown values are a 400 whose JSON body names the parameter."""
    refused = TailClient.get(estrom.tailor_port, {"i": "events", "q": "anything", parameter: value})
    body = refused.body_json()
    assert refused.status == 400
    assert body["error"] == "estrom.error.invalid_argument"
    assert body["part"] == f"{parameter}={value}"
    assert parameter in body["message"]


def test_a_refused_request_does_not_count_as_an_open_tail(estrom: Estrom) -> None:
    """Four 400s in a row leave the Tailor with no open tail (a refusal frees its place at once)."""
    for _ in range(TOTAL + 1):
        refused = TailClient.get(estrom.tailor_port, {"i": "events", "q": "x", "limit": "0"})
        refused.body_json()
        refused.close()
    assert open_tails(estrom) == 0


@pytest.fixture(scope="module")
def short_tails(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estrom]:
    """``estrom up`` that ends every tail after one second."""
    instance = Estrom(tmp_path_factory.mktemp("estrom-max-tail-s"), ["--max-tail-s", "1"])
    instance.start()
    yield instance
    instance.stop()


def test_max_tail_s_ends_a_json_tail_with_an_end_record_and_the_footer(short_tails: Estrom) -> None:
    """With --max-tail-s 1 a JSON tail ends with an end record and ``]}``: the whole body is one JSON document."""
    tail = open_tail(short_tails, "json", i="events", q="longlived")
    post_docs(short_tails, "events", [{"message": "longlived one"}])
    records = tail.read_to_end(timeout=30)
    document = json.loads(tail.body)
    assert document["subscription_id"] == tail.parser.subscription_id
    assert [h["_source"] for h in hits_of(records)] == [{"message": "longlived one"}]
    assert controls_of(records) == [{"end": "max_tail_s", "max_tail_s": 1.0}]
    assert records[-1] == {"_estrom": {"end": "max_tail_s", "max_tail_s": 1.0}}


@pytest.mark.parametrize("fmt", ["ndjson", "sse"])
def test_max_tail_s_ends_ndjson_and_sse_tails_with_an_end_record(short_tails: Estrom, fmt: str) -> None:
    """NDJSON and SSE end the same way: a last end record (``event: end`` in SSE), then the response ends."""
    tail = open_tail(short_tails, fmt, i="events", q="longlived")
    records = tail.read_to_end(timeout=30)
    assert records == [{"_estrom": {"end": "max_tail_s", "max_tail_s": 1.0}}]
    if fmt == "sse":
        assert [e.event for e in tail.parser.events] == ["subscription", "end"]


def test_an_explicit_timeout_shorter_than_max_tail_s_wins(short_tails: Estrom) -> None:
    """timeout=0.2 under --max-tail-s 1 ends as a timeout does: the bare footer, no end record."""
    tail = open_tail(short_tails, "json", i="events", q="shortlived", timeout="0.2")
    records = tail.read_to_end(timeout=30)
    assert records == [] and json.loads(tail.body)["hits"] == []

