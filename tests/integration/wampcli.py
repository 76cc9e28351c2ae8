"""A tiny WAMP command-line client the integration tests drive as a real, separate process.

    wampcli.py URL call PROCEDURE JSON_ARGS          prints {"result": ...} or {"error": uri, ...}
    wampcli.py URL subscribe TOPIC COUNT TIMEOUT     prints "subscribed", then one line of JSON per hit
    wampcli.py URL counts JSON_KWARGS COUNT TIMEOUT  estrom.counts(**kwargs): prints {"result": ...} (or {"error": ...} and
                                                     stops), subscribes to the topic it names, prints "subscribed", then
                                                     one line of JSON per window record, until COUNT came or TIMEOUT
    wampcli.py URL publish TOPIC JSON_ARG            acknowledged publish; prints {"ok": true} or {"error": uri}
    wampcli.py URL replay SECRETS_JSON ID SINCE_JSON LIMIT
                                                     estrom.replay.<beater> as the tailor role; prints {"result": ...}
                                                     with each hit's bytes decoded to text and "binary": whether
                                                     all of them came as bytes, or {"error": uri, ...}
    wampcli.py URL ingest AUTHID TICKET INDEX DOCS_JSON
                                                     estrom.ingest as principal AUTHID with WAMP-ticket TICKET (an
                                                     ingest token); prints {"result": ...}, {"error": uri, ...}, or
                                                     {"refused": reason} when the router does not let it join

It joins realm ``estrom`` anonymously, as any WAMP client of estrom would, except
``replay``, which authenticates with the tailor's ticket from ``<data-dir>/secrets.json``
(the procedure is for services only) and speaks CBOR, as the Tailor does.
"""

from __future__ import annotations

import json
import sys

import txaio
from pathlib import Path
from typing import Any, Dict, List

from autobahn.twisted.component import Component, run
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions
from twisted.internet import reactor
from twisted.internet.defer import Deferred


def emit(value: Any) -> None:
    """Print one JSON line and flush, so the test reads it immediately."""
    # sys.__stdout__: txaio's logging replaces sys.stdout with a logger that timestamps lines.
    out = sys.__stdout__
    out.write((value if isinstance(value, str) else json.dumps(value)) + "\n")
    out.flush()


def main(argv: List[str]) -> None:
    """Run one command against the router at ``argv[0]``."""
    url, command, *rest = argv
    transport: Dict[str, Any] = {"url": url, "type": "websocket", "max_retries": 0}
    authentication: Dict[str, Any] = {}
    if command == "replay":
        ticket = json.loads(Path(rest[0]).read_text())["tailor"]
        transport["serializers"] = ["cbor"]  # byte strings stay bytes (JSON would carry them as base64)
        authentication = {"ticket": {"authid": "tailor", "ticket": ticket}}
    if command == "ingest":
        authid, ticket, *rest = rest
        authentication = {"ticket": {"authid": authid, "ticket": ticket}}
    component = Component(transports=[transport], realm="estrom", authentication=authentication or None)

    joined_once = [False]

    @component.on_leave
    def left(session: Any, details: Any) -> None:
        if command == "ingest" and not joined_once[0]:
            emit({"refused": details.reason})

    @component.on_join
    async def joined(session: Any, details: Any) -> None:
        joined_once[0] = True
        try:
            if command == "ingest":
                index, docs = rest[0], json.loads(rest[1])
                try:
                    emit({"result": await session.call("estrom.ingest", index, docs), "role": details.authrole})
                except ApplicationError as e:
                    emit({"error": e.error, "args": list(e.args), "kwargs": e.kwargs})
            elif command == "call":
                procedure, args = rest[0], json.loads(rest[1])
                try:
                    emit({"result": await session.call(procedure, *args)})
                except ApplicationError as e:
                    emit({"error": e.error, "args": list(e.args), "kwargs": e.kwargs})
            elif command == "counts":
                options, count, timeout = json.loads(rest[0]), int(rest[1]), float(rest[2])
                try:
                    answer = await session.call("estrom.counts", **options)
                except ApplicationError as e:
                    emit({"error": e.error, "args": list(e.args), "kwargs": e.kwargs})
                    return
                emit({"result": answer})
                finished: Deferred[None] = Deferred()
                records = [0]

                def on_window(record: Any) -> None:
                    emit(record)
                    records[0] += 1
                    if records[0] >= count and not finished.called:
                        finished.callback(None)

                await session.subscribe(on_window, answer["topic"])
                emit("subscribed")
                reactor.callLater(timeout, lambda: finished.called or finished.callback(None))
                await finished
            elif command == "publish":
                topic, arg = rest[0], json.loads(rest[1])
                try:
                    await session.publish(topic, arg, options=PublishOptions(acknowledge=True))
                    emit({"ok": True})
                except ApplicationError as e:
                    emit({"error": e.error})
            elif command == "replay":
                sub_id, since, limit = rest[1], json.loads(rest[2]), int(rest[3])
                try:
                    beater = (await session.call("estrom.health"))["beater"]  # each Beater has its own replay
                    answer = await session.call("estrom.replay." + beater, sub_id, since, limit)
                except ApplicationError as e:
                    emit({"error": e.error, "args": list(e.args), "kwargs": e.kwargs})
                else:
                    binary = all(isinstance(data, bytes) for _, data in answer["hits"])
                    answer["hits"] = [[seq, data.decode() if isinstance(data, bytes) else data] for seq, data in answer["hits"]]
                    emit({"result": answer, "binary": binary})
            elif command == "subscribe":
                topic, count, timeout = rest[0], int(rest[1]), float(rest[2])
                done: Deferred[None] = Deferred()
                seen = [0]

                def on_event(hits: List[Any]) -> None:
                    for hit in hits:
                        emit(hit)
                        seen[0] += 1
                    if seen[0] >= count and not done.called:
                        done.callback(None)

                await session.subscribe(on_event, topic)
                emit("subscribed")
                reactor.callLater(timeout, lambda: done.called or done.callback(None))
                await done
        finally:
            session.leave()

    txaio.start_logging(out=sys.stderr, level="warn")  # stdout carries only this tool's answers
    run([component], log_level=None)


if __name__ == "__main__":
    main(sys.argv[1:])
