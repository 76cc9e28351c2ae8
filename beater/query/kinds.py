"""What parsing and canonicalisation need to know about an index's fields: which are keyword fields.

Elasticsearch's query_string treats a keyword field differently from a text field
before any document is seen: a word that analyses to nothing is dropped on a text
field but is a term on a keyword field; wildcards, prefixes and range bounds are
lowercased on text fields and kept as written on keyword fields.  Canonicalisation
lowercases text on the default field ``*`` only when every keyword field is the
``.keyword`` sub-field of a text field holding the same values, so that a keyword
match implies a text match.

Under dynamic mapping (no configured mapping) keyword fields are exactly the
``.keyword`` sub-fields, known by name.  With a configured mapping the mapped
types decide, and fields it does not map follow the dynamic rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import FrozenSet

KEYWORD_SUFFIX = ".keyword"


def keyword_by_name(path: str) -> bool:
    """Whether dynamic mapping would make ``path`` a keyword field (it names a ``.keyword`` sub-field)."""
    return path == "keyword" or path.endswith(KEYWORD_SUFFIX)


@dataclass(frozen=True)
class FieldKinds:
    """The keyword/text distinction of one index's field model, and the tag its ids carry.

    ``mapped`` holds every path the configured mapping maps (objects and sub-fields
    included), ``keywords`` those of type keyword and ``twinned`` the keyword
    sub-fields of text fields among them.  ``tag`` is empty for dynamic mapping, so
    the ids of indexes without a configured mapping never change.
    """

    mapped: FrozenSet[str] = field(default_factory=frozenset)
    keywords: FrozenSet[str] = field(default_factory=frozenset)
    twinned: FrozenSet[str] = field(default_factory=frozenset)
    dynamic: bool = True
    tag: str = ""

    def is_keyword(self, path: str) -> bool:
        """Whether a query on ``path`` sees whole, case-sensitive values (a keyword field)."""
        if path in self.mapped:
            return path in self.keywords
        if not self.dynamic or not keyword_by_name(path):
            return False  # unmapped fields are percolated as text (map_unmapped_fields_as_text)
        # a sub-field can only appear with its parent: a mapped parent without it never gets one
        return path == "keyword" or path[: -len(KEYWORD_SUFFIX)] not in self.mapped

    @property
    def keyword_values_have_text_twins(self) -> bool:
        """Whether every keyword value is also in a text field as its tokens (the dynamic-mapping shape).

        Only then may canonicalisation lowercase text on the default field ``*``.
        """
        return self.keywords <= self.twinned


DYNAMIC = FieldKinds()
"""The field kinds of an index without a configured mapping."""

__all__ = ["DYNAMIC", "KEYWORD_SUFFIX", "FieldKinds", "keyword_by_name"]
