"""Feed Wikimedia recent changes into estrom: the live EventStreams firehose, or a recorded capture.

    python examples/wikimedia.py                                   # live, from stream.wikimedia.org
    python examples/wikimedia.py --replay examples/data/recentchange.ndjson             # original pace
    python examples/wikimedia.py --replay examples/data/recentchange.ndjson --speed 10  # 10x faster
    python examples/wikimedia.py --replay examples/data/recentchange.ndjson --speed 0   # at once

Live, it reads the ``recentchange`` Server-Sent Events stream with the standard library
(``urllib`` and the small SSE parser below), skips EventStreams' canary events (``meta.domain ==
"canary"``, its own health probes, not edits) and, when the connection drops, reconnects with
back-off and ``Last-Event-ID`` set to the last event id received (EventStreams ids are the Kafka
positions, so it resumes where it left off).  With ``--replay FILE`` it posts an NDJSON capture,
keeping the gaps between events' ``meta.dt`` divided by ``--speed``.

Either way events go to the Beater (``POST <beater>/api/v0.1/beat/<index>``, default index
``recentchange``) as NDJSON batches of what is due, over one kept-alive connection, with
``Authorization: Bearer $ESTROM_INGEST_TOKEN`` when that variable is set.  A progress line is
printed every few seconds and a summary at the end::

    wikimedia: done sent=4062 accepted=4062 rejected=0 posts=9 seconds=0.5
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple
from urllib.parse import urlsplit

STREAM_URL = "https://stream.wikimedia.org/v2/stream/recentchange"
USER_AGENT = "estrom-wikimedia-example/1.0 (examples/wikimedia.py, a live-tail demo; Python urllib)"
"""Wikimedia asks every client for a descriptive User-Agent; ``--user-agent`` adds your contact."""
PROGRESS_EVERY_S = 5.0


class FeedError(Exception):
    """The Beater refused the feed for a reason retrying cannot fix (a bad token, a bad index)."""


# --- posting to the Beater -----------------------------------------------------------------------


@dataclass
class Counts:
    """What the feed has done so far."""

    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    posts: int = 0
    skipped: int = 0
    started: float = field(default_factory=time.monotonic)

    def line(self, state: str) -> str:
        """One ``key=value`` line, for the progress output and the summary."""
        seconds = time.monotonic() - self.started
        extra = f" skipped={self.skipped}" if self.skipped else ""
        return (f"wikimedia: {state} sent={self.sent} accepted={self.accepted} rejected={self.rejected} "
                f"posts={self.posts}{extra} seconds={seconds:.1f}")


class Beater:
    """One kept-alive HTTP connection to the Beater's ingest endpoint; posts NDJSON batches."""

    RETRIES = 6

    def __init__(self, base_url: str, index: str, token: Optional[str], counts: Counts) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise FeedError(f"--beater must be an http(s) URL, not {base_url!r}")
        self.https = url.scheme == "https"
        self.host = url.hostname
        self.port = url.port or (443 if self.https else 80)
        self.path = f"{url.path.rstrip('/')}/api/v0.1/beat/{index}"
        self.headers = {"content-type": "application/x-ndjson"}
        if token:
            self.headers["authorization"] = f"Bearer {token}"
        self.counts = counts
        self.conn: Optional[http.client.HTTPConnection] = None

    def _connection(self) -> http.client.HTTPConnection:
        if self.conn is None:
            cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            self.conn = cls(self.host, self.port, timeout=60)
        return self.conn

    def post(self, lines: List[bytes]) -> None:
        """POST ``lines`` as one NDJSON body and count the answer.

        A dropped connection or a 503 (the Beater cannot reach its router: nothing was ingested)
        is retried with back-off; another 4xx stops the feed, as no retry would fix it.
        """
        if not lines:
            return
        body = b"\n".join(lines) + b"\n"
        delay = 0.5
        for attempt in range(self.RETRIES + 1):
            try:
                conn = self._connection()
                conn.request("POST", self.path, body=body, headers=self.headers)
                response = conn.getresponse()
                raw = response.read()
            except (OSError, http.client.HTTPException) as e:
                self.close()  # a kept-alive connection the server closed: open a new one
                problem = f"{type(e).__name__}: {e}"
            else:
                answer = _json_or_text(raw)
                if response.status == 200 or (response.status == 400 and isinstance(answer, dict) and "rejected" in answer):
                    self._count(len(lines), answer)
                    return
                if response.status != 503:
                    raise FeedError(f"the Beater answered {response.status}: {answer}")
                problem = f"503 {answer}"
            if attempt == self.RETRIES:
                break
            print(f"wikimedia: posting failed ({problem}); retrying in {delay:g} s", file=sys.stderr, flush=True)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
        raise FeedError(f"the Beater did not take a batch after {self.RETRIES + 1} attempts: {problem}")

    def _count(self, sent: int, answer: Dict[str, Any]) -> None:
        self.counts.sent += sent
        self.counts.posts += 1
        self.counts.accepted += int(answer.get("accepted", 0))
        self.counts.rejected += int(answer.get("rejected", 0))
        for error in answer.get("errors", [])[:3]:
            print(f"wikimedia: rejected: {error}", file=sys.stderr, flush=True)

    def close(self) -> None:
        """Drop the connection (the next post opens a new one)."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw[:300].decode("utf-8", "replace")


class Progress:
    """Prints a progress line at most every ``PROGRESS_EVERY_S`` seconds."""

    def __init__(self, counts: Counts) -> None:
        self.counts = counts
        self.last = time.monotonic()

    def tick(self, state: str) -> None:
        """Print a line if the last one is old enough."""
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            print(self.counts.line(state), flush=True)


# --- replaying a capture ---------------------------------------------------------------------------


def event_time(event: Dict[str, Any]) -> Optional[float]:
    """When the event happened, in epoch seconds: ``meta.dt`` (ISO 8601), else ``timestamp``."""
    dt = (event.get("meta") or {}).get("dt") if isinstance(event.get("meta"), dict) else None
    if isinstance(dt, str):
        try:
            # fromisoformat reads a trailing "Z" only from Python 3.11 on.
            return datetime.fromisoformat(dt.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    stamp = event.get("timestamp")
    return float(stamp) if isinstance(stamp, (int, float)) else None


def schedule(lines: Iterable[bytes], speed: float, max_gap: float) -> Iterator[Tuple[float, bytes]]:
    """Each line with the offset, in seconds from the start of the replay, at which it is due.

    Offsets keep the gaps between events' times divided by ``speed`` (``0``: everything is due at
    once).  The stream is only roughly ordered by time, so an event older than the one before it
    is due with it; a gap longer than ``max_gap`` (the years between two captures joined in one
    file) counts as ``max_gap``.  A line without a readable time is due with the one before.
    """
    offset = 0.0
    previous: Optional[float] = None
    for line in lines:
        if not line.strip():
            continue
        try:
            event = json.loads(line)
            when = event_time(event) if isinstance(event, dict) else None
        except ValueError:
            when = None  # sent anyway: the Beater reports the bad line, the feed goes on
        if when is not None:
            if previous is not None and speed > 0:
                offset += min(max(when - previous, 0.0), max_gap) / speed
            previous = when
        yield offset, line


def replay(path: Path, beater: Beater, speed: float, max_gap: float, batch: int) -> None:
    """Post the capture at ``path`` with its original timing scaled by ``speed``."""
    progress = Progress(beater.counts)
    due: List[bytes] = []
    start = time.monotonic()
    with path.open("rb") as capture:
        for offset, line in schedule((raw.rstrip(b"\r\n") for raw in capture), speed, max_gap):
            wait = start + offset - time.monotonic()
            if wait > 0 or len(due) >= batch:
                # Everything already due goes in one request before waiting for the next event.
                beater.post(due)
                due = []
                progress.tick("replaying")
                wait = start + offset - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            due.append(line)
    beater.post(due)


# --- the live stream -------------------------------------------------------------------------------


@dataclass
class SseEvent:
    """One Server-Sent Event: its type, data (lines joined by newlines) and id."""

    event: str
    data: str
    id: Optional[str]


class SseParser:
    """The part of the WHATWG ``text/event-stream`` rules a feed needs: fields, comments, dispatch.

    ``last_id`` persists across events (and is what goes into ``Last-Event-ID`` on reconnect);
    ``retry`` is the server's reconnection delay in milliseconds, when it sent one.
    """

    def __init__(self) -> None:
        self.last_id: Optional[str] = None
        self.retry: Optional[int] = None
        self._event = ""
        self._data: List[str] = []

    def line(self, raw: bytes) -> Optional[SseEvent]:
        """Take one line (with or without its line ending); return the event it completes, if any."""
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not text:
            return self._dispatch()
        if text.startswith(":"):
            return None  # a comment: EventStreams' keep-alive
        name, colon, value = text.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self.last_id = value
        elif name == "retry" and value.isdigit():
            self.retry = int(value)
        return None

    def reset(self) -> None:
        """Forget a half-received event (the connection dropped mid-event); keep ``last_id``."""
        self._event, self._data = "", []

    def _dispatch(self) -> Optional[SseEvent]:
        if not self._data:
            self._event = ""
            return None
        event = SseEvent(self._event or "message", "\n".join(self._data), self.last_id)
        self.reset()
        return event


def is_canary(event: Any) -> bool:
    """Whether this is one of EventStreams' canary events (its own monitoring, not a change)."""
    return isinstance(event, dict) and isinstance(event.get("meta"), dict) and event["meta"].get("domain") == "canary"


