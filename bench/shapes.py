"""Stored-query shapes for the percolator benchmark, drawn deterministically from the recent-change sample.

The mix follows the published percolator benchmarks (Luwak/Lucene Monitor's
"N MUST + M NOT" term queries, Elasticsearch's percolator track of term, phrase
and boolean queries) over the vocabulary of examples/recentchange.ndjson:

    must_not   5 MUST + 2 NOT terms on the default field ``+a +b +c +d +e -f -g``
               (the MUST terms come from one document's title and comment, so some match)
    terms      1-3 terms on the default field (OR)
    phrase     2-3 consecutive words of a title or comment, on ``*``, title or comment
    prefix     ``field:abc*`` / ``abcd*`` (3-5 leading characters of a word, 4-5 on ``*``)
    wildcard   a word with one letter replaced by ``?`` and/or a trailing ``*``
    field      ``user:"X"``, ``wiki:Y``, ``title:word``, ``comment:word``, ``type:T AND wiki:Y``
    range      ``namespace:[a TO b]``, ``length.new:>N``, mostly with a wiki, user or type+title term
    boolmix    ``(a OR b) AND wiki:Y AND [NOT] bot:true``

All sources are Lucene query strings (``query_string``, default field ``*``,
default operator OR).  :func:`generate` returns ``count`` distinct sources; the
list for a smaller count is a prefix of the list for a larger one (same seed).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from typing import Any, Dict, List, Mapping, Sequence, Tuple

from beater.percolator.embedded.analysis import standard_tokens

# Shape name -> weight (per 100 queries).
SHAPES: Dict[str, int] = {
    "must_not": 15,
    "terms": 12,
    "phrase": 20,
    "prefix": 8,
    "wildcard": 5,
    "field": 25,
    "range": 8,
    "boolmix": 7,
}

_WORD = re.compile(r"^[^\W_]+$")  # letters/digits only: safe unquoted in a Lucene query string
_RESERVED = {"and", "or", "not", "to"}


def _plain(token: str) -> bool:
    return bool(_WORD.match(token)) and token not in _RESERVED and len(token) <= 40


def _quote_phrase(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _value(text: str) -> str:
    """A field value as one Lucene term: bare if it is a plain word, else a quoted phrase."""
    return text if _WORD.match(text) and text.lower() not in _RESERVED else _quote_phrase(text)


class Vocabulary:
    """Words, word sequences and field values of the sample, with their frequencies."""

    def __init__(self, docs: Sequence[Mapping[str, Any]]) -> None:
        counts: Counter = Counter()
        self.doc_tokens: List[List[str]] = []
        self.sequences: List[Tuple[str, List[str]]] = []  # (field, tokens of one title/comment)
        for doc in docs:
            tokens: List[str] = []
            for name in ("title", "comment", "user", "wiki", "type", "server_name"):
                value = doc.get(name)
                if not isinstance(value, str):
                    continue
                words = standard_tokens(value)
                plain = [w for w in words if _plain(w)]
                counts.update(plain)
                if name in ("title", "comment"):
                    tokens.extend(plain)
                if name in ("title", "comment") and len(words) >= 2:
                    self.sequences.append((name, words))
            self.doc_tokens.append(sorted(set(tokens)))
        self.words = sorted(counts)  # uniform draws: mostly rare words
        self.weighted = [w for w, _ in counts.most_common()]
        self.weights = [c for _, c in counts.most_common()]
        self.letter_words = [w for w in self.words if w.isalpha() and len(w) >= 4]
        self.title_words = sorted({w for f, ws in self.sequences if f == "title" for w in ws if _plain(w) and w.isalpha()})
        self.comment_words = sorted({w for f, ws in self.sequences if f == "comment" for w in ws if _plain(w) and w.isalpha()})
        self.users = sorted({d["user"] for d in docs if isinstance(d.get("user"), str) and d["user"]})
        self.wikis = sorted({d["wiki"] for d in docs if isinstance(d.get("wiki"), str) and d["wiki"]})
        self.types = sorted({d["type"] for d in docs if isinstance(d.get("type"), str) and d["type"]})
        self.lengths = sorted({d["length"]["new"] for d in docs if isinstance(d.get("length"), dict) and isinstance(d["length"].get("new"), int)})
        self.namespaces = sorted({d["namespace"] for d in docs if isinstance(d.get("namespace"), int)})

    def frequent(self, rng: random.Random) -> str:
        return rng.choices(self.weighted, self.weights)[0]


def _must_not(v: Vocabulary, rng: random.Random) -> str:
    tokens = rng.choice([t for t in (rng.choice(v.doc_tokens) for _ in range(20)) if len(t) >= 5] or [v.words[:5]])
    must = rng.sample(tokens, 5)
    nots: List[str] = []
    while len(nots) < 2:
        word = v.frequent(rng) if rng.random() < 0.5 else rng.choice(v.words)
        if word not in must and word not in nots:
            nots.append(word)
    return " ".join([f"+{w}" for w in must] + [f"-{w}" for w in nots])


def _terms(v: Vocabulary, rng: random.Random) -> str:
    n = rng.choice((1, 2, 3))
    return " ".join(rng.choice(v.words) for _ in range(n))


def _phrase(v: Vocabulary, rng: random.Random) -> str:
    field, words = rng.choice(v.sequences)
    n = min(len(words), rng.choice((2, 3)))
    start = rng.randrange(len(words) - n + 1)
    phrase = _quote_phrase(" ".join(words[start : start + n]))
    where = rng.random()
    if where < 0.4:
        return phrase
    return f"{field}:{phrase}"


def _prefix(v: Vocabulary, rng: random.Random) -> str:
    field = rng.choice(("title", "comment", "*", "user"))
    pool = v.title_words if field == "title" else v.comment_words if field == "comment" else v.letter_words
    word = rng.choice([w for w in (rng.choice(pool) for _ in range(10)) if len(w) >= 4] or ["wiki"])
    stem = word[: rng.choice((4, 5)) if field == "*" else rng.choice((3, 4, 5))]
    return f"{stem}*" if field == "*" else f"{field}:{stem}*"


def _wildcard(v: Vocabulary, rng: random.Random) -> str:
    field = rng.choice(("title", "comment"))
    pool = v.title_words if field == "title" else v.comment_words
    word = rng.choice([w for w in (rng.choice(pool) for _ in range(10)) if len(w) >= 5] or ["wikidata"])
    i = rng.randrange(3, len(word))
    pattern = word[:i] + "?" + word[i + 1 :]
    if rng.random() < 0.5:
        pattern = pattern[: max(i + 1, len(pattern) - 2)] + "*"
    return f"{field}:{pattern}"


def _field(v: Vocabulary, rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.3:
        return f"user:{_value(rng.choice(v.users))}"
    if kind < 0.4:
        return f"wiki:{_value(rng.choice(v.wikis))}"
    if kind < 0.6:
        return f"title:{rng.choice(v.title_words)}"
    if kind < 0.8:
        return f"comment:{rng.choice(v.comment_words)}"
    if kind < 0.85:
        return f"type:{rng.choice(v.types)} AND wiki:{_value(rng.choice(v.wikis))}"
    if kind < 0.95:
        field = rng.choice(("title", "comment"))
        word = rng.choice(v.title_words if field == "title" else v.comment_words)
        return f"{field}:{word} AND wiki:{_value(rng.choice(v.wikis))}"
    return f"user:{_value(rng.choice(v.users))} AND NOT minor:true"


def _range(v: Vocabulary, rng: random.Random) -> str:
    if rng.random() < 0.4:
        a, b = sorted(rng.sample(v.namespaces, 2)) if len(v.namespaces) > 1 else (0, 0)
        clause = f"namespace:[{a} TO {b}]" if rng.random() < 0.5 else f"namespace:{rng.choice(v.namespaces)}"
    else:
        low = rng.choice(v.lengths)
        kind = rng.random()
        if kind < 0.2:
            clause = f"length.new:>{low}"
        elif kind < 0.4:
            clause = f"length.new:<={low}"
        else:
            high = low + rng.choice((10, 100, 1000))
            clause = f"length.new:[{low} TO {high}]"
    company = rng.random()
    if company < 0.1:
        return clause
    if company < 0.4:
        return f"{clause} AND wiki:{_value(rng.choice(v.wikis))}"
    if company < 0.7:
        return f"{clause} AND user:{_value(rng.choice(v.users))}"
    return f"{clause} AND type:{rng.choice(v.types)} AND title:{rng.choice(v.title_words)}"


def _boolmix(v: Vocabulary, rng: random.Random) -> str:
    a, b = rng.choice(v.words), rng.choice(v.words)
    tail = " AND NOT bot:true" if rng.random() < 0.5 else " AND bot:true"
    return f"({a} OR {b}) AND wiki:{_value(rng.choice(v.wikis))}{tail}"


_MAKERS = {
    "must_not": _must_not,
    "terms": _terms,
    "phrase": _phrase,
    "prefix": _prefix,
    "wildcard": _wildcard,
    "field": _field,
    "range": _range,
    "boolmix": _boolmix,
}


def generate(docs: Sequence[Mapping[str, Any]], count: int, seed: int = 42) -> List[Tuple[str, str]]:
    """``count`` distinct ``(shape, lucene_source)`` pairs; a prefix of the list for any larger count."""
    vocabulary = Vocabulary(docs)
    rng = random.Random(seed)
    names = list(SHAPES)
    weights = [SHAPES[n] for n in names]
    seen: Dict[str, None] = {}
    out: List[Tuple[str, str]] = []
    attempts = 0
    while len(out) < count:
        attempts += 1
        if attempts > count * 50:
            raise RuntimeError(f"could only make {len(out)} distinct queries")
        shape = rng.choices(names, weights)[0]
        source = _MAKERS[shape](vocabulary, rng)
        if source in seen:
            continue
        seen[source] = None
        out.append((shape, source))
    return out


if __name__ == "__main__":
    import sys

    from bench.workload import load_documents

    for shape, source in generate(load_documents(), int(sys.argv[1]) if len(sys.argv) > 1 else 40):
        print(f"{shape:9} {source}")
