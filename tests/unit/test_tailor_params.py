"""What a tail request may ask for: every malformed parameter is a BadRequest naming it, before anything starts."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Dict, List, Optional

import pytest

from router import contract
from tailor.cursor import Cursor
from tailor.params import MAX_LIMIT, BadRequest, choose_format, parse_since, parse_tail
from tailor.stream import FORMATS


def tail(headers: Optional[Dict[str, Optional[str]]] = None, **args: str):
    """parse_tail over single-valued arguments (``i`` and ``q`` default to a valid query)."""
    query: Dict[str, List[str]] = {"i": ["logs"], "q": ["level:error"]}
    query.update({name: [value] for name, value in args.items()})
    return parse_tail(query, headers or {})


def refused(headers: Optional[Dict[str, Optional[str]]] = None, **args: str) -> BadRequest:
    """The BadRequest parse_tail raises for these arguments."""
    with pytest.raises(BadRequest) as raised:
        tail(headers, **args)
    return raised.value


def ms(when: datetime) -> int:
    """Epoch milliseconds of an aware datetime."""
    return int(when.timestamp()) * 1000 + when.microsecond // 1000


UTC_10AM = datetime(2026, 12, 1, 10, 0, 0, tzinfo=timezone.utc)


# --- since ------------------------------------------------------------------------------------

def test_since_small_integer_is_an_event_id() -> None:
    """An integer below 10**12 is a hit's event id (its _seq)."""
    assert parse_since("42") == Cursor(any_seq=42)


def test_since_zero_is_event_id_zero() -> None:
    """0 means from the very first hit."""
    assert parse_since("0") == Cursor(any_seq=0)


def test_since_large_integer_is_epoch_milliseconds() -> None:
    """An integer from 10**12 on is a time in epoch milliseconds."""
    assert parse_since("1796119200000") == Cursor(floor_ms=1796119200000)
    assert parse_since(str(10**12)) == Cursor(floor_ms=10**12)
    assert parse_since(str(10**12 - 1)) == Cursor(any_seq=10**12 - 1)


def test_since_iso_time_with_z() -> None:
    """An ISO-8601 time with Z is UTC."""
    assert parse_since("2026-12-01T10:00:00Z") == Cursor(floor_ms=ms(UTC_10AM))


def test_since_iso_time_with_offset() -> None:
    """An ISO-8601 time with an offset is converted to UTC."""
    assert parse_since("2026-12-01T12:00:00+02:00") == Cursor(floor_ms=ms(UTC_10AM))


def test_since_iso_time_without_zone_is_utc() -> None:
    """An ISO-8601 time without a zone means UTC, never the server's local time."""
    assert parse_since("2026-12-01T10:00:00") == Cursor(floor_ms=ms(UTC_10AM))


def test_since_iso_time_keeps_milliseconds() -> None:
    """Fractions of a second are kept to the millisecond."""
    assert parse_since("2026-12-01T10:00:00.123Z") == Cursor(floor_ms=ms(UTC_10AM + timedelta(milliseconds=123)))


@pytest.mark.parametrize("value", ["", "yesterday", "-5", "12abc", "2026-13-01T00:00:00Z", "1.5"])
def test_bad_since_is_a_bad_request_naming_it(value: str) -> None:
    """Anything that is not an event id, epoch ms or ISO time is refused, naming since=."""
    with pytest.raises(BadRequest) as raised:
        parse_since(value)
    assert raised.value.part == f"since={value}"


def test_since_with_a_digit_that_is_not_a_number_is_a_bad_request() -> None:
    """A character str.isdigit() accepts but int() does not (superscript two) is a 400, not an uncaught ValueError."""
    with pytest.raises(BadRequest) as raised:
        parse_since("\u00b2")
    assert raised.value.part == "since=\u00b2"


def test_since_reaches_the_tail_request() -> None:
    """since= on a tail becomes the request's resume point."""
    assert tail(since="17").since == Cursor(any_seq=17)


def test_no_since_means_no_resume() -> None:
    """Without since= or Last-Event-ID the tail starts from now."""
    assert tail().since is None


def test_last_event_id_header_is_an_event_id() -> None:
    """A browser's Last-Event-ID header resumes after that event id."""
    assert tail({"last-event-id": "99"}).since == Cursor(any_seq=99)


def test_last_event_id_wins_over_since() -> None:
    """The header is newer than the since= in the URL the browser reconnects to."""
    assert tail({"last-event-id": "99"}, since="5").since == Cursor(any_seq=99)


def test_empty_last_event_id_falls_back_to_since() -> None:
    """An empty Last-Event-ID (a browser that saw no event) does not hide since=."""
    assert tail({"last-event-id": ""}, since="5").since == Cursor(any_seq=5)


def test_bad_last_event_id_is_a_bad_request_naming_the_header() -> None:
    """A malformed Last-Event-ID is refused, naming the header."""
    assert refused({"last-event-id": "nope"}).part == "Last-Event-ID=nope"


def test_bad_since_on_a_tail_is_a_bad_request() -> None:
    """A malformed since= on a tail is refused, naming it."""
    assert refused(since="soon").part == "since=soon"


# --- format -----------------------------------------------------------------------------------

