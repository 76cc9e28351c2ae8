"""Lucene query syntax, parsed exactly as Elasticsearch 7.17 ``query_string`` parses it.

This is a port of the grammar of Lucene's classic ``QueryParser`` (the one
``query_string`` extends) and of the ``addClause`` rules that give its boolean
operators their meaning: there is NO precedence of AND over OR; each
conjunction only changes the occurrence of the clause before it and the one
after it (``a OR b AND c`` is ``a +b +c``).  Elasticsearch's additions are
honoured too: ``split_on_whitespace`` is false (a run of bare words is one
analysed piece), ``_exists_:f``, ``f:*``, ``f:>=10``, lenient ``*`` default
field, ``*:*``, pure-negative groups matching "everything except".

luqum's grammar is deliberately not used for the structure: it gives AND
precedence over OR (losing the clause order the rules need), reads ``!a``,
``&&`` and ``||`` as words, accepts ``a:b:c`` and ``t*tle:x`` which Lucene
refuses, and refuses ``n:>=-5`` which Lucene accepts.  A faithful port of the
small classic grammar is simpler and checkable against ``_validate/query``.

Facts confirmed against Elasticsearch 7.17 ``_validate/query?explain=true``:
 * empty / blank query -> matches nothing;
 * a term that analyses to no tokens on a concrete text field is dropped from
   its boolean (``title:a AND title:.`` is ``title:a``); an empty group too;
 * ``a b AND c`` -> ``a +b +c`` (``b`` is not part of the run ``a b``);
 * a run ``a b`` is one clause, MUST under default_operator AND, else SHOULD;
 * fuzzy ``~`` -> AUTO, ``~N`` -> min(int(N), 2); phrase ``~N`` -> slop int(N);
 * boosts are parsed and ignored; ``/re/~2`` ignores the slop;
 * ``*:x`` is NOT lenient (errors on boolean fields) -> refused here.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass
from typing import List, Optional, Tuple

from beater.errors import InvalidQuery, UnsupportedQuery
from beater.query.kinds import DYNAMIC, FieldKinds
from beater.query.ir import (
    ANY_FIELD,
    Bool,
    Exists,
    Fuzzy,
    Match,
    MatchAll,
    MatchNone,
    Node,
    Phrase,
    Prefix,
    Range,
    Regexp,
    Wildcard,
)

MAX_CLAUSES = 1024
MAX_DEPTH = 64

# --- lexer -----------------------------------------------------------------

_WS = " \t\n\r\u3000"
_ESC = r"\\[\s\S]"
_TSC = r"(?:[^ \t\n\r\u3000+\-!():^\[\]\"{}~*?\\/]|" + _ESC + ")"
_TC = r"(?:" + _TSC + r"|[-+])"

# Token kinds in the order Lucene declares them (ties in length go to the first).
_DEFAULT_TOKENS: List[Tuple[str, "re.Pattern[str]"]] = [
    ("AND", re.compile(r"AND|&&")),
    ("OR", re.compile(r"OR|\|\|")),
    ("NOT", re.compile(r"NOT|!")),
    ("PLUS", re.compile(r"\+")),
    ("MINUS", re.compile(r"-")),
    ("BAREOPER", re.compile(r"[+\-!][ \t\n\r\u3000]")),
    ("LPAREN", re.compile(r"\(")),
    ("RPAREN", re.compile(r"\)")),
    ("COLON", re.compile(r":")),
    ("STAR", re.compile(r"\*")),
    ("CARAT", re.compile(r"\^")),
    ("QUOTED", re.compile(r'"(?:' + _ESC + r'|[^"\\])*"')),
    ("TERM", re.compile(_TSC + _TC + "*")),
    ("FUZZY_SLOP", re.compile(r"~(?:[0-9]+(?:\.[0-9]+)?)?")),
    ("PREFIXTERM", re.compile(r"\*|" + _TSC + _TC + r"*\*")),
    ("WILDTERM", re.compile(r"(?:" + _TSC + r"|[*?])(?:" + _TC + r"|[*?])*")),
    ("REGEXPTERM", re.compile(r"/(?:\\/|[^/])*/")),
    ("RANGEIN_START", re.compile(r"\[")),
    ("RANGEEX_START", re.compile(r"\{")),
]
_RANGE_TOKENS: List[Tuple[str, "re.Pattern[str]"]] = [
    ("RANGE_TO", re.compile(r"TO")),
    ("RANGEIN_END", re.compile(r"\]")),
    ("RANGEEX_END", re.compile(r"\}")),
    ("RANGE_QUOTED", re.compile(r'"(?:\\"|[^"])+"')),
    ("RANGE_GOOP", re.compile(r"[^ \]}]+")),
]
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")


@dataclass(frozen=True)
class _Tok:
    kind: str
    image: str
    pos: int


def _lex(text: str) -> List[_Tok]:
    """Tokens of ``text`` with JavaCC's longest-match rule and Lucene's lexical states."""
    tokens: List[_Tok] = []
    state = "DEFAULT"
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _WS:
            i += 1
        if i >= n:
            tokens.append(_Tok("EOF", "", n))
            return tokens
        if state == "BOOST":
            m = _NUMBER.match(text, i)
            if not m:
                raise InvalidQuery(f"expected a number after '^' at position {i}", part=text[i : i + 20], position=i)
            tokens.append(_Tok("NUMBER", m.group(), i))
            i, state = m.end(), "DEFAULT"
            continue
        table = _RANGE_TOKENS if state == "RANGE" else _DEFAULT_TOKENS
        best: Optional[Tuple[str, str]] = None
        for kind, pattern in table:
            m = pattern.match(text, i)
            if m and m.end() > i and (best is None or len(m.group()) > len(best[1])):
                best = (kind, m.group())
        if best is None:
            raise InvalidQuery(f"unexpected character {text[i]!r} at position {i}", part=text[i : i + 20], position=i)
        kind, image = best
        if kind == "BAREOPER":
            # the whitespace after the operator is part of the token in Lucene; keep the operator only
            tokens.append(_Tok(kind, image[0], i))
        else:
            tokens.append(_Tok(kind, image, i))
        i += len(image)
        if kind == "CARAT":
            state = "BOOST"
        elif kind in ("RANGEIN_START", "RANGEEX_START"):
            state = "RANGE"
        elif kind in ("RANGEIN_END", "RANGEEX_END"):
            state = "DEFAULT"


def discard_escape_char(text: str, position: int = 0) -> str:
    """Lucene's ``discardEscapeChar``: drop backslashes, decode ``\\uXXXX``."""
    out: List[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        if i + 1 >= n:
            raise InvalidQuery("term can not end with escape character", part=text, position=position + i)
        if text[i + 1] == "u":
            digits = text[i + 2 : i + 6]
            if len(digits) < 4 or not re.fullmatch(r"[0-9a-fA-F]{4}", digits):
                raise InvalidQuery("truncated or bad unicode escape sequence", part=text, position=position + i)
            out.append(chr(int(digits, 16)))
            i += 6
        else:
            out.append(text[i + 1])
            i += 2
    return "".join(out)


# --- analysis approximations --------------------------------------------------
# The parser needs to know whether text yields any token under the standard
# analyzer (a clause that yields none is dropped on a concrete text field), and
# to lowercase terms Elasticsearch normalises.  Both follow Lucene per code point.

_SPLIT_SCRIPTS = re.compile(
    "[\u0e00-\u0e7f\u0e80-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
)


def _is_token_char(c: str) -> bool:
    cat = unicodedata.category(c)
    if cat[0] in "LN":
        return True
    # emoji are tokens of their own in Lucene 8's StandardTokenizer
    return cat == "So" and (ord(c) >= 0x1F000 or 0x2600 <= ord(c) <= 0x27BF)


def has_tokens(text: str) -> bool:
    """Whether the standard analyzer would produce at least one token from ``text`` (approximation)."""
    return any(_is_token_char(c) for c in text)


def is_single_token(text: str) -> bool:
    """Conservatively: ``text`` certainly analyses to exactly one token (letters and digits only, no split scripts)."""
    return bool(text) and all(unicodedata.category(c)[0] in "LN" for c in text) and not _SPLIT_SCRIPTS.search(text)


def java_lower(text: str) -> str:
    """Lowercase per code point as Java's ``Character.toLowerCase`` (Lucene's LowerCaseFilter) does."""
    out = []
    for c in text:
        lowered = c.lower()
        if len(lowered) != 1:
            lowered = "i" if c == "\u0130" else c
        out.append(lowered)
    return "".join(out)


def normalised_term(field: str, value: str, fields: FieldKinds = DYNAMIC) -> str:
    """What query_string's normaliser makes of a wildcard/prefix/fuzzy term on a concrete field.

    Text fields lowercase it (the standard analyzer's normaliser); keyword fields keep it.
    On ANY_FIELD the IR keeps the raw value and the matcher normalises per field.
    """
    if field == ANY_FIELD or fields.is_keyword(field):
        return value
    return java_lower(value)


# --- parser ------------------------------------------------------------------

_MOD_NONE, _MOD_NOT, _MOD_REQ = 0, 10, 11
_CONJ_NONE, _CONJ_AND, _CONJ_OR = 0, 1, 2
_MUST, _SHOULD, _MUST_NOT = "must", "should", "must_not"
_DISALLOWED_POST_MULTITERM = {"COLON", "STAR", "FUZZY_SLOP", "CARAT", "AND", "OR"}
_CLAUSE_START = {
    "NOT", "PLUS", "MINUS", "BAREOPER", "LPAREN", "STAR", "QUOTED", "TERM", "PREFIXTERM",
    "WILDTERM", "REGEXPTERM", "RANGEIN_START", "RANGEEX_START", "NUMBER",
}


class _Parser:
    def __init__(self, text: str, default_operator: str, default_field: str, fields: FieldKinds) -> None:
        self.text = text
        self.fields = fields
        self.tokens = _lex(text)
        self.i = 0
        self.op_and = default_operator == "and"
        self.default_field = default_field
        self.clauses = 0
        self.depth = 0

    # token helpers
    def peek(self, k: int = 0) -> _Tok:
        return self.tokens[min(self.i + k, len(self.tokens) - 1)]

    def take(self, *kinds: str) -> _Tok:
        tok = self.peek()
        if kinds and tok.kind not in kinds:
            self.fail(tok, f"expected {' or '.join(kinds)}")
        self.i += 1
        return tok

    def fail(self, tok: _Tok, why: str = "") -> None:
        shown = "end of query" if tok.kind == "EOF" else repr(tok.image)
        message = f"cannot parse query: unexpected {shown} at position {tok.pos}"
        raise InvalidQuery(message + (f" ({why})" if why else ""), part=tok.image or self.text[-20:], position=tok.pos)

    def count_clause(self, tok: _Tok) -> None:
        self.clauses += 1
        if self.clauses > MAX_CLAUSES:
            raise InvalidQuery(f"query has more than {MAX_CLAUSES} clauses", part=tok.image, position=tok.pos)

    # grammar
    def parse(self) -> Node:
        if self.peek().kind == "EOF":
            return MatchNone()  # ES: "Matching no documents because no terms present"
        node = self.query(self.default_field)
        if self.peek().kind != "EOF":
            self.fail(self.peek())
        return MatchNone() if node is None else node

    def multiterm_starts(self) -> bool:
        return self.peek().kind == "TERM" and self.peek(1).kind == "TERM" and self.peek(2).kind not in _DISALLOWED_POST_MULTITERM

    def query(self, field: str) -> Optional[Node]:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            tok = self.peek()
            raise InvalidQuery(f"query nests deeper than {MAX_DEPTH} levels", part=tok.image, position=tok.pos)
        clauses: List[Tuple[str, Node]] = []
        first: Optional[Node] = None
        if self.multiterm_starts():
            self.multiterm(field, clauses)
        else:
            mods = self.modifiers()
            q = self.clause(field)
            self.add_clause(clauses, _CONJ_NONE, mods, q)
            if mods == _MOD_NONE:
                first = q
        while True:
            if self.multiterm_starts():
                self.multiterm(field, clauses)
                continue
            kind = self.peek().kind
            if kind not in _CLAUSE_START and kind not in ("AND", "OR"):
                break
            conj = self.conjunction()
            mods = self.modifiers()
            q = self.clause(field)
            self.add_clause(clauses, conj, mods, q)
        self.depth -= 1
        if len(clauses) == 1 and first is not None:
            return first
        return _boolean(clauses)

    def multiterm(self, field: str, clauses: List[Tuple[str, Node]]) -> None:
        first = self.take("TERM")
        images = [first.image]
        while self.multiterm_starts_following():
            images.append(self.take("TERM").image)
        self.count_clause(first)
        # split_on_whitespace=false: the run is analysed as one piece joined by single spaces
        q = self.field_query(field, discard_escape_char(" ".join(images), first.pos), first)
        if q is not None:
            # Lucene adds the run with the default operator's occurrence (flattened or not, same meaning)
            clauses.append((_MUST if self.op_and else _SHOULD, q))

    def multiterm_starts_following(self) -> bool:
        return self.peek().kind == "TERM" and self.peek(1).kind not in _DISALLOWED_POST_MULTITERM

    def conjunction(self) -> int:
        kind = self.peek().kind
        if kind == "AND":
            self.i += 1
            return _CONJ_AND
        if kind == "OR":
            self.i += 1
            return _CONJ_OR
        return _CONJ_NONE

    def modifiers(self) -> int:
        kind = self.peek().kind
        if kind == "PLUS":
            self.i += 1
            return _MOD_REQ
        if kind in ("MINUS", "NOT"):
            self.i += 1
            return _MOD_NOT
        return _MOD_NONE

    def add_clause(self, clauses: List[Tuple[str, Node]], conj: int, mods: int, q: Optional[Node]) -> None:
        """Lucene QueryParserBase.addClause, verbatim in effect."""
        if clauses and conj == _CONJ_AND:
            occur, prev = clauses[-1]
            if occur != _MUST_NOT:
                clauses[-1] = (_MUST, prev)
        if clauses and self.op_and and conj == _CONJ_OR:
            occur, prev = clauses[-1]
            if occur != _MUST_NOT:
                clauses[-1] = (_SHOULD, prev)
        if q is None:
            return  # the clause analysed to nothing: dropped, but its conjunction still acted
        if not self.op_and:
            prohibited = mods == _MOD_NOT
            required = mods == _MOD_REQ or (conj == _CONJ_AND and not prohibited)
        else:
            prohibited = mods == _MOD_NOT
            required = not prohibited and conj != _CONJ_OR
        clauses.append((_MUST if required else _MUST_NOT if prohibited else _SHOULD, q))

    def clause(self, field: str) -> Optional[Node]:
        tok = self.peek()
        if tok.kind in ("TERM", "STAR") and self.peek(1).kind == "COLON":
            self.i += 2
            field = "*" if tok.kind == "STAR" else discard_escape_char(tok.image, tok.pos)
            if field != ANY_FIELD and ("*" in field or "?" in field):
                raise UnsupportedQuery(f"field patterns are not supported: {field!r}", part=tok.image, position=tok.pos)
            if field == ANY_FIELD and self.peek().kind != "STAR":
                # an explicit *: is not lenient in Elasticsearch (fails on boolean fields)
                raise UnsupportedQuery("an explicit '*:' field is not supported; leave the field out", part=tok.image, position=tok.pos)
        if self.peek().kind == "LPAREN":
            self.take("LPAREN")
            q = self.query(field)
            self.take("RPAREN")
            if self.peek().kind == "CARAT":
                self.take("CARAT")
                self.take("NUMBER")  # boosts only score
            return q
        return self.term(field)

    def boost_and_slop(self) -> Optional[_Tok]:
        slop: Optional[_Tok] = None
        if self.peek().kind == "CARAT":
            self.take("CARAT")
            self.take("NUMBER")
            if self.peek().kind == "FUZZY_SLOP":
                slop = self.take("FUZZY_SLOP")
        elif self.peek().kind == "FUZZY_SLOP":
            slop = self.take("FUZZY_SLOP")
            if self.peek().kind == "CARAT":
                self.take("CARAT")
                self.take("NUMBER")
        return slop

    def term(self, field: str) -> Optional[Node]:
        tok = self.peek()
        kind = tok.kind
        if kind in ("TERM", "STAR", "PREFIXTERM", "WILDTERM", "REGEXPTERM", "NUMBER", "BAREOPER"):
            self.i += 1
            self.count_clause(tok)
            slop = self.boost_and_slop()
            return self.bare_token(field, tok, slop)
        if kind in ("RANGEIN_START", "RANGEEX_START"):
            self.i += 1
            self.count_clause(tok)
            low = self.take("RANGE_GOOP", "RANGE_QUOTED", "RANGE_TO")
            self.take("RANGE_TO")
            high = self.take("RANGE_GOOP", "RANGE_QUOTED", "RANGE_TO")
            end = self.take("RANGEIN_END", "RANGEEX_END")
            if self.peek().kind == "CARAT":
                self.take("CARAT")
                self.take("NUMBER")
            return self.range_query(
                field, self.range_bound(low), self.range_bound(high), kind == "RANGEIN_START", end.kind == "RANGEIN_END", tok
            )
        if kind == "QUOTED":
            self.i += 1
            self.count_clause(tok)
            slop = self.boost_and_slop()
            text = discard_escape_char(tok.image[1:-1], tok.pos + 1)
            if field == "_exists_":
                return Exists(text) if text and text != "*" else MatchNone()
            phrase_slop = 0
            if slop is not None and len(slop.image) > 1:
                phrase_slop = int(float(slop.image[1:]))
            return self.phrase(field, text, phrase_slop)
        self.fail(tok)
        return None  # unreachable

    def range_bound(self, tok: _Tok) -> Optional[str]:
        if tok.kind == "RANGE_QUOTED":
            return discard_escape_char(tok.image[1:-1], tok.pos + 1)
        if tok.image == "*":
            return None
        return discard_escape_char(tok.image, tok.pos)

    def bare_token(self, field: str, tok: _Tok, slop: Optional[_Tok]) -> Optional[Node]:
        image = tok.image
        if field == "_exists_":
            if tok.kind == "STAR":
                return MatchNone()  # ES: "unmapped field: _exists_"
            if tok.kind != "TERM":
                raise UnsupportedQuery("_exists_ takes a plain field name", part=image, position=tok.pos)
            return Exists(discard_escape_char(image, tok.pos))
        if tok.kind == "STAR" or (tok.kind == "WILDTERM" and image == "*"):
            return MatchAll() if field == ANY_FIELD else Exists(field)
        if tok.kind == "WILDTERM":
            return Wildcard(field, normalised_term(field, image, self.fields))
        if tok.kind == "PREFIXTERM":
            return Prefix(field, normalised_term(field, discard_escape_char(image[:-1], tok.pos), self.fields))
        if tok.kind == "REGEXPTERM":
            return Regexp(field, image[1:-1])  # regexps are not normalised (checked)
        text = discard_escape_char(image, tok.pos)
        if slop is not None:
            if slop.image == "~":
                fuzziness = "AUTO"
            else:
                fuzziness = str(min(2, int(float(slop.image[1:]))))
            return Fuzzy(field, normalised_term(field, text, self.fields), fuzziness=fuzziness)
        return self.field_query(field, text, tok)

    def field_query(self, field: str, text: str, tok: _Tok) -> Optional[Node]:
        """ES QueryStringQueryParser.getFieldQuery for unquoted text."""
        if field == "_exists_":
            return Exists(text)
        if len(text) > 1 and text[0] in "<>":
            if text[0] == ">":
                if len(text) > 2 and text[1] == "=":
                    return self.range_query(field, text[2:], None, True, True, tok)
                return self.range_query(field, text[1:], None, False, True, tok)
            if len(text) > 2 and text[1] == "=":
                return self.range_query(field, None, text[2:], True, True, tok)
            return self.range_query(field, None, text[1:], True, False, tok)
        if field != ANY_FIELD and not self.fields.is_keyword(field) and not has_tokens(text):
            return None  # analyses to nothing on a text field: Lucene drops the clause
        return Match(field, text, operator="and" if self.op_and else "or")

    def phrase(self, field: str, text: str, slop: int) -> Optional[Node]:
        if field != ANY_FIELD and not self.fields.is_keyword(field) and not has_tokens(text):
            return None
        return Phrase(field, text, slop=slop)

    def range_query(
        self, field: str, low: Optional[str], high: Optional[str], low_incl: bool, high_incl: bool, tok: _Tok
    ) -> Node:
        for bound in (low, high):
            if bound is not None and "now" in bound:
                raise UnsupportedQuery("date math with 'now' is not supported in ranges", part=bound, position=tok.pos)
        if low == "*":
            low = None
        if high == "*":
            high = None
        low, high = _range_normalised(field, low, self.fields), _range_normalised(field, high, self.fields)
        return Range(
            field,
            gte=low if low_incl else None,
            gt=None if low_incl else low,
            lte=high if high_incl else None,
            lt=None if high_incl else high,
        )


def _range_normalised(field: str, bound: Optional[str], fields: FieldKinds) -> Optional[str]:
    # text fields normalise range bounds in query_string; a bound with digits or a boolean
    # literal may be meant for a number/date/boolean field, which parses it case-sensitively
    if bound is None or any(c.isdigit() for c in bound) or bound.lower() in ("true", "false"):
        return bound
    return normalised_term(field, bound, fields)


def _boolean(clauses: List[Tuple[str, Node]]) -> Optional[Node]:
    """Lucene getBooleanQuery + ES fixNegativeQueryIfNeeded: None when empty."""
    if not clauses:
        return None
    must = tuple(q for occur, q in clauses if occur == _MUST)
    should = tuple(q for occur, q in clauses if occur == _SHOULD)
    must_not = tuple(q for occur, q in clauses if occur == _MUST_NOT)
    return Bool(must=must, should=should, must_not=must_not)


_LOCK = threading.Lock()


def parse_lucene(text: str, default_operator: str = "or", default_field: str = ANY_FIELD, fields: FieldKinds = DYNAMIC) -> Node:
    """Parse Lucene query syntax as Elasticsearch ``query_string`` does (lenient, default field ``*``).

    Raises InvalidQuery (with the offending part and position) on syntax errors and
    limits, UnsupportedQuery for valid syntax the embedded percolator cannot honour.
    """
    if not isinstance(text, str):
        raise InvalidQuery("a Lucene query must be a string", part=repr(text))
    operator = default_operator.lower() if isinstance(default_operator, str) else default_operator
    if operator not in ("or", "and"):
        raise InvalidQuery("default_operator must be 'or' or 'and'", part=repr(default_operator))
    with _LOCK:  # cheap; keeps the parser safe if it ever gains shared state
        return _Parser(text, operator, default_field, fields).parse()


__all__ = [
    "MAX_CLAUSES", "MAX_DEPTH", "discard_escape_char", "has_tokens", "is_single_token", "java_lower",
    "normalised_term", "parse_lucene",
]
