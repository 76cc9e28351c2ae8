"""``estrom up`` keeps its parts running: a part that is killed is reaped, reported and restarted.

Every test kills a real process of a real ``estrom up`` with SIGKILL (the way the
OOM killer or an operator would) and checks from the outside that the part comes
back and works: health answers 200, documents are ingested, tails get them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path
from typing import List, Optional

from tests.integration.conftest import Estrom, http_get_json
from tests.integration.processes import (
    BEATER, ROUTER, TAILOR, alive, child_pid, descendants, group_of, health, healthy, kill_part, wait_for,
)

HEADER = b'"hits": ['
BACK_WITHIN = 60.0  # seconds: a restart (Crossbar boots in a few) plus the services' reconnect delay


def lines_with(instance: Estrom, text: str) -> List[str]:
    """The lines of ``estrom up``'s output that contain ``text``."""
    return [line for line in list(instance.output) if text in line]


def kill_and_wait_for_new(instance: Estrom, marker: str, name: str) -> int:
    """SIGKILL the part, wait for its one restart line and its successor; return the successor's pid."""
    old, new = kill_part(instance, marker, name, BACK_WITHIN)
    announced = f"estrom: {name} (pid {old}) was killed by SIGKILL; restarting in "
    wait_for(f"the line about {name} {old}", lambda: lines_with(instance, announced) or None, BACK_WITHIN, instance)
    wait_for("both services healthy again", lambda: healthy(instance), BACK_WITHIN, instance)
    assert len(lines_with(instance, f"{name} (pid {old})")) == 1
    return new


def tail_gets_a_posted_document(instance: Estrom, words: str) -> None:
    """A tail opened now receives a document posted after its header."""
    tail = instance.tail(i="events", q=" AND ".join(words.split()), limit=1)
    try:
        tail.read_until(HEADER)
        assert tail.status == 200, tail.received
        status, report = instance.post("events", {"message": words})
        assert status == 200 and report["accepted"] == 1, report
        hits = json.loads(tail.read_all())["hits"]
    finally:
        tail.close()
    assert [h["_source"]["message"] for h in hits] == [words]


def test_a_killed_router_is_reaped_reported_and_restarted(estrom: Estrom) -> None:
    """kill -9 of Crossbar: one line says so, a new Crossbar runs, the old one's workers are gone,
    both services answer 200 again and a tail opened afterwards gets a posted document."""
    controller = child_pid(estrom, ROUTER)
    assert controller is not None
    group = [pid for pid in descendants(controller) | {controller} if group_of(pid) == controller]
    assert len(group) >= 2, "Crossbar should run a router worker beside its controller"
    kill_and_wait_for_new(estrom, ROUTER, "router")
    assert [pid for pid in group if alive(pid)] == []
    tail_gets_a_posted_document(estrom, "router came back")


def test_while_the_router_is_down_the_beater_health_says_so(estrom: Estrom) -> None:
    """Between the kill and the restart the Beater answers 503 naming the router as down."""
    controller = child_pid(estrom, ROUTER)
    assert controller is not None
    os.kill(controller, signal.SIGKILL)

    def degraded() -> Optional[dict]:
        answer = health(estrom.beater_port)
        return answer[1] if answer is not None and answer[0] == 503 else None

    body = wait_for("a 503 from the Beater's health", degraded, 10, estrom)
    assert body["status"] == "degraded" and body["down"] == ["router"] and body["router"] is False
    wait_for("both services healthy again", lambda: healthy(estrom), BACK_WITHIN, estrom)
    status, body = http_get_json(f"http://127.0.0.1:{estrom.beater_port}/api/v0.1/health")
    assert status == 200 and body["status"] == "ok" and body["down"] == []


def test_a_killed_beater_is_restarted_and_ingest_works_again(estrom: Estrom) -> None:
    """kill -9 of the Beater: it is restarted, ingest answers 200 and tails get documents again."""
    kill_and_wait_for_new(estrom, BEATER, "beater")
    status, report = estrom.post("events", {"message": "beater is back"})
    assert status == 200 and report["accepted"] == 1
    tail_gets_a_posted_document(estrom, "beater came back")


def test_a_killed_tailor_is_restarted_and_a_new_tail_works(estrom: Estrom) -> None:
    """kill -9 of the Tailor: it is restarted and a tail opened on it gets a posted document."""
    kill_and_wait_for_new(estrom, TAILOR, "tailor")
    tail_gets_a_posted_document(estrom, "tailor came back")


def squat(port: int, timeout: float = 5.0) -> socket.socket:
    """Listen on ``port`` as soon as it is free (its owner was just killed)."""
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
            return s
        except OSError:
            s.close()
            assert time.monotonic() < deadline, f"port {port} never came free"
            time.sleep(0.01)


def failed_starts(instance: Estrom, count: int) -> Optional[List[str]]:
    """The first ``count`` lines about a Beater that exited by itself, once there are that many."""
    found = [line for line in lines_with(instance, "estrom: beater (pid ") if "exited with code" in line]
    return found[:count] if len(found) >= count else None


def test_a_child_that_cannot_start_is_retried_and_the_line_says_why(estrom: Estrom) -> None:
    """A Beater whose port is taken exits at start: each exit is one line with its last output,
    the retries back off, and once the port is free again it comes back."""
    old = child_pid(estrom, BEATER)
    assert old is not None
    os.kill(old, signal.SIGKILL)
    squatter = squat(estrom.beater_port)
    try:
        failed = wait_for("two failed restarts of the Beater", lambda: failed_starts(estrom, 2), BACK_WITHIN, estrom)
    finally:
        squatter.close()
    for line in failed:
        assert "exited with code 1; restarting in" in line
        assert "last output:" in line and f"port {estrom.beater_port}" in line and "already in use" in line
    delays = [float(line.split("restarting in ")[1].split(" s")[0]) for line in failed]
    assert delays[1] == 2 * delays[0]
    wait_for("the Beater back once its port is free", lambda: healthy(estrom), BACK_WITHIN, estrom)
    status, report = estrom.post("events", {"message": "port freed"})
    assert status == 200 and report["accepted"] == 1


def test_sigterm_during_a_back_off_stops_everything(tmp_path: Path) -> None:
    """SIGTERM while a restart waits out its back-off: estrom up exits 0 promptly and leaves no process."""
    instance = Estrom(tmp_path)
    instance.start()
    try:
        assert instance.process is not None
        everything = descendants(instance.process.pid)
        beater = child_pid(instance, BEATER)
        assert beater is not None
        os.kill(beater, signal.SIGKILL)
        squatter = squat(instance.beater_port)
        try:
            # The second failure waits 2 s (0.5, 1, 2): SIGTERM lands inside that wait.
            wait_for("a restart waiting 2 s", lambda: lines_with(instance, "restarting in 2 s") or None,
                     BACK_WITHIN, instance)
            everything |= descendants(instance.process.pid)
            started = time.monotonic()
            code = instance.stop(signal.SIGTERM, timeout=30)
            took = time.monotonic() - started
        finally:
            squatter.close()
    finally:
        instance.stop()
    assert code == 0, "".join(instance.output)
    assert took < 20, f"stopping took {took:.1f} s"
    assert [pid for pid in everything if alive(pid)] == []
    assert not lines_with(instance, "restart 4"), "no restart may start once estrom up is stopping"
