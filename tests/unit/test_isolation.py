"""One document's failure is that document's error: nothing else in its micro-batch fails."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, List, Mapping, Sequence, Tuple

import pytest
from twisted.internet.defer import Deferred, ensureDeferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from beater.errors import BackendUnavailable, LimitExceeded, NotAllDelivered
from beater.ingest import Incoming, parse_body
from beater.limits import Limits
from beater.percolator.embedded import EmbeddedPercolator
from beater.percolator.embedded.query_index import QueryIndex
from beater.pipeline import Pipeline
from beater.registration import make_registration
from beater.sequence import Sequencer
from beater.service import Beater


class PoisonPercolator:
    """Subscription ``s`` matches every document; a batch holding a document with ``poison`` raises."""

    name = "poison"
    incremental = False

    def __init__(self, error: Exception = ValueError("cannot match this")) -> None:
        self.error = error
        self.calls: List[int] = []

    def percolate(self, index: str, documents: Sequence[Mapping[str, Any]]) -> "Deferred[List[List[str]]]":
        self.calls.append(len(documents))
        if any("poison" in d for d in documents):
            return fail(self.error)
        return succeed([["s"] for _ in documents])


def docs(*sources: Mapping[str, Any]) -> List[Incoming]:
    return [Incoming(dict(s)) for s in sources]


class PipelineIsolationTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.published: List[Tuple[str, List[Any]]] = []

        async def publish(sub_id: str, hits: List[Any]) -> None:
            self.published.append((sub_id, hits))

        self.publish = publish

    def pipeline(self, percolator: PoisonPercolator) -> Pipeline:
        return Pipeline(percolator, self.publish, Sequencer(None), self.clock, batch_size=100, delay=0.005)

    def delivered(self) -> List[Any]:
        return [hit["_source"] for _, hits in self.published for hit in hits]

    def test_a_poison_document_between_good_ones_fails_alone(self) -> None:
        pipeline = self.pipeline(PoisonPercolator())
        d = pipeline.submit("i", docs({"n": 1}, {"poison": 1}, {"n": 3}))
        self.clock.advance(0.005)
        report = self.successResultOf(d)
        self.assertEqual(self.delivered(), [{"n": 1}, {"n": 3}])
        self.assertEqual([at for at, _ in report.errors], [1])
        self.assertIn("cannot match this", report.errors[0][1])
        self.assertEqual(report.deliveries, 2)

    def test_another_callers_documents_in_the_same_batch_are_not_touched(self) -> None:
        pipeline = self.pipeline(PoisonPercolator())
        theirs = pipeline.submit("i", docs({"n": 1}, {"n": 2}))
        mine = pipeline.submit("i", docs({"poison": 1}))
        self.clock.advance(0.005)
        report = self.successResultOf(theirs)
        self.assertEqual((report.errors, report.deliveries), ([], 2))
        self.assertEqual([at for at, _ in self.successResultOf(mine).errors], [0])

    def test_halving_finds_one_culprit_in_far_fewer_calls_than_documents(self) -> None:
        percolator = PoisonPercolator()
        pipeline = self.pipeline(percolator)
        sources = [{"n": i} for i in range(64)]
        sources[37] = {"poison": 1}
        d = pipeline.submit("i", docs(*sources))
        self.clock.advance(0.005)
        self.assertEqual([at for at, _ in self.successResultOf(d).errors], [37])
        self.assertLess(len(percolator.calls), 20)
        self.assertEqual(len(self.delivered()), 63)

    def test_every_poison_document_is_found(self) -> None:
        pipeline = self.pipeline(PoisonPercolator())
        d = pipeline.submit("i", docs({"poison": 1}, {"n": 1}, {"poison": 2}, {"n": 2}, {"poison": 3}))
        self.clock.advance(0.005)
        self.assertEqual([at for at, _ in self.successResultOf(d).errors], [0, 2, 4])

    def test_a_recursion_error_is_a_documents_fault_too(self) -> None:
        pipeline = self.pipeline(PoisonPercolator(RecursionError("maximum recursion depth exceeded")))
        d = pipeline.submit("i", docs({"n": 1}, {"poison": 1}))
        self.clock.advance(0.005)
        self.assertEqual([at for at, _ in self.successResultOf(d).errors], [1])

    def test_an_unavailable_backend_still_fails_the_whole_batch_for_a_retry(self) -> None:
        pipeline = self.pipeline(PoisonPercolator(BackendUnavailable("Elasticsearch is down")))
        d = pipeline.submit("i", docs({"n": 1}, {"poison": 1}))
        self.clock.advance(0.005)
        error = self.failureResultOf(d, NotAllDelivered).value
        self.assertEqual((error.delivered, error.accepted), (0, 2))
        self.flushLoggedErrors(BackendUnavailable)


class ServiceIsolationTests(SynchronousTestCase):
    """The Beater puts a document the percolator could not match among the answer's errors, by its line or item."""

    def beater(self) -> Tuple[Beater, Clock]:
        clock = Clock()

        async def publish(sub_id: str, hits: List[Any]) -> None:
            return None

        pipeline = Pipeline(PoisonPercolator(), publish, Sequencer(None), clock, batch_size=100)
        return Beater(PoisonPercolator(), pipeline), clock  # type: ignore[arg-type]

    def answer(self, d: "Deferred[Any]", clock: Clock) -> Any:
        clock.advance(0)
        return self.successResultOf(d)

    def test_an_ndjson_line_that_cannot_be_matched_is_named_by_its_line(self) -> None:
        beater, clock = self.beater()
        body = b'{"n": 1}\nnot json\n{"poison": 1}\n{"n": 4}\n'
        report = self.answer(ensureDeferred(beater.ingest("i", parse_body(body, "i"))), clock)
        self.assertEqual((report["accepted"], report["rejected"], report["deliveries"]), (2, 2, 2))
        self.assertEqual([e["line"] for e in report["errors"]], [2, 3])
        self.assertEqual(report["errors"][1]["error"], "estrom.error.invalid_document")

    def test_over_wamp_a_deep_document_is_its_items_error(self) -> None:
        beater, clock = self.beater()
        deep: Any = 1
        for _ in range(100_000):
            deep = {"a": deep}
        report = self.answer(ensureDeferred(beater.ingest_documents("i", [{"n": 1}, deep, {"n": 3}])), clock)
        self.assertEqual(report["accepted"], 2)
        self.assertEqual([(e["item"], e["limit"]) for e in report["errors"]], [(1, "max_depth")])

    def test_over_wamp_a_document_that_is_not_json_is_its_items_error(self) -> None:
        beater, clock = self.beater()
        report = self.answer(ensureDeferred(beater.ingest_documents("i", [{"b": b"\x00binary"}, {"n": 2}])), clock)
        self.assertEqual(report["accepted"], 1)
        self.assertEqual(report["errors"][0]["item"], 0)
        self.assertIn("JSON", report["errors"][0]["message"])

    def test_over_wamp_a_document_over_max_document_bytes_is_its_items_error(self) -> None:
        beater, clock = self.beater()
        beater.limits = Limits(max_document_bytes=100)
        report = self.answer(ensureDeferred(beater.ingest_documents("i", [{"x": "y" * 200}, {"n": 2}])), clock)
        self.assertEqual([(e["item"], e["limit"], e["value"]) for e in report["errors"]], [(0, "max_document_bytes", 100)])

    def test_over_wamp_too_many_documents_in_one_call_is_refused_whole(self) -> None:
        beater, _ = self.beater()
        beater.limits = Limits(max_docs_per_request=2)
        failure = self.failureResultOf(ensureDeferred(beater.ingest_documents("i", [{}, {}, {}])), LimitExceeded)
        self.assertEqual((failure.value.limit, failure.value.value), ("max_docs_per_request", 2))


