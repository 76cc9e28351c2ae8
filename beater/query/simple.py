"""``simple_query_string`` syntax, parsed as Elasticsearch 7.17 parses it.

A port of the rules of Lucene's ``SimpleQueryParser`` (the parser Elasticsearch's
``simple_query_string`` extends), which never fails on bad syntax:

* ``+`` (AND) and ``|`` (OR) set the operation that joins the next clause to what
  came before; whitespace joins with ``default_operator``.  There is no
  precedence: each change of operation wraps everything so far in a new group
  (``a b +c`` is ``+(a b) +c``).
* ``-`` negates the next clause as ``(-x *:*)`` (everything but ``x``), so under the
  OR default ``foo -bar`` matches every document without ``bar``, as in
  Elasticsearch; ``--x`` is ``x``.
* ``"..."`` is a phrase, ``"..."~N`` one with slop; ``word*`` a prefix;
  ``word~N`` fuzzy with N edits (at most 2; ``~`` alone is 2, ``~0`` or ``~x``
  the plain word); ``( )`` group; ``\\`` escapes the next character.  An unclosed ``"`` or
  ``(`` is an ordinary character; a stray ``)`` is ignored.
* A plain word is analysed per field and its tokens joined with
  ``default_operator`` (``foo-bar`` is ``foo OR bar`` by default); on a text
  field a word with no tokens is dropped.  Prefix and fuzzy terms are normalised
  (lowercased on text fields), never analysed.
* ``flags`` turns operators off; an operator that is off is an ordinary character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from beater.errors import InvalidQuery, UnsupportedQuery
from beater.query.ir import Bool, Fuzzy, Match, MatchAll, MatchNone, Node, Operator, Phrase, Prefix
from beater.query.kinds import DYNAMIC, FieldKinds
from beater.query.lucene import MAX_CLAUSES, has_tokens, normalised_term

AND, NOT, OR, PREFIX, PHRASE, PRECEDENCE, ESCAPE, WHITESPACE, FUZZY, NEAR = (1 << i for i in range(10))
ALL = -1
FLAGS: Dict[str, int] = {
    "ALL": ALL, "NONE": 0, "AND": AND, "OR": OR, "NOT": NOT, "PREFIX": PREFIX, "PHRASE": PHRASE,
    "PRECEDENCE": PRECEDENCE, "ESCAPE": ESCAPE, "WHITESPACE": WHITESPACE, "FUZZY": FUZZY, "NEAR": NEAR, "SLOP": NEAR,
}
MAX_EDITS = 2  # Lucene's LevenshteinAutomata.MAXIMUM_SUPPORTED_DISTANCE
MAX_NESTING = 64

_MUST, _SHOULD = "must", "should"
_WHITESPACE = " \t\n\r"
_JAVA_INT = re.compile(r"[+-]?\d+")


def parse_flags(spec: str) -> int:
    """The flag bits of a ``flags`` value such as ``"OR|AND|PREFIX"`` (names as in Elasticsearch)."""
    bits = 0
    for name in spec.split("|"):
        name = name.strip().upper()
        if not name:
            continue
        if name not in FLAGS:
            raise UnsupportedQuery(f"simple_query_string flag {name!r} is unknown", part=name)
        if FLAGS[name] == ALL:
            return ALL
        bits |= FLAGS[name]
    return bits


@dataclass
class _Group:
    """What is built so far at one level of parentheses (Lucene's ``State``)."""

    top: Optional[Node] = None
    current: Optional[str] = None
    previous: Optional[str] = None  # set once top is a group this parser built from several clauses
    nots: int = 0


@dataclass(frozen=True)
class Fields:
    """How one piece of query text becomes a query on every field searched."""

    names: Tuple[str, ...]
    default_operator: Operator = "or"
    fuzzy_prefix_length: int = 0
    fuzzy_transpositions: bool = True
    kinds: FieldKinds = DYNAMIC

    def _either(self, nodes: List[Node]) -> Optional[Node]:
        if not nodes:
            return None
        return nodes[0] if len(nodes) == 1 else Bool(should=tuple(nodes))

    def word(self, text: str) -> Optional[Node]:
        """A plain word: analysed per field, its tokens joined with the default operator."""
        return self._either([Match(f, text, operator=self.default_operator) for f in self.names if self._analysable(f, text)])

    def phrase(self, text: str, slop: int) -> Optional[Node]:
        """A quoted phrase with its slop."""
        if not text:
            return None
        return self._either([Phrase(f, text, slop=slop) for f in self.names if self._analysable(f, text)])

    def prefix(self, text: str) -> Optional[Node]:
        """``text*``: normalised (lowercased on text fields), not analysed."""
        return self._either([Prefix(f, normalised_term(f, text, self.kinds)) for f in self.names])

    def fuzzy(self, text: str, edits: int) -> Optional[Node]:
        """``text~edits``: normalised, not analysed."""
        return self._either([
            Fuzzy(f, normalised_term(f, text, self.kinds), fuzziness=str(edits), prefix_length=self.fuzzy_prefix_length,
                  transpositions=self.fuzzy_transpositions)
            for f in self.names
        ])

    def _analysable(self, field: str, text: str) -> bool:
        """Whether ``text`` gives a query on ``field``: on a concrete text field it must hold a token."""
        return field == "*" or self.kinds.is_keyword(field) or has_tokens(text)


class _Parser:
    def __init__(self, text: str, fields: Fields, flags: int) -> None:
        self.data = text
        self.fields = fields
        self.flags = flags
        self.depth = 0
        self._closing: Optional[Dict[int, int]] = None

    def on(self, flag: int) -> bool:
        return bool(self.flags & flag)

    def token_finished(self, c: str) -> bool:
        return ((c == '"' and self.on(PHRASE)) or (c == "|" and self.on(OR)) or (c == "+" and self.on(AND))
                or (c in "()" and self.on(PRECEDENCE)) or (c in _WHITESPACE and self.on(WHITESPACE)))

    def parse_group(self, start: int, end: int) -> _Group:
        """Parse ``data[start:end]`` (Lucene's ``parseSubQuery``)."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise UnsupportedQuery(f"simple_query_string nests deeper than {MAX_NESTING} groups", part=self.data[start:end][:40])
        group = _Group()
        i = start
        data = self.data
        while i < end:
            c = data[i]
            if c == "(" and self.on(PRECEDENCE):
                i = self.consume_group(group, i, end)
            elif c == ")" and self.on(PRECEDENCE):
                i += 1  # extraneous: ignored
            elif c == '"' and self.on(PHRASE):
                i = self.consume_phrase(group, i, end)
            elif c == "+" and self.on(AND):
                if group.current is None and group.top is not None:
                    group.current = _MUST
                i += 1
            elif c == "|" and self.on(OR):
                if group.current is None and group.top is not None:
                    group.current = _SHOULD
                i += 1
            elif c == "-" and self.on(NOT):
                group.nots += 1
                i += 1
                continue  # the count survives until the next clause
            elif c in _WHITESPACE and self.on(WHITESPACE):
                i += 1
            else:
                i = self.consume_word(group, i, end)
            group.nots = 0
        self.depth -= 1
        return group

    def consume_group(self, group: _Group, i: int, end: int) -> int:
        start = i + 1
        close = self.closing().get(i)
        if close is None or close >= end:
            return start  # never closed: the "(" is ignored
        if close == start:
            group.current = None  # "()": the pending operation applied to nothing
            return close + 1
        inner = self.parse_group(start, close)
        self.add(group, inner.top)
        return close + 1

    def closing(self) -> Dict[int, int]:
        """Each "(" position -> its ")" (escapes honoured), found once for the whole text.

        Lucene scans forward from every "(" for its match, which is quadratic when many
        are never closed ("(((((..." took seconds); matching them all in one pass gives
        the same pairs in linear time.
        """
        if self._closing is None:
            closing: Dict[int, int] = {}
            opened: List[int] = []
            escaped = False
            escapes = self.on(ESCAPE)
            for j, c in enumerate(self.data):
                if escaped:
                    escaped = False
                elif c == "\\" and escapes:
                    escaped = True
                elif c == "(":
                    opened.append(j)
                elif c == ")" and opened:
                    closing[opened.pop()] = j
            self._closing = closing
        return self._closing

    def consume_phrase(self, group: _Group, i: int, end: int) -> int:
        start = i = i + 1
        chars: List[str] = []
        escaped = False
        has_slop = False
        data = self.data
        while i < end:
            if not escaped:
                c = data[i]
                if c == "\\" and self.on(ESCAPE):
                    escaped = True
                    i += 1
                    continue
                if c == '"':
                    if end > i + 1 and data[i + 1] == "~" and self.on(NEAR):
                        i += 1
                        has_slop = end > i + 1
                    break
            escaped = False
            chars.append(data[i])
            i += 1
        if i == end:
            return start  # never closed: the '"' is ignored
        if i == start:
            group.current = None  # '""'
            return i + 1
        slop = 0
        if has_slop:
            slop, i = self.edits(i, end)
        self.add(group, self.fields.phrase("".join(chars), slop))
        return i + 1  # Lucene steps over one more character, even an operator that ended the slop

    def consume_word(self, group: _Group, i: int, end: int) -> int:
        chars: List[str] = []
        escaped = prefix = fuzzy = False
        data = self.data
        while i < end:
            c = data[i]
            if not escaped:
                if c == "\\" and self.on(ESCAPE):
                    escaped = True
                    prefix = False
                    i += 1
                    continue
                if self.token_finished(c):
                    break
                if chars and c == "~" and self.on(FUZZY):
                    fuzzy = True
                    break
                prefix = bool(chars) and c == "*" and self.on(PREFIX)
            escaped = False
            chars.append(c)
            i += 1
        if not chars:
            return i
        text = "".join(chars)
        if fuzzy:
            edits, i = self.edits(i, end)
            edits = min(edits, MAX_EDITS)
            branch = self.fields.word(text) if edits == 0 else self.fields.fuzzy(text, edits)
        elif prefix:
            branch = self.fields.prefix(text[:-1])
        else:
            branch = self.fields.word(text)
        self.add(group, branch)
        return i

    def edits(self, i: int, end: int) -> Tuple[int, int]:
        """The number after the ``~`` at ``i`` (2 if none, 0 if not a number), and where it ends."""
        digits: List[str] = []
        while i < end:
            i += 1
            if i < end:
                if self.token_finished(self.data[i]):
                    break
                digits.append(self.data[i])
        text = "".join(digits)
        if not text:
            return 2, i  # "~" alone: two edits (or a slop of two)
        value = int(text) if _JAVA_INT.fullmatch(text) else 0  # Integer.parseInt, its failures swallowed
        if not -(2**31) <= value < 2**31:
            value = 0
        return max(value, 0), i

    def add(self, group: _Group, branch: Optional[Node]) -> None:
        """Lucene's ``buildQueryTree``: join ``branch`` to the group with the pending operation."""
        if branch is None:
            return
        if group.nots % 2 == 1:
            branch = Bool(must_not=(branch,), should=(MatchAll(),))
        if group.top is None:
            group.top = branch
        else:
            if group.current is None:
                group.current = _MUST if self.fields.default_operator == "and" else _SHOULD
            if group.previous != group.current:
                group.top = _bool(((group.current, group.top),))
            assert isinstance(group.top, Bool)
            clauses = _clauses(group.top) + ((group.current, branch),)
            if len(clauses) > MAX_CLAUSES:  # Lucene's max_clause_count, per boolean query
                raise InvalidQuery(f"simple_query_string has more than {MAX_CLAUSES} clauses in one group",
                                   part=self.data[:40])
            group.top = _bool(clauses)
            group.previous = group.current
        group.current = None


def _clauses(node: Bool) -> Tuple[Tuple[str, Node], ...]:
    return tuple((_MUST, n) for n in node.must) + tuple((_SHOULD, n) for n in node.should)


def _bool(clauses: Sequence[Tuple[str, Node]]) -> Bool:
    return Bool(must=tuple(n for o, n in clauses if o == _MUST), should=tuple(n for o, n in clauses if o == _SHOULD))


def parse_simple(text: str, fields: Fields, flags: int = ALL) -> Tuple[Node, bool]:
    """The query ``text`` means on ``fields``, and whether its top is a group of several clauses
    (the only place Elasticsearch applies ``minimum_should_match``)."""
    if text.strip("".join(chr(c) for c in range(33))) == "*":
        return MatchAll(), False  # Lucene: a lone "*" is every document
    group = _Parser(text, fields, flags).parse_group(0, len(text))
    if group.top is None:
        return MatchNone(), False
    return group.top, group.previous is not None


__all__ = ["ALL", "FLAGS", "Fields", "parse_flags", "parse_simple"]
