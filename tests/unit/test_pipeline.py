"""Micro-batching: batches fill by size or time, each topic gets one publish per batch."""

from __future__ import annotations

from typing import Any, List, Mapping, Sequence, Tuple

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from beater.errors import BackendUnavailable, NotAllDelivered
from beater.ingest import Incoming
from beater.pipeline import Pipeline, group_by_subscription
from beater.sequence import Sequencer


class WordPercolator:
    """Pure-logic stand-in: subscription ``w`` matches documents whose ``m`` contains word ``w``."""

    name = "words"

    def __init__(self, words: Sequence[str]) -> None:
        self.words = words
        self.batches: List[int] = []

    def percolate(self, index: str, documents: Sequence[Mapping[str, Any]]) -> "Deferred[List[List[str]]]":
        self.batches.append(len(documents))
        return succeed([[w for w in self.words if w in str(d.get("m", "")).split()] for d in documents])


class BrokenPercolator(WordPercolator):
    def percolate(self, index: str, documents: Sequence[Mapping[str, Any]]) -> "Deferred[List[List[str]]]":
        return fail(BackendUnavailable("backend down"))


def docs(*messages: str) -> List[Incoming]:
    return [Incoming({"m": m}) for m in messages]


class PipelineTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.published: List[Tuple[str, List[Any]]] = []

        async def publish(sub_id: str, hits: List[Any]) -> None:
            self.published.append((sub_id, hits))

        self.publish = publish

    def pipeline(self, percolator: WordPercolator, batch_size: int = 10) -> Pipeline:
        return Pipeline(percolator, self.publish, Sequencer(None), self.clock, batch_size=batch_size, delay=0.005)

    def test_documents_wait_for_the_batch_delay(self) -> None:
        """Nothing is percolated before the delay, then everything submitted meanwhile at once."""
        percolator = WordPercolator(["a"])
        pipeline = self.pipeline(percolator)
        d1 = pipeline.submit("i", docs("a"))
        d2 = pipeline.submit("i", docs("a b"))
        self.assertNoResult(d1)
        self.clock.advance(0.005)
        self.assertEqual(percolator.batches, [2])
        self.assertEqual(self.successResultOf(d1).deliveries, 1)
        self.assertEqual(self.successResultOf(d2).accepted, 1)

    def test_a_full_batch_goes_without_waiting(self) -> None:
        """Reaching batch_size flushes on the next reactor turn, not after the delay."""
        percolator = WordPercolator(["a"])
        pipeline = self.pipeline(percolator, batch_size=2)
        d = pipeline.submit("i", docs("a", "a", "a"))
        self.clock.advance(0)
        self.assertEqual(percolator.batches[0], 2)
        self.clock.advance(0)
        self.assertEqual(percolator.batches, [2, 1])
        self.assertEqual(self.successResultOf(d).deliveries, 3)

    def test_one_publish_per_topic_per_batch(self) -> None:
        """Several hits of one subscription in a batch travel in one publish."""
        pipeline = self.pipeline(WordPercolator(["a", "b"]))
        pipeline.submit("i", docs("a", "a b", "b", "c"))
        self.clock.advance(0.005)
        self.assertEqual(sorted((s, [h["_source"]["m"] for h in hits]) for s, hits in self.published),
                         [("a", ["a", "a b"]), ("b", ["a b", "b"])])

    def test_hits_carry_index_and_increasing_sequence_numbers(self) -> None:
        """Each hit names its index and gets the next _seq of that index."""
        pipeline = self.pipeline(WordPercolator(["a"]))
        pipeline.submit("i", docs("a", "a"))
        self.clock.advance(0.005)
        [(_, hits)] = self.published
        self.assertEqual([(h["_index"], h["_seq"]) for h in hits], [("i", 1), ("i", 2)])

    def test_backend_failure_fails_the_submission(self) -> None:
        """If percolation fails, the caller is told (no silent drop)."""
        pipeline = self.pipeline(BrokenPercolator(["a"]))
        d = pipeline.submit("i", docs("a"))
        self.clock.advance(0.005)
        error = self.failureResultOf(d, NotAllDelivered).value
        self.assertEqual((error.delivered, error.accepted), (0, 1))
        self.assertEqual(len(self.flushLoggedErrors(BackendUnavailable)), 1)  # and the operator's log says so

    def test_metrics_count_documents_deliveries_and_publishes(self) -> None:
        """The Prometheus counters follow what each batch did."""
        pipeline = self.pipeline(WordPercolator(["a", "b"]))
        pipeline.submit("i", docs("a", "a b", "c"))
        self.clock.advance(0.005)
        exposition = pipeline.metrics.exposition().decode()
        self.assertIn('estrom_documents_total{index="i"} 3.0', exposition)
        self.assertIn('estrom_deliveries_total{index="i"} 3.0', exposition)
        self.assertIn("estrom_publishes_total 2.0", exposition)
        self.assertIn("estrom_batch_seconds_count 1.0", exposition)

    def test_empty_submission_fires_at_once(self) -> None:
        """Submitting nothing answers immediately."""
        d = self.pipeline(WordPercolator([])).submit("i", [])
        self.assertEqual(self.successResultOf(d).accepted, 0)