def boom(doc: Any) -> bool:
    raise ValueError("boom")


def test_a_query_whose_matcher_raises_is_skipped_for_that_document_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    index = QueryIndex()
    good = make_registration("i", "m:hello")
    bad = make_registration("i", 'm:"hello world"')
    index.add(good)
    index.add(bad)
    index.match_batch("i", [{"m": "maps the field"}])
    state = index._state("i")
    number = state.numbers[bad.id]
    state.forms[number] = boom  # what a matcher bug would do
    state.presearcher.set_form(number, boom)
    with caplog.at_level(logging.WARNING):
        matched = index.match_batch("i", [{"m": "hello world"}, {"m": "hello"}, {"m": "hello world"}])
    assert matched == [[good.id], [good.id], [good.id]]
    assert [r.getMessage().count(bad.id) for r in caplog.records] == [1]


def test_a_document_too_deep_for_the_field_model_no_longer_reaches_the_percolator(tmp_path: Path) -> None:
    """The issue's case: a 500-deep document made the embedded field model unsavable (RecursionError) and
    failed every later batch of its index; the default max_depth refuses it at ingest."""
    parsed = parse_body(('{"t": "good"}\n' + '{"a":' * 500 + "1" + "}" * 500 + "\n").encode(), "test")
    assert [e.limit for e in parsed.errors] == ["max_depth"]
    percolator = EmbeddedPercolator(tmp_path / "r.sqlite")
    percolator.start()
    registration = make_registration("test", "t:good")
    percolator.register(registration)
    result: List[Any] = []
    percolator.percolate("test", [d.source for d in parsed.documents]).addBoth(result.append)
    assert result == [[[registration.id]]]
