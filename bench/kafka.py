"""Kafka benchmark: one Beater consuming a topic, next to the raw consumer and the Beater's HTTP ingest.

    python bench/kafka.py                       # N = 40,620 (the sample x 10)
    python bench/kafka.py --docs 20310
    python bench/kafka.py --docs 20310 --beaters 2    # then the same backlog drained by two Beaters
    python bench/kafka.py --estrom-source DIR   # estrom from another tree (e.g. a `git archive` of a commit)

It uses the broker at $ESTROM_KAFKA_BOOTSTRAP, or the one `scripts/services status kafka` says is
running, or starts one with `scripts/services start kafka` (and stops it at the end, then only).
It starts its own `estrom up` on free ports (temporary data directory) consuming a fresh topic of
``--partitions`` (3) partitions (unique name per run, fresh consumer group and registrations log)
into index ``events``, and opens HTTP tails on it (``q=*`` plus ``--queries`` queries from
workload.e2e_queries) in this process.

1. **Kafka -> Beater -> tails.** The Beater is frozen (SIGSTOP) while a producer process (this
   script with ``--produce``) sends ``--docs`` documents of the sample round, as fast as the
   broker takes them (linger 20 ms, 256 KiB batches, lz4 off), each stamped with ``bench_sent``
   (its send time) and ``bench_n`` (its number); then it drains that backlog. The ``q=*`` tail
   counts distinct ``bench_n`` (delivered, lost, repeated); Kafka docs/s is delivered / (last
   delivery - first delivery). CPU (% of one core) of the Beater, the Tailor, the router (the rest
   of estrom up's processes: Crossbar) and this process (the tails), and how busy the whole machine
   was, are counted from SIGCONT until the tail has them all; ``kafka_cpu_us_doc`` is the Beater's
   CPU per document. Then records paced at ``--latency-rate`` give the produce -> ``q=*`` latency.
2. **HTTP ingest.** A feeder process (``--http-feed``) posts the same documents as NDJSON chunks of
   ``--chunk`` (500) on ``--http-connections`` (2) kept-alive connections as fast as the Beater
   answers, into index ``httpbench``, which has the same tails open; docs/s is documents answered
   over the feed's wall time (checked against what the ``q=*`` tail of that index got).
3. **Raw ceiling.** A plain KafkaConsumer (no group: assign the partitions, seek to the beginning)
   reads the whole topic and JSON-decodes each value; records/s.
4. **Two Beaters** (``--beaters 2`` only). A second Beater (``estrom beater`` on the same router
   with the same tickets and Kafka flags) joins the group; once the two hold all the partitions
   between them (3 split 2+1, ``--partitions 4`` 2+2) and a warm-up went through both, the same
   backlog is produced with both frozen and drained by both: ``two_beaters_docs_s`` against
   ``kafka_docs_s`` (one Beater, same run), with each process's CPU as in 1. On a machine the
   parts already fill (2 cores: Beater + Tailor + router + tails), a second Beater cannot add much.

The last line is ``key=value`` figures: ``kafka_docs_s``, ``http_docs_s``, ``ratio`` (target >= 0.8),
``raw_consume_docs_s``, ``kafka_cpu_us_doc``, ``http_cpu_us_doc``, ``p50_ms``, ``p99_ms``,
``delivered``, ``expected``, ``lost``, ..., and with ``--beaters 2`` ``two_beaters_docs_s``,
``two_vs_one``, ``two_partitions``, ``two_beater1_cpu_pct``, ``two_beater2_cpu_pct``, ...
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, bench/ is sys.path[0] and this file would shadow kafka-python's ``kafka``.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from bench.estrom_up import EstromUp, free_port, http_status  # noqa: E402
from bench.tails import percentile  # noqa: E402
from bench.workload import e2e_queries, load_documents  # noqa: E402

KAFKA_INDEX = "events"
WARMUP_FIRST = 10_000_000  # bench_n of the warm-up records
LATENCY_FIRST = 20_000_000  # bench_n of the paced (latency) records
HTTP_INDEX = "httpbench"
PARTITIONS = 3
SESSION_TIMEOUT_S = 10.0  # the Beater's Kafka session: frozen longer, it is dropped from the group
TWO_WARMUP_FIRST = 11_000_000  # bench_n of the warm-up records once the second Beater is in the group
TWO_FIRST = 30_000_000  # bench_n of the backlog drained by two Beaters


def sample_lines() -> List[str]:
    """The sample's documents as compact JSON with placeholders for the stamps."""
    return [json.dumps(dict(d, bench_n=-1, bench_sent=0), separators=(",", ":")) for d in load_documents()]


