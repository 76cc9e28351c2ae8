"""Process probes and bounded waits for the integration tests: ``/proc`` readers, the parts of ``estrom up``, health.

Everything here reads real ``/proc`` files and asks real health endpoints;
nothing is mocked.  Every wait is bounded by a deadline and fails with a
message (and ``estrom up``'s output) instead of hanging.
"""

from __future__ import annotations

import http.client
import os
import signal
import time
from pathlib import Path
from typing import Any, Callable, List, Optional, Set, Tuple, TypeVar

from tests.integration.conftest import Estrom, http_get_json

T = TypeVar("T")

ROUTER, BEATER, TAILOR = "crossbar", "estrom.cli beater", "estrom.cli tailor"
"""Markers: what the command line of each part of ``estrom up`` contains."""


# --- waiting ------------------------------------------------------------------------------------


def wait_for(what: str, probe: Callable[[], Optional[T]], timeout: float, instance: Optional[Estrom] = None,
             interval: float = 0.05) -> T:
    """Poll ``probe`` until it returns something other than None; fail (with estrom's output) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            said = "".join(instance.output) if instance is not None else ""
            raise AssertionError(f"{what}: not within {timeout:.0f} s" + (f"; estrom up said:\n{said}" if said else ""))
        time.sleep(interval)


# --- /proc ----------------------------------------------------------------------------------------


def _stat_fields(pid: int) -> List[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name: state, ppid, pgrp, ... (OSError if gone)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def cmdline(pid: int) -> str:
    """The command line of ``pid`` ('' if it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """Whether ``pid`` is still a running (non-zombie) process."""
    try:
        return _stat_fields(pid)[0] != "Z"
    except OSError:
        return False


def group_of(pid: int) -> int:
    """The process group of ``pid`` (0 if it is gone)."""
    try:
        return int(_stat_fields(pid)[2])
    except OSError:
        return 0


def descendants(pid: int) -> Set[int]:
    """Every process below ``pid`` (children, their children, ...), read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(_stat_fields(int(entry))[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(entry))
    found: Set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def rss_kb(pid: int) -> int:
    """The resident set size of ``pid`` in KiB (``VmRSS`` of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


# --- the parts of estrom up -----------------------------------------------------------------------


def child_pid(instance: Estrom, marker: str) -> Optional[int]:
    """The pid of the one live (non-zombie) child of ``estrom up`` whose command line contains ``marker``."""
    assert instance.process is not None
    parent = instance.process.pid
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = _stat_fields(int(entry))
        except OSError:
            continue
        if int(fields[1]) == parent and fields[0] != "Z" and marker in cmdline(int(entry)):
            found.append(int(entry))
    return found[0] if len(found) == 1 else None


def successor(instance: Estrom, marker: str, old: int) -> Optional[int]:
    """The pid of the part that replaced ``old``, once it runs."""
    pid = child_pid(instance, marker)
    return pid if pid is not None and pid != old else None


def kill_part(instance: Estrom, marker: str, name: str, timeout: float) -> Tuple[int, int]:
    """SIGKILL the child of ``estrom up`` whose command line has ``marker``; wait for its successor.

    Returns the killed pid and its successor's.
    """
    old = child_pid(instance, marker)
    assert old is not None, f"no {name} process under estrom up"
    os.kill(old, signal.SIGKILL)
    new = wait_for(f"a new {name} process", lambda: successor(instance, marker, old), timeout, instance)
    return old, new


# --- health ---------------------------------------------------------------------------------------


def metric_lines(port: int) -> List[str]:
    """The lines of ``/metrics`` on ``port`` (the Prometheus text format)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        return conn.getresponse().read().decode().splitlines()
    finally:
        conn.close()


def metric(port: int, name: str, **labels: str) -> float:
    """A counter or gauge of ``/metrics`` on ``port``, summed over the series carrying ``labels``."""
    total = 0.0
    for line in metric_lines(port):
        if line.startswith((name + " ", name + "{")) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def health(port: int) -> Optional[Tuple[int, Any]]:
    """Status and body of ``/api/v0.1/health`` on ``port``; None while nothing (or no JSON) answers."""
    try:
        return http_get_json(f"http://127.0.0.1:{port}/api/v0.1/health")
    except (OSError, ValueError):
        return None


def healthy(instance: Estrom) -> Optional[bool]:
    """True once both the Beater's and the Tailor's health answer 200 (the router is up for both)."""
    for port in (instance.beater_port, instance.tailor_port):
        answer = health(port)
        if answer is None:
            return None
        status, body = answer
        if status != 200 or not isinstance(body, dict) or not body.get("router"):
            return None
    return True


def tailor_up(instance: Estrom) -> Optional[bool]:
    """True once the Tailor's health answers 200 and says the Beater is there."""
    answer = health(instance.tailor_port)
    if answer is None:
        return None
    status, body = answer
    return True if status == 200 and isinstance(body, dict) and body.get("beater") else None
