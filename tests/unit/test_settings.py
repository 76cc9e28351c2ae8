"""Settings come from flags, then ESTROM_* variables, then defaults; secrets are generated once."""

from __future__ import annotations

import argparse
import stat
from pathlib import Path

from estrom import settings


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