def open_stream(url: str, user_agent: str, last_event_id: Optional[str]) -> http.client.HTTPResponse:
    """Open the SSE stream, resuming after ``last_event_id`` when there is one."""
    headers = {"Accept": "text/event-stream", "User-Agent": user_agent}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60)


def live(url: str, user_agent: str, beater: Beater, batch: int, flush_s: float = 0.5) -> None:
    """Follow the live stream forever (until Ctrl-C), posting what arrived every ``flush_s`` seconds."""
    parser = SseParser()
    progress = Progress(beater.counts)
    due: List[bytes] = []
    delay = 1.0
    while True:
        try:
            with open_stream(url, user_agent, parser.last_id) as response:
                print(f"wikimedia: connected to {url}" + (f" after {parser.last_id}" if parser.last_id else ""), flush=True)
                flushed = time.monotonic()
                for raw in response:  # one line at a time, as it arrives
                    event = parser.line(raw)
                    if event is not None and event.event == "message":
                        delay = 1.0  # the stream works again: the next drop starts the back-off anew
                        try:
                            document = json.loads(event.data)
                        except ValueError:
                            continue
                        if is_canary(document):
                            beater.counts.skipped += 1
                            continue
                        due.append(json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode())
                    # The stream is never quiet for long (a keep-alive comment at least), so checking
                    # here is enough to post within about flush_s of arrival.
                    if due and (len(due) >= batch or time.monotonic() - flushed >= flush_s):
                        beater.post(due)
                        due = []
                        flushed = time.monotonic()
                        progress.tick("live")
                problem = "the server ended the stream"
        except (OSError, http.client.HTTPException) as e:
            problem = f"{type(e).__name__}: {e}"
        beater.post(due)
        due = []
        parser.reset()
        wait = max(delay, (parser.retry or 0) / 1000)
        print(f"wikimedia: stream lost ({problem}); reconnecting in {wait:g} s", file=sys.stderr, flush=True)
        time.sleep(wait)
        delay = min(delay * 2, 60.0)


