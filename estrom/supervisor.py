"""Keeping ``estrom up``'s parts running: reap a part that exits, say why, restart it with back-off.

``estrom up`` runs three processes: Crossbar (the router), the Beater and the
Tailor.  Any of them can die (a crash, the OOM killer, ``kill -9``); the other
two survive it, because the Beater and the Tailor reconnect to the router by
themselves and re-register and resubscribe on every join.  So the supervisor
only has to notice an exit, reap the process (no zombie), print one line that
says what happened, wait a back-off delay and start the part again.

The back-off doubles from ``initial`` to ``maximum`` for a part that keeps
dying and starts over once a run has lasted ``stable_after`` seconds, so a part
that cannot even start (a config error, a port taken) is retried ever more
slowly while every retry still prints why, with the tail of its output.

The policy and the line are pure functions (:func:`next_restart`,
:func:`describe_exit`, :func:`exit_line`); :class:`Supervisor` is the I/O.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Protocol, TextIO, Tuple

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger, LogLevel

from estrom import logs

log = Logger()


@dataclass(frozen=True)
class BackoffPolicy:
    """How long to wait before restarting a part that exited."""

    initial: float = 0.5
    """Delay before the first restart of a streak, in seconds."""
    factor: float = 2.0
    """Each further restart in the same streak waits this many times longer."""
    maximum: float = 30.0
    """The delay never grows past this."""
    stable_after: float = 60.0
    """A run at least this long ends the streak: the next exit waits ``initial`` again."""


DEFAULT_POLICY = BackoffPolicy()

_MAX_EXPONENT = 64  # factor ** n overflows a float for large n; the delay is capped long before


def next_restart(policy: BackoffPolicy, failures_in_a_row: int, ran_for: float) -> Tuple[float, int]:
    """The delay before restarting a part that just exited, and its new count of failures in a row.

    ``failures_in_a_row`` counts the exits of the current streak before this one;
    ``ran_for`` is how long the run that just ended lasted, in seconds.
    """
    if ran_for >= policy.stable_after:
        failures_in_a_row = 0  # it had recovered: this exit starts a new streak
    exponent = min(failures_in_a_row, _MAX_EXPONENT)
    delay = min(policy.maximum, policy.initial * policy.factor ** exponent)
    return delay, failures_in_a_row + 1


def describe_exit(returncode: int) -> str:
    """How a process ended, from its ``Popen.returncode`` (negative: killed by that signal)."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with code {returncode}"


def summarize_output(text: str, lines: int = 3, limit: int = 400) -> str:
    """The last non-empty ``lines`` of ``text`` on one line (joined by `` | ``), at most ``limit`` characters."""
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    summary = " | ".join(kept)
    return summary if len(summary) <= limit else "..." + summary[-(limit - 3):]


def exit_line(name: str, pid: Optional[int], what: str, delay: float, restart: int, output: str = "") -> str:
    """The one line printed when a part ended: what happened, when it restarts, and why if it said so.

    >>> exit_line("router", 123, "was killed by SIGKILL", 0.5, 1)
    'estrom: router (pid 123) was killed by SIGKILL; restarting in 0.5 s (restart 1)'
    """
    line = f"estrom: {name} (pid {pid}) {what}; restarting in {delay:g} s (restart {restart})"
    return f"{line}; last output: {output}" if output else line


class Part(Protocol):
    """What the supervisor needs of a process it keeps running (a ChildService or a RouterProcess)."""

    name: str

    @property
    def pid(self) -> Optional[int]:
        """Process id of the current run."""

    def start(self) -> None:
        """Spawn a new run (non-blocking)."""

    def reap(self) -> Optional[int]:
        """If the current run has ended: clean up after it and return its ``Popen.returncode``; else None."""

    async def wait_ready(self, reactor: Any) -> None:
        """Wait until a run just started is usable; raise if it exits or never gets there."""

    def output_tail(self) -> str:
        """The last lines the current run wrote (its output or log), to explain an exit."""

    async def stop(self, reactor: Any) -> None:
        """Stop the current run for good (SIGTERM, then SIGKILL)."""