def stamped(line: str, n: int) -> str:
    return line.replace('"bench_n":-1', f'"bench_n":{n}').replace('"bench_sent":0', '"bench_sent":' + repr(time.time()))


# ---------------------------------------------------------------- child modes

def produce(bootstrap: str, topic: str, count: int, first: int, rate: float) -> None:
    """Send ``count`` stamped documents numbered from ``first``, as fast as the broker takes them
    (``rate`` 0) or ``rate`` a second in 20 ms ticks; print a JSON summary."""
    from kafka import KafkaProducer
    lines = sample_lines()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0 if rate else 20, batch_size=256 * 1024,
                             acks=1, max_in_flight_requests_per_connection=5)
    per_tick = max(1, round(rate * 0.02)) if rate else count
    started = time.time()
    next_at = time.monotonic()
    n = 0
    while n < count:
        for _ in range(min(per_tick, count - n)):
            producer.send(topic, stamped(lines[(first + n) % len(lines)], first + n).encode())
            n += 1
        if rate:
            producer.flush()
            next_at += 0.02
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    producer.flush()
    elapsed = time.time() - started
    producer.close()
    print(json.dumps({"produced": count, "seconds": elapsed, "started": started}), flush=True)


def http_feed(beater: str, index: str, count: int, chunk: int, connections: int) -> None:
    """POST ``count`` stamped documents in NDJSON chunks as fast as answered; print a JSON summary."""
    lines = sample_lines()
    url = urllib.parse.urlsplit(beater)
    next_n = [0]
    lock = threading.Lock()
    answered = [0]
    errors: List[str] = []

    def worker() -> None:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
        while True:
            with lock:
                first = next_n[0]
                if first >= count:
                    return
                next_n[0] = min(count, first + chunk)
            body = "\n".join(stamped(lines[n % len(lines)], n) for n in range(first, min(count, first + chunk)))
            conn.request("POST", f"/api/v0.1/beat/{index}", body=body.encode(),
                         headers={"content-type": "application/x-ndjson"})
            response = conn.getresponse()
            text = response.read()
            if response.status != 200:
                errors.append(f"{response.status} {text[:200]!r}")
            else:
                rejected = len(json.loads(text).get("errors", []))
                with lock:
                    answered[0] += min(count, first + chunk) - first - rejected

    started = time.time()
    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"posted": count, "accepted": answered[0], "seconds": time.time() - started,
                      "started": started, "errors": errors[:3]}), flush=True)


# ---------------------------------------------------------------- broker and estrom

class Broker:
    """$ESTROM_KAFKA_BOOTSTRAP, a running scripts/services kafka, or one started (and later stopped) here."""

    def __init__(self) -> None:
        self.started = False
        self.bootstrap = os.environ.get("ESTROM_KAFKA_BOOTSTRAP", "")
        services = str(ROOT / "scripts" / "services")
        if not self.bootstrap:
            status = subprocess.run([services, "status", "kafka"], capture_output=True, text=True)
            if status.returncode == 0 and status.stdout.strip().splitlines()[0].startswith("running"):
                self.bootstrap = status.stdout.strip().splitlines()[-1]
            else:
                out = subprocess.run([services, "start", "kafka"], capture_output=True, text=True, check=True)
                self.bootstrap = out.stdout.strip().splitlines()[-1]
                self.started = True
        print(f"broker {self.bootstrap}" + (" (started here)" if self.started else ""), flush=True)

    def stop(self) -> None:
        if self.started:
            subprocess.run([str(ROOT / "scripts" / "services"), "stop", "kafka"], check=False)


