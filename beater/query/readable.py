"""The canonical tree rendered as a Lucene-style query string a person can read (``+bar +foo``).

The string is shown next to the canonical JSON so a user sees what estrom
understood.  Wherever the tree has a Lucene form, the string parsed again by
:func:`beater.query.lucene.parse_lucene` (default operator ``or``) and
canonicalised gives back the same tree, hence the same subscription id; the
result then says ``exact``.  Trees that only the query DSL can build (``term``,
``terms``, ``ids``, ``filter``, ``minimum_should_match``, ``case_insensitive``,
numeric range bounds, fuzzy ``prefix_length`` ...) still get a readable
approximation, marked not exact.  Lucene has no syntax for a ``filter`` clause:
it is shown as required (``+``), which only differs in scoring.

Should clauses are joined with ``OR`` rather than spaces: in ``query_string``
a run of bare words is ONE analysed clause (``a b`` is a match of the text
"a b", not two clauses), so spaces would change the tree.
"""

from __future__ import annotations

from typing import List, NamedTuple, Tuple

from beater.errors import EstromError
from beater.query.ir import (
    ANY_FIELD,
    Bool,
    Exists,
    Fuzzy,
    Ids,
    Match,
    MatchAll,
    MatchNone,
    Node,
    Phrase,
    Prefix,
    Range,
    Regexp,
    Term,
    Terms,
    Wildcard,
)
from beater.query.kinds import DYNAMIC, FieldKinds
from beater.query.normalise import canonicalise
from beater.query.lucene import MAX_CLAUSES, MAX_DEPTH, has_tokens, normalised_term, parse_lucene
from beater.query.render import escape

_OPERATOR_WORDS = {"AND", "OR", "NOT"}
_FUZZINESS = {"AUTO": "~", "0": "~0", "1": "~1", "2": "~2"}


class Readable(NamedTuple):
    """A query as Lucene-style text; ``exact`` when that text parses back to the very same canonical tree."""

    text: str
    exact: bool


def _term(text: str) -> str:
    """``text`` as one literal Lucene term (operator words escaped so they stay words; ``""`` when empty)."""
    if not text:
        return '""'
    escaped = escape(text)
    return "\\" + escaped if escaped in _OPERATOR_WORDS else escaped


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _field_ok(field: str) -> bool:
    # field patterns and _exists_ mean something else to the parser
    return field == ANY_FIELD or (bool(field) and "*" not in field and "?" not in field and field != "_exists_")


def _prefix(field: str) -> str:
    return "" if field == ANY_FIELD else _term(field) + ":"


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _term(str(value))


def _dropped_on_text_field(field: str, text: str, fields: FieldKinds) -> bool:
    """Whether query_string would drop ``text`` on ``field`` as analysing to no token."""
    return field != ANY_FIELD and not fields.is_keyword(field) and not has_tokens(text)


def _reparses_to(text: str, node: Node, fields: FieldKinds) -> bool:
    """Whether ``text`` alone parses to ``node`` (leaves whose lexing has corner cases)."""
    try:
        return parse_lucene(text, "or", fields=fields) == node
    except (EstromError, RecursionError):
        return False


def _match(node: Match, top: bool, fields: FieldKinds) -> Readable:
    words = node.text.split(" ")
    single_spaced = len(words) > 1 and all(w and w == w.strip() for w in words)
    if node.fuzziness is not None:
        # only the DSL fuzzes a match; show each word fuzzy
        suffix = _FUZZINESS.get(node.fuzziness, "~" + node.fuzziness)
        shown = [_term(w) + suffix for w in node.text.split()] or [_term(node.text)]
        body = " ".join(shown)
        grouped = len(shown) > 1
    elif single_spaced:
        joiner = " AND " if node.operator == "and" else " "
        body = joiner.join(_term(w) for w in words)
        grouped = True
    else:
        body = _term(node.text)  # spaces escaped: one term, as written
        grouped = False
    if grouped and not (top and node.field == ANY_FIELD):
        body = "(" + body + ")"
    exact = (
        _field_ok(node.field)
        and node.fuzziness is None
        and node.minimum_should_match is None
        and node.operator == "or"
        and node.text != ""
        and not (len(node.text) > 1 and node.text[0] in "<>")  # would be a range (f:>=10)
        and not _dropped_on_text_field(node.field, node.text, fields)
    )
    return Readable(_prefix(node.field) + body, exact)


def _range(node: Range, fields: FieldKinds) -> Readable:
    low, low_incl = (node.gte, True) if node.gte is not None else (node.gt, False)
    high, high_incl = (node.lte, True) if node.lte is not None else (node.lt, False)

    def bound(value: object) -> str:
        if value is None:
            return "*"
        text = str(value)
        if text and text not in ("TO", "*") and not any(c.isspace() or c in '"\\]}' for c in text):
            return text
        return _quoted(text)

    if low is not None and high is None:
        body = (">=" if low_incl else ">") + _value(low)
    elif high is not None and low is None:
        body = ("<=" if high_incl else "<") + _value(high)
    else:
        body = ("[" if low_incl or low is None else "{") + bound(low) + " TO " + bound(high) + ("]" if high_incl or high is None else "}")
    text = _prefix(node.field) + body
    exact = (
        _field_ok(node.field)
        and node.format is None
        and not (node.gt is not None and node.gte is not None)
        and not (node.lt is not None and node.lte is not None)
        and all(v is None or isinstance(v, str) for v in (node.gt, node.gte, node.lt, node.lte))
        and _reparses_to(text, node, fields)
    )
    return Readable(text, exact)


