"""Starting, stopping and restarting ``estrom up``: nothing lost, nothing left behind."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.integration.conftest import Estrom, settings_free_environment
from tests.integration.processes import alive, descendants

HEADER = b'"hits": ['


def test_registrations_survive_a_restart(tmp_path: Path) -> None:
    """A subscription id registered before a restart still tails documents after it."""
    first = Estrom(tmp_path)
    first.start()
    try:
        [answer] = first.wamp("call", "estrom.register", json.dumps(["events", "survives AND restart"]))
    finally:
        first.stop()
    subscription_id = answer["result"]["id"]

    second = Estrom(tmp_path)
    second.start()
    try:
        tail = second.tail(s=subscription_id, limit=1)
        tail.read_until(HEADER)
        second.post("events", {"message": "restart survives"})
        hits = json.loads(tail.read_all())["hits"]
    finally:
        second.stop()
    assert tail.status == 200
    assert [h["_source"]["message"] for h in hits] == ["restart survives"]


def test_sigterm_stops_every_child_process(tmp_path: Path) -> None:
    """SIGTERM to estrom up leaves no Crossbar or Python process behind, and exits cleanly."""
    instance = Estrom(tmp_path)
    instance.start()
    assert instance.process is not None
    children = descendants(instance.process.pid)
    assert children, "estrom up should have started Crossbar"
    code = instance.stop(signal.SIGTERM)
    assert [pid for pid in children if alive(pid)] == []
    assert code == 0


def test_port_in_use_is_a_one_line_error_naming_port_and_flag(tmp_path: Path) -> None:
    """A taken port stops estrom before it starts anything, with one clear line."""
    instance = Estrom(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", instance.tailor_port))
        squatter.listen()
        done = subprocess.run(instance.command(), capture_output=True, text=True, timeout=60, env=settings_free_environment())
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert str(instance.tailor_port) in lines[0] and "--tailor-port" in lines[0]


def unheard_publishes(instance: Estrom) -> float:
    """The Beater's estrom_publishes_unheard_total counter."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", instance.beater_port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith("estrom_publishes_unheard_total"))


def test_topics_nobody_subscribes_to_are_not_published_until_someone_does(tmp_path: Path) -> None:
    """After a restart a stored query has no listener: its hits are not published; a plain WAMP
    subscribe (no register call) is noticed through the router's meta events and gets the next hit."""
    first = Estrom(tmp_path)
    first.start()
    try:
        [answer] = first.wamp("call", "estrom.register", json.dumps(["events", "unheard"]))
    finally:
        first.stop()
    topic = answer["result"]["topic"]

    second = Estrom(tmp_path)
    second.start()
    try:
        status, report = second.post("events", {"message": "unheard one"})
        assert status == 200 and report["deliveries"] == 1
        assert unheard_publishes(second) == 1.0
        subscriber = second.wamp_subscriber(topic, count=1)
        deadline = time.monotonic() + 10
        while True:  # the meta event reaches the Beater a moment after the subscription
            second.post("events", {"message": "unheard two"})
            try:
                out, _ = subscriber.communicate(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                assert time.monotonic() < deadline, "the subscriber never received a hit"
    finally:
        second.stop()
    assert json.loads(out.splitlines()[0])["_source"]["message"] == "unheard two"
