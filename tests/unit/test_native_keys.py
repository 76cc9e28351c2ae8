"""The native presearch keys and prefix view (``_keys.c``) are exactly the pure-Python ones.

keys.python_document_keys and AnalysedDoc.python_prefix_view are the reference; the native
document_keys must make the same set for every ``any_field`` and ``wanted`` (None, sets naming the
document's fields or others, ``*``), and the native prefix view the same three dicts, lists in the
same order.  Set equality also holds the native strs canonical: a str of a wider kind than its
characters need compares unequal to the canonical one.
"""

from __future__ import annotations

import json
import random
from itertools import combinations
from pathlib import Path
from typing import Any, Dict, FrozenSet, Iterable, List, Optional, Set, Tuple

import pytest

from beater.percolator.embedded import fields, keys
from beater.percolator.embedded.fields import AnalysedDoc, FieldModel, analyse_document, any_with_start
from beater.percolator.embedded.keys import LONG_PREFIX_MARK, PREFIX_MARK, TERM_KEYS, document_keys, python_document_keys
from beater.percolator.embedded.query_index import QueryIndex
from beater.query import ir
from beater.registration import make_registration

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "examples" / "data" / "recentchange.ndjson"
EDGE_DOCS = ROOT / "tests" / "differential" / "edge_docs.ndjson"
KINDS = (TERM_KEYS, PREFIX_MARK, LONG_PREFIX_MARK)
STAR = ir.ANY_FIELD

# Not built, this import fails the module (never a skip): CI has a C compiler.
from beater.percolator.embedded import _keys as native  # noqa: E402


