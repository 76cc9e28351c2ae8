"""Cluster benchmark: what a router-to-router link adds to each publish, next to a single router, in one run.

    python bench/cluster.py                          # 200 publishes/s, 5 rounds of 3 s per path
    python bench/cluster.py --rate 1000 --rounds 3 --seconds 2

It starts three real ``estrom router`` processes on loopback: a single router
(no peers), and two nodes of a cluster, A on 127.0.0.1 and B on 127.0.0.2, each
linked to the other as ``--router-peers``/``--router-peer-keys`` say.  A
publisher with the Beater's role and ticket sends ``docs-for-*`` events (one
recent-change hit each, as the Beater publishes them) at ``--rate`` per second,
each stamped with the time it was sent; a subscriber with the Tailor's role
takes them.  Three paths, measured in turns (``--rounds`` of ``--seconds``
each, so that a busy moment of the machine does not fall on one path only):

* ``single``: publisher and subscriber on the single router;
* ``local``: both on node A (what being a cluster node costs a local delivery:
  the disclosed publisher, the link's meta-event followers);
* ``rlink``: publisher on A, subscriber on B (the link's subscription on A,
  the hop to B, the re-publish there).

An unmeasured warm-up of 1,500 events per path comes first.  Every session sets TCP_NODELAY (``router.client``), as estrom's services do.
Publisher and subscriber run in this one process, so both stamps come from
one clock.  Progress lines go to stderr; the last line is ``key=value``
figures: ``rate``, ``events`` (per path), ``single_router_p50_ms``,
``single_router_p99_ms``, ``local_p50_ms``, ``local_p99_ms``, ``rlink_p50_ms``,
``rlink_p99_ms``, ``rlink_added_ms`` (rlink p50 minus single p50) and
``rlink_added_p99_ms``.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from twisted.internet import reactor, task  # noqa: E402
from twisted.internet.defer import Deferred, ensureDeferred  # noqa: E402

from bench.e2e import percentile  # noqa: E402
from bench.workload import load_documents  # noqa: E402
from router import contract  # noqa: E402
from router.client import service_component  # noqa: E402
from tests.integration.test_router_cluster import NODE_A, NODE_B, RouterNode  # noqa: E402

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
    for name in PATHS:
        lost = sent[name] - len(paths[name].latencies)
        say(f"{name}: {len(paths[name].latencies)} of {sent[name]} events received ({lost} missing)")
    figures["events"] = min(len(p.latencies) for p in paths.values())
    names = {"single": "single_router", "local": "local", "rlink": "rlink"}
    for name in PATHS:
        for p in (50, 99):
            figures[f"{names[name]}_p{p}_ms"] = round(1000 * percentile(paths[name].latencies, p), 3)
    figures["rlink_added_ms"] = round(figures["rlink_p50_ms"] - figures["single_router_p50_ms"], 3)
    figures["rlink_added_p99_ms"] = round(figures["rlink_p99_ms"] - figures["single_router_p99_ms"], 3)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="publishes per second on each path (default 200)")
    parser.add_argument("--rounds", type=int, default=5, help="turns over the three paths (default 5)")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per path per round (default 3)")
    args = parser.parse_args()
    nodes = start_nodes(Path(tempfile.mkdtemp(prefix="estrom-bench-cluster-")))
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
    try:
        reactor.run()
    finally:
        for node in nodes.values():
            node.stop()
    if failure:
        raise failure[0]
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
