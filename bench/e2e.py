"""End-to-end benchmark: documents posted to the Beater, hits read from HTTP tails and WAMP.

    python bench/e2e.py                       # starts its own `estrom up` on free ports
    python bench/e2e.py --rates 200,1000 --seconds 5

With ``--queries`` registered queries and ``--tails`` concurrent HTTP tails (on the
most often matching queries) plus one WAMP subscriber, it feeds the shared
recent-change events at each fixed rate and reports delivered hits/s and
ingest->HTTP and ingest->WAMP latency (p50/p99), next to the raw Crossbar
publish->subscribe latency measured against the same router in the same run.
Every document carries the time it was posted, so latency is measured on one
clock.  The last line is ``key=value`` figures.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import treq  # noqa: E402
from autobahn.twisted.component import Component  # noqa: E402
from autobahn.wamp.types import PublishOptions  # noqa: E402
from twisted.internet import reactor, task  # noqa: E402
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred  # noqa: E402

from bench.workload import load_documents, e2e_queries  # noqa: E402
from tests.integration.conftest import free_port  # noqa: E402


def percentile(values: List[float], p: float) -> float:
    """The p-th percentile (nearest rank) of ``values``, or NaN if empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100.0 * (len(ordered) - 1))))]


class TailReader:
    """Reads one HTTP tail incrementally and records each hit's age on arrival."""

    def __init__(self, sink: List[float]) -> None:
        self.buffer = ""
        self.pos = 0
        self.header_seen = False
        self.sink = sink
        self.count = 0
        self.decoder = json.JSONDecoder()

    def feed(self, chunk: bytes) -> None:
        now = time.time()
        self.buffer += chunk.decode()
        if not self.header_seen:
            start = self.buffer.find("[")
            if start < 0:
                return
            self.header_seen, self.pos = True, start + 1
        while True:
            while self.pos < len(self.buffer) and self.buffer[self.pos] in " \n,":
                self.pos += 1
            if self.pos >= len(self.buffer) or self.buffer[self.pos] == "]":
                break
            try:
                hit, end = self.decoder.raw_decode(self.buffer, self.pos)
            except ValueError:
                break  # incomplete: wait for the rest
            self.pos = end
            self.count += 1
            self.sink.append(now - hit["_source"]["bench_sent"])
        if self.pos > 65536:
            self.buffer, self.pos = self.buffer[self.pos:], 0


