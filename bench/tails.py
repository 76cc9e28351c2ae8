"""Tail benchmark: a thousand concurrent HTTP tails in mixed formats, plus clients that never read.

    python bench/tails.py                                   # 1000 tails, 200 queries, 500 docs/s, 60 s
    python bench/tails.py --duration 10 --tails 100 --queries 20
    python bench/tails.py <tailor base url> <index> <queries.json>   # the reader bench/e2e.py runs

Standalone, it starts its own ``estrom up`` on free ports with a temporary data directory,
opens ``--tails`` HTTP tails over ``--queries`` distinct queries (a third each asking
format=json, ndjson and sse) and ``--stuck`` clients on a broad query that never read, feeds
the recent-change sample at ``--rate`` docs/s for ``--duration`` seconds from bench/feeder.py
(its own process), and reports hits delivered against the exact count expected per tail,
ingest->tail latency, the Tailor's RSS and CPU (from /proc), and what each stuck client got
(hits plus the ``dropped`` counts the Tailor reported) against what matched.  The last line
is ``key=value`` figures.

The queries are conjunctions of terms on fields whose values are single tokens (``wiki``,
``type``, ``namespace``, ``bot``, and ``user`` names that are one token and no other user's
substring), so whether a document matches is computed here, exactly, without a percolator.

With the three positional arguments it is the reader process of bench/e2e.py: it prints
``ready`` once every tail has its header, then each hit's age in ms, one per line.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from array import array
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.estrom_up import EstromUp  # noqa: E402
from bench.tail_client import raise_file_limit  # noqa: E402
from bench.workload import load_documents  # noqa: E402

FORMATS = ("json", "ndjson", "sse")
INDEX = "bench"
# A query: a conjunction of (field, value, negated); the value compares equal to the document's.
Term = Tuple[str, Any, bool]


# ---------------------------------------------------------------- queries and expected counts

def query_string(terms: Sequence[Term]) -> str:
    """The Lucene query of a conjunction."""
    parts = []
    for field, value, negated in terms:
        text = str(value).lower() if isinstance(value, bool) else str(value)
        parts.append(("NOT " if negated else "") + f"{field}:{text}")
    return " AND ".join(parts)


def doc_value(doc: Dict[str, Any], field: str) -> Any:
    """The document's value as a term of this benchmark compares it (user names lower-cased, as analysed)."""
    value = doc.get(field)
    return value.lower() if field == "user" and isinstance(value, str) else value


def matches(doc: Dict[str, Any], terms: Sequence[Term]) -> bool:
    """Whether the document matches the conjunction."""
    return all((doc_value(doc, f) == v) != neg for f, v, neg in terms)


def single_token_users(docs: List[Dict[str, Any]]) -> List[str]:
    """Lower-cased user names, most frequent first, whose term query matches exactly the docs of that user.

    A name qualifies when it is letters and digits only (one token for the standard analyser)
    and occurs in no other user's name, so no other document's ``user`` can hold that token.
    """
    counts = Counter(str(d.get("user", "")).lower() for d in docs)
    names = list(counts)
    good = []
    for name, _ in counts.most_common():
        if re.fullmatch(r"[a-z0-9]+", name) and not any(name in other for other in names if other != name):
            good.append(name)
    return good