def read_ndjson(path: Path) -> List[Dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def analysed(documents: List[Dict[str, Any]]) -> List[AnalysedDoc]:
    model = FieldModel()
    for start in range(0, len(documents), 100):
        model.grow(documents[start : start + 100])
    return [analyse_document(document, model) for document in documents]


CORPUS_DOCS = analysed(read_ndjson(CORPUS))
EDGE = analysed(read_ndjson(EDGE_DOCS))


def paths_of(docs: Iterable[AnalysedDoc]) -> List[str]:
    seen: Dict[str, None] = {}
    for doc in docs:
        for path in list(doc.tokens) + list(doc.keywords):
            seen.setdefault(path, None)
    return list(seen)


def wanted_sets(paths: List[str]) -> List[Optional[FrozenSet[Tuple[str, str]]]]:
    """None, nothing, everything, each kind alone, ``*`` alone, fields no document has, and mixes."""
    rng = random.Random(7)
    every = [(kind, path) for kind in KINDS for path in paths + [STAR]]
    out: List[Optional[FrozenSet[Tuple[str, str]]]] = [None, frozenset(), frozenset(every)]
    out += [frozenset(p for p in every if p[0] == kind) for kind in KINDS]
    out += [frozenset((kind, STAR) for kind in kinds) for n in (1, 2) for kinds in combinations(KINDS, n)]
    out.append(frozenset((kind, "no.such.field") for kind in KINDS))
    out.append(frozenset({(TERM_KEYS, "title"), (PREFIX_MARK, "no.such"), ("unknown kind", "title")}))
    out += [frozenset(rng.sample(every, k)) for k in (1, 3, 8, 20) for _ in range(3)]
    return out


def assert_keys_alike(docs: List[AnalysedDoc], wanted: Optional[Any]) -> None:
    for any_field in (True, False):
        for doc in docs:
            got, expected = document_keys(doc, any_field, wanted), python_document_keys(doc, any_field, wanted)
            assert type(got) is set
            assert got == expected, (any_field, wanted, sorted(got ^ expected)[:5])


def test_the_native_keys_are_built_and_used() -> None:
    """CI has a C compiler: a silent fallback would hide keys three times slower."""
    assert keys.NATIVE and fields._native_keys is native


@pytest.mark.parametrize("name,docs", [("corpus", CORPUS_DOCS), ("edge", EDGE)])
def test_native_keys_equal_python_keys_for_every_any_field_and_wanted_set(name: str, docs: List[AnalysedDoc]) -> None:
    assert len(docs) > 40
    for number, wanted in enumerate(wanted_sets(paths_of(docs))):
        assert_keys_alike(docs if number < 12 else docs[number % 5 :: 5], wanted)  # the random sets: a fifth


def test_native_keys_equal_python_keys_for_the_wanted_set_of_registered_queries() -> None:
    index = QueryIndex()
    index.grow_model("i", read_ndjson(CORPUS)[:200])
    sources = [
        "title:wiki*", "comment:wbsetclaim*", "user:Bot", "wikidata", "wikid*", "Q4*", "title:Q*",
        "type:edit AND bot:false", "length.new:[100 TO 200]", "server_name:\"www.wikidata.org\"", "comment:/wb.*/",
    ]
    for source in sources:
        index.add(make_registration("i", source))
    wanted = index._state("i").wanted_keys
    assert wanted and any(kind != TERM_KEYS for kind, _ in wanted)
    assert_keys_alike(CORPUS_DOCS, wanted)


def test_native_keys_take_an_unhashable_set_of_pairs() -> None:
    wanted: Set[Tuple[str, str]] = {(TERM_KEYS, "title"), (PREFIX_MARK, STAR), (LONG_PREFIX_MARK, "comment")}
    assert_keys_alike(CORPUS_DOCS[:300], wanted)


def test_native_keys_are_right_past_the_number_of_wanted_sets_kept() -> None:
    paths = paths_of(CORPUS_DOCS[:50])
    for n in range(keys._KEY_PLANS_KEPT + 5):
        wanted = frozenset({(KINDS[n % 3], paths[n % len(paths)]), (TERM_KEYS, f"f{n}")})
        assert_keys_alike(CORPUS_DOCS[:20], wanted)
    assert len(keys._KEY_PLANS) <= keys._KEY_PLANS_KEPT


def doc_of(tokens: Dict[str, List[str]], keywords: Dict[str, List[str]], **typed: Any) -> AnalysedDoc:
    doc = AnalysedDoc(types=typed.pop("types", {}))
    doc.tokens = {path: {t: [i] for i, t in enumerate(terms)} for path, terms in tokens.items()}
    doc.keywords = keywords
    for name, value in typed.items():
        setattr(doc, name, value)
    return doc


# Terms whose start is narrower than the whole (an ASCII start of a Latin-1, BMP or astral term),
# as wide, shorter than 3 and than 5, empty; and paths of every kind.
TERMS = [
    "", "a", "ab", "abc", "abcd", "abcde", "abcdef", "abcé", "abcdé", "abcdeé", "é", "éé", "ééé", "éééé", "ééééé",
    "ab€", "abc€", "abcd€", "abcde€", "€", "€€€€€€", "ab𝄞", "abc𝄞", "abcd𝄞x", "abcde𝄞", "𝄞", "𝄞𝄞𝄞", "𝄞𝄞𝄞𝄞𝄞𝄞",
    "éa€b𝄞c", "ä€", "\x00", "\x00l1", "a\x1fb", "日本語のテキスト", "ภาษาไทย", "😀👍🏽", "x" * 300, "é" * 49, "é" * 48 + "a",
]
PATHS = ["title", "é", "名前", "𝄞.field", "a.b.keyword", ""]


def test_native_keys_equal_python_keys_on_non_ascii_astral_and_short_terms_and_paths() -> None:
    rng = random.Random(3)
    docs = [doc_of({}, {}), doc_of({"title": []}, {"k": []})]
    for _ in range(200):
        tokens = {p: rng.sample(TERMS, rng.randint(0, 6)) for p in rng.sample(PATHS, rng.randint(0, 3))}
        keywords = {p + ".kw": rng.sample(TERMS, rng.randint(0, 4)) for p in rng.sample(PATHS, rng.randint(0, 3))}
        docs.append(doc_of(tokens, keywords))
    docs.append(doc_of({p: TERMS for p in PATHS}, {p: TERMS for p in PATHS}))  # a path both text and keyword
    for wanted in wanted_sets(PATHS + [p + ".kw" for p in PATHS]):
        assert_keys_alike(docs, wanted)
    # The same terms again: now from the table of keys made before.
    assert_keys_alike(docs, None)


def test_native_typed_keys_equal_python_typed_keys() -> None:
    types = {"n": fields.LONG, "f": fields.FLOAT, "é": fields.LONG, "big": fields.LONG}
    docs = [
        doc_of({}, {}, types=types, numbers={"n": [0, -1, 1, 2**63 - 1, -(2**63), 12.0], "f": [1.5, -0.0, 0.1, 1e300],
                                             "é": [7], "big": [2**70, -(2**70)], "untyped": [3, 3.25]}),
        doc_of({}, {}, types=types, booleans={"b": [True, False], "é.flag": [False]}),
        doc_of({}, {}, types=types, dates={"d": [0, 1, -1, 2**35, 2**35 - 1, -(2**35), -(2**35) - 1, 1520439377000,
                                                 -62135596800000, 2**63 - 1, -(2**63), 2**64]}),
        doc_of({"t": ["x"]}, {}, types=types, numbers={"n": [5]}, booleans={"b": [True]}, dates={"d": [86400000]}),
    ]
    for wanted in (None, frozenset(), frozenset({(TERM_KEYS, "n")})):
        assert_keys_alike(docs, wanted)


def test_native_keys_refuse_what_is_not_a_str_term() -> None:
    doc = doc_of({}, {"k": ["ok", 3]})  # type: ignore[list-item]
    with pytest.raises(TypeError):
        document_keys(doc)
    with pytest.raises(TypeError):
        python_document_keys(doc)


# --- prefix view ---------------------------------------------------------------------------------

def assert_views_alike(docs: List[AnalysedDoc]) -> None:
    for doc in docs:
        doc._prefixes = None
        got, expected = doc.prefix_view(), doc.python_prefix_view()
        assert type(got) is tuple and len(got) == 3
        assert got == expected
        assert list(got[0]) == list(expected[0])  # the fields in the same order too
        assert doc.prefix_view() is got  # made once


def test_native_prefix_view_equals_python_prefix_view_on_the_corpus_and_edge_documents() -> None:
    assert_views_alike(CORPUS_DOCS + EDGE)


def test_native_prefix_view_equals_python_prefix_view_on_non_ascii_short_and_empty_terms() -> None:
    rng = random.Random(5)
    docs = [doc_of({}, {}), doc_of({p: TERMS for p in PATHS}, {p: TERMS + TERMS[::-1] for p in PATHS})]
    for _ in range(200):
        tokens = {p: rng.sample(TERMS, rng.randint(0, 8)) for p in rng.sample(PATHS, rng.randint(0, 4))}
        keywords = {p: rng.choices(TERMS, k=rng.randint(0, 5)) for p in rng.sample(PATHS, rng.randint(0, 4))}
        docs.append(doc_of(tokens, keywords))
    assert_views_alike(docs)


def test_the_prefix_view_sorts_terms_in_code_point_order_and_keeps_those_of_three_characters_or_more() -> None:
    tokens = {"t": {"abcé": [0], "ab": [1], "𝄞ab": [2], "ab€d": [3]}}
    keywords = {"k": ["zeta", "Ab", "Alpha"], "t": ["abc"]}
    by_field, text, keyword = native.prefix_view(tokens, keywords, 3)
    assert by_field == {"t": ["abc", "abcé", "ab€d", "𝄞ab"], "k": ["Alpha", "zeta"]}
    assert text == ["abcé", "ab€d", "𝄞ab"]
    assert keyword == ["Alpha", "abc", "zeta"]


def test_a_search_of_the_view_tests_only_the_run_of_terms_with_the_start() -> None:
    tested: List[str] = []
    terms = sorted(["abd", "abcd", "abb", "abc", "abc!"])  # abb abc abc! abcd abd
    assert any_with_start(terms, "abc", lambda term: tested.append(term) or False) is False
    assert tested == ["abc", "abc!", "abcd"]
    assert any_with_start(terms, "abc", lambda term: term.endswith("d")) is True
    assert any_with_start(terms, "abz", lambda term: True) is False
    assert any_with_start([], "abc", lambda term: True) is False
