"""Cluster benchmark: docs/s and p99 with one Beater vs two and one router vs two nodes, and what an rlink adds per publish.

    python bench/cluster.py                                  # all three parts, ~4 minutes
    python bench/cluster.py --parts beaters,routers          # the Kafka parts only
    python bench/cluster.py --parts rlink --rate 1000 --rounds 3 --seconds 2

It starts three real ``estrom router`` processes on loopback: a single router
(no peers), and two nodes of a cluster, A on 127.0.0.1 and B on 127.0.0.2, each
linked to the other as ``--router-peers``/``--router-peer-keys`` say.

**beaters, routers** (Kafka ingest -> Beater -> router(s) -> Tailor -> HTTP tails).  The broker is
bench/kafka.py's (``Broker``: $ESTROM_KAFKA_BOOTSTRAP, a running ``scripts/services`` kafka, or one
started and stopped here); each configuration gets a fresh topic of 4 partitions and a consumer group
of its own.  Beaters are ``estrom beater`` processes with the node's tickets (kafka.py's
``SecondBeater``), the Tailor ``estrom tailor`` (the cluster test's ``Service``); HTTP tails (q=* and
``--queries`` queries, kafka.py's ``open_tails``) read in this process.  Each document carries
``bench_n`` and its produce time, so the q=* tail counts lost and repeated documents and the
ingest -> tail latency is on one clock.  For each configuration, after a warm-up:

* fixed rate: ``--fixed-rate`` docs/s produced for ``--fixed-seconds`` (20 ms ticks): delivered docs/s
  (first to last delivery), p50/p99 latency;
* saturation: a backlog of ``--docs`` produced with the Beaters frozen (SIGSTOP), then drained as fast
  as they go (kafka.py's ``drain``): docs/s.  (Its latency is the freeze, so none is given.)

Configurations: one router with one Beater and the Tailor (``one_beater``, also ``one_router``: the
same measurement stands for both); ``beaters`` adds a second Beater to that group (partitions 2+2,
``two_beaters``); ``routers`` puts the Beater on A and the Tailor on B (``two_routers``).

**rlink** (per publish).  A publisher with the Beater's role and ticket sends ``docs-for-*`` events
(one recent-change hit each, as the Beater publishes them) at ``--rate`` per second, each stamped
with the time it was sent; a subscriber with the Tailor's role takes them.  Three paths, measured in
turns (``--rounds`` of ``--seconds`` each, so that a busy moment of the machine does not fall on one
path only):

* ``single``: publisher and subscriber on the single router;
* ``local``: both on node A (what being a cluster node costs a local delivery:
  the disclosed publisher, the link's meta-event followers);
* ``rlink``: publisher on A, subscriber on B (the link's subscription on A,
  the hop to B, the re-publish there).

An unmeasured warm-up of 1,500 events per path comes first.  Every session sets TCP_NODELAY
(``router.client``), as estrom's services do.  Publisher and subscriber run in this one process.

Progress lines go to stderr; the last line of stdout is ``key=value`` figures: ``parts``,
``one_beater_docs_s``, ``two_beaters_docs_s``, ``two_vs_one_beaters``, ``one_router_docs_s``,
``two_routers_docs_s``, ``two_vs_one_routers`` (saturation), ``<config>_fixed_docs_s``,
``<config>_p50_ms``, ``<config>_p99_ms`` (fixed rate), ``two_vs_one_*_p99``, ``delivered``, ``lost``,
``repeated`` (over every measured Kafka phase), then ``rate``, ``rlink_missing``, ``events`` (per
path), ``single_router_p50_ms``, ``single_router_p99_ms``, ``local_p50_ms``, ``local_p99_ms``,
``rlink_p50_ms``, ``rlink_p99_ms``, ``rlink_added_ms`` = ``rlink_added_p50_ms`` (rlink p50 minus single
p50), ``rlink_added_p99_ms``, and ``wall_s``.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List, Tuple

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, bench/ is sys.path[0] and bench/kafka.py would shadow kafka-python's ``kafka``.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from twisted.internet import reactor, task  # noqa: E402
from twisted.internet.defer import Deferred, ensureDeferred  # noqa: E402

from bench import kafka as kbench  # noqa: E402
from bench.e2e import percentile  # noqa: E402
from bench.workload import e2e_queries, load_documents  # noqa: E402
from router import contract  # noqa: E402
from router.client import service_component  # noqa: E402
from tests.integration.conftest import free_port  # noqa: E402
from tests.integration.processes import health  # noqa: E402
from tests.integration.test_router_cluster import NODE_A, NODE_B, RouterNode, Service  # noqa: E402

PATHS = ("single", "local", "rlink")


def say(text: str) -> None:
    """One progress line on stderr (stdout ends with the figures only)."""
    print(text, file=sys.stderr, flush=True)


async def join(node: RouterNode, role: str) -> Any:
    """A session on ``node`` with ``role``'s ticket from the node's data directory (TCP_NODELAY set)."""
    ticket = json.loads((node.data_dir / "secrets.json").read_text())[role]
    component = service_component(node.url, role, ticket, "rawsocket")
    joined: Deferred[Any] = Deferred()
    component.on_join(lambda session, details: joined.called or joined.callback(session))
    component.start(reactor)
    return await joined


class Path_:
    """One publisher and one subscriber of one topic, and the latencies the subscriber saw."""

    def __init__(self, name: str, publisher: Any, subscriber: Any) -> None:
        self.name = name
        self.publisher = publisher
        self.subscriber = subscriber
        self.topic = contract.topic_for(f"bench-{name}")
        self.latencies: List[float] = []
        self.measuring = False

    async def subscribe(self) -> None:
        def on_event(hits: List[Any]) -> None:
            if self.measuring:
                self.latencies.append(time.perf_counter() - hits[0]["_bench_sent"])

        await self.subscriber.subscribe(on_event, self.topic)

    async def run(self, hit: Dict[str, Any], rate: float, seconds: float) -> int:
        """Publish at ``rate`` for ``seconds``; answer how many were sent."""
        interval, sent = 1.0 / rate, 0
        self.measuring = True
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            due = start + sent * interval
            wait = due - time.perf_counter()
            if wait > 0:
                await task.deferLater(reactor, wait, lambda: None)
            self.publisher.publish(self.topic, [dict(hit, _bench_sent=time.perf_counter())])
            sent += 1
        await task.deferLater(reactor, 0.5, lambda: None)  # the last events arrive
        self.measuring = False
        return sent


def start_nodes(root: Path) -> Dict[str, RouterNode]:
    """The single router and the two linked nodes, booted and linked."""
    single = RouterNode("single", NODE_A, root / "single")
    a, b = RouterNode("A", NODE_A, root / "node-a"), RouterNode("B", NODE_B, root / "node-b")
    a.peers, b.peers = [b], [a]
    nodes = {"single": single, "a": a, "b": b}
    a.public_key(), b.public_key()  # before either starts (and makes its key)
    try:
        for node in nodes.values():
            node.start()
        for node in nodes.values():
            node.wait_booted()
        deadline = time.monotonic() + 60
        while not (a.links_up() and b.links_up()):
            if time.monotonic() > deadline:
                raise SystemExit("the two nodes did not link:\n" + "".join(a.output + b.output))
            time.sleep(0.1)
    except BaseException:
        for node in nodes.values():
            node.stop()
        raise
    return nodes


async def measure(args: argparse.Namespace, nodes: Dict[str, RouterNode]) -> Dict[str, Any]:
    hit = {"_index": "bench", "_id": "1", "_seq": 1, "_source": load_documents()[0]}
    paths = {
        "single": Path_("single", await join(nodes["single"], "beater"), await join(nodes["single"], "tailor")),
        "local": Path_("local", await join(nodes["a"], "beater"), await join(nodes["a"], "tailor")),
        "rlink": Path_("rlink", await join(nodes["a"], "beater"), await join(nodes["b"], "tailor")),
    }
    for path in paths.values():
        await path.subscribe()
    await task.deferLater(reactor, 1.0, lambda: None)  # the link's subscription reaches A
    # The sessions live for the whole run: keep the collector from walking them again and again.
    gc.collect()
    gc.freeze()
    # Unmeasured warm-up (as bench/e2e.py's): a fresh router stalls once (~0.1 s) within its first ~1,000 events.
    for path in paths.values():
        await path.run(hit, 1000.0, 1.5)
        path.latencies.clear()
    sent = {name: 0 for name in PATHS}
    for round_no in range(args.rounds):
        for name in PATHS:
            sent[name] += await paths[name].run(hit, args.rate, args.seconds)
        say("round {}: ".format(round_no + 1) + ", ".join(
            f"{n} p50 {1000 * percentile(paths[n].latencies, 50):.2f} ms" for n in PATHS))
    figures: Dict[str, Any] = {"rate": args.rate}
    figures["rlink_missing"] = 0
    for name in PATHS:
        lost = sent[name] - len(paths[name].latencies)
        figures["rlink_missing"] += lost
        say(f"{name}: {len(paths[name].latencies)} of {sent[name]} events received ({lost} missing)")
    figures["events"] = min(len(p.latencies) for p in paths.values())
    names = {"single": "single_router", "local": "local", "rlink": "rlink"}
    for name in PATHS:
        for p in (50, 99):
            figures[f"{names[name]}_p{p}_ms"] = round(1000 * percentile(paths[name].latencies, p), 3)
    figures["rlink_added_ms"] = round(figures["rlink_p50_ms"] - figures["single_router_p50_ms"], 3)
    figures["rlink_added_p99_ms"] = round(figures["rlink_p99_ms"] - figures["single_router_p99_ms"], 3)
    return figures


    figures["rlink_added_p50_ms"] = figures["rlink_added_ms"]
    return figures


# ---------------------------------------------------------------- docs/s and p99: Kafka -> Beater(s) -> HTTP tails

PARTITIONS = 4  # two Beaters split them 2+2
SETTLE_QUIET_S = 3.0  # a paced phase is over once the q=* tail got nothing new for this long


class Numbers:
    """``bench_n`` ranges handed out in turn: every phase's records are told apart on the q=* tail."""

    def __init__(self) -> None:
        self.next = 40_000_000  # above kafka.py's ranges, should both ever share a topic

    def take(self, count: int) -> int:
        """The first number of a fresh range of ``count``."""
        first = self.next
        self.next += count + 1000
        return first


