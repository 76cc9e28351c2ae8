"""Replay recent-change events into estrom at a chosen rate, like a live firehose.

    python examples/replay.py --rate 200                 # 200 docs/s, once through the file
    python examples/replay.py --rate 1000 --loop         # forever
    python examples/replay.py --file my.ndjson --index logs

Documents are posted as NDJSON in small batches (one request every 50 ms) so
the rate is smooth; the Beater's answers are checked and errors reported.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Iterator, List
from urllib.parse import urlsplit

SAMPLE = Path(__file__).with_name("recentchange.ndjson")


def lines(path: Path, loop: bool) -> Iterator[bytes]:
    """The non-blank lines of ``path``, once or forever."""
    data = [line for line in path.read_bytes().splitlines() if line.strip()]
    return itertools.cycle(data) if loop else iter(data)


def post(conn: http.client.HTTPConnection, path: str, batch: List[bytes]) -> dict:
    """POST one NDJSON batch; return the Beater's answer."""
    conn.request("POST", path, body=b"\n".join(batch), headers={"content-type": "application/x-ndjson"})
    response = conn.getresponse()
    answer = json.loads(response.read())
    if response.status >= 400:
        print(f"beater answered {response.status}: {answer}", file=sys.stderr)
    return answer


def main() -> None:
    """Post the file at ``--rate`` documents per second."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=SAMPLE)
    parser.add_argument("--index", default="events")
    parser.add_argument("--rate", type=float, default=100.0, help="documents per second")
    parser.add_argument("--beater", default="http://127.0.0.1:8001")
    parser.add_argument("--loop", action="store_true", help="start again at the end of the file")
    args = parser.parse_args()

    url = urlsplit(args.beater)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    path = f"/api/v0.1/beat/{args.index}"
    tick = 0.05
    per_tick = max(1, round(args.rate * tick))
    source = lines(args.file, args.loop)
    sent = deliveries = 0
    start = time.monotonic()
    while True:
        batch = list(itertools.islice(source, per_tick))
        if not batch:
            break
        answer = post(conn, path, batch)
        sent += answer.get("accepted", 0)
        deliveries += answer.get("deliveries", 0)
        delay = start + (sent / args.rate) - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    elapsed = time.monotonic() - start
    print(f"sent={sent} deliveries={deliveries} seconds={elapsed:.1f} rate={sent / elapsed:.0f}/s")


if __name__ == "__main__":
    main()