def test_group_by_subscription_keeps_document_order() -> None:
    """Hits are grouped per subscription in the order of the documents."""
    hits = [{"n": 1}, {"n": 2}, {"n": 3}]
    grouped = group_by_subscription(hits, [["x"], [], ["x", "y"]])
    assert grouped == {"x": [{"n": 1}, {"n": 3}], "y": [{"n": 3}]}


class TimedPercolator(WordPercolator):
    """An in-process percolator that takes ``cost`` seconds of the clock per document."""

    incremental = True

    def __init__(self, words: Sequence[str], clock: Clock, cost: float, log: List[str]) -> None:
        super().__init__(words)
        self.clock = clock
        self.cost = cost
        self.log = log

    def percolate(self, index: str, documents: Sequence[Mapping[str, Any]]) -> "Deferred[List[List[str]]]":
        self.log.append(f"match {len(documents)}")
        self.clock.advance(self.cost * len(documents))
        return super().percolate(index, documents)


class SlicingTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.log: List[str] = []

        async def publish(sub_id: str, hits: List[Any]) -> None:
            self.log.append(f"publish {sub_id} {len(hits)}")

        self.publish = publish

    def run_batches(self, percolator: WordPercolator, *batches: List[Incoming]) -> None:
        pipeline = Pipeline(percolator, self.publish, Sequencer(None), self.clock, batch_size=100, slice_seconds=0.002)
        for batch in batches:
            d = pipeline.submit("i", batch)
            while not d.called:
                self.clock.advance(0)
            self.successResultOf(d)

    def test_an_in_process_percolator_publishes_each_slice_before_matching_the_next(self) -> None:
        """After the first batch has shown the cost per document, batches are cut into ~2 ms slices."""
        percolator = TimedPercolator(["a"], self.clock, cost=0.0005, log=self.log)
        self.run_batches(percolator, docs(*["a"] * 8), docs(*["a"] * 8))
        self.assertEqual(self.log, ["match 8", "publish a 8", "match 4", "publish a 4", "match 4", "publish a 4"])

    def test_a_remote_percolator_gets_the_whole_batch_in_one_call(self) -> None:
        percolator = TimedPercolator(["a"], self.clock, cost=0.0005, log=self.log)
        percolator.incremental = False
        self.run_batches(percolator, docs(*["a"] * 8), docs(*["a"] * 8))
        self.assertEqual([entry for entry in self.log if entry.startswith("match")], ["match 8", "match 8"])

    def test_sliced_hits_keep_document_order_and_sequence_numbers(self) -> None:
        percolator = TimedPercolator(["a"], self.clock, cost=0.001, log=self.log)
        seen: List[int] = []

        async def publish(sub_id: str, hits: List[Any]) -> None:
            seen.extend(hit["_seq"] for hit in hits)

        self.publish = publish
        self.run_batches(percolator, docs("a", "a"), docs(*["a"] * 5))
        self.assertEqual(self.log, ["match 2", "match 2", "match 2", "match 1"])
        self.assertEqual(seen, list(range(seen[0], seen[0] + 7)))


