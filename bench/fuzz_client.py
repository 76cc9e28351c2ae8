"""The fuzzer's side of the wire and its watch on the processes (bench/fuzz.py uses both).

:func:`exchange` sends raw bytes on a fresh connection and reads one HTTP answer within a
bound, whatever the bytes were, so a malformed request is sent exactly as generated (no client
library normalises it).  :func:`descendants` lists the processes under `estrom up` with their
start times, so a part that crashed and was restarted shows even when the supervisor was quick.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple


# --- HTTP -----------------------------------------------------------------------------------


class Answer:
    """What one HTTP exchange got: status (0: none), headers, body, milliseconds, and whether it timed out."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: Dict[bytes, bytes] = {}
        self.body = b""
        self.ms = 0.0
        self.timed_out = False
        self.error = ""


async def read_body(reader: asyncio.StreamReader, headers: Dict[bytes, bytes]) -> bytes:
    """The body of a response by its Content-Length, chunked framing, or to the end of the connection."""
    if b"content-length" in headers:
        return await reader.readexactly(int(headers[b"content-length"]))
    if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return body
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    return await reader.read()


async def exchange(port: int, data: bytes, head_only: bool, bound_s: float, stream_path: bool) -> Answer:
    """Send ``data`` on a fresh connection and read one answer (for a tail that opened: its header only)."""
    answer = Answer()
    start = time.monotonic()
    writer: Optional[asyncio.StreamWriter] = None

    async def talk() -> None:
        nonlocal writer
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2 ** 20)
        writer.write(data)
        try:
            await writer.drain()
        except ConnectionError:
            pass  # the server answered before it read everything (413, 400): read what it said
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as e:
                head = e.partial
                if not head.startswith(b"HTTP/"):
                    answer.error = "closed" + (f": {head[:80]!r}" if head else "")
                    return
            lines = head.split(b"\r\n")
            parts = lines[0].split(b" ", 2)
            answer.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1
            answer.headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name:
                    answer.headers[name.strip().lower()] = value.strip()
            if not 100 <= answer.status < 200:
                break
        if head_only or (stream_path and answer.status == 200):
            return
        answer.body = await read_body(reader, answer.headers)

    try:
        await asyncio.wait_for(talk(), bound_s)
    except asyncio.TimeoutError:
        answer.timed_out = True
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
        if not answer.status:
            answer.error = f"{type(e).__name__}: {e}"[:120]
    finally:
        answer.ms = (time.monotonic() - start) * 1000
        if writer is not None:
            writer.close()
    return answer


# --- processes ------------------------------------------------------------------------------


def descendants(root: int) -> Dict[int, Tuple[str, str]]:
    """Every process under ``root``: pid -> (start time, command line)."""
    parents: Dict[int, int] = {}
    info: Dict[int, Tuple[str, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            parents[int(entry)] = int(fields[1])
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            info[int(entry)] = (fields[19], cmd.strip())
        except (OSError, ValueError, IndexError):
            continue
    out = {}
    for pid in info:
        ancestor = parents.get(pid)
        while ancestor and ancestor != root:
            ancestor = parents.get(ancestor)
        if ancestor == root:
            out[pid] = info[pid]
    return out


def short(cmd: str) -> str:
    """A process's name for the report: the part of `estrom up` it is, or Crossbar's worker."""
    argv = cmd.split()
    for part in ("router", "beater", "tailor"):
        if part in argv:
            return part
    return "crossbar" if "crossbar" in cmd else cmd[:60]  # the router part runs Crossbar's node and its worker


LOG_ERRORS = re.compile(r"Traceback|#error\]|#critical\]|Unhandled|RecursionError|MemoryError")


def log_findings(text: str) -> List[str]:
    """The log lines that say something went wrong (tracebacks with their last lines)."""
    lines = text.splitlines()
    found = []
    for n, line in enumerate(lines):
        if LOG_ERRORS.search(line):
            found.append(" | ".join(l.strip() for l in lines[n:n + 12])[:1200])
    return found
