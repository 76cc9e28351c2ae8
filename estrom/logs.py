"""estrom's log: one line per event that matters, as text or as JSON lines, at the level asked for.

Every process (``estrom up`` and its Beater and Tailor children) logs through
Twisted's logger to its standard error; a child's lines pass through ``up``
unchanged, so ``--log-format json`` gives one JSON object per line for all of
them.  Each line names the process it came from (``service``: ``up``,
``beater``, ``tailor``).

The few events an operator acts on (start, ready, a part restarted, the router
lost and regained, a limit refusing a client) are *named*: logged with
:func:`event`, they carry an ``event`` field and pass whatever ``--log-level``
says, so ``--log-level warn`` stays quiet without hiding that a process came
up or went away.  ``--log-level`` filters everything else (estrom's detail
lines, Twisted's and autobahn's).  A refusal can come by the thousand a
second, so :func:`limit_hit` logs one line per (limit, client) per minute and
counts the ones it held back in the next.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import IO, Any, Callable, Dict, Iterable, Optional, Tuple, cast

import txaio
from twisted.logger import (
    FilteringLogObserver, ILogFilterPredicate, ILogObserver, LogLevel, LogLevelFilterPredicate, Logger, PredicateResult,
    formatEvent, formatTime, globalLogBeginner,
)
from zope.interface import provider

LEVELS = ("debug", "info", "warn", "error", "critical")
FORMATS = ("text", "json")

EVENT_KEY = "estrom_event"
"""The key of a named event's name in a Twisted log event (``event`` in a JSON line)."""

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
_QUIET_NAMESPACES = ("autobahn.",)
"""Libraries whose ``info`` lines are progress chatter: shown at ``debug`` only."""
_RECONNECT_CHATTER = frozenset({
    'trying transport {transport_idx} ("{transport_url}") using connect delay {transport_delay}',
    "Connection failed: {error}",
    "Connection failed with OS error: {msg}",
    "{msg}",  # the ApplicationError that ended a connection attempt (e.g. wamp.close.transport_lost)
})
"""autobahn's lines of each reconnect attempt (warn and error, two every 2 s while the router is away): shown at
``debug`` only, since ``router_lost``, ``router_unreachable`` (once a minute, with the reason) and ``router_regained``
say the same once."""
_RESERVED = frozenset({"time", "level", "service", "system", "message", "event", "traceback", "format", "isError"})


def level_of(name: str) -> LogLevel:
    """The Twisted level of ``--log-level`` (ValueError for an unknown one)."""
    if name not in LEVELS:
        raise ValueError(f"the log level must be one of {', '.join(LEVELS)}, not {name!r}")
    return LogLevel.levelWithName(name)


def event(log: Logger, level: LogLevel, name: str, message: str, **fields: Any) -> None:
    """Log the named event ``name`` (always shown, whatever the level floor); ``fields`` are its details."""
    log.emit(level, message, **{EVENT_KEY: name}, **fields)


def _fields(record: Dict[str, Any]) -> Dict[str, Any]:
    """The event's own scalar details (``index``, ``client``, ...): what a JSON line carries besides its text."""
    return {k: v for k, v in record.items()
            if not k.startswith(("log_", "_")) and k != EVENT_KEY and k not in _RESERVED
            and (v is None or isinstance(v, (str, int, float, bool)))}


def as_json(record: Dict[str, Any], service: str) -> str:
    """One JSON object for a Twisted log event: time, level, service, system, message, event, details, traceback."""
    line: Dict[str, Any] = {
        "time": _iso_utc(record.get("log_time", time.time())),
        "level": _level_name(record),
        "service": service,
        "system": record.get("log_namespace") or record.get("log_system") or "-",
        "message": _message(record),
    }
    if record.get(EVENT_KEY):
        line["event"] = record[EVENT_KEY]
    line.update(_fields(record))
    failure = record.get("log_failure")
    if failure is not None:
        line["traceback"] = failure.getTraceback()
    return json.dumps(line, default=str, ensure_ascii=False)


def as_text(record: Dict[str, Any], service: str) -> str:
    """One text line for a Twisted log event, ``<time> [<service>#<level>] <message>`` (a traceback follows)."""
    text = f"{formatTime(record.get('log_time'), _TIME_FORMAT)} [{service}#{_level_name(record)}] {_message(record)}"
    failure = record.get("log_failure")
    if failure is not None:
        text += "\n" + failure.getTraceback().rstrip("\n")
    return text


def _level_name(record: Dict[str, Any]) -> str:
    return str(getattr(record.get("log_level"), "name", "info"))  # LogLevel's constants are NamedConstants, not LogLevels


def _message(record: Dict[str, Any]) -> str:
    if record.get("log_format") is None and record.get("log_failure") is not None:
        return "unhandled error"  # Twisted's "Unhandled error in Deferred" traceback comes without a format
    return formatEvent(record)


def _iso_utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds % 1 * 1000):03d}Z"


