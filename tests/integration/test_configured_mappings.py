"""``estrom up --mappings FILE``: an index's field model given in configuration, end to end."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.integration.conftest import Estrom, http_get_json, settings_free_environment
from tests.integration.test_end_to_end import HEADER, close_prefix

LOGS = {"logs": {"dynamic": False, "properties": {"user": {"type": "keyword"}, "message": {"type": "text"}}}}


def write_mappings(tmp_path: Path, mappings: object) -> Path:
    path = tmp_path / "mappings.json"
    path.write_text(json.dumps(mappings))
    return path


def test_a_configured_keyword_field_is_matched_case_sensitively_over_http(tmp_path: Path) -> None:
    """``user:Foo`` on a configured keyword field delivers ``Foo`` and not ``foo``; the answer names the mapping."""
    estrom = Estrom(tmp_path / "data", ["--mappings", str(write_mappings(tmp_path, LOGS))])
    estrom.start()
    try:
        tail = estrom.tail(i="logs", q="user:Foo", limit=1)
        tail.read_until(HEADER)
        status, answer = estrom.post("logs", [{"user": "foo", "n": 1}, {"user": "Foo", "n": 2}, {"other": "Foo", "n": 3}])
        assert status == 200 and answer["accepted"] == 3
        hits = close_prefix(tail.read_all())["hits"]
        tail.close()
        assert [h["_source"]["n"] for h in hits] == [2]
        [registration] = estrom.wamp("call", "estrom.register", json.dumps(["logs", "user:Foo"]))
        assert registration["result"]["canonical"]["text"] == "Foo"
        assert len(registration["result"]["mapping"]) == 16
    finally:
        estrom.stop()


def test_the_same_query_on_a_dynamic_index_keeps_its_id_and_lowercases(tmp_path: Path) -> None:
    """Indexes the file does not name keep dynamic mapping: ``user:Foo`` is ``user:foo`` there."""
    estrom = Estrom(tmp_path / "data", ["--mappings", str(write_mappings(tmp_path, LOGS))])
    estrom.start()
    try:
        [upper] = estrom.wamp("call", "estrom.register", json.dumps(["events", "user:Foo"]))
        [lower] = estrom.wamp("call", "estrom.register", json.dumps(["events", "user:foo"]))
        assert upper["result"]["id"] == lower["result"]["id"]
        assert "mapping" not in upper["result"]
    finally:
        estrom.stop()


def test_a_changed_mapping_moves_stored_queries_to_their_new_ids(tmp_path: Path) -> None:
    """After a restart with another mapping the stored query answers under its new id; the old id is gone."""
    first = Estrom(tmp_path / "data", ["--mappings", str(write_mappings(tmp_path, LOGS))])
    first.start()
    try:
        [old] = first.wamp("call", "estrom.register", json.dumps(["logs", "user:Foo"]))
    finally:
        first.stop()
    changed = {"logs": {"properties": {"user": {"type": "text"}}}}
    second = Estrom(tmp_path / "data", ["--mappings", str(write_mappings(tmp_path, changed))])
    second.start()
    try:
        status, _ = http_get_json(f"http://127.0.0.1:{second.tailor_port}/api/v0.1/docs?s={old['result']['id']}&timeout=1")
        assert status == 404
        [new] = second.wamp("call", "estrom.register", json.dumps(["logs", "user:Foo"]))
        assert new["result"]["id"] != old["result"]["id"]
        assert new["result"]["canonical"]["text"] == "foo"
        tail = second.tail(s=new["result"]["id"], limit=1)
        tail.read_until(HEADER)
        second.post("logs", {"user": "FOO"})
        hits = close_prefix(tail.read_all())["hits"]
        tail.close()
        assert [h["_source"] for h in hits] == [{"user": "FOO"}]
    finally:
        second.stop()


def test_an_unsupported_mapping_stops_estrom_up_with_the_field_named(tmp_path: Path) -> None:
    """A mapping the percolators cannot honour is refused before anything starts."""
    bad = write_mappings(tmp_path, {"logs": {"properties": {"place": {"type": "geo_point"}}}})
    estrom = Estrom(tmp_path / "data", ["--mappings", str(bad)])
    result = subprocess.run(estrom.command(), capture_output=True, text=True, timeout=60, env=settings_free_environment())
    assert result.returncode != 0
    assert "'place'" in result.stderr and "geo_point" in result.stderr
    assert "Traceback" not in result.stderr
