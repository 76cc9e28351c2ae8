"""The Tailor's Prometheus metrics: tails by format, what they were sent, what they lost, what was refused.

Like the Beater's, each Tailor owns its registry (never prometheus-client's
global one), so several in one process never clash.  A tail counts as it
writes (:class:`TailCounters`, handed to it when it is made), so a long-lived
tail's bytes and hits show at the next scrape, not when it ends.
"""

from __future__ import annotations

from typing import Callable, Iterator, Optional

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from tailor.stream import FORMATS


class TailCounters:
    """The counters one tail of one format adds to (label children resolved once, not at every write)."""

    def __init__(self, metrics: "TailorMetrics", fmt: str) -> None:
        self.open_tails = metrics.open_tails.labels(fmt)
        self.opened = metrics.tails_opened.labels(fmt)
        self.bytes_sent = metrics.bytes_sent.labels(fmt)
        self.hits_sent = metrics.hits_sent.labels(fmt)
        self.hits_dropped = metrics.hits_dropped.labels(fmt)
        self.hits_replayed = metrics.hits_replayed.labels(fmt)
        self.gaps = metrics.gaps.labels(fmt)

    def tail_opened(self) -> None:
        """A tail of this format sent its header."""
        self.opened.inc()
        self.open_tails.inc()

    def tail_closed(self) -> None:
        """A tail that had opened ended."""
        self.open_tails.dec()


class TailorMetrics:
    """Counters and gauges of the Tailor's tails."""

    def __init__(self, registry: Optional[CollectorRegistry] = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.open_tails = Gauge("estrom_tailor_tails", "Open HTTP tails", ["format"], registry=r)
        self.tails_opened = Counter("estrom_tailor_tails_opened", "HTTP tails opened (header sent)", ["format"], registry=r)
        self.bytes_sent = Counter("estrom_tailor_bytes_sent", "Bytes written to HTTP tails (headers, hits, heartbeats, footers)",
                                  ["format"], registry=r)
        self.hits_sent = Counter("estrom_tailor_hits_sent", "Hits written to HTTP tails", ["format"], registry=r)
        self.hits_dropped = Counter("estrom_tailor_hits_dropped", "Hits dropped for tails whose client did not read fast enough",
                                    ["format"], registry=r)
        self.hits_replayed = Counter("estrom_tailor_hits_replayed", "Hits replayed to resuming tails from the Beaters' replay stores",
                                     ["format"], registry=r)
        self.gaps = Counter("estrom_tailor_gaps", "Gap records sent to tails (a replay could not reach back far enough)",
                            ["format"], registry=r)
        self.resumes = Counter("estrom_tailor_resumes", "Tails that asked to resume (since= or Last-Event-ID)", registry=r)
        self.limit_refusals = Counter("estrom_tailor_limit_refusals", "Tails refused with 429, by the limit they would break",
                                      ["limit"], registry=r)
        # Every format shows from the first scrape, at zero: a rate() over a series that appears late misses its start.
        self._counters = {name: TailCounters(self, name) for name in FORMATS}

    def for_format(self, fmt: str) -> TailCounters:
        """The counters of a tail of format ``fmt``."""
        counters = self._counters.get(fmt)
        if counters is None:
            counters = self._counters[fmt] = TailCounters(self, fmt)
        return counters

    def watch(self, subscriptions: Callable[[], int], router_connected: Callable[[], bool]) -> None:
        """Expose figures read at scrape time: subscriptions held on the router, whether the session is up."""
        self.registry.register(_StateCollector(subscriptions, router_connected))

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text exposition format."""
        return generate_latest(self.registry)


class _StateCollector:
    """The Tailor's state at scrape time (the hub and the session stay free of metrics code)."""

    def __init__(self, subscriptions: Callable[[], int], router_connected: Callable[[], bool]) -> None:
        self.subscriptions = subscriptions
        self.router_connected = router_connected

    def collect(self) -> Iterator[Metric]:
        """Subscriptions with at least one tail, and the router session."""
        yield GaugeMetricFamily("estrom_tailor_subscriptions", "Subscription ids the Tailor holds on the router (each shared by its tails)",
                                value=self.subscriptions())
        yield GaugeMetricFamily("estrom_tailor_router_connected", "1 while the Tailor holds a router session",
                                value=1 if self.router_connected() else 0)


__all__ = ["TailCounters", "TailorMetrics"]
