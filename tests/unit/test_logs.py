"""estrom's log lines: their two formats, what the level lets through, limit lines, access lines."""

from __future__ import annotations

import io
import json
from typing import Any, Dict, List, Tuple

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import FilteringLogObserver, Logger, LogLevel
from twisted.web.resource import Resource

from estrom import logs, web
from estrom.web import json_site


def record(message: str = "hello {who}", level: LogLevel = LogLevel.info, namespace: str = "tailor.http", **fields: Any) -> Dict[str, Any]:
    """A Twisted log event as a Logger would emit it."""
    return {"log_format": message, "log_level": level, "log_namespace": namespace, "log_time": 1796132851.25, **fields}


def passes(level: str, event: Dict[str, Any]) -> bool:
    """Whether ``event`` is written under ``--log-level level``."""
    seen: List[Dict[str, Any]] = []
    FilteringLogObserver(seen.append, logs.predicates(level))(event)
    return bool(seen)


def test_a_json_line_has_time_level_service_system_message_and_details() -> None:
    """One JSON object: ISO time in UTC, the level's name, the process, the module, the text, the fields."""
    line = json.loads(logs.as_json(record(who="you", count=3), "tailor"))
    assert line == {"time": "2026-12-01T13:47:31.250Z", "level": "info", "service": "tailor", "system": "tailor.http",
                    "message": "hello you", "who": "you", "count": 3}


def test_a_named_event_carries_its_name_in_json() -> None:
    """A named event's line says which event it is."""
    line = json.loads(logs.as_json(record("ready", **{logs.EVENT_KEY: "ready"}), "up"))
    assert line["event"] == "ready"


def test_a_failure_is_in_the_same_json_line() -> None:
    """A logged traceback stays inside its JSON object: still one line."""
    try:
        raise ValueError("boom")
    except ValueError:
        from twisted.python.failure import Failure

        failure = Failure()
    text = logs.as_json(record("it failed", log_failure=failure), "beater")
    assert "\n" not in text
    assert "ValueError: boom" in json.loads(text)["traceback"]


def test_a_text_line_names_the_process_and_level() -> None:
    """Text lines read ``<time> [<service>#<level>] <message>``."""
    assert logs.as_text(record(who="you", level=LogLevel.warn), "beater").endswith(" [beater#warn] hello you")


def test_the_level_drops_detail_below_it() -> None:
    """Under ``warn`` an info line is not written; a warning is."""
    assert not passes("warn", record())
    assert passes("warn", record(level=LogLevel.warn))


def test_named_events_pass_any_level() -> None:
    """Start, ready, restarts and the like are written even under ``error``."""
    assert passes("error", record("ready", **{logs.EVENT_KEY: "ready"}))


def test_autobahn_progress_lines_show_at_debug_only() -> None:
    """autobahn's info lines (one per reconnect attempt) are hidden at ``info`` and shown at ``debug``."""
    chatter = record("trying transport 0", namespace="autobahn.twisted.component.Component")
    assert not passes("info", chatter)
    assert passes("debug", chatter)


def test_an_unknown_level_is_refused() -> None:
    """A typo in --log-level is an error naming the choices."""
    with pytest.raises(ValueError, match="debug, info, warn, error"):
        logs.level_of("verbose")


def test_the_line_observer_writes_one_line_per_event() -> None:
    """Each event is one newline-terminated line on the stream."""
    out = io.StringIO()
    observer = logs.line_observer(out, "tailor", "json")
    observer(record(who="a"))
    observer(record(who="b"))
    assert [json.loads(line)["message"] for line in out.getvalue().splitlines()] == ["hello a", "hello b"]


def captured() -> Tuple[Logger, List[Dict[str, Any]]]:
    """A Logger whose events land in a list."""
    events: List[Dict[str, Any]] = []
    return Logger(namespace="test", observer=events.append), events


def test_a_limit_hit_is_one_warning_naming_the_limit_and_the_client() -> None:
    """The first refusal of a client by a limit is logged at once, as a named warn event."""
    log, events = captured()
    assert logs.limit_hit(log, "max_tails_per_client", 500, "10.0.0.1", budget=logs.LineBudget(clock=Clock().seconds))
    (event,) = events
    assert event["log_level"] == LogLevel.warn
    assert event[logs.EVENT_KEY] == "limit_hit"
    assert (event["limit"], event["value"], event["client"]) == ("max_tails_per_client", 500, "10.0.0.1")


def test_a_flood_of_limit_hits_is_one_line_a_minute_counting_the_rest() -> None:
    """Refusals within a minute are held back; the next line says how many there were."""
    log, events = captured()
    clock = Clock()
    budget = logs.LineBudget(window_s=60, clock=clock.seconds)
    for _ in range(1000):
        logs.limit_hit(log, "max_tails", 10, "10.0.0.1", budget=budget)
    assert len(events) == 1
    clock.advance(60)
    logs.limit_hit(log, "max_tails", 10, "10.0.0.1", budget=budget)
    assert len(events) == 2
    assert events[1]["suppressed"] == 999
    assert "999 more refusals" in logs.as_text(events[1], "tailor")


def test_each_client_gets_its_own_limit_line() -> None:
    """One noisy client does not hide that another was refused too."""
    log, events = captured()
    budget = logs.LineBudget(clock=Clock().seconds)
    logs.limit_hit(log, "max_tails", 10, "10.0.0.1", budget=budget)
    logs.limit_hit(log, "max_tails", 10, "10.0.0.2", budget=budget)
    assert [e["client"] for e in events] == ["10.0.0.1", "10.0.0.2"]


