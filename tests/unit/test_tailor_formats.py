"""The bytes of a tail in each format: JSON (the default, unchanged), NDJSON and Server-Sent Events.

Each format is checked the way its clients read it: the JSON document with
``json.loads`` (closed at any point of the stream), NDJSON line by line, SSE
with a small parser that follows the WHATWG event-stream rules.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Optional, Tuple

from tailor.stream import FOOTER, FORMATS, Delivered, control, encode_control

JSON = FORMATS["json"]
NDJSON = FORMATS["ndjson"]
SSE = FORMATS["sse"]

HIT_A = b'{"_seq":1,"t":"a"}'
HIT_B = b'{"_seq":2,"t":"b"}'
HIT_C = b'{"_seq":3,"t":"c"}'


# --- a small SSE parser (https://html.spec.whatwg.org/multipage/server-sent-events.html) ---------

def parse_sse(body: bytes) -> Tuple[List[Dict[str, Any]], List[str], Optional[int]]:
    """The dispatched events, the comment lines and the last ``retry:`` of an event stream.

    Each event is ``{"event": type, "data": text, "id": last event id}``; an event
    without data is not dispatched, as in a browser.
    """
    events: List[Dict[str, Any]] = []
    comments: List[str] = []
    retry: Optional[int] = None
    last_id = ""
    event_type, data_lines = "", []  # type: str, List[str]
    for line in re.split(r"\r\n|\r|\n", body.decode("utf-8")):
        if line == "":
            if data_lines:
                events.append({"event": event_type or "message", "data": "\n".join(data_lines), "id": last_id})
            event_type, data_lines = "", []
            continue
        if line.startswith(":"):
            comments.append(line[1:])
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "event":
            event_type = value
        elif field == "data":
            data_lines.append(value)
        elif field == "id":
            last_id = value
        elif field == "retry" and value.isdigit():
            retry = int(value)
    return events, comments, retry


# --- JSON (the default) -----------------------------------------------------------------------

def test_json_is_the_default_format_and_says_so_in_its_content_type() -> None:
    """The JSON format is named ``json`` and is served as application/json."""
    assert JSON.name == "json"
    assert JSON.content_type.startswith(b"application/json")


def test_json_header_is_byte_for_byte_as_before() -> None:
    """The header opens an object with the subscription id and a hits array, then a newline."""
    assert JSON.header("abc") == b'{"subscription_id": "abc", "hits": [\n'


def test_json_first_hits_have_no_leading_separator() -> None:
    """Hits right after the header are joined by ``,\\n`` with nothing before the first."""
    assert JSON.hits([Delivered("b1", 1, HIT_A), Delivered("b1", 2, HIT_B)], first=True) == HIT_A + b",\n" + HIT_B


def test_json_later_hits_start_with_a_separator() -> None:
    """Hits after earlier elements start with ``,\\n``."""
    assert JSON.hits([Delivered("b1", 3, HIT_C)], first=False) == b",\n" + HIT_C


def test_json_hits_are_the_encoded_bytes_unchanged() -> None:
    """A hit's bytes are passed through as they were encoded, never re-encoded."""
    odd = b'{"_seq":7,"t":"stra\xc3\x9fe","n":1.50}'
    assert JSON.hits([Delivered("b1", 7, odd)], first=True) == odd


def test_json_footer_closes_the_array_and_the_object() -> None:
    """The footer is ``\\n]}\\n``."""
    assert JSON.footer(None, first=False) == b"\n]}\n" == FOOTER


def test_json_limit_and_timeout_end_with_the_bare_footer() -> None:
    """An end the client asked for (limit, timeout) writes no end record: the document is as before."""
    assert JSON.footer(control(end="limit"), first=False) == b"\n]}\n"
    assert JSON.footer(control(end="timeout"), first=False) == b"\n]}\n"


def test_json_stream_ended_by_limit_is_byte_for_byte_as_before() -> None:
    """Header, hits separated by ``,\\n`` and the footer, nothing else."""
    body = JSON.header("abc") + JSON.hits([Delivered("b1", 1, HIT_A)], True) + JSON.hits([Delivered("b1", 2, HIT_B)], False) + JSON.footer(control(end="limit"), False)
    assert body == b'{"subscription_id": "abc", "hits": [\n' + HIT_A + b",\n" + HIT_B + b"\n]}\n"


def test_json_empty_stream_is_a_valid_document() -> None:
    """A stream closed before any hit parses, with an empty hits array."""
    assert json.loads(JSON.header("abc") + JSON.footer(None, True)) == {"subscription_id": "abc", "hits": []}


def test_json_record_is_an_array_element() -> None:
    """A Tailor record is one more array element ``{"_estrom": {...}}``, separated like a hit."""
    assert JSON.record("dropped", control(dropped=3), first=False) == b',\n{"_estrom":{"dropped":3}}'
    assert JSON.record("dropped", control(dropped=3), first=True) == b'{"_estrom":{"dropped":3}}'