def build_queries(docs: List[Dict[str, Any]], count: int) -> List[List[Term]]:
    """``count`` distinct conjunctions that each match part of the sample, mixed in kind from the start.

    The first is the firehose ``type:edit`` (the stuck clients' query too), the second
    ``wiki:wikidatawiki AND NOT bot:true`` (about a quarter); the rest match at most
    ``NARROW`` of the sample, so that most tails see a trickle and a few a flood.
    """
    narrow = 0.15
    wikis = [w for w, _ in Counter(d["wiki"] for d in docs).most_common()]
    types = [t for t, _ in Counter(d["type"] for d in docs).most_common()]
    spaces = [n for n, _ in Counter(d["namespace"] for d in docs).most_common()]
    families: List[List[List[Term]]] = [
        [[("wiki", w, False)] for w in wikis],
        [[("type", t, False), ("wiki", w, False)] for w in wikis for t in types],
        [[("namespace", n, False), ("wiki", w, False)] for w in wikis for n in spaces],
        [[("bot", b, False), ("wiki", w, False)] for w in wikis for b in (True, False)],
        [[("user", u, False)] for u in single_token_users(docs)],
        [[("namespace", n, False), ("type", t, False)] for n in spaces for t in types],
    ]
    chosen: List[List[Term]] = [[("type", "edit", False)], [("wiki", "wikidatawiki", False), ("bot", True, True)]]
    seen = {query_string(q) for q in chosen}
    cursors = [0] * len(families)
    while len(chosen) < count and any(c < len(f) for c, f in zip(cursors, families)):
        for i, family in enumerate(families):
            while cursors[i] < len(family):
                terms = family[cursors[i]]
                cursors[i] += 1
                share = sum(1 for d in docs if matches(d, terms)) / len(docs)
                if 0 < share <= narrow and query_string(terms) not in seen:
                    chosen.append(terms)
                    seen.add(query_string(terms))
                    break
            if len(chosen) >= count:
                break
    if len(chosen) < count:
        raise SystemExit(f"only {len(chosen)} distinct queries can be made from the sample")
    return chosen