class PartFailureTests(SynchronousTestCase):
    """The router goes away while a batch is published slice by slice."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.log: List[str] = []
        self.publishes_left = 1

        async def publish(sub_id: str, hits: List[Any]) -> None:
            if self.publishes_left == 0:
                raise BackendUnavailable("the router is not reachable")
            self.publishes_left -= 1
            self.log.append(f"publish {sub_id} {len(hits)}")

        percolator = TimedPercolator(["a"], self.clock, cost=0.0005, log=self.log)
        self.pipeline = Pipeline(percolator, publish, Sequencer(None), self.clock, batch_size=100, slice_seconds=0.002)
        warm = self.pipeline.submit("i", docs("b"))  # shows the cost per document: later batches are sliced
        self.clock.advance(0)
        self.successResultOf(warm)

    def run_until_settled(self, *deferreds: "Deferred[Any]") -> None:
        for _ in range(100):
            if all(d.called for d in deferreds):
                return
            self.clock.advance(0)

    def test_a_caller_whose_documents_all_went_out_before_the_failure_succeeds(self) -> None:
        first = self.pipeline.submit("i", docs("a", "a"))
        second = self.pipeline.submit("i", docs("a", "a", "a", "a", "a", "a"))
        self.run_until_settled(first, second)
        self.assertEqual(self.successResultOf(first).accepted, 2)
        error = self.failureResultOf(second, NotAllDelivered).value
        self.assertEqual((error.delivered, error.accepted), (2, 6))  # the first slice held 4 documents
        self.flushLoggedErrors(BackendUnavailable)

    def test_the_error_says_how_many_went_out_and_where_to_resume(self) -> None:
        error = NotAllDelivered("the router is not reachable", 2, 6)
        error.retry_from = {"line": 4}
        body = error.to_json()
        self.assertEqual((body["error"], body["delivered"], body["accepted"], body["retry_from"]),
                         ("estrom.error.unavailable", 2, 6, {"line": 4}))
        self.assertIn("2 of the 6 accepted documents were delivered", body["message"])

    def test_queued_documents_of_a_failed_caller_are_not_published_later(self) -> None:
        self.pipeline.batch_size = 4
        big = self.pipeline.submit("i", docs(*["a"] * 10))  # three batches: 4, 4, 2
        self.run_until_settled(big)
        self.failureResultOf(big, NotAllDelivered)
        self.publishes_left = 100  # the router is back
        later = self.pipeline.submit("i", docs("a"))
        self.run_until_settled(later)
        self.successResultOf(later)
        published = sum(int(entry.split()[-1]) for entry in self.log if entry.startswith("publish"))
        self.assertEqual(published, 4 + 1)  # the first slice, then only the new caller's document
        self.flushLoggedErrors(BackendUnavailable)


class ResumePointTests(SynchronousTestCase):
    """The Beater turns 'n documents delivered' into where the caller should resend from."""

    def ingest_failing_after(self, delivered: int, body: bytes) -> NotAllDelivered:
        from twisted.internet.defer import ensureDeferred

        from beater.ingest import parse_body
        from beater.metrics import BeaterMetrics
        from beater.service import Beater

        class Cut:
            """A pipeline whose router went away after ``delivered`` documents."""

            metrics = BeaterMetrics()

            def submit(self, index: str, documents: Sequence[Incoming]) -> "Deferred[Any]":
                return fail(NotAllDelivered("the router is not reachable", delivered, len(documents)))

        beater = Beater(WordPercolator([]), Cut())  # type: ignore[arg-type]
        return self.failureResultOf(ensureDeferred(beater.ingest("i", parse_body(body, "i"))), NotAllDelivered).value

    def test_ndjson_resumes_at_the_line_of_the_first_undelivered_document(self) -> None:
        error = self.ingest_failing_after(1, b'{"m": 1}\nnot json\n{"m": 2}\n{"m": 3}\n')
        self.assertEqual(error.to_json()["retry_from"], {"line": 3})  # line 2 was refused, not undelivered

    def test_an_array_resumes_at_the_item(self) -> None:
        error = self.ingest_failing_after(2, b'[{"m": 1}, {"m": 2}, {"m": 3}]')
        self.assertEqual(error.to_json()["retry_from"], {"item": 2})


class ReplayRecordingTests(SynchronousTestCase):
    """Each slice's hits are in the replay store before they are published."""

    def setUp(self) -> None:
        from beater.replay import ReplayStore

        self.clock = Clock()
        self.store = ReplayStore(lambda sub_id: True)
        self.store.track("a")
        self.log: List[str] = []

    def replayable(self) -> List[int]:
        return [seq for seq, _ in self.store.replay("i", "a", since_seq=0).hits]

    def test_a_slice_is_recorded_before_its_publish(self) -> None:
        """When the publish of a hit happens, a replay already answers it: replay + live events miss nothing."""
        async def publish(sub_id: str, hits: List[Any]) -> None:
            self.log.append(f"publish {[h['_seq'] for h in hits]} replayable {self.replayable()}")

        pipeline = Pipeline(WordPercolator(["a"]), publish, Sequencer(None), self.clock, replay=self.store)
        d = pipeline.submit("i", docs("a", "b", "a"))
        self.clock.advance(0)
        self.successResultOf(d)
        self.assertEqual(self.log, ["publish [1, 3] replayable [1, 3]"])

    def test_each_slice_is_recorded_before_its_own_publish_and_not_before_it_is_matched(self) -> None:
        """Slices are recorded one by one, each just before its publish."""
        async def publish(sub_id: str, hits: List[Any]) -> None:
            self.log.append(f"publish {[h['_seq'] for h in hits]} replayable {self.replayable()}")

        percolator = TimedPercolator(["a"], self.clock, cost=0.0005, log=self.log)
        pipeline = Pipeline(percolator, publish, Sequencer(None), self.clock, batch_size=100, slice_seconds=0.002,
                            replay=self.store)
        for batch in (docs("b"), docs(*["a"] * 8)):  # the first shows the cost: the second is cut in two
            d = pipeline.submit("i", batch)
            while not d.called:
                self.clock.advance(0)
        self.assertEqual([entry for entry in self.log if entry.startswith("publish")],
                         ["publish [2, 3, 4, 5] replayable [2, 3, 4, 5]",
                          "publish [6, 7, 8, 9] replayable [2, 3, 4, 5, 6, 7, 8, 9]"])

    def test_without_a_store_the_pipeline_publishes_as_before(self) -> None:
        """The store is optional: no replay, same publishes."""
        published: List[str] = []

        async def publish(sub_id: str, hits: List[Any]) -> None:
            published.append(sub_id)

        pipeline = Pipeline(WordPercolator(["a"]), publish, Sequencer(None), self.clock)
        d = pipeline.submit("i", docs("a"))
        self.clock.advance(0)
        self.successResultOf(d)
        self.assertEqual(published, ["a"])


