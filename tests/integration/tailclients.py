"""Real tail clients for the integration tests: parsers for the three formats, a stuck client, documents to post.

Everything here talks to a real ``estrom up`` through real sockets; nothing is
mocked.  Every read is bounded by a deadline and fails with a message instead
of hanging.  Process probes and waits are in ``tests.integration.processes``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional
from urllib.parse import urlencode

from tailor.cursor import parse_cursor
from tests.integration.conftest import ROOT, Estrom

RECENTCHANGE = ROOT / "examples" / "recentchange.ndjson"
DOCS_PATH = "/api/v0.1/docs"

Record = Dict[str, Any]
"""A parsed element of a tail: a hit (``_seq``, ``_source``...) or a Tailor record (``{"_estrom": {...}}``)."""


# --- the three formats, parsed incrementally ----------------------------------------------------


class JsonTailParser:
    """The default format: ``{"subscription_id": ..., "hits": [`` then one element per line, then ``]}``.

    Hits are compact JSON (never a raw newline), elements are separated by
    ``,\\n`` and heartbeats are blank lines, so a line-wise parser is exact.
    """

    def __init__(self) -> None:
        self.buffer = b""
        self.header: Optional[str] = None
        self.records: List[Record] = []
        self.ended = False

    def feed(self, data: bytes) -> List[Record]:
        """Take the next bytes; return the elements completed by them."""
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        new: List[Record] = []
        for raw in lines:
            line = raw.strip().strip(b",").strip()
            if not line:
                continue
            if self.header is None:
                assert line.startswith(b'{"subscription_id": ') and line.endswith(b'"hits": ['), line[:200]
                self.header = line.decode()
                continue
            if line == b"]}":
                self.ended = True
                continue
            assert not self.ended, f"bytes after the footer: {line[:200]!r}"
            new.append(json.loads(line))
        # The newest element's line ends only with the next separator: take it once it is complete JSON
        # (a prefix of an object never is).
        rest = self.buffer.strip().lstrip(b",").strip()
        if self.header is not None and rest.startswith(b"{"):
            try:
                new.append(json.loads(rest))
                self.buffer = b""
            except ValueError:
                pass
        self.records.extend(new)
        return new

    @property
    def subscription_id(self) -> Optional[str]:
        """The id named by the header, once it arrived."""
        return json.loads(self.header + "]}")["subscription_id"] if self.header else None


class NdjsonParser:
    """``format=ndjson``: one JSON value per line, a first line naming the subscription, blank heartbeats."""

    def __init__(self) -> None:
        self.buffer = b""
        self.header: Optional[Record] = None
        self.records: List[Record] = []
        self.ended = False

    def feed(self, data: bytes) -> List[Record]:
        """Take the next bytes; return the values completed by them."""
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        new: List[Record] = []
        for line in lines:
            if not line.strip():
                continue
            value = json.loads(line)
            if self.header is None:
                assert "subscription_id" in value.get("_estrom", {}), value
                self.header = value
                continue
            new.append(value)
            if "end" in value.get("_estrom", {}):
                self.ended = True
        self.records.extend(new)
        return new

    @property
    def subscription_id(self) -> Optional[str]:
        """The id named by the first line, once it arrived."""
        return self.header["_estrom"]["subscription_id"] if self.header else None


class SseEvent:
    """One Server-Sent Event as a browser's EventSource would see it."""

    def __init__(self, event: str, data: str, event_id: Optional[str]) -> None:
        self.event = event
        self.data = data
        self.id = event_id

    def json(self) -> Any:
        """The event's data, decoded."""
        return json.loads(self.data)

    def __repr__(self) -> str:
        return f"SseEvent({self.event!r}, id={self.id!r}, data={self.data[:80]!r})"


