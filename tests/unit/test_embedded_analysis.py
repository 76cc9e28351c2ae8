"""The embedded standard analyzer: the tokens Elasticsearch 7.17's ``_analyze`` gives (checked on a live node)."""

from beater.percolator.embedded.analysis import lowercase, standard_tokens


def test_apostrophes_stay_inside_words() -> None:
    assert standard_tokens("O'Brien's don’t rock 'n' roll") == ["o'brien's", "don’t", "rock", "n", "roll"]


def test_hyphens_split_words() -> None:
    assert standard_tokens("Wi-Fi") == ["wi", "fi"]


def test_numbers_keep_inner_separators() -> None:
    assert standard_tokens("3.14 1,000,000 1.2.3 $100 50%") == ["3.14", "1,000,000", "1.2.3", "100", "50"]


def test_urls_and_emails_split_at_punctuation() -> None:
    assert standard_tokens("foo@example.com http://example.com/a?b=c") == ["foo", "example.com", "http", "example.com", "a", "b", "c"]


def test_colon_between_letters_joins() -> None:
    assert standard_tokens("Wikipedia:Articles 10:30") == ["wikipedia:articles", "10", "30"]


def test_ideographs_are_single_tokens_katakana_and_hangul_runs_are_not() -> None:
    assert standard_tokens("中文 テキスト ひら 한국어") == ["中", "文", "テキスト", "ひ", "ら", "한국어"]


def test_southeast_asian_run_is_one_token() -> None:
    assert standard_tokens("ภาษาไทยไม่มีช่องว่าง abc") == ["ภาษาไทยไม่มีช่องว่าง", "abc"]


def test_emoji_sequences_are_tokens() -> None:
    assert standard_tokens("a😀b 👍🏽 👨\u200d👩\u200d👧 🇫🇷 ©") == ["a", "😀", "b", "👍🏽", "👨\u200d👩\u200d👧", "🇫🇷", "©"]


def test_lone_skin_tone_modifier_is_its_own_token() -> None:
    assert standard_tokens("a🏽") == ["a", "🏽"]


def test_symbols_and_other_numbers_are_dropped() -> None:
    assert standard_tokens("--- ① ½ x² ___ C++") == ["x", "c"]


def test_lowercase_is_per_code_point() -> None:
    assert lowercase("ΣΊΣΥΦΟΣ İstanbul") == "σίσυφοσ istanbul"


def test_tokens_longer_than_255_are_cut() -> None:
    assert [len(t) for t in standard_tokens("c" * 256 + " " + "d" * 600)] == [255, 1, 255, 255, 90]
