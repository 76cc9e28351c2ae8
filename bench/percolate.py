"""Percolator benchmark: the embedded QueryIndex against Elasticsearch, same queries, same documents.

    python bench/percolate.py                              # 1000, 10000, 100000 queries
    python bench/percolate.py --queries 1000,10000 --docs 2000
    python bench/percolate.py --queries 100000 --es-docs 500 --es-max-seconds 300

For each size, the first N stored queries of one deterministic list
(:mod:`bench.shapes`: MUST/NOT term sets, phrases, prefix/wildcard, field terms,
ranges, boolean mixes over the vocabulary of examples/recentchange.ndjson) are
registered in

* the embedded percolator's synchronous core (:class:`QueryIndex`), in a fresh
  Python process so that its resident-memory growth can be measured alone, and
* a fresh Elasticsearch percolator index built as the Elasticsearch backend builds
  it (index body, mapping rules, stored query; ``_bulk`` in chunks, one refresh
  at the end),

and the same documents are percolated by both in batches of 100 (one
``match_batch`` call, one ``percolate`` request with ``documents: [...]``).
Both sides see the full field mapping before the queries are registered; once they are, the
embedded side freezes the garbage collector's view of them (``gc.freeze``), as the embedded
percolator does after loading its registrations at start.

Reported per size: docs/s of each side and their ratio (embedded / ES),
registration time of each, embedded RSS growth, total matches of each and the
number of (document, query) pairs on which they differ (over the documents both
percolated), and the embedded per-document time over the time of analysing the
document alone (:func:`analyse_document`, the floor of any percolation).  The floor is
measured in a fresh process right before each embedded run (best of two passes): in a
process holding every registration the garbage collector's full passes over them doubled
it, and this shared machine's speed drifts by up to 1.5x within minutes, so only a floor
taken next to the percolation makes a fair ratio.

Elasticsearch: ``ESTROM_ES_URL``, else ``scripts/services start elasticsearch``
is run and its last stdout line is the URL.  The indexes created are deleted at
the end.  Human-readable lines go to stdout as the run goes; the last line is
``key=value`` figures.
"""

from __future__ import annotations

import argparse
import gc
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from beater.errors import InvalidQuery, UnsupportedQuery  # noqa: E402
from beater.percolator.embedded.analysis import analyze_cached  # noqa: E402
from beater.percolator.embedded.fields import FieldModel, analyse_document  # noqa: E402
from beater.percolator.embedded.keys import document_keys  # noqa: E402
from beater.percolator.embedded.query_index import QueryIndex  # noqa: E402
from beater.registration import Registration, make_registration  # noqa: E402
from bench.shapes import generate  # noqa: E402
from bench.workload import load_documents  # noqa: E402
from tests.differential.es import Es, EsError, PercolatorIndex  # noqa: E402

INDEX = "bench"
BULK_CHUNK = 5000


def say(message: str) -> None:
    print(message, flush=True)


# --- Elasticsearch --------------------------------------------------------------------------------

def es_url() -> str:
    """ESTROM_ES_URL, else the URL ``scripts/services start elasticsearch`` prints; checked to answer."""
    url = os.environ.get("ESTROM_ES_URL")
    if not url:
        say("ESTROM_ES_URL unset: running scripts/services start elasticsearch")
        done = subprocess.run([sys.executable, str(ROOT / "scripts" / "services"), "start", "elasticsearch"],
                              stdout=subprocess.PIPE, text=True)
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            raise SystemExit(f"bench: could not start Elasticsearch (scripts/services exit {done.returncode})")
        url = lines[-1].strip()
    try:
        info = Es(url, timeout=10).request("GET", "/")
    except (OSError, EsError, ValueError) as e:
        raise SystemExit(f"bench: no Elasticsearch at {url}: {e}")
    say(f"elasticsearch {info.get('version', {}).get('number')} at {url}")
    return url


# --- embedded --------------------------------------------------------------------------------------