def kafka_args(bootstrap: str, topic: str, group: str) -> List[str]:
    """The Kafka flags of every Beater of the run: one group, and a registrations log of its own
    (the default one is shared by everything on the broker and only grows)."""
    return ["--kafka-bootstrap", bootstrap, "--kafka-topics", topic, "--kafka-index-map", f"{topic}={KAFKA_INDEX}",
            "--kafka-group", group, "--kafka-registrations-topic", f"{topic}-registrations"]


def beater_metrics(url: str) -> List[str]:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
        return r.read().decode().splitlines()


def kafka_records(url: str) -> float:
    """estrom_kafka_records_total summed, from a Beater's /metrics."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in beater_metrics(url) if line.startswith("estrom_kafka_records_total"))


def held_partitions(url: str, topic: str) -> List[int]:
    """The partitions of ``topic`` a Beater holds (its lag gauges: set on assignment, removed on revocation)."""
    return sorted({int(line.split('partition="', 1)[1].split('"', 1)[0]) for line in beater_metrics(url)
                   if line.startswith("estrom_kafka_lag{") and f'topic="{topic}"' in line})


class Estrom(EstromUp):
    """One `estrom up` consuming the topic, on free ports with a temporary data directory."""

    def __init__(self, args: List[str], source: Optional[str] = None) -> None:
        super().__init__(args, prefix="estrom-kafka-", source=source)
        self.source = source

    def beater_pid(self) -> int:
        """The pid of the Beater."""
        return self.part_pid("beater")

    def kafka_records(self) -> float:
        return kafka_records(self.beater)


class SecondBeater:
    """`estrom beater` on the router of ``first`` with its tickets and the same Kafka flags (as
    tests/integration/test_kafka_group.py starts one): a second member of the consumer group."""

    def __init__(self, first: Estrom, args: List[str]) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="estrom-kafka-second-"))
        self.port = free_port()
        self.beater = f"http://127.0.0.1:{self.port}"
        tickets = json.loads((first.data_dir / "secrets.json").read_text())
        env = dict(os.environ, ESTROM_BEATER_TICKET=tickets["beater"], ESTROM_TAILOR_TICKET=tickets["tailor"])
        if first.source:
            env["PYTHONPATH"] = first.source
        up = [sys.executable, "-m", "estrom.cli"] if first.source else [str(Path(sys.executable).with_name("estrom"))]
        cmd = [*up, "beater", "--router-url", f"ws://127.0.0.1:{first.router_port}/ws", "--data-dir", str(self.data_dir),
               "--beater-port", str(self.port), "--log-level", "info", *args]  # into its log file: the Kafka lines
        self.log = self.data_dir / "beater.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                         env=env, cwd=first.source)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and self.proc.poll() is None:
            if http_status(self.beater + "/api/v0.1/health") == 200:
                return
            time.sleep(0.2)
        raise SystemExit("the second Beater did not start:\n" + self.log.read_text())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


# ---------------------------------------------------------------- tails

SENT = re.compile(r'"bench_n":(\d+),"bench_sent":([0-9.eE+-]+)')


class TailReader(threading.Thread):
    """One ndjson HTTP tail: counts hits; the q=* ones also keep (bench_n, arrival, latency)."""

    def __init__(self, tailor: str, index: str, query: str, keep: bool) -> None:
        super().__init__(daemon=True)
        self.url = urllib.parse.urlsplit(tailor)
        self.index, self.query, self.keep = index, query, keep
        self.hits = 0
        self.records: List[Tuple[int, float, float]] = []
        self.status = 0
        self.ready = threading.Event()
        self.error: Optional[str] = None

    def run(self) -> None:
        try:
            conn = http.client.HTTPConnection(self.url.hostname, self.url.port, timeout=600)
            params = urllib.parse.urlencode({"i": self.index, "q": self.query, "format": "ndjson"})
            conn.request("GET", f"/api/v0.1/docs?{params}")
            response = conn.getresponse()
            self.status = response.status
            self.ready.set()
            for line in response:
                now = time.time()
                m = SENT.search(line.decode("utf-8", "replace"))
                if m is None:
                    continue
                self.hits += 1
                if self.keep:
                    self.records.append((int(m.group(1)), now, (now - float(m.group(2))) * 1000.0))
        except Exception as e:  # noqa: BLE001 - reported
            self.error = repr(e)
            self.ready.set()


def open_tails(tailor: str, index: str, queries: List[str]) -> List[TailReader]:
    tails = [TailReader(tailor, index, "*", True)] + [TailReader(tailor, index, q, False) for q in queries]
    for t in tails:
        t.start()
    for t in tails:
        t.ready.wait(30)
        if t.status != 200:
            raise SystemExit(f"tail {index} {t.query!r} did not open: {t.status} {t.error}")
    return tails


def wait_until(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and of its live descendants."""
    parents: Dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parents[int(entry)] = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    total = 0.0
    for candidate in parents:
        ancestor = candidate
        while ancestor and ancestor != pid:
            ancestor = parents.get(ancestor, 0)
        if ancestor == pid:
            try:
                total += proc_cpu(candidate)
            except OSError:
                pass
    return total