class AcknowledgedTests(SynchronousTestCase):
    """Kafka submissions: published with router acks, fired only once every ack is in."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.calls: List[Tuple[str, bool]] = []
        self.acks: List[Deferred[Any]] = []

        async def publish(sub_id: str, hits: List[Any], acknowledge: bool = False) -> Any:
            self.calls.append((sub_id, acknowledge))
            if acknowledge:
                ack: Deferred[Any] = Deferred()
                self.acks.append(ack)
                return ack
            return True

        self.pipeline = Pipeline(WordPercolator(["a", "b"]), publish, Sequencer(None), self.clock, batch_size=10)

    def test_it_fires_only_when_every_publish_is_acknowledged(self) -> None:
        d = self.pipeline.submit("i", docs("a", "a b"), acknowledged=True)
        self.clock.advance(0)
        self.assertEqual(sorted(self.calls), [("a", True), ("b", True)])
        self.assertNoResult(d)  # published, not yet acknowledged
        self.acks[0].callback(None)
        self.assertNoResult(d)
        self.acks[1].callback(None)
        self.assertEqual(self.successResultOf(d).deliveries, 3)

    def test_a_refused_ack_fails_it_with_nothing_delivered(self) -> None:
        d = self.pipeline.submit("i", docs("a", "b"), acknowledged=True)
        self.clock.advance(0)
        self.acks[0].callback(None)
        self.acks[1].errback(RuntimeError("session lost"))
        error = self.failureResultOf(d, NotAllDelivered).value
        self.assertEqual((error.delivered, error.accepted), (0, 2))

    def test_http_submissions_keep_fire_and_forget_publishing(self) -> None:
        """Alone in a slice, a plain submission never asks for acks and fires when published."""
        d = self.pipeline.submit("i", docs("a"))
        self.clock.advance(0)
        self.assertEqual(self.calls, [("a", False)])
        self.successResultOf(d)

    def test_a_plain_submission_sharing_a_slice_does_not_wait_for_the_acks(self) -> None:
        plain = self.pipeline.submit("i", docs("a"))
        kafka = self.pipeline.submit("i", docs("a"), acknowledged=True)
        self.clock.advance(0)
        self.assertEqual(self.calls, [("a", True)])  # one publish carries both
        self.successResultOf(plain)
        self.assertNoResult(kafka)
        self.acks[0].callback(None)
        self.successResultOf(kafka)

    def test_documents_matching_nothing_fire_at_once(self) -> None:
        d = self.pipeline.submit("i", docs("c"), acknowledged=True)
        self.clock.advance(0)
        self.assertEqual(self.calls, [])
        self.assertEqual(self.successResultOf(d).deliveries, 0)

    def test_a_failed_publish_fails_it_with_nothing_delivered(self) -> None:
        async def broken(sub_id: str, hits: List[Any], acknowledge: bool = False) -> Any:
            raise BackendUnavailable("the router is not reachable")

        self.pipeline.publish = broken
        d = self.pipeline.submit("i", docs("a", "a"), acknowledged=True)
        self.clock.advance(0)
        error = self.failureResultOf(d, NotAllDelivered).value
        self.assertEqual((error.delivered, error.accepted), (0, 2))
        self.flushLoggedErrors(BackendUnavailable)

    def test_kafka_positions_ride_on_the_hits_and_http_hits_have_none(self) -> None:
        seen: List[Any] = []

        async def publish(sub_id: str, hits: List[Any], acknowledge: bool = False) -> Any:
            seen.extend(hits)
            return True

        self.pipeline.publish = publish
        origin = {"topic": "t", "partition": 2, "offset": 41}
        self.pipeline.submit("i", [Incoming({"m": "a"}, kafka=origin), Incoming({"m": "a"})])
        self.clock.advance(0)
        self.assertEqual(seen[0]["_kafka"], origin)
        self.assertNotIn("_kafka", seen[1])
        self.assertEqual(list(seen[1]), ["_index", "_id", "_seq", "_beater", "_received", "_source"])


class Slices:
    """Records the ends of slices a gathering publisher is told of."""

    def __init__(self) -> None:
        self.events: List[str] = []

    def end_slice(self, acknowledge: bool = False, encode: Any = None) -> List[Any]:
        self.events.append("end")
        return []

    def abandon_slice(self) -> None:
        self.events.append("abandon")


class SliceEndTests(SynchronousTestCase):
    def test_each_slice_ends_after_its_publishes(self) -> None:
        """A gathering publisher (the Tailors' event) is told once per slice, after every id of it."""
        clock, slices, order = Clock(), Slices(), []

        async def publish(sub_id: str, hits: List[Any]) -> None:
            order.append(sub_id)
            slices.events.append(sub_id)

        pipeline = Pipeline(WordPercolator(["a", "b"]), publish, Sequencer(None), clock, batch_size=10, slices=slices)
        d = pipeline.submit("i", docs("a b", "b"))
        clock.advance(0)
        self.successResultOf(d)
        self.assertEqual(slices.events, ["a", "b", "end"])

    def test_a_slice_whose_publishing_fails_is_abandoned(self) -> None:
        """What the slice gathered is forgotten, so the next slice does not carry it."""
        clock, slices = Clock(), Slices()

        async def publish(sub_id: str, hits: List[Any]) -> None:
            raise BackendUnavailable("the router is not reachable")

        pipeline = Pipeline(WordPercolator(["a"]), publish, Sequencer(None), clock, batch_size=10, slices=slices)
        d = pipeline.submit("i", docs("a"))
        clock.advance(0)
        self.failureResultOf(d, NotAllDelivered)
        self.assertEqual(slices.events, ["abandon"])
        self.flushLoggedErrors(BackendUnavailable)
