"""Queries and documents the benchmarks share, drawn from the recent-change sample."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "recentchange.ndjson"


def load_documents(path: Path = SAMPLE) -> List[Dict[str, Any]]:
    """The sample's documents, in order."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def frequent_values(docs: List[Dict[str, Any]], field: str, n: int) -> List[str]:
    """The ``n`` most common string values of a top-level field."""
    counts = Counter(str(d[field]) for d in docs if d.get(field) not in (None, ""))
    return [value for value, _ in counts.most_common(n)]


def _quote(value: str) -> str:
    specials = set('+-=&|><!(){}[]^"~*?:\\/ ')
    return '"' + value.replace('\\', '\\\\').replace('"', '\\"') + '"' if set(value) & specials else value


def e2e_queries(docs: List[Dict[str, Any]], count: int) -> List[str]:
    """``count`` Lucene queries, the most often matching first (tails take the head of the list)."""
    wikis = frequent_values(docs, "wiki", 40)
    users = frequent_values(docs, "user", 400)
    types = frequent_values(docs, "type", 5)
    queries: List[str] = []
    queries += [f"type:{t}" for t in types]
    queries += [f"wiki:{w}" for w in wikis]
    queries += [f"wiki:{w} AND type:{t}" for w in wikis[:10] for t in types[:3]]
    queries += [f"bot:true AND wiki:{w}" for w in wikis[:20]]
    queries += [f"user:{_quote(u)}" for u in users]
    queries += [f"wiki:{w} AND NOT bot:true" for w in wikis]
    words = Counter(w.lower() for d in docs for w in str(d.get("title", "")).split() if w.isalpha() and len(w) > 3)
    queries += [f"title:{w}" for w, _ in words.most_common(count // 2)]
    comments = Counter(w.lower() for d in docs for w in str(d.get("comment", "")).split() if w.isalpha() and len(w) > 3)
    queries += [f"comment:{w}" for w, _ in comments.most_common(count // 2)]
    queries += [f"user:{_quote(u)} AND type:{t}" for u in users for t in types[:2]]
    seen: Dict[str, None] = {}
    for q in queries:
        seen.setdefault(q, None)
    return list(seen)[:count]