def expected_counts(docs: List[Dict[str, Any]], queries: List[List[Term]], posted: int,
                    rejected: set) -> List[int]:
    """How many of the ``posted`` documents fed (the sample in order, round and round) match each query."""
    times = [posted // len(docs) + (1 if i < posted % len(docs) else 0) for i in range(len(docs))]
    return [sum(times[i] for i, d in enumerate(docs) if i not in rejected and matches(d, q)) for q in queries]


# ---------------------------------------------------------------- estrom and /proc

class Estrom(EstromUp):
    """One `estrom up` on free ports with a temporary data directory, its tail limits raised for the run."""

    def __init__(self, max_tails: int, source: Optional[str] = None) -> None:
        super().__init__(["--max-tails", str(max_tails), "--max-tails-per-client", str(max_tails)],
                         prefix="estrom-tails-", source=source)

    def tailor_pid(self) -> int:
        """The pid of the Tailor."""
        return self.part_pid("tailor")


def proc_sample(pid: int) -> Tuple[float, float]:
    """(RSS in MB, user+system CPU seconds) of a process."""
    rss_kb = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss_kb / 1024.0, (int(fields[11]) + int(fields[12])) / ticks


def probe_rejections(beater: str, docs_lines: List[str]) -> set:
    """Post the sample once before any tail opens; the sample positions the Beater rejects.

    The first values fix the index's dynamic mapping, and the feed posts the same documents
    in the same order afterwards, so the ones refused here are the ones it would refuse.
    """
    url = beater.split("//", 1)[1]
    conn = http.client.HTTPConnection(url, timeout=120)
    body = "\n".join(line.replace('"bench_sent":0', '"bench_sent":0.5') for line in docs_lines).encode()
    conn.request("POST", f"/api/v0.1/beat/{INDEX}", body=body, headers={"content-type": "application/x-ndjson"})
    answer = json.loads(conn.getresponse().read())
    return {e["line"] - 1 for e in answer.get("errors", []) if "line" in e}


# ---------------------------------------------------------------- client processes

class WorkerProcess:
    """One bench/tail_client.py process and the lines it prints."""

    def __init__(self, spec: Dict[str, Any], path: Path) -> None:
        path.write_text(json.dumps(spec))
        self.spec = spec
        self.ready: Optional[Tuple[int, int]] = None
        self.progress = 0
        self.result: Optional[List[Dict[str, Any]]] = None
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("tail_client.py")), str(path)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            word, _, rest = line.strip().partition(" ")
            if word == "ready":
                self.ready = tuple(int(x) for x in rest.split())  # type: ignore[assignment]
            elif word == "progress":
                self.progress = int(rest)
            elif word == "result":
                self.result = json.loads(rest)

    def drain(self) -> None:
        """Ask it to read its stuck clients and report."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("drain\n")
        self.proc.stdin.flush()

    def latencies(self) -> array:
        """The (sent, latency ms) pairs it wrote."""
        values = array("d")
        path = Path(self.spec["latencies"])
        values.frombytes(path.read_bytes())
        path.unlink()  # 16 bytes a hit: tens of MB after a full run
        return values


def wait_for(condition: Any, seconds: float, what: str, poll: Any = None) -> None:
    """Until ``condition()`` holds, calling ``poll()`` meanwhile; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        if poll:
            poll()
        time.sleep(0.1)


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (nearest rank) of sorted ``values``, or NaN if empty."""
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


# ---------------------------------------------------------------- the run

class Run:
    """One standalone run: estrom, the workers, the feed, the figures."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.docs = load_documents()
        self.lines = [json.dumps(dict(d, bench_sent=0), separators=(",", ":")) for d in self.docs]
        self.queries = build_queries(self.docs, args.queries)
        self.strings = [query_string(q) for q in self.queries]
        self.rss_peak = 0.0
        self.figures: Dict[str, Any] = {}

    def sample(self) -> Tuple[float, float]:
        rss, cpu = proc_sample(self.tailor_pid)
        self.rss_peak = max(self.rss_peak, rss)
        return rss, cpu

    def feed(self, seconds: float, first: int) -> Dict[str, Any]:
        """Run bench/feeder.py, sampling the Tailor meanwhile; its figures."""
        a = self.args
        feeder = subprocess.Popen([sys.executable, str(Path(__file__).with_name("feeder.py")), self.estrom.beater,
                                   INDEX, str(a.rate), str(seconds), str(a.post_interval_ms), str(first)],
                                  stdout=subprocess.PIPE, text=True)
        out: List[str] = []
        reader = threading.Thread(target=lambda: out.append(feeder.communicate()[0]), daemon=True)
        reader.start()
        while reader.is_alive():
            self.sample()
            reader.join(0.25)
        if feeder.returncode != 0:
            self.feed_errors += 1
            print(f"bench/feeder.py failed (exit {feeder.returncode})", flush=True)
            return {"posted": 0, "seconds": seconds, "answers": []}
        return json.loads(out[0].strip().splitlines()[-1])

    def main(self) -> None:
        a = self.args
        self.feed_errors = 0
        self.estrom = Estrom(max(a.max_tails, a.tails + a.stuck + 100), a.estrom_source)
        try:
            self.estrom.wait_ready()
            self.tailor_pid = self.estrom.tailor_pid()
            print(f"estrom up on {self.estrom.tailor} (Tailor pid {self.tailor_pid}), {self.estrom.beater}; "
                  f"data in {self.estrom.data_dir}", flush=True)
            self.rejected = probe_rejections(self.estrom.beater, self.lines)
            self.open_tails()
            self.drive()
            self.report()
        finally:
            for w in getattr(self, "workers", []):
                if w.proc.poll() is None:
                    w.proc.kill()
            self.estrom.stop()

    def open_tails(self) -> None:
        a = self.args
        tails = [(i % len(self.queries), FORMATS[i % 3]) for i in range(a.tails)]
        stuck = [(0, FORMATS[i % 3]) for i in range(a.stuck)]
        self.workers = []
        for w in range(a.procs):
            spec = {"base": self.estrom.tailor, "index": INDEX, "rcvbuf": a.stuck_rcvbuf,
                    "latencies": str(self.estrom.data_dir / f"latencies-{w}.bin"),
                    "tails": [[q, self.strings[q], f] for q, f in tails[w::a.procs]],
                    "stuck": [[q, self.strings[q], f] for q, f in stuck[w::a.procs]]}
            self.workers.append(WorkerProcess(spec, self.estrom.data_dir / f"worker-{w}.json"))
        started = time.monotonic()
        wait_for(lambda: all(w.ready for w in self.workers), 300, "the tails to open",
                 poll=lambda: any(w.proc.poll() is not None for w in self.workers) and sys.exit("a worker died"))
        opened = sum(w.ready[0] for w in self.workers)  # type: ignore[index]
        self.open_failed = sum(w.ready[1] for w in self.workers)  # type: ignore[index]
        self.figures["open_s"] = round(time.monotonic() - started, 1)
        print(f"{opened} tails open ({self.open_failed} failed) in {self.figures['open_s']} s: {a.tails} reading over "
              f"{len(self.queries)} queries ({', '.join(f'{sum(1 for _, g in tails if g == f)} {f}' for f in FORMATS)}), "
              f"{a.stuck} never reading on {self.strings[0]!r}", flush=True)

    def drive(self) -> None:
        a = self.args
        time.sleep(1.0)
        self.rss_start, _ = self.sample()
        self.rss_peak = self.rss_start
        posted = 0
        self.feed_s = 0.0
        if a.warmup > 0:
            warm = self.feed(a.warmup, 0)
            posted += warm["posted"]
            self.feed_s += warm["seconds"]
            print(f"warm-up: {posted} documents (their hits count, their latency does not)", flush=True)
        self.measure_from = time.time()
        _, cpu0 = self.sample()
        clients0 = sum(proc_sample(w.proc.pid)[1] for w in self.workers)
        wall0 = time.monotonic()
        fed = self.feed(a.duration, posted)
        posted += fed["posted"]
        self.feed_s += fed["seconds"]
        self.fed = fed
        # Delivery settles when no reading tail got anything for 2 s (at most 30 s).
        last, still = -1, time.monotonic()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            self.sample()
            total = sum(w.progress for w in self.workers)
            if total != last:
                last, still = total, time.monotonic()
            elif time.monotonic() - still > 2.0:
                break
            time.sleep(0.25)
        self.rss_end, cpu1 = self.sample()
        wall = time.monotonic() - wall0
        clients1 = sum(proc_sample(w.proc.pid)[1] for w in self.workers)
        self.cpu_s, self.cpu_pct = cpu1 - cpu0, 100.0 * (cpu1 - cpu0) / wall
        self.client_cpu_pct = 100.0 * (clients1 - clients0) / wall
        self.posted = posted
        for w in self.workers:
            w.drain()
        wait_for(lambda: all(w.result is not None for w in self.workers), 120, "the workers' results",
                 poll=self.sample)

    def report(self) -> None:
        a = self.args
        expected = expected_counts(self.docs, self.queries, self.posted, self.rejected)
        results = [t for w in self.workers for t in w.result or []]
        reading = [t for t in results if not t["stuck"]]
        stuck = [t for t in results if t["stuck"]]
        hits = sum(t["hits"] for t in reading)
        want = sum(expected[t["query_id"]] for t in reading)
        lost = sum(max(0, expected[t["query_id"]] - t["hits"]) for t in reading)
        extra = sum(max(0, t["hits"] - expected[t["query_id"]]) for t in reading)
        losing = sum(1 for t in reading if t["hits"] != expected[t["query_id"]])
        reading_dropped = sum(t["dropped"] for t in reading)
        answered = Counter(t["format"] or "none" for t in results)
        errors = Counter()
        for t in results:
            if t["status"] != 200:
                errors["open_failed"] += 1
            elif t["closed"] and not t["ended"]:
                errors["closed_by_server"] += 1
            errors["bad_records"] += t["bad_lines"]
            errors["out_of_order"] += t["out_of_order"]
            errors["control_records"] += sum(1 for c in t["controls"] if "dropped" not in c)
        errors["feed_failed"] = self.feed_errors
        n_errors = sum(errors.values())
        pairs = array("d")
        for w in self.workers:
            pairs.extend(w.latencies())
        lat = sorted(pairs[i + 1] for i in range(0, len(pairs), 2) if pairs[i] >= self.measure_from)
        p50, p99 = percentile(lat, 50), percentile(lat, 99)
        stuck_expected = expected[0]
        stuck_dropped = sum(t["dropped"] for t in stuck)
        stuck_short = sum(max(0, stuck_expected - t["hits"] - t["dropped"]) for t in stuck)
        elapsed = self.fed["seconds"]

        print(f"fed {self.fed['posted']} documents in {elapsed:.1f} s ({self.fed['posted'] / elapsed:.0f}/s) "
              f"after {self.posted - self.fed['posted']} of warm-up; the Beater rejected {len(self.rejected)} of the sample")
        print(f"formats answered: {dict(answered)} (asked: a third each of {', '.join(FORMATS)})")
        print(f"reading tails: {hits} hits delivered of {want} expected ({hits / self.feed_s:.0f}/s over "
              f"the whole feed); lost {lost}, extra {extra}, {losing} tails off their count, dropped {reading_dropped}")
        for t in [t for t in reading if t["hits"] != expected[t["query_id"]]][:5]:
            print(f"  tail {t['number']} ({t['format']}, {self.strings[t['query_id']]!r}): {t['hits']} hits, "
                  f"expected {expected[t['query_id']]}, dropped {t['dropped']}, errors {t['errors'][:1]}")
        print(f"ingest->tail latency over {len(lat)} hits of the measured feed: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
              f"max {lat[-1] if lat else float('nan'):.1f} ms")
        print(f"Tailor RSS: start {self.rss_start:.0f} MB, peak {self.rss_peak:.0f} MB, end {self.rss_end:.0f} MB; "
              f"CPU {self.cpu_s:.1f} s, {self.cpu_pct:.0f}% of a core (feed and settle); client processes "
              f"{self.client_cpu_pct:.0f}%")
        print(f"stuck clients on {self.strings[0]!r} (expected {stuck_expected} each):")
        for t in stuck:
            print(f"  client {t['number']} ({t['format']}): {t['hits']} hits + {t['dropped']} dropped = "
                  f"{t['hits'] + t['dropped']} of {stuck_expected}"
                  + (f"; {t['controls'][:2]}" if t["controls"] else "") + (f"; {t['errors'][:1]}" if t["errors"] else ""))
        print(f"errors: {n_errors} {dict((k, v) for k, v in errors.items() if v)}")
        targets = [("0 errors", n_errors == 0), ("reading tails lose nothing", lost == 0 and extra == 0),
                   (f"Tailor RSS <= {a.rss_target_mb} MB", self.rss_peak <= a.rss_target_mb),
                   (f"p99 <= {a.p99_target_ms} ms", p99 <= a.p99_target_ms)]
        print("targets: " + "; ".join(f"{name}: {'ok' if ok else 'MISSED'}" for name, ok in targets))
        figures = {
            "tails": a.tails, "queries": len(self.queries), "stuck": a.stuck, "procs": a.procs, "rate": a.rate,
            "duration_s": a.duration, "docs": self.fed["posted"], "docs_s": round(self.fed["posted"] / elapsed),
            "hits": hits, "expected": want, "lost": lost, "extra": extra, "errors": n_errors,
            "reading_dropped": reading_dropped, "hits_s": round(hits / self.feed_s),
            "p50_ms": round(p50, 2), "p99_ms": round(p99, 2), "max_ms": round(lat[-1], 2) if lat else "nan",
            "tailor_rss_start_mb": round(self.rss_start), "tailor_rss_mb": round(self.rss_peak),
            "tailor_rss_end_mb": round(self.rss_end), "tailor_cpu_s": round(self.cpu_s, 1),
            "tailor_cpu_pct": round(self.cpu_pct), "client_cpu_pct": round(self.client_cpu_pct),
            "stuck_expected": stuck_expected, "stuck_hits": sum(t["hits"] for t in stuck),
            "stuck_dropped": stuck_dropped, "stuck_short": stuck_short, "open_s": self.figures["open_s"],
            "formats": ",".join(f"{k}:{v}" for k, v in sorted(answered.items())),
            "targets_met": sum(ok for _, ok in targets), "targets": len(targets),
        }
        print(" ".join(f"{k}={v}" for k, v in figures.items()), flush=True)


