"""``GET /api/v0.1/counts`` against a real ``estrom up``: per-window counts of what was posted, grouped by a field."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any, Dict, List, Optional
from urllib.parse import urlencode

from tests.integration.conftest import Estrom
from tests.integration.tailclients import HttpStream, Record, TailClient, connect, post_docs, request_bytes

COUNTS_PATH = "/api/v0.1/counts"


def get_counts(instance: Estrom, fmt: str = "ndjson", headers: Optional[Dict[str, str]] = None, **params: Any) -> TailClient:
    """Send ``GET /api/v0.1/counts?<params>`` over a raw socket and read the response head."""
    params.setdefault("format", fmt)
    sock = connect(instance.tailor_port)
    sock.sendall(request_bytes("GET", COUNTS_PATH + "?" + urlencode(params), instance.tailor_port, headers))
    return TailClient(HttpStream(sock), fmt)


def open_counts(instance: Estrom, fmt: str = "ndjson", **params: Any) -> TailClient:
    """A counts tail whose header has arrived (its aggregator listens from now on)."""
    client = get_counts(instance, fmt, **params)
    assert client.status == 200, (client.status, client.body_json())
    client.read_until(lambda c: c.parser.header is not None, what="the header")
    return client


def windows_of(records: List[Record]) -> List[Record]:
    return [r for r in records if "window" in r]


def counted(client: TailClient) -> int:
    return sum(w["count"] for w in windows_of(client.records))


def group_totals(windows: List[Record]) -> Counter:
    totals: Counter = Counter()
    for window in windows:
        for group in window["groups"]:
            totals[group["key"]] += group["count"]
    return totals


POSTED = [{"message": "counted edit", "wiki": "enwiki"}] * 3 + [{"message": "counted edit", "wiki": "dewiki"}] * 2 \
    + [{"message": "counted edit"}] + [{"message": "not this one", "wiki": "enwiki"}]


def test_window_counts_sum_to_the_matching_documents_posted_grouped_by_wiki(estrom: Estrom) -> None:
    client = open_counts(estrom, i="counts-a", q="message:counted", window="1s", by="wiki", lateness="1s")
    post_docs(estrom, "counts-a", POSTED)
    client.read_until(lambda c: counted(c) >= 6, what="6 documents counted")
    client.read_some(1.5)  # a window that counted more than was posted would show now
    client.close()
    windows = windows_of(client.records)
    assert counted(client) == 6
    assert group_totals(windows) == Counter({"enwiki": 3, "dewiki": 2, None: 1})
    assert sum(w["late"] + w["early"] + w["other"] for w in windows) == 0


def test_windows_follow_one_another_without_holes(estrom: Estrom) -> None:
    client = open_counts(estrom, i="counts-b", q="message:counted", window="1s", lateness="0")
    client.read_until(lambda c: len(windows_of(c.records)) >= 3, what="3 windows")
    client.close()
    windows = windows_of(client.records)
    assert all(a["window"]["end"] == b["window"]["start"] for a, b in zip(windows, windows[1:]))
    assert all(w["window"]["final"] for w in windows)
    assert [w["count"] for w in windows[:3]] == [0, 0, 0]


def test_only_the_first_window_can_be_partial(estrom: Estrom) -> None:
    client = open_counts(estrom, i="counts-b", q="message:counted", window="1s", lateness="0")
    client.read_until(lambda c: len(windows_of(c.records)) >= 2, what="2 windows")
    client.close()
    assert [w["window"]["partial"] for w in windows_of(client.records)][1:] == [False] * (len(windows_of(client.records)) - 1)


def test_two_clients_of_one_subscription_get_the_same_windows(estrom: Estrom) -> None:
    first = open_counts(estrom, i="counts-c", q="message:counted", window="1s", by="wiki", lateness="1s")
    sub_id = first.parser.subscription_id
    second = open_counts(estrom, s=sub_id, window="1s", by="wiki", lateness="1s")
    post_docs(estrom, "counts-c", POSTED)
    for client in (first, second):
        client.read_until(lambda c: counted(c) >= 6, what="6 documents counted")
    first.read_until(lambda c: len(windows_of(c.records)) >= len(windows_of(second.records)), what="as many windows")
    first.close()
    second.close()
    by_start = {w["window"]["start"]: w for w in windows_of(first.records)}
    assert all(by_start[w["window"]["start"]] == w for w in windows_of(second.records))


def test_limit_ends_a_json_counts_tail_after_that_many_windows(estrom: Estrom) -> None:
    client = open_counts(estrom, "json", i="counts-d", q="message:counted", window="1s", lateness="0", limit=2)
    client.read_to_end()
    assert len(windows_of(client.records)) == 2 and client.parser.ended


def test_a_bad_window_is_a_400_naming_it(estrom: Estrom) -> None:
    client = get_counts(estrom, i="counts-e", q="x", window="2d")
    assert client.status == 400
    assert client.body_json()["part"] == "window=2d"


def test_a_bad_top_is_a_400_naming_it(estrom: Estrom) -> None:
    client = get_counts(estrom, i="counts-e", q="x", by="wiki", top="0")
    assert client.status == 400
    assert client.body_json()["part"] == "top=0"


def test_a_since_is_a_400_because_windows_are_not_replayed(estrom: Estrom) -> None:
    client = get_counts(estrom, i="counts-e", q="x", since="0")
    assert client.status == 400
    assert client.body_json()["part"] == "since=0"


def sse_events(instance: Estrom, count: int, timeout: float = 20.0, headers: Optional[Dict[str, str]] = None,
               **params: Any) -> List[Dict[str, str]]:
    """The first ``count`` events of an SSE counts tail, each as its fields (read over a raw socket)."""
    sock = connect(instance.tailor_port)
    sock.sendall(request_bytes("GET", COUNTS_PATH + "?" + urlencode({**params, "format": "sse"}), instance.tailor_port, headers))
    stream = HttpStream(sock)
    stream.read_head(timeout)
    assert stream.status == 200
    body, deadline = b"", time.monotonic() + timeout
    while body.count(b"\ndata: ") + body.startswith(b"data: ") < count or not body.endswith(b"\n\n"):
        assert time.monotonic() < deadline and not stream.eof, f"{count} events not received: {body[-300:]!r}"
        body += stream.read_body(1.0)
    sock.close()
    events = []
    for block in body.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line and not line.startswith(":"))
        if "data" in fields:  # a retry: block or a heartbeat is no event
            events.append(fields)
    return events[:count]


def test_sse_counts_are_message_events_with_a_window_and_an_event_id(estrom: Estrom) -> None:
    subscription, window = sse_events(estrom, 2, i="counts-f", q="message:counted", window="1s", lateness="0")
    assert subscription["event"] == "subscription"
    assert "event" not in window and json.loads(window["data"])["count"] == 0
    assert "counts:1" in window["id"]


def test_a_reconnecting_event_source_goes_on_live_and_is_told_of_the_gap(estrom: Estrom) -> None:
    _, gap = sse_events(estrom, 2, headers={"Last-Event-ID": "@1764590400000,counts:7"},
                        i="counts-f", q="message:counted", window="1s")
    assert gap["event"] == "gap" and json.loads(gap["data"])["_estrom"]["gap"] is True