def machine_cpu() -> Tuple[float, float]:
    """(busy, total) jiffies of all cores, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def own_cpu() -> float:
    """CPU seconds of this process: the tails' readers."""
    t = os.times()
    return t.user + t.system


def settle(tail: TailReader, want: int, quiet: float, limit: float) -> None:
    """Until the tail has ``want`` hits, or nothing arrived for ``quiet`` s, or ``limit`` s passed."""
    deadline = time.monotonic() + limit
    last, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        if tail.hits != last:
            last, last_change = tail.hits, time.monotonic()
        if tail.hits >= want and time.monotonic() - last_change > 0.5:
            return
        if time.monotonic() - last_change > quiet and last > 0:
            return
        time.sleep(0.1)


def drain(a: argparse.Namespace, bootstrap: str, topic: str, star: TailReader, first: int,
          beaters: List[Tuple[str, int, str]], others: Dict[str, Any]) -> Dict[str, Any]:
    """The backlog: every Beater of ``beaters`` ((name, pid, url)) frozen (SIGSTOP) while ``a.docs``
    records numbered from ``first`` are produced, so that the producer has the machine; then they
    drain them.  CPU is counted from SIGCONT until the q=* tail has them all, per Beater, per other
    part (``others``: name -> function giving CPU seconds), for this process (the tails) and the machine."""
    for _, pid, _ in beaters:
        os.kill(pid, signal.SIGSTOP)
    try:
        produced = json.loads(child(["--produce", bootstrap, topic, str(a.docs), str(first), "0"]).communicate()[0])
    finally:
        for _, pid, _ in beaters:
            os.kill(pid, signal.SIGCONT)
    counters: Dict[str, Any] = {name: (lambda pid=pid: proc_cpu(pid)) for name, pid, _ in beaters}
    counters.update(others)
    counters["bench_tails"] = own_cpu
    cpu0 = {name: f() for name, f in counters.items()}
    busy0 = machine_cpu()
    t0 = time.monotonic()
    records0 = {name: kafka_records(url) for name, _, url in beaters}
    samples: List[Tuple[float, float]] = [(time.time(), sum(records0.values()))]
    end = first + a.docs

    def arrived() -> int:
        return len({n for n, _, _ in list(star.records) if first <= n < end})

    deadline = t0 + a.timeout
    while arrived() < a.docs and time.monotonic() < deadline:
        time.sleep(0.25)
        samples.append((time.time(), sum(kafka_records(url) for _, _, url in beaters)))
    wall = time.monotonic() - t0
    cpu = {name: f() - cpu0[name] for name, f in counters.items()}
    busy1 = machine_cpu()
    settle(star, 0, quiet=3.0, limit=10.0)
    recs = [r for r in star.records if first <= r[0] < end]
    distinct = len({n for n, _, _ in recs})
    first_at = min(t for _, t, _ in recs) if recs else float("nan")
    last_at = max(t for _, t, _ in recs) if recs else float("nan")
    seconds = last_at - first_at
    consumed = {name: kafka_records(url) - records0[name] for name, _, url in beaters}
    rate_metrics = float("nan")
    base = samples[0][1]
    lo = [x for x in samples if x[1] - base >= 0.1 * a.docs]
    hi = [x for x in samples if x[1] - base >= 0.9 * a.docs]
    if lo and hi and hi[0][0] > lo[0][0]:
        rate_metrics = (hi[0][1] - lo[0][1]) / (hi[0][0] - lo[0][0])
    beater_cpu = sum(cpu[name] for name, _, _ in beaters)
    return {
        "produced": produced, "produce_docs_s": produced["produced"] / produced["seconds"],
        "distinct": distinct, "repeated": len(recs) - distinct, "seconds": seconds,
        "docs_s": distinct / seconds if recs and seconds > 0 else float("nan"), "rate_metrics": rate_metrics,
        "consumed": consumed, "wall": wall, "cpu": cpu, "cpu_pct": {k: 100 * v / wall for k, v in cpu.items()},
        "beater_cpu_pct": 100 * beater_cpu / wall, "cpu_us_doc": 1e6 * beater_cpu / max(1, distinct),
        "machine_busy_pct": 100 * (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]),
    }