# ---------------------------------------------------------------- the reader of bench/e2e.py

def e2e_reader(base: str, index: str, queries: List[str]) -> None:
    """Tail each query (json format) and print ``ready``, then each hit's age in ms, one per line."""
    import treq
    from twisted.internet import reactor
    from twisted.internet.defer import ensureDeferred

    sent_re = re.compile(rb'"bench_sent":([0-9.eE+-]+)')
    out: List[str] = []

    class Reader:
        """One tail: finds each hit's send time as bytes arrive (a hit never spans a marker)."""

        def __init__(self) -> None:
            self.tail = b""

        def feed(self, chunk: bytes) -> None:
            now = time.time()
            data = self.tail + chunk
            last = 0
            for match in sent_re.finditer(data):
                if match.end() == len(data):
                    break  # the number may continue in the next chunk
                out.append(f"{(now - float(match.group(1))) * 1000:.3f}")
                last = match.end()
            self.tail = data[last:][-64:] if last else data[-64:]

    def flush() -> None:
        if out:
            sys.stdout.write("\n".join(out) + "\n")
            sys.stdout.flush()
            out.clear()
        reactor.callLater(0.05, flush)

    async def start() -> None:
        for query in queries:
            response = await treq.get(f"{base}/api/v0.1/docs", params={"i": index, "q": query}, unbuffered=True)
            treq.collect(response, Reader().feed).addErrback(lambda f: None)
        print("ready", flush=True)
        flush()

    reactor.callWhenRunning(lambda: ensureDeferred(start()))
    reactor.run()