class Bench:
    """One run against one `estrom up`."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.data_dir = Path(tempfile.mkdtemp(prefix="estrom-bench-"))
        self.router_port, self.tailor_port, self.beater_port = free_port(), free_port(), free_port()
        self.router_url = f"ws://127.0.0.1:{self.router_port}/ws"
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.http_lat: List[float] = []
        self.wamp_lat: List[float] = []
        self.raw_lat: List[float] = []
        self.readers: List[TailReader] = []
        self.wamp_hits = 0
        self.figures: Dict[str, Any] = {}

    def start_estrom(self) -> None:
        exe = Path(sys.executable).with_name("estrom")
        cmd = [str(exe), "up", "--data-dir", str(self.data_dir), "--router-url", self.router_url,
               "--tailor-port", str(self.tailor_port), "--beater-port", str(self.beater_port), "--log-level", "warn"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if b"estrom: ready" in line:
                return
        raise SystemExit("estrom up did not start")

    def stop_estrom(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)

    async def session(self, authid: Optional[str] = None) -> Any:
        """Join the router (anonymously, or as a service role with its ticket); fire the session."""
        joined: Deferred[Any] = Deferred()
        auth = None
        if authid:
            ticket = json.loads((self.data_dir / "secrets.json").read_text())[authid]
            auth = {"ticket": {"authid": authid, "ticket": ticket}}
        component = Component(transports=[{"url": self.router_url, "type": "websocket", "serializers": ["json"]}],
                              realm="estrom", authentication=auth)
        component.on_join(lambda s, d: joined.called or joined.callback(s))
        component.start(reactor)
        return await joined

    async def wait_healthy(self) -> None:
        for _ in range(300):
            try:
                r = await treq.get(f"http://127.0.0.1:{self.tailor_port}/api/v0.1/health")
                b = await treq.get(f"http://127.0.0.1:{self.beater_port}/api/v0.1/health")
                await r.content(), await b.content()
                if r.code == 200 and b.code == 200:
                    return
            except Exception:
                pass
            await task.deferLater(reactor, 0.1, lambda: None)
        raise SystemExit("estrom never became healthy")

    async def raw_crossbar(self, session: Any, count: int = 2000, rate: float = 1000.0) -> None:
        """Publish->subscribe latency of the bare router with payloads like a hit."""
        sample = {"_index": "raw", "_source": load_documents()[0]}

        def on_event(hits: List[Any]) -> None:
            self.raw_lat.append(time.time() - hits[0]["_source"]["bench_sent"])

        await session.subscribe(on_event, "docs-for-bench-raw")
        options = PublishOptions(exclude_me=False)
        for _ in range(count):
            sample["_source"] = dict(sample["_source"], bench_sent=time.time())
            session.publish("docs-for-bench-raw", [sample], options=options)
            await task.deferLater(reactor, 1.0 / rate, lambda: None)
        await task.deferLater(reactor, 0.5, lambda: None)

    async def run(self) -> None:
        a = self.args
        docs = load_documents()
        await self.wait_healthy()
        anon = await self.session()
        queries = e2e_queries(docs, a.queries)
        started = time.monotonic()
        regs = []
        for q in queries:
            regs.append(await anon.call("estrom.register", "bench", q))
        self.figures["register_s"] = round(time.monotonic() - started, 2)
        # HTTP tails on the head of the list (the most often matching queries).
        for q in queries[: a.tails]:
            reader = TailReader(self.http_lat)
            self.readers.append(reader)
            url = f"http://127.0.0.1:{self.tailor_port}/api/v0.1/docs"
            response = await treq.get(url, params={"i": "bench", "q": q}, unbuffered=True)
            treq.collect(response, reader.feed).addErrback(lambda f: None)  # tails end with estrom

        def on_wamp(hits: List[Any]) -> None:
            now = time.time()
            for hit in hits:
                self.wamp_lat.append(now - hit["_source"]["bench_sent"])

        for reg in regs[: a.wamp_topics]:
            await anon.subscribe(on_wamp, reg["topic"])
        await task.deferLater(reactor, 1.0, lambda: None)

        beater_session = await self.session("beater")
        await self.raw_crossbar(beater_session)
        self.figures["raw_p50_ms"] = round(percentile(self.raw_lat, 50) * 1000, 2)
        self.figures["raw_p99_ms"] = round(percentile(self.raw_lat, 99) * 1000, 2)
        print(f"raw crossbar publish->subscribe: p50 {self.figures['raw_p50_ms']} ms, p99 {self.figures['raw_p99_ms']} ms ({len(self.raw_lat)} events)", flush=True)

        position = 0
        for rate in [int(r) for r in a.rates.split(",")]:
            self.http_lat.clear()
            self.wamp_lat.clear()
            before = sum(r.count for r in self.readers)
            tick = 0.02
            per_tick = max(1, round(rate * tick))
            posted = 0
            pending: List[Deferred[Any]] = []
            t0 = time.monotonic()
            next_at = t0
            while time.monotonic() - t0 < a.seconds:
                batch = []
                now = time.time()
                for _ in range(per_tick):
                    batch.append(json.dumps(dict(docs[position % len(docs)], bench_sent=now)))
                    position += 1
                posted += len(batch)
                d = treq.post(f"http://127.0.0.1:{self.beater_port}/api/v0.1/beat/bench",
                              data="\n".join(batch).encode(), headers={"content-type": "application/x-ndjson"})
                d.addCallback(treq.content)
                pending.append(d)
                next_at += tick
                await task.deferLater(reactor, max(0.0, next_at - time.monotonic()), lambda: None)
            await DeferredList(pending)
            elapsed = time.monotonic() - t0
            await task.deferLater(reactor, 1.0, lambda: None)  # let the last hits arrive
            delivered = sum(r.count for r in self.readers) - before
            key = f"r{rate}"
            self.figures[f"{key}_docs_s"] = round(posted / elapsed)
            self.figures[f"{key}_http_hits_s"] = round(delivered / elapsed)
            self.figures[f"{key}_http_p50_ms"] = round(percentile(self.http_lat, 50) * 1000, 2)
            self.figures[f"{key}_http_p99_ms"] = round(percentile(self.http_lat, 99) * 1000, 2)
            self.figures[f"{key}_wamp_p50_ms"] = round(percentile(self.wamp_lat, 50) * 1000, 2)
            self.figures[f"{key}_wamp_p99_ms"] = round(percentile(self.wamp_lat, 99) * 1000, 2)
            raw99 = self.figures["raw_p99_ms"]
            self.figures[f"{key}_http_p99_vs_raw"] = round(self.figures[f"{key}_http_p99_ms"] / raw99, 2) if raw99 else None
            print(f"rate {rate}/s: posted {posted} in {elapsed:.1f} s, {delivered} hits to {len(self.readers)} HTTP tails "
                  f"({delivered / elapsed:.0f}/s); HTTP p50 {self.figures[f'{key}_http_p50_ms']} ms p99 {self.figures[f'{key}_http_p99_ms']} ms; "
                  f"WAMP p50 {self.figures[f'{key}_wamp_p50_ms']} ms p99 {self.figures[f'{key}_wamp_p99_ms']} ms", flush=True)


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--tails", type=int, default=100)
    parser.add_argument("--wamp-topics", type=int, default=10)
    parser.add_argument("--rates", default="200,1000,5000")
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    bench = Bench(args)
    bench.start_estrom()
    failure: List[BaseException] = []

    async def go() -> None:
        try:
            await bench.run()
        except BaseException as e:  # report, then stop the reactor either way
            failure.append(e)
        finally:
            reactor.stop()

    reactor.callWhenRunning(lambda: ensureDeferred(go()))
    try:
        reactor.run()
    finally:
        bench.stop_estrom()
    if failure:
        raise failure[0]
    bench.figures["queries"] = args.queries
    bench.figures["tails"] = args.tails
    print(" ".join(f"{k}={v}" for k, v in bench.figures.items()))


if __name__ == "__main__":
    main()