def test_json_max_tail_s_end_is_a_record_before_the_footer() -> None:
    """An end the client did not ask for is said in an ``end`` record, then the footer."""
    end = control(end="max_tail_s", max_tail_s=60.0)
    assert JSON.footer(end, first=False) == b',\n{"_estrom":{"end":"max_tail_s","max_tail_s":60.0}}\n]}\n'


def test_json_heartbeat_is_a_lone_newline() -> None:
    """A heartbeat is whitespace between JSON tokens."""
    assert JSON.heartbeat() == b"\n"


def test_json_is_a_valid_prefix_at_every_write() -> None:
    """Header, hits, records and heartbeats in any order: closed with the footer after any write, it parses."""
    parts = [
        JSON.header("abc"),
        JSON.heartbeat(),
        JSON.record("gap", control(gap=True, missed=None), True),
        JSON.hits([Delivered("b1", 1, HIT_A)], False),
        JSON.heartbeat(),
        JSON.record("dropped", control(dropped=2, dropped_total=2), False),
        JSON.hits([Delivered("b1", 2, HIT_B), Delivered("b1", 3, HIT_C)], False),
        JSON.record("error", control(error="estrom.error.slow_client", message="slow"), False),
    ]
    for k in range(1, len(parts) + 1):
        json.loads(b"".join(parts[:k]) + FOOTER)
    document = json.loads(b"".join(parts) + FOOTER)
    assert document["subscription_id"] == "abc"
    assert document["hits"] == [
        {"_estrom": {"gap": True, "missed": None}},
        {"_seq": 1, "t": "a"},
        {"_estrom": {"dropped": 2, "dropped_total": 2}},
        {"_seq": 2, "t": "b"},
        {"_seq": 3, "t": "c"},
        {"_estrom": {"error": "estrom.error.slow_client", "message": "slow"}},
    ]


def test_json_records_first_in_the_array_keep_it_valid() -> None:
    """A record written before any hit takes the first place, and hits after it are separated."""
    body = JSON.header("x") + JSON.record("dropped", control(dropped=1), True) + JSON.hits([Delivered("b1", 1, HIT_A)], False) + FOOTER
    assert json.loads(body)["hits"] == [{"_estrom": {"dropped": 1}}, {"_seq": 1, "t": "a"}]


def test_json_subscription_id_is_json_escaped() -> None:
    """An id with quotes or backslashes still gives a valid document."""
    assert json.loads(JSON.header('a"b\\c') + FOOTER)["subscription_id"] == 'a"b\\c'


def test_control_records_are_compact_json() -> None:
    """Records are encoded without spaces, non-ASCII kept as UTF-8."""
    assert encode_control(control(message="für")) == '{"_estrom":{"message":"für"}}'.encode()


# --- NDJSON -----------------------------------------------------------------------------------

def ndjson_lines(body: bytes) -> List[Any]:
    """Every non-blank line parsed (blank lines are heartbeats)."""
    return [json.loads(line) for line in body.split(b"\n") if line]


def test_ndjson_content_type() -> None:
    """NDJSON is served as application/x-ndjson."""
    assert NDJSON.content_type == b"application/x-ndjson"


def test_ndjson_first_line_names_the_subscription() -> None:
    """The header is one line ``{"_estrom":{"subscription_id":...}}``."""
    assert NDJSON.header("abc") == b'{"_estrom":{"subscription_id":"abc"}}\n'


def test_ndjson_one_hit_per_line() -> None:
    """Each hit is its bytes and a newline, whether first or not."""
    assert NDJSON.hits([Delivered("b1", 1, HIT_A), Delivered("b1", 2, HIT_B)], first=True) == HIT_A + b"\n" + HIT_B + b"\n"
    assert NDJSON.hits([Delivered("b1", 3, HIT_C)], first=False) == HIT_C + b"\n"


def test_ndjson_every_line_parses_as_json() -> None:
    """A whole stream (header, hits, records, end) is lines each of which json.loads reads."""
    body = (NDJSON.header("abc") + NDJSON.hits([Delivered("b1", 1, HIT_A)], True) + NDJSON.record("dropped", control(dropped=4), False)
            + NDJSON.hits([Delivered("b1", 2, HIT_B)], False) + NDJSON.record("gap", control(gap=True, missed=7), False)
            + NDJSON.footer(control(end="max_tail_s"), False))
    lines = body.split(b"\n")
    assert lines[-1] == b""  # ends with a newline
    assert [json.loads(line) for line in lines[:-1]] == [
        {"_estrom": {"subscription_id": "abc"}},
        {"_seq": 1, "t": "a"},
        {"_estrom": {"dropped": 4}},
        {"_seq": 2, "t": "b"},
        {"_estrom": {"gap": True, "missed": 7}},
        {"_estrom": {"end": "max_tail_s"}},
    ]