class SseParser:
    """A small ``text/event-stream`` parser (the WHATWG rules we need: fields, comments, blank-line dispatch)."""

    def __init__(self) -> None:
        self.buffer = b""
        self.events: List[SseEvent] = []
        self.retry: Optional[int] = None
        self.comments = 0
        self.last_event_id: Optional[str] = None
        self._event = ""
        self._data: List[str] = []
        self._id: Optional[str] = None
        self.header: Optional[Record] = None
        self.records: List[Record] = []
        self.ended = False

    def feed(self, data: bytes) -> List[Record]:
        """Take the next bytes; return the records (hit or ``_estrom``) of the events they completed."""
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        new: List[Record] = []
        for raw in lines:
            line = raw.decode().rstrip("\r")
            if line == "":
                event = self._dispatch()
                if event is not None:
                    new.extend(self._record(event))
                continue
            if line.startswith(":"):
                self.comments += 1
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                self._event = value
            elif name == "data":
                self._data.append(value)
            elif name == "id":
                self._id = value
            elif name == "retry":
                self.retry = int(value)
        self.records.extend(new)
        return new

    def _dispatch(self) -> Optional[SseEvent]:
        if self._id is not None:
            self.last_event_id = self._id
        if not self._data:
            self._event, self._id = "", None
            return None
        event = SseEvent(self._event or "message", "\n".join(self._data), self._id)
        self._event, self._data, self._id = "", [], None
        self.events.append(event)
        return event

    def _record(self, event: SseEvent) -> List[Record]:
        value = event.json()
        if event.event == "subscription":
            self.header = value
            return []
        if event.event == "message":
            # The id is the tail's cursor after this hit: it names the hit's Beater at the hit's seq.
            assert "_estrom" not in value and parse_cursor(event.id or "").seqs.get(value["_beater"]) == value["_seq"], event
        else:
            assert set(value) == {"_estrom"}, event
            if event.event == "end":
                self.ended = True
        return [value]

    @property
    def subscription_id(self) -> Optional[str]:
        """The id named by the ``subscription`` event, once it arrived."""
        return self.header["_estrom"]["subscription_id"] if self.header else None


PARSERS = {"json": JsonTailParser, "ndjson": NdjsonParser, "sse": SseParser}


def hits_of(records: Iterable[Record]) -> List[Record]:
    """The hits among ``records`` (not the Tailor's own records)."""
    return [r for r in records if "_estrom" not in r]


def controls_of(records: Iterable[Record], kind: Optional[str] = None) -> List[Dict[str, Any]]:
    """The bodies of the Tailor's records (``{"dropped": 3, ...}``), those with key ``kind`` if given."""
    bodies = [r["_estrom"] for r in records if "_estrom" in r]
    return [b for b in bodies if kind is None or kind in b]


def accounted_for(records: Iterable[Record]) -> int:
    """Hits received plus hits the Tailor said it dropped."""
    records = list(records)
    return len(hits_of(records)) + sum(b["dropped"] for b in controls_of(records, "dropped"))


def seqs_of(records: Iterable[Record]) -> List[int]:
    """The event ids (``_seq``) of the hits among ``records``, in the order received."""
    return [r["_seq"] for r in hits_of(records)]


# --- clients --------------------------------------------------------------------------------------


def docs_url(params: Dict[str, Any]) -> str:
    """The path and query of a tail request."""
    return DOCS_PATH + "?" + urlencode(params)


class HttpStream:
    """HTTP/1.1 over a raw socket: the status and headers, then the body as it arrives (chunked or not).

    ``http.client`` cannot read again after a socket timeout; a tail client must be able to
    wait a little, give up, and wait again, so this decodes the response itself.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.status = 0
        self.headers: Dict[str, str] = {}
        self.eof = False
        self._chunked = False
        self._length: Optional[int] = None
        self._chunk_left = 0
        self._need_crlf = False

    def _recv(self, timeout: float) -> bool:
        """Receive more bytes; False if none came within ``timeout``."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        if not data:
            self.eof = True
        self.buffer += data
        return True

    def read_head(self, timeout: float) -> None:
        """Read the status line and headers."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buffer:
            assert not self.eof, f"connection closed before the response head: {self.buffer[:300]!r}"
            left = deadline - time.monotonic()
            assert left > 0, f"no response head within {timeout:.0f} s"
            self._recv(left)
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        for line in lines:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self._chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        if not self._chunked and "content-length" in self.headers:
            self._length = int(self.headers["content-length"])
        self.eof = False
        if self._length == 0:
            self.eof = True

    def read_body(self, timeout: float) -> bytes:
        """The next body bytes that arrive within ``timeout`` (b"" if none came or at the end)."""
        out = self._decode()
        if out or self.eof:
            return out
        if self._recv(timeout):
            if self.eof and not self.buffer:
                return b""
            return self._decode()
        return b""

    def _decode(self) -> bytes:
        out: List[bytes] = []
        if not self._chunked:
            take = self.buffer if self._length is None else self.buffer[: self._length]
            self.buffer = self.buffer[len(take):]
            if self._length is not None:
                self._length -= len(take)
                self.eof = self.eof or self._length == 0
            return take
        while not self.eof:
            if self._chunk_left == 0:
                if self._need_crlf:
                    if len(self.buffer) < 2:
                        break
                    assert self.buffer[:2] == b"\r\n", self.buffer[:50]
                    self.buffer = self.buffer[2:]
                    self._need_crlf = False
                line_end = self.buffer.find(b"\r\n")
                if line_end < 0:
                    break
                size = int(self.buffer[:line_end].split(b";")[0], 16)
                self.buffer = self.buffer[line_end + 2:]
                if size == 0:
                    self.eof = True
                    break
                self._chunk_left = size
            take = self.buffer[: self._chunk_left]
            if not take:
                break
            out.append(take)
            self.buffer = self.buffer[len(take):]
            self._chunk_left -= len(take)
            self._need_crlf = self._chunk_left == 0
        return b"".join(out)


def request_bytes(method: str, target: str, port: int, headers: Optional[Dict[str, str]] = None) -> bytes:
    """An HTTP/1.1 request head."""
    head = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode()


def connect(port: int, source: Optional[str] = None, rcvbuf: Optional[int] = None) -> socket.socket:
    """A TCP connection to the Tailor on loopback, optionally from another loopback address."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        # Before connect, so the advertised window is small from the handshake on.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if source is not None:
        sock.bind((source, 0))
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    return sock


