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
import gc
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
from twisted.internet import protocol, reactor, task, threads  # noqa: E402
from twisted.internet.defer import Deferred, ensureDeferred  # noqa: E402

from bench.workload import load_documents, e2e_queries  # noqa: E402
from beater.listeners import EXPECT_GRACE_S  # noqa: E402
from tests.integration.conftest import free_port  # noqa: E402


def percentile(values: List[float], p: float) -> float:
    """The p-th percentile (nearest rank) of ``values``, or NaN if empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100.0 * (len(ordered) - 1))))]


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
        self.tails_proc: Optional[subprocess.Popen[bytes]] = None
        self.http_count = 0
        self.wamp_hits = 0
        self.figures: Dict[str, Any] = {}

    def start_estrom(self) -> None:
        exe = Path(sys.executable).with_name("estrom")
        cmd = [str(exe), "up", "--data-dir", str(self.data_dir), "--router-url", self.router_url,
               "--tailor-port", str(self.tailor_port), "--beater-port", str(self.beater_port), "--log-level", "warn"]
        log = open(self.data_dir / "estrom.log", "wb")  # a pipe nobody reads would fill and block it
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and self.proc.poll() is None:
            if b"estrom: ready" in (self.data_dir / "estrom.log").read_bytes():
                return
            time.sleep(0.1)
        raise SystemExit("estrom up did not start:\n" + (self.data_dir / "estrom.log").read_text())

    def stop_estrom(self) -> None:
        if self.tails_proc and self.tails_proc.poll() is None:
            self.tails_proc.kill()
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
        component = Component(transports=[{"url": self.router_url, "type": "websocket", "serializers": ["cbor"]}],
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

    def feed(self, rate: int, seconds: float, first: int) -> Dict[str, Any]:
        """Run bench/feeder.py for one rate (blocking: call it in a thread); its figures."""
        script = str(Path(__file__).with_name("feeder.py"))
        done = subprocess.run(
            [sys.executable, script, f"http://127.0.0.1:{self.beater_port}", "bench", str(rate), str(seconds),
             str(self.args.post_interval_ms), str(first)],
            stdout=subprocess.PIPE, text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"bench/feeder.py failed (exit {done.returncode})")
        return json.loads(done.stdout.strip().splitlines()[-1])

    async def start_tails(self) -> None:
        """Start bench/tails.py and collect the hit ages it prints."""
        ready: Deferred[None] = Deferred()
        bench = self

        class Lines(protocol.ProcessProtocol):
            buffer = b""

            def outReceived(self, data: bytes) -> None:
                self.buffer += data
                *lines, self.buffer = self.buffer.split(b"\n")
                for line in lines:
                    if line == b"ready":
                        ready.callback(None)
                    elif line:
                        bench.http_count += 1
                        bench.http_lat.append(float(line) / 1000.0)

        script = str(Path(__file__).with_name("tails.py"))
        self.tails_transport = reactor.spawnProcess(
            Lines(), sys.executable,
            [sys.executable, script, f"http://127.0.0.1:{self.tailor_port}", "bench", str(self.data_dir / "tails.json")],
            env=os.environ.copy(), childFDs={0: "w", 1: "r", 2: 2},
        )
        await ready

    async def raw_crossbar(self, session: Any, count: int = 2000, rate: float = 1000.0) -> None:
        """Publish->subscribe latency of the bare router with payloads like a hit."""
        sample = {"_index": "raw", "_source": load_documents()[0]}

        def on_event(hits: List[Any]) -> None:
            self.raw_lat.append(time.time() - hits[0]["_source"]["bench_sent"])

        if not getattr(self, "_raw_subscribed", False):
            await session.subscribe(on_event, "docs-for-bench-raw")
            self._raw_subscribed = True
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
        registered_at = time.monotonic()
        # HTTP tails, in their own process, on every (len/tails)-th query: frequent and rare ones.
        step = max(1, len(queries) // a.tails)
        tailed = queries[::step][: a.tails]
        (self.data_dir / "tails.json").write_text(json.dumps(tailed))
        await self.start_tails()

        def on_wamp(hits: List[Any]) -> None:
            now = time.time()
            for hit in hits:
                self.wamp_lat.append(now - hit["_source"]["bench_sent"])

        for reg in regs[::step][: a.wamp_topics]:
            await anon.subscribe(on_wamp, reg["topic"])
        await task.deferLater(reactor, 1.0, lambda: None)

        # The sample documents and the session state live for the whole run: keep the collector from
        # walking them again and again (its pauses would be charged to estrom's latency).
        gc.collect()
        gc.freeze()
        beater_session = await self.session("beater")
        # Warm-up, not measured: a fresh router stalls once (~0.1 s) soon after its first events,
        # and the presearcher re-weighs its keys after its first few hundred documents.
        await self.raw_crossbar(beater_session, count=1500)
        self.raw_lat.clear()
        await self.raw_crossbar(beater_session)
        self.figures["raw_p50_ms"] = round(percentile(self.raw_lat, 50) * 1000, 2)
        self.figures["raw_p99_ms"] = round(percentile(self.raw_lat, 99) * 1000, 2)
        print(f"raw crossbar publish->subscribe: p50 {self.figures['raw_p50_ms']} ms, p99 {self.figures['raw_p99_ms']} ms ({len(self.raw_lat)} events)", flush=True)

        # Steady state: for EXPECT_GRACE_S after a register call the Beater publishes that id's hits
        # even with no subscriber yet (one is expected); after that only the tailed topics are published.
        await task.deferLater(reactor, max(0.0, EXPECT_GRACE_S - (time.monotonic() - registered_at)), lambda: None)
        position = 0
        phases = [(a.warmup_rate, a.warmup_seconds, False)] if a.warmup_seconds > 0 else []
        phases += [(int(r), a.seconds, True) for r in a.rates.split(",")]
        for rate, seconds, measured in phases:
            self.http_lat.clear()
            self.wamp_lat.clear()
            self.raw_lat.clear()
            # The bare router again, under this load: what Crossbar alone gives while estrom runs.
            probe = ensureDeferred(self.raw_crossbar(beater_session, count=int(seconds * a.raw_probe_rate),
                                                     rate=a.raw_probe_rate)) if measured and a.raw_probe_rate > 0 else None
            before = self.http_count
            fed = await threads.deferToThread(self.feed, rate, seconds, position)
            position += fed["posted"]
            posted, elapsed, post_s, per_tick = fed["posted"], fed["seconds"], fed["answers"], fed["per_post"]
            if probe is not None:
                await probe
            await task.deferLater(reactor, 1.0, lambda: None)  # let the last hits arrive
            delivered = self.http_count - before
            if not measured:
                print(f"warm-up: {posted} documents at {rate}/s", flush=True)
                continue
            key = f"r{rate}"
            self.figures[f"{key}_docs_s"] = round(posted / elapsed)
            self.figures[f"{key}_http_hits_s"] = round(delivered / elapsed)
            self.figures[f"{key}_http_p50_ms"] = round(percentile(self.http_lat, 50) * 1000, 2)
            self.figures[f"{key}_http_p99_ms"] = round(percentile(self.http_lat, 99) * 1000, 2)
            self.figures[f"{key}_wamp_p50_ms"] = round(percentile(self.wamp_lat, 50) * 1000, 2)
            self.figures[f"{key}_wamp_p99_ms"] = round(percentile(self.wamp_lat, 99) * 1000, 2)
            self.figures[f"{key}_post_p50_ms"] = round(percentile(post_s, 50) * 1000, 2)
            self.figures[f"{key}_post_p99_ms"] = round(percentile(post_s, 99) * 1000, 2)
            if probe is not None:
                self.figures[f"{key}_raw_p50_ms"] = round(percentile(self.raw_lat, 50) * 1000, 2)
                self.figures[f"{key}_raw_p99_ms"] = round(percentile(self.raw_lat, 99) * 1000, 2)
                loaded99 = self.figures[f"{key}_raw_p99_ms"]
                self.figures[f"{key}_http_p99_vs_loaded_raw"] = round(self.figures[f"{key}_http_p99_ms"] / loaded99, 2) if loaded99 else None
            raw99 = self.figures["raw_p99_ms"]
            self.figures[f"{key}_http_p99_vs_raw"] = round(self.figures[f"{key}_http_p99_ms"] / raw99, 2) if raw99 else None
            print(f"rate {rate}/s: posted {posted} in {elapsed:.1f} s, {delivered} hits to {a.tails} HTTP tails "
                  f"({delivered / elapsed:.0f}/s); HTTP p50 {self.figures[f'{key}_http_p50_ms']} ms p99 {self.figures[f'{key}_http_p99_ms']} ms; "
                  f"WAMP p50 {self.figures[f'{key}_wamp_p50_ms']} ms p99 {self.figures[f'{key}_wamp_p99_ms']} ms; "
                  f"POST answered p50 {self.figures[f'{key}_post_p50_ms']} ms p99 {self.figures[f'{key}_post_p99_ms']} ms "
                  f"({per_tick} per POST)", flush=True)
            if probe is not None:
                print(f"  raw crossbar under this load ({a.raw_probe_rate}/s): p50 {self.figures[f'{key}_raw_p50_ms']} ms "
                      f"p99 {self.figures[f'{key}_raw_p99_ms']} ms", flush=True)


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--tails", type=int, default=100)
    parser.add_argument("--wamp-topics", type=int, default=10)
    parser.add_argument("--rates", default="50,200,1000,5000",
                        help="docs/s, one POST every 20 ms (50/s: one document per POST, the path's floor)")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--post-interval-ms", type=float, default=20.0,
                        help="one POST of rate x interval documents every this many ms")
    parser.add_argument("--raw-probe-rate", type=int, default=100,
                        help="raw publishes/s sent through the router during each measured rate (0: none)")
    parser.add_argument("--warmup-rate", type=int, default=500, help="docs/s of the unmeasured warm-up feed")
    parser.add_argument("--warmup-seconds", type=float, default=4.0, help="0 to skip the warm-up")
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
        transport = getattr(bench, "tails_transport", None)
        if transport is not None:
            try:
                transport.signalProcess("KILL")
            except Exception:
                pass
    if failure:
        raise failure[0]
    bench.figures["queries"] = args.queries
    bench.figures["tails"] = args.tails
    print(" ".join(f"{k}={v}" for k, v in bench.figures.items()))


if __name__ == "__main__":
    main()
