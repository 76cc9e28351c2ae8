"""The bytes of an HTTP tail in each of its three formats.

``json`` (the default) is one JSON document that is a valid prefix at every
moment: ``{"subscription_id": "<id>", "hits": [`` opens it, hits follow
separated by ``,\\n``, and ``\\n]}\\n`` closes it when a ``limit`` or
``timeout`` ends the stream.  Heartbeats are a lone newline: whitespace is
valid between JSON tokens, so proxies see traffic and parsers see nothing.

``ndjson`` is one JSON value per line (``curl -N ... | jq``), ``sse`` is
Server-Sent Events for a browser's ``EventSource``: each hit an event whose
``id:`` is the tail's cursor after it (``tailor/cursor.py``), so a reconnecting
browser sends ``Last-Event-ID`` and resumes after it on every Beater.

In every format the Tailor's own records (hits dropped for a slow client, a
gap in a resumed stream, the end of the stream) are ``{"_estrom": {...}}``
objects: no hit has an ``_estrom`` key, so none is ever mistaken for one.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Dict, Iterable, NamedTuple, Optional, Sequence

from beater.hits import encode_hit

HEARTBEAT = b"\n"
FOOTER = b"\n]}\n"

class Delivered(NamedTuple):
    """A hit as the Tailor passes it on: the Beater that published it, its ``_seq`` there, its encoded JSON."""

    beater: str
    seq: int
    data: bytes


def header(subscription_id: str) -> bytes:
    """The opening bytes of a JSON tail for ``subscription_id``."""
    return b'{"subscription_id": ' + json.dumps(subscription_id).encode() + b', "hits": [\n'


def join_hits(encoded: Sequence[bytes], first: bool) -> bytes:
    """Encoded hits as array elements; ``first`` says whether nothing precedes them in the array."""
    if not encoded:
        return b""
    body = b",\n".join(encoded)
    return body if first else b",\n" + body


def encode_hits(hits: Iterable[Any], first: bool) -> bytes:
    """``hits`` as array elements; ``first`` says whether nothing precedes them in the array."""
    return join_hits([encode_hit(hit) for hit in hits], first)


def control(**details: Any) -> Dict[str, Any]:
    """A Tailor record (never a hit): ``{"_estrom": {kind: ..., ...}}``."""
    return {"_estrom": details}


def encode_control(record: Dict[str, Any]) -> bytes:
    """A Tailor record as compact JSON."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()


class Format:
    """How one tail format frames its header, hits, records, heartbeats and end."""

    name = "json"
    content_type = b"application/json; charset=utf-8"
    wants_ids = False
    """Whether :meth:`hits` writes event ids (the tail computes them only then)."""
    readable: Optional[str] = None
    """The query as a Lucene-style string (``+bar +foo``) the header shows, if the format has room for it."""

    def for_query(self, readable: Optional[str]) -> "Format":
        """This format with ``readable`` (the registration answer's) as the default of :meth:`header`."""
        bound = copy.copy(self)
        bound.readable = readable
        return bound

    def header(self, subscription_id: str, readable: Optional[str] = None) -> bytes:
        """The bytes sent right after the 200 (the JSON prefix is pinned: it never shows ``readable``)."""
        return header(subscription_id)

    def opening_record(self, subscription_id: str, readable: Optional[str]) -> bytes:
        """The Tailor record naming the subscription (and the query as read, when known)."""
        shown = readable if readable is not None else self.readable
        details: Dict[str, Any] = {"subscription_id": subscription_id}
        if shown is not None:
            details["readable"] = shown
        return encode_control(control(**details))

    def hits(self, hits: Sequence[Delivered], first: bool, ids: Sequence[bytes] = ()) -> bytes:
        """The hits of one write; ``first`` says whether nothing was written since the header; ``ids``
        (when the format wants them) the event id after each hit."""
        return join_hits([hit.data for hit in hits], first)

    def record(self, kind: str, body: Dict[str, Any], first: bool) -> bytes:
        """A Tailor record of ``kind`` (``dropped``, ``gap``, ``end``, ``error``)."""
        return join_hits([encode_control(body)], first)

    def heartbeat(self) -> bytes:
        """Bytes that keep an idle connection alive and mean nothing to a parser."""
        return HEARTBEAT

    def footer(self, end: Optional[Dict[str, Any]], first: bool) -> bytes:
        """The closing bytes, after a record saying why unless the client asked for the end itself."""
        if end is None or end["_estrom"].get("end") in SELF_EVIDENT_ENDS:
            return FOOTER
        return self.record("end", end, first) + FOOTER


