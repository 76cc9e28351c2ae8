"""Fuzz a running `estrom up` over HTTP and WAMP with generated bad inputs, interleaved with good documents.

    python bench/fuzz.py --inputs 100000            # the full run
    python bench/fuzz.py --inputs 3000 --seed 7     # what the smoke test runs

It starts its own `estrom up` on free ports (bench/estrom_up.py), opens an NDJSON tail on
``i=fuzzgood&q=fuzz_marker:<marker>`` and a WAMP subscription to the same topic, then sends
``--inputs`` bad inputs drawn by the hypothesis strategies of bench/fuzz_inputs.py from
``--seed`` (the same seed gives the same inputs), over ``--connections`` HTTP connections and
``--wamp-sessions`` anonymous WAMP sessions at a time.  Among them go good documents carrying
the marker (alone, and inside the NDJSON and array bodies of bad ones) and good registrations
(``estrom.register`` over WAMP, ``q=`` tails over HTTP) that must succeed.

Every answer must come within ``--bound-s`` (default 10 s: the header of a tail, the whole
answer of anything else, the result of a WAMP call); later ones are hangs.  At the end it waits
until the tail has every good document the Beater accepted (200, not in its ``errors``), or until
nothing has come for ``--settle-s``, and counts the lost ones.  The processes are watched: every
descendant of `estrom up` (router, Crossbar's worker, Beater, Tailor) must still be the same
process at the end, and the log must hold no "restarting" line.

It prints progress, then samples of every finding (a 5xx, a hang, a WAMP internal error, a good
document refused or lost, a restart, log errors; each raw request saved under
``<data dir>/findings/``), then one line of ``key=value`` figures: ``inputs``, ``requests``,
``s2xx`` .. ``s5xx`` and ``closed`` (HTTP answers; ``closed``: the connection ended with no status
line), ``w_ok``, ``w_refused``, ``w_internal`` (WAMP), ``hangs``, ``restarts``, ``log_errors``,
``good_sent``, ``good_delivered``, ``lost``, ``wamp_delivered``, ``good_refused``,
``good_reg_failed``, ``non_json_4xx``, ``max_answer_ms``, ``seconds``, ``seed``; its exit code is 1
when any of 5xx, WAMP internal errors, hangs, restarts or lost is not 0.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.estrom_up import EstromUp, http_status  # noqa: E402
from bench.fuzz_client import Answer, descendants, exchange, log_findings, short  # noqa: E402
from bench.fuzz_inputs import (GOOD_INDEX, Big, Good, HttpInput, Input, WampInput, build_http, draw_inputs, expand,  # noqa: E402
                               wamp_value)  # noqa: E402

CHUNK = 500  # inputs drawn per hypothesis round (in a process of its own, ahead of the senders)
SAMPLES = 5  # findings shown per kind


class Report:
    """Every count of the run and a few samples of each kind of finding."""

    def __init__(self, findings_dir: Path) -> None:
        self.status: Counter = Counter()  # "200", "400", ..., "closed"
        self.by_category: Dict[str, Counter] = defaultdict(Counter)
        self.wamp: Counter = Counter()  # ok, refused, internal
        self.wamp_errors: Counter = Counter()  # error URI -> count
        self.findings: Dict[str, List[str]] = defaultdict(list)
        self.finding_counts: Counter = Counter()
        self.findings_dir = findings_dir
        self.inputs = 0
        self.requests = 0
        self.hangs = 0
        self.max_answer_ms = 0.0
        self.good_sent: Set[int] = set()
        self.good_refused = 0
        self.good_reg_failed = 0
        self.non_json_4xx = 0

    def finding(self, kind: str, text: str, raw: Optional[bytes] = None) -> None:
        """Count a finding of ``kind``; keep its first few samples (and their raw requests on disk)."""
        self.finding_counts[kind] += 1
        if len(self.findings[kind]) < SAMPLES:
            if raw is not None:
                self.findings_dir.mkdir(parents=True, exist_ok=True)
                path = self.findings_dir / f"{kind}-{self.finding_counts[kind]}.bin"
                path.write_bytes(raw)
                text += f"\n      raw request: {path} ({len(raw)} bytes): {raw[:240]!r}"
            self.findings[kind].append(text)

    def answered(self, ms: float) -> None:
        """One answer came after ``ms``."""
        self.max_answer_ms = max(self.max_answer_ms, ms)


def good_doc(marker: str, n: int) -> bytes:
    """The JSON of good document number ``n``."""
    return json.dumps({"fuzz_marker": marker, "good_n": n, "msg": f"good document {n}"}).encode()


class Fuzzer:
    """Sends the inputs and good documents to one `estrom up` and fills a Report."""

    def __init__(self, up: EstromUp, args: argparse.Namespace) -> None:
        self.up = up
        self.args = args
        self.marker = f"fzmark{args.seed}"
        self.report = Report(up.data_dir / "findings")
        self.next_good = 0
        self.delivered: Set[int] = set()
        self.wamp_delivered: Set[int] = set()
        self.last_delivery = time.monotonic()
        self.good_topic = ""
        self.tail_task: Optional[asyncio.Task] = None

    # --- the good side -------------------------------------------------------------------------

    def take_good(self) -> Tuple[int, bytes]:
        """The number and JSON of the next good document."""
        n = self.next_good
        self.next_good += 1
        return n, good_doc(self.marker, n)

    async def read_tail(self) -> None:
        """Keep an NDJSON tail of the good documents open; reopen it (from where it was) if it ends."""
        cursor = f"@{int(time.time() * 1000)}"
        seqs: Dict[str, int] = {}
        first = True
        while True:
            since = cursor + "".join(f",{b}:{s}" for b, s in seqs.items())
            query = f"i={GOOD_INDEX}&q={quote('fuzz_marker:' + self.marker)}&format=ndjson"
            if not first:  # reopened: resume where it was, so nothing in between is missed
                query += f"&since={quote(since)}"
            first = False
            reader, writer = await asyncio.open_connection("127.0.0.1", self.up.tailor_port, limit=2 ** 22)
            writer.write(f"GET /api/v0.1/docs?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            if b" 200 " not in head.split(b"\r\n")[0]:
                raise SystemExit(f"the good tail did not open: {head!r}")
            buffer = b""
            try:
                while True:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        break
                    buffer += await reader.readexactly(size)
                    await reader.readexactly(2)
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if not line.strip():
                            continue
                        hit = json.loads(line)
                        source = hit.get("_source") if isinstance(hit, dict) else None
                        if isinstance(source, dict) and source.get("fuzz_marker") == self.marker:
                            self.delivered.add(source["good_n"])
                            self.last_delivery = time.monotonic()
                            seqs[hit["_beater"]] = hit["_seq"]
                        elif isinstance(hit, dict) and "_estrom" in hit and "subscription_id" not in hit:
                            if any(k in hit["_estrom"] for k in ("dropped", "gap", "error", "end")):
                                self.report.finding("good_tail_record", f"the good tail said {hit['_estrom']}")
            except (asyncio.IncompleteReadError, ConnectionError) as e:
                self.report.finding("good_tail_ended", f"the good tail broke: {type(e).__name__}")
            else:
                self.report.finding("good_tail_ended", "the good tail ended")
            writer.close()
            await asyncio.sleep(0.5)

    async def post_good(self) -> None:
        """POST one good document alone; it must be accepted."""
        n, doc = self.take_good()
        data = (f"POST /api/v0.1/beat/{GOOD_INDEX} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Connection: close\r\nContent-Length: {len(doc)}\r\n\r\n").encode() + doc
        answer = await exchange(self.up.beater_port, data, False, self.args.bound_s, False)
        self.count_http("good_post", answer, data)
        if answer.status == 200:
            self.report.good_sent.add(n)
        else:
            self.report.good_refused += 1
            self.report.finding("good_refused", f"good_post: {answer.status} {answer.body[:300]!r}", data)

    async def tail_good(self) -> None:
        """Open (and close) a good q= tail; it must open."""
        self.report.requests += 1
        n = self.next_good
        q = quote(f"fuzz_marker:{self.marker} AND good_n:{n}")
        data = f"GET /api/v0.1/docs?i={GOOD_INDEX}&q={q}&format=sse HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        answer = await exchange(self.up.tailor_port, data, False, self.args.bound_s, True)
        self.count_http("good_tail", answer, data)
        if answer.status != 200 or b"x-estrom-subscription-id" not in answer.headers:
            self.report.good_reg_failed += 1
            self.report.finding("good_registration_failed", f"good tail: {answer.status} {answer.body[:300]!r}", data)

    # --- counting ------------------------------------------------------------------------------

    def count_http(self, category: str, answer: Answer, raw: bytes) -> None:
        """Count one HTTP answer and note what is wrong with it."""
        report = self.report
        report.requests += 1
        if answer.timed_out:
            report.hangs += 1
            report.by_category[category]["hang"] += 1
            report.finding("hang", f"{category}: no answer within {self.args.bound_s} s", raw)
            return
        report.answered(answer.ms)
        key = str(answer.status) if answer.status else "closed"
        report.status[key] += 1
        report.by_category[category][key] += 1
        if answer.status >= 500:
            report.finding(f"http_{answer.status}", f"{category}: {answer.status} after {answer.ms:.0f} ms: "
                                                      f"{answer.body[:400]!r}", raw)
        elif answer.status == 0 and category != "http_garbage":
            report.finding("closed_without_answer", f"{category}: {answer.error}", raw)
        elif 400 <= answer.status < 500 and category != "http_garbage" and not raw.startswith(b"HEAD "):
            try:
                body = json.loads(answer.body)
                # an error names its problem; an ingest answer that accepted nothing lists its items' errors
                ok = isinstance(body, dict) and (isinstance(body.get("error"), str) or bool(body.get("errors")))
            except ValueError:
                ok = False
            if not ok:
                report.non_json_4xx += 1
                report.finding("non_json_4xx", f"{category}: {answer.status} {answer.body[:200]!r}", raw)

    async def send_http(self, item: HttpInput) -> None:
        """Send one bad HTTP input, with its good documents filled in; check the good ones were taken."""
        goods: List[Tuple[int, int]] = []  # (good_n, its line (NDJSON, 1-based) or item (array, 0-based))
        if item.goods:
            body, items = b"", 0
            for part in item.body:
                if isinstance(part, Good):
                    n, doc = self.take_good()
                    goods.append((n, body.count(b"\n") + 1 if item.goods == "line" else items))
                    part = doc
                elif isinstance(part, Big):
                    part = expand(part)
                elif part == b",":
                    items += 1
                body += part
            item = HttpInput(item.category, item.port, item.method, item.target, item.headers, [body], "", item.chunked)
        data = build_http(item, lambda: self.take_good()[1])
        port = self.up.beater_port if item.port == "beater" else self.up.tailor_port
        stream = item.port == "tailor" and data.split(b" ", 2)[1:2] and data.split(b" ", 2)[1].startswith(b"/api/v0.1/docs")
        answer = await exchange(port, data, item.method == b"HEAD", self.args.bound_s, bool(stream))
        self.count_http(item.category, answer, data)
        if not goods:
            return
        refused: Dict[int, str] = {}
        if answer.status == 200:
            try:
                errors = json.loads(answer.body).get("errors", [])
            except ValueError:
                errors = []
            for error in errors:
                pos = error.get("line", error.get("item"))
                refused[pos] = error.get("message", "")
            for n, pos in goods:
                if pos in refused:
                    self.report.good_refused += 1
                    self.report.finding("good_refused", f"{item.category}: good document at {pos} refused: {refused[pos]}", data)
                else:
                    self.report.good_sent.add(n)
        else:
            # a 503 that names retry_from delivered every document before that line or item
            retry = {}
            if answer.status == 503:
                try:
                    retry = json.loads(answer.body).get("retry_from") or {}
                except ValueError:
                    pass
            cut = retry.get("line", retry.get("item"))
            if isinstance(cut, int):
                self.report.good_sent.update(n for n, pos in goods if pos < cut)
                goods = [(n, pos) for n, pos in goods if pos >= cut]
            self.report.good_refused += len(goods)
            if not goods:
                return
            if answer.status in (400, 413):
                self.report.finding("good_refused_with_body", f"{item.category}: {answer.status} {answer.body[:300]!r}", data)
            else:
                self.report.finding("good_refused", f"{item.category}: {answer.status} {answer.body[:300]!r}", data)

    # --- WAMP ----------------------------------------------------------------------------------

    async def wamp_session(self) -> Any:
        """A joined anonymous session (JSON over WebSocket, as a browser would talk)."""
        import txaio
        from autobahn.asyncio.component import Component

        txaio.set_global_log_level("error")  # not a line per connection attempt

        joined: asyncio.Future = asyncio.get_running_loop().create_future()
        component = Component(transports=[{"url": f"ws://127.0.0.1:{self.up.router_port}/ws", "type": "websocket",
                                           "max_retries": 0, "serializers": ["json"]}], realm="estrom")

        @component.on_join
        def _joined(session: Any, details: Any) -> None:
            if not joined.done():
                joined.set_result(session)

        left: asyncio.Future = asyncio.get_running_loop().create_future()

        @component.on_leave
        def _left(session: Any, details: Any) -> None:
            if not left.done():
                left.set_result(f"{details.reason} {details.message or ''}".strip())

        component.start(asyncio.get_running_loop())
        session = await asyncio.wait_for(joined, 30)
        session.fuzz_left = left  # done, with the reason, once the router has closed the session
        return session

    async def wamp_worker(self, queue: "asyncio.Queue[Optional[WampInput]]") -> None:
        """Make the WAMP calls of ``queue`` on one session; a lost session is a finding, and replaced."""
        from autobahn.wamp.exception import ApplicationError

        session = await self.wamp_session()
        while True:
            item = await queue.get()
            if item is None:
                session.leave()
                return
            self.report.requests += 1
            args = wamp_value(item.args)
            kwargs = wamp_value(item.kwargs)
            start = time.monotonic()
            good = item.category == "good_register"
            try:
                call = asyncio.ensure_future(session.call(item.procedure, *args, **kwargs))
                # not wait_for: cancelling a call whose session is gone raises inside autobahn
                await asyncio.wait({call, session.fuzz_left}, timeout=self.args.bound_s, return_when=asyncio.FIRST_COMPLETED)
                if session.fuzz_left.done() and not call.done():
                    call.add_done_callback(lambda f: f.cancelled() or f.exception())
                    self.report.wamp["session_lost"] += 1
                    self.report.by_category[item.category]["w_session_lost"] += 1
                    self.report.finding("wamp_session_lost", f"{item.category}: {item.procedure}{tuple(args)!r:.400} {kwargs!r:.100}: "
                                                             f"the router closed the session ({session.fuzz_left.result()})")
                    session = await self.wamp_session()
                    continue
                if not call.done():
                    call.add_done_callback(lambda f: f.cancelled() or f.exception())
                    raise asyncio.TimeoutError()
                result = call.result()
            except asyncio.TimeoutError:
                self.report.hangs += 1
                self.report.by_category[item.category]["hang"] += 1
                self.report.finding("hang", f"WAMP {item.procedure}{tuple(args)!r:.300} {kwargs!r:.100}: no result within {self.args.bound_s} s")
                continue
            except ApplicationError as e:
                ms = (time.monotonic() - start) * 1000
                self.report.answered(ms)
                self.report.wamp_errors[e.error] += 1
                internal = e.error in ("wamp.error.runtime_error", "estrom.error.unavailable") or not e.error.startswith(("estrom.error.", "wamp.error."))
                kind = "internal" if internal else "refused"
                self.report.wamp[kind] += 1
                self.report.by_category[item.category]["w_" + kind] += 1
                if internal:
                    self.report.finding("wamp_internal", f"{item.category}: {item.procedure}{tuple(args)!r:.300} {kwargs!r:.100} -> "
                                                         f"{e.error} {e.args!r:.300}")
                if good:
                    self.report.good_reg_failed += 1
                    self.report.finding("good_registration_failed", f"WAMP {args!r}: {e.error} {e.args!r:.200}")
                continue
            except Exception as e:  # the client could not send it (serialization) or the session went away
                self.report.wamp["client_error"] += 1
                self.report.by_category[item.category]["w_client_error"] += 1
                self.report.finding("wamp_client_error", f"{item.category}: {item.procedure}{tuple(args)!r:.200}: {type(e).__name__}: {e!s:.200}")
                continue
            self.report.answered((time.monotonic() - start) * 1000)
            self.report.wamp["ok"] += 1
            self.report.by_category[item.category]["w_ok"] += 1
            if good and isinstance(result, dict) and "id" in result:
                looked = await asyncio.wait_for(session.call("estrom.lookup", result["id"]), self.args.bound_s)
                if looked.get("id") != result["id"]:
                    self.report.good_reg_failed += 1
                    self.report.finding("good_registration_failed", f"lookup of {result['id']} gave {looked!r:.200}")
            elif good:
                self.report.good_reg_failed += 1
                self.report.finding("good_registration_failed", f"WAMP {args!r} gave {result!r:.200}")

    async def subscribe_good(self) -> None:
        """Register the good query over WAMP and count the good documents its topic carries."""
        session = await self.wamp_session()
        registration = await session.call("estrom.register", GOOD_INDEX, f"fuzz_marker:{self.marker}")

        def on_hits(hits: List[Any], *rest: Any, **kw: Any) -> None:
            for hit in hits:
                source = hit.get("_source", {}) if isinstance(hit, dict) else {}
                if isinstance(source, dict) and source.get("fuzz_marker") == self.marker:
                    self.wamp_delivered.add(source["good_n"])

        await session.subscribe(on_hits, registration["topic"])
        self.good_topic = registration["topic"]

    # --- the run -------------------------------------------------------------------------------

    async def http_worker(self, queue: "asyncio.Queue[Any]") -> None:
        """Send the HTTP inputs of ``queue`` one at a time."""
        while True:
            item = await queue.get()
            if item is None:
                return
            if item == "good_post":
                await self.post_good()
            elif item == "good_tail":
                await self.tail_good()
            else:
                await self.send_http(item)

    async def run(self) -> None:
        """The whole fuzz run."""
        args = self.args
        self.tail_task = asyncio.ensure_future(self.read_tail())
        await self.subscribe_good()
        await asyncio.sleep(0.5)
        await self.post_good()  # fixes the good fields' mapping before any bad document could
        http_q: asyncio.Queue = asyncio.Queue(maxsize=args.connections * 4)
        wamp_q: asyncio.Queue = asyncio.Queue(maxsize=args.wamp_sessions * 4)
        http = [asyncio.ensure_future(self.http_worker(http_q)) for _ in range(args.connections)]
        wamp = [asyncio.ensure_future(self.wamp_worker(wamp_q)) for _ in range(args.wamp_sessions)]
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        last_progress = started
        with concurrent.futures.ProcessPoolExecutor(max_workers=1) as pool:
            chunks = [loop.run_in_executor(pool, draw_inputs, args.seed, start, min(CHUNK, args.inputs - start))
                      for start in range(0, min(args.inputs, 2 * CHUNK), CHUNK)]
            next_start = 2 * CHUNK
            sent = 0
            while chunks:
                items: List[Input] = await chunks.pop(0)
                if next_start < args.inputs:
                    chunks.append(loop.run_in_executor(pool, draw_inputs, args.seed, next_start, min(CHUNK, args.inputs - next_start)))
                    next_start += CHUNK
                for item in items:
                    for w in http + wamp:
                        if w.done():
                            w.result()  # a worker that died takes the run down with its traceback
                    if isinstance(item, WampInput):
                        await wamp_q.put(item)
                    else:
                        await http_q.put(item)
                    sent += 1
                    self.report.inputs = sent
                    if sent % args.good_every == 0:
                        await http_q.put("good_post")
                    if sent % (args.good_every * 10) == 0:
                        await http_q.put("good_tail")
                    if sent % (args.good_every * 10) == 5:
                        n = self.next_good
                        await wamp_q.put(WampInput("good_register", "estrom.register",
                                                   [GOOD_INDEX, f"fuzz_marker:{self.marker} AND good_n:{n}", "and"]))
                    if time.monotonic() - last_progress > 5:
                        last_progress = time.monotonic()
                        self.progress(sent, started)
        for _ in http:
            await http_q.put(None)
        for _ in wamp:
            await wamp_q.put(None)
        await asyncio.gather(*http, *wamp)
        self.progress(sent, started)
        self.send_seconds = time.monotonic() - started
        await self.settle()

    def progress(self, sent: int, started: float) -> None:
        """One progress line."""
        r = self.report
        elapsed = time.monotonic() - started
        print(f"  {sent} inputs, {r.requests} requests in {elapsed:.0f} s ({sent / max(elapsed, 1e-9):.0f}/s); "
              f"http {dict(sorted(r.status.items()))}; wamp {dict(r.wamp)}; hangs {r.hangs}; "
              f"good {len(self.delivered)}/{len(r.good_sent)} delivered", flush=True)

    async def settle(self) -> None:
        """Wait until every accepted good document has reached the tail, or nothing came for a while."""
        deadline_quiet = self.args.settle_s
        while True:
            missing = self.report.good_sent - self.delivered
            wamp_missing = self.report.good_sent - self.wamp_delivered
            if not missing and not wamp_missing:
                return
            if time.monotonic() - self.last_delivery > deadline_quiet:
                return
            await asyncio.sleep(0.2)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the fuzzer; print the findings and the last key=value line; 1 if a target was missed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=100_000, help="bad inputs to send (default 100000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated inputs (default 1)")
    parser.add_argument("--connections", type=int, default=6, help="HTTP requests in flight (default 6)")
    parser.add_argument("--wamp-sessions", type=int, default=2, help="WAMP sessions making calls (default 2)")
    parser.add_argument("--bound-s", type=float, default=10.0, help="longest an answer may take (default 10 s)")
    parser.add_argument("--good-every", type=int, default=10, help="one good document POST per this many inputs (default 10)")
    parser.add_argument("--settle-s", type=float, default=20.0, help="how long the tail may stay quiet at the end (default 20 s)")
    parser.add_argument("--estrom-arg", action="append", default=[], help="an extra argument of estrom up (repeatable)")
    args = parser.parse_args(argv)

    up = EstromUp(args.estrom_arg, prefix="estrom-fuzz-")
    started = time.monotonic()
    try:
        up.wait_ready()
        before = descendants(up.proc.pid)
        print(f"estrom up ready (data in {up.data_dir}); processes: "
              + ", ".join(f"{short(c)} {p}" for p, (_, c) in sorted(before.items())), flush=True)
        fuzzer = Fuzzer(up, args)
        asyncio.run(fuzzer.run())
        after = descendants(up.proc.pid)
        alive = up.proc.poll() is None
        health = {name: http_status(url + "/api/v0.1/health") for name, url in (("tailor", up.tailor), ("beater", up.beater))}
    finally:
        up.stop()
    log = up.log.read_text(errors="replace")
    report = fuzzer.report
    gone = [f"{short(c)} (pid {p})" for p, (t, c) in before.items() if after.get(p, (None,))[0] != t]
    restart_lines = [line for line in log.splitlines() if "restarting in" in line]
    restarts = max(len(gone), len(restart_lines)) + (0 if alive else 1)
    for line in restart_lines[:SAMPLES]:
        report.finding("restart", line)
    if gone:
        report.finding("restart", "processes gone or replaced: " + ", ".join(gone))
    errors = log_findings(log)
    for line in errors:
        report.finding("log_error", line)
    for name, status in health.items():
        if status != 200:
            report.finding("unhealthy_at_end", f"{name} health answered {status}")
    lost = report.good_sent - fuzzer.delivered
    wamp_lost = report.good_sent - fuzzer.wamp_delivered
    if lost:
        report.finding("lost", f"{len(lost)} accepted good documents never reached the tail, e.g. good_n {sorted(lost)[:20]}")
    if wamp_lost:
        report.finding("wamp_lost", f"{len(wamp_lost)} never reached the WAMP subscriber, e.g. good_n {sorted(wamp_lost)[:20]}")

    print("\nby category:")
    for category, counts in sorted(report.by_category.items()):
        print(f"  {category}: {dict(sorted(counts.items()))}")
    print(f"http statuses: {dict(sorted(report.status.items()))}")
    print(f"wamp errors: {dict(report.wamp_errors.most_common())}")
    if report.findings:
        print("\nfindings:")
        for kind, samples in sorted(report.findings.items()):
            print(f"  {kind}: {report.finding_counts[kind]}")
            for sample in samples:
                print(f"    - {sample}")
    buckets = Counter()
    for status, count in report.status.items():
        buckets["closed" if status == "closed" else f"s{status[0]}xx" if status[0] in "12345" else "s_other"] += count
    figures = {
        "inputs": report.inputs, "requests": report.requests,
        **{k: buckets.get(k, 0) for k in ("s1xx", "s2xx", "s3xx", "s4xx", "s5xx", "closed")},
        "w_ok": report.wamp["ok"], "w_refused": report.wamp["refused"], "w_internal": report.wamp["internal"],
        "w_session_lost": report.wamp["session_lost"], "hangs": report.hangs, "restarts": restarts,
        "log_errors": len(errors), "good_sent": len(report.good_sent), "good_delivered": len(report.good_sent & fuzzer.delivered),
        "lost": len(lost), "wamp_delivered": len(report.good_sent & fuzzer.wamp_delivered), "good_refused": report.good_refused,
        "good_reg_failed": report.good_reg_failed, "non_json_4xx": report.non_json_4xx,
        "max_answer_ms": round(report.max_answer_ms), "bound_s": args.bound_s,
        "seconds": round(time.monotonic() - started), "seed": args.seed,
    }
    print(" ".join(f"{k}={v}" for k, v in figures.items()), flush=True)
    failed = figures["s5xx"] or figures["w_internal"] or figures["hangs"] or figures["restarts"] or figures["lost"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