def service_host(node: RouterNode) -> SimpleNamespace:
    """``node`` in the shape ``kafka.SecondBeater`` takes its router from (data directory, port, no other tree)."""
    if node.host != "127.0.0.1":  # SecondBeater joins ws://127.0.0.1:<port>/ws
        raise ValueError(f"a Beater can only join a node on 127.0.0.1, not {node.host}")
    return SimpleNamespace(data_dir=node.data_dir, router_port=node.port, source=None)


def wait_tailor_reaches_beater(tailor: Service, timeout: float = 90.0) -> None:
    """Until the Tailor's health says a Beater answers (across the link when they are on two nodes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = health(tailor.port)
        if answer and answer[0] == 200 and isinstance(answer[1], dict) and answer[1].get("beater"):
            return
        time.sleep(0.2)
    raise SystemExit("the Tailor never reached a Beater:\n" + "".join(tailor.output))


def latency_figures(records: List[Tuple[int, float, float]], expected: int) -> Dict[str, Any]:
    """Delivered, lost, repeated, docs/s (first to last delivery) and latency p50/p99 (ms) of one phase's records."""
    distinct = len({n for n, _, _ in records})
    arrivals = [t for _, t, _ in records]
    span = max(arrivals) - min(arrivals) if records else 0.0
    latencies = sorted(l for _, _, l in records)  # kafka.py's percentile takes them sorted
    return {"delivered": distinct, "lost": expected - distinct, "repeated": len(records) - distinct,
            "docs_s": distinct / span if span > 0 else float("nan"),
            "p50_ms": kbench.percentile(latencies, 50), "p99_ms": kbench.percentile(latencies, 99)}