def main(argv: List[str]) -> None:
    """The e2e reader with three positional arguments, else the standalone benchmark."""
    if len(argv) == 3 and argv[0].startswith("http"):
        with open(argv[2]) as f:
            e2e_reader(argv[0], argv[1], json.load(f))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tails", type=int, default=1000, help="reading HTTP tails")
    parser.add_argument("--queries", type=int, default=200, help="distinct queries the tails spread over")
    parser.add_argument("--stuck", type=int, default=10, help="clients that never read (until the end)")
    parser.add_argument("--stuck-rcvbuf", type=int, default=4096, help="SO_RCVBUF of the stuck clients' sockets")
    parser.add_argument("--rate", type=int, default=500, help="docs/s fed")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of measured feed")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="seconds of feed before the measured one (hits counted, latency not)")
    parser.add_argument("--post-interval-ms", type=float, default=20.0)
    parser.add_argument("--procs", type=int, default=1, help="client processes the tails are spread over")
    parser.add_argument("--max-tails", type=int, default=5000,
                        help="--max-tails and --max-tails-per-client of estrom up (at least tails+stuck+100)")
    parser.add_argument("--estrom-source", default=None,
                        help="run `python -m estrom.cli up` from this source tree (e.g. a `git archive` of a commit) "
                             "instead of the installed estrom")
    parser.add_argument("--rss-target-mb", type=float, default=300.0)
    parser.add_argument("--p99-target-ms", type=float, default=50.0)
    args = parser.parse_args(argv)
    raise_file_limit()  # inherited by estrom up: the Tailor holds a socket per tail
    Run(args).main()


if __name__ == "__main__":
    main(sys.argv[1:])
