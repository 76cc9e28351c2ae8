"""Window counts over WAMP against a real ``estrom up``: ``estrom.counts`` names a topic that carries the windows."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any, Dict, List

from tests.integration.conftest import WAMPCLI, Estrom
from tests.integration.tailclients import post_docs
from tests.integration.test_counts import POSTED, counted, group_totals, open_counts, windows_of


class CountsSubscriber:
    """A separate WAMP client process that called ``estrom.counts`` and subscribed to the topic it named."""

    def __init__(self, instance: Estrom, options: Dict[str, Any], count: int = 1000, timeout: float = 60.0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WAMPCLI), instance.router_url, "counts", json.dumps(options), str(count), str(timeout)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: "queue.Queue[str]" = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.answer = json.loads(self.next_line(30))
        self.records: List[Dict[str, Any]] = []
        if "result" in self.answer:
            assert self.next_line(30) == "subscribed"

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def next_line(self, timeout: float) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no line from the WAMP client; stderr: " + (self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else "")) from None

    def read_until(self, done: Any, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not done(self):
            left = deadline - time.monotonic()
            assert left > 0, f"timed out; records so far: {self.records}"
            try:
                self.records.append(json.loads(self.lines.get(timeout=left)))
            except queue.Empty:
                continue

    def counted(self) -> int:
        return sum(r["count"] for r in self.records)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


def register(instance: Estrom, index: str, query: str) -> str:
    [answer] = instance.wamp("call", "estrom.register", json.dumps([index, query]))
    return answer["result"]["id"]


def test_estrom_counts_names_the_topic_of_the_window_and_field(estrom: Estrom) -> None:
    subscription_id = register(estrom, "counts-w1", "message:named")
    subscriber = CountsSubscriber(estrom, {"subscription_id": subscription_id, "window": "10s", "by": "wiki"})
    subscriber.close()
    answer = subscriber.answer["result"]
    assert answer["topic"] == f"counts-for-{subscription_id}-10s-wiki"
    assert (answer["window"], answer["window_ms"], answer["by"], answer["top"]) == ("10s", 10_000, "wiki", 10)
    assert answer["readable"] == "message:named"


def test_options_a_topic_name_does_not_spell_get_a_variant_tag(estrom: Estrom) -> None:
    subscription_id = register(estrom, "counts-w1", "message:named")
    plain = CountsSubscriber(estrom, {"subscription_id": subscription_id, "window": "10s"})
    more = CountsSubscriber(estrom, {"subscription_id": subscription_id, "window": "10s", "top": 3})
    plain.close()
    more.close()
    assert "result" in more.answer, more.answer
    assert plain.answer["result"]["topic"] == f"counts-for-{subscription_id}-10s"
    assert more.answer["result"]["topic"].startswith(f"counts-for-{subscription_id}-10s~")


def test_wamp_windows_count_what_was_posted_as_the_http_counts_tail_does(estrom: Estrom) -> None:
    subscription_id = register(estrom, "counts-w2", "message:counted")
    spec = {"window": "1s", "by": "wiki", "lateness": "1s"}
    subscriber = CountsSubscriber(estrom, {"subscription_id": subscription_id, **spec})
    http_tail = open_counts(estrom, s=subscription_id, **spec)
    post_docs(estrom, "counts-w2", POSTED)
    subscriber.read_until(lambda s: s.counted() >= 6)
    http_tail.read_until(lambda c: counted(c) >= 6, what="6 documents counted over HTTP")
    time.sleep(1.5)  # a window that counted more than was posted would show now
    subscriber.read_until(lambda s: True)
    subscriber.close()
    http_tail.close()
    assert subscriber.counted() == 6
    assert group_totals(subscriber.records) == Counter({"enwiki": 3, "dewiki": 2, None: 1})
    # One aggregator serves both: the windows that counted anything are the same records.
    wamp_windows = {r["window"]["start"]: r for r in subscriber.records if r["count"]}
    http_windows = {r["window"]["start"]: r for r in windows_of(http_tail.records) if r["count"]}
    assert wamp_windows == http_windows


def test_an_unknown_subscription_is_refused_with_its_error_uri(estrom: Estrom) -> None:
    subscriber = CountsSubscriber(estrom, {"subscription_id": "0123456789abcdef", "window": "10s"})
    subscriber.close()
    assert subscriber.answer["error"] == "estrom.error.unknown_subscription"


def test_a_bad_window_is_an_invalid_argument_naming_it(estrom: Estrom) -> None:
    subscription_id = register(estrom, "counts-w1", "message:named")
    subscriber = CountsSubscriber(estrom, {"subscription_id": subscription_id, "window": "0s"})
    subscriber.close()
    assert subscriber.answer["error"] == "estrom.error.invalid_argument"
    assert subscriber.answer["kwargs"]["part"] == "window=0s"


def test_an_unknown_option_is_an_invalid_argument_naming_it(estrom: Estrom) -> None:
    subscription_id = register(estrom, "counts-w1", "message:named")
    subscriber = CountsSubscriber(estrom, {"subscription_id": subscription_id, "windw": "10s"})
    subscriber.close()
    assert subscriber.answer["error"] == "estrom.error.invalid_argument"
    assert subscriber.answer["kwargs"]["part"] == "windw"


def test_anonymous_clients_cannot_publish_counts(estrom: Estrom) -> None:
    [answer] = estrom.wamp("publish", "counts-for-0123456789abcdef-10s", json.dumps({"count": 1000}))
    assert answer == {"error": "wamp.error.not_authorized"}