class Setup:
    """One topology: Beater(s) joined to ``beater_node``, a Tailor to ``tailor_node``, a fresh topic of
    ``PARTITIONS`` partitions and a consumer group of its own, HTTP tails (q=* and ``queries``) on the Tailor."""

    def __init__(self, name: str, bootstrap: str, beater_node: RouterNode, tailor_node: RouterNode,
                 queries: List[str], numbers: Numbers) -> None:
        self.name, self.bootstrap, self.numbers = name, bootstrap, numbers
        self.topic = f"estrom-bench-cluster-{name}-{uuid.uuid4().hex[:8]}"
        self.flags = kbench.kafka_args(bootstrap, self.topic, self.topic)
        self.host = service_host(beater_node)
        self.beaters: List[kbench.SecondBeater] = []
        self.tailor = Service("tailor", tailor_node, free_port())
        self.tails: List[kbench.TailReader] = []
        kbench.create_topic(bootstrap, self.topic, PARTITIONS)
        try:
            self.tailor.start()
            self.beaters.append(kbench.SecondBeater(self.host, self.flags))
            self.beaters[0].wait_ready()
            wait_tailor_reaches_beater(self.tailor)
            self.tails = kbench.open_tails(f"http://127.0.0.1:{self.tailor.port}", kbench.KAFKA_INDEX, queries)
        except BaseException:
            self.stop()
            raise

    @property
    def star(self) -> kbench.TailReader:
        """The q=* tail: every document's (bench_n, arrival, latency)."""
        return self.tails[0]

    def produce(self, count: int, rate: float) -> Tuple[int, Dict[str, Any]]:
        """``count`` records at ``rate``/s (0: as fast as the broker takes them); (first bench_n, the producer's summary)."""
        first = self.numbers.take(count)
        out = kbench.child(["--produce", self.bootstrap, self.topic, str(count), str(first), str(rate)]).communicate()[0]
        return first, json.loads(out)

    def records(self, first: int, count: int) -> List[Tuple[int, float, float]]:
        """The q=* tail's records of the range ``first``..``first + count``."""
        return [r for r in list(self.star.records) if first <= r[0] < first + count]

    def warm_up(self, count: int, rate: float = 0) -> None:
        """Records produced (at ``rate``/s, 0: at once) and delivered before measuring: the group owns the
        partitions, the path is hot."""
        first, _ = self.produce(count, rate)
        kbench.wait_until(lambda: len({n for n, _, _ in self.records(first, count)}) >= count, 90,
                          f"the warm-up records of {self.name}")
        time.sleep(1.0)

    def add_beater(self, warmup: int) -> str:
        """A second Beater joins the group; warm-up rounds until the two hold all partitions between them and both
        consumed (as ``bench/kafka.py --beaters 2``); answers the split, e.g. ``2+2``."""
        second = kbench.SecondBeater(self.host, self.flags)
        self.beaters.append(second)
        second.wait_ready()
        urls = [b.beater for b in self.beaters]

        def shared() -> bool:
            held = [kbench.held_partitions(url, self.topic) for url in urls]
            return all(held) and sorted(sum(held, [])) == list(range(PARTITIONS))

        counted = [kbench.kafka_records(url) for url in urls]
        deadline = time.monotonic() + 120
        while True:
            self.warm_up(warmup)
            if shared() and all(kbench.kafka_records(url) > c for url, c in zip(urls, counted)):
                break
            if time.monotonic() > deadline:
                raise SystemExit("the two Beaters did not come to share the partitions within 120 s:\n"
                                 + second.log.read_text()[-3000:])
        return "+".join(str(len(kbench.held_partitions(url, self.topic))) for url in urls)

    def fixed(self, rate: float, seconds: float) -> Dict[str, Any]:
        """``rate`` docs/s offered for ``seconds``: what the q=* tail got, and its ingest (produce) -> tail latency."""
        count = int(rate * seconds)
        want = self.star.hits + count
        first, produced = self.produce(count, rate)
        kbench.settle(self.star, want, quiet=SETTLE_QUIET_S, limit=30.0)
        records = self.records(first, count)
        figures = latency_figures(records, count)
        figures["offered_docs_s"] = count / produced["seconds"]
        # Where the slowest one fell: a single stall early in the phase reads differently from a steady tail.
        start = min((r[1] for r in records), default=float("nan"))
        slowest = max(records, key=lambda r: r[2], default=(0, float("nan"), float("nan")))
        figures["max_ms"], figures["max_at_s"] = slowest[2], slowest[1] - start
        return figures

    def saturation(self, docs: int, timeout: float) -> Dict[str, Any]:
        """A backlog of ``docs`` drained as fast as the Beaters go (``bench/kafka.py``'s ``drain``: frozen while
        it is produced)."""
        first = self.numbers.next
        beaters = [(f"beater{i + 1}", b.proc.pid, b.beater) for i, b in enumerate(self.beaters)]
        drained = kbench.drain(argparse.Namespace(docs=docs, timeout=timeout), self.bootstrap, self.topic, self.star,
                               first, beaters, {})
        self.numbers.take(docs)
        if drained["produced"]["seconds"] > kbench.SESSION_TIMEOUT_S * 0.8:
            say(f"({self.name}: the Beaters were frozen {drained['produced']['seconds']:.1f} s, near the session "
                "timeout: a rebalance may have run; use a smaller --docs)")
        return {"delivered": drained["distinct"], "lost": docs - drained["distinct"], "repeated": drained["repeated"],
                "docs_s": drained["docs_s"], "machine_busy_pct": drained["machine_busy_pct"]}

    def stop(self) -> None:
        """Beaters, Tailor (which ends the tails), the topics."""
        for beater in self.beaters:
            beater.stop()
        self.tailor.stop()
        kbench.delete_topic(self.bootstrap, self.topic, f"{self.topic}-registrations")


