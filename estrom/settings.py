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
from typing import Any, Dict, Mapping, Optional, Tuple, cast
from urllib.parse import urlparse

from beater.limits import DEPTH_CEILING, Limits
from beater.mappings import IndexMapping, MappingError, load_mappings
from estrom.auth import TokenError, Tokens, load_tokens, parse_origins
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
    # A router node of a cluster (router/config.py): rlinks to its peers, which link in with their node keys.
    Option("router_peers", "", "other router nodes whose realm this one spans, comma-separated ws://HOST:PORT/PATH "
                               "(their --router-url) or rs://HOST:PORT (RawSocket: less work per event); empty: one node"),
    Option("router_node_key_dir", "", "directory of this router node's key pair, key.priv and key.pub, created on first "
                                      "use (empty: <data-dir>/crossbar); `estrom router-key` prints the public key"),
    Option("router_peer_keys", "", "public keys the peers link in with, comma-separated: 64 hex digits each, or a file "
                                   "(a peer's key.pub, or one key a line)"),
    Option("tailor_host", "127.0.0.1", "interface the Tailor's HTTP API listens on"),
    Option("tailor_port", "8000", "port of the Tailor's HTTP API"),
    Option("beater_host", "127.0.0.1", "interface the Beater's HTTP ingest API listens on"),
    Option("beater_port", "8001", "port of the Beater's HTTP ingest API"),
    Option("data_dir", "./.estrom", "directory for registrations, secrets and router state"),
    Option("percolator", "embedded", "percolator backend: embedded or elasticsearch"),
    Option("es_url", "http://127.0.0.1:9200",
           "Elasticsearch (7.17, 8.x, 9.x) or OpenSearch 2.x URL (with --percolator elasticsearch); several nodes' URLs of one "
           "cluster, comma-separated, to fail over between them"),
    Option("es_shards", "1", "primary shards of each percolator index the Elasticsearch backend creates"),
    Option("es_replicas", "0", "replicas of each shard of those percolator indexes (1 or more for a cluster that survives a node)"),
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
    Option("kafka_bootstrap", "", "Kafka brokers HOST:PORT[,HOST:PORT] to consume documents from (empty: no Kafka source)"),
    Option("kafka_topics", "", "Kafka topics to consume, comma-separated (each record's value is one JSON document)"),
    Option("kafka_group", "estrom", "Kafka consumer group of the Beater"),
    Option("kafka_index_map", "", "estrom index per topic, topic=index[,topic=index] (unmapped topics: the topic's name)"),
    Option("kafka_dead_letter_topic", "", "Kafka topic that poison records are produced to, with headers naming the error (empty: none)"),
    Option("kafka_max_in_flight", "5000", "most Kafka records handed to the pipeline and not yet acknowledged; past it the partitions are paused"),
    Option("kafka_max_record_bytes", "1048576", "largest Kafka record value taken as a document; larger ones are poison"),
    Option("kafka_registrations_topic", "estrom-registrations",
           "compacted Kafka topic that holds every registration, so every Beater of the group has them all (created if missing)"),
    # Limits on ingest and registration (beater/limits.py): over one, the answer names it and its value.
    Option("max_body_bytes", "67108864", "largest HTTP ingest body in bytes (413 past it)"),
    Option("max_document_bytes", "1048576", "largest document in bytes, as JSON (that document's error past it)"),
    Option("max_depth", "100", f"deepest nesting of objects and arrays in a document (at most {DEPTH_CEILING})"),
    Option("max_fields", "1000", "most distinct field paths in one document"),
    Option("max_line_bytes", "1048576", "longest NDJSON line in bytes (that line's error past it)"),
    Option("max_docs_per_request", "100000", "most documents in one HTTP ingest request or estrom.ingest call (413 past it)"),
    Option("max_query_chars", "65536", "longest query in characters (a DSL query as compact JSON; 413 past it)"),
    Option("max_query_clauses", "1024", "most clauses in one boolean of a query (at most 1024, Elasticsearch's limit)"),
    Option("max_registrations_per_index", "100000", "most registered queries per index (429 past it)"),
    Option("max_registrations", "1000000", "most registered queries in total (429 past it)"),
    # Query lifecycle (beater/lifecycle.py).
    Option("registration_grace_s", "86400",
           "seconds a registration may go without a subscriber before it is removed (persist=true exempts one; 0: never)"),
    Option("log_level", "info", "log level: debug, info, warn, error"),
    Option("log_format", "text", "log line format: text or json (one JSON object per line)"),
    Option("access_log", "requests",
           "HTTP access lines: requests (all but health checks and /metrics scrapes), all, or off"),
    # Tokens and CORS (estrom/auth.py).  The tokens themselves are never options (a flag shows in `ps`):
    # they come from this file and from $ESTROM_INGEST_TOKEN / $ESTROM_ADMIN_TOKEN / $ESTROM_TAIL_TOKEN.
    Option("tokens_file", "", "JSON file of bearer tokens per scope, {\"ingest\": [...], \"admin\": [...], \"tail\": [...]} "
                              "(also $ESTROM_INGEST_TOKEN, $ESTROM_ADMIN_TOKEN, $ESTROM_TAIL_TOKEN, comma-separated)"),
    Option("cors_origins", "", "origins whose browser pages may read the Tailor's tails, comma-separated, or * (empty: none)"),
    Option("allow_unauthenticated_ingest", "no",
           "yes: let the Beater listen beyond loopback with no ingest token (only behind something that authenticates)"),
)


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one estrom process."""

    router_url: str = "ws://127.0.0.1:8080/ws"
    service_transport: str = "rawsocket"
    router_peers: str = ""
    router_node_key_dir: str = ""
    router_peer_keys: str = ""  # the keys themselves, comma-separated (files already read): children get the same
    tailor_host: str = "127.0.0.1"
    tailor_port: int = 8000
    beater_host: str = "127.0.0.1"
    beater_port: int = 8001
    data_dir: Path = Path("./.estrom")
    percolator: str = "embedded"
    es_url: str = "http://127.0.0.1:9200"
    es_shards: int = 1
    es_replicas: int = 0
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
    kafka_bootstrap: str = ""
    kafka_topics: str = ""
    kafka_group: str = "estrom"
    kafka_index_map: str = ""
    kafka_dead_letter_topic: str = ""
    kafka_max_in_flight: int = 5000
    kafka_max_record_bytes: int = 1048576
    kafka_registrations_topic: str = "estrom-registrations"
    max_body_bytes: int = Limits.max_body_bytes
    max_document_bytes: int = Limits.max_document_bytes
    max_depth: int = Limits.max_depth
    max_fields: int = Limits.max_fields
    max_line_bytes: int = Limits.max_line_bytes
    max_docs_per_request: int = Limits.max_docs_per_request
    max_query_chars: int = Limits.max_query_chars
    max_query_clauses: int = Limits.max_query_clauses
    max_registrations_per_index: int = Limits.max_registrations_per_index
    max_registrations: int = Limits.max_registrations
    registration_grace_s: float = 86400.0
    log_level: str = "info"
    log_format: str = "text"
    access_log: str = "requests"
    tickets: Dict[str, str] = field(default_factory=dict)
    tokens_file: str = ""
    cors_origins: str = ""
    allow_unauthenticated_ingest: bool = False
    tokens: Tokens = field(default_factory=Tokens, repr=False, compare=False)

    @property
    def cors_allowed(self) -> Tuple[str, ...]:
        """The origins allowed to read the Tailor from a browser (validated by ``resolve``)."""
        return parse_origins(self.cors_origins)

    @property
    def limits(self) -> Limits:
        """The ``max_*`` ingest and registration limits (``beater/limits.py``)."""
        return Limits(**{name: getattr(self, name) for name in Limits.__dataclass_fields__})

    @property
    def kafka_enabled(self) -> bool:
        """Whether the Beater consumes from Kafka."""
        return bool(self.kafka_bootstrap)

    def kafka_registrations_config(self) -> "Any":
        """The registrations log's configuration (settings already validated by ``resolve``)."""
        from beater.kafka.logic import parse_bootstrap
        from beater.kafka.registrations import LogConfig

        return LogConfig(bootstrap=parse_bootstrap(self.kafka_bootstrap), topic=self.kafka_registrations_topic)

    def kafka_config(self) -> "Any":
        """The Kafka source's configuration (settings already validated by ``resolve``)."""
        from beater.kafka.logic import parse_bootstrap, parse_index_map, parse_topics
        from beater.kafka.source import KafkaConfig

        topics = parse_topics(self.kafka_topics)
        return KafkaConfig(
            bootstrap=parse_bootstrap(self.kafka_bootstrap), topics=topics, group=self.kafka_group,
            index_map=parse_index_map(self.kafka_index_map, topics), dead_letter_topic=self.kafka_dead_letter_topic,
            max_in_flight=self.kafka_max_in_flight, max_record_bytes=self.kafka_max_record_bytes, limits=self.limits,
        )

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

    def peers(self) -> "Any":
        """The other router nodes of the cluster (``router.config.Peer``; validated by ``resolve``)."""
        from router.config import parse_peers

        return parse_peers(self.router_peers)

    @property
    def peer_keys(self) -> Tuple[str, ...]:
        """The public keys the peers link in with (hex; validated by ``resolve``)."""
        return tuple(key for key in self.router_peer_keys.split(",") if key)

    @property
    def node_key_dir(self) -> Path:
        """Where this router node's key pair lives."""
        return Path(self.router_node_key_dir) if self.router_node_key_dir else self.data_dir / "crossbar"

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
    _check_kafka(raw)
    _check_logging(raw)
    _check_elasticsearch(raw)
    return Settings(
        router_url=raw["router_url"],
        service_transport=raw["service_transport"],
        **_cluster_settings(raw),
        tailor_host=raw["tailor_host"],
        tailor_port=_int(raw, "tailor_port"),
        beater_host=raw["beater_host"],
        beater_port=_int(raw, "beater_port"),
        data_dir=data_dir,
        percolator=raw["percolator"],
        es_url=raw["es_url"],
        es_shards=_int(raw, "es_shards"),
        es_replicas=_int(raw, "es_replicas"),
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
        kafka_bootstrap=raw["kafka_bootstrap"].strip(),
        kafka_topics=raw["kafka_topics"].strip(),
        kafka_group=raw["kafka_group"].strip(),
        kafka_index_map=raw["kafka_index_map"].strip(),
        kafka_dead_letter_topic=raw["kafka_dead_letter_topic"].strip(),
        kafka_max_in_flight=_int(raw, "kafka_max_in_flight"),
        kafka_max_record_bytes=_int(raw, "kafka_max_record_bytes"),
        kafka_registrations_topic=raw["kafka_registrations_topic"].strip(),
        **cast(Dict[str, Any], _limits(raw)),  # its keys are Settings' int max_* fields: mypy cannot match ** keys to fields
        registration_grace_s=_float(raw, "registration_grace_s"),
        log_level=raw["log_level"],
        log_format=raw["log_format"],
        access_log=raw["access_log"],
        tickets=load_tickets(data_dir, environ),
        **_auth_settings(raw, environ),
    )


