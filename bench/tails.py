"""A process of HTTP tails for bench/e2e.py: reads hits, prints each one's age in ms on stdout.

    python bench/tails.py <tailor base url> <index> <queries.json>

Kept out of the feeding process so that reading a hundred streams does not
delay the feeder's clock, and cheap per hit: the age comes from the
``"bench_sent":<seconds>`` the feeder put in each document, found in the raw
bytes rather than by decoding every hit.  Prints ``ready`` once every tail has
its header.
"""

from __future__ import annotations

import json
import re
import sys
import time
from typing import List

import treq
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred

SENT = re.compile(rb'"bench_sent":([0-9.eE+-]+)')


class Reader:
    """One tail: finds each hit's send time as bytes arrive (a hit never spans a marker)."""

    def __init__(self, out: List[str]) -> None:
        self.tail = b""
        self.out = out

    def feed(self, chunk: bytes) -> None:
        now = time.time()
        data = self.tail + chunk
        last = 0
        for match in SENT.finditer(data):
            if match.end() == len(data):
                break  # the number may continue in the next chunk
            self.out.append(f"{(now - float(match.group(1))) * 1000:.3f}")
            last = match.end()
        self.tail = data[last:][-64:] if last else data[-64:]


async def main(base: str, index: str, queries: List[str]) -> None:
    out: List[str] = []

    def flush() -> None:
        if out:
            sys.stdout.write("\n".join(out) + "\n")
            sys.stdout.flush()
            out.clear()
        reactor.callLater(0.05, flush)

    for query in queries:
        response = await treq.get(f"{base}/api/v0.1/docs", params={"i": index, "q": query}, unbuffered=True)
        treq.collect(response, Reader(out).feed).addErrback(lambda f: None)
    print("ready", flush=True)
    flush()


if __name__ == "__main__":
    base_url, index_name, path = sys.argv[1:4]
    reactor.callWhenRunning(lambda: ensureDeferred(main(base_url, index_name, json.load(open(path)))))
    reactor.run()