def test_many_clients_cannot_grow_the_budget_without_bound() -> None:
    """Past its key budget, new clients share one entry (and one line a minute)."""
    log, events = captured()
    budget = logs.LineBudget(max_keys=3, clock=Clock().seconds)
    for i in range(100):
        logs.limit_hit(log, "max_tails", 10, f"10.0.0.{i}", budget=budget)
    assert len(budget._last) <= 4
    assert [e["client"] for e in events] == ["10.0.0.0", "10.0.0.1", "10.0.0.2", "*"]


# --- access lines -----------------------------------------------------------------------------------------------------


class Hello(Resource):
    """Answers every path."""

    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        return b"hi\n"


def get(path: bytes, access: str, monkeypatch: pytest.MonkeyPatch) -> List[Dict[str, Any]]:
    """GET ``path`` through a JSON site in ``access`` mode; the access events it logged."""
    events: List[Dict[str, Any]] = []
    monkeypatch.setattr(web.access_log, "observer", events.append)
    site = json_site(Hello(), access)
    site.reactor = Clock()  # type: ignore[assignment]
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    channel.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000)))
    channel.dataReceived(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nUser-Agent: probe\r\n\r\n")
    return events


def test_a_request_gets_one_access_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """An ordinary request is logged with its client, request line, status, bytes and user agent."""
    (event,) = get(b"/api/v0.1/docs?i=x", "requests", monkeypatch)
    text = logs.as_text(event, "tailor")
    assert '127.0.0.1 "GET /api/v0.1/docs?i=x HTTP/1.1" 200 3 bytes' in text and '"probe"' in text
    assert (event["status"], event["bytes"], event["left"]) == (200, 3, False)


@pytest.mark.parametrize("path", [b"/api/v0.1/health", b"/metrics"])
def test_health_checks_and_scrapes_leave_no_access_line_by_default(path: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """The supervisor's and Prometheus' polling does not fill the log."""
    assert get(path, "requests", monkeypatch) == []


def test_access_log_all_includes_health_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--access-log all`` logs the health checks too."""
    assert len(get(b"/api/v0.1/health", "all", monkeypatch)) == 1


def test_access_log_off_logs_no_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--access-log off`` writes no access line."""
    assert get(b"/api/v0.1/docs", "off", monkeypatch) == []


def test_a_request_whose_client_left_is_logged_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tail its client ended (never finished by the server) still gets its line, marked as left."""
    events: List[Dict[str, Any]] = []
    monkeypatch.setattr(web.access_log, "observer", events.append)

    class Never(Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> Any:
            request.write(b"{")
            from twisted.web.server import NOT_DONE_YET

            return NOT_DONE_YET

    site = json_site(Never())
    site.reactor = Clock()  # type: ignore[assignment]
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    channel.makeConnection(StringTransport())
    channel.dataReceived(b"GET /api/v0.1/docs HTTP/1.1\r\nHost: x\r\n\r\n")
    assert events == []
    from twisted.internet.error import ConnectionDone
    from twisted.python.failure import Failure

    channel.connectionLost(Failure(ConnectionDone()))
    (event,) = events
    assert event["left"] is True
    assert "(client left)" in logs.as_text(event, "tailor")


def test_autobahn_reconnect_warnings_show_at_debug_only() -> None:
    """autobahn's warn/error line per reconnect attempt is hidden unless at ``debug`` (estrom says it once)."""
    attempt = record('trying transport {transport_idx} ("{transport_url}") using connect delay {transport_delay}',
                     level=LogLevel.warn, namespace="autobahn.twisted.component.Component",
                     transport_idx=0, transport_url="ws://x", transport_delay=2.0)
    assert not passes("info", attempt)
    assert passes("debug", attempt)


# --- the router session -----------------------------------------------------------------------------------------------


def holder_events() -> Tuple[Any, Clock, List[Dict[str, Any]]]:
    """A SessionHolder on a fake clock, its log events in a list."""
    from router import client

    events: List[Dict[str, Any]] = []
    clock = Clock()
    holder = client.SessionHolder(clock=clock.seconds)
    return holder, clock, events


def test_the_router_session_is_said_lost_and_regained_with_the_downtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """One named line when the session goes, one when it is back, saying how long it was away."""
    from router import client

    holder, clock, events = holder_events()
    monkeypatch.setattr(client.log, "observer", events.append)
    session, details = object(), type("Details", (), {"reason": "wamp.close.transport_lost"})()
    holder._on_join(session, None)
    holder._on_leave(session, details)
    clock.advance(2.5)
    holder._on_join(object(), None)
    assert [e[logs.EVENT_KEY] for e in events] == ["router_joined", "router_lost", "router_regained"]
    assert events[1]["reason"] == "wamp.close.transport_lost" and events[1]["log_level"] == LogLevel.warn
    assert events[2]["down_s"] == 2.5


def test_an_unreachable_router_is_said_once_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    """Failed attempts every 2 s give one line, then one a minute counting the attempts between."""
    from router import client

    holder, clock, events = holder_events()
    monkeypatch.setattr(client.log, "observer", events.append)
    for _ in range(30):
        holder._on_connect_failure(None, ConnectionRefusedError("refused"))
        clock.advance(2)
    holder._on_connect_failure(None, ConnectionRefusedError("refused"))
    assert [e[logs.EVENT_KEY] for e in events] == ["router_unreachable", "router_unreachable"]
    assert events[1]["attempts"] == 29
