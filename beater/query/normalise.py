"""The canonical form of a query tree: one tree for every spelling of the same query.

``canonicalise`` is pure and meaning-preserving: it only applies rewrites that
cannot change which documents match under Elasticsearch semantics and the
index's field kinds (:mod:`beater.query.kinds`: keyword or text, from the
configured mapping or, by default, the dynamic mapping of
:mod:`beater.percolator.mapping`, where every string field is text with a
``.keyword`` sub-field holding the same values).

Why lowercasing is safe: on a text field the standard analyzer lowercases
anyway; keyword fields keep their text as written.  On ANY_FIELD the keyword
fields see the raw text too, so the text is lowercased there only when every
keyword field is the ``.keyword`` twin of a text field: a keyword value equal to
the query text means its parent text field holds exactly the query's tokens, so
the text field matches too (provided the text has a token at all, which is
checked).  Texts that could be case-sensitive literals of number, date or
boolean fields (``true``, ``2020-01-01T00:00Z``, ``1E5``, ``NaN``) are left alone.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple, TypeGuard, Union

from beater.query.identity import canonical_json
from beater.query.ir import (
    ANY_FIELD,
    Bool,
    Match,
    MatchAll,
    MatchNone,
    Node,
    Phrase,
    Term,
    Terms,
)
from beater.query.kinds import DYNAMIC, FieldKinds
from beater.query.lucene import has_tokens, is_single_token, java_lower

_LITERAL_WORDS = {"true", "false", "nan", "infinity", "+infinity", "-infinity"}
_LITERAL_LETTERS = set("tzefd")  # letters that can appear in dates (T, Z) and Java numbers (1e5, 1.5f, 2d)


def _literal_like(text: str) -> bool:
    """Whether ``text`` might be a case- or space-sensitive number/date/boolean literal."""
    stripped = text.strip()
    if stripped.lower() in _LITERAL_WORDS:
        return True
    if any(c.isdigit() for c in stripped):
        letters = {c.lower() for c in stripped if c.isalpha()}
        return letters <= _LITERAL_LETTERS
    return False


def _normal_text(field: str, text: str, fields: FieldKinds) -> str:
    if fields.is_keyword(field) or _literal_like(text):
        return text
    if field == ANY_FIELD and not (has_tokens(text) and fields.keyword_values_have_text_twins):
        return text  # keyword fields can match on their own: the raw text matters
    # tokens do not depend on case or on the amount of whitespace between them
    return " ".join(java_lower(text).split())


def _single_term(field: str, text: str, fields: FieldKinds) -> bool:
    """Whether analysis certainly yields exactly one term on every field ``field`` can mean."""
    return fields.is_keyword(field) or is_single_token(text)


def _leaf(node: Node, fields: FieldKinds) -> Node:
    if isinstance(node, Match):
        text = _normal_text(node.field, node.text, fields)
        fuzziness = None if node.fuzziness in (None, "0") else node.fuzziness
        operator, msm = node.operator, node.minimum_should_match
        if _single_term(node.field, text, fields):
            # one term: ES builds a term query; operator and minimum_should_match do not apply
            operator, msm = "or", None
        return Match(node.field, text, operator=operator, minimum_should_match=msm, fuzziness=fuzziness)
    if isinstance(node, Phrase):
        text = _normal_text(node.field, node.text, fields)
        if _single_term(node.field, text, fields):
            return Match(node.field, text)  # a one-term phrase is a term query
        return Phrase(node.field, text, slop=node.slop)
    if isinstance(node, Terms):
        unique: Dict[str, Union[str, int, float, bool]] = {}
        for value in node.values:
            unique.setdefault(canonical_json(Term(node.field, value)), value)
        values = tuple(unique[k] for k in sorted(unique))
        if not values:
            return MatchNone()
        if len(values) == 1:
            return Term(node.field, values[0])
        return Terms(node.field, values)
    return node


def _dedupe_sorted(nodes: List[Node]) -> Tuple[Node, ...]:
    keyed = {canonical_json(n): n for n in nodes}
    return tuple(keyed[k] for k in sorted(keyed))


def _sorted(nodes: List[Node]) -> Tuple[Node, ...]:
    return tuple(sorted(nodes, key=canonical_json))


def _is_disjunction(node: Node) -> TypeGuard[Bool]:
    """A canonical Bool that means "at least one of its should clauses"."""
    return (
        isinstance(node, Bool)
        and bool(node.should)
        and not node.must
        and not node.must_not
        and not node.filter
        and node.minimum_should_match in (None, 1)
    )


def _canonical_bool(node: Bool, fields: FieldKinds) -> Node:
    original_must = list(node.must) + list(node.filter)  # filter only differs in scoring
    # how many should clauses a match needs, decided by the clauses as written
    if node.minimum_should_match is not None:
        required = node.minimum_should_match
    else:
        required = 1 if node.should and not original_must else 0

    must: List[Node] = []
    must_not: List[Node] = []
    should: List[Node] = []

    for child in (canonicalise(c, fields) for c in original_must):
        if isinstance(child, MatchAll):
            continue
        if isinstance(child, MatchNone):
            return MatchNone()
        if isinstance(child, Bool) and not child.should:
            must.extend(child.must)  # a nested conjunction (canonical: no filter, no optional should)
            must_not.extend(child.must_not)
        else:
            must.append(child)

    for child in (canonicalise(c, fields) for c in node.must_not):
        if isinstance(child, MatchNone):
            continue
        if isinstance(child, MatchAll):
            return MatchNone()
        if _is_disjunction(child):
            must_not.extend(child.should)  # not (a or b) = not a and not b
        else:
            must_not.append(child)

    if required > 0:
        for child in (canonicalise(c, fields) for c in node.should):
            if isinstance(child, MatchNone):
                continue
            if isinstance(child, MatchAll):
                required -= 1  # always satisfied
                continue
            if required == 1 and _is_disjunction(child):
                should.extend(child.should)  # (a or b) or c = a or b or c when one is enough
            else:
                should.append(child)

    if required > 0 and required <= 1:
        should = list(_dedupe_sorted(should))  # duplicates only matter when counting several
    if required <= 0:
        should = []
    elif required > len(should):
        return MatchNone()
    elif required == len(should):
        must.extend(should)  # every optional clause is needed: they are required clauses
        should = []
        required = 0
        # lifted clauses may be conjunctions themselves
        lifted: List[Node] = []
        for child in must:
            if isinstance(child, Bool) and not child.should:
                lifted.extend(child.must)
                must_not.extend(child.must_not)
            else:
                lifted.append(child)
        must = lifted

    must_t = _dedupe_sorted(must)
    must_not_t = _dedupe_sorted(must_not)
    should_t = _sorted(should)
    if set(map(canonical_json, must_t)) & set(map(canonical_json, must_not_t)):
        return MatchNone()  # x and not x

    msm: Optional[int] = None
    if should_t:
        msm = required if (must_t or required > 1) else None
    if not must_t and not must_not_t and not should_t:
        return MatchAll()  # ES: an empty bool matches everything
    if len(must_t) == 1 and not must_not_t and not should_t:
        return must_t[0]
    if len(should_t) == 1 and not must_t and not must_not_t and msm is None:
        return should_t[0]
    return Bool(must=must_t, should=should_t, must_not=must_not_t, minimum_should_match=msm)


def canonicalise(node: Node, fields: FieldKinds = DYNAMIC) -> Node:
    """The canonical tree of ``node``: equal for queries that match the same documents by construction.

    ``fields`` are the field kinds of the index the query is registered on.
    """
    if isinstance(node, Bool):
        return _canonical_bool(node, fields)
    return _leaf(node, fields)


__all__ = ["canonicalise"]