def test_json_is_the_default_format() -> None:
    """Without format= or an SSE Accept header the tail is JSON."""
    assert choose_format(None, None) is FORMATS["json"]
    assert choose_format(None, "application/json") is FORMATS["json"]


def test_accept_event_stream_picks_sse() -> None:
    """A browser's EventSource (Accept: text/event-stream) gets SSE."""
    assert choose_format(None, "text/event-stream") is FORMATS["sse"]
    assert tail({"accept": "text/event-stream"}).format is FORMATS["sse"]


def test_format_overrides_accept() -> None:
    """format= is the client's explicit choice, over its Accept header."""
    assert choose_format("ndjson", "text/event-stream") is FORMATS["ndjson"]
    assert tail({"accept": "text/event-stream"}, format="json").format is FORMATS["json"]


@pytest.mark.parametrize("name", ["json", "ndjson", "sse"])
def test_each_format_is_chosen_by_name(name: str) -> None:
    """format=json|ndjson|sse picks that format."""
    assert tail(format=name).format is FORMATS[name]


def test_bad_format_is_a_bad_request() -> None:
    """An unknown format is refused, naming format=."""
    assert refused(format="xml").part == "format=xml"


# --- limit and timeout ------------------------------------------------------------------------

def test_limit_and_timeout_are_read() -> None:
    """limit= is an int, timeout= a float of seconds."""
    wanted = tail(limit="10", timeout="2.5")
    assert (wanted.limit, wanted.timeout) == (10, 2.5)


def test_no_limit_or_timeout_means_none() -> None:
    """Without them the tail is endless."""
    wanted = tail()
    assert (wanted.limit, wanted.timeout) == (None, None)


def test_limit_up_to_the_maximum_is_accepted() -> None:
    """The largest limit allowed is accepted."""
    assert tail(limit=str(MAX_LIMIT)).limit == MAX_LIMIT


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1.5", "", str(MAX_LIMIT + 1), "9" * 5000])
def test_bad_limit_is_a_bad_request_naming_it(value: str) -> None:
    """limit must be a positive integer no larger than the maximum."""
    assert refused(limit=value).part == f"limit={value}"


@pytest.mark.parametrize("value", ["1e309", "nan", "inf", "-inf", "0", "-1", "abc", "1e12"])
def test_bad_timeout_is_a_bad_request_naming_it(value: str) -> None:
    """timeout must be a finite positive number of seconds, at most about a year."""
    assert refused(timeout=value).part == f"timeout={value}"


# --- on_slow ----------------------------------------------------------------------------------

def test_on_slow_defaults_to_drop() -> None:
    """A slow client loses its oldest hits unless it asks to be closed."""
    assert tail().on_slow == "drop"


def test_on_slow_close_is_read() -> None:
    """on_slow=close is accepted."""
    assert tail(on_slow="close").on_slow == "close"


def test_bad_on_slow_is_a_bad_request() -> None:
    """Anything but drop or close is refused, naming on_slow=."""
    assert refused(on_slow="block").part == "on_slow=block"


# --- what is tailed ---------------------------------------------------------------------------

def test_query_and_index_register() -> None:
    """i= and q= register the query, with default_operator defaulting to or."""
    wanted = tail()
    assert wanted.procedure == contract.PROC_REGISTER
    assert wanted.args == ("logs", "level:error", "or")


def test_default_operator_is_passed_on() -> None:
    """default_operator= reaches the registration."""
    assert tail(default_operator="and").args == ("logs", "level:error", "and")


def test_subscription_id_without_query_looks_up() -> None:
    """s= alone looks up an existing subscription."""
    wanted = parse_tail({"s": ["sub-1"]}, {})
    assert wanted.procedure == contract.PROC_LOOKUP
    assert wanted.args == ("sub-1",)


def test_query_without_index_is_a_bad_request_naming_i() -> None:
    """q= needs i=."""
    with pytest.raises(BadRequest) as raised:
        parse_tail({"q": ["x"]}, {})
    assert raised.value.part == "i"


def test_nothing_to_tail_is_a_bad_request_naming_q() -> None:
    """Neither q= nor s= is refused, naming q."""
    with pytest.raises(BadRequest) as raised:
        parse_tail({}, {})
    assert raised.value.part == "q"


def test_last_value_of_a_repeated_argument_wins() -> None:
    """limit=1&limit=5 is limit 5."""
    assert parse_tail({"i": ["logs"], "q": ["x"], "limit": ["1", "5"]}, {}).limit == 5


def test_since_may_be_the_cursor_a_tail_writes() -> None:
    """``@<ms>,<beater>:<seq>,...``: the SSE id of a tail over several Beaters."""
    assert parse_since("@1796119200000,3f2a9c1d:4711,b07e55aa:980") == Cursor({"3f2a9c1d": 4711, "b07e55aa": 980}, floor_ms=1796119200000)


def test_a_malformed_cursor_is_a_bad_request_saying_what_is_wrong() -> None:
    """A Beater named twice or a seq that is not a number is refused with the reason."""
    for value, reason in (("a:1,a:2", "named twice"), ("a:x", "sequence number"), ("@1,@2", "at most one")):
        with pytest.raises(BadRequest) as raised:
            parse_since(value, "Last-Event-ID")
        assert reason in raised.value.message
        assert raised.value.part == f"Last-Event-ID={value}"
