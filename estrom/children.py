"""The Beater and the Tailor as child processes of ``estrom up``.

Python runs one thread of Python at a time, so a Beater percolating and a
Tailor writing hits in one process take turns on one core.  ``estrom up``
therefore runs each in its own process (``estrom beater``, ``estrom tailor``
with the same settings) and supervises them: ready when both answer their
health check, everything stopped when one of them dies or when ``up`` is
told to stop.  Children get SIGTERM from the kernel if ``up`` itself dies.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
from typing import Any, List, Optional

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


class ChildService:
    """One ``estrom beater`` or ``estrom tailor`` child."""

    def __init__(self, command: str, s: Settings) -> None:
        self.command = command
        self.settings = s
        self.process: Optional[subprocess.Popen[bytes]] = None

    @property
    def address(self) -> tuple:
        """Host and port of the child's HTTP API."""
        s = self.settings
        return (s.beater_host, s.beater_port) if self.command == "beater" else (s.tailor_host, s.tailor_port)

    def start(self) -> None:
        """Spawn the child; its output goes where ours goes."""
        env = dict(os.environ, **{SUPERVISED_ENV: "1"})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "estrom.cli", self.command, *child_arguments(self.settings)],
            stdin=subprocess.DEVNULL, env=env, preexec_fn=die_with_parent,
        )

    def exited(self) -> Optional[int]:
        """The exit code if the child has exited, else None."""
        return None if self.process is None else self.process.poll()

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