def describe(d: Dict[str, Any], what: str) -> None:
    """Print what a drain measured."""
    p = d["produced"]
    print(f"produced {p['produced']} in {p['seconds']:.1f} s ({d['produce_docs_s']:.0f}/s), {what} stopped meanwhile", flush=True)
    consumed = ", ".join(f"{name} {n:.0f}" for name, n in d["consumed"].items())
    cpu = ", ".join(f"{name} {pct:.0f}%" for name, pct in d["cpu_pct"].items())
    print(f"Kafka -> {what} -> q=* tail: {d['distinct']} distinct of {d['produced']['produced']} ({d['repeated']} repeated) "
          f"in {d['seconds']:.1f} s from first to last delivery: {d['docs_s']:.0f} docs/s; records counted: {consumed}; "
          f"CPU of a core over the {d['wall']:.1f} s drain: {cpu} (Beaters {d['cpu_us_doc']:.0f} us/doc); "
          f"machine {d['machine_busy_pct']:.0f}% busy", flush=True)
    if d["rate_metrics"] == d["rate_metrics"]:
        print(f"/metrics estrom_kafka_records_total rate between 10% and 90% consumed: {d['rate_metrics']:.0f}/s", flush=True)
    if p["seconds"] > SESSION_TIMEOUT_S * 0.8:
        print(f"(the Beaters were stopped {p['seconds']:.1f} s, near the {SESSION_TIMEOUT_S:.0f} s session timeout: "
              "a rebalance may have run)", flush=True)


# ---------------------------------------------------------------- raw ceiling

def raw_consume(bootstrap: str, topic: str, count: int, partitions: int) -> Tuple[int, float]:
    """(records, seconds) for a plain group-less consumer reading the whole topic, decoding each value."""
    from kafka import KafkaConsumer, TopicPartition
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                             fetch_max_bytes=52428800, max_partition_fetch_bytes=4 * 1048576, max_poll_records=5000)
    parts = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    seen = 0
    started = time.monotonic()
    deadline = started + 120
    while seen < count and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                json.loads(record.value)
                seen += 1
    elapsed = time.monotonic() - started
    consumer.close()
    return seen, elapsed


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    admin.close()


def delete_topic(bootstrap: str, *topics: str) -> None:
    for topic in topics:
        try:
            from kafka.admin import KafkaAdminClient
            admin = KafkaAdminClient(bootstrap_servers=bootstrap)
            admin.delete_topics([topic])
            admin.close()
        except Exception as e:  # noqa: BLE001 - cleanup only
            print(f"(could not delete topic {topic}: {e!r})")


# ---------------------------------------------------------------- the run

def child(args: List[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(Path(__file__)), *args], stdout=subprocess.PIPE, text=True)


