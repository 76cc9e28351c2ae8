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


KEY_IDS = {name: number for number, name in enumerate("abcdef")}
IDS = [f"q{number}" for number in range(10)]


def match(core: Any, keys: str, verified: Any = ()) -> Any:
    """(to verify, answer) of one document holding ``keys``; ``verified``: what Python would confirm."""
    to_verify = core.candidates(set(keys), KEY_IDS)
    return to_verify, core.answer(list(verified), IDS)


def test_the_core_checks_a_keys_only_conjunction() -> None:
    core = presearcher.Core()
    core.add_posting(KEY_IDS["b"], 7, False)
    core.set_form(7, [1, 2], [3], [[4, 5]])  # b and c, not d, e or f
    assert match(core, "bcf") == ([], ["q7"])
    assert match(core, "bcdf") == ([], [])  # a forbidden key
    assert match(core, "bc") == ([], [])  # no key of the "any of" group
    core.clear_form(7)
    assert match(core, "b") == ([7], [])  # verified in Python now
    assert match(core, "b", [7]) == ([7], ["q7"])
    assert core.remove_posting(1, 7, False) and match(core, "b") == ([], [])


def test_the_core_answers_each_query_once_in_registration_order() -> None:
    core = presearcher.Core()
    for key in (1, 2):
        for number in (9, 3, 5):
            core.add_posting(key, number, True)
    assert match(core, "bcz", [4]) == ([], ["q3", "q4", "q5", "q9"])  # z: a key no query uses
