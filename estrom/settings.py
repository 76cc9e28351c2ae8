"""Every estrom setting, readable from a command-line flag or an ``ESTROM_*`` variable.

A flag wins over the environment, which wins over the default.  Secrets (the
WAMP tickets of the ``beater`` and ``tailor`` roles) are never constants: they
come from the environment or are generated once into the data directory.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Mapping, Optional
from urllib.parse import urlparse

from beater.mappings import IndexMapping, MappingError, load_mappings
from router import contract


@dataclass(frozen=True)
class Option:
    """One setting: its flag, its environment variable, its default and help."""

    name: str
    default: str
    help: str

    @property
    def flag(self) -> str:
        """The command-line flag, e.g. ``--router-url``."""
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        """The environment variable, e.g. ``ESTROM_ROUTER_URL``."""
        return "ESTROM_" + self.name.upper()


OPTIONS = (
    Option("router_url", "ws://127.0.0.1:8080/ws", "WebSocket URL of the WAMP router"),
    Option(
        "service_transport", "rawsocket",
        "how the Beater and Tailor reach the router: rawsocket (WAMP over plain TCP on the router's port; "
        "less work per message) or websocket",
    ),
    Option("tailor_host", "127.0.0.1", "interface the Tailor's HTTP API listens on"),
    Option("tailor_port", "8000", "port of the Tailor's HTTP API"),
    Option("beater_host", "127.0.0.1", "interface the Beater's HTTP ingest API listens on"),
    Option("beater_port", "8001", "port of the Beater's HTTP ingest API"),
    Option("data_dir", "./.estrom", "directory for registrations, secrets and router state"),
    Option("percolator", "embedded", "percolator backend: embedded or elasticsearch"),
    Option("es_url", "http://127.0.0.1:9200", "Elasticsearch URL (with --percolator elasticsearch)"),
    Option(
        "mappings", "",
        "JSON file of explicit index mappings, {index: {\"dynamic\": ..., \"properties\": {...}}} "
        "(indexes it does not name use dynamic mapping)",
    ),
    Option("batch_size", "500", "most documents percolated in one micro-batch"),
    Option("batch_delay_ms", "0", "longest wait for a micro-batch to fill, in milliseconds (0: what arrived in one reactor turn)"),
    Option("heartbeat_s", "15", "seconds between whitespace heartbeats on idle HTTP tails"),
    Option("tail_buffer_bytes", "1048576", "most bytes of hits one HTTP tail holds for a client that is not reading; past it the oldest are dropped"),
    Option("tail_buffer_hits", "5000", "most hits one HTTP tail holds for a client that is not reading"),
    Option("max_tails", "10000", "most open HTTP tails of the Tailor (429 past it)"),
    Option("max_tails_per_client", "500", "most open HTTP tails per client address (429 past it)"),
    Option("max_tail_s", "0", "longest an HTTP tail stays open, in seconds, before it ends with a proper footer (0: no limit)"),
    Option("replay_max_docs", "100000", "matched documents per index the Beater keeps for tails that resume (since= / Last-Event-ID)"),
    Option("replay_max_age_s", "600", "seconds the Beater keeps matched documents for tails that resume"),
    Option("log_level", "info", "log level: debug, info, warn, error"),
)


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one estrom process."""

    router_url: str = "ws://127.0.0.1:8080/ws"
    service_transport: str = "rawsocket"
    tailor_host: str = "127.0.0.1"
    tailor_port: int = 8000
    beater_host: str = "127.0.0.1"
    beater_port: int = 8001
    data_dir: Path = Path("./.estrom")
    percolator: str = "embedded"
    es_url: str = "http://127.0.0.1:9200"
    mappings: str = ""
    index_mappings: Dict[str, IndexMapping] = field(default_factory=dict)
    batch_size: int = 500
    batch_delay_ms: float = 0.0
    heartbeat_s: float = 15.0
    tail_buffer_bytes: int = 1048576
    tail_buffer_hits: int = 5000
    max_tails: int = 10000
    max_tails_per_client: int = 500
    max_tail_s: float = 0.0
    replay_max_docs: int = 100000
    replay_max_age_s: float = 600.0
    log_level: str = "info"
    tickets: Dict[str, str] = field(default_factory=dict)

    @property
    def router_host(self) -> str:
        """Interface the router listens on (from ``router_url``)."""
        return urlparse(self.router_url).hostname or "127.0.0.1"

    @property
    def router_port(self) -> int:
        """Port the router listens on (from ``router_url``)."""
        return urlparse(self.router_url).port or 8080

    @property
    def router_path(self) -> str:
        """The WebSocket path of the router (from ``router_url``), without its leading slash."""
        return urlparse(self.router_url).path.lstrip("/") or "ws"

    def ticket(self, role: str) -> str:
        """The WAMP ticket of a service role (``beater`` or ``tailor``)."""
        return self.tickets[role]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting to ``parser`` (defaults resolved later, so env vars can apply)."""
    for option in OPTIONS:
        parser.add_argument(option.flag, dest=option.name, default=None, help=f"{option.help} (${option.env}, default {option.default})")


def resolve(args: Optional[argparse.Namespace] = None, environ: Mapping[str, str] = os.environ) -> Settings:
    """Resolve settings from parsed flags, then the environment, then defaults; load or create secrets."""
    raw: Dict[str, str] = {}
    for option in OPTIONS:
        value = getattr(args, option.name, None) if args is not None else None
        raw[option.name] = value if value is not None else environ.get(option.env, option.default)
    data_dir = Path(raw["data_dir"]).expanduser().resolve()
    if raw["percolator"] not in ("embedded", "elasticsearch"):
        raise SystemExit(f"estrom: --percolator must be 'embedded' or 'elasticsearch', not {raw['percolator']!r}")
    if raw["service_transport"] not in ("rawsocket", "websocket"):
        raise SystemExit(f"estrom: --service-transport must be 'rawsocket' or 'websocket', not {raw['service_transport']!r}")
    mappings_path = str(Path(raw["mappings"]).expanduser().resolve()) if raw["mappings"] else ""
    try:
        index_mappings = load_mappings(Path(mappings_path)) if mappings_path else {}
    except MappingError as e:
        raise SystemExit(f"estrom: --mappings: {e}") from None
    return Settings(
        router_url=raw["router_url"],
        service_transport=raw["service_transport"],
        tailor_host=raw["tailor_host"],
        tailor_port=_int(raw, "tailor_port"),
        beater_host=raw["beater_host"],
        beater_port=_int(raw, "beater_port"),
        data_dir=data_dir,
        percolator=raw["percolator"],
        es_url=raw["es_url"],
        mappings=mappings_path,
        index_mappings=index_mappings,
        batch_size=_int(raw, "batch_size"),
        batch_delay_ms=float(raw["batch_delay_ms"]),
        heartbeat_s=_float(raw, "heartbeat_s"),
        tail_buffer_bytes=_int(raw, "tail_buffer_bytes"),
        tail_buffer_hits=_int(raw, "tail_buffer_hits"),
        max_tails=_int(raw, "max_tails"),
        max_tails_per_client=_int(raw, "max_tails_per_client"),
        max_tail_s=_float(raw, "max_tail_s"),
        replay_max_docs=_int(raw, "replay_max_docs"),
        replay_max_age_s=_float(raw, "replay_max_age_s"),
        log_level=raw["log_level"],
        tickets=load_tickets(data_dir, environ),
    )


def _int(raw: Mapping[str, str], name: str) -> int:
    try:
        return int(raw[name])
    except ValueError:
        option = next(o for o in OPTIONS if o.name == name)
        raise SystemExit(f"estrom: {option.flag} / ${option.env} must be an integer, not {raw[name]!r}") from None


def _float(raw: Mapping[str, str], name: str) -> float:
    option = next(o for o in OPTIONS if o.name == name)
    try:
        value = float(raw[name])
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value < 0:
        raise SystemExit(f"estrom: {option.flag} / ${option.env} must be a finite number >= 0, not {raw[name]!r}")
    return value


def ticket_env(role: str) -> str:
    """The environment variable holding a role's WAMP ticket (also read by Crossbar's config)."""
    return f"ESTROM_{role.upper()}_TICKET"


def load_tickets(data_dir: Path, environ: Mapping[str, str] = os.environ) -> Dict[str, str]:
    """Tickets from the environment, else from ``<data_dir>/secrets.json``, generated on first use.

    The file is written atomically with mode 0600, so a crash never leaves half a secret.
    """
    path = data_dir / "secrets.json"
    stored: Dict[str, str] = {}
    if path.exists():
        stored = json.loads(path.read_text())
    missing = [r for r in contract.SERVICE_ROLES if r not in stored and ticket_env(r) not in environ]
    if missing:
        for role in missing:
            stored[role] = secrets.token_urlsafe(32)
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(stored, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    return {r: environ.get(ticket_env(r)) or stored[r] for r in contract.SERVICE_ROLES}
