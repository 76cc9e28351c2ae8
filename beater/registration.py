"""What a registered query is, and how a raw query becomes one.

Registration is pure: parse the query (Lucene string or DSL object), reduce it
to its canonical tree, hash the index and the canonical form.  Equivalent
queries therefore share one id, one percolator entry and one topic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Union

from beater import query as q
from beater.errors import InvalidIndex, InvalidQuery, QueryTooLarge
from beater.query import ir
from beater.query.ir import Node
from beater.query.kinds import DYNAMIC, FieldKinds
from beater.query.readable import to_lucene
from router import contract

QuerySource = Union[str, Mapping[str, Any]]

_FORBIDDEN_INDEX_CHARS = set('\\/*?"<>| ,#:')


@dataclass(frozen=True)
class Registration:
    """A registered query: its id, its index, what the user wrote and what we understood."""

    id: str
    index: str
    source: QuerySource
    default_operator: str
    canonical: Node
    mapping: str = ""
    """Tag of the index's configured mapping when registered (empty: dynamic mapping)."""
    persist: bool = field(default=False, compare=False)
    """Exempt from expiry (``beater/lifecycle.py``); metadata, not part of what the id hashes."""
    created_at: float = field(default=0.0, compare=False)
    """Wall-clock seconds when it was first registered (0: registered before this was recorded)."""

    @property
    def topic(self) -> str:
        """The WAMP topic that carries this registration's hits."""
        return contract.topic_for(self.id)

    @property
    def canonical_text(self) -> str:
        """The canonical form as compact JSON: what the id hashes, shown to users."""
        return q.canonical_json(self.canonical)

    @property
    def readable(self) -> str:
        """The canonical form as a Lucene-style string (``+bar +foo``), shown next to the JSON tree.

        Exact Lucene syntax for the same id wherever the tree has a Lucene form, else a readable
        approximation (``beater/query/readable.py``); the text does not depend on the field kinds.
        """
        return to_lucene(self.canonical, verify=False).text

    def to_json(self) -> Dict[str, Any]:
        """The registration as answered by ``estrom.register`` and stored on disk."""
        return {
            "id": self.id,
            "topic": self.topic,
            "index": self.index,
            "query": self.source,
            "default_operator": self.default_operator,
            "canonical": json.loads(self.canonical_text),
            "readable": self.readable,
            **({"mapping": self.mapping} if self.mapping else {}),
            "persist": self.persist,
            **({"created_at": self.created_at} if self.created_at else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Registration":
        """Rebuild a registration stored with :meth:`to_json` (no re-parsing, so ids stay stable)."""
        return cls(
            id=data["id"],
            index=data["index"],
            source=data["query"],
            default_operator=data.get("default_operator", "or"),
            canonical=q.node_from_json(data["canonical"]),
            mapping=data.get("mapping", ""),
            persist=data.get("persist") is True,
            created_at=float(data.get("created_at") or 0.0),
        )


def validate_index(index: Any) -> str:
    """Return ``index`` if it is a usable index name (Elasticsearch's rules), else raise InvalidIndex."""
    if not isinstance(index, str) or not index:
        raise InvalidIndex("index must be a non-empty string", part=repr(index))
    if index != index.lower() or index.startswith(("_", "-", "+")) or index in (".", ".."):
        raise InvalidIndex("index must be lowercase and not start with _, - or +", part=index)
    bad = sorted(set(index) & _FORBIDDEN_INDEX_CHARS)
    if bad or len(index.encode()) > 255:
        raise InvalidIndex(f"index contains forbidden characters {''.join(bad)!r} or is too long", part=index)
    return index


MAX_CLAUSES = 1024
"""Elasticsearch's default ``indices.query.bool.max_clause_count``: it refuses bigger boolean queries."""
MAX_TERMS = 65536
"""Elasticsearch's default ``index.max_terms_count`` for a ``terms`` query."""


def check_size(node: Node, max_clauses: int = MAX_CLAUSES) -> None:
    """Refuse what Elasticsearch would refuse for size: a boolean (or an analysed text) of more than
    ``max_clauses`` clauses (QueryTooLarge naming ``max_query_clauses``), a ``terms`` of more than 65536
    values.  Also bounds the work one query can cost."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, ir.Bool):
            clauses = current.must + current.should + current.must_not + current.filter
            if len(clauses) > max_clauses:
                raise QueryTooLarge(f"query has {len(clauses)} clauses in one boolean, more than {max_clauses} (max_query_clauses)",
                                    limit="max_query_clauses", value=max_clauses, part=f"{len(clauses)} clauses")
            stack.extend(clauses)
        elif isinstance(current, (ir.Match, ir.Phrase)):
            words = len(current.text.split())
            if words > max_clauses:
                raise QueryTooLarge(f"text of {words} words makes more than {max_clauses} clauses (max_query_clauses)",
                                    limit="max_query_clauses", value=max_clauses, part=current.text[:80] + "...")
        elif isinstance(current, ir.Terms) and len(current.values) > MAX_TERMS:
            raise InvalidQuery(f"terms query with {len(current.values)} values, more than {MAX_TERMS}", part=current.field)


def check_length(source: Any, max_chars: int) -> None:
    """QueryTooLarge (naming ``max_query_chars``) if ``source`` -- a query string, or a DSL object as compact
    JSON -- is longer than ``max_chars``; checked before it is parsed."""
    if isinstance(source, str):
        length = len(source)
    else:
        try:
            length = len(json.dumps(source, separators=(",", ":"), ensure_ascii=False))
        except RecursionError:
            raise InvalidQuery("query nests too deeply", part=type(source).__name__) from None
        except (TypeError, ValueError):
            return  # not JSON: the parser says what is wrong with it
    if length > max_chars:
        raise QueryTooLarge(f"the query is {length} characters, over the limit of {max_chars} (max_query_chars)",
                            limit="max_query_chars", value=max_chars, part=str(source)[:80] + "...")


def make_registration(index: Any, source: Any, default_operator: str = "or", fields: FieldKinds = DYNAMIC,
                      max_clauses: int = MAX_CLAUSES) -> Registration:
    """Parse and canonicalise ``source`` for ``index`` with its field kinds; raise InvalidQuery /
    UnsupportedQuery on bad input, QueryTooLarge past ``max_clauses`` in one boolean."""
    index = validate_index(index)
    canonical = q.canonicalise(q.parse(source, default_operator=default_operator, fields=fields), fields)
    check_size(canonical, max_clauses)
    return Registration(
        id=q.subscription_id(index, canonical, fields.tag),
        index=index,
        source=source,
        default_operator=default_operator,
        canonical=canonical,
        mapping=fields.tag,
    )