def _leaf(node: Node, top: bool, fields: FieldKinds) -> Readable:
    if isinstance(node, MatchAll):
        return Readable("*:*", top)  # inside a boolean it is dropped (required) or makes it match nothing
    if isinstance(node, MatchNone):
        return Readable("-*:*", top)
    if isinstance(node, Match):
        return _match(node, top, fields)
    if isinstance(node, Phrase):
        text = _prefix(node.field) + _quoted(node.text) + (f"~{node.slop}" if node.slop else "")
        exact = _field_ok(node.field) and node.slop >= 0 and not _dropped_on_text_field(node.field, node.text, fields)
        return Readable(text, exact)
    if isinstance(node, Term):
        return Readable(_prefix(node.field) + _value(node.value), False)
    if isinstance(node, Terms):
        return Readable(_prefix(node.field) + "(" + " OR ".join(_value(v) for v in node.values) + ")", False)
    if isinstance(node, Ids):
        return Readable("_id:(" + " OR ".join(_term(v) for v in node.values) + ")", False)
    if isinstance(node, Prefix):
        exact = (
            _field_ok(node.field)
            and not node.case_insensitive
            and node.value != ""
            and node.value == normalised_term(node.field, node.value, fields)
        )
        return Readable(_prefix(node.field) + _term(node.value) + "*", exact)
    if isinstance(node, Wildcard):
        text = _prefix(node.field) + (node.pattern or '""')  # patterns are kept raw by the parser, escapes included
        exact = _field_ok(node.field) and not node.case_insensitive and _reparses_to(text, node, fields)
        return Readable(text, exact)
    if isinstance(node, Regexp):
        text = _prefix(node.field) + "/" + node.pattern + "/"
        exact = _field_ok(node.field) and not node.case_insensitive and _reparses_to(text, node, fields)
        return Readable(text, exact)
    if isinstance(node, Fuzzy):
        suffix = _FUZZINESS.get(node.fuzziness, "~" + node.fuzziness)
        exact = (
            _field_ok(node.field)
            and node.fuzziness in _FUZZINESS
            and node.prefix_length == 0
            and node.transpositions
            and node.value != ""
            and node.value == normalised_term(node.field, node.value, fields)
        )
        return Readable(_prefix(node.field) + _term(node.value) + suffix, exact)
    if isinstance(node, Range):
        return _range(node, fields)
    if isinstance(node, Exists):
        return Readable("_exists_:" + _term(node.field), bool(node.field))
    return Readable(f"<{type(node).__name__}>", False)


def _render(node: Node, top: bool, depth: int, fields: FieldKinds) -> Tuple[str, bool, int]:
    """Text, exactness and number of leaf clauses of ``node``."""
    if not isinstance(node, Bool):
        text, exact = _leaf(node, top, fields)
        return text, exact, 1
    exact = depth < MAX_DEPTH and not node.filter and node.minimum_should_match is None
    leaves = 0

    def clause(child: Node) -> str:
        nonlocal exact, leaves
        text, child_exact, count = _render(child, False, depth + 1, fields)
        exact = exact and child_exact
        leaves += count
        return "(" + text + ")" if isinstance(child, Bool) else text

    parts: List[str] = ["+" + clause(c) for c in node.must + node.filter]
    if node.should:
        shoulds = " OR ".join(clause(c) for c in node.should)
        if node.must or node.filter or node.minimum_should_match is not None:
            # optional clauses that count (minimum_should_match): a group of their own, required beside a must
            shoulds = ("+" if node.must or node.filter else "") + "(" + shoulds + ")"
        parts.append(shoulds)
    parts.extend("-" + clause(c) for c in node.must_not)
    if not parts:
        return "*:*", exact, 0
    return " ".join(parts), exact and leaves <= MAX_CLAUSES, leaves


def to_lucene(node: Node, fields: FieldKinds = DYNAMIC, verify: bool = True) -> Readable:
    """``node`` (a canonical tree) as Lucene-style text, and whether that text is exactly the query.

    ``fields`` are the field kinds of the index the tree was canonicalised for
    (they decide what the parser lowercases or drops).  The text itself does not
    depend on them.  With ``verify`` (the default) an ``exact`` result is
    confirmed by parsing the text again, so ``exact`` is never claimed wrongly;
    without it ``exact`` rests on the rendering rules alone (cheaper).
    """
    text, exact, _ = _render(node, True, 1, fields)
    if exact and verify:
        try:
            exact = canonicalise(parse_lucene(text, "or", fields=fields), fields) == node
        except (EstromError, RecursionError):
            exact = False
    return Readable(text, exact)


__all__ = ["Readable", "to_lucene"]