def run(a: argparse.Namespace) -> None:
    broker = Broker()
    run_id = uuid.uuid4().hex[:10]
    topic, group = f"estrom-bench-{run_id}", f"estrom-bench-{run_id}"
    flags = kafka_args(broker.bootstrap, topic, group)
    estrom: Optional[Estrom] = None
    second: Optional[SecondBeater] = None
    try:
        create_topic(broker.bootstrap, topic, a.partitions)
        estrom = Estrom(flags, a.estrom_source)
        estrom.wait_ready()
        queries = e2e_queries(load_documents(), a.queries)
        kafka_tails = open_tails(estrom.tailor, KAFKA_INDEX, queries)
        http_tails = open_tails(estrom.tailor, HTTP_INDEX, queries)
        print(f"estrom up; topic {topic} ({a.partitions} partitions), group {group}; "
              f"{len(kafka_tails)} tails on each of {KAFKA_INDEX} and {HTTP_INDEX} (q=* and {queries})", flush=True)
        star = kafka_tails[0]
        beater_pid, tailor_pid = estrom.beater_pid(), estrom.part_pid("tailor")
        # "router": the rest of estrom up's process tree, that is Crossbar's controller and workers (and estrom up).
        others = {"tailor": lambda: proc_cpu(tailor_pid),
                  "router": lambda: tree_cpu(estrom.proc.pid) - proc_cpu(beater_pid) - proc_cpu(tailor_pid)}

        # 0. Warm-up: the group owns the partitions and the path is hot once these are delivered.
        child(["--produce", broker.bootstrap, topic, str(a.warmup), str(WARMUP_FIRST), "0"]).communicate()
        wait_until(lambda: star.hits >= a.warmup, 90, "the warm-up records")
        time.sleep(1.0)

        # 1. The backlog, drained by one Beater.
        one = drain(a, broker.bootstrap, topic, star, 0, [("beater", beater_pid, estrom.beater)], others)
        describe(one, "the Beater")
        kafka_docs_s, distinct = one["docs_s"], one["distinct"]

        # 1b. Latency: records produced at a paced rate the Beater keeps up with.
        lat_count = int(a.latency_rate * a.latency_seconds)
        child(["--produce", broker.bootstrap, topic, str(lat_count), str(LATENCY_FIRST), str(a.latency_rate)]).communicate()
        settle(star, 0, quiet=3.0, limit=30.0)
        lat_recs = [r for r in star.records if LATENCY_FIRST <= r[0] < LATENCY_FIRST + lat_count]
        lat = sorted(l for _, _, l in lat_recs)
        lat_lost = lat_count - len({n for n, _, _ in lat_recs})
        print(f"produce -> q=* tail latency at {a.latency_rate:.0f} records/s for {a.latency_seconds:.0f} s: "
              f"p50 {percentile(lat, 50):.1f} ms, p99 {percentile(lat, 99):.1f} ms, "
              f"max {lat[-1] if lat else float('nan'):.1f} ms; {lat_lost} of {lat_count} missing", flush=True)
        kafka_hits = sum(t.hits for t in kafka_tails)
        print(f"{kafka_hits} hits over all {len(kafka_tails)} tails of {KAFKA_INDEX}", flush=True)

        # 2. HTTP ingest into another index, the same tails open there.
        http_cpu_before = proc_cpu(beater_pid)
        feeder = child(["--http-feed", estrom.beater, HTTP_INDEX, str(a.docs), str(a.chunk), str(a.http_connections)])
        fed = json.loads(feeder.communicate(timeout=a.timeout)[0])
        http_docs_s = fed["accepted"] / fed["seconds"]
        hstar = http_tails[0]
        settle(hstar, fed["accepted"], quiet=5.0, limit=60.0)
        http_cpu = proc_cpu(beater_pid) - http_cpu_before
        hrecs = list(hstar.records)
        hlast = max(t for _, t, _ in hrecs) if hrecs else float("nan")
        http_delivered_s = len({n for n, _, _ in hrecs}) / (hlast - fed["started"]) if hrecs else float("nan")
        print(f"HTTP ingest: {fed['accepted']} of {fed['posted']} accepted in {fed['seconds']:.1f} s: "
              f"{http_docs_s:.0f} docs/s answered (chunks of {a.chunk}, {a.http_connections} connections); "
              f"q=* tail got {len(hrecs)}, {http_delivered_s:.0f} docs/s from first POST to last delivery; "
              f"Beater used {http_cpu:.1f} CPU s ({http_cpu / fed['seconds']:.0%} of a core, "
              f"{1e6 * http_cpu / max(1, fed['accepted']):.0f} us/doc)"
              + (f"; errors {fed['errors']}" if fed["errors"] else ""), flush=True)

        # 3. The raw ceiling, nothing else running.
        raw_n, raw_s = raw_consume(broker.bootstrap, topic, a.warmup + a.docs + lat_count, a.partitions)  # the whole topic
        raw_docs_s = raw_n / raw_s
        print(f"raw kafka-python consumer (no group, json.loads each): {raw_n} records in {raw_s:.2f} s: "
              f"{raw_docs_s:.0f}/s", flush=True)

        # 4. Two Beaters in the group: a second one joins, the group rebalances, the same backlog again.
        two: Optional[Dict[str, Any]] = None
        split = ""
        if a.beaters == 2:
            second = SecondBeater(estrom, flags)
            second.wait_ready()
            beater2 = second

            def shared() -> bool:
                mine, theirs = held_partitions(estrom.beater, topic), held_partitions(beater2.beater, topic)
                return bool(mine and theirs) and sorted(mine + theirs) == list(range(a.partitions))

            # Warm-up rounds until the group has rebalanced and both Beaters consume: a Beater's lag gauges
            # (what held_partitions reads) appear only once its fetches have seen a partition's high watermark.
            counted = [kafka_records(estrom.beater), kafka_records(second.beater)]
            warmed, deadline = 0, time.monotonic() + 120
            while True:
                child(["--produce", broker.bootstrap, topic, str(a.warmup), str(TWO_WARMUP_FIRST + warmed), "0"]).communicate()
                warmed += a.warmup
                time.sleep(1.0)
                if shared() and kafka_records(estrom.beater) > counted[0] and kafka_records(second.beater) > counted[1]:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit("the two Beaters did not come to share the partitions within 120 s; the second said:\n"
                                     + second.log.read_text()[-3000:])
            wait_until(lambda: len({n for n, _, _ in list(star.records) if TWO_WARMUP_FIRST <= n < TWO_WARMUP_FIRST + warmed})
                       >= warmed, 90, "the warm-up records of two Beaters")
            split = "+".join(str(len(held_partitions(url, topic))) for url in (estrom.beater, second.beater))
            print(f"second Beater (pid {second.proc.pid}) in the group: partitions held {split}; "
                  f"{warmed} warm-up records delivered by both", flush=True)
            time.sleep(1.0)
            two = drain(a, broker.bootstrap, topic, star, TWO_FIRST,
                        [("beater1", beater_pid, estrom.beater), ("beater2", second.proc.pid, second.beater)], others)
            describe(two, "both Beaters")
            after = "+".join(str(len(held_partitions(url, topic))) for url in (estrom.beater, second.beater))
            if after != split:
                print(f"(partitions held changed during the drain: {split} -> {after})", flush=True)
            print(f"two Beaters vs one: {two['docs_s']:.0f} vs {kafka_docs_s:.0f} docs/s ({two['docs_s'] / kafka_docs_s:.2f}x); "
                  f"machine {two['machine_busy_pct']:.0f}% vs {one['machine_busy_pct']:.0f}% busy "
                  f"({os.cpu_count()} cores)", flush=True)

        ratio = kafka_docs_s / http_docs_s
        lost = a.docs - distinct + lat_lost + (a.docs - two["distinct"] if two else 0)
        print(f"target: Kafka >= 80% of HTTP ingest: {ratio:.2f} -> {'ok' if ratio >= 0.8 else 'MISSED'}; "
              f"Kafka at {kafka_docs_s / raw_docs_s:.1%} of the raw consumer", flush=True)
        pct = one["cpu_pct"]
        figures: Dict[str, Any] = {
            "kafka_docs_s": round(kafka_docs_s), "http_docs_s": round(http_docs_s), "ratio": round(ratio, 2),
            "raw_consume_docs_s": round(raw_docs_s),
            "kafka_metrics_docs_s": round(one["rate_metrics"]) if one["rate_metrics"] == one["rate_metrics"] else "nan",
            "http_delivered_docs_s": round(http_delivered_s), "produce_docs_s": round(one["produce_docs_s"]),
            "beater_cpu_pct": round(one["beater_cpu_pct"]), "kafka_cpu_us_doc": round(one["cpu_us_doc"]),
            "http_cpu_pct": round(100 * http_cpu / fed["seconds"]),
            "http_cpu_us_doc": round(1e6 * http_cpu / max(1, fed["accepted"])),
            "tailor_cpu_pct": round(pct["tailor"]), "router_cpu_pct": round(pct["router"]),
            "tails_cpu_pct": round(pct["bench_tails"]), "machine_busy_pct": round(one["machine_busy_pct"]),
        }
        if two is not None:
            tp = two["cpu_pct"]
            figures.update({
                "two_beaters_docs_s": round(two["docs_s"]), "two_vs_one": round(two["docs_s"] / kafka_docs_s, 2),
                "two_partitions": split, "two_beater1_cpu_pct": round(tp["beater1"]), "two_beater2_cpu_pct": round(tp["beater2"]),
                "two_cpu_us_doc": round(two["cpu_us_doc"]), "two_tailor_cpu_pct": round(tp["tailor"]),
                "two_router_cpu_pct": round(tp["router"]), "two_tails_cpu_pct": round(tp["bench_tails"]),
                "two_machine_busy_pct": round(two["machine_busy_pct"]), "two_repeated": two["repeated"],
                "two_more_than_one": int(two["docs_s"] > kafka_docs_s),
            })
        figures.update({
            "p50_ms": round(percentile(lat, 50)), "p99_ms": round(percentile(lat, 99)),
            "latency_rate": round(a.latency_rate), "delivered": distinct + lat_count - lat_lost + (two["distinct"] if two else 0),
            "expected": a.docs * (2 if two else 1) + lat_count, "lost": lost, "repeated": one["repeated"],
            "http_accepted": fed["accepted"], "tails": len(kafka_tails), "partitions": a.partitions,
            "beaters": a.beaters, "target_met": int(ratio >= 0.8),
        })
        print(" ".join(f"{k}={v}" for k, v in figures.items()), flush=True)
    finally:
        if second:
            second.stop()
        if estrom:
            estrom.stop()
        delete_topic(broker.bootstrap, topic, f"{topic}-registrations")
        broker.stop()