def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def embedded_run(registrations: Sequence[Registration], docs: Sequence[Mapping[str, Any]], batch: int,
                 warm: bool, keep: Optional[int] = None) -> Dict[str, Any]:
    """Register and percolate in this process; return figures, the number of matches and the matches of
    the first ``keep`` documents (None: of all).

    Only the matches compared with Elasticsearch's are kept: holding all of them (5.6 million at
    100,000 queries) put them in the RSS figure and in the collector's passes, neither of which a
    Beater has (it publishes each answer and lets it go)."""
    gc.collect()
    before = rss_kb()
    index = QueryIndex()
    index.grow_model(INDEX, docs)  # the mapping the ES side gets before its queries are stored
    unsupported: Dict[str, str] = {}
    started = time.perf_counter()
    for registration in registrations:
        try:
            index.add(registration)
        except UnsupportedQuery as e:
            unsupported[registration.id] = str(e)
    register_s = time.perf_counter() - started
    # As the embedded percolator does once it has loaded its registrations (beater/percolator/
    # embedded/__init__.py): left to the collector, its full passes walk every stored query again
    # and again while documents are matched (cold pass at 100,000 queries 1,304 vs 1,865 docs/s).
    gc.collect()
    gc.freeze()
    after_register = rss_kb()
    analyze_cached.cache_clear()
    results: List[List[str]] = []
    total = 0
    kept = len(docs) if keep is None else keep
    started = time.perf_counter()
    for start in range(0, len(docs), batch):
        answers = index.match_batch(INDEX, docs[start : start + batch])
        total += sum(len(ids) for ids in answers)
        if len(results) < kept:
            results.extend(answers[: kept - len(results)])
    match_s = time.perf_counter() - started
    warm_s = None
    if warm:
        started = time.perf_counter()
        for start in range(0, len(docs), batch):
            index.match_batch(INDEX, docs[start : start + batch])
        warm_s = time.perf_counter() - started
    gc.collect()
    after = rss_kb()
    gc.unfreeze()
    stats = index.stats().get(INDEX, {})
    return {
        "register_s": register_s, "match_s": match_s, "warm_s": warm_s, "results": results, "total": total,
        "unsupported": unsupported, "rss_register_kb": after_register - before, "rss_kb": after - before,
        "stats": stats,
    }


def embedded_subprocess(registrations: Sequence[Registration], docs: Sequence[Mapping[str, Any]], batch: int,
                        warm: bool, keep: Optional[int] = None) -> Dict[str, Any]:
    """:func:`embedded_run` in a fresh Python process (inputs and answer pickled through files),
    so that its RSS growth is the index's alone and not hidden in memory this process freed."""
    with tempfile.TemporaryDirectory(prefix="estrom-bench-") as tmp:
        inputs, output = Path(tmp) / "in.pickle", Path(tmp) / "out.pickle"
        inputs.write_bytes(pickle.dumps((list(registrations), list(docs), batch, warm, keep)))
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--embedded-child", tmp])
        if done.returncode != 0 or not output.exists():
            raise RuntimeError(f"embedded run failed (exit {done.returncode})")
        answer = pickle.loads(output.read_bytes())
    if "error" in answer:
        raise RuntimeError(f"embedded run failed: {answer['error']}")
    return answer


def floor_subprocess(docs: Sequence[Mapping[str, Any]]) -> float:
    """Seconds to analyse every document (best of two passes), in a fresh process holding only them.

    Run right before each embedded run: on this shared machine the speed drifts by up to 1.5x
    within minutes, so only a floor taken next to the percolation makes a ratio; and in a process
    holding every registration the garbage collector's full passes over them doubled it.  (Not in
    the embedded run's own process: the memory it frees would hide part of the index's RSS.)"""
    with tempfile.TemporaryDirectory(prefix="estrom-bench-") as tmp:
        (Path(tmp) / "in.pickle").write_bytes(pickle.dumps(list(docs)))
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--floor-child", tmp])
        output = Path(tmp) / "out.pickle"
        if done.returncode != 0 or not output.exists():
            raise RuntimeError(f"analysis floor run failed (exit {done.returncode})")
        return pickle.loads(output.read_bytes())


def floor_child(tmp: str) -> None:
    """The child side of :func:`floor_subprocess`."""
    docs = pickle.loads((Path(tmp) / "in.pickle").read_bytes())
    (Path(tmp) / "out.pickle").write_bytes(pickle.dumps(min(analysis_floor(docs)[0] for _ in range(2))))


def embedded_child(tmp: str) -> None:
    """The child side of :func:`embedded_subprocess`."""
    registrations, docs, batch, warm, keep = pickle.loads((Path(tmp) / "in.pickle").read_bytes())
    try:
        answer = embedded_run(registrations, docs, batch, warm, keep)
    except Exception as e:  # noqa: BLE001 - reported by the parent
        answer = {"error": repr(e)}
    (Path(tmp) / "out.pickle").write_bytes(pickle.dumps(answer))


