"""Kafka benchmark: one Beater consuming a topic, next to the raw consumer and the Beater's HTTP ingest.

    python bench/kafka.py                       # N = 40,620 (the sample x 10)
    python bench/kafka.py --docs 20310

It uses the broker at $ESTROM_KAFKA_BOOTSTRAP, or the one `scripts/services status kafka` says is
running, or starts one with `scripts/services start kafka` (and stops it at the end, then only).
It starts its own `estrom up` on free ports (temporary data directory) consuming a fresh topic of
3 partitions (unique name per run, fresh consumer group) into index ``events``, and opens HTTP
tails on it (``q=*`` plus ``--queries`` queries from workload.e2e_queries) in this process.

1. **Kafka -> Beater -> tails.** A producer process (this script with ``--produce``) sends the
   sample ``--docs`` times round, as fast as the broker takes them (linger 20 ms, 256 KiB
   batches, lz4 off), each stamped with ``bench_sent`` (its send time) and ``bench_n`` (its
   number). The Beater consumes while it is produced. The ``q=*`` tail counts distinct
   ``bench_n`` (delivered, lost, repeated); Kafka docs/s is delivered / (last delivery - first
   delivery); latency is produce -> ``q=*`` tail (it includes the backlog whenever the producer
   outruns the Beater, which it does: see the report's ``produce_docs_s``).
2. **HTTP ingest.** A feeder process (``--http-feed``) posts the same documents as NDJSON chunks of
   ``--chunk`` (500) on ``--http-connections`` (2) kept-alive connections as fast as the Beater
   answers, into index ``httpbench``, which has the same tails open; docs/s is documents answered
   over the feed's wall time (checked against what the ``q=*`` tail of that index got).
3. **Raw ceiling.** A plain KafkaConsumer (no group: assign the 3 partitions, seek to the beginning)
   reads the whole topic and JSON-decodes each value; records/s.

The last line is ``key=value`` figures: ``kafka_docs_s``, ``http_docs_s``, ``ratio`` (target >= 0.8),
``raw_consume_docs_s``, ``p50_ms``, ``p99_ms``, ``delivered``, ``expected``, ``lost``, ...
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

from bench.estrom_up import EstromUp  # noqa: E402
from bench.tails import percentile  # noqa: E402
from bench.workload import e2e_queries, load_documents  # noqa: E402

KAFKA_INDEX = "events"
WARMUP_FIRST = 10_000_000  # bench_n of the warm-up records
LATENCY_FIRST = 20_000_000  # bench_n of the paced (latency) records
HTTP_INDEX = "httpbench"
PARTITIONS = 3


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


class Estrom(EstromUp):
    """One `estrom up` consuming the topic, on free ports with a temporary data directory."""

    def __init__(self, bootstrap: str, topic: str, group: str, source: Optional[str] = None) -> None:
        super().__init__(["--kafka-bootstrap", bootstrap, "--kafka-topics", topic,
                          "--kafka-index-map", f"{topic}={KAFKA_INDEX}", "--kafka-group", group], prefix="estrom-kafka-",
                         source=source)

    def beater_pid(self) -> int:
        """The pid of the Beater."""
        return self.part_pid("beater")

    def kafka_records(self) -> float:
        """estrom_kafka_records_total summed, from the Beater's /metrics."""
        with urllib.request.urlopen(self.beater + "/metrics", timeout=5) as r:
            text = r.read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("estrom_kafka_records_total"))


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


# ---------------------------------------------------------------- raw ceiling

def raw_consume(bootstrap: str, topic: str, count: int) -> Tuple[int, float]:
    """(records, seconds) for a plain group-less consumer reading the whole topic, decoding each value."""
    from kafka import KafkaConsumer, TopicPartition
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                             fetch_max_bytes=52428800, max_partition_fetch_bytes=4 * 1048576, max_poll_records=5000)
    parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
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


def create_topic(bootstrap: str, topic: str) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    admin.close()