def measure_config(setup: Setup, label: str, args: argparse.Namespace) -> Dict[str, Dict[str, Any]]:
    """The fixed rate, then saturation, of one configuration; a progress line for each."""
    fixed = setup.fixed(args.fixed_rate, args.fixed_seconds)
    say(f"{label} at {args.fixed_rate:.0f} docs/s offered ({fixed['offered_docs_s']:.0f} produced) for "
        f"{args.fixed_seconds:.0f} s: {fixed['docs_s']:.0f} docs/s delivered, p50 {fixed['p50_ms']:.1f} ms, "
        f"p99 {fixed['p99_ms']:.1f} ms, max {fixed['max_ms']:.0f} ms at {fixed['max_at_s']:.1f} s; "
        f"lost {fixed['lost']}, repeated {fixed['repeated']}")
    saturated = setup.saturation(args.docs, args.timeout)
    say(f"{label} at saturation ({args.docs} backlog): {saturated['docs_s']:.0f} docs/s; lost {saturated['lost']}, "
        f"repeated {saturated['repeated']}; machine {saturated['machine_busy_pct']:.0f}% busy")
    return {"fixed": fixed, "saturation": saturated}


def measure_kafka_parts(args: argparse.Namespace, parts: List[str], nodes: Dict[str, RouterNode]) -> Dict[str, Any]:
    """One Beater vs two (single router), one router vs two nodes (Beater on A, Tailor on B); their figures.

    "One router" is the single-router, one-Beater configuration: when both parts run it is measured once
    and stands for both."""
    broker = kbench.Broker()
    queries = e2e_queries(load_documents(), args.queries)
    numbers = Numbers()
    results: Dict[str, Dict[str, Dict[str, Any]]] = {}
    split = ""
    try:
        single = Setup("single", broker.bootstrap, nodes["single"], nodes["single"], queries, numbers)
        try:
            say(f"single router: Beater and Tailor on it, topic {single.topic} ({PARTITIONS} partitions), "
                f"{len(single.tails)} tails")
            single.warm_up(args.warmup)
            single.warm_up(int(args.fixed_rate * args.warmup_seconds), args.fixed_rate)
            results["one"] = measure_config(single, "one router, one Beater", args)
            if "beaters" in parts:
                split = single.add_beater(args.warmup)
                say(f"second Beater in the group: partitions held {split}")
                single.warm_up(int(args.fixed_rate * args.warmup_seconds), args.fixed_rate)
                results["two_beaters"] = measure_config(single, "one router, two Beaters", args)
        finally:
            single.stop()
        if "routers" in parts:
            linked = Setup("cluster", broker.bootstrap, nodes["a"], nodes["b"], queries, numbers)
            try:
                say(f"two nodes: Beater on A, Tailor on B, topic {linked.topic}, {len(linked.tails)} tails")
                linked.warm_up(args.warmup)
                linked.warm_up(int(args.fixed_rate * args.warmup_seconds), args.fixed_rate)
                results["two_routers"] = measure_config(linked, "two routers (Beater on A, Tailor on B)", args)
            finally:
                linked.stop()
    finally:
        broker.stop()

    figures: Dict[str, Any] = {"fixed_rate": round(args.fixed_rate), "fixed_seconds": args.fixed_seconds,
                               "backlog_docs": args.docs, "partitions": PARTITIONS}
    names = {"one": ["one_beater"] * ("beaters" in parts) + ["one_router"] * ("routers" in parts),
             "two_beaters": ["two_beaters"], "two_routers": ["two_routers"]}
    for config, result in results.items():
        for name in names[config]:
            figures[f"{name}_docs_s"] = round(result["saturation"]["docs_s"])
            figures[f"{name}_fixed_docs_s"] = round(result["fixed"]["docs_s"])
            figures[f"{name}_p50_ms"] = round(result["fixed"]["p50_ms"], 1)
            figures[f"{name}_p99_ms"] = round(result["fixed"]["p99_ms"], 1)
    for two, one, key in (("two_beaters", "one_beater", "two_vs_one_beaters"), ("two_routers", "one_router", "two_vs_one_routers")):
        if f"{two}_docs_s" in figures:
            figures[key] = round(figures[f"{two}_docs_s"] / figures[f"{one}_docs_s"], 2)
            figures[f"{key}_p99"] = round(figures[f"{two}_p99_ms"] / figures[f"{one}_p99_ms"], 2)
    if split:
        figures["two_beaters_partitions"] = split
    phases = [phase for result in results.values() for phase in result.values()]
    figures["delivered"] = sum(p["delivered"] for p in phases)
    figures["lost"] = sum(p["lost"] for p in phases)
    figures["repeated"] = sum(p["repeated"] for p in phases)
    return figures


