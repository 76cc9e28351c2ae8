"""One `estrom up` for a benchmark: free ports, a temporary data directory, its parts found in /proc."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url: str) -> int:
    """The status of a GET, or 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status
    except Exception as e:
        return getattr(e, "code", 0)


class EstromUp:
    """`estrom up` with ``extra_args``, its output in ``<data dir>/estrom.log``."""

    def __init__(self, extra_args: List[str], prefix: str = "estrom-bench-", source: Optional[str] = None) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.router_port, self.tailor_port, self.beater_port = free_port(), free_port(), free_port()
        self.tailor = f"http://127.0.0.1:{self.tailor_port}"
        self.beater = f"http://127.0.0.1:{self.beater_port}"
        # From another source tree (a checkout of some commit), or the installed `estrom`.
        env = dict(os.environ, PYTHONPATH=source) if source else None
        up = [sys.executable, "-m", "estrom.cli", "up"] if source else [str(Path(sys.executable).with_name("estrom")), "up"]
        cmd = [*up, "--data-dir", str(self.data_dir), "--router-url", f"ws://127.0.0.1:{self.router_port}/ws",
               "--tailor-port", str(self.tailor_port), "--beater-port", str(self.beater_port),
               "--log-level", "warn", *extra_args]
        self.log = self.data_dir / "estrom.log"
        with open(self.log, "wb") as log:  # a pipe nobody reads would fill and block it
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, env=env, cwd=source)

    def wait_ready(self) -> None:
        """Until `estrom up` says ready and both services answer their health check."""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and self.proc.poll() is None:
            if b"estrom: ready" in self.log.read_bytes() and all(
                    http_status(url + "/api/v0.1/health") == 200 for url in (self.tailor, self.beater)):
                return
            time.sleep(0.2)
        raise SystemExit("estrom up did not start:\n" + self.log.read_text())

    def part_pid(self, part: str) -> int:
        """The pid of a part (``beater``, ``tailor``): the descendant of `estrom up` with ``part`` in its argv."""
        parents: Dict[int, int] = {}
        commands: Dict[int, List[str]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                    parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
                    commands[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes().decode().split("\0")
                except (OSError, ValueError, IndexError):
                    continue
        for pid, argv in commands.items():
            ancestor = parents.get(pid)
            while ancestor and ancestor != self.proc.pid:
                ancestor = parents.get(ancestor)
            if ancestor == self.proc.pid and part in argv:
                return pid
        raise SystemExit(f"no {part} process under estrom up")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to its process group if it lingers."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
