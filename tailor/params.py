"""What an HTTP tail asks for, read and checked before anything is registered.

Pure functions over the query arguments and headers, so every refusal is a
400 with a JSON body naming the parameter, never a stream that fails later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping, Optional, Sequence, Tuple

from router import contract
from tailor.cursor import Cursor, CursorError, parse_cursor
from tailor.stream import FORMATS, Format
from tailor.windows import parse_duration_ms

MAX_LIMIT = 1_000_000_000
MAX_TIMEOUT_S = 366 * 24 * 3600.0


class BadRequest(Exception):
    """A request parameter is missing or malformed."""

    def __init__(self, message: str, part: str) -> None:
        super().__init__(message)
        self.message = message
        self.part = part


@dataclass(frozen=True)
class TailRequest:
    """A validated tail request."""

    procedure: str
    args: Tuple[Any, ...]
    format: Format
    limit: Optional[int] = None
    timeout: Optional[float] = None
    since: Optional[Cursor] = None
    on_slow: str = "drop"
    highlight: bool = False
    """Each hit gains ``_highlight``: the terms per field its query matched (``tailor/highlights.py``)."""


def _number(value: Optional[str], name: str, kind: type, most: float) -> Any:
    if value is None:
        return None
    message = f"{name} must be a positive number of at most {most:g}"
    try:
        number = kind(value)
    except ValueError:
        raise BadRequest(message, part=f"{name}={value}") from None
    if not math.isfinite(number) or number <= 0 or number > most:
        raise BadRequest(message, part=f"{name}={value}")
    return number


def parse_since(value: str, name: str = "since") -> Cursor:
    """A resume point (``tailor/cursor.py``): an event id the Tailor wrote (``@<ms>,<beater>:<seq>,...``),
    a bare event id of a single Beater, epoch milliseconds, or an ISO-8601 time (``2026-12-01T10:00:00Z``;
    no zone means UTC).  A time alone replays every Beater from it."""
    text = value.strip()
    try:
        return parse_cursor(text)
    except CursorError as e:
        error = e
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        if any(c in text for c in "@:,") and "T" not in text:
            raise BadRequest(f"{name} is not a valid event id: {error}", part=f"{name}={value}") from None
        raise BadRequest(f"{name} must be an event id, epoch milliseconds or an ISO-8601 time", part=f"{name}={value}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return Cursor(floor_ms=int(when.timestamp() * 1000))


def choose_format(requested: Optional[str], accept: Optional[str]) -> Format:
    """``format=`` if given, else SSE for ``Accept: text/event-stream``, else JSON."""
    if requested is not None:
        chosen = FORMATS.get(requested.lower())
        if chosen is None:
            raise BadRequest(f"format must be one of {', '.join(FORMATS)}", part=f"format={requested}")
        return chosen
    if accept and "text/event-stream" in accept.lower():
        return FORMATS["sse"]
    return FORMATS["json"]


def parse_tail(args: Mapping[str, Sequence[str]], headers: Mapping[str, Optional[str]]) -> TailRequest:
    """Validate a tail's arguments (last value wins) and headers (lower-case names)."""

    def arg(name: str) -> Optional[str]:
        values = args.get(name)
        return values[-1] if values else None

    index, query, sub_id = arg("i"), arg("q"), arg("s")
    fmt = choose_format(arg("format"), headers.get("accept"))
    limit = _number(arg("limit"), "limit", int, MAX_LIMIT)
    timeout = _number(arg("timeout"), "timeout", float, MAX_TIMEOUT_S)
    on_slow = (arg("on_slow") or "drop").lower()
    if on_slow not in ("drop", "close"):
        raise BadRequest("on_slow must be drop or close", part=f"on_slow={arg('on_slow')}")
    highlight = (arg("highlight") or "false").lower()
    if highlight not in ("true", "false"):
        raise BadRequest("highlight must be true or false", part=f"highlight={arg('highlight')}")
    # A browser's EventSource reconnects to the URL it was given and says where it was in a header:
    # the header is newer than any since= in that URL.
    last_event_id = headers.get("last-event-id")
    since = None
    if last_event_id:
        since = parse_since(last_event_id, "Last-Event-ID")
    elif arg("since") is not None:
        since = parse_since(arg("since") or "")
    if sub_id is not None and query is None:
        return TailRequest(contract.PROC_LOOKUP, (sub_id,), fmt, limit, timeout, since, on_slow, highlight == "true")
    if query is None:
        raise BadRequest("give a query q=<query> and an index i=<index>, or a subscription id s=<id>", part="q")
    if index is None:
        raise BadRequest("q=<query> needs an index i=<index>", part="i")
    operator = arg("default_operator") or "or"
    return TailRequest(contract.PROC_REGISTER, (index, query, operator), fmt, limit, timeout, since, on_slow, highlight == "true")


