"""Settings come from flags, then ESTROM_* variables, then defaults; secrets are generated once."""

from __future__ import annotations

import argparse
import json
import stat
from pathlib import Path

import pytest

from beater.mappings import check_mapping
from estrom import settings
from estrom.children import child_arguments


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    settings.add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults_are_the_documented_ones(tmp_path: Path) -> None:
    """Router on 8080, Tailor on 8000, Beater on 8001, embedded percolator."""
    s = settings.resolve(parse(["--data-dir", str(tmp_path)]), environ={})
    assert (s.router_url, s.tailor_port, s.beater_port, s.percolator) == ("ws://127.0.0.1:8080/ws", 8000, 8001, "embedded")


def test_environment_overrides_default_and_flag_overrides_environment(tmp_path: Path) -> None:
    """ESTROM_TAILOR_PORT applies unless --tailor-port is given."""
    env = {"ESTROM_TAILOR_PORT": "9000", "ESTROM_DATA_DIR": str(tmp_path)}
    assert settings.resolve(parse([]), environ=env).tailor_port == 9000
    assert settings.resolve(parse(["--tailor-port", "9001"]), environ=env).tailor_port == 9001


def test_tickets_are_generated_once_and_kept_private(tmp_path: Path) -> None:
    """First run writes secrets.json (mode 0600); later runs read the same tickets."""
    first = settings.load_tickets(tmp_path, environ={})
    second = settings.load_tickets(tmp_path, environ={})
    assert first == second and set(first) == {"beater", "tailor"}
    assert stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode) == 0o600


def test_ticket_from_environment_wins(tmp_path: Path) -> None:
    """$ESTROM_BEATER_TICKET replaces the stored beater ticket."""
    tickets = settings.load_tickets(tmp_path, environ={"ESTROM_BEATER_TICKET": "from-env"})
    assert tickets["beater"] == "from-env"


def test_router_address_is_derived_from_its_url(tmp_path: Path) -> None:
    """Host, port and path of the router come from --router-url."""
    s = settings.resolve(parse(["--router-url", "ws://127.0.0.2:18080/wamp", "--data-dir", str(tmp_path)]), environ={})
    assert (s.router_host, s.router_port, s.router_path) == ("127.0.0.2", 18080, "wamp")


def write_mappings(path: Path, content: dict) -> Path:
    path.write_text(json.dumps(content))
    return path


def test_mappings_default_to_none_configured(tmp_path: Path) -> None:
    """Without --mappings every index uses dynamic mapping."""
    s = settings.resolve(parse(["--data-dir", str(tmp_path)]), environ={})
    assert (s.mappings, s.index_mappings) == ("", {})


def test_mappings_flag_loads_the_configured_indexes(tmp_path: Path) -> None:
    """--mappings FILE gives index_mappings, one checked mapping per index the file names."""
    path = write_mappings(tmp_path / "mappings.json", {"logs": {"dynamic": False, "properties": {"user": {"type": "keyword"}}}})
    s = settings.resolve(parse(["--data-dir", str(tmp_path), "--mappings", str(path)]), environ={})
    assert set(s.index_mappings) == {"logs"}
    assert s.index_mappings["logs"] == check_mapping("logs", {"dynamic": False, "properties": {"user": {"type": "keyword"}}})


def test_mappings_come_from_the_environment_too(tmp_path: Path) -> None:
    """$ESTROM_MAPPINGS applies unless --mappings is given."""
    path = write_mappings(tmp_path / "mappings.json", {"logs": {"properties": {"user": {"type": "keyword"}}}})
    s = settings.resolve(parse(["--data-dir", str(tmp_path)]), environ={"ESTROM_MAPPINGS": str(path)})
    assert set(s.index_mappings) == {"logs"}


def test_mappings_with_an_unsupported_type_stop_startup_naming_the_field(tmp_path: Path) -> None:
    """A mapping the percolators cannot honour is refused at start: index, field and type named."""
    path = write_mappings(tmp_path / "mappings.json", {"logs": {"properties": {"where": {"type": "geo_point"}}}})
    with pytest.raises(SystemExit) as caught:
        settings.resolve(parse(["--data-dir", str(tmp_path), "--mappings", str(path)]), environ={})
    message = str(caught.value)
    assert message.startswith("estrom: --mappings:")
    assert "'where'" in message and "geo_point" in message and str(path) in message


def test_a_missing_mappings_file_stops_startup(tmp_path: Path) -> None:
    """A --mappings path that cannot be read is named in the refusal."""
    with pytest.raises(SystemExit, match="^estrom: --mappings: .*missing.json"):
        settings.resolve(parse(["--data-dir", str(tmp_path), "--mappings", str(tmp_path / "missing.json")]), environ={})


def test_mappings_path_is_made_absolute_and_given_to_children(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative --mappings is resolved once, so children started elsewhere read the same file."""
    write_mappings(tmp_path / "mappings.json", {"logs": {"properties": {"user": {"type": "keyword"}}}})
    monkeypatch.chdir(tmp_path)
    s = settings.resolve(parse(["--data-dir", str(tmp_path), "--mappings", "mappings.json"]), environ={})
    assert s.mappings == str((tmp_path / "mappings.json").resolve())
    arguments = child_arguments(s)
    assert arguments[arguments.index("--mappings") + 1] == s.mappings


def test_children_of_a_parent_without_mappings_get_none(tmp_path: Path) -> None:
    """An empty --mappings passed on to a child still means dynamic mapping."""
    s = settings.resolve(parse(["--data-dir", str(tmp_path)]), environ={})
    child = settings.resolve(parse(child_arguments(s)), environ={})
    assert (child.mappings, child.index_mappings) == ("", {})
