"""Running Crossbar as a child process that never outlives estrom.

Crossbar runs in its own process group, so one signal reaches its controller
and its router workers alike, and with a parent-death signal, so that even an
estrom killed with SIGKILL takes it down.  Its output goes to a log file; the
console only shows estrom's own lines (and the log's tail if Crossbar fails).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, cast

from twisted.internet import task
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.interfaces import IProtocolFactory, IReactorCore, IReactorTCP, IReactorTime
from twisted.internet.protocol import Factory, Protocol

from router import config as crossbar_config

_PR_SET_PDEATHSIG = 1


def crossbar_command(cbdir: Path, config_path: Path, loglevel: str = "info", logformat: str = "none") -> List[str]:
    """The command line that starts a Crossbar node from ``cbdir`` with ``config_path``."""
    return [
        sys.executable,
        "-c",
        "import sys; from crossbar import run; sys.exit(run())",
        "start",
        "--cbdir",
        str(cbdir),
        "--config",
        str(config_path),
        "--loglevel",
        loglevel,
        "--logformat",
        logformat,
        "--color",
        "false",
    ]


def crossbar_environment(tickets: Dict[str, str], base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The environment Crossbar runs with: the service tickets its config reads, nothing written to disk."""
    from estrom.settings import ticket_env  # late: estrom.settings imports router.contract

    env = dict(os.environ if base is None else base)
    for role, ticket in tickets.items():
        env[ticket_env(role)] = ticket
    return env


def prepare(cbdir: Path, host: str, port: int, ws_path: str) -> Path:
    """Render ``.crossbar/config.json`` for this endpoint into ``cbdir``; return the file."""
    rendered = crossbar_config.render(crossbar_config.load_template(), host, port, ws_path)
    return crossbar_config.write(rendered, cbdir)


def die_with_parent() -> None:
    """Ask the kernel to send SIGTERM to this (child) process when its parent dies."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: the process group still covers orderly shutdowns
    os.setsid()


class RouterProcess:
    """One Crossbar node started by estrom, with readiness and orderly shutdown."""

    name = "router"

    def __init__(
        self, cbdir: Path, config_path: Path, tickets: Dict[str, str], log_path: Path, loglevel: str = "info",
        listen: Optional[Tuple[str, int]] = None,
    ) -> None:
        self.listen = listen  # where wait_ready looks when not told
        self.cbdir = cbdir
        self.config_path = config_path
        self.tickets = tickets
        self.log_path = log_path
        self.loglevel = loglevel
        self.process: Optional[subprocess.Popen[bytes]] = None
        self._log_start = 0

    def start(self) -> None:
        """Spawn Crossbar (non-blocking: a fork and exec)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self._log_start = log.tell()  # the log is appended to across runs: read only this run's part
        try:
            self.process = subprocess.Popen(
                crossbar_command(self.cbdir, self.config_path, self.loglevel),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=crossbar_environment(self.tickets),
                preexec_fn=die_with_parent,
            )
        finally:
            log.close()

    @property
    def pid(self) -> Optional[int]:
        """Process id of the Crossbar controller, if started."""
        return self.process.pid if self.process else None

    def exited(self) -> Optional[int]:
        """The exit code if Crossbar has exited, else None."""
        return None if self.process is None else self.process.poll()

    def reap(self) -> Optional[int]:
        """Once the controller has ended: reap it, kill what is left of its group, return its ``returncode``.

        A controller killed with SIGKILL leaves its router worker behind (reparented,
        still holding the router's port), so a new Crossbar could not listen; the
        worker is in the controller's process group, which the group signal reaches.
        """
        if self.process is None:
            return None
        code = self.process.poll()
        if code is None:
            return None
        # The group outlives its leader while a member lives, and its id (the leader's pid)
        # cannot be handed to a new process meanwhile: this signal reaches only Crossbar's own.
        _signal_group(self.process.pid, signal.SIGKILL)
        self._remove_pid_file()
        return code

    def _remove_pid_file(self) -> None:
        # Crossbar refuses to start if node.pid names a live crossbar process; ours is dead,
        # but its pid could be reused by the time we restart.
        try:
            (self.cbdir / "node.pid").unlink()
        except OSError:
            pass

    def output_tail(self) -> str:
        """The last lines of this run's part of Crossbar's log."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_start)
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-30:])

    def booted(self) -> bool:
        """Whether this run of Crossbar has logged that every transport and service is up."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_start)
                return BOOT_COMPLETE.encode() in f.read()
        except OSError:
            return False

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of Crossbar's log, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def wait_ready(self, reactor: IReactorTCP, host: Optional[str] = None, port: Optional[int] = None, timeout: float = 60.0) -> None:
        """Wait until the router accepts TCP connections; raise if Crossbar exits or time runs out.

        ``host`` and ``port`` default to ``listen`` given at construction.
        """
        if host is None or port is None:
            assert self.listen is not None, "wait_ready needs host and port, or listen= at construction"
            host, port = self.listen
        clock: IReactorTime = reactor
        waited = 0.0
        while True:
            code = self.exited()
            if code is not None:
                raise RuntimeError(f"Crossbar exited with code {code}:\n{self.log_tail()}")
            try:
                factory = Factory.forProtocol(Protocol)
                factory.noisy = False  # one "Starting factory" log line per probe otherwise
                # Factory implements IProtocolFactory through zope, which mypy cannot see.
                proto = await TCP4ClientEndpoint(reactor, host, port, timeout=1).connect(cast(IProtocolFactory, factory))
                proto.transport.loseConnection()
                # The port listens before the WebSocket service is mounted on it; Crossbar logs
                # this marker once every transport and service of the node is up.
                if self.booted():
                    return
                raise RuntimeError("not booted yet")
            except Exception:
                if waited >= timeout:
                    raise RuntimeError(f"Crossbar did not listen on {host}:{port} within {timeout:.0f} s:\n{self.log_tail()}") from None
            await task.deferLater(clock, 0.1, lambda: None)
            waited += 0.1

    async def stop(self, reactor: IReactorCore, grace: float = 10.0) -> None:
        """SIGTERM the whole Crossbar process group, then SIGKILL what is left after ``grace`` seconds."""
        if self.process is None:
            return
        pgid = self.process.pid
        if self.process.poll() is not None:
            _signal_group(pgid, signal.SIGKILL)  # the controller is gone; its workers may not be
            return
        _signal_group(pgid, signal.SIGTERM)
        await wait_exit(self.process, reactor, grace)
        # Crossbar's workers may outlive a controller that died abruptly; the group reaches them too.
        _signal_group(pgid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(timeout=5)


BOOT_COMPLETE = "NODE_BOOT_COMPLETE"


async def wait_exit(process: "subprocess.Popen[bytes]", reactor: Any, grace: float) -> bool:
    """Poll ``process`` without blocking the reactor for up to ``grace`` seconds; True if it exited."""
    waited = 0.0
    while process.poll() is None and waited < grace:
        await task.deferLater(reactor, 0.05, lambda: None)
        waited += 0.05
    return process.poll() is not None


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


def exec_foreground(cbdir: Path, config_path: Path, tickets: Dict[str, str], loglevel: str = "info") -> None:
    """Replace this process by Crossbar (``estrom router``): signals then reach Crossbar directly."""
    command = crossbar_command(cbdir, config_path, loglevel, logformat="standard")
    os.execve(sys.executable, command, crossbar_environment(tickets))


__all__ = ["RouterProcess", "crossbar_command", "crossbar_environment", "die_with_parent", "exec_foreground", "prepare", "wait_exit"]