def main(argv: List[str]) -> None:
    if argv and argv[0] == "--produce":
        return produce(argv[1], argv[2], int(argv[3]), int(argv[4]), float(argv[5]))
    if argv and argv[0] == "--http-feed":
        return http_feed(argv[1], argv[2], int(argv[3]), int(argv[4]), int(argv[5]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=40620, help="documents produced (and posted)")
    parser.add_argument("--queries", type=int, default=10, help="tails besides q=* on each index")
    parser.add_argument("--chunk", type=int, default=500, help="documents per HTTP POST")
    parser.add_argument("--http-connections", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=500, help="records produced and delivered before measuring")
    parser.add_argument("--latency-rate", type=float, default=1000.0, help="records/s of the paced latency phase")
    parser.add_argument("--latency-seconds", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds each phase may take at most")
    parser.add_argument("--beaters", type=int, choices=(1, 2), default=1,
                        help="2: then a second Beater joins the group and the backlog is drained again by both")
    parser.add_argument("--partitions", type=int, default=PARTITIONS,
                        help="partitions of the topic (3 split 2+1 between two Beaters, 4 split 2+2)")
    parser.add_argument("--estrom-source", default=None,
                        help="run `python -m estrom.cli up` from this source tree (e.g. a `git archive` of a commit) "
                             "instead of the installed estrom")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
