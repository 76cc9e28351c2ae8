"""What a registered query is, and how a raw query becomes one.

Registration is pure: parse the query (Lucene string or DSL object), reduce it
to its canonical tree, hash the index and the canonical form.  Equivalent
queries therefore share one id, one percolator entry and one topic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Union

from beater import query as q
from beater.errors import InvalidIndex
from beater.query.ir import Node
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

    @property
    def topic(self) -> str:
        """The WAMP topic that carries this registration's hits."""
        return contract.topic_for(self.id)

    @property
    def canonical_text(self) -> str:
        """The canonical form as compact JSON: what the id hashes, shown to users."""
        return q.canonical_json(self.canonical)

    def to_json(self) -> Dict[str, Any]:
        """The registration as answered by ``estrom.register`` and stored on disk."""
        return {
            "id": self.id,
            "topic": self.topic,
            "index": self.index,
            "query": self.source,
            "default_operator": self.default_operator,
            "canonical": json.loads(self.canonical_text),
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


def make_registration(index: Any, source: Any, default_operator: str = "or") -> Registration:
    """Parse and canonicalise ``source`` for ``index``; raise InvalidQuery / UnsupportedQuery on bad input."""
    index = validate_index(index)
    canonical = q.canonicalise(q.parse(source, default_operator=default_operator))
    return Registration(
        id=q.subscription_id(index, canonical),
        index=index,
        source=source,
        default_operator=default_operator,
        canonical=canonical,
    )