class NdjsonFormat(Format):
    """One JSON value per line; the first line names the subscription."""

    name = "ndjson"
    content_type = b"application/x-ndjson"

    def header(self, subscription_id: str, readable: Optional[str] = None) -> bytes:
        """A first line ``{"_estrom": {"subscription_id": ..., "readable": ...}}`` (``readable`` when known)."""
        return self.opening_record(subscription_id, readable) + b"\n"

    def hits(self, hits: Sequence[Delivered], first: bool, ids: Sequence[bytes] = ()) -> bytes:
        """One line per hit."""
        return b"".join(hit.data + b"\n" for hit in hits)

    def record(self, kind: str, body: Dict[str, Any], first: bool) -> bytes:
        """One line per record."""
        return encode_control(body) + b"\n"

    def footer(self, end: Optional[Dict[str, Any]], first: bool) -> bytes:
        """The end record, if any, as a last line."""
        return self.record("end", end, first) if end is not None else b""


class SseFormat(Format):
    """Server-Sent Events: hits are ``message`` events with ``id:``, records have their own event names."""

    name = "sse"
    content_type = b"text/event-stream; charset=utf-8"
    RETRY_MS = 3000
    wants_ids = True

    def header(self, subscription_id: str, readable: Optional[str] = None) -> bytes:
        """``retry:`` (how long a browser waits before reconnecting), then a ``subscription`` event
        (with ``readable`` when known)."""
        data = self.opening_record(subscription_id, readable)
        return b"retry: %d\n\nevent: subscription\ndata: %s\n\n" % (self.RETRY_MS, data)

    def hits(self, hits: Sequence[Delivered], first: bool, ids: Sequence[bytes] = ()) -> bytes:
        """One event per hit, the cursor after it in ``id:`` (JSON never holds a raw newline)."""
        return b"".join(b"id: %s\ndata: %s\n\n" % (event_id, hit.data) for event_id, hit in zip(ids, hits))

    def record(self, kind: str, body: Dict[str, Any], first: bool) -> bytes:
        """``event: <kind>`` with the record as its data."""
        return b"event: %s\ndata: %s\n\n" % (kind.encode(), encode_control(body))

    def heartbeat(self) -> bytes:
        """A comment line: EventSource ignores it."""
        return b":\n\n"

    def footer(self, end: Optional[Dict[str, Any]], first: bool) -> bytes:
        """Always an ``end`` event, so a browser knows to close rather than reconnect."""
        return self.record("end", end if end is not None else control(end="done"), first)


MAX_QUERY_HEADER = 2048
"""Longest ``X-Estrom-Query`` value sent: proxies refuse big headers, the stream's header has it all."""


def readable_of(registration: Any) -> Optional[str]:
    """The registration answer's ``readable`` query string (None from a Beater that does not send one)."""
    readable = registration.get("readable") if isinstance(registration, dict) else None
    return readable if isinstance(readable, str) else None


def query_header(readable: Optional[str]) -> Optional[bytes]:
    """``readable`` as an ``X-Estrom-Query`` value, or None when it is not printable ASCII or too long
    (header values are bytes; a mangled query would mislead more than a missing one)."""
    if readable is None or not readable or len(readable) > MAX_QUERY_HEADER:
        return None
    if not all(" " <= c <= "~" for c in readable):
        return None
    return readable.encode("ascii")


SELF_EVIDENT_ENDS = ("limit", "timeout")
"""Ends the client asked for: the JSON format closes with ``]}`` alone, as it always did."""


FORMATS: Dict[str, Format] = {f.name: f for f in (Format(), NdjsonFormat(), SseFormat())}