def test_ndjson_heartbeat_is_a_blank_line() -> None:
    """A heartbeat is an empty line, which NDJSON readers skip."""
    assert NDJSON.heartbeat() == b"\n"
    body = NDJSON.header("abc") + NDJSON.heartbeat() + NDJSON.hits([Delivered("b1", 1, HIT_A)], True)
    assert ndjson_lines(body) == [{"_estrom": {"subscription_id": "abc"}}, {"_seq": 1, "t": "a"}]


def test_ndjson_end_is_a_last_line_even_for_limit() -> None:
    """Without a closing bracket to show the end, NDJSON says why in a last line, limit included."""
    assert NDJSON.footer(control(end="limit"), first=False) == b'{"_estrom":{"end":"limit"}}\n'


def test_ndjson_footer_without_end_is_nothing() -> None:
    """An end with no reason (an error already said) adds no line."""
    assert NDJSON.footer(None, first=False) == b""


# --- Server-Sent Events -----------------------------------------------------------------------

def test_sse_content_type() -> None:
    """SSE is served as text/event-stream."""
    assert SSE.content_type.startswith(b"text/event-stream")


def test_sse_starts_with_retry() -> None:
    """The first line tells the browser how long to wait before reconnecting."""
    header = SSE.header("abc")
    assert header.startswith(b"retry: 3000\n")
    assert parse_sse(header)[2] == 3000


def test_sse_header_is_a_subscription_event() -> None:
    """After ``retry:`` comes one ``subscription`` event naming the id."""
    events, _, _ = parse_sse(SSE.header("abc"))
    assert [(e["event"], json.loads(e["data"])) for e in events] == [("subscription", {"_estrom": {"subscription_id": "abc"}})]


def test_sse_each_hit_is_a_message_with_its_event_id() -> None:
    """Every hit is one ``message`` event: ``id:`` is the id the tail gives (the cursor after it), ``data:`` its JSON bytes."""
    body = SSE.hits([Delivered("b1", 1, HIT_A), Delivered("b1", 2, HIT_B)], first=True, ids=[b"1", b"2"])
    assert body == b"id: 1\ndata: " + HIT_A + b"\n\nid: 2\ndata: " + HIT_B + b"\n\n"
    events, _, _ = parse_sse(body)
    assert [(e["event"], e["id"], e["data"].encode()) for e in events] == [("message", "1", HIT_A), ("message", "2", HIT_B)]


def test_sse_records_are_named_events() -> None:
    """dropped, gap, end and error records are events of those names with the record as data."""
    records = [("dropped", control(dropped=2)), ("gap", control(gap=True, missed=None)),
               ("error", control(error="estrom.error.slow_client", message="slow")), ("end", control(end="max_tail_s"))]
    body = b"".join(SSE.record(kind, body, False) for kind, body in records)
    events, _, _ = parse_sse(body)
    assert [(e["event"], json.loads(e["data"])) for e in events] == records


def test_sse_records_do_not_move_the_last_event_id() -> None:
    """Records carry no ``id:``, so a reconnect resumes after the last hit, not after a record."""
    body = SSE.hits([Delivered("b1", 5, HIT_A)], True, [b"5"]) + SSE.record("dropped", control(dropped=1), False)
    events, _, _ = parse_sse(body)
    assert [e["id"] for e in events] == ["5", "5"]


def test_sse_heartbeat_is_a_comment() -> None:
    """A heartbeat is a comment line: no event is dispatched for it."""
    events, comments, _ = parse_sse(SSE.heartbeat())
    assert events == [] and comments == [""]
    assert SSE.heartbeat().startswith(b":")


def test_sse_always_ends_with_an_end_event() -> None:
    """Limit, timeout and a plain end are all an ``end`` event, so a browser knows not to reconnect."""
    for end, expected in [(control(end="limit"), {"_estrom": {"end": "limit"}}),
                          (control(end="timeout"), {"_estrom": {"end": "timeout"}}),
                          (None, {"_estrom": {"end": "done"}})]:
        events, _, _ = parse_sse(SSE.footer(end, first=False))
        assert [(e["event"], json.loads(e["data"])) for e in events] == [("end", expected)]


def test_sse_whole_stream_parses_into_the_expected_events() -> None:
    """A stream of header, hits, a heartbeat, a dropped record and the end reads as those events in order."""
    body = (SSE.header("abc") + SSE.hits([Delivered("b1", 1, HIT_A)], True, [b"1"]) + SSE.heartbeat()
            + SSE.record("dropped", control(dropped=3), False) + SSE.hits([Delivered("b1", 9, HIT_C)], False, [b"9"])
            + SSE.footer(control(end="limit"), False))
    events, comments, retry = parse_sse(body)
    assert retry == 3000
    assert comments == [""]
    assert [(e["event"], e["id"]) for e in events] == [("subscription", ""), ("message", "1"), ("dropped", "1"),
                                                       ("message", "9"), ("end", "9")]
    assert json.loads(events[3]["data"]) == {"_seq": 3, "t": "c"}
