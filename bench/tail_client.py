"""The tail-reading worker of bench/tails.py: many HTTP tails in one asyncio process.

    python bench/tail_client.py <spec.json>

The spec names the Tailor, the index, the reading tails and the stuck clients
(``[[query id, query, format], ...]`` each) and where to write the latencies.
The worker opens every tail (raw HTTP/1.1 over asyncio sockets, chunked
transfer decoded by hand), prints ``ready <open> <failed>`` once every tail has
its response header, then ``progress <hits>`` twice a second.  When a line
``drain`` arrives on stdin it starts reading the stuck clients, waits until
they go quiet, writes the (sent time, latency ms) pairs of every hit to the
spec's ``latencies`` file as doubles, and prints ``result <json>``.

Parsing is cheap on purpose (one process reads every tail, on a machine it
shares with the server): records are lines in every format, a hit's send time
is the ``"bench_sent":<seconds>`` the feeder put in it, found with a regular
expression in the raw line rather than by decoding the hit, and only control
records (``{"_estrom": ...}``) are decoded.  The format is taken from the
response's content-type, not from what was asked, so the client works against
a server that ignores ``format=``.
"""

from __future__ import annotations

import asyncio
import json
import re
import resource
import socket
import sys
import time
from array import array
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlencode, urlsplit

SENT = re.compile(rb'"bench_sent":([0-9.eE+-]+)')
SEQ = re.compile(rb'"_seq":([0-9]+)')
OPEN_AT_ONCE = 64  # connections being opened at a time: the Tailor's listen backlog is small
QUIET_S = 2.0  # a drained stuck client is done when nothing came for this long
DRAIN_MAX_S = 30.0

FORMATS = {b"application/json": "json", b"application/x-ndjson": "ndjson", b"text/event-stream": "sse"}


def format_of(content_type: bytes) -> str:
    """The tail format a response's content-type announces (``json`` when unknown)."""
    return FORMATS.get(content_type.split(b";")[0].strip().lower(), "json")


class Dechunker:
    """Decodes an HTTP/1.1 chunked body incrementally."""

    def __init__(self) -> None:
        self.buffer = b""
        self.left = 0  # bytes of the current chunk still to come
        self.skip = 0  # bytes of the CRLF after a chunk still to skip
        self.done = False

    def feed(self, data: bytes) -> List[Tuple[bytes, bool]]:
        """The body bytes in ``data`` (framing removed) as pieces, each with whether it ends a chunk."""
        buf = self.buffer + data if self.buffer else data
        out: List[Tuple[bytes, bool]] = []
        pos, end = 0, len(buf)
        while pos < end and not self.done:
            if self.left:
                take = min(self.left, end - pos)
                self.left -= take
                out.append((buf[pos:pos + take], not self.left))
                pos += take
                if not self.left:
                    self.skip = 2
            elif self.skip:
                step = min(self.skip, end - pos)
                pos += step
                self.skip -= step
            else:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    break
                size = int(buf[pos:eol].split(b";")[0], 16)
                pos = eol + 2
                if size == 0:
                    self.done = True
                self.left = size
        self.buffer = b"" if self.done else buf[pos:]
        return out


