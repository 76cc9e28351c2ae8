"""Where a tail has got to, over every Beater: the event id a client resumes from.

Each Beater numbers the hits it publishes (``_seq``, per index, growing), and
nothing orders the hits of two Beaters, so "after hit n" only means something
per Beater.  A cursor therefore holds the last ``_seq`` seen from each Beater
(``_beater``) plus a floor time for the Beaters it has not heard from: they are
replayed from that time.  Written out, as an SSE ``id:`` or a ``since=``::

    @1764590000000,3f2a9c1d:4711,b07e55aa:980

Wikimedia EventStreams does the same with one entry per Kafka partition.  A
client that reads JSON or NDJSON builds it from the hits: ``@`` the epoch
milliseconds it started at, then ``<_beater>:<_seq>`` of the last hit from each
Beater.  A bare number below 10^12 (an event id of one Beater, from before
there were several) applies to every Beater; a bare time is a floor alone.

Pure logic, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, Optional

BEATER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
"""What a Beater id may be: it is part of a WAMP URI and of an event id."""
EPOCH_MS_FROM = 10 ** 12
"""Bare numbers from here on are epoch milliseconds (2001-09-09 on); below, a sequence number.

A Beater's sequence numbers count an index's documents from 1, so a stream would need 10^12
documents (six years at 5,000 a second) before the two could be confused."""
MAX_ENTRIES = 256
"""Most Beaters one cursor names: a bound on what a client can make the Tailor parse and call."""


class CursorError(ValueError):
    """A ``since`` / ``Last-Event-ID`` that is not a cursor; the message says what is wrong."""


@dataclass
class Cursor:
    """The last ``_seq`` seen per Beater, a floor time for the others, or one ``_seq`` for all (legacy)."""

    seqs: Dict[str, int] = field(default_factory=dict)
    floor_ms: Optional[int] = None
    any_seq: Optional[int] = None

    def is_fresh(self, beater: str, seq: int) -> bool:
        """Whether the hit ``seq`` of ``beater`` comes after what this cursor has seen."""
        last = self.seqs.get(beater)
        if last is None:
            last = self.any_seq or 0
        return seq > last

    def advance(self, beater: str, seq: int) -> None:
        """Note that the hit ``seq`` of ``beater`` was seen."""
        if seq > self.seqs.get(beater, 0):
            self.seqs[beater] = seq

    def since_for(self, beater: str, now_ms: int) -> Dict[str, int]:
        """The replay cursor to send ``beater``: after its last hit, else from the floor, else from ``now_ms``."""
        if beater in self.seqs:
            return {"seq": self.seqs[beater]}
        if self.any_seq is not None:
            return {"seq": self.any_seq}
        return {"time_ms": self.floor_ms if self.floor_ms is not None else now_ms}

    def copy(self) -> "Cursor":
        """An independent copy (a tail's written position starts as its accepted one)."""
        return Cursor(dict(self.seqs), self.floor_ms, self.any_seq)

    def text(self) -> str:
        """The event id: ``@<floor ms>`` then ``<beater>:<seq>`` per Beater, comma-separated."""
        parts = [] if self.floor_ms is None else [f"@{self.floor_ms}"]
        if self.any_seq is not None and not self.seqs:
            parts.append(str(self.any_seq))
        parts.extend(f"{beater}:{seq}" for beater, seq in self.seqs.items())
        return ",".join(parts)


def parse_cursor(text: str) -> Cursor:
    """A cursor from its text: ``@<ms>``, ``<beater>:<seq>`` entries, a bare event id or epoch ms.

    ISO-8601 times are the caller's business (``tailor/params.py``); this takes the forms the
    Tailor itself writes.
    """
    cursor = Cursor()
    parts = [p.strip() for p in text.split(",")]
    if len(parts) > MAX_ENTRIES + 1:
        raise CursorError(f"a cursor names at most {MAX_ENTRIES} Beaters")
    for part in parts:
        if part.startswith("@"):
            if cursor.floor_ms is not None:
                raise CursorError("a cursor has at most one @<epoch ms>")
            cursor.floor_ms = _count(part[1:], "@ must be followed by epoch milliseconds")
        elif ":" in part:
            beater, _, seq = part.partition(":")
            if not BEATER_ID.match(beater):
                raise CursorError(f"{beater!r} is not a Beater id (letters, digits, '_' and '-', at most 64)")
            if beater in cursor.seqs:
                raise CursorError(f"Beater {beater} is named twice")
            cursor.seqs[beater] = _count(seq, f"{beater}: must be followed by a sequence number")
        else:
            number = _count(part, "expected @<epoch ms>, <beater>:<seq>, an event id or a time")
            if number >= EPOCH_MS_FROM:
                if cursor.floor_ms is not None:
                    raise CursorError("a cursor has at most one time")
                cursor.floor_ms = number
            elif cursor.any_seq is not None:
                raise CursorError("a cursor has at most one bare event id")
            else:
                cursor.any_seq = number
    return cursor


def _count(text: str, message: str) -> int:
    # str.isdigit() also takes digits int() refuses, such as "²"; 19 digits stay within a signed 64-bit seq.
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        raise CursorError(message)
    return int(text)