def line_observer(out: IO[str], service: str, fmt: str = "text") -> ILogObserver:
    """An observer writing each event as one line (``text`` or ``json``) to ``out``, flushed at once."""
    render = as_json if fmt == "json" else as_text
    lock = threading.Lock()  # the Kafka threads log too: a line is never interleaved with another

    @provider(ILogObserver)
    def observe(record: Dict[str, Any]) -> None:
        line = render(record, service) + "\n"
        with lock:
            try:
                out.write(line)
                out.flush()
            except (OSError, ValueError):
                pass  # our stderr is gone: losing a log line must not break the service

    return observe


def predicates(level: str) -> Tuple[Callable[[Dict[str, Any]], PredicateResult], ...]:
    """What passes ``--log-level level``: named events always, library chatter only at debug, the rest by level."""
    floor = level_of(level)

    def named_events(record: Dict[str, Any]) -> PredicateResult:
        return PredicateResult.yes if record.get(EVENT_KEY) else PredicateResult.maybe

    def library_chatter(record: Dict[str, Any]) -> PredicateResult:
        namespace = record.get("log_namespace") or ""
        if floor is not LogLevel.debug and namespace.startswith(_QUIET_NAMESPACES):
            if record.get("log_level") is LogLevel.info or record.get("log_format") in _RECONNECT_CHATTER:
                return PredicateResult.no
        return PredicateResult.maybe

    return named_events, library_chatter, LogLevelFilterPredicate(defaultLogLevel=floor)


def start_logging(service: str, level: str = "info", fmt: str = "text", out: Optional[IO[str]] = None) -> None:
    """Send this process's log (Twisted's, autobahn's through txaio, stray prints) to ``out`` (stderr).

    Standard output and error are redirected into the log, so a library that prints cannot break a
    JSON-lines stream.
    """
    txaio.use_twisted()
    # txaio binds its API functions at use_twisted(), so its own annotations do not show them.
    txaio.set_global_log_level(level)  # type: ignore[attr-defined]  # autobahn's own loggers skip what is below it before any observer sees it
    # sys.__stderr__ is None only for an interpreter started without stderr, which a service never is.
    stream = out if out is not None else cast(IO[str], sys.__stderr__)
    # The predicates and FilteringLogObserver provide their zope interfaces, which mypy cannot see.
    observer = FilteringLogObserver(line_observer(stream, service, fmt), cast("Iterable[ILogFilterPredicate]", predicates(level)))
    globalLogBeginner.beginLoggingTo([cast(ILogObserver, observer)], redirectStandardIO=True)


# --- limits: one line per (limit, client) per minute ------------------------------------------------------------------


class LineBudget:
    """Says whether a line about ``key`` may be written now: once per ``window_s``, counting the rest.

    Memory stays bounded under a flood from many addresses: past ``max_keys`` expired keys are
    forgotten, and if that is not enough new keys share one entry, ``("*", limit)``.
    """

    def __init__(self, window_s: float = 60.0, max_keys: int = 1000, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.max_keys = max_keys
        self.clock = clock
        self._last: Dict[Tuple[str, str], float] = {}
        self._held: Dict[Tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def take(self, key: Tuple[str, str]) -> Tuple[bool, int, Tuple[str, str]]:
        """``(write now?, lines held back since the last one written, the key counted)``."""
        now = self.clock()
        with self._lock:
            if key not in self._last and len(self._last) >= self.max_keys:
                self._forget_expired(now)
                if len(self._last) >= self.max_keys:
                    key = (key[0], "*")
            last = self._last.get(key)
            if last is not None and now - last < self.window_s:
                self._held[key] = self._held.get(key, 0) + 1
                return False, 0, key
            self._last[key] = now
            return True, self._held.pop(key, 0), key

    def _forget_expired(self, now: float) -> None:
        for key in [k for k, t in self._last.items() if now - t >= self.window_s]:
            del self._last[key]
            self._held.pop(key, None)  # what it held back is no longer worth a line


LIMIT_LINES = LineBudget()
"""The budget :func:`limit_hit` shares across a process."""


def limit_hit(log: Logger, name: str, value: Any, client: Optional[str], budget: Optional[LineBudget] = None, **details: Any) -> bool:
    """Say that limit ``name`` (set to ``value``) refused ``client``: at most one line per (limit, client) per minute.

    The line is a named ``limit_hit`` event at ``warn`` with fields ``limit``, ``value``, ``client``
    and ``suppressed`` (refusals of that client by that limit not logged since the previous line);
    ``details`` are added to it.  Answers whether a line was written.  Call it at every refusal:
    the counting is done here.
    """
    who = client or "-"
    write, suppressed, (_, counted) = (budget or LIMIT_LINES).take((name, who))
    if not write:
        return False
    text = "estrom: limit {limit} ({value}) refused " + ("{client}" if counted != "*" else "clients past the log's key budget")
    if suppressed:
        text += " ({suppressed} more refusals since the last such line)"
    event(log, LogLevel.warn, "limit_hit", text, limit=name, value=value, client=counted, suppressed=suppressed, **details)
    return True


def announce(log: Logger, name: str, message: str, **fields: Any) -> None:
    """A named ``info`` event about the process's life (start, ready, restart, stop), always shown."""
    event(log, LogLevel.info, name, message, **fields)


__all__ = ["EVENT_KEY", "FORMATS", "LEVELS", "LIMIT_LINES", "LineBudget", "announce", "as_json", "as_text", "event",
           "level_of", "limit_hit", "line_observer", "predicates", "start_logging"]
