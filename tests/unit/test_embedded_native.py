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
from tests.differential.queries import QUERIES

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


def distinct_registrations(sources: Any) -> List[Any]:
    """A registration per distinct id of ``(source, default_operator)`` pairs; refused sources are left out."""
    registrations: Dict[str, Any] = {}
    for source, operator in sources:
        try:
            registration = make_registration("rc", source, operator)
        except Exception:  # noqa: BLE001 - queries refused on purpose are not the point here
            continue
        registrations.setdefault(registration.id, registration)
    return list(registrations.values())


def assert_loops_answer_alike(regs: List[Any], docs: List[Dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    native, python = index_of(True, regs, monkeypatch), index_of(False, regs, monkeypatch)
    for start in range(0, len(docs), 100):
        batch = docs[start : start + 100]
        assert native.match_batch("rc", batch) == python.match_batch("rc", batch)


def test_native_and_python_loops_answer_alike_on_the_benchmark_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = documents(600)
    regs = distinct_registrations((source, "or") for _, source in generate(docs, 3000, 7))
    assert_loops_answer_alike(regs, docs, monkeypatch)


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


def test_native_and_python_loops_answer_alike_on_the_differential_queries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every form the native core evaluates (phrases, patterns, ranges, guards, nested bools, call-backs)."""
    edge = ROOT / "tests" / "differential" / "edge_docs.ndjson"
    docs = documents(1000) + [json.loads(line) for line in edge.open(encoding="utf-8")]
    assert_loops_answer_alike(distinct_registrations(QUERIES), docs, monkeypatch)


KEY_IDS = {name: number for number, name in enumerate("abcdef")}
IDS = [f"q{number}" for number in range(10)]


class Doc:
    """The parts of an AnalysedDoc the core reads."""

    def __init__(self, tokens: Any = None, numbers: Any = None, prefixes: Any = None, keywords: Any = None) -> None:
        self.tokens = tokens or {}
        self.numbers = numbers or {}
        self.keywords = keywords or {}
        self._prefixes = prefixes or ({}, [], [])

    def prefix_view(self) -> Any:
        return self._prefixes


def match(core: Any, keys: str, verified: Any = (), doc: Any = None) -> Any:
    """(to verify, answer) of one document holding ``keys``; ``verified``: what Python would confirm."""
    to_verify = core.candidates(set(keys), KEY_IDS, doc if doc is not None else Doc())
    return to_verify, core.answer(list(verified), IDS)


def program(form: Any) -> Any:
    return presearcher.native_program(form, KEY_IDS.__getitem__)


def test_the_core_checks_a_keys_only_conjunction() -> None:
    core = presearcher.Core()
    core.add_posting(KEY_IDS["b"], 7, False)
    core.set_program(7, program((("b", "c"), ("d",), (frozenset("ef"),))))  # b and c, not d, e or f
    assert match(core, "bcf") == ([], ["q7"])
    assert match(core, "bcdf") == ([], [])  # a forbidden key
    assert match(core, "bc") == ([], [])  # no key of the "any of" group
    core.set_program(7, None)
    assert match(core, "b") == ([7], [])  # verified in Python now
    assert match(core, "b", [7]) == ([7], ["q7"])
    assert core.remove_posting(1, 7, False) and match(core, "b") == ([], [])


def test_the_core_answers_each_query_once_in_registration_order() -> None:
    core = presearcher.Core()
    for key in (1, 2):
        for number in (9, 3, 5):
            core.add_posting(key, number, True)
    assert match(core, "bcz", [4]) == ([], ["q3", "q4", "q5", "q9"])  # z: a key no query uses


def test_the_core_checks_an_exact_phrase_by_positions() -> None:
    core = presearcher.Core()
    core.add_posting(KEY_IDS["a"], 1, False)
    core.set_program(1, program(presearcher.PhraseForm("title", ("big", "cat"), 0)))
    assert match(core, "a", doc=Doc(tokens={"title": {"big": [0, 4], "cat": [5]}}))[1] == ["q1"]
    assert match(core, "a", doc=Doc(tokens={"title": {"big": [0], "cat": [2]}}))[1] == []
    assert match(core, "a", doc=Doc(tokens={"comment": {"big": [0], "cat": [1]}}))[1] == []


def test_the_core_checks_a_range_on_a_long_field() -> None:
    core = presearcher.Core()
    core.add_posting(KEY_IDS["a"], 2, False)
    core.set_program(2, program(presearcher.RangeForm("n", 10, 20)))
    assert match(core, "a", doc=Doc(numbers={"n": [3, 20]}))[1] == ["q2"]
    assert match(core, "a", doc=Doc(numbers={"n": [21, 2**70]}))[1] == []
    assert match(core, "a", doc=Doc(numbers={"n": [9.5, 10.0]}))[1] == ["q2"]


@pytest.mark.parametrize("pattern, term, matches", [
    ("ab?d", "abcd", True), ("ab?d", "abd", False), ("ab*", "ab", True), ("a*c*e", "abcde", True),
    ("a*c*e", "abcdf", False), ("a?*", "a", False), ("*", "", True), ("abc", "abcd", False),
])
def test_the_core_tests_a_wildcard_as_a_glob(pattern: str, term: str, matches: bool) -> None:
    core = presearcher.Core()
    core.add_posting(KEY_IDS["a"], 3, False)
    core.set_program(3, (presearcher.P_PATTERN, presearcher.PATTERN_GLOB, False, "f", "abc", "abc", pattern, pattern))
    doc = Doc(tokens={"f": {term: [0]}}, prefixes=({"f": [term]}, [], []))
    assert match(core, "a", doc=doc)[1] == (["q3"] if matches else [])


def test_a_document_s_first_patterns_read_its_terms_and_the_rest_its_prefix_view() -> None:
    core = presearcher.Core()
    prefix = lambda field, value: (presearcher.P_PATTERN, presearcher.PATTERN_PREFIX, field is None,  # noqa: E731
                                   "" if field is None else field, value[:3], value[:3].lower(), value, value.lower())
    wanted = [("title", "catal"), ("tag", "Catal"), (None, "CATAL"), ("title", "dogma"), (None, "Catalo")] * 2
    for number, (field, value) in enumerate(wanted):
        core.add_posting(KEY_IDS["a"], number, False)
        core.set_program(number, prefix(field, value))
    tokens, keywords = {"title": {"catalogue": [0], "do": [1]}}, {"tag": ["Catalan"]}
    # The view agrees with the terms (as AnalysedDoc.prefix_view makes it) ...
    agreeing = Doc(tokens=tokens, keywords=keywords, prefixes=(
        {"title": ["catalogue"], "tag": ["Catalan"]}, ["catalogue"], ["Catalan"]))
    expected = [f"q{n}" for n, (field, value) in enumerate(wanted) if value != "dogma"]
    assert match(core, "a", doc=agreeing)[1] == sorted(expected, key=lambda q: int(q[1:]))
    # ... and one that disagrees shows which is read: the first four tests (q0-q3) read the terms
    # themselves, the others the (here empty) view.
    empty_view = Doc(tokens=tokens, keywords=keywords)
    assert match(core, "a", doc=empty_view)[1] == ["q0", "q1", "q2"]


def test_the_core_calls_back_what_it_cannot_evaluate() -> None:
    core = presearcher.Core()
    core.add_posting(KEY_IDS["a"], 4, False)
    seen = []
    core.set_program(4, program(lambda doc: seen.append(doc) or True))
    doc = Doc()
    assert match(core, "a", doc=doc)[1] == ["q4"] and seen == [doc]


def test_an_error_in_a_call_back_reaches_the_caller() -> None:
    core = presearcher.Core()
    core.add_posting(KEY_IDS["a"], 5, False)
    core.set_program(5, program(lambda doc: 1 / 0))
    with pytest.raises(ZeroDivisionError):
        match(core, "a")


def test_the_core_selects_queries_by_a_range_holding_a_value_of_the_document() -> None:
    core = presearcher.Core()
    core.add_range("n", 1, 10, 20, True)  # decided by the range
    core.add_range("n", 2, 15, 30, False)  # verified by its program
    core.set_program(2, program(presearcher.RangeForm("m", 0, 0)))
    assert match(core, "", doc=Doc(numbers={"n": [16]}))[1] == ["q1"]
    assert match(core, "", doc=Doc(numbers={"n": [16], "m": [0]}))[1] == ["q1", "q2"]
    assert match(core, "", doc=Doc(numbers={"n": [9, 31, 2**64]}))[1] == []
    assert core.remove_range("n", 1) and not core.remove_range("n", 1) and not core.remove_range("x", 2)
    assert match(core, "", doc=Doc(numbers={"n": [16], "m": [0]}))[1] == ["q2"]


def test_the_core_finds_a_phrase_on_every_field_in_any_text_field_else_asks_python_if_the_text_is_a_key() -> None:
    core = presearcher.Core()
    core.add_posting(KEY_IDS["a"], 6, False)
    asked = []
    core.set_program(6, (presearcher.P_ANY_PHRASE, KEY_IDS["f"], ("big", "cat"), lambda doc: asked.append(doc) or True))
    in_comment = Doc(tokens={"title": {"big": [0]}, "comment": {"big": [3], "cat": [4]}})
    assert match(core, "a", doc=in_comment)[1] == ["q6"] and asked == []
    apart = Doc(tokens={"title": {"big": [0], "cat": [2]}})
    assert match(core, "a", doc=apart)[1] == [] and asked == []
    assert match(core, "af", doc=apart)[1] == ["q6"] and asked == [apart]  # f: the whole text as a * key


def test_the_core_counts_the_documents_holding_each_counted_key_as_it_selects_candidates() -> None:
    core = presearcher.Core()
    core.count_key(KEY_IDS["a"])
    core.count_key(KEY_IDS["c"])
    for keys in ("ab", "a", "bc", "z"):
        match(core, keys)
    assert [core.df(KEY_IDS[k]) for k in "abc"] == [2, 0, 1]  # b is not counted
    assert core.df(10**6) == 0
    core.halve_df()
    assert [core.df(KEY_IDS[k]) for k in "ac"] == [1, 0]  # a count of 1 halves to nothing, as the Counter's


def test_native_and_python_presearchers_count_the_same_frequencies(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = documents(400)
    regs = distinct_registrations((source, "or") for _, source in generate(docs, 1000, 7))
    states = []
    for native in (True, False):
        index = index_of(native, regs, monkeypatch)
        for start in range(0, len(docs), 100):
            index.match_batch("rc", docs[start : start + 100])
        states.append(index._state("rc").presearcher)
    native_ps, python_ps = states
    keys = set(python_ps.counted)
    assert keys and native_ps.docs == python_ps.docs == len(docs)
    assert {k: native_ps.frequency(k) for k in keys} == {k: python_ps.frequency(k) for k in keys}
    assert sum(python_ps.frequency(k) for k in keys) > 0


def states_after_400_documents(monkeypatch: pytest.MonkeyPatch) -> List[Any]:
    """The native and the Python index states of 1,000 "or" queries after matching the same 400 documents."""
    docs = documents(400)
    regs = distinct_registrations((source, "or") for _, source in generate(docs, 1000, 7))
    states = []
    for native in (True, False):
        index = index_of(native, regs, monkeypatch)
        index.match_batch("rc", docs)
        states.append(index._state("rc"))
    return states


def test_native_and_python_presearchers_choose_the_same_clause_to_index_a_query_under(monkeypatch: pytest.MonkeyPatch) -> None:
    native_state, python_state = states_after_400_documents(monkeypatch)
    choices = list(python_state.alternatives.values())
    assert sum(len(alternatives) > 1 for alternatives in choices) > 50
    # Equal costs make the first of equals win: frozensets of one key each, in the sets' order
    choices += [(("title\x1fab",), ("title\x1fcd",)), (("zz\x1fnever",), ("title\x1fab", "zz\x1fnever"))]
    picked = [native_state.presearcher.cheapest(alternatives) for alternatives in choices]
    assert picked == [python_state.presearcher.cheapest(alternatives) for alternatives in choices]
    assert picked[-2:] == [("title\x1fab",), ("zz\x1fnever",)]


def test_native_and_python_presearchers_sum_the_same_frequencies_of_a_set_of_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    native_ps, python_ps = (state.presearcher for state in states_after_400_documents(monkeypatch))
    keys = sorted(python_ps.counted)
    sets = [frozenset(keys[i : i + 3]) for i in range(0, len(keys), 3)] + [frozenset({"no\x1fsuch key"})]
    assert [native_ps.core.held(s, native_ps.key_ids) for s in sets] == [sum(python_ps.frequency(k) for k in s) for s in sets]
    assert [native_ps.too_common(s) for s in sets] == [python_ps.too_common(s) for s in sets]


def batch(core: Any, docs: List[Any], verified: Any = ()) -> Any:
    """(to verify, answer) of each document of one batch: ``docs`` as (keys, analysis) pairs."""
    lists = core.batch([set(keys) for keys, _ in docs], KEY_IDS, [doc or Doc() for _, doc in docs])
    return [(to_verify, core.answer(list(verified), IDS, position)) for position, to_verify in enumerate(lists)]


def test_each_document_of_a_batch_gets_the_answer_it_gets_alone() -> None:
    core = presearcher.Core()
    core.add_posting(KEY_IDS["a"], 1, True)  # exact: holding a is the match
    core.add_posting(KEY_IDS["b"], 2, False)
    core.set_program(2, program((("b", "c"), ("d",), ())))  # b and c, not d
    core.add_posting(KEY_IDS["b"], 3, False)
    core.add_posting(KEY_IDS["c"], 3, False)  # a candidate under two keys
    core.set_program(3, program(presearcher.PhraseForm("title", ("big", "cat"), 0)))
    core.add_range("n", 4, 10, 20, True)
    cat = Doc(tokens={"title": {"big": [0], "cat": [1]}}, numbers={"n": [12]})
    docs = [("abc", None), ("bcd", cat), ("bc", cat), ("", Doc(numbers={"n": [12]})), ("a", None)]
    alone = [match(core, keys, doc=doc or Doc()) for keys, doc in docs]
    assert batch(core, docs) == alone
    assert [answer for _, answer in alone] == [["q1", "q2"], ["q3", "q4"], ["q2", "q3", "q4"], ["q4"], ["q1"]]


def test_a_batch_returns_per_document_what_python_must_verify() -> None:
    core = presearcher.Core()
    core.add_posting(KEY_IDS["a"], 5, False)  # no program: verified in Python
    assert batch(core, [("a", None), ("b", None), ("ab", None)], verified=[]) == [([5], []), ([], []), ([5], [])]


def test_the_always_check_list_is_verified_for_the_document_named() -> None:
    core = presearcher.Core()
    core.set_program(6, program((("e",), (), ())))
    lists = core.batch([{"e"}, {"f"}], KEY_IDS, [Doc(), Doc()])
    assert [core.check([6], position) for position in (0, 1)] == [[], []]
    assert [core.answer(to_verify, IDS, position) for position, to_verify in enumerate(lists)] == [["q6"], []]


def test_a_batch_holds_at_most_64_documents_and_names_only_its_own() -> None:
    core = presearcher.Core()
    with pytest.raises(ValueError):
        core.batch([set()] * 65, KEY_IDS, [Doc()] * 65)
    core.batch([set()] * 2, KEY_IDS, [Doc()] * 2)
    with pytest.raises(IndexError):
        core.answer([], IDS, 2)


def test_an_error_in_a_call_back_fails_the_batch_and_the_next_batch_starts_clean() -> None:
    core = presearcher.Core()
    core.add_posting(KEY_IDS["a"], 5, False)
    core.set_program(5, program(lambda doc: 1 / 0))
    core.add_posting(KEY_IDS["b"], 7, True)
    with pytest.raises(ZeroDivisionError):
        batch(core, [("b", None), ("a", None)])
    assert batch(core, [("b", None), ("c", None)]) == [([], ["q7"]), ([], [])]


@pytest.mark.parametrize("size", [1, 63, 64, 65, 100])
def test_documents_matched_together_match_as_they_do_one_at_a_time(size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The native core's batches (NATIVE_BATCH documents at most) give every document its own answer."""
    docs = documents(300)
    regs = distinct_registrations((source, "or") for _, source in generate(docs, 2000, 11))
    together, alone = index_of(True, regs, monkeypatch), index_of(True, regs, monkeypatch)
    for start in range(0, len(docs), size):
        group = docs[start : start + size]
        assert together.match_batch("rc", group) == [alone.match_batch("rc", [doc])[0] for doc in group]
