"""Subscribe to an estrom query over WAMP: register it, then print every hit of its topic.

    python examples/wamp_subscriber.py 'title:"big cat" -user:bot*' --index events

Any WAMP client works the same way: join realm ``estrom`` anonymously, call
``estrom.register(index, query)``, subscribe to the ``topic`` it returns.  Each
event carries one positional argument: a list of hits.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, List

import txaio
from autobahn.twisted.component import Component, run
from autobahn.wamp.exception import ApplicationError


def main() -> None:
    """Register the query given on the command line and print its hits until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("query", help="Lucene query string, or query DSL JSON starting with {")
    parser.add_argument("--index", default="events")
    parser.add_argument("--router", default="ws://127.0.0.1:8080/ws")
    args = parser.parse_args()
    query: Any = json.loads(args.query) if args.query.lstrip().startswith("{") else args.query

    # txaio's logging takes over sys.stdout (timestamping every line): hits go to the real stdout,
    # one JSON object per line, and autobahn's own messages to stderr.
    out = sys.__stdout__
    component = Component(transports=args.router, realm="estrom")

    @component.on_join
    async def joined(session: Any, details: Any) -> None:
        try:
            registration = await session.call("estrom.register", args.index, query)
        except ApplicationError as e:
            print(f"query refused: {e.error}: {e.kwargs.get('message') or e.args}", file=sys.stderr)
            session.leave()
            return

        def on_hits(hits: List[Any]) -> None:
            for hit in hits:
                print(json.dumps(hit), file=out, flush=True)

        await session.subscribe(on_hits, registration["topic"])
        print(f"# subscribed to {registration['topic']} (canonical: {json.dumps(registration['canonical'])})", file=sys.stderr, flush=True)

    txaio.start_logging(out=sys.stderr, level="warn")
    run([component], log_level=None)


if __name__ == "__main__":
    main()