class TailClient:
    """An HTTP tail over a raw socket: status, headers, and its records parsed as they arrive."""

    def __init__(self, stream: HttpStream, fmt: str, timeout: float = 30.0) -> None:
        self.stream = stream
        self.format = fmt
        stream.read_head(timeout)
        self.parser = PARSERS[fmt]()
        self.raw = b""  # an error body
        self.chunks: List[bytes] = []  # a stream's body, as received
        self.received = 0

    @classmethod
    def get(cls, port: int, params: Dict[str, Any], headers: Optional[Dict[str, str]] = None,
            fmt: Optional[str] = None, source: Optional[str] = None) -> "TailClient":
        """Send ``GET /api/v0.1/docs?<params>`` and read the response head."""
        sock = connect(port, source)
        sock.sendall(request_bytes("GET", docs_url(params), port, headers))
        requested = str(params.get("format", "json"))
        return cls(HttpStream(sock), fmt or (requested if requested in PARSERS else "json"))

    @property
    def status(self) -> int:
        """HTTP status of the answer."""
        return self.stream.status

    @property
    def headers(self) -> Dict[str, str]:
        """Response headers, lower-case names."""
        return self.stream.headers

    @property
    def eof(self) -> bool:
        """Whether the response has ended."""
        return self.stream.eof

    @property
    def records(self) -> List[Record]:
        """Every element received so far."""
        return self.parser.records

    @property
    def body(self) -> bytes:
        """The stream's body received so far."""
        return b"".join(self.chunks)

    def body_json(self, timeout: float = 20.0) -> Any:
        """The whole (error) body as JSON."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            assert left > 0, f"the body did not end within {timeout:.0f} s: {self.raw[:300]!r}"
            self.raw += self.stream.read_body(left)
        return json.loads(self.raw)

    def read_some(self, timeout: float = 1.0) -> List[Record]:
        """Whatever arrives within ``timeout``; return the records it completed."""
        chunk = self.stream.read_body(timeout)
        if not chunk:
            return []
        self.received += len(chunk)
        self.chunks.append(chunk)
        return self.parser.feed(chunk)

    def read_until(self, done: Callable[["TailClient"], bool], timeout: float = 20.0, what: str = "records") -> "TailClient":
        """Read until ``done(self)`` holds; fail after ``timeout`` seconds or at an early end of the stream."""
        deadline = time.monotonic() + timeout
        while not done(self):
            left = deadline - time.monotonic()
            if left <= 0 or self.eof:
                raise AssertionError(f"{what}: not received within {timeout:.0f} s (eof={self.eof}); "
                                     f"got {len(self.records)} records, last {self.records[-3:]}")
            self.read_some(min(left, 1.0))
        return self

    def read_hits(self, count: int, timeout: float = 20.0) -> List[Record]:
        """Read until at least ``count`` hits arrived; return the hits."""
        self.read_until(lambda c: len(hits_of(c.records)) >= count, timeout, f"{count} hits")
        return hits_of(self.records)

    def read_to_end(self, timeout: float = 20.0) -> List[Record]:
        """Read until the server ends the response; return all records."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            assert left > 0, f"the stream did not end within {timeout:.0f} s; last {self.records[-3:]}"
            self.read_some(min(left, 1.0))
        return self.records

    def close(self) -> None:
        """Go away mid-stream, as a client that loses its connection does."""
        self.stream.sock.close()


