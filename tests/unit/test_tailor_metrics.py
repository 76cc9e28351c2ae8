"""The Tailor's metrics: what each tail writes, drops and replays, what is open and what was refused."""

from __future__ import annotations

from typing import Dict, Optional

from twisted.internet.task import Clock
from twisted.web.test.requesthelper import DummyRequest

from estrom.settings import Settings
from tailor import http
from tailor.metrics import TailorMetrics
from tailor.stream import FORMATS
from tailor.subscriptions import SubscriptionHub
from tailor.tail import Tail
from tests.unit.test_tailor_tail import FakeRequest, hit


def sample(metrics: TailorMetrics, name: str, labels: Optional[Dict[str, str]] = None) -> float:
    """The current value of one series (0.0 if it has none)."""
    value = metrics.registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


def opened_tail(metrics: TailorMetrics, fmt: str = "ndjson", **options: object) -> tuple:
    """A tail of ``fmt`` counting into ``metrics``, opened on a fake request."""
    request, clock = FakeRequest(), Clock()
    tail = Tail(request, FORMATS[fmt], clock, "s1", counters=metrics.for_format(fmt), **options)  # type: ignore[arg-type]
    tail.open()
    return tail, request, clock


def test_every_format_shows_at_zero_before_any_tail() -> None:
    """A first scrape already has each format's series, so a rate() sees the first tail."""
    text = TailorMetrics().exposition().decode()
    for fmt in FORMATS:
        assert f'estrom_tailor_tails_opened_total{{format="{fmt}"}} 0.0' in text


def test_an_open_tail_is_counted_by_format_until_it_closes() -> None:
    """The open-tails gauge goes up at the header and back down at close; the opened counter stays."""
    metrics = TailorMetrics()
    tail, _, _ = opened_tail(metrics, "sse")
    assert sample(metrics, "estrom_tailor_tails", {"format": "sse"}) == 1
    tail.close()
    assert sample(metrics, "estrom_tailor_tails", {"format": "sse"}) == 0
    assert sample(metrics, "estrom_tailor_tails_opened_total", {"format": "sse"}) == 1


def test_a_tail_closed_before_it_opened_does_not_lower_the_gauge() -> None:
    """A client that left before the header was never counted open, so its close subtracts nothing."""
    metrics = TailorMetrics()
    tail = Tail(FakeRequest(), FORMATS["json"], Clock(), "s1", counters=metrics.for_format("json"))  # type: ignore[arg-type]
    tail.close()
    assert sample(metrics, "estrom_tailor_tails", {"format": "json"}) == 0


def test_bytes_sent_are_every_byte_the_client_got() -> None:
    """Header, hits and heartbeat all count: the counter equals the body written."""
    metrics = TailorMetrics()
    tail, request, clock = opened_tail(metrics, "ndjson", heartbeat_s=1.0)
    tail.deliver([hit(1), hit(2)])
    clock.advance(1.0)
    clock.advance(1.0)  # an idle second: a heartbeat
    assert sample(metrics, "estrom_tailor_bytes_sent_total", {"format": "ndjson"}) == len(request.body)


def test_hits_sent_are_counted_as_written() -> None:
    """Each hit written to the client counts once, at once (not when the tail ends)."""
    metrics = TailorMetrics()
    tail, _, _ = opened_tail(metrics)
    tail.deliver([hit(1), hit(2), hit(3)])
    assert sample(metrics, "estrom_tailor_hits_sent_total", {"format": "ndjson"}) == 3


def test_hits_dropped_for_a_slow_client_are_counted() -> None:
    """A paused client's buffer overflows: the hits dropped from it are counted."""
    metrics = TailorMetrics()
    tail, _, _ = opened_tail(metrics, max_hits=2)
    tail.pauseProducing()
    tail.deliver([hit(i) for i in range(1, 6)])
    assert sample(metrics, "estrom_tailor_hits_dropped_total", {"format": "ndjson"}) == 3
    assert sample(metrics, "estrom_tailor_hits_sent_total", {"format": "ndjson"}) == 0


def test_replayed_hits_and_gaps_are_counted() -> None:
    """A resuming tail's replay pages count as replayed, and a gap record as a gap."""
    metrics = TailorMetrics()
    tail, _, _ = opened_tail(metrics)
    tail.notice("gap", gap=True, missed=4, beater="b1")
    tail.replayed([hit(5), hit(6)])
    assert sample(metrics, "estrom_tailor_hits_replayed_total", {"format": "ndjson"}) == 2
    assert sample(metrics, "estrom_tailor_gaps_total", {"format": "ndjson"}) == 1


def test_subscriptions_and_router_session_are_read_at_scrape_time() -> None:
    """The state gauges come from the callables given to watch, at each scrape."""
    metrics = TailorMetrics()
    state = {"subscriptions": 2, "router": True}
    metrics.watch(lambda: state["subscriptions"], lambda: state["router"])
    assert sample(metrics, "estrom_tailor_subscriptions") == 2
    state.update(subscriptions=0, router=False)
    assert sample(metrics, "estrom_tailor_subscriptions") == 0
    assert sample(metrics, "estrom_tailor_router_connected") == 0


def test_a_tail_refused_by_a_limit_is_counted_by_that_limit() -> None:
    """A 429 counts under the limit it would break."""
    metrics = TailorMetrics()
    root = http.Root(SubscriptionHub(), lambda: None, Clock(), Settings(max_tails=1), metrics)
    root.docs.limits.opened("10.0.0.9")  # the one tail allowed is open
    request = DummyRequest([b"api", b"v0.1", b"docs"])
    request.args = {b"i": [b"idx"], b"q": [b"hello"]}
    request._disconnected = False  # type: ignore[attr-defined]
    root.docs.render_GET(request)
    assert request.responseCode == 429
    assert sample(metrics, "estrom_tailor_limit_refusals_total", {"limit": "max_tails"}) == 1


def test_the_tailor_serves_metrics_at_slash_metrics() -> None:
    """``GET /metrics`` on the Tailor's root is the Prometheus exposition of its metrics."""
    metrics = TailorMetrics()
    root = http.Root(SubscriptionHub(), lambda: None, Clock(), Settings(), metrics)
    request = DummyRequest([])
    resource = root.getChild(b"metrics", request)
    body = resource.render(request)
    assert request.responseHeaders.getRawHeaders(b"content-type")[0].startswith(b"text/plain")
    assert b"estrom_tailor_subscriptions 0.0" in body
    assert b"estrom_tailor_router_connected 0.0" in body