def analysis_floor(docs: Sequence[Mapping[str, Any]]) -> Tuple[float, float]:
    """Seconds to analyse every document (cold token cache), and to compute their presearch keys."""
    model = FieldModel()
    model.grow(docs)
    analyze_cached.cache_clear()
    started = time.perf_counter()
    analysed = [analyse_document(doc, model) for doc in docs]
    analyse_s = time.perf_counter() - started
    started = time.perf_counter()
    for doc in analysed:
        document_keys(doc)
    keys_s = time.perf_counter() - started
    return analyse_s, keys_s


# --- the run ---------------------------------------------------------------------------------------

def registrations_for(docs: Sequence[Mapping[str, Any]], count: int, seed: int) -> Tuple[List[Registration], Dict[str, str], Dict[str, int]]:
    """``count`` registrations with distinct ids (first-come), their shapes, and parse failures by shape."""
    out: List[Registration] = []
    shape_of: Dict[str, str] = {}
    failures: Dict[str, int] = {}
    extra = 0
    while len(out) < count:
        wanted = count + extra
        out, shape_of, failures = [], {}, {}
        for shape, source in generate(docs, wanted, seed):
            try:
                registration = make_registration(INDEX, source)
            except (InvalidQuery, UnsupportedQuery):
                failures[shape] = failures.get(shape, 0) + 1
                continue
            if registration.id in shape_of:
                continue
            shape_of[registration.id] = shape
            out.append(registration)
            if len(out) == count:
                break
        extra = max(extra * 2, 100, (count - len(out)) * 2)
    return out, shape_of, failures


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--embedded-child":
        embedded_child(sys.argv[2])
        return
    if len(sys.argv) == 3 and sys.argv[1] == "--floor-child":
        floor_child(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", default="1000,10000,100000", help="comma-separated stored-query counts")
    parser.add_argument("--docs", type=int, default=0, help="documents to percolate (default: all of the sample)")
    parser.add_argument("--es-docs", type=int, default=0,
                        help="cap on the documents Elasticsearch percolates (default: all, 1000 from 100000 queries)")
    parser.add_argument("--es-max-seconds", type=float, default=0.0,
                        help="stop percolating on Elasticsearch after this many seconds per size (0: no limit)")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-warm", action="store_true", help="skip the embedded second (warm) pass")
    parser.add_argument("--show-mismatches", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(s) for s in args.queries.split(",") if s.strip()]

    url = es_url()
    sample = load_documents()
    docs = sample[: args.docs] if args.docs else sample
    say(f"{len(docs)} documents, query sizes {sizes}, batches of {args.batch}")

    started = time.perf_counter()
    registrations, shape_of, failures = registrations_for(sample, max(sizes), args.seed)  # vocabulary: whole sample
    parse_s = time.perf_counter() - started
    shapes: Dict[str, int] = {}
    for registration in registrations:
        shapes[shape_of[registration.id]] = shapes.get(shape_of[registration.id], 0) + 1
    say(f"generated and parsed {len(registrations)} queries in {parse_s:.1f} s; shapes {shapes}"
        + (f"; refused by the parser {failures}" if failures else ""))

    figures: Dict[str, Any] = {"docs": len(docs)}

    es = Es(url, timeout=900.0, retries=0)  # a long percolation must not be sent twice
    created: List[PercolatorIndex] = []
    try:
        for size in sizes:
            subset = registrations[:size]
            by_id = {r.id: r for r in subset}
            p = f"q{size}"
            say(f"--- {size} queries ---")

            cap = args.es_docs or (1000 if size >= 100_000 else len(docs))
            cap = min(cap, len(docs))
            floor_s = floor_subprocess(docs)
            emb = embedded_subprocess(subset, docs, args.batch, warm=not args.no_warm, keep=cap)
            emb_docs_s = len(docs) / emb["match_s"]
            per_doc_ms = emb["match_s"] / len(docs) * 1000
            floor_ms = floor_s / len(docs) * 1000
            say(f"embedded: registered in {emb['register_s']:.2f} s ({len(emb['unsupported'])} unsupported), "
                f"percolated {len(docs)} docs in {emb['match_s']:.2f} s = {emb_docs_s:.0f} docs/s "
                f"({per_doc_ms:.3f} ms/doc, {per_doc_ms / floor_ms:.1f}x analysis of {floor_ms:.3f} ms measured just before)"
                + (f", warm pass {len(docs) / emb['warm_s']:.0f} docs/s" if emb["warm_s"] else "")
                + f"; RSS +{emb['rss_kb'] / 1024:.1f} MB (+{emb['rss_register_kb'] / 1024:.1f} MB after registration); "
                f"stats {emb['stats']}")

            index = PercolatorIndex(es, docs, prefix="estrom-bench-")
            created.append(index)
            started = time.perf_counter()
            refused = index.register(subset, chunk=BULK_CHUNK)
            es_register_s = time.perf_counter() - started
            say(f"elasticsearch: registered in {es_register_s:.2f} s into {index.name} ({len(refused)} refused)")

            es_results: List[List[str]] = []
            started = time.perf_counter()
            for start in range(0, cap, args.batch):
                es_results.extend(index.percolate(docs[start : min(start + args.batch, cap)]))
                elapsed = time.perf_counter() - started
                if args.es_max_seconds and elapsed > args.es_max_seconds and len(es_results) < cap:
                    say(f"elasticsearch: stopping after {len(es_results)} docs ({elapsed:.0f} s)")
                    break
            es_s = time.perf_counter() - started
            done = len(es_results)
            es_docs_s = done / es_s
            say(f"elasticsearch: percolated {done} docs in {es_s:.2f} s = {es_docs_s:.1f} docs/s "
                f"({es_s / done * 1000:.2f} ms/doc)")
            index.delete()
            created.remove(index)

            # agreement on the documents both percolated, over the queries both accepted
            skip: Set[str] = set(refused) | set(emb["unsupported"])
            emb_pairs = {(i, q) for i, ids in enumerate(emb["results"][:done]) for q in ids if q not in skip}
            es_pairs = {(i, q) for i, ids in enumerate(es_results) for q in ids if q not in skip}
            only_emb, only_es = emb_pairs - es_pairs, es_pairs - emb_pairs
            emb_total = emb["total"]
            say(f"matches: embedded {emb_total} over {len(docs)} docs, {len(emb_pairs)} over the first {done}; "
                f"elasticsearch {len(es_pairs)} over {done}; differing pairs {len(only_emb) + len(only_es)} "
                f"(only embedded {len(only_emb)}, only elasticsearch {len(only_es)})")
            for side, pairs in (("embedded", only_emb), ("elasticsearch", only_es)):
                for i, q in sorted(pairs)[: args.show_mismatches]:
                    r = by_id[q]
                    say(f"  only {side}: doc #{i} (title {docs[i].get('title')!r}) query [{shape_of[q]}] {r.source}")
            for q, reason in list(refused.items())[:3]:
                say(f"  refused by elasticsearch: {by_id[q].source} ({reason[:200]})")
            for q, reason in list(emb["unsupported"].items())[:3]:
                say(f"  unsupported by embedded: {by_id[q].source} ({reason[:200]})")

            ratio = emb_docs_s / es_docs_s
            say(f"ratio embedded/elasticsearch: {ratio:.2f}")
            figures.update({
                f"{p}_embedded_docs_s": round(emb_docs_s, 1),
                f"{p}_embedded_warm_docs_s": round(len(docs) / emb["warm_s"], 1) if emb["warm_s"] else "na",
                f"{p}_es_docs_s": round(es_docs_s, 1),
                f"{p}_es_docs": done,
                f"{p}_ratio": round(ratio, 3),
                f"{p}_mismatches": len(only_emb) + len(only_es),
                f"{p}_only_embedded": len(only_emb),
                f"{p}_only_es": len(only_es),
                f"{p}_embedded_matches": emb_total,
                f"{p}_embedded_matches_common": len(emb_pairs),
                f"{p}_es_matches": len(es_pairs),
                f"{p}_register_s_embedded": round(emb["register_s"], 2),
                f"{p}_register_s_es": round(es_register_s, 2),
                f"{p}_rss_mb": round(emb["rss_kb"] / 1024, 1),
                f"{p}_unsupported": len(emb["unsupported"]),
                f"{p}_es_refused": len(refused),
                f"{p}_perc_over_analysis": round(per_doc_ms / floor_ms, 2),
                f"{p}_analyse_ms_per_doc": round(floor_ms, 4),
            })
    finally:
        for index in created:
            try:
                index.delete()
            except Exception as e:  # noqa: BLE001
                say(f"could not delete {index.name}: {e}")
        es.close()
    print(" ".join(f"{k}={v}" for k, v in figures.items()), flush=True)


if __name__ == "__main__":
    main()
