"""The embedded standard analyzer: the tokens Elasticsearch 7.17's ``_analyze`` gives (checked on a live node).

Each case is checked on both tokenizers: the pure-Python reference and the native one
(``standard_tokens`` where it is built; tests/unit/test_native_analysis.py holds them equal at large).
"""

from typing import Callable, List

import pytest

from beater.percolator.embedded.analysis import lowercase, python_tokens, standard_tokens

Tokenizer = Callable[[str], List[str]]


@pytest.fixture(params=[python_tokens, standard_tokens], ids=["python", "native"])
def tokens(request: pytest.FixtureRequest) -> Tokenizer:
    """The tokenizer under test."""
    return request.param


def test_apostrophes_stay_inside_words(tokens: Tokenizer) -> None:
    assert tokens("O'Brien's don’t rock 'n' roll") == ["o'brien's", "don’t", "rock", "n", "roll"]


def test_hyphens_split_words(tokens: Tokenizer) -> None:
    assert tokens("Wi-Fi") == ["wi", "fi"]


def test_numbers_keep_inner_separators(tokens: Tokenizer) -> None:
    assert tokens("3.14 1,000,000 1.2.3 $100 50%") == ["3.14", "1,000,000", "1.2.3", "100", "50"]


def test_urls_and_emails_split_at_punctuation(tokens: Tokenizer) -> None:
    assert tokens("foo@example.com http://example.com/a?b=c") == ["foo", "example.com", "http", "example.com", "a", "b", "c"]


def test_colon_between_letters_joins(tokens: Tokenizer) -> None:
    assert tokens("Wikipedia:Articles 10:30") == ["wikipedia:articles", "10", "30"]


def test_ideographs_are_single_tokens_katakana_and_hangul_runs_are_not(tokens: Tokenizer) -> None:
    assert tokens("中文 テキスト ひら 한국어") == ["中", "文", "テキスト", "ひ", "ら", "한국어"]


def test_southeast_asian_run_is_one_token(tokens: Tokenizer) -> None:
    assert tokens("ภาษาไทยไม่มีช่องว่าง abc") == ["ภาษาไทยไม่มีช่องว่าง", "abc"]


def test_emoji_sequences_are_tokens(tokens: Tokenizer) -> None:
    assert tokens("a😀b 👍🏽 👨\u200d👩\u200d👧 🇫🇷 ©") == ["a", "😀", "b", "👍🏽", "👨\u200d👩\u200d👧", "🇫🇷", "©"]


def test_lone_skin_tone_modifier_is_its_own_token(tokens: Tokenizer) -> None:
    assert tokens("a🏽") == ["a", "🏽"]


def test_symbols_and_other_numbers_are_dropped(tokens: Tokenizer) -> None:
    assert tokens("--- ① ½ x² ___ C++") == ["x", "c"]


def test_lowercase_is_per_code_point() -> None:
    assert lowercase("ΣΊΣΥΦΟΣ İstanbul") == "σίσυφοσ istanbul"


def test_tokens_are_lowercased_per_code_point_in_any_script(tokens: Tokenizer) -> None:
    assert tokens("ΣΊΣΥΦΟΣ İstanbul Straße ÉTÉ") == ["σίσυφοσ", "istanbul", "straße", "été"]


def test_non_ascii_tokens_longer_than_255_are_cut(tokens: Tokenizer) -> None:
    assert [len(t) for t in tokens("é" * 300 + " ok")] == [255, 45, 2]


def test_tokens_longer_than_255_are_cut(tokens: Tokenizer) -> None:
    assert [len(t) for t in tokens("c" * 256 + " " + "d" * 600)] == [255, 1, 255, 255, 90]


def test_the_ascii_fast_path_gives_the_general_path_tokens_on_every_ascii_text_of_the_corpus() -> None:
    import json
    from pathlib import Path

    from beater.percolator.embedded.analysis import general_tokens

    root = Path(__file__).resolve().parents[2]
    texts = [
        "a.1 1.a a1.b2 x_y __init__ _lead trail_ __ ___a", "a'b 1'2 a'1 1'a a:1 1:2 a::b a..b 1..2 1,,2 a,b 1;2 a;b '' 'x' x'",
        "U.S.A. e.g. C++ C# .NET node.js 3.14 1,000,000 2018-03-07T16:16:17+00:00 http://example.com/a?b=c", "x" * 600,
    ]

    def walk(value: object) -> None:
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for path in (root / "examples" / "recentchange.ndjson", root / "tests" / "differential" / "edge_docs.ndjson"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                walk(json.loads(line))
    ascii_texts = [t for t in texts if t.isascii()]
    assert len(ascii_texts) > 50_000
    assert [t for t in ascii_texts if python_tokens(t) != general_tokens(t)] == []
