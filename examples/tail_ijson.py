"""Tail estrom from Python with ijson: each hit as it arrives, from one endless HTTP response.

    python examples/tail_ijson.py 'title:"big cat" -user:bot*' --index events

``ijson.items`` reads its source with ``read(64 KiB)``, and a plain HTTP
response's ``read(n)`` waits until ``n`` bytes have arrived; ``LiveStream``
hands ijson whatever has arrived instead (``read1``), so hits come out as soon
as they are received.
"""

from __future__ import annotations

import argparse
import http.client
import json
import urllib.request
from typing import Optional
from urllib.parse import urlencode

import ijson


class LiveStream:
    """A file-like view of an HTTP response whose ``read(n)`` returns what has arrived so far."""

    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.response = response

    def read(self, size: int = 65536) -> bytes:
        """Up to ``size`` bytes, without waiting for more than the next chunk."""
        return self.response.read1(size)


def open_tail(base_url: str, index: str, query: str, limit: Optional[int] = None) -> http.client.HTTPResponse:
    """Open ``GET /api/v0.1/docs`` for ``query`` on ``index``; the response stays open."""
    params = {"i": index, "q": query}
    if limit is not None:
        params["limit"] = str(limit)
    return urllib.request.urlopen(f"{base_url}/api/v0.1/docs?{urlencode(params)}")


def main() -> None:
    """Print every hit of a query, one JSON line each, until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("query")
    parser.add_argument("--index", default="events")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()
    with open_tail(args.url, args.index, args.query, args.limit) as response:
        for hit in ijson.items(LiveStream(response), "hits.item", use_float=True):
            print(json.dumps(hit), flush=True)


if __name__ == "__main__":
    main()
