"""The Beater and the Tailor as child processes of ``estrom up``.

Python runs one thread of Python at a time, so a Beater percolating and a
Tailor writing hits in one process take turns on one core.  ``estrom up``
therefore runs each in its own process (``estrom beater``, ``estrom tailor``
with the same settings): ready when both answer their health check, restarted
by :mod:`estrom.supervisor` when one of them dies, stopped when ``up`` is told
to stop.  Children get SIGTERM from the kernel if ``up`` itself dies.

A child's output passes through ``up`` (a thread per child copies it to our
stderr line by line) so that the last lines it wrote can explain its exit.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from typing import IO, Any, Deque, List, Optional, cast

from twisted.internet import task, threads

from estrom.settings import OPTIONS, Settings
from router.process import die_with_parent, wait_exit

SUPERVISED_ENV = "ESTROM_SUPERVISED"
"""Set in a child's environment: it leaves the ``estrom: ready`` line to its parent."""


def child_arguments(s: Settings) -> List[str]:
    """The flags that give a child exactly the parent's resolved settings (each option is a field)."""
    return [arg for option in OPTIONS for arg in (option.flag, str(getattr(s, option.name)))]


def _health(host: str, port: int) -> int:
    conn = http.client.HTTPConnection(host, port, timeout=2)
    try:
        conn.request("GET", "/api/v0.1/health")
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


TAIL_LINES = 20
"""How many of a child's last output lines are kept to explain its exit."""


def _copy_lines(source: IO[bytes], sink: IO[bytes], tail: Deque[bytes]) -> None:
    """Copy ``source`` to ``sink`` line by line until EOF, keeping the last lines in ``tail``."""
    with source:
        for line in source:
            tail.append(line)
            try:
                sink.write(line)
                sink.flush()
            except (OSError, ValueError):
                pass  # our stderr is gone (closed pipe): keep draining so the child never blocks


def _real_stderr() -> IO[bytes]:
    """Our process's standard error as bytes (``sys.stderr`` may be Twisted's logging stand-in)."""
    stream = sys.__stderr__
    # The standard streams' buffer is a BufferedWriter; typeshed only knows TextIOWrapper's generic buffer protocol.
    return cast(IO[bytes], stream.buffer) if stream is not None else open(os.devnull, "wb")


class ChildService:
    """One ``estrom beater`` or ``estrom tailor`` child."""

    def __init__(self, command: str, s: Settings, echo: Optional[IO[bytes]] = None) -> None:
        self.command = command
        self.name = command
        self.settings = s
        self.echo = echo
        self.process: Optional[subprocess.Popen[bytes]] = None
        self._tail: Deque[bytes] = deque(maxlen=TAIL_LINES)
        self._pump: Optional[threading.Thread] = None

    @property
    def address(self) -> tuple:
        """Host and port of the child's HTTP API."""
        s = self.settings
        return (s.beater_host, s.beater_port) if self.command == "beater" else (s.tailor_host, s.tailor_port)

    @property
    def pid(self) -> Optional[int]:
        """Process id of the current run, if started."""
        return self.process.pid if self.process else None

    def start(self) -> None:
        """Spawn the child; its output (stdout and stderr) is copied to our stderr."""
        env = dict(os.environ, **{SUPERVISED_ENV: "1"})
        self._tail = deque(maxlen=TAIL_LINES)  # this run's lines only
        self.process = subprocess.Popen(
            [sys.executable, "-m", "estrom.cli", self.command, *child_arguments(self.settings)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, preexec_fn=die_with_parent,
        )
        assert self.process.stdout is not None
        self._pump = threading.Thread(
            target=_copy_lines, args=(self.process.stdout, self.echo or _real_stderr(), self._tail),
            name=f"estrom {self.command} output", daemon=True,
        )
        self._pump.start()

    def exited(self) -> Optional[int]:
        """The exit code if the child has exited, else None."""
        return None if self.process is None else self.process.poll()

    def reap(self) -> Optional[int]:
        """The current run's ``returncode`` once it has ended (reaping it), else None."""
        code = self.exited()
        if code is not None and self._pump is not None:
            self._pump.join(timeout=0.2)  # its last words are in the pipe: let the copier read them (EOF is at hand)
        return code

    def output_tail(self) -> str:
        """The last lines the current run wrote."""
        return b"".join(list(self._tail)).decode("utf-8", "replace")

    async def wait_ready(self, reactor: Any) -> None:
        """Nothing to wait for after a restart: the child joins the router by itself when it can.

        (Its health check answers 503 for as long as the router is down, which is not
        the child's fault, so it is no sign that the restart failed.)
        """

    async def wait_healthy(self, reactor: Any, timeout: float = 60.0) -> None:
        """Wait until the child's health check answers 200 (it has joined the router)."""
        host, port = self.address
        waited = 0.0
        while True:
            code = self.exited()
            if code is not None:
                raise RuntimeError(f"estrom {self.command} exited with code {code}")
            try:
                if await threads.deferToThread(_health, host, port) == 200:
                    return
            except OSError:
                pass
            if waited > timeout:
                raise RuntimeError(f"estrom {self.command} did not become healthy on {host}:{port} within {timeout:.0f} s")
            await task.deferLater(reactor, 0.1, lambda: None)
            waited += 0.1

    async def stop(self, reactor: Any, grace: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        if not await wait_exit(self.process, reactor, grace):
            self.process.kill()
            self.process.wait(timeout=5)
