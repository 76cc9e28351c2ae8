"""The Wikimedia walk-through's feeder, ``examples/wikimedia.py --replay``, against a real ``estrom up``.

The machines that run the tests have no internet, so the live EventStreams mode is not run here;
the replay mode shares its posting code.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Set

from tests.integration.conftest import ROOT, Estrom
from tests.integration.tailclients import TailClient, hits_of, open_tail, post_docs

FEEDER = ROOT / "examples" / "wikimedia.py"
CAPTURE = ROOT / "examples" / "data" / "recentchange.ndjson"
QUERY = "wiki:enwiki AND type:edit -bot:true"
SENTINEL = {"wiki": "enwiki", "type": "edit", "bot": False, "meta": {"id": "sentinel: the feed is over"}}


def matching_ids(events: List[Dict[str, Any]]) -> Set[str]:
    """The ``meta.id`` of the events the query must match, decided by their fields alone."""
    return {e["meta"]["id"] for e in events if e.get("wiki") == "enwiki" and e.get("type") == "edit" and e.get("bot") is not True}


def run_feeder(estrom: Estrom, capture: Path, index: str, speed: str) -> Dict[str, float]:
    """Run the feeder to the end as a user would; return the numbers of its summary line."""
    done = subprocess.run(
        [sys.executable, str(FEEDER), "--replay", str(capture), "--speed", speed,
         "--beater", f"http://127.0.0.1:{estrom.beater_port}", "--index", index],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = done.stdout.strip().splitlines()[-1]
    assert summary.startswith("wikimedia: done "), done.stdout
    return {key: float(value) for key, value in re.findall(r"(\w+)=([\d.]+)", summary)}


def hit_ids_until_sentinel(estrom: Estrom, tail: TailClient, index: str) -> List[str]:
    """Every ``meta.id`` the tail received before a sentinel posted after the feed ended (hits arrive in order)."""
    post_docs(estrom, index, [SENTINEL])
    tail.read_until(lambda c: any(h["_source"]["meta"]["id"] == SENTINEL["meta"]["id"] for h in hits_of(c.records)),
                    timeout=120, what="the sentinel")
    ids = [h["_source"]["meta"]["id"] for h in hits_of(tail.records)]
    tail.close()
    return ids[: ids.index(SENTINEL["meta"]["id"])]


def small_capture(tmp_path: Path) -> Path:
    """Six matching enwiki edits of the capture, re-timed 10 s apart (a 50 s capture)."""
    events = [json.loads(line) for line in CAPTURE.read_text().splitlines() if line.strip()]
    chosen = [e for e in events if e["meta"]["id"] in matching_ids([e])][:6]
    for n, event in enumerate(chosen):
        event["meta"]["dt"] = f"2023-07-29T07:5{n}:00Z"
    path = tmp_path / "six.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in chosen))
    return path


def test_the_replayed_capture_reaches_the_tail_as_exactly_its_matching_events(estrom: Estrom) -> None:
    """``--replay`` the bundled capture at ``--speed 0``: all 4,062 events are accepted, and a tail on
    ``wiki:enwiki AND type:edit -bot:true`` receives each matching event once and nothing else."""
    events = [json.loads(line) for line in CAPTURE.read_text().splitlines() if line.strip()]
    tail = open_tail(estrom, "ndjson", i="recentchange", q=QUERY)

    summary = run_feeder(estrom, CAPTURE, "recentchange", "0")

    assert (summary["sent"], summary["accepted"], summary["rejected"]) == (len(events), len(events), 0)
    received = hit_ids_until_sentinel(estrom, tail, "recentchange")
    expected = matching_ids(events)
    assert len(expected) == 102  # the capture's enwiki edits by people
    assert sorted(received) == sorted(expected)


def test_a_replay_at_speed_zero_posts_everything_due_at_once(estrom: Estrom, tmp_path: Path) -> None:
    """At ``--speed 0`` every event is due at once: the six events go in one request."""
    capture = small_capture(tmp_path)
    tail = open_tail(estrom, "ndjson", i="fast", q=QUERY)

    summary = run_feeder(estrom, capture, "fast", "0")

    assert (summary["sent"], summary["accepted"], summary["posts"]) == (6, 6, 1)
    assert sorted(hit_ids_until_sentinel(estrom, tail, "fast")) == sorted(matching_ids(
        [json.loads(line) for line in capture.read_text().splitlines()]))


def test_a_replay_at_speed_50_keeps_the_gaps_between_events_scaled(estrom: Estrom, tmp_path: Path) -> None:
    """At ``--speed 50`` the 10 s gaps become 0.2 s waits: the events are not all posted together,
    and every one still reaches the tail."""
    capture = small_capture(tmp_path)
    tail = open_tail(estrom, "ndjson", i="paced", q=QUERY)

    summary = run_feeder(estrom, capture, "paced", "50")

    assert (summary["sent"], summary["accepted"]) == (6, 6)
    assert summary["posts"] > 1
    assert sorted(hit_ids_until_sentinel(estrom, tail, "paced")) == sorted(matching_ids(
        [json.loads(line) for line in capture.read_text().splitlines()]))
