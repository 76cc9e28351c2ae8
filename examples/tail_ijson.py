"""Tail estrom from Python with ijson: each hit as it arrives, resuming without a gap if the connection drops.

    python examples/tail_ijson.py 'title:"big cat" -user:bot*' --index events

Records of the Tailor's own (``{"_estrom": {"dropped": n}}`` when this client
fell behind, ``{"_estrom": {"gap": true, ...}}`` when a resume reached back
further than the replay store) sit in the ``hits`` array beside the hits; no
hit has an ``_estrom`` key, so they are told apart by it and reported on
stderr.  When the connection drops, the tail is opened again with
``since=<cursor>``: the hits matched meanwhile come first.  The cursor is
``@<epoch ms this client started>`` then ``<_beater>:<_seq>`` of the last hit
from each Beater (each numbers its own hits), e.g. ``@1764590000000,3f2a9c1d:4711``.

``ijson.items`` reads its source with ``read(64 KiB)``, and a plain HTTP
response's ``read(n)`` waits until ``n`` bytes have arrived; ``LiveStream``
hands ijson whatever has arrived instead (``read1``), so hits come out as soon
as they are received.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any, Dict, Iterator, Optional
from urllib.parse import urlencode

import ijson


class LiveStream:
    """A file-like view of an HTTP response whose ``read(n)`` returns what has arrived so far."""

    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.response = response

    def read(self, size: int = 65536) -> bytes:
        """Up to ``size`` bytes, without waiting for more than the next chunk."""
        return self.response.read1(size)


def open_tail(base_url: str, index: str, query: str, limit: Optional[int] = None,
              since: Optional[str] = None) -> http.client.HTTPResponse:
    """Open ``GET /api/v0.1/docs`` for ``query`` on ``index``; the response stays open."""
    params = {"i": index, "q": query}
    if limit is not None:
        params["limit"] = str(limit)
    if since is not None:
        params["since"] = since
    return urllib.request.urlopen(f"{base_url}/api/v0.1/docs?{urlencode(params)}")


def hits(base_url: str, index: str, query: str, since: Optional[str] = None) -> Iterator[Dict[str, Any]]:
    """Every hit of ``query``, for ever: reconnects after a dropped connection and resumes after the last hit."""
    opening = since  # the first connection is live, unless told where to start
    # Beaters no hit came from yet are resumed from the time this tail began.
    started_ms = int(time.time() * 1000)
    last: Dict[str, int] = {}  # Beater -> _seq of its last hit

    def cursor() -> str:
        return ",".join([f"@{started_ms}"] + [f"{beater}:{seq}" for beater, seq in last.items()])

    while True:
        try:
            with open_tail(base_url, index, query, since=opening) as response:
                for item in ijson.items(LiveStream(response), "hits.item", use_float=True):
                    if "_estrom" in item:  # the Tailor's own record, not a hit
                        print(f"estrom: {json.dumps(item['_estrom'])}", file=sys.stderr, flush=True)
                        continue
                    last[item["_beater"]] = item["_seq"]  # where to resume from on its Beater
                    yield item
            return  # the stream ended properly (limit, timeout)
        except urllib.error.HTTPError as e:
            if e.code < 500 and e.code != 429:
                raise SystemExit(f"estrom: {e.code} {e.read().decode(errors='replace')}")
        except (OSError, http.client.HTTPException, ijson.JSONError) as e:
            print(f"estrom: connection lost ({e}); resuming from {cursor()}", file=sys.stderr, flush=True)
        opening = cursor() if last or since is None else since
        time.sleep(1)


def main() -> None:
    """Print every hit of a query, one JSON line each, until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("query")
    parser.add_argument("--index", default="events")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--since", help="resume from this cursor (an SSE id), or from an ISO-8601 time")
    args = parser.parse_args()
    for hit in hits(args.url, args.index, args.query, args.since):
        print(json.dumps(hit), flush=True)


if __name__ == "__main__":
    main()
