"""The native candidate loop (``_core.c``) gives exactly the answers of the pure-Python loop."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Dict, List

import pytest

from beater.percolator.embedded import presearcher
from beater.percolator.embedded.query_index import QueryIndex
from beater.registration import make_registration
from bench.shapes import generate

ROOT = Path(__file__).resolve().parents[2]


def test_the_native_core_is_built_where_a_compiler_is() -> None:
    """CI and the README's install build it; a silent fallback would hide a slower percolator."""
    assert presearcher.NATIVE


def documents(count: int) -> List[Dict[str, Any]]:
    with (ROOT / "examples" / "recentchange.ndjson").open(encoding="utf-8") as f:
        return [json.loads(line) for _, line in zip(range(count), f)]


def index_of(native: bool, registrations: List[Any], monkeypatch: pytest.MonkeyPatch) -> QueryIndex:
    monkeypatch.setattr(presearcher.Presearcher.__init__, "__defaults__", (native,))
    index = QueryIndex()
    for registration in registrations:
        index.add(registration)
    assert (index._state("rc").presearcher.core is not None) == native
    return index


def test_native_and_python_loops_answer_alike_on_the_benchmark_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = documents(600)
    registrations = {}
    for _, source in generate(docs, 3000, 7):
        try:
            registration = make_registration("rc", source)
        except Exception:  # noqa: BLE001 - shapes the parser refuses are not the point here
            continue
        registrations.setdefault(registration.id, registration)
    regs = list(registrations.values())
    native, python = index_of(True, regs, monkeypatch), index_of(False, regs, monkeypatch)
    for start in range(0, len(docs), 100):
        batch = docs[start : start + 100]
        assert native.match_batch("rc", batch) == python.match_batch("rc", batch)


def test_native_and_python_loops_answer_alike_after_removals(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = documents(200)
    regs = [make_registration("rc", q) for q in ("edit", "type:edit AND -bot:true", "user:SuccuBot OR wiki:commonswiki", "title:Q*", "bot:true")]
    native, python = index_of(True, regs, monkeypatch), index_of(False, regs, monkeypatch)
    native.match_batch("rc", docs[:50])
    python.match_batch("rc", docs[:50])
    for registration in random.Random(3).sample(regs, 2):
        assert native.remove(registration.id) and python.remove(registration.id)
    assert native.match_batch("rc", docs) == python.match_batch("rc", docs)


def test_answers_come_in_registration_order(monkeypatch: pytest.MonkeyPatch) -> None:
    regs = [make_registration("rc", q) for q in ("zebra", "title:zebra", "zebra OR lion", "zebra AND NOT tiger")]
    for native in (True, False):
        index = index_of(native, regs, monkeypatch)
        assert index.match_batch("rc", [{"title": "zebra"}]) == [[r.id for r in regs]]


def test_the_core_checks_a_keys_only_conjunction() -> None:
    core = presearcher.Core()
    core.add_posting(1, 7, False)
    core.set_form(7, [1, 2], [3], [[4, 5]])
    assert core.match([1, 2, 5]) == ([7], [])
    assert core.match([1, 2, 3, 5]) == ([], [])  # a forbidden key
    assert core.match([1, 2]) == ([], [])  # no key of the "any of" group
    core.clear_form(7)
    assert core.match([1]) == ([], [7])  # verified in Python now
    assert core.remove_posting(1, 7, False) and core.match([1]) == ([], [])


def test_the_core_answers_each_query_once_in_ascending_order() -> None:
    core = presearcher.Core()
    for key in (1, 2):
        for number in (9, 3, 5):
            core.add_posting(key, number, True)
    assert core.match([1, 2]) == ([3, 5, 9], [])
