"""Elasticsearch's ``standard`` analyzer, reimplemented: UAX#29 words, lowercased, at most 255 chars.

Lucene's StandardTokenizer splits text at Unicode (UAX#29) word boundaries and
keeps only the segments that hold a letter, a digit, an ideograph or an emoji;
runs of South-East Asian scripts (Thai, Lao, Myanmar, Khmer: no spaces between
words, no dictionary in the standard analyzer) stay one token; longer tokens are
cut into pieces of 255 characters.  The LowerCaseFilter lowercases code point by
code point (Java ``Character.toLowerCase``): no final-sigma rule, ``İ`` -> ``i``.

The ``regex`` package's ``WORD`` flag gives the UAX#29 boundaries.  The tokens
were checked against Elasticsearch 7.17's ``_analyze`` (tests/differential).

:func:`python_tokens` is the reference; the optional native module (``_analysis.c``,
built at install where a C compiler is) gives the same tokens about 10x faster, and
:func:`standard_tokens` is the native one when it is built
(tests/unit/test_native_analysis.py holds the two equal).
"""

from __future__ import annotations

from functools import lru_cache
from typing import List, Tuple

import re

import regex

try:
    from beater.percolator.embedded import _analysis as _native  # type: ignore[attr-defined]  # a C extension without a stub
except ImportError:  # built without a C compiler: the pure-Python tokenizer, same tokens
    _native = None

NATIVE = _native is not None
MAX_TOKEN_LENGTH = 255

_BOUNDARY = regex.compile(r"(?V1w)\b")
# A segment is a token if it holds one of these (punctuation, symbols, "_" runs and
# other numbers such as ① ½ ² are dropped, as StandardTokenizer drops them).
_KEEP = regex.compile(r"[\p{L}\p{Nd}\p{Nl}\p{Extended_Pictographic}\p{Emoji_Modifier}\p{Regional_Indicator}\u20e3]")
# Complex-context scripts: a run of them is one token.
_SOUTHEAST_ASIAN = regex.compile(r"^[\p{Line_Break=Complex_Context}\p{M}]+$")
_SA_CHAR = regex.compile(r"\p{Line_Break=Complex_Context}")
# Newer Unicode word rules glue a skin-tone modifier to whatever precedes it; Lucene's grammar
# (Unicode 9 with its own emoji rules) makes a modifier after a non-emoji a token of its own.
_HAS_MODIFIER = regex.compile(r"\p{Emoji_Modifier}")
_LONE_MODIFIER = regex.compile(r"(?<![\p{Extended_Pictographic}\p{Emoji_Modifier}\uFE0F\u200D])(?=\p{Emoji_Modifier})")


@lru_cache(maxsize=4096)
def _lower_char(char: str) -> str:
    lowered = char.lower()
    # Java's Character.toLowerCase is a one-to-one mapping; Python's full mapping may not be.
    return lowered if len(lowered) == 1 else {"\u0130": "i"}.get(char, char)


def lowercase(text: str) -> str:
    """Lowercase as Lucene's LowerCaseFilter: code point by code point, no context rules."""
    # Python's str.lower differs from the per-code-point mapping only for these two: the final-sigma
    # rule and the two-character lowercase of U+0130.
    if text.isascii() or ("\u03a3" not in text and "\u0130" not in text):
        return text.lower()
    return "".join(_lower_char(c) for c in text)


def _segments(text: str) -> List[str]:
    parts = _BOUNDARY.split(text)
    if _HAS_MODIFIER.search(text):
        parts = [piece for part in parts for piece in _LONE_MODIFIER.split(part)]
    if not _SA_CHAR.search(text):
        return parts
    merged: List[str] = []
    previous_sa = False
    for part in parts:
        if not part:
            continue
        is_sa = bool(_SA_CHAR.search(part)) and bool(_SOUTHEAST_ASIAN.match(part))
        if is_sa and previous_sa:
            merged[-1] += part
        else:
            merged.append(part)
        previous_sa = is_sa
    return merged


def _is_token(segment: str) -> bool:
    # str.isalpha (all letters) and isdecimal (all Nd digits) settle most segments without a regex;
    # whitespace and punctuation segments fall through to the full test.
    return segment.isalpha() or segment.isdecimal() or (not segment.isspace() and _KEEP.search(segment) is not None)


# For ASCII text the UAX#29 rules reduce to this: letters, digits and "_" run together; ':' '.' "'"
# join two letters (MidLetter, MidNumLet, Single_Quote), ',' ';' '.' "'" join two digits (MidNum).
# Case does not affect the rules, so the text is lowercased first.  Checked equal to the general
# path on every ASCII text of the sample corpus and the edge cases (tests/unit/test_embedded_analysis.py).
_ASCII_WORD = re.compile(r"[a-z0-9_]+(?:(?:(?<=[a-z])[:.'](?=[a-z])|(?<=[0-9])[.,;'](?=[0-9]))[a-z0-9_]+)*")


def _ascii_tokens(text: str) -> List[str]:
    words = [w for w in _ASCII_WORD.findall(text.lower()) if w.strip("_")]  # "_" runs alone are dropped
    if any(len(w) > MAX_TOKEN_LENGTH for w in words):
        words = [w[i : i + MAX_TOKEN_LENGTH] for w in words for i in range(0, len(w), MAX_TOKEN_LENGTH)]
    return words


def python_tokens(text: str) -> List[str]:
    """The tokens the standard analyzer makes of ``text``, in order (position = list index), in pure Python."""
    if not text:
        return []
    if text.isascii():
        return _ascii_tokens(text)  # about 5x faster than the general path below
    return general_tokens(text)


def standard_tokens(text: str) -> List[str]:
    """The tokens the standard analyzer makes of ``text``, in order (position = list index)."""
    if _native is not None:
        return _native.tokens(text)
    return python_tokens(text)


def general_tokens(text: str) -> List[str]:
    """:func:`python_tokens` by the general (any script) path."""
    tokens = [segment for segment in _segments(text) if segment and _is_token(segment)]
    if not tokens:
        return tokens
    if "\u03a3" in text or "\u0130" in text:
        tokens = [lowercase(t) for t in tokens]
    else:
        # Lowercasing a whole run of tokens at once (joined by a character no token holds) is
        # one C call instead of one per token; length-preserving here, so the split is exact.
        tokens = "\n".join(tokens).lower().split("\n")
    if any(len(t) > MAX_TOKEN_LENGTH for t in tokens):
        tokens = [t[i : i + MAX_TOKEN_LENGTH] for t in tokens for i in range(0, len(t), MAX_TOKEN_LENGTH)]
    return tokens


CACHED_LENGTH = 64  # longer texts (comments, HTML) are mostly unique: caching them would push out the rest


@lru_cache(maxsize=65536)
def _analyze_short(text: str) -> Tuple[str, ...]:
    return tuple(standard_tokens(text))


def analyze_cached(text: str) -> Tuple[str, ...]:
    """:func:`standard_tokens` as a tuple, memoised for short texts (query texts and repeated field values)."""
    if len(text) <= CACHED_LENGTH:
        return _analyze_short(text)
    return tuple(standard_tokens(text))


analyze_cached.cache_clear = _analyze_short.cache_clear  # type: ignore[attr-defined]
analyze_cached.cache_info = _analyze_short.cache_info  # type: ignore[attr-defined]
