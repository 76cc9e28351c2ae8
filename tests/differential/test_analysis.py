"""The embedded standard analyzer held to Elasticsearch's ``standard`` analyzer, token for token.

Texts: the titles and comments of examples/recentchange.ndjson, every string of
edge_docs.ndjson, and hard Unicode cases (scripts without spaces, emoji
sequences, apostrophes, numbers, combining marks, tokens longer than 255).
"""

from __future__ import annotations

import json
from typing import Any, Iterator, List, Tuple

import pytest

from tests.differential.conftest import CORPUS, EDGE_DOCS, read_ndjson
from tests.differential.es import Es, analyze

HARD_CASES = [
    "Wi-Fi don't",
    "O'Brien's l'été d’Artagnan rock 'n' roll '' 'quoted'",
    "don’t can’t won't it's",
    "3.14 1,000,000 1.2.3 v2 2018-03-07T16:16:17+00:00 10:30 $100 50% #tag @user",
    "foo@example.com http://example.com/a/b?c=d&e=f www.example.org",
    "U.S.A. e.g. i.e. A.B.C.D",
    "x_y snake_case __init__ _lead trail_",
    "C++ C# .NET node.js F#",
    "中文分词测试 日本語のテキスト カタカナ ひらがな 한국어 텍스트",
    "ภาษาไทยไม่มีช่องว่าง ພາສາລາວ ၿမန္မာ ខ្មែរ",
    "עברית العربية فارسی हिन्दी বাংলা தமிழ்",
    "Ελληνικά ΣΊΣΥΦΟΣ Σίσυφος ς σ",
    "Größe GRÖSSE straße İstanbul ǅemal ﬁnance ﬀ",
    "e\u0301 café cafe\u0301 n\u0303 a\u030a",
    "emoji 😀 👍🏽 ❤️ 👨‍👩‍👧 🇫🇷 #️⃣ 1️⃣",
    "zero\u200bwidth join\u200der non\u200cjoiner soft\u00adhyphen nb\u00a0sp",
    "① ２ Ⅻ ½ ¹ x²",
    "tab\tnew\nline\r\ncr",
    "a" * 254 + " " + "b" * 255 + " " + "c" * 256 + " " + "d" * 600,
    "Wikipedia:Articles for deletion/Foo (2nd nomination)",
    "[[Special:Contributions/127.0.0.1|127.0.0.1]] /* wbsetclaim-create:2||1 */",
    "",
    "   ",
    "---",
    "'",
]


def strings(value: Any) -> Iterator[str]:
    """Every string inside a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)


def texts() -> List[str]:
    seen = set()
    out: List[str] = []
    candidates: List[str] = list(HARD_CASES)
    for doc in read_ndjson(CORPUS):
        candidates += [doc.get("title", ""), doc.get("comment", ""), doc.get("user", "")]
    for doc in read_ndjson(EDGE_DOCS):
        candidates += list(strings(doc))
    for text in candidates:
        if isinstance(text, str) and text not in seen:
            seen.add(text)
            out.append(text)
    return out


def token_text(token: Any) -> str:
    """The text of one token, whatever shape the embedded analyzer returns."""
    if isinstance(token, str):
        return token
    for attribute in ("term", "text", "token"):
        if hasattr(token, attribute):
            return str(getattr(token, attribute))
    return str(token[0])


def test_standard_tokens_agree_with_elasticsearch(es: Es, capsys: pytest.CaptureFixture[str]) -> None:
    """Every text: the same tokens, in the same order."""
    from beater.percolator.embedded.analysis import standard_tokens

    all_texts = texts()
    mismatches: List[Tuple[str, List[str], List[str]]] = []
    for text in all_texts:
        expected = [token for token, _ in analyze(es, text)]
        got = [token_text(t) for t in standard_tokens(text)]
        if got != expected:
            mismatches.append((text, expected, got))
    summary = f"analysis: {len(all_texts)} texts compared, {len(mismatches)} differ"
    details = "\n".join(
        f"  text {json.dumps(text[:200], ensure_ascii=False)}\n    elasticsearch {expected}\n    embedded      {got}"
        for text, expected, got in mismatches[:30]
    )
    with capsys.disabled():
        print("\n" + summary + ("\n" + details if details else ""))
    assert not mismatches, summary + "\n" + details
