"""The document feeder of bench/e2e.py, in a process of its own.

    python bench/feeder.py <beater base url> <index> <rate> <seconds> <interval ms> <first document>

Posts the sample's events as NDJSON, ``rate x interval`` documents every ``interval``
milliseconds, each document stamped ``"bench_sent": <time.time()>`` just before its
POST is sent.  POSTs overlap when one is slow (a few threads, one kept-alive
connection each).  Prints one JSON line at the end: documents posted, seconds taken,
and how long each POST took to be answered.

It runs apart from the process that reads the WAMP hits and probes the router: in one
process, a feeder thread that had stamped a batch could wait for the interpreter
lock while the reactor thread read events, and that wait was charged to estrom.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import List
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.workload import load_documents  # noqa: E402

THREADS = 8


class Poster:
    """Blocking POSTs, one kept-alive connection per thread."""

    def __init__(self, base: str, index: str) -> None:
        url = urlsplit(base)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.path = f"/api/v0.1/beat/{index}"
        self.local = threading.local()

    def post(self, lines: List[str]) -> float:
        """Stamp, send, wait for the answer; return the seconds from stamp to answer."""
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        sent = time.time()
        stamp = '"bench_sent":' + repr(sent)
        body = "\n".join(line.replace('"bench_sent":0', stamp) for line in lines).encode()
        conn.request("POST", self.path, body=body, headers={"content-type": "application/x-ndjson"})
        answer = conn.getresponse()
        answer.read()
        if answer.status != 200:
            raise RuntimeError(f"POST answered {answer.status}")
        return time.time() - sent


def main(base: str, index: str, rate: float, seconds: float, interval_ms: float, first: int) -> None:
    """Feed ``rate`` docs/s for ``seconds``, starting at sample document ``first``; print the figures."""
    docs = load_documents()
    lines = [json.dumps(dict(doc, bench_sent=0), separators=(",", ":")) for doc in docs]
    poster = Poster(base, index)
    tick = interval_ms / 1000.0
    per_tick = max(1, round(rate * tick))
    position = first
    posted = 0
    pending: List[Future] = []
    with ThreadPoolExecutor(THREADS) as pool:
        started = time.monotonic()
        next_at = started
        while time.monotonic() - started < seconds:
            batch = [lines[(position + i) % len(lines)] for i in range(per_tick)]
            position += per_tick
            posted += per_tick
            pending.append(pool.submit(poster.post, batch))
            next_at += tick
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        answers = [f.result() for f in pending]
        elapsed = time.monotonic() - started
    print(json.dumps({"posted": posted, "seconds": elapsed, "per_post": per_tick, "answers": answers}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 7:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]))
