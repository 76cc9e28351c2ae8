"""The Beater's Prometheus metrics: what came in, what went out, how long a micro-batch took.

Each Beater owns its own registry rather than prometheus-client's global one, so
several Beaters in one process (tests, benchmarks) never share or clash.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Optional

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from beater.replay import ReplayStore

# Micro-batches take from well under a millisecond to seconds (a slow Elasticsearch).
_BATCH_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
# A document takes microseconds in the embedded percolator, milliseconds against Elasticsearch.
_PER_DOCUMENT_BUCKETS = (0.00001, 0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5)

DOCUMENT_ERROR_KINDS = ("invalid_document", "unavailable", "matcher_error")
"""The kinds of ``estrom_document_errors``; another may be counted, these always show."""


class BeaterMetrics:
    """Counters and histograms of ingestion, percolation and publishing."""

    def __init__(self, registry: Optional[CollectorRegistry] = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.documents = Counter(
            "estrom_documents", "Documents percolated", ["index"], registry=self.registry
        )
        self.rejected = Counter(
            "estrom_documents_rejected", "Items refused at ingest (bad JSON, not an object, ...)", ["index"], registry=self.registry
        )
        self.deliveries = Counter(
            "estrom_deliveries", "(document, subscription) matches published", ["index"], registry=self.registry
        )
        self.publishes = Counter("estrom_publishes", "WAMP events published (one per topic per batch)", registry=self.registry)
        self.unheard = Counter(
            "estrom_publishes_unheard", "events not published because no one subscribed to the topic", registry=self.registry
        )
        self.batch_failures = Counter(
            "estrom_batch_failures", "Micro-batches whose percolation or publishing failed", registry=self.registry
        )
        self.batch_seconds = Histogram(
            "estrom_batch_seconds", "Time to percolate and publish one micro-batch", buckets=_BATCH_BUCKETS, registry=self.registry
        )
        self.batch_documents = Histogram(
            "estrom_batch_documents", "Documents per micro-batch", buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000), registry=self.registry
        )
        self.router_connected = Gauge("estrom_router_connected", "1 while the Beater holds a router session", registry=self.registry)
        # The Kafka source (written from its consumer thread: prometheus-client's metrics are thread-safe).
        self.kafka_records = Counter("estrom_kafka_records", "Records read from Kafka", ["topic"], registry=self.registry)
        self.kafka_poison = Counter(
            "estrom_kafka_poison_records", "Kafka records skipped as poison (not JSON, not an object, too large)",
            ["topic", "reason"], registry=self.registry,
        )
        self.kafka_dead_letters = Counter("estrom_kafka_dead_letters", "Poison records produced to the dead-letter topic", registry=self.registry)
        self.kafka_lag = Gauge(
            "estrom_kafka_lag", "Records of a partition not yet fully delivered (highwater - commit position)",
            ["topic", "partition"], registry=self.registry,
        )
        self.kafka_commit_seconds = Histogram(
            "estrom_kafka_commit_seconds", "Time to commit offsets to Kafka", buckets=_BATCH_BUCKETS, registry=self.registry
        )
        self.kafka_commit_failures = Counter("estrom_kafka_commit_failures", "Offset commits that failed (retried)", registry=self.registry)
        self.kafka_in_flight = Gauge("estrom_kafka_in_flight", "Kafka records handed to the pipeline and not yet acknowledged", registry=self.registry)
        self.kafka_paused = Gauge("estrom_kafka_paused", "1 while the Kafka source has paused its partitions (too much in flight)", registry=self.registry)
        # Per-document cost, the figure that says how many documents a second a Beater takes: observed
        # once per slice (its matching time over its documents), so the histogram costs nothing per document.
        self.percolate_seconds_per_document = Histogram(
            "estrom_percolate_seconds_per_document", "Percolation time per document (a slice's matching time over its documents)",
            buckets=_PER_DOCUMENT_BUCKETS, registry=self.registry,
        )
        self.document_errors = Counter(
            "estrom_document_errors",
            "Documents that failed, by kind: invalid_document (refused at ingest), unavailable (percolating or publishing "
            "failed, not delivered), matcher_error (the percolator could not match this one document)",
            ["kind"], registry=self.registry,
        )
        for kind in DOCUMENT_ERROR_KINDS:
            self.document_errors.labels(kind)  # each kind shows from the first scrape, at zero
        self.limit_refusals = Counter(
            "estrom_limit_refusals", "Requests refused because they would break a limit, by limit", ["limit"], registry=self.registry
        )

    def watch_registrations(self, percolator: Any) -> None:
        """Expose how many queries the percolator matches, read at each scrape (embedded percolator only:
        an Elasticsearch count would be a request per scrape)."""
        self.registry.register(_RegistrationsCollector(percolator))

    def watch_replay(self, store: "ReplayStore") -> None:
        """Expose the replay store's size and evictions, read from the store at each scrape."""
        self.registry.register(_ReplayCollector(store))

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text exposition format."""
        return generate_latest(self.registry)


class _ReplayCollector:
    """The replay store's figures at scrape time: the store stays pure logic, with plain counters."""

    def __init__(self, store: "ReplayStore") -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        """Documents, bytes and (document, subscription) pairs held; evictions by reason."""
        stats = self.store.stats()
        yield GaugeMetricFamily("estrom_replay_documents", "Matched documents held for replay", value=stats["documents"])
        yield GaugeMetricFamily("estrom_replay_bytes", "Bytes of the documents held for replay", value=stats["bytes"])
        yield GaugeMetricFamily("estrom_replay_pairs", "(document, subscription) pairs held for replay", value=stats["pairs"])
        evictions = CounterMetricFamily("estrom_replay_evictions", "Documents evicted from the replay store", labels=["reason"])
        for reason, count in self.store.evictions.items():
            evictions.add_metric([reason], count)
        yield evictions


class _RegistrationsCollector:
    """The number of registered queries, from the percolator at scrape time."""

    def __init__(self, percolator: Any) -> None:
        self.percolator = percolator

    def collect(self) -> Iterator[Metric]:
        """``estrom_registrations{backend}``, for a percolator that can count without a request."""
        index = getattr(self.percolator, "index", None)
        if index is None or not hasattr(index, "__len__"):
            return
        family = GaugeMetricFamily("estrom_registrations", "Registered queries the percolator matches", labels=["backend"])
        family.add_metric([str(getattr(self.percolator, "name", "embedded"))], len(index))
        yield family


__all__ = ["BeaterMetrics", "DOCUMENT_ERROR_KINDS"]
