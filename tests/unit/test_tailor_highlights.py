"""The Tailor's side of ``highlight=true`` (``tailor/highlights.py``): order kept, never a hit lost."""

from __future__ import annotations

import json
from typing import Any, List

from twisted.internet.defer import Deferred

from tailor.highlights import Highlighter, with_highlights
from tailor.stream import Delivered


def hit(seq: int, text: str) -> Delivered:
    return Delivered("b1", seq, json.dumps({"_seq": seq, "_beater": "b1", "_source": {"comment": text}}).encode())


class ControlledBeater:
    """Answers estrom.highlight when the test says so."""

    def __init__(self) -> None:
        self.calls: List[Any] = []

    def call(self, procedure: str, subscription_id: str, sources: List[Any]) -> "Deferred[Any]":
        answer: "Deferred[Any]" = Deferred()
        self.calls.append((sources, answer))
        return answer

    def answer(self, i: int) -> None:
        sources, answer = self.calls[i]
        answer.callback({"highlights": [{"comment": [s["comment"].split()[0]]} for s in sources]})


class Recorder:
    def __init__(self) -> None:
        self.seen: List[Any] = []

    def deliver(self, hits: List[Delivered]) -> None:
        self.seen.extend(json.loads(h.data) for h in hits)

    def notice(self, kind: str, **details: Any) -> None:
        self.seen.append(kind)


def highlighter() -> tuple:
    beater, tail = ControlledBeater(), Recorder()
    h = Highlighter("0123456789abcdef", lambda: beater)
    h.tails.add(tail)
    return h, beater, tail


def test_a_hit_gains_the_terms_the_beater_names() -> None:
    [marked] = with_highlights([hit(1, "claim here")], [{"comment": ["claim"]}])
    assert json.loads(marked.data)["_highlight"] == {"comment": ["claim"]}
    assert (marked.beater, marked.seq) == ("b1", 1)


def test_events_keep_their_order_when_answers_come_back_out_of_order() -> None:
    h, beater, tail = highlighter()
    h.deliver([hit(1, "first event")])
    h.deliver([hit(2, "second event")])
    h.notice("gap", gap=True)
    beater.answer(1)
    assert tail.seen == []
    beater.answer(0)
    assert [s if isinstance(s, str) else s["_seq"] for s in tail.seen] == [1, 2, "gap"]
    assert tail.seen[1]["_highlight"] == {"comment": ["second"]}


def test_hits_go_on_without_highlights_when_the_beater_fails() -> None:
    h, beater, tail = highlighter()
    h.deliver([hit(1, "failing event")])
    beater.calls[0][1].errback(RuntimeError("no Beater"))
    assert [s["_seq"] for s in tail.seen] == [1] and "_highlight" not in tail.seen[0]


def test_without_a_router_hits_pass_at_once_unhighlighted() -> None:
    tail = Recorder()
    h = Highlighter("0123456789abcdef", lambda: None)
    h.tails.add(tail)
    h.deliver([hit(1, "no router")])
    assert [s["_seq"] for s in tail.seen] == [1]
