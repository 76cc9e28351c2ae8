"""The native analyzer and walk (``_analysis.c``) give exactly the answers of the pure-Python ones.

The pure-Python tokenizer (analysis.python_tokens) is the reference held to Elasticsearch's
``_analyze`` (tests/differential/test_analysis.py); the native one must equal it token for token,
on the shared corpus, the differential edge cases, and random text drawn from every class of
character its tables tell apart.  Likewise for whole documents (fields.python_analyse_document).
"""

from __future__ import annotations

import json
import math
import random
import runpy
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional

import pytest
import regex

from beater.percolator.embedded import analysis, fields
from beater.percolator.embedded.analysis import lowercase, python_tokens
from beater.percolator.embedded.fields import AnalysedDoc, FieldModel, FieldScope, analyse_document, python_analyse_document
from beater.percolator.mapping import mapping_for_documents
from tests.differential.test_analysis import HARD_CASES

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "examples" / "data" / "recentchange.ndjson"
EDGE_DOCS = ROOT / "tests" / "differential" / "edge_docs.ndjson"

# Not built, this import fails the module (never a skip): CI has a C compiler.
from beater.percolator.embedded import _analysis as native  # noqa: E402


def read_ndjson(path: Path) -> List[Dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def strings(value: Any) -> Iterator[str]:
    """Every string inside a JSON value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)


def test_the_native_analysis_is_built_and_used() -> None:
    """CI has a C compiler: a silent fallback to the pure-Python walk would hide a 7x slower analysis."""
    assert analysis.NATIVE and fields.NATIVE


# --- tokens --------------------------------------------------------------------------------------

def test_native_tokens_equal_python_tokens_on_every_string_of_the_corpus_and_the_edge_cases() -> None:
    texts = list(HARD_CASES)
    for path in (CORPUS, EDGE_DOCS):
        for doc in read_ndjson(path):
            texts.extend(strings(doc))
    assert len(texts) > 60_000
    assert [t for t in texts if native.tokens(t) != python_tokens(t)] == []


EDGE_TEXTS = [
    "", " ", "\n", "\r\n", "_", "__", "a_", "_1", "'", "''", "a'", "'a", "1'a", "-'é", "x'é", "l'été", "d’Artagnan",
    "a.b", "a..b", "1.2", "1..2", "1,2", "1;2", "a;b", "a:b", "1:2", "a.1", "1.a",
    # Extend/Format/ZWJ at the start, after a newline, between letters and around punctuation (UAX#29 WB4)
    "\u0301a", "\u180e\u180ea", "\n\u0301a", "a\u0301b", "a\u0301.b", "a.\u0301b", "1.\u03011", "1\u0301.1",
    "\u05d0\u0301'", "\u05d0\"\u0301\u05d0", "\u200e<span dir=\"auto\">x</span>", "a\u00adb", "a\u200bb",
    # regional indicators in pairs, with Extend between them
    "\U0001F1EB\U0001F1F7\U0001F1EB", "\U0001F1EB\u0301\U0001F1F7\U0001F1EB", "🇫🇷🇩🇪🇮",
    # emoji: ZWJ sequences, modifiers alone, after a letter, after an emoji, keycaps, VS16
    "👨\u200d👩\u200d👧", " \u200d👍", "\u200d👍", "a🏽", "🏽", "🏽🏽", "a🏽🏽x🏽", "👍🏽", "#️⃣ 1️⃣ ❤️", "©®™",
    # South-East Asian runs, with marks, next to other scripts and digits
    "ภาษาไทยไม่มีช่องว่าง", "ไทย123ไทย", "ພາສາລາວ ၿမန္မာ ខ្មែរ", "abcไทย", "ก\u0e31\u0e31",
    # lowercasing code point by code point
    "ΣΊΣΥΦΟΣ Σίσυφος", "İstanbul", "ǅemal", "ﬁnance", "Ω Å K", "𐐀𐐁", "ẞ",
    # the 255-character cut, ASCII and not, on the heap path (longer than the stack buffer)
    "a" * 254 + " " + "b" * 255 + " " + "c" * 256 + " " + "d" * 600, "é" * 300 + " ok", "中" * 700, "ไ" * 1000,
    ("word " * 300) + "\u200e", "x" * 70_000 + "é",
    # lone surrogates (JSON allows them) and the last code points
    "a\ud800b", "\udfff", "\U0010ffff", "\U000e0001a",
]


@pytest.mark.parametrize("text", EDGE_TEXTS, ids=range(len(EDGE_TEXTS)))
def test_native_tokens_equal_python_tokens_on_edge_cases(text: str) -> None:
    assert native.tokens(text) == python_tokens(text)


def character_pool(rng: random.Random) -> List[str]:
    """Characters of every distinct property value of the tables, and those the rules name."""
    by_value: Dict[int, List[int]] = {}
    for c in range(0x110000):
        by_value.setdefault(native.char_properties(c), []).append(c)
    pool = [chr(c) for cs in by_value.values() for c in rng.sample(cs, min(5, len(cs)))]
    pool += list("'’‘\"aàéêiîoôuùäAÀÉ\ufe0f\u200d\u20e3ΣσςİıK\r\n \t\x1c\x85\u2028\u3000\u00a0_.,;:-09①½²中ไก\u0e31")
    pool += ["\ud800", "\U0001F1EB", "\U0001F1F7", "\U0001F3FD", "\U0001F44D", "\u05d0", "\u30a2", "\u0301", "\u00ad", "\u200e"]
    # characters Python's str methods (isalpha, isdecimal, isspace) and regex's classes see differently
    odd = [chr(c) for c in range(0, 0x110000, 7) if chr(c).isalpha() != bool(regex.match(r"\p{L}", chr(c)))]
    return pool + rng.sample(odd, min(30, len(odd)))


def test_native_tokens_equal_python_tokens_on_random_text_of_every_character_class() -> None:
    rng = random.Random(20180307)
    pool = character_pool(rng)
    differing = []
    for _ in range(30_000):
        alphabet = rng.sample(pool, 6) if rng.random() < 0.5 else pool  # few characters: dense interactions
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24)))
        if native.tokens(text) != python_tokens(text):
            differing.append(text)
    assert differing == []


def test_the_tables_hold_the_installed_regex_properties() -> None:
    """_analysis_tables.h is generated from regex (python setup.py analysis_tables); a regex of another Unicode
    version needs it generated again."""
    expected = runpy.run_path(str(ROOT / "setup.py"), run_name="setup")["analysis_properties"]()
    assert native.REGEX_VERSION == regex.__version__
    assert [c for c in range(0x110000) if native.char_properties(c) != expected[c]][:20] == []


def test_native_lowercase_is_the_python_per_code_point_lowercase() -> None:
    every = "".join(chr(c) for c in range(0x110000)) + "\u03a3"  # with a sigma: analysis.lowercase's per-character path
    assert native.lowercase(every) == lowercase(every)


def test_native_tokens_refuse_what_is_not_a_str() -> None:
    with pytest.raises(TypeError):
        native.tokens(b"bytes")  # type: ignore[arg-type]


# --- documents -----------------------------------------------------------------------------------

def snapshot(doc: AnalysedDoc) -> Any:
    """Everything an AnalysedDoc holds, key order included (others iterate its dicts)."""
    return (
        [(p, list(postings.items())) for p, postings in doc.tokens.items()],
        list(doc.keywords.items()),
        [(p, [(type(v), v) for v in values]) for p, values in doc.numbers.items()],
        list(doc.dates.items()),
        list(doc.booleans.items()),
        sorted(doc.present),
    )


def assert_walks_alike(documents: List[Any], model: FieldModel, scope: Optional[FieldScope] = None) -> None:
    for document in documents:
        got, expected = analyse_document(document, model, scope), python_analyse_document(document, model, scope)
        assert got.types is expected.types is model.types
        assert snapshot(got) == snapshot(expected), json.dumps(document, default=str)[:300]


def warmed(documents: List[Any]) -> FieldModel:
    model = FieldModel()
    for start in range(0, len(documents), 100):
        model.grow(documents[start : start + 100])
    return model


def test_native_and_python_walks_read_the_corpus_alike_with_and_without_scopes() -> None:
    documents = read_ndjson(CORPUS) + read_ndjson(EDGE_DOCS)
    model = warmed(documents)
    for scope in (None, FieldScope.of({"title", "meta.domain"}), FieldScope.of({"meta", "user.keyword"}),
                  FieldScope.of({"log_params", "comment", "length.new", "bot"})):
        assert_walks_alike(documents, model, scope)


class Record(Mapping[str, Any]):
    """A Mapping that is not a dict."""

    def __init__(self, **items: Any) -> None:
        self._items = dict(items)

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


ODD_DOCUMENTS: List[Any] = [
    {"t": 5, "k": 7, "n": "12", "f": "2.5", "d": 1520439377000, "b": "true"},
    {"t": 1.5, "k": True, "n": "12.7", "f": 1e300, "d": "1520439377", "b": "false"},
    {"t": True, "k": None, "n": 2**63, "f": -1e300, "d": "-5", "b": ""},
    {"t": None, "k": 1.25, "n": -(2**63), "f": float("nan"), "d": "2018-03-07T16:16:17.1234+05:30", "b": "yes"},
    {"t": ["a b", ["c", ["d e"]], None, 3], "k": ["x", ["y"]], "n": [1, "2", [3, "x"]], "f": [1, 2.5, "3"]},
    {"t": {"x": 1}, "k": {"x": 1}, "n": {"x": 1}, "d": {"x": 1}, "b": {"x": 1}, "o": "flat", "f": float("inf")},
    {"o": [{"t": "first"}, {"t": "second"}, "scalar", None, [{"t": "nested list"}]], "t": ["one", "two"]},
    {"o": {"t": "inner", "o2": {"n": 3, "d": "2020-02-30"}}, "o.t": "dotted", "@estrom_x": "internal", "": "empty"},
    {"o": Record(t="from a mapping", o2=Record(n=4)), "t": ("a", "tuple")},
    {"n": 12.9, "f": 7, "d": 1.5e12, "b": 1},
    {"n": -0.5, "f": True, "d": True, "b": None, "k": "\U0001F600" * 200, "kk": "\U0001F600" * 128 + "x"},
    {"n": "1e3", "f": "inf", "d": "20180307", "k": "é" * 300},
    {"n": " 42 ", "f": " -1.5 ", "d": "２０１８-03-07", "t": "ΣΊΣΥΦΟΣ"},
    {"n": "٣", "f": "nan", "d": "2018-03-07T16:16:17+19:00", "t": "🇫🇷👍🏽"},
    {"d": ["2018", "2018-03", "2018-03-07", "2018-03-07T16", "2018-03-07T16:16", "2018-03-07T16:16:17"]},
    {"d": ["2018-03-07T16:16:17Z", "2018-03-07T16:16:17,5Z", "2018-03-07T16:16:17.123456789-0130", "2018-03-07T16+05"]},
    {"d": ["2018-03-07T16:16:17.1234567890Z", "2018-03-07T16:16:17.", "2018-03-07T24:00", "2018-13-01", "0000-01-01"]},
    {"d": ["2018-03-07T16:16:17+05:", "2018-03-07T16:16:17+0", "2018-03-07 16:16:17", "2018-03-07T16:16:60", "2016-02-29"]},
    {"d": ["1900-02-29", "2000-02-29", "0001-01-02T00:00+01:00", "9999-12-30T23:00-01:00", "1969-12-31T23:59:59.999Z"]},
    {"d": ["+12", "1.5", "12.", "", " 2018", "2018-03-07T16:16:17+18:59", "2018-03-07T16:16:17+18:60"]},
    "not an object",
    ["not", "an", "object"],
    Record(t="a Mapping document", n=1),
]
ODD_PROPERTIES: Dict[str, Any] = {
    "t": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}},
    "k": {"type": "keyword", "ignore_above": 200},
    "kk": {"type": "keyword", "ignore_above": 257},
    "n": {"type": "long"},
    "f": {"type": "float"},
    "d": {"type": "date"},
    "b": {"type": "boolean"},
    "o": {"properties": {"t": {"type": "text"}, "o2": {"properties": {"n": {"type": "long"}, "d": {"type": "date"}}}}},
}


def test_native_and_python_walks_read_values_of_every_type_in_every_field_alike() -> None:
    model = FieldModel(ODD_PROPERTIES, dynamic=False)
    assert_walks_alike(ODD_DOCUMENTS, model)
    assert_walks_alike(ODD_DOCUMENTS, model, FieldScope.of({"o.o2", "t", "d"}))


def test_native_dates_are_parse_date_on_generated_dates() -> None:
    rng = random.Random(7)
    model = FieldModel({"d": {"type": "date"}}, dynamic=False)
    texts = []
    for _ in range(5000):
        text = f"{rng.randint(0, 9999):04d}"
        for part in (f"-{rng.randint(0, 13):02d}", f"-{rng.randint(0, 32):02d}", f"T{rng.randint(0, 25):02d}",
                     f":{rng.randint(0, 61):02d}", f":{rng.randint(0, 61):02d}", "." + "7" * rng.randint(0, 10)):
            if rng.random() < 0.15:
                break
            text += part
        if rng.random() < 0.5:
            text += rng.choice(["Z", "+", "-"]) + (rng.choice(["Z"]) if rng.random() < 0.05 else "")
            if text[-1] in "+-":
                text += f"{rng.randint(0, 20):02d}" + rng.choice(["", ":", ""]) + rng.choice(["", f"{rng.randint(0, 61):02d}"])
        texts.append(text)
    documents = [{"d": t} for t in texts]
    got = [analyse_document(d, model).dates.get("d") for d in documents]
    expected = [python_analyse_document(d, model).dates.get("d") for d in documents]
    assert got == expected
    assert sum(1 for g in got if g) > 500  # most are dates, some are not


def test_a_keyword_limit_counts_characters_outside_the_bmp_twice_in_both_walks() -> None:
    model = FieldModel({"k": {"type": "keyword", "ignore_above": 5}}, dynamic=False)
    for text, kept in (("abcde", True), ("abcdef", False), ("ab\U0001F600c", True), ("ab\U0001F600cd", False)):
        for walk in (analyse_document, python_analyse_document):
            assert (walk({"k": text}, model).keywords.get("k") == [text]) is kept


def test_native_walk_raises_what_a_python_helper_raises() -> None:
    model = FieldModel({"t": {"type": "text"}}, dynamic=False)
    for walk in (analyse_document, python_analyse_document):
        with pytest.raises(TypeError, match="not JSON serializable"):
            walk({"t": object()}, model)  # text_of: json.dumps


def test_plans_are_rebuilt_when_the_model_grows() -> None:
    model = FieldModel()
    model.grow([{"a": "x"}])
    assert set(analyse_document({"a": "x", "b": 1}, model).present) == {"a", "a.keyword"}
    model.grow([{"b": 1}])
    assert set(analyse_document({"a": "x", "b": 1}, model).present) == {"a", "a.keyword", "b"}


def test_numbers_keep_their_types_in_both_walks() -> None:
    model = FieldModel({"n": {"type": "long"}, "f": {"type": "float"}}, dynamic=False)
    for walk in (analyse_document, python_analyse_document):
        doc = walk({"n": [3, "4", 5.9], "f": [19.99, 2]}, model)
        assert [(type(v), v) for v in doc.numbers["n"]] == [(int, 3), (int, 4), (int, 5)]
        assert doc.numbers["f"] == [19.989999771118164, 2.0] and not math.isnan(doc.numbers["f"][1])


def test_native_walk_refuses_a_plan_it_did_not_get_from_build_plan() -> None:
    with pytest.raises(TypeError, match="plan node"):
        native.analyse({"a": 1}, {"a": ("not", "a", "node")}, {}, {}, {}, {}, {}, set())


# --- the native "would the mapping grow?" check (FieldModel.grow merges only what it flags) ---------

def merge_would_map(document: Mapping[str, Any], properties: Mapping[str, Any]) -> bool:
    """The reference: mapping.py's merge maps something new for this document."""
    visible = {k: v for k, v in document.items() if not (isinstance(k, str) and k.startswith(fields.INTERNAL_PREFIX))}
    return bool(mapping_for_documents([visible], properties))


def test_native_unmapped_flags_exactly_the_corpus_documents_that_grow_the_model() -> None:
    model = FieldModel()
    flagged = 0
    for document in read_ndjson(CORPUS) + read_ndjson(EDGE_DOCS):
        expected = merge_would_map(document, model.properties)
        assert native.unmapped(document, model.properties, fields.INTERNAL_PREFIX) is expected, document
        flagged += expected
        model.grow([document])
    assert flagged > 1  # the model did grow along the way


def random_json(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(9 if depth < 3 else 6)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.randrange(-5, 5)
    if choice == 3:
        return rng.random()
    if choice == 4:
        return rng.choice(["x", "2024-01-02", "", "1"])
    if choice == 5:
        return object()  # not a JSON value: es_type maps nothing
    if choice == 6:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {rng.choice(["a", "b", "c", "d.e", "", "@estrom_x"]): random_json(rng, depth + 1) for _ in range(rng.randrange(4))}


def test_native_unmapped_agrees_with_the_merge_on_random_documents_and_mappings() -> None:
    rng = random.Random(16)
    agreed = {True: 0, False: 0}
    flagged_in_vain = 0
    for _ in range(6000):
        model = FieldModel()
        seed = random_json(rng)
        if isinstance(seed, dict):
            model.grow([seed])
        if rng.random() < 0.2:
            model.grow_with({"a": {"type": "object"}, "b": {}, "c": {"type": "long"}})
        document = random_json(rng)
        if not isinstance(document, dict):
            continue
        expected = merge_would_map(document, model.properties)
        got = native.unmapped(document, model.properties, fields.INTERNAL_PREFIX)
        # A flag where the merge maps nothing costs a merge; a missed field would never be mapped.
        assert got or not expected, (document, model.properties)
        if got == expected:
            agreed[expected] += 1
        else:
            flagged_in_vain += 1
    assert agreed[True] > 300 and agreed[False] > 300
    assert flagged_in_vain <= (agreed[True] + agreed[False]) // 50, (flagged_in_vain, agreed)


def test_the_model_grows_alike_with_and_without_the_native_check(monkeypatch: pytest.MonkeyPatch) -> None:
    documents = read_ndjson(CORPUS)[:800] + read_ndjson(EDGE_DOCS)
    with_check = FieldModel()
    for start in range(0, len(documents), 100):
        with_check.grow(documents[start : start + 100])
    monkeypatch.setattr(fields, "_native", None)
    without = FieldModel()
    for start in range(0, len(documents), 100):
        without.grow(documents[start : start + 100])
    assert with_check.properties == without.properties and with_check.types == without.types
