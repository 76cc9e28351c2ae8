"""Real estrom processes for end-to-end tests: ``estrom up`` exactly as a user runs it.

Each test module gets its own ``estrom up`` (real Crossbar, Beater, Tailor) on
free loopback ports with a fresh data directory.  Clients talk to it through
real sockets: ``http.client`` for HTTP, a separate ``wampcli.py`` process for WAMP.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple
from urllib.parse import urlencode

import pytest

ROOT = Path(__file__).resolve().parents[2]
WAMPCLI = Path(__file__).with_name("wampcli.py")


_HANDED_OUT: Set[int] = set()


def free_port() -> int:
    """A TCP port nobody listens on right now, and never one handed out before in this run.

    A stopped instance's ports are free again, and the kernel readily hands them to the next bind:
    a test that starts a second instance while the first is down must not take the first's ports.
    """
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def settings_free_environment() -> Dict[str, str]:
    """This environment without any ``ESTROM_*`` setting: what a test's estrom runs with is on its command line.

    ``scripts/test`` exports the addresses of the services it started for the tests, and a developer's
    shell may hold settings of their own; neither may turn on, say, Kafka in every ``estrom up`` of the run.
    """
    from estrom.settings import OPTIONS

    settings = {option.env for option in OPTIONS}
    return {name: value for name, value in os.environ.items() if name not in settings}


def estrom_executable() -> List[str]:
    """The installed ``estrom`` console script next to this interpreter."""
    script = Path(sys.executable).with_name("estrom")
    return [str(script)] if script.exists() else [sys.executable, "-m", "estrom.cli"]


class Estrom:
    """One ``estrom up`` process and the addresses it serves."""

    def __init__(self, data_dir: Path, extra_args: Optional[List[str]] = None) -> None:
        self.data_dir = data_dir
        self.router_port, self.tailor_port, self.beater_port = free_port(), free_port(), free_port()
        self.extra_args = extra_args or []
        self.process: Optional[subprocess.Popen[str]] = None
        self.output: List[str] = []

    @property
    def router_url(self) -> str:
        """WebSocket URL of the router."""
        return f"ws://127.0.0.1:{self.router_port}/ws"

    def command(self) -> List[str]:
        """The command line, as a user would type it."""
        return estrom_executable() + [
            "up",
            "--data-dir", str(self.data_dir),
            "--router-url", self.router_url,
            "--tailor-port", str(self.tailor_port),
            "--beater-port", str(self.beater_port),
            "--log-level", "warn",
        ] + self.extra_args

    def start(self, timeout: float = 90.0) -> None:
        """Start and wait for the ``ready`` line."""
        self.output = []
        self.process = subprocess.Popen(
            self.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, start_new_session=True,
            env=settings_free_environment(),
        )
        ready = threading.Event()

        def pump() -> None:
            assert self.process and self.process.stdout
            for line in self.process.stdout:
                self.output.append(line)
                if "estrom: ready" in line:
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("estrom up did not become ready:\n" + "".join(self.output))
        self.wait_http(f"http://127.0.0.1:{self.beater_port}/api/v0.1/health", deadline)
        self.wait_http(f"http://127.0.0.1:{self.tailor_port}/api/v0.1/health", deadline)

    def wait_http(self, url: str, deadline: float) -> None:
        """Wait until ``url`` answers 200 (the services have joined the router)."""
        while True:
            try:
                status, _ = http_get_json(url)
                if status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} never answered 200:\n" + "".join(self.output))
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the process and wait for it; return its exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
                raise AssertionError("estrom up did not stop within %s s:\n%s" % (timeout, "".join(self.output)))
        return self.process.returncode

    # --- clients -------------------------------------------------------------------------------

    def post(self, index: str, body: Any, content_type: str = "application/json") -> Tuple[int, Dict[str, Any]]:
        """POST documents to the Beater; return status and JSON answer."""
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        conn = http.client.HTTPConnection("127.0.0.1", self.beater_port, timeout=30)
        conn.request("POST", f"/api/v0.1/beat/{index}", body=data, headers={"content-type": content_type})
        response = conn.getresponse()
        answer = json.loads(response.read())
        conn.close()
        return response.status, answer

    def tail(self, **params: Any) -> "Tail":
        """Open ``GET /api/v0.1/docs`` with ``params``; the response stays open."""
        return Tail(self.tailor_port, params)

    def wamp(self, *args: str, timeout: float = 30.0) -> List[Any]:
        """Run ``wampcli.py`` to completion; return its JSON lines."""
        done = subprocess.run(
            [sys.executable, str(WAMPCLI), self.router_url, *args], capture_output=True, text=True, timeout=timeout
        )
        assert done.returncode == 0, done.stderr
        return [json.loads(line) if line.startswith(("{", "[")) else line for line in done.stdout.splitlines()]

    def wamp_subscriber(self, topic: str, count: int, timeout: float = 20.0) -> "subprocess.Popen[str]":
        """Start a WAMP subscriber process; returns once it has subscribed."""
        proc = subprocess.Popen(
            [sys.executable, str(WAMPCLI), self.router_url, "subscribe", topic, str(count), str(timeout)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.strip() == "subscribed", first + (proc.stderr.read() if proc.stderr else "")
        return proc


class Tail:
    """An open HTTP tail: the raw bytes received so far and a way to read more."""

    def __init__(self, port: int, params: Dict[str, Any]) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.conn.request("GET", "/api/v0.1/docs?" + urlencode(params))
        self.response = self.conn.getresponse()
        self.received = b""

    @property
    def status(self) -> int:
        """HTTP status of the answer."""
        return self.response.status

    def read_some(self) -> bytes:
        """Whatever the server has sent next (blocks until something arrives)."""
        chunk = self.response.read1(65536)
        self.received += chunk
        return chunk

    def read_until(self, needle: bytes, timeout: float = 15.0) -> bytes:
        """Read until ``needle`` has been received; return everything received."""
        self.conn.sock.settimeout(timeout)
        while needle not in self.received:
            if not self.read_some():
                break
        return self.received

    def read_all(self) -> bytes:
        """Read to the end of the response."""
        self.received += self.response.read()
        return self.received

    def close(self) -> None:
        """Go away, as a client that stops listening does."""
        self.conn.close()


def http_get_json(url: str) -> Tuple[int, Any]:
    """GET ``url``; return status and decoded JSON body."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", parts.path + ("?" + parts.query if parts.query else ""))
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, json.loads(body) if body else None


@pytest.fixture(scope="module")
def estrom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estrom]:
    """A running ``estrom up`` shared by the tests of one module."""
    instance = Estrom(tmp_path_factory.mktemp("estrom-data"))
    instance.start()
    yield instance
    instance.stop()