class Tail:
    """One tail's figures and its incremental record parser."""

    def __init__(self, number: int, query_id: int, query: str, asked: str, stuck: bool) -> None:
        self.number, self.query_id, self.query, self.asked, self.stuck = number, query_id, query, asked, stuck
        self.status = 0
        self.format = ""
        self.hits = 0
        self.dropped = 0
        self.controls: List[Any] = []
        self.errors: List[str] = []
        self.last_seq = 0
        self.out_of_order = 0
        self.bad_lines = 0
        self.ended = False
        self.closed = False
        self.last_data = 0.0
        self.pending = b""
        self.sse_event: Optional[bytes] = None
        self.sse_data: List[bytes] = []

    def feed(self, body: bytes, now: float, latencies: array, boundary: bool) -> None:
        """Parse the body bytes that arrived at ``now``; record each hit's latency.

        ``boundary`` says the bytes end one of the server's writes (an HTTP chunk).  In the
        json format a hit is not followed by a newline until the next hit comes (``,\\n``
        precedes it), so a record still pending at a write's end is complete then.
        """
        lines = (self.pending + body).split(b"\n") if self.pending else body.split(b"\n")
        self.pending = lines.pop()
        if self.format == "sse":
            for line in lines:
                self._sse_line(line.rstrip(b"\r"), now, latencies)
            return
        if boundary and self.format == "json" and self.pending.rstrip().endswith(b"}"):
            lines.append(self.pending)
            self.pending = b""
        for line in lines:
            line = line.strip().rstrip(b",")
            if not line:
                continue  # heartbeat, or the separator before the next hit
            if line.startswith(b'{"_estrom"'):
                self._control(line.rstrip(b","))
            elif line.startswith(b'{"subscription_id"'):
                pass  # the json format's opening line
            elif line.startswith(b"]}"):
                self.ended = True
            else:
                self._hit(line, now, latencies)

    def _sse_line(self, line: bytes, now: float, latencies: array) -> None:
        if not line:  # blank line: dispatch the event
            data, event = b"\n".join(self.sse_data), self.sse_event
            self.sse_data, self.sse_event = [], None
            if not data:
                return
            if event in (None, b"message", b"hit"):
                self._hit(data, now, latencies)
            elif event != b"subscription":
                self._control(data)
            return
        if line.startswith(b":"):
            return  # comment: heartbeat
        name, _, value = line.partition(b":")
        value = value[1:] if value.startswith(b" ") else value
        if name == b"data":
            self.sse_data.append(value)
        elif name == b"event":
            self.sse_event = value
        # id: and retry: need nothing here: the hit carries its _seq

    def _hit(self, record: bytes, now: float, latencies: array) -> None:
        sent = SENT.search(record)
        if sent is None:
            self.bad_lines += 1
            if len(self.errors) < 3:
                self.errors.append("unparsed record: " + record[:120].decode("utf-8", "replace"))
            return
        self.hits += 1
        at = float(sent.group(1))
        latencies.append(at)
        latencies.append((now - at) * 1000.0)
        seq = SEQ.search(record)
        if seq is not None:
            value = int(seq.group(1))
            if value <= self.last_seq:
                self.out_of_order += 1
            self.last_seq = value

    def _control(self, record: bytes) -> None:
        try:
            control = json.loads(record)["_estrom"]
        except (ValueError, KeyError, TypeError):
            self.bad_lines += 1
            return
        if "dropped" in control:
            self.dropped += int(control["dropped"])
        elif "subscription_id" in control:
            pass  # an opening record (ndjson), nothing to count
        else:
            if "end" in control:
                self.ended = True
            if len(self.controls) < 5:
                self.controls.append(control)

    def summary(self) -> Dict[str, Any]:
        """What the orchestrator needs of this tail."""
        return {"number": self.number, "query_id": self.query_id, "stuck": self.stuck, "asked": self.asked,
                "format": self.format, "status": self.status, "hits": self.hits, "dropped": self.dropped,
                "controls": self.controls, "errors": self.errors, "out_of_order": self.out_of_order,
                "bad_lines": self.bad_lines, "ended": self.ended, "closed": self.closed}