@dataclass
class _Watched:
    """The supervisor's bookkeeping for one part."""

    part: Part
    started_at: float
    failures_in_a_row: int = 0
    restarts: int = 0
    restarting: bool = False  # between an exit and the end of the restart: the poll leaves it alone
    pending: Any = None  # the IDelayedCall of a scheduled restart


class Supervisor:
    """Watches parts that are already running; restarts each one that ends, until :meth:`stop`."""

    def __init__(
        self,
        reactor: Any,
        parts: List[Part],
        policy: BackoffPolicy = DEFAULT_POLICY,
        poll_s: float = 0.2,
        out: Optional[TextIO] = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reactor = reactor
        self.policy = policy
        self.poll_s = poll_s
        self.out = out
        self.clock = clock
        self.stopping = False
        now = clock()
        self.watched = [_Watched(part, now) for part in parts]
        self._loop = LoopingCall(self._poll)
        self._loop.clock = reactor

    def start(self) -> None:
        """Begin watching (the parts were started and found ready by the caller)."""
        self._loop.start(self.poll_s, now=False)

    async def stop(self) -> None:
        """Stop watching and cancel pending restarts; stopping the parts is left to their own stops."""
        self.stopping = True
        if self._loop.running:
            self._loop.stop()
        for w in self.watched:
            if w.pending is not None and w.pending.active():
                w.pending.cancel()
            w.pending = None

    def _say(self, line: str, **fields: Any) -> None:
        if self.out is not None:
            print(line, file=self.out, flush=True)
            return
        # A named event: shown at any --log-level, with the part and its exit as fields in JSON lines.
        logs.event(log, LogLevel.warn, "restart", "{_line}", _line=line, **fields)

    def _poll(self) -> None:
        """Reap every part whose run ended (poll does not block) and schedule its restart."""
        for w in self.watched:
            if self.stopping or w.restarting:
                continue
            try:
                code = w.part.reap()
            except Exception:
                # Never let one failed look end the LoopingCall: nothing would be watched any more.
                log.failure("could not check on {name}", name=w.part.name)
                continue
            if code is not None:
                # A part that ends by itself (not by a signal) usually said why before it went.
                output = "" if code < 0 else summarize_output(w.part.output_tail())
                self._schedule_restart(w, describe_exit(code), output)

    def _schedule_restart(self, w: _Watched, what: str, output: str = "") -> None:
        delay, w.failures_in_a_row = next_restart(self.policy, w.failures_in_a_row, self.clock() - w.started_at)
        w.restarts += 1
        w.restarting = True
        self._say(exit_line(w.part.name, w.part.pid, what, delay, w.restarts, output),
                  part=w.part.name, pid=w.part.pid, exit=what, delay_s=delay, restarts=w.restarts)
        w.pending = self.reactor.callLater(delay, lambda: ensureDeferred(self._restart_or_retry(w)))

    async def _restart_or_retry(self, w: _Watched) -> None:
        """Restart ``w``; if that fails unexpectedly, say so and try again later rather than give up on it."""
        w.pending = None
        try:
            await self._restart(w)
        except Exception as e:
            if not self.stopping:
                log.failure("restarting {name} failed", name=w.part.name)
                self._schedule_restart(w, f"could not be restarted ({e})")

    async def _restart(self, w: _Watched) -> None:
        if self.stopping:
            return
        try:
            w.part.start()
        except Exception as e:  # e.g. fork failed: try again later, saying so
            w.started_at = self.clock()
            self._schedule_restart(w, f"could not be started ({e})")
            return
        w.started_at = self.clock()
        try:
            await w.part.wait_ready(self.reactor)
        except Exception as e:
            if self.stopping:
                return
            if w.part.reap() is None:
                # It runs but never became ready (e.g. Crossbar not listening in time): replace it.
                await w.part.stop(self.reactor)
                w.part.reap()
                self._schedule_restart(w, f"did not become ready ({str(e).splitlines()[0]})",
                                       summarize_output(w.part.output_tail()))
                return
        # If it exited while starting, the next poll reaps it and says so, with its output.
        w.restarting = False


__all__ = ["BackoffPolicy", "DEFAULT_POLICY", "Part", "Supervisor", "describe_exit", "exit_line", "next_restart", "summarize_output"]