def open_tail(instance: Estrom, fmt: str = "json", headers: Optional[Dict[str, str]] = None, **params: Any) -> TailClient:
    """Open a tail on ``instance`` in ``fmt``, check the 200 and wait for its header (the subscription is live)."""
    if fmt != "json":
        params["format"] = fmt
    client = TailClient.get(instance.tailor_port, params, headers, fmt)
    assert client.status == 200, (client.status, client.body_json())
    client.read_until(lambda c: c.parser.header is not None, what="the header")
    return client


class ReaderThread:
    """A client that reads its tail as fast as it can in a thread, until it has ``expected`` hits or the end."""

    def __init__(self, client: TailClient) -> None:
        self.client = client
        self.expected: Optional[int] = None
        self.error: Optional[BaseException] = None
        self.reset = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self.client.eof and not self._stop.is_set():
                if self.expected is not None and accounted_for(self.client.records) >= self.expected:
                    return
                self.client.read_some(0.5)
        except (ConnectionResetError, BrokenPipeError):
            self.reset = True  # the server's end went away (a killed Tailor): the client has what it has
        except BaseException as e:  # reported by join
            self.error = e

    def join(self, expected: int, timeout: float) -> List[Record]:
        """Wait (bounded) until ``expected`` hits have arrived or been reported dropped; return every record."""
        self.expected = expected
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        got = accounted_for(self.client.records)
        self._stop.set()
        assert not self._thread.is_alive() or got >= expected, (
            f"the reading client got {len(hits_of(self.client.records))} of {expected} hits within {timeout:.0f} s; "
            f"its records other than hits: {controls_of(self.client.records)[:5]}")
        self._thread.join(5)
        return self.client.records

    @property
    def running(self) -> bool:
        """Whether it is still reading."""
        return self._thread.is_alive()

    def stop(self) -> List[Record]:
        """Stop reading; return every record received."""
        self._stop.set()
        self._thread.join(5)
        if self.error is not None:
            raise self.error
        return self.client.records


class StuckClient:
    """A client that sends its GET and then never reads: a raw socket with a 4 KiB receive buffer.

    ``wake()`` later turns it into a reader (as a client that wakes up would).
    """

    def __init__(self, port: int, params: Dict[str, Any], headers: Optional[Dict[str, str]] = None) -> None:
        self.sock = connect(port, rcvbuf=4096)
        self.sock.sendall(request_bytes("GET", docs_url(params), port, headers))
        self.fmt = str(params.get("format", "json"))

    def wake(self, timeout: float = 30.0) -> TailClient:
        """Start reading: the response over the same socket, parsed like any tail."""
        return TailClient(HttpStream(self.sock), self.fmt, timeout)

    def close(self) -> None:
        """Drop the connection."""
        self.sock.close()


# --- documents ------------------------------------------------------------------------------------


def recentchange_lines() -> List[bytes]:
    """The example Wikimedia recent changes, one NDJSON line each."""
    return [line for line in RECENTCHANGE.read_bytes().splitlines() if line.strip()]


def post_ndjson(instance: Estrom, index: str, lines: List[bytes], chunk: int = 500) -> int:
    """POST ``lines`` to the Beater in NDJSON bodies of ``chunk`` lines; return how many were accepted."""
    accepted = 0
    for start in range(0, len(lines), chunk):
        status, answer = instance.post(index, b"\n".join(lines[start:start + chunk]) + b"\n", "application/x-ndjson")
        assert status == 200 and not answer["errors"], (status, answer)
        accepted += answer["accepted"]
    return accepted


def post_docs(instance: Estrom, index: str, docs: List[Dict[str, Any]]) -> None:
    """POST ``docs`` as one JSON array; all must be accepted."""
    status, answer = instance.post(index, docs)
    assert status == 200 and answer["accepted"] == len(docs), (status, answer)
