"""Tumbling-window counts over a subscription's hits: the records of ``GET /api/v0.1/counts``.

Windows are ``window_ms`` long and aligned to the epoch (a 10 s window starts
at :00, :10, ...), so two subscriptions with the same window agree on its
edges.  A hit falls in the window of its *event time*: the value of
``time_field`` in its ``_source`` (a dotted path such as ``meta.dt`` or a key
such as ``@timestamp``; ISO-8601, or epoch seconds / milliseconds) when it
carries one, else its ``_received`` (the Beater's arrival time).

A window closes once the clock passes its end plus ``lateness_ms``, and is
emitted exactly once then, empty windows included (a chart has no holes).
A hit whose window already closed is never dropped silently: it is counted
in the ``late`` field of the window that is open now; one dated more than a
window ahead of the clock (a wrong clock at the source) goes to ``early`` of
that window instead of opening windows far in the future.  The first window
is ``partial`` when the subscription began after its start, as is every
window open when the stream had a gap.

With ``by``, each window also counts documents per value of a keyword field:
a string is one group, an array counts the document once in each distinct
value it holds, a missing field (or ``null``, ``[]``, an object) is the
``null`` group.  The top ``top`` groups are listed, the rest summed in
``other``.

Pure logic, no I/O: the caller passes the clock (epoch milliseconds).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Set, Tuple

RECEIVED = "_received"
"""The arrival time every hit carries (ISO-8601, set by the Beater)."""
EPOCH_MS_FROM = 10 ** 11
"""Epoch numbers from here on are milliseconds (1973 on), below it seconds (until year 5138)."""
MAX_GROUPS = 10_000
"""Most distinct group keys a window keeps: documents of further keys are counted in ``other`` alone."""
MAX_CATCH_UP = 10_000
"""Most windows one :meth:`WindowCounter.advance` emits (a clock that jumped a day ahead must not flood a tail)."""

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*\Z")
_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}


def parse_duration_ms(text: str) -> Optional[int]:
    """``500ms``, ``10s``, ``1.5m``, ``1h`` or bare seconds as milliseconds; None when it is none of those."""
    match = _DURATION.match(text)
    if match is None:
        return None
    value = float(match.group(1)) * _UNITS_MS[match.group(2) or "s"]
    return int(round(value)) if math.isfinite(value) else None


def iso_ms(epoch_ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC with milliseconds, like ``_received`` (``2026-12-01T10:00:00.000Z``)."""
    moment = datetime.fromtimestamp(epoch_ms // 1000, timezone.utc).replace(microsecond=(epoch_ms % 1000) * 1000)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def lookup(document: Any, path: str) -> Any:
    """The value at a dotted ``path`` in ``document`` (a literal key with dots wins); None if absent."""
    if not isinstance(document, dict):
        return None
    if path in document:
        return document[path]
    head, dot, rest = path.partition(".")
    while dot:
        if head in document:
            found = lookup(document[head], rest)
            if found is not None:
                return found
        more, dot, rest = rest.partition(".")
        head = f"{head}.{more}"
    return None


def time_ms(value: Any) -> Optional[int]:
    """An event time as epoch milliseconds: ISO-8601 (no zone means UTC), or epoch seconds / milliseconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            return None
        return int(value) if value >= EPOCH_MS_FROM else int(value * 1000)
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return time_ms(int(text))
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "Zz" else text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    whole = int(moment.replace(microsecond=0).timestamp())
    return whole * 1000 + moment.microsecond // 1000


def hit_time_ms(hit: Any, time_field: Optional[str]) -> Optional[int]:
    """When ``hit`` happened: ``time_field`` of its ``_source`` if it holds a time, else its ``_received``."""
    if not isinstance(hit, dict):
        return None
    if time_field:
        when = time_ms(lookup(hit.get("_source"), time_field))
        if when is not None:
            return when
    return time_ms(hit.get(RECEIVED))


def group_keys(hit: Any, by: str) -> List[Optional[str]]:
    """The groups ``hit`` counts in: each distinct keyword value of ``by`` in its ``_source``, else ``[None]``."""
    value = lookup(hit.get("_source") if isinstance(hit, dict) else None, by)
    values = value if isinstance(value, list) else [value]
    keys: List[Optional[str]] = []
    for item in values:
        key = _keyword(item)
        if key is not None and key not in keys:
            keys.append(key)
    return keys or [None]


def _keyword(value: Any) -> Optional[str]:
    # A keyword field indexes scalars as their text (true, 3); objects and nulls hold no keyword.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return str(value)
    return None


@dataclass
class _Window:
    start_ms: int
    partial: bool = False
    count: int = 0
    late: int = 0
    early: int = 0
    groups: "Counter[Optional[str]]" = field(default_factory=Counter)
    capped: bool = False


@dataclass(frozen=True)
class WindowSpec:
    """What a counts subscription computes; equal specs over one subscription id share one counter."""

    window_ms: int
    by: Optional[str] = None
    top: int = 10
    time_field: Optional[str] = None
    lateness_ms: int = 0


class WindowCounter:
    """The open windows of one counts subscription, from ``start_ms`` on."""

    def __init__(self, spec: WindowSpec, start_ms: int) -> None:
        if spec.window_ms <= 0:
            raise ValueError("a window lasts at least one millisecond")
        self.spec = spec
        first = self.window_start(start_ms)
        self.next_ms = first  # the start of the oldest window not emitted yet
        self._open: Dict[int, _Window] = {first: _Window(first, partial=start_ms > first)}
        self._changed: Set[int] = set()  # windows counted in since the last provisional records

    def window_start(self, when_ms: int) -> int:
        """The start of the window ``when_ms`` falls in."""
        return when_ms - when_ms % self.spec.window_ms

    def next_close_ms(self) -> int:
        """When the oldest open window closes (its end plus the allowed lateness)."""
        return self.next_ms + self.spec.window_ms + self.spec.lateness_ms

    def add(self, hit: Any, now_ms: int) -> None:
        """Count one hit (a decoded hit JSON object) at clock ``now_ms``."""
        spec = self.spec
        when = hit_time_ms(hit, spec.time_field)
        if when is None:  # no _received either: not a hit the Beater made; count it as it arrives
            when = now_ms
        current = self._current(now_ms)
        if when < self.next_ms:
            current.late += 1
            self._changed.add(current.start_ms)
            return
        if when >= now_ms + spec.window_ms:
            current.early += 1
            self._changed.add(current.start_ms)
            return
        window = self._window(self.window_start(when))
        window.count += 1
        self._changed.add(window.start_ms)
        if spec.by is not None:
            for key in group_keys(hit, spec.by):
                if key in window.groups or len(window.groups) < MAX_GROUPS:
                    window.groups[key] += 1
                else:
                    window.capped = True
                    window.groups[_OVERFLOW] += 1

    def mark_partial(self) -> None:
        """The stream had a gap: every window open now may miss documents."""
        for window in self._open.values():
            window.partial = True
        self._window(self.next_ms).partial = True

    def advance(self, now_ms: int) -> List[Dict[str, Any]]:
        """The windows that closed by ``now_ms``, oldest first, each as its final record."""
        closed: List[Dict[str, Any]] = []
        while self.next_close_ms() <= now_ms and len(closed) < MAX_CATCH_UP:
            window: Optional[_Window] = self._open.pop(self.next_ms, None)
            closed.append(self.record(window or _Window(self.next_ms), final=True))
            self.next_ms += self.spec.window_ms
        if len(closed) >= MAX_CATCH_UP and self.next_close_ms() <= now_ms:
            # More than MAX_CATCH_UP windows behind: skip to the present; the first one after is partial.
            self._open = {s: w for s, w in self._open.items() if s >= self.window_start(now_ms)}
            self.next_ms = self.window_start(now_ms)
            self._window(self.next_ms).partial = True
        return closed

    def provisional(self, now_ms: int) -> List[Dict[str, Any]]:
        """Provisional (not final) records of the window the clock is in and of every open window
        counted in since the last call, oldest first (a long lateness keeps many open: only news is sent)."""
        starts = {s for s in self._changed if s in self._open}
        starts.add(max(self.window_start(now_ms), self.next_ms))
        self._changed.clear()
        return [self.record(self._window(start), final=False) for start in sorted(starts)]

    def record(self, window: "_Window", final: bool) -> Dict[str, Any]:
        """A window as the tail writes it: its span, ``partial``/``final``, the count and the groups."""
        spec = self.spec
        record: Dict[str, Any] = {
            "window": {"start": iso_ms(window.start_ms), "end": iso_ms(window.start_ms + spec.window_ms),
                       "partial": window.partial, "final": final},
            "count": window.count,
        }
        if spec.by is not None:
            groups, other = top_groups(window.groups, spec.top)
            record["by"] = spec.by
            record["groups"] = [{"key": key, "count": count} for key, count in groups]
            record["other"] = other
            if window.capped:
                record["groups_capped"] = True
        record["late"] = window.late
        record["early"] = window.early
        return record

    def _window(self, start_ms: int) -> _Window:
        window = self._open.get(start_ms)
        if window is None:
            window = self._open[start_ms] = _Window(start_ms)
        return window

    def _current(self, now_ms: int) -> _Window:
        # The window the clock is in, or the oldest open one if that closed already (a late clock).
        return self._window(max(self.window_start(now_ms), self.next_ms))


class _Overflow:
    """The group of keys past MAX_GROUPS: summed into ``other``, never listed."""

    def __repr__(self) -> str:
        return "<overflow>"


_OVERFLOW: Any = _Overflow()


def top_groups(groups: "Counter[Any]", top: int) -> Tuple[List[Tuple[Optional[str], int]], int]:
    """The ``top`` biggest groups (ties by key, ``null`` last) and the sum of the rest."""
    listed = [(key, count) for key, count in groups.items() if key is not _OVERFLOW]
    listed.sort(key=lambda kc: (-kc[1], kc[0] is None, kc[0] or ""))
    shown = listed[:top]
    return shown, sum(groups.values()) - sum(count for _, count in shown)