# --- GET /api/v0.1/counts ------------------------------------------------------------------------

MIN_WINDOW_MS = 1000
MIN_PROVISIONAL_MS = 250
MAX_WINDOW_MS = 3_600_000
MAX_TOP = 100
MAX_LATENESS_MS = 3_600_000
MAX_FIELD_CHARS = 256
DEFAULT_LATENESS_MS = 1000
"""Arrival times are stamped by the Beater and reach the Tailor a moment later: wait a second by default."""


@dataclass(frozen=True)
class CountsRequest:
    """A validated counts request: the tail it streams through, and what it counts."""

    tail: TailRequest
    window_ms: int
    by: Optional[str] = None
    top: int = 10
    time_field: Optional[str] = None
    lateness_ms: int = DEFAULT_LATENESS_MS
    provisional_ms: int = 0
    partial: bool = True
    resumed: bool = False


def _duration(value: Optional[str], name: str, least_ms: int, most_ms: int) -> Optional[int]:
    if value is None:
        return None
    ms = parse_duration_ms(value)
    if ms is None or not least_ms <= ms <= most_ms:
        raise BadRequest(f"{name} must be a duration from {least_ms / 1000:g}s to {most_ms / 1000:g}s "
                         "(e.g. 10s, 1m, 500ms; bare numbers are seconds)", part=f"{name}={value}")
    return ms


def _field(value: Optional[str], name: str) -> Optional[str]:
    if value is None:
        return None
    if not value.strip() or len(value) > MAX_FIELD_CHARS or any(c in value for c in "\r\n\0"):
        raise BadRequest(f"{name} must be a field name or dotted path (e.g. meta.dt) of at most {MAX_FIELD_CHARS} characters",
                         part=f"{name}={value}")
    return value.strip()


def parse_counts(args: Mapping[str, Sequence[str]], headers: Mapping[str, Optional[str]]) -> CountsRequest:
    """Validate a counts request: the docs endpoint's parameters (no ``since=``: windows are not replayed),
    then ``window``, ``by``, ``top``, ``time_field``, ``lateness`` (or ``lateness_s``), ``provisional`` and ``partial``."""

    def arg(name: str) -> Optional[str]:
        values = args.get(name)
        return values[-1] if values else None

    if arg("since") is not None:
        raise BadRequest("counts cannot resume from a cursor: windows are counted live, from when the tail opens",
                         part=f"since={arg('since')}")
    highlight = (arg("highlight") or "false").lower()
    if highlight not in ("true", "false"):
        raise BadRequest("highlight must be true or false", part=f"highlight={arg('highlight')}")
    # A browser's EventSource reconnects with Last-Event-ID: go on live (the client is told), never refuse it.
    resumed = bool(headers.get("last-event-id"))
    tail = parse_tail(args, {**headers, "last-event-id": None})
    window_ms = _duration(arg("window") or "10s", "window", MIN_WINDOW_MS, MAX_WINDOW_MS)
    assert window_ms is not None
    top = _number(arg("top"), "top", int, MAX_TOP) or 10
    lateness_name = "lateness" if arg("lateness") is not None else "lateness_s"
    lateness_ms = _duration(arg(lateness_name), lateness_name, 0, MAX_LATENESS_MS)
    provisional = arg("provisional")
    # A provisional record every few milliseconds would keep the reactor busy for nothing.
    provisional_ms = None if provisional in (None, "0") else _duration(provisional, "provisional", MIN_PROVISIONAL_MS, window_ms)
    partial = (arg("partial") or "true").lower()
    if partial not in ("true", "false"):
        raise BadRequest("partial must be true or false", part=f"partial={arg('partial')}")
    return CountsRequest(
        tail=tail, window_ms=window_ms, by=_field(arg("by"), "by"), top=top,
        time_field=_field(arg("time_field"), "time_field"),
        lateness_ms=DEFAULT_LATENESS_MS if lateness_ms is None else lateness_ms,
        provisional_ms=provisional_ms or 0, partial=partial == "true", resumed=resumed,
    )