def delete_topic(bootstrap: str, topic: str) -> None:
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
    estrom: Optional[Estrom] = None
    try:
        create_topic(broker.bootstrap, topic)
        estrom = Estrom(broker.bootstrap, topic, group, a.estrom_source)
        estrom.wait_ready()
        queries = e2e_queries(load_documents(), a.queries)
        kafka_tails = open_tails(estrom.tailor, KAFKA_INDEX, queries)
        http_tails = open_tails(estrom.tailor, HTTP_INDEX, queries)
        print(f"estrom up; topic {topic} ({PARTITIONS} partitions), group {group}; "
              f"{len(kafka_tails)} tails on each of {KAFKA_INDEX} and {HTTP_INDEX} (q=* and {queries})", flush=True)
        star = kafka_tails[0]

        # 0. Warm-up: the group owns the partitions and the path is hot once these are delivered.
        child(["--produce", broker.bootstrap, topic, str(a.warmup), str(WARMUP_FIRST), "0"]).communicate()
        wait_until(lambda: star.hits >= a.warmup, 90, "the warm-up records")
        time.sleep(1.0)

        # 1. The backlog: the Beater frozen (SIGSTOP) while N records are produced, so that the
        #    producer has the machine; then it drains them.
        beater_pid = estrom.beater_pid()
        os.kill(beater_pid, signal.SIGSTOP)
        try:
            produced = json.loads(child(["--produce", broker.bootstrap, topic, str(a.docs), "0", "0"]).communicate()[0])
        finally:
            os.kill(beater_pid, signal.SIGCONT)
        produce_docs_s = produced["produced"] / produced["seconds"]
        print(f"produced {produced['produced']} in {produced['seconds']:.1f} s ({produce_docs_s:.0f}/s), "
              f"the Beater stopped meanwhile", flush=True)
        records_before = estrom.kafka_records()
        cpu_before = proc_cpu(beater_pid)
        samples: List[Tuple[float, float]] = [(time.time(), records_before)]
        deadline = time.monotonic() + a.timeout
        while star.hits - a.warmup < a.docs and time.monotonic() < deadline:
            time.sleep(0.5)
            samples.append((time.time(), estrom.kafka_records()))
        settle(star, 0, quiet=3.0, limit=10.0)
        beater_cpu = proc_cpu(beater_pid) - cpu_before
        recs = [r for r in star.records if r[0] < a.docs]
        distinct = len({n for n, _, _ in recs})
        first_at = min(t for _, t, _ in recs) if recs else float("nan")
        last_at = max(t for _, t, _ in recs) if recs else float("nan")
        kafka_s = last_at - first_at
        kafka_docs_s = distinct / kafka_s if recs and kafka_s > 0 else float("nan")
        consumed = estrom.kafka_records() - records_before
        print(f"Kafka -> Beater -> q=* tail: {distinct} distinct of {a.docs} ({len(recs) - distinct} repeated) "
              f"in {kafka_s:.1f} s from first to last delivery: {kafka_docs_s:.0f} docs/s; "
              f"Beater counted {consumed:.0f} records, used {beater_cpu:.1f} CPU s "
              f"({beater_cpu / kafka_s:.0%} of a core, {1e6 * beater_cpu / max(1, distinct):.0f} us/doc)", flush=True)
        rate_metrics = float("nan")
        lo = [x for x in samples if x[1] - records_before >= 0.1 * a.docs]
        hi = [x for x in samples if x[1] - records_before >= 0.9 * a.docs]
        if lo and hi and hi[0][0] > lo[0][0]:
            rate_metrics = (hi[0][1] - lo[0][1]) / (hi[0][0] - lo[0][0])
            print(f"Beater /metrics estrom_kafka_records_total rate between 10% and 90% consumed: "
                  f"{rate_metrics:.0f}/s", flush=True)

        # 1b. Latency: records produced at a paced rate the Beater keeps up with.
        lat_count = int(a.latency_rate * a.latency_seconds)
        child(["--produce", broker.bootstrap, topic, str(lat_count), str(LATENCY_FIRST), str(a.latency_rate)]).communicate()
        settle(star, 0, quiet=3.0, limit=30.0)
        lat_recs = [r for r in star.records if LATENCY_FIRST <= r[0]]
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
        raw_n, raw_s = raw_consume(broker.bootstrap, topic, a.warmup + a.docs + lat_count)  # the whole topic
        raw_docs_s = raw_n / raw_s
        print(f"raw kafka-python consumer (no group, json.loads each): {raw_n} records in {raw_s:.2f} s: "
              f"{raw_docs_s:.0f}/s", flush=True)

        ratio = kafka_docs_s / http_docs_s
        lost = a.docs - distinct + lat_lost
        print(f"target: Kafka >= 80% of HTTP ingest: {ratio:.2f} -> {'ok' if ratio >= 0.8 else 'MISSED'}; "
              f"Kafka at {kafka_docs_s / raw_docs_s:.1%} of the raw consumer", flush=True)
        figures: Dict[str, Any] = {
            "kafka_docs_s": round(kafka_docs_s), "http_docs_s": round(http_docs_s), "ratio": round(ratio, 2),
            "raw_consume_docs_s": round(raw_docs_s), "kafka_metrics_docs_s": round(rate_metrics) if rate_metrics == rate_metrics else "nan",
            "http_delivered_docs_s": round(http_delivered_s), "produce_docs_s": round(produce_docs_s),
            "beater_cpu_pct": round(100 * beater_cpu / kafka_s),
            "kafka_cpu_us_doc": round(1e6 * beater_cpu / max(1, distinct)),
            "http_cpu_pct": round(100 * http_cpu / fed["seconds"]),
            "http_cpu_us_doc": round(1e6 * http_cpu / max(1, fed["accepted"])),
            "p50_ms": round(percentile(lat, 50)), "p99_ms": round(percentile(lat, 99)),
            "latency_rate": round(a.latency_rate), "delivered": distinct + lat_count - lat_lost,
            "expected": a.docs + lat_count, "lost": lost, "repeated": len(recs) - distinct,
            "http_accepted": fed["accepted"], "tails": len(kafka_tails), "target_met": int(ratio >= 0.8),
        }
        print(" ".join(f"{k}={v}" for k, v in figures.items()), flush=True)
    finally:
        if estrom:
            estrom.stop()
        delete_topic(broker.bootstrap, topic)
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
    parser.add_argument("--estrom-source", default=None,
                        help="run `python -m estrom.cli up` from this source tree (e.g. a `git archive` of a commit) "
                             "instead of the installed estrom")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
