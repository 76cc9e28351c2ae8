"""Analysis benchmark: µs to read one recent-change event as Elasticsearch indexes it, native and pure Python.

    python bench/analysis.py                  # 7 native passes, 3 pure-Python passes
    python bench/analysis.py --passes 15 --python-passes 5

Every event of examples/data/recentchange.ndjson (4,062) is analysed
(:func:`analyse_document`, no scope: every field, as for a query on ``*``) with a
warmed field model (grown batch by batch over the whole sample, as the percolator's
is once it has seen them), by

* the native module (``_analysis.c``: tokenizer and walk), and
* the pure-Python fallback (the same plan-driven walk and the regex tokenizer), which
  the package runs where no C compiler was available,

in the same run, alternating passes, each pass starting with an empty token cache
(``analyze_cached``: the short texts repeated within a stream, wiki names, domains,
still hit it).  Per pass: mean, p50 and p99 of the per-event times; reported per
implementation: the pass with the median mean, and the range of the pass means
(this shared machine drifts, so ranges).

Then where the time goes, per event, on the same events: tokenizing the text
fields alone, parsing the date fields alone, creating the AnalysedDoc alone, and
the rest (the walk: the per-value decisions and the dicts and lists of the
AnalysedDoc).  The last line is ``key=value`` figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from beater.percolator.embedded import analysis, fields  # noqa: E402
from beater.percolator.embedded.analysis import analyze_cached  # noqa: E402
from beater.percolator.embedded.fields import TEXT, DATE, AnalysedDoc, FieldModel, analyse_document, parse_date  # noqa: E402

CORPUS = ROOT / "examples" / "data" / "recentchange.ndjson"
BATCH = 100  # the percolator grows its model before each batch of this many


def load(path: Path) -> List[Dict[str, Any]]:
    """The events of an NDJSON file."""
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def warmed_model(docs: Sequence[Mapping[str, Any]]) -> FieldModel:
    """The field model after the percolator has seen every batch of ``docs``."""
    model = FieldModel()
    for start in range(0, len(docs), BATCH):
        model.grow(docs[start : start + BATCH])
    return model


@contextmanager
def pure_python() -> Iterator[None]:
    """The package as installed without a C compiler: no native tokenizer, no native walk."""
    saved = analysis._native, fields._native
    analysis._native = fields._native = None
    analyze_cached.cache_clear()
    try:
        yield
    finally:
        analysis._native, fields._native = saved
        analyze_cached.cache_clear()


def one_pass(docs: Sequence[Mapping[str, Any]], model: FieldModel) -> List[float]:
    """µs per event of one pass over ``docs`` (token cache emptied first; results dropped, as after matching)."""
    analyze_cached.cache_clear()
    clock = time.perf_counter_ns
    out: List[float] = []
    for doc in docs:
        started = clock()
        analyse_document(doc, model)
        out.append((clock() - started) / 1000)
    return out


def summary(times: Sequence[float]) -> Dict[str, float]:
    """mean, p50 and p99 of per-event µs."""
    ordered = sorted(times)
    return {
        "mean": statistics.fmean(ordered),
        "p50": ordered[len(ordered) // 2],
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
    }


def values_of_kind(docs: Sequence[Mapping[str, Any]], model: FieldModel, kind: str) -> List[Any]:
    """Every value of a field of ``kind`` in ``docs``, as the walk reaches them."""
    out: List[Any] = []

    def walk(obj: Mapping[str, Any], prefix: str) -> None:
        for key, value in obj.items():
            path = prefix + key
            mapped = model.types.get(path)
            for item in value if isinstance(value, list) else [value]:
                if mapped == "object" and isinstance(item, dict):
                    walk(item, path + ".")
                elif mapped == kind and item is not None and not isinstance(item, (dict, list)):
                    out.append(item)

    for doc in docs:
        walk(doc, "")
    return out


def each(fn: Callable[[Any], Any], items: Sequence[Any]) -> None:
    """``fn`` on every item, the results dropped."""
    for item in items:
        fn(item)


def seconds(fn: Callable[[], Any], repeat: int = 3) -> float:
    """Best of ``repeat`` runs of ``fn``."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def breakdown(
    docs: Sequence[Mapping[str, Any]], model: FieldModel, tokenize: Callable[[str], Any], dates_apart: bool
) -> Dict[str, float]:
    """µs per event spent tokenizing, parsing dates (``dates_apart``: else counted in the walk), creating
    AnalysedDocs, and the rest (the walk)."""
    texts = [t if isinstance(t, str) else fields.text_of(t) for t in values_of_kind(docs, model, TEXT)]
    dates = values_of_kind(docs, model, DATE)
    n = len(docs)

    def cold(fn: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            analyze_cached.cache_clear()
            return fn()
        return run

    # Each result dropped at once, as the percolator drops it: kept, the garbage collector's passes over
    # them would be most of the time measured.
    total = seconds(cold(lambda: each(lambda d: analyse_document(d, model), docs))) / n * 1e6
    tokens = seconds(cold(lambda: each(tokenize, texts))) / n * 1e6
    parsed = seconds(lambda: each(parse_date, dates)) / n * 1e6 if dates_apart else 0.0
    created = seconds(lambda: each(lambda _: AnalysedDoc(types=model.types), docs)) / n * 1e6
    return {"total": total, "tokenizing": tokens, "dates": parsed, "analysed_doc": created,
            "walk": max(0.0, total - tokens - parsed - created), "texts": len(texts) / n}


def python_tokenize(text: str) -> Any:
    """The pure-Python path's tokenizing of one text value (the walk goes through the cache)."""
    return analyze_cached(text)


def report(name: str, passes: List[Dict[str, float]]) -> Dict[str, float]:
    """Print the median pass and the range of pass means of one implementation; return the median pass."""
    ordered = sorted(passes, key=lambda p: p["mean"])
    middle = ordered[len(ordered) // 2]
    print(f"{name:>7}: mean {middle['mean']:.1f} µs/event, p50 {middle['p50']:.1f}, p99 {middle['p99']:.1f} "
          f"(pass means {ordered[0]['mean']:.1f}-{ordered[-1]['mean']:.1f} over {len(passes)} passes)")
    return middle


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passes", type=int, default=7, help="native passes (default 7)")
    parser.add_argument("--python-passes", type=int, default=3, help="pure-Python passes (default 3)")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    args = parser.parse_args()

    docs = load(args.corpus)
    model = warmed_model(docs)
    native = fields.NATIVE and analysis.NATIVE
    print(f"{len(docs)} events, {len(model.types)} mapped fields; native module: {'built' if native else 'NOT BUILT'}")
    one_pass(docs, model)  # warm-up: plans built, allocator primed
    native_passes: List[Dict[str, float]] = []
    python_passes: List[Dict[str, float]] = []
    for i in range(max(args.passes, args.python_passes)):
        if i < args.passes and native:
            native_passes.append(summary(one_pass(docs, model)))
        if i < args.python_passes:
            with pure_python():
                python_passes.append(summary(one_pass(docs, model)))
    py = report("python", python_passes)
    nat = report("native", native_passes) if native_passes else py

    print("where the time goes, µs/event (best of 3 each; 'walk' is the rest):")
    rows: List[Tuple[str, Dict[str, float]]] = []
    with pure_python():
        rows.append(("python", breakdown(docs, model, python_tokenize, True)))
    if native:
        from beater.percolator.embedded import _analysis

        rows.append(("native", breakdown(docs, model, _analysis.tokens, False)))  # its dates are parsed in C
    for name, row in rows:
        print(f"{name:>7}: total {row['total']:.1f} = tokenizing {row['tokenizing']:.1f} ({row['texts']:.1f} texts) "
              f"+ dates {row['dates']:.1f} + AnalysedDoc {row['analysed_doc']:.1f} + walk {row['walk']:.1f}")

    print(
        f"analysis_us_per_doc={nat['mean']:.1f} analysis_p50_us={nat['p50']:.1f} analysis_p99_us={nat['p99']:.1f} "
        f"python_us_per_doc={py['mean']:.1f} python_p50_us={py['p50']:.1f} python_p99_us={py['p99']:.1f} "
        f"ratio={py['mean'] / nat['mean']:.1f} native={'yes' if native else 'no'} docs={len(docs)}"
    )


if __name__ == "__main__":
    main()
