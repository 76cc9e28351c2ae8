"""Starting, stopping and restarting ``estrom up``: nothing lost, nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import Set

from tests.integration.conftest import Estrom

HEADER = b'"hits": ['


def descendants(pid: int) -> Set[int]:
    """Every live process below ``pid`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
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


def alive(pid: int) -> bool:
    """Whether ``pid`` is still a running (non-zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_registrations_survive_a_restart(tmp_path: Path) -> None:
    """A subscription id registered before a restart still tails documents after it."""
    first = Estrom(tmp_path)
    first.start()
    try:
        [answer] = first.wamp("call", "estrom.register", json.dumps(["events", "survives AND restart"]))
    finally:
        first.stop()
    subscription_id = answer["result"]["id"]

    second = Estrom(tmp_path)
    second.start()
    try:
        tail = second.tail(s=subscription_id, limit=1)
        tail.read_until(HEADER)
        second.post("events", {"message": "restart survives"})
        hits = json.loads(tail.read_all())["hits"]
    finally:
        second.stop()
    assert tail.status == 200
    assert [h["_source"]["message"] for h in hits] == ["restart survives"]


def test_sigterm_stops_every_child_process(tmp_path: Path) -> None:
    """SIGTERM to estrom up leaves no Crossbar or Python process behind, and exits cleanly."""
    instance = Estrom(tmp_path)
    instance.start()
    assert instance.process is not None
    children = descendants(instance.process.pid)
    assert children, "estrom up should have started Crossbar"
    code = instance.stop(signal.SIGTERM)
    assert [pid for pid in children if alive(pid)] == []
    assert code == 0


def test_port_in_use_is_a_one_line_error_naming_port_and_flag(tmp_path: Path) -> None:
    """A taken port stops estrom before it starts anything, with one clear line."""
    instance = Estrom(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", instance.tailor_port))
        squatter.listen()
        done = subprocess.run(instance.command(), capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert str(instance.tailor_port) in lines[0] and "--tailor-port" in lines[0]