class TailProtocol(asyncio.Protocol):
    """The socket side of one tail: the response header, then the (chunked) body into the Tail."""

    def __init__(self, tail: Tail, request: bytes, latencies: array, header: "asyncio.Future[None]") -> None:
        self.tail, self.request, self.latencies, self.header_seen = tail, request, latencies, header
        self.head = b""
        self.dechunker: Optional[Dechunker] = None
        self.in_body = False
        self.transport: Optional[asyncio.Transport] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.tail.last_data = now
        if not self.in_body:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            data = self.head[end + 4:]
            self._header(self.head[:end])
            self.head = b""
        # Unchunked (not what Twisted sends to HTTP/1.1): every read is taken as a write's end.
        pieces = self.dechunker.feed(data) if self.dechunker is not None else [(data, True)]
        if self.tail.status != 200:
            if len(self.tail.errors) < 3:
                body = b"".join(piece for piece, _ in pieces)
                self.tail.errors.append(f"HTTP {self.tail.status}: " + body[:200].decode("utf-8", "replace"))
            return
        for piece, boundary in pieces:
            self.tail.feed(piece, now, self.latencies, boundary)

    def _header(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        self.tail.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        self.tail.format = format_of(headers.get(b"content-type", b""))
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            self.dechunker = Dechunker()
        self.in_body = True
        if self.tail.stuck and self.transport is not None:
            self.transport.pause_reading()  # from now on it never reads (until the drain)
        if not self.header_seen.done():
            self.header_seen.set_result(None)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.tail.closed = True
        if not self.header_seen.done():
            self.header_seen.set_result(None)


def request_bytes(base: str, index: str, query: str, fmt: str) -> Tuple[str, int, bytes]:
    """Host, port and the raw GET of one tail (format=json is left implicit: it is the default)."""
    url = urlsplit(base)
    params = {"i": index, "q": query}
    if fmt != "json":
        params["format"] = fmt
    host = url.hostname or "127.0.0.1"
    port = url.port or 80
    request = (f"GET /api/v0.1/docs?{urlencode(params)} HTTP/1.1\r\nHost: {host}:{port}\r\n"
               f"User-Agent: estrom-bench\r\n\r\n").encode()
    return host, port, request


class Worker:
    """Every tail of one worker process."""

    def __init__(self, spec: Dict[str, Any]) -> None:
        self.spec = spec
        self.latencies = array("d")
        self.stuck_latencies = array("d")  # a stuck client's hits wait for the drain: kept apart
        self.tails: List[Tail] = []
        self.protocols: List[TailProtocol] = []

    async def open(self, tail: Tail, gate: asyncio.Semaphore) -> None:
        """Connect one tail and wait for its response header (stuck ones get a small receive buffer)."""
        loop = asyncio.get_running_loop()
        host, port, request = request_bytes(self.spec["base"], self.spec["index"], tail.query, tail.asked)
        header: asyncio.Future[None] = loop.create_future()
        async with gate:
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                if tail.stuck:  # before connect, so the advertised window is small from the start
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, int(self.spec.get("rcvbuf", 4096)))
                sock.setblocking(False)
                await loop.sock_connect(sock, (host, port))
                _, protocol = await loop.create_connection(
                    lambda: TailProtocol(tail, request, self.stuck_latencies if tail.stuck else self.latencies, header),
                    sock=sock)
                self.protocols.append(protocol)  # type: ignore[arg-type]
                await asyncio.wait_for(header, 60)
            except (OSError, asyncio.TimeoutError) as e:
                tail.errors.append(f"open: {e!r}")

    async def run(self) -> None:
        """Open, report progress, drain on request, report the result."""
        number = 0
        for stuck, key in ((False, "tails"), (True, "stuck")):
            for query_id, query, fmt in self.spec[key]:
                self.tails.append(Tail(number, query_id, query, fmt, stuck))
                number += 1
        gate = asyncio.Semaphore(OPEN_AT_ONCE)
        await asyncio.gather(*(self.open(t, gate) for t in self.tails))
        failed = sum(1 for t in self.tails if t.status != 200 or t.closed)
        print(f"ready {len(self.tails) - failed} {failed}", flush=True)
        loop = asyncio.get_running_loop()
        drain = loop.create_future()
        loop.add_reader(sys.stdin.fileno(), lambda: self._command(drain))
        while not drain.done():
            print(f"progress {sum(t.hits for t in self.tails if not t.stuck)}", flush=True)
            await asyncio.wait([drain], timeout=0.5)
        await self.drain()
        with open(self.spec["latencies"], "wb") as out:
            self.latencies.tofile(out)
        print("result " + json.dumps([t.summary() for t in self.tails]), flush=True)
        for p in self.protocols:
            if p.transport is not None:
                p.transport.close()

    def _command(self, drain: "asyncio.Future[None]") -> None:
        line = sys.stdin.readline()
        if (not line or line.strip() == "drain") and not drain.done():
            drain.set_result(None)

    async def drain(self) -> None:
        """Let the stuck clients read what the Tailor kept for them, until they go quiet."""
        started = time.time()
        for p in self.protocols:
            if p.tail.stuck and p.transport is not None and not p.tail.closed:
                p.tail.last_data = started
                p.transport.resume_reading()
        stuck = [t for t in self.tails if t.stuck]
        while stuck and time.time() - started < DRAIN_MAX_S:
            if all(t.closed or time.time() - t.last_data > QUIET_S for t in stuck):
                break
            await asyncio.sleep(0.2)


def raise_file_limit() -> None:
    """Allow as many open sockets as the hard limit permits (a thousand tails need more than 1024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))


def main(path: str) -> None:
    """Run one worker from its spec file."""
    raise_file_limit()
    with open(path) as f:
        spec = json.load(f)
    asyncio.run(Worker(spec).run())


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])
