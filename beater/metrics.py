"""The Beater's Prometheus metrics: what came in, what went out, how long a micro-batch took.

Each Beater owns its own registry rather than prometheus-client's global one, so
several Beaters in one process (tests, benchmarks) never share or clash.
"""

from __future__ import annotations

from typing import Optional

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Micro-batches take from well under a millisecond to seconds (a slow Elasticsearch).
_BATCH_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


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

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text exposition format."""
        return generate_latest(self.registry)


__all__ = ["BeaterMetrics"]