def _cluster_settings(raw: Mapping[str, str]) -> Dict[str, Any]:
    """The ``router_*`` cluster fields of ``Settings`` (peer keys read from their files); SystemExit naming the flag."""
    from router.config import ClusterSettingError, parse_peer_keys, parse_peers

    def bad(name: str, message: str) -> SystemExit:
        option = next(o for o in OPTIONS if o.name == name)
        return SystemExit(f"estrom: {option.flag} / ${option.env}: {message}")

    try:
        parse_peers(raw["router_peers"])
    except ClusterSettingError as e:
        raise bad("router_peers", str(e)) from None
    try:
        keys = ",".join(parse_peer_keys(raw["router_peer_keys"]))
    except ClusterSettingError as e:
        raise bad("router_peer_keys", str(e)) from None
    key_dir = raw["router_node_key_dir"].strip()
    return {
        "router_peers": raw["router_peers"].strip(),
        "router_node_key_dir": str(Path(key_dir).expanduser().resolve()) if key_dir else "",
        "router_peer_keys": keys,
    }


def _auth_settings(raw: Mapping[str, str], environ: Mapping[str, str]) -> Dict[str, Any]:
    """The tokens and CORS fields of ``Settings``; SystemExit naming the flag or variable at fault."""
    tokens_file = str(Path(raw["tokens_file"]).expanduser().resolve()) if raw["tokens_file"].strip() else ""
    try:
        tokens = load_tokens(Path(tokens_file) if tokens_file else None, environ)
    except TokenError as e:
        raise SystemExit(f"estrom: {e}") from None
    try:
        cors = ",".join(parse_origins(raw["cors_origins"]))
    except ValueError as e:
        raise SystemExit(f"estrom: --cors-origins / $ESTROM_CORS_ORIGINS: {e}") from None
    opt_out = raw["allow_unauthenticated_ingest"].strip().lower()
    if opt_out not in ("yes", "no", "true", "false", ""):
        raise SystemExit(f"estrom: --allow-unauthenticated-ingest / $ESTROM_ALLOW_UNAUTHENTICATED_INGEST must be yes or no, not {opt_out!r}")
    return {"tokens_file": tokens_file, "cors_origins": cors, "allow_unauthenticated_ingest": opt_out in ("yes", "true"),
            "tokens": tokens}