# ---------------------------------------------------------------- the run

PARTS = ("beaters", "routers", "rlink")


def parse_parts(text: str) -> List[str]:
    """``--parts``: a comma-separated subset of ``PARTS``."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        raise argparse.ArgumentTypeError(f"parts are {','.join(PARTS)}; not {','.join(unknown) or 'nothing'}")
    return parts


def measure_rlink_in_reactor(args: argparse.Namespace, nodes: Dict[str, RouterNode]) -> Dict[str, Any]:
    """The rlink per-publish measurement, in a reactor run of its own (the last thing this process does)."""
    figures: Dict[str, Any] = {}
    failure: List[BaseException] = []

    async def run() -> None:
        try:
            figures.update(await measure(args, nodes))
        except BaseException as e:  # reported after the reactor stopped
            failure.append(e)
        finally:
            reactor.stop()

    reactor.callWhenRunning(lambda: ensureDeferred(run()))
    reactor.run()
    if failure:
        raise failure[0]
    return figures


def main() -> None:
    """Run the chosen parts and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=parse_parts, default=list(PARTS),
                        help="comma-separated, of beaters,routers,rlink (default all three)")
    parser.add_argument("--rate", type=float, default=200.0, help="rlink: publishes per second on each path (default 200)")
    parser.add_argument("--rounds", type=int, default=5, help="rlink: turns over the three paths (default 5)")
    parser.add_argument("--seconds", type=float, default=3.0, help="rlink: seconds per path per round (default 3)")
    parser.add_argument("--fixed-rate", type=float, default=1000.0, help="beaters/routers: docs/s offered (default 1000)")
    parser.add_argument("--fixed-seconds", type=float, default=10.0, help="beaters/routers: seconds offered (default 10)")
    parser.add_argument("--docs", type=int, default=20000, help="beaters/routers: backlog drained at saturation")
    parser.add_argument("--queries", type=int, default=10, help="beaters/routers: tails besides q=*")
    parser.add_argument("--warmup", type=int, default=500, help="beaters/routers: records delivered before measuring")
    parser.add_argument("--warmup-seconds", type=float, default=3.0,
                        help="beaters/routers: then this many seconds at --fixed-rate, unmeasured (default 3)")
    parser.add_argument("--timeout", type=float, default=120.0, help="beaters/routers: seconds a drain may take")
    args = parser.parse_args()
    started = time.monotonic()
    nodes = start_nodes(Path(tempfile.mkdtemp(prefix="estrom-bench-cluster-")))
    figures: Dict[str, Any] = {"parts": ",".join(args.parts)}
    try:
        if "beaters" in args.parts or "routers" in args.parts:
            figures.update(measure_kafka_parts(args, args.parts, nodes))
        if "rlink" in args.parts:
            figures.update(measure_rlink_in_reactor(args, nodes))
    finally:
        for node in nodes.values():
            node.stop()
    figures["wall_s"] = round(time.monotonic() - started)
    print(" ".join(f"{k}={v}" for k, v in figures.items()), flush=True)


if __name__ == "__main__":
    main()
