"""Metrics on both services and log lines that help, against a real ``estrom up``.

One ``estrom up --log-level info --log-format json --max-tails-per-client 1``:
both ports serve ``/metrics`` with the counts of what went through, health
checks leave no access line, every line of its output is one JSON object, and
a tail refused by a limit is one line naming the limit and the client.
"""

from __future__ import annotations

import http.client
import json
import uuid
from typing import Any, Dict, Iterator, List, Optional

import pytest

from tests.integration.conftest import Estrom
from tests.integration.processes import wait_for


@pytest.fixture(scope="module")
def estrom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estrom]:
    """``estrom up`` logging JSON lines at info, one tail per client address."""
    instance = Estrom(tmp_path_factory.mktemp("estrom-metrics"),
                      ["--log-level", "info", "--log-format", "json", "--max-tails-per-client", "1"])
    instance.start()
    yield instance
    instance.stop()


def get(port: int, path: str, agent: str = "estrom-tests") -> "tuple[int, bytes]":
    """GET ``path`` with ``agent`` as User-Agent; status and body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"user-agent": agent})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


def metric(port: int, name: str, **labels: str) -> Optional[float]:
    """One series' value from ``/metrics`` on ``port`` (None if absent)."""
    status, body = get(port, "/metrics")
    assert status == 200
    for line in body.decode().splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return None


def json_lines(instance: Estrom) -> List[Dict[str, Any]]:
    """Every line of ``estrom up``'s output, decoded (each must be one JSON object)."""
    return [json.loads(line) for line in list(instance.output) if line.strip()]


def test_both_services_serve_metrics_that_count_a_tail_and_a_post(estrom: Estrom) -> None:
    """After one tail got one posted document, the Tailor's and the Beater's /metrics show it."""
    marker = "metrics" + uuid.uuid4().hex[:10]
    index = "metricsidx"
    tail = estrom.tail(i=index, q=marker, format="ndjson", limit=1)
    assert tail.status == 200
    status, _ = estrom.post(index, {"text": marker})
    assert status == 200
    assert marker.encode() in tail.read_all()
    port = estrom.tailor_port
    assert (metric(port, "estrom_tailor_tails_opened_total", format="ndjson") or 0) >= 1
    assert (metric(port, "estrom_tailor_hits_sent_total", format="ndjson") or 0) >= 1
    assert (metric(port, "estrom_tailor_bytes_sent_total", format="ndjson") or 0) > len(marker)
    wait_for("the ended tail leaves the open-tails gauge",
             lambda: True if metric(port, "estrom_tailor_tails", format="ndjson") == 0 else None, 10, estrom)
    assert metric(port, "estrom_tailor_router_connected") == 1
    beater = estrom.beater_port
    assert (metric(beater, "estrom_documents_total", index=index) or 0) >= 1
    assert (metric(beater, "estrom_registrations", backend="embedded") or 0) >= 1
    assert (metric(beater, "estrom_percolate_seconds_per_document_count") or 0) >= 1
    assert metric(beater, "estrom_document_errors_total", kind="invalid_document") is not None


def test_a_document_refused_at_ingest_counts_as_an_invalid_document_error(estrom: Estrom) -> None:
    """A bad NDJSON line is counted under estrom_document_errors{kind="invalid_document"}."""
    before = metric(estrom.beater_port, "estrom_document_errors_total", kind="invalid_document") or 0
    status, answer = estrom.post("metricsidx", '{"ok": 1}\nnot json\n', content_type="application/x-ndjson")
    assert status == 200 and answer["rejected"] == 1
    assert metric(estrom.beater_port, "estrom_document_errors_total", kind="invalid_document") == before + 1


def test_health_checks_leave_no_access_line_but_other_requests_do(estrom: Estrom) -> None:
    """Polling /api/v0.1/health and /metrics writes nothing; a request after them is logged."""
    probe, other = "probe-" + uuid.uuid4().hex[:8], "after-" + uuid.uuid4().hex[:8]
    for port in (estrom.tailor_port, estrom.beater_port):
        for _ in range(3):
            get(port, "/api/v0.1/health", agent=probe)
            get(port, "/metrics", agent=probe)
        get(port, f"/{other}", agent=other)  # a 404, logged: once it shows, the health checks before it would have too
    wait_for("the access lines of the requests after the health checks",
             lambda: True if sum(other in line for line in estrom.output) == 2 else None, 15, estrom)
    assert not [line for line in estrom.output if probe in line]
    access = [line for line in json_lines(estrom) if other in line["message"]]
    assert {line["service"] for line in access} == {"tailor", "beater"}
    assert all(line["status"] == 404 and line["system"] == "estrom.access" for line in access)


def test_json_log_format_gives_one_json_object_per_line(estrom: Estrom) -> None:
    """Every line of the output is a JSON object with time, level, service, system and message."""
    lines = json_lines(estrom)
    assert lines
    for line in lines:
        assert {"time", "level", "service", "system", "message"} <= set(line), line
    assert {line["service"] for line in lines} >= {"up", "beater", "tailor"}
    ready = [line for line in lines if line.get("event") == "ready"]
    assert [line["service"] for line in ready] == ["up"]
    assert {line["service"] for line in lines if line.get("event") == "router_joined"} == {"beater", "tailor"}


def test_a_tail_refused_by_a_limit_is_one_line_naming_the_limit_and_the_client(estrom: Estrom) -> None:
    """Past --max-tails-per-client the 429 is logged once as a limit_hit, counted in the metrics too."""
    first = estrom.tail(i="metricsidx", q="held-open")
    assert first.status == 200
    try:
        refused = [estrom.tail(i="metricsidx", q="one-too-many") for _ in range(5)]
        assert [t.status for t in refused] == [429] * 5
        for t in refused:
            t.close()
    finally:
        first.close()
    hits = wait_for("the limit line", lambda: [line for line in json_lines(estrom) if line.get("event") == "limit_hit"] or None,
                    15, estrom)
    assert len(hits) == 1  # five refusals within a minute: one line
    (line,) = hits
    assert (line["limit"], line["value"], line["client"], line["level"]) == ("max_tails_per_client", 1, "127.0.0.1", "warn")
    assert metric(estrom.tailor_port, "estrom_tailor_limit_refusals_total", limit="max_tails_per_client") == 5