def _check_kafka(raw: Mapping[str, str]) -> None:
    """SystemExit with the flag named if a Kafka setting cannot work (only checked with --kafka-bootstrap)."""
    from beater.kafka.logic import KafkaSettingError, TOPIC_NAME, parse_bootstrap, parse_index_map, parse_topics

    def bad(name: str, message: str) -> SystemExit:
        option = next(o for o in OPTIONS if o.name == name)
        return SystemExit(f"estrom: {option.flag} / ${option.env}: {message}")

    for name in ("kafka_max_in_flight", "kafka_max_record_bytes"):
        if _int(raw, name) < 1:
            raise bad(name, f"must be an integer >= 1, not {raw[name]!r}")
    if not raw["kafka_bootstrap"].strip():
        for name in ("kafka_topics", "kafka_index_map", "kafka_dead_letter_topic"):
            if raw[name].strip():
                raise bad(name, "needs --kafka-bootstrap HOST:PORT (the Kafka source is off without it)")
        return
    try:
        parse_bootstrap(raw["kafka_bootstrap"])
    except KafkaSettingError as e:
        raise bad("kafka_bootstrap", str(e)) from None
    if not raw["kafka_topics"].strip():
        raise bad("kafka_topics", "name the topics to consume, e.g. --kafka-topics events,logs")
    try:
        topics = parse_topics(raw["kafka_topics"])
    except KafkaSettingError as e:
        raise bad("kafka_topics", str(e)) from None
    try:
        index_map = parse_index_map(raw["kafka_index_map"], topics)
    except KafkaSettingError as e:
        raise bad("kafka_index_map", str(e)) from None
    from beater.errors import EstromError
    from beater.registration import validate_index

    for topic in topics:
        if topic not in index_map:
            try:
                validate_index(topic)
            except EstromError as e:
                raise bad("kafka_index_map", f"topic {topic!r} is not a usable index name ({e.message}): "
                                             f"map it, e.g. --kafka-index-map {topic}=<index>") from None
    if not raw["kafka_group"].strip():
        raise bad("kafka_group", "must not be empty")
    dead_letters = raw["kafka_dead_letter_topic"].strip()
    if dead_letters:
        if not TOPIC_NAME.match(dead_letters):
            raise bad("kafka_dead_letter_topic", f"{dead_letters!r} is not a Kafka topic name")
        if dead_letters in topics:
            raise bad("kafka_dead_letter_topic", f"{dead_letters!r} is also consumed: poison would come back forever")
    registrations = raw["kafka_registrations_topic"].strip()
    if not TOPIC_NAME.match(registrations):
        raise bad("kafka_registrations_topic", f"{registrations!r} is not a Kafka topic name")
    if registrations in topics or registrations == dead_letters:
        raise bad("kafka_registrations_topic", f"{registrations!r} is also consumed or the dead-letter topic: give it a topic of its own")