# --- command line ----------------------------------------------------------------------------------


def main(argv: Optional[List[str]] = None) -> int:
    """Run the feed; return the exit code (0 when done or interrupted, 1 when the Beater refused it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replay", type=Path, metavar="FILE",
                        help="post this NDJSON capture instead of the live stream (e.g. examples/data/recentchange.ndjson)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="replay: divide the original gaps between events by this (0: as fast as possible); default 1")
    parser.add_argument("--max-gap", type=float, default=10.0,
                        help="replay: a longer gap between two events counts as this many seconds; default 10")
    parser.add_argument("--beater", default="http://127.0.0.1:8001", help="the Beater's base URL; default %(default)s")
    parser.add_argument("--index", default="recentchange", help="the index to post into; default %(default)s")
    parser.add_argument("--batch", type=int, default=500, help="most events in one POST; default %(default)s")
    parser.add_argument("--stream-url", default=STREAM_URL, help="live: the EventStreams URL; default %(default)s")
    parser.add_argument("--user-agent", default=USER_AGENT,
                        help="live: the User-Agent sent to Wikimedia (add your contact, as Wikimedia asks)")
    args = parser.parse_args(argv)
    if args.speed < 0 or args.max_gap < 0 or args.batch < 1:
        parser.error("--speed and --max-gap must be >= 0 and --batch >= 1")
    if args.replay is not None and not args.replay.is_file():
        parser.error(f"--replay: no such file: {args.replay}")

    counts = Counts()
    try:
        beater = Beater(args.beater, args.index, os.environ.get("ESTROM_INGEST_TOKEN") or None, counts)
        try:
            if args.replay is not None:
                replay(args.replay, beater, args.speed, args.max_gap, args.batch)
            else:
                live(args.stream_url, args.user_agent, beater, args.batch)
        finally:
            beater.close()
    except KeyboardInterrupt:
        print(counts.line("interrupted"), flush=True)
        return 0
    except FeedError as e:
        print(f"wikimedia: {e}", file=sys.stderr, flush=True)
        print(counts.line("failed"), flush=True)
        return 1
    print(counts.line("done"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