def _check_elasticsearch(raw: Mapping[str, str]) -> None:
    """SystemExit with the flag named if an Elasticsearch backend setting cannot work."""
    for name, least in (("es_shards", 1), ("es_replicas", 0)):
        option = next(o for o in OPTIONS if o.name == name)
        if _int(raw, name) < least:
            raise SystemExit(f"estrom: {option.flag} / ${option.env} must be an integer >= {least}, not {raw[name]!r}")
    if raw["percolator"] != "elasticsearch":
        return
    for url in (part.strip() for part in raw["es_url"].split(",")):
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise SystemExit(f"estrom: --es-url / $ESTROM_ES_URL: {url!r} is not an http(s) URL "
                             "(several nodes: http://host:port,http://host:port)")


def _check_logging(raw: Mapping[str, str]) -> None:
    """SystemExit with the flag named if a logging setting is not one of its choices."""
    from estrom.logs import FORMATS, LEVELS
    from estrom.web import ACCESS_LOG_MODES

    for name, choices in (("log_level", LEVELS), ("log_format", FORMATS), ("access_log", ACCESS_LOG_MODES)):
        if raw[name] not in choices:
            option = next(o for o in OPTIONS if o.name == name)
            raise SystemExit(f"estrom: {option.flag} / ${option.env} must be one of {', '.join(choices)}, not {raw[name]!r}")


def _limits(raw: Mapping[str, str]) -> Dict[str, int]:
    """The ``max_*`` limits' fields of ``Settings``; SystemExit naming the flag if one is not a whole number in its range."""
    values: Dict[str, int] = {}
    for name in Limits.__dataclass_fields__:
        option = next(o for o in OPTIONS if o.name == name)
        ceiling = {"max_depth": DEPTH_CEILING, "max_query_clauses": 1024}.get(name)
        value = _int(raw, name)
        if value < 1 or (ceiling is not None and value > ceiling):
            within = f"between 1 and {ceiling}" if ceiling is not None else ">= 1"
            raise SystemExit(f"estrom: {option.flag} / ${option.env} must be an integer {within}, not {raw[name]!r}")
        values[name] = value
    return values


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
