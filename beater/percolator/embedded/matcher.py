"""Compiled queries: a query tree becomes a predicate over an analysed document.

``compile_query(node)`` checks the whole tree once (what cannot be matched
faithfully raises UnsupportedQuery, so registration refuses it) and returns a
function ``AnalysedDoc -> bool``.  Field types are read from the document's field
model when the predicate runs, so a query registered before its field was first
seen matches as soon as a document shows the field, with the field's type.

Semantics are Elasticsearch 7.17's, checked against a live node:

* text fields hold standard-analyzer tokens; ``match`` analyses its text and needs
  one token (``or``, or ``minimum_should_match``) or all (``and``); no token at all
  matches nothing.  ``term``/``prefix``/``wildcard``/``regexp``/``fuzzy`` compare
  the query's value with single tokens as it is (Elasticsearch lowercases only in
  ``query_string``, which the parser has done for named fields).
* keyword fields (``x.keyword``) hold the whole value, case-sensitive.
* long/float/date/boolean fields compare parsed values; a query value that does
  not parse matches nothing (``lenient``).  A date without all its parts covers
  the whole period it names (``2018-03-07`` is that day); float fields compare
  32-bit floats.
* ANY_FIELD (``*``) is every field of the document, ``.keyword`` included, each
  with its own type, as ``query_string`` with ``default_field: *`` and lenient;
  wildcard, prefix, fuzzy and range values are lowercased for text fields only
  (Elasticsearch normalises them with each field's analyzer).
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import re2
import regex

from beater.errors import UnsupportedQuery
from beater.percolator.embedded.analysis import analyze_cached, lowercase
from beater.percolator.embedded.fields import (
    BOOLEAN, DATE, FLOAT, KEYWORD, LONG, LONG_MAX, LONG_MIN, TEXT,
    AnalysedDoc, parse_date, parse_number, text_of, to_float32,
)
from beater.query import ir

Predicate = Callable[[AnalysedDoc], bool]
TermTest = Callable[[str], bool]


# --- small helpers ---------------------------------------------------------------------------------

def resolve_minimum_should_match(spec: Optional[str], optional: int) -> int:
    """Elasticsearch's ``minimum_should_match`` (``2``, ``-1``, ``75%``, ``-25%``, ``3<90%``) for ``optional`` clauses."""
    if spec is None:
        return 1 if optional else 0
    text = str(spec).strip()
    if "<" in text:
        result = optional
        for part in text.split():
            bound, _, rule = part.partition("<")
            if optional > int(bound):
                result = resolve_minimum_should_match(rule, optional)
        return result
    if text.endswith("%"):
        calc = optional * int(text[:-1]) / 100
        result = optional + int(calc) if calc < 0 else int(calc)
    else:
        calc_int = int(text)
        result = optional + calc_int if calc_int < 0 else calc_int
    return max(result, 0)


def _check_msm(spec: Optional[str]) -> None:
    if spec is None:
        return
    try:
        resolve_minimum_should_match(spec, 3)
    except ValueError:
        raise UnsupportedQuery(f"minimum_should_match {spec!r} is not understood", part=str(spec)) from None


def fuzzy_edits(fuzziness: Optional[str], term: str) -> int:
    """Edits allowed for ``term``: ``AUTO`` is 0 up to 2 characters, 1 up to 5, 2 beyond."""
    if fuzziness is None:
        return 0
    text = str(fuzziness).strip().upper()
    if text.startswith("AUTO"):
        low, high = 3, 6
        if ":" in text:
            low, high = (int(x) for x in text[5:].split(","))
        n = len(term)
        return 0 if n < low else (1 if n < high else 2)
    value = float(text)
    return min(int(value), 2)


def _check_fuzziness(fuzziness: Optional[str]) -> None:
    if fuzziness is None:
        return
    try:
        fuzzy_edits(fuzziness, "abc")
    except ValueError:
        raise UnsupportedQuery(f"fuzziness {fuzziness!r} is not understood", part=str(fuzziness)) from None


def edit_distance_within(a: str, b: str, limit: int, transpositions: bool = True) -> bool:
    """Whether the (optimal string alignment when ``transpositions``) distance of a and b is <= limit."""
    if a == b:
        return True
    if limit <= 0 or abs(len(a) - len(b)) > limit:
        return False
    previous2: List[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        best = current[0]
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            value = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if transpositions and i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                value = min(value, previous2[j - 2] + 1)
            current[j] = value
            best = min(best, value)
        if best > limit:
            return False
        previous2, previous = previous, current
    return previous[-1] <= limit


def fuzzy_test(value: str, edits: int, prefix_length: int = 0, transpositions: bool = True) -> TermTest:
    """A test of single terms against ``value`` within ``edits`` edits, the first ``prefix_length`` chars exact."""
    prefix = value[:prefix_length]
    if edits <= 0:
        return lambda term: term == value
    return lambda term: term.startswith(prefix) and edit_distance_within(value, term, edits, transpositions)


def wildcard_to_regex(pattern: str) -> str:
    """Lucene wildcard (``*``, ``?``, ``\\`` escapes) as an anchored Python regex."""
    out: List[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(regex.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "*" else "." if c == "?" else regex.escape(c))
        i += 1
    return "".join(out)


class _RegexpTranslator:
    """Lucene ``RegExp`` (flags ALL) into Python ``regex``; operators without an equivalent are refused."""

    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0

    def fail(self, what: str) -> UnsupportedQuery:
        return UnsupportedQuery(f"regular expression /{self.p}/: {what} is not supported", part=self.p, position=self.i)

    def peek(self) -> Optional[str]:
        return self.p[self.i] if self.i < len(self.p) else None

    def translate(self) -> str:
        result = self.union()
        if self.i != len(self.p):
            raise self.fail(f"unexpected {self.p[self.i]!r}")
        return result

    def union(self) -> str:
        parts = [self.concat()]
        while self.peek() == "|":
            self.i += 1
            parts.append(self.concat())
        return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"

    def concat(self) -> str:
        out = []
        while self.peek() is not None and self.peek() not in "|)":
            if self.peek() == "&":
                raise self.fail("intersection '&'")
            out.append(self.repeat())
        return "".join(out)

    def repeat(self) -> str:
        atom = self.complement()
        while True:
            c = self.peek()
            if c in ("?", "*", "+"):
                self.i += 1
                atom = f"(?:{atom}){c}"
            elif c == "{":
                end = self.p.find("}", self.i)
                body = self.p[self.i + 1 : end] if end > 0 else ""
                if not regex.fullmatch(r"\d+(,\d*)?", body):
                    raise self.fail("repetition " + repr(self.p[self.i : end + 1]))
                self.i = end + 1
                atom = f"(?:{atom}){{{body}}}"
            else:
                return atom

    def complement(self) -> str:
        if self.peek() == "~":
            raise self.fail("complement '~'")
        return self.charclass()

    def char(self) -> str:
        c = self.peek()
        if c is None:
            raise self.fail("a dangling escape or range")
        if c == "\\":
            self.i += 1
            c = self.peek()
            if c is None:
                raise self.fail("a trailing backslash")
        self.i += 1
        return c

    def charclass(self) -> str:
        if self.peek() != "[":
            return self.simple()
        self.i += 1
        negate = False
        if self.peek() == "^":
            negate = True
            self.i += 1
        items = []
        while self.peek() != "]":
            if self.peek() is None:
                raise self.fail("an unclosed character class")
            low = self.char()
            if self.peek() == "-" and self.i + 1 < len(self.p) and self.p[self.i + 1] != "]":
                self.i += 1
                high = self.char()
                if ord(high) < ord(low):
                    raise self.fail("an inverted character range")
                items.append(regex.escape(low) + "-" + regex.escape(high))
            else:
                items.append(regex.escape(low))
        self.i += 1
        if not items:
            raise self.fail("an empty character class")
        return "[" + ("^" if negate else "") + "".join(items) + "]"

    def simple(self) -> str:
        c = self.peek()
        if c == ".":
            self.i += 1
            return "."
        if c == "@":
            self.i += 1
            return ".*"
        if c == "#":
            raise self.fail("the empty language '#'")
        if c == "<":
            raise self.fail("numeric interval '<n-m>'")
        if c == '"':
            end = self.p.find('"', self.i + 1)
            if end < 0:
                raise self.fail("an unclosed quoted string")
            literal = self.p[self.i + 1 : end]
            self.i = end + 1
            return "(?:" + regex.escape(literal) + ")"
        if c == "(":
            self.i += 1
            if self.peek() == ")":
                self.i += 1
                return ""
            inner = self.union()
            if self.peek() != ")":
                raise self.fail("an unclosed group")
            self.i += 1
            return "(?:" + inner + ")"
        if c in ("*", "+", "?", "{", ")", "|"):
            raise self.fail(f"{c!r} without an operand")
        return regex.escape(self.char())


def regexp_to_regex(pattern: str) -> str:
    """Lucene regular expression (anchored, ``\\d`` is a literal ``d`` as in Lucene 8) as a Python regex."""
    return _RegexpTranslator(pattern).translate()


def _unescaped_stars(pattern: str) -> int:
    count = i = 0
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
            continue
        count += pattern[i] == "*"
        i += 1
    return count


def wildcard_test(pattern: str, case_insensitive: bool) -> Callable[[str], bool]:
    """A Lucene wildcard pattern as a test of one term.

    With at most one ``*`` (``fo?o``, ``fo?o*``, ``f*o``) Python's own ``re`` runs it: a single
    ``.*`` backtracks at most once per position, so it stays linear in the term, and ``re``
    answers several times faster than the RE2 wrapper. More ``*``s, or case folding (whose
    Unicode rules differ between the two engines), go to RE2.
    """
    expression = wildcard_to_regex(pattern)
    if not case_insensitive and _unescaped_stars(pattern) <= 1:
        compiled = re.compile(expression, re.DOTALL)
        return lambda term: compiled.fullmatch(term) is not None
    return _compile_regex(expression, case_insensitive)


def _compile_regex(expression: str, case_insensitive: bool) -> Callable[[str], bool]:
    # RE2, not a backtracking engine: Lucene runs regexps and wildcards as automata, in time linear
    # in the term, and a pattern like (a|aa)+b must not stall the Beater on a long token (with
    # backtracking it took 33 s on 40 characters).
    try:
        compiled = re2.compile(("(?i)" if case_insensitive else "") + "(?s)" + expression)
    except re2.error as e:
        raise UnsupportedQuery(f"pattern {expression!r} cannot be matched in linear time: {e}", part=expression) from None
    return lambda term: compiled.fullmatch(term) is not None


def query_long(value: Any) -> Optional[int]:
    """A query value on a long field; None (no match) for non-numbers and numbers with decimals."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    number = parse_number(value)
    if number is None or not math.isfinite(number) or number != math.floor(number):
        return None
    if isinstance(value, str) and regex.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    return int(number)


def query_float(value: Any) -> Optional[float]:
    """A query value on a float field (32-bit)."""
    number = parse_number(value)
    return None if number is None else to_float32(number)


def query_boolean(value: Any) -> Optional[bool]:
    """A query value on a boolean field: true/false only."""
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    return None


def query_date_span(value: Any, fmt: Optional[str] = None) -> Optional[Tuple[int, int]]:
    """The milliseconds a date value covers: ``2018-03-07`` is the whole day."""
    low = parse_query_date(value, fmt, round_up=False)
    high = parse_query_date(value, fmt, round_up=True)
    if low is None or high is None:
        return None
    return low, high


# --- date formats of range queries ----------------------------------------------------------------

_JAVA_TOKENS = {"yyyy": r"(?P<y>\d{4})", "uuuu": r"(?P<y>\d{4})", "MM": r"(?P<mo>\d{2})", "dd": r"(?P<d>\d{2})",
                "HH": r"(?P<h>\d{2})", "mm": r"(?P<mi>\d{2})", "ss": r"(?P<s>\d{2})", "SSS": r"(?P<ms>\d{3})"}
_FORMAT_CACHE: Dict[str, List[Any]] = {}


def _formats(fmt: Optional[str]) -> List[Any]:
    """Parsers for a ``format`` (``a||b``): names of built-ins, or compiled simple Java patterns."""
    if fmt is None:
        return ["strict_date_optional_time", "epoch_millis"]
    if fmt in _FORMAT_CACHE:
        return _FORMAT_CACHE[fmt]
    parsers: List[Any] = []
    for name in fmt.split("||"):
        name = name.strip()
        if name in ("strict_date_optional_time", "date_optional_time", "epoch_millis", "epoch_second"):
            parsers.append(name)
            continue
        pieces = regex.findall(r"yyyy|uuuu|MM|dd|HH|mm|ss|SSS|'[^']*'|[-/:. T]|.", name)
        out = []
        for piece in pieces:
            if piece in _JAVA_TOKENS:
                out.append(_JAVA_TOKENS[piece])
            elif piece.startswith("'"):
                out.append(regex.escape(piece[1:-1]))
            elif piece in "-/:. T":
                out.append(regex.escape(piece))
            else:
                raise UnsupportedQuery(f"date format {name!r} is not supported", part=fmt)
        parsers.append(regex.compile("".join(out)))
    _FORMAT_CACHE[fmt] = parsers
    return parsers


def parse_query_date(value: Any, fmt: Optional[str], round_up: bool) -> Optional[int]:
    """A range bound or term on a date field as epoch millis (rounded up: end of the period named)."""
    if isinstance(value, bool):
        return None
    for parser in _formats(fmt):
        if parser in ("strict_date_optional_time", "date_optional_time"):
            if isinstance(value, str):
                millis = parse_date(value, round_up=round_up, allow_epoch=False)
                if millis is not None:
                    return millis
        elif parser == "epoch_millis":
            number = parse_number(value)
            if number is not None and math.isfinite(number):
                return int(math.floor(number))
        elif parser == "epoch_second":
            number = parse_number(value)
            if number is not None and math.isfinite(number):
                return int(math.floor(number * 1000))
        elif isinstance(value, str):
            m = parser.fullmatch(value)
            if m:
                g = m.groupdict()
                text = g.get("y") or "1970"
                for key, sep in (("mo", "-"), ("d", "-"), ("h", "T"), ("mi", ":"), ("s", ":")):
                    if g.get(key) is None:
                        break
                    text += sep + g[key]
                else:
                    if g.get("ms") is not None:
                        text += "." + g["ms"]
                millis = parse_date(text, round_up=round_up)
                if millis is not None:
                    return millis
    return None


# --- per-field tests -------------------------------------------------------------------------------

class FieldTest:
    """How one leaf query tests one field of a given type; built lazily per type and cached."""

    __slots__ = ("build", "cache")

    def __init__(self, build: Callable[[str, bool], Optional[Callable[[AnalysedDoc, str], bool]]]) -> None:
        self.build = build
        self.cache: Dict[Tuple[str, bool], Optional[Callable[[AnalysedDoc, str], bool]]] = {}

    def get(self, kind: str, any_field: bool) -> Optional[Callable[[AnalysedDoc, str], bool]]:
        key = (kind, any_field)
        try:
            return self.cache[key]
        except KeyError:
            test = self.cache[key] = self.build(kind, any_field)
            return test


def _field_predicate(field: str, test: FieldTest) -> Predicate:
    """Apply ``test`` to ``field``, or to every field of the document for ANY_FIELD."""
    if field == ir.ANY_FIELD:
        def any_field(doc: AnalysedDoc) -> bool:
            for path, kind in doc.fields_of_type():
                check = test.get(kind, True)
                if check is not None and check(doc, path):
                    return True
            return False
        return any_field

    def one_field(doc: AnalysedDoc) -> bool:
        kind = doc.types.get(field)
        if kind is None or field not in doc.present:
            return False
        check = test.get(kind, False)
        return check is not None and check(doc, field)
    return one_field


def _tokens_any(test: TermTest) -> Callable[[AnalysedDoc, str], bool]:
    def check(doc: AnalysedDoc, path: str) -> bool:
        postings = doc.tokens.get(path)
        return bool(postings) and any(test(token) for token in postings)
    return check


def _keywords_any(test: TermTest) -> Callable[[AnalysedDoc, str], bool]:
    def check(doc: AnalysedDoc, path: str) -> bool:
        return any(test(value) for value in doc.keywords.get(path, ()))
    return check


def _numbers_in(low: float, high: float, low_inclusive: bool = True, high_inclusive: bool = True) -> Callable[[AnalysedDoc, str], bool]:
    def check(doc: AnalysedDoc, path: str) -> bool:
        for v in doc.numbers.get(path, ()):
            if (v > low or (low_inclusive and v == low)) and (v < high or (high_inclusive and v == high)):
                return True
        return False
    return check


def _dates_in(low: int, high: int) -> Callable[[AnalysedDoc, str], bool]:
    def check(doc: AnalysedDoc, path: str) -> bool:
        return any(low <= v <= high for v in doc.dates.get(path, ()))
    return check


def _boolean_is(flag: bool) -> Callable[[AnalysedDoc, str], bool]:
    def check(doc: AnalysedDoc, path: str) -> bool:
        return flag in doc.booleans.get(path, ())
    return check


def _exact_value_test(value: Any, kind: str) -> Optional[Callable[[AnalysedDoc, str], bool]]:
    """A term-level test of ``value`` on a long/float/date/boolean field."""
    if kind == LONG:
        number = query_long(value)
        if number is None or not (LONG_MIN <= number <= LONG_MAX):
            return None
        return _numbers_in(number, number)
    if kind == FLOAT:
        f = query_float(value)
        return None if f is None else _numbers_in(f, f)
    if kind == DATE:
        span = query_date_span(value)
        return None if span is None else _dates_in(*span)
    if kind == BOOLEAN:
        flag = query_boolean(value)
        return None if flag is None else _boolean_is(flag)
    return None


def positions_match(position_lists: Sequence[Sequence[int]], slop: int) -> bool:
    """Whether one position per phrase term fits the phrase within ``slop`` (Lucene's sloppy phrase distance).

    Term i at position p_i is at relative position p_i - i; the phrase matches when some choice
    (distinct positions for repeated terms) has max - min of the relative positions <= slop.
    """
    if slop == 0:
        first, rest = position_lists[0], [set(p) for p in position_lists[1:]]
        return any(all(p + i in s for i, s in enumerate(rest, 1)) for p in first)
    events = sorted((p - i, i, p) for i, positions in enumerate(position_lists) for p in positions)
    k = len(position_lists)
    # smallest window of relative positions holding every term (then check distinct positions)
    counts = [0] * k
    covered = 0
    left = 0
    for right in range(len(events)):
        term = events[right][1]
        if counts[term] == 0:
            covered += 1
        counts[term] += 1
        while covered == k:
            if events[right][0] - events[left][0] <= slop:
                window = events[left : right + 1]
                if _distinct_choice(window, k):
                    return True
            lterm = events[left][1]
            counts[lterm] -= 1
            if counts[lterm] == 0:
                covered -= 1
            left += 1
    return False


def _distinct_choice(window: Sequence[Tuple[int, int, int]], k: int) -> bool:
    """One position per term in ``window`` with no position used twice (repeated phrase terms)."""
    options: List[List[int]] = [[] for _ in range(k)]
    for _, term, position in window:
        options[term].append(position)
    used: set = set()

    def choose(i: int) -> bool:
        if i == k:
            return True
        for p in options[i]:
            if p not in used:
                used.add(p)
                if choose(i + 1):
                    return True
                used.discard(p)
        return False
    return choose(0)


# --- compiling ---------------------------------------------------------------------------------

def at_least(need: int, total: int, outcomes: Iterable[bool]) -> bool:
    """Whether at least ``need`` of ``total`` lazily evaluated ``outcomes`` are true, stopping as
    soon as the answer is known either way (minimum_should_match)."""
    hits = misses = 0
    for outcome in outcomes:
        if outcome:
            hits += 1
            if hits >= need:
                return True
        else:
            misses += 1
            if total - misses < need:
                return False
    return False


def compile_query(node: ir.Node) -> Predicate:
    """Check ``node`` and return its predicate; raise UnsupportedQuery for what cannot be matched faithfully."""
    compiler = _COMPILERS.get(type(node))
    if compiler is None:
        raise UnsupportedQuery(f"{type(node).__name__} queries are not supported by the embedded percolator", part=type(node).__name__)
    return compiler(node)


def _compile_match_all(node: ir.MatchAll) -> Predicate:
    return lambda doc: True


def _compile_match_none(node: ir.MatchNone) -> Predicate:
    return lambda doc: False


def _compile_ids(node: ir.Ids) -> Predicate:
    raise UnsupportedQuery("ids queries cannot match percolated documents (they have no _id)", part="ids")


def _text_terms_test(tokens: Sequence[str], operator: str, msm: Optional[str], fuzziness: Optional[str]) -> Optional[Callable[[AnalysedDoc, str], bool]]:
    """Analysed query tokens against one text field."""
    if not tokens:
        return None
    if fuzziness is None:
        if len(tokens) == 1:
            token = tokens[0]
            return lambda doc, path: token in doc.tokens.get(path, ())
        tests: List[Any] = list(tokens)
    else:
        tests = [fuzzy_test(t, fuzzy_edits(fuzziness, t)) for t in tokens]
    if operator == "and":
        need = len(tests)
    else:
        need = max(resolve_minimum_should_match(msm, len(tests)), 1)
    if need > len(tests):
        return None
    fuzzy = fuzziness is not None

    def check(doc: AnalysedDoc, path: str) -> bool:
        postings = doc.tokens.get(path)
        if not postings:
            return False
        hits = 0
        missing = 0
        allowed_missing = len(tests) - need
        for t in tests:
            if (any(t(p) for p in postings) if fuzzy else t in postings):
                hits += 1
                if hits >= need:
                    return True
            else:
                missing += 1
                if missing > allowed_missing:
                    return False
        return hits >= need
    return check


def _any_field_text_predicate(text: str, raw: Any, test: FieldTest, conjunctive: bool, plain: bool) -> Predicate:
    """ANY_FIELD match/phrase without fuzziness: only the fields holding a query token are tried.

    ``plain``: a text field matches a one-token query just by holding the token (no
    minimum_should_match), so any text field holding it answers without a per-field test.
    """
    tokens = analyze_cached(text)
    text_check = test.get(TEXT, True)
    single = tokens[0] if plain and len(tokens) == 1 and text_check is not None else None
    probe = (max(tokens, key=len),) if (conjunctive and tokens) else tuple(dict.fromkeys(tokens))
    n = query_long(raw)
    f = query_float(raw)
    b = query_boolean(raw)
    span = query_date_span(raw)

    def check(doc: AnalysedDoc) -> bool:
        token_paths, keywords, longs, floats, booleans, dates = doc.any_field_view()
        if text in keywords:
            return True
        if single is not None:
            if single in token_paths:
                return True
        elif text_check is not None:
            tried = set()
            for token in probe:
                for path in token_paths.get(token, ()):
                    if path not in tried:
                        tried.add(path)
                        if text_check(doc, path):
                            return True
        if n is not None and n in longs:
            return True
        if f is not None and f in floats:
            return True
        if b is not None and b in booleans:
            return True
        if span is not None and dates:
            return any(span[0] <= d <= span[1] for d in dates)
        return False
    return check


def _compile_match(node: ir.Match) -> Predicate:
    _check_msm(node.minimum_should_match)
    _check_fuzziness(node.fuzziness)
    text = node.text if isinstance(node.text, str) else text_of(node.text)

    def build(kind: str, any_field: bool) -> Optional[Callable[[AnalysedDoc, str], bool]]:
        if kind == TEXT:
            return _text_terms_test(analyze_cached(text), node.operator, node.minimum_should_match, node.fuzziness)
        if kind == KEYWORD:
            if node.fuzziness is not None:
                return _keywords_any(fuzzy_test(text, fuzzy_edits(node.fuzziness, text)))
            return _keywords_any(lambda value: value == text)
        return _exact_value_test(node.text, kind)
    if node.field == ir.ANY_FIELD and node.fuzziness is None:
        need_all = node.operator == "and" or len(analyze_cached(text)) == 1
        return _any_field_text_predicate(text, node.text, FieldTest(build), need_all, node.minimum_should_match is None)
    return _field_predicate(node.field, FieldTest(build))


def _compile_phrase(node: ir.Phrase) -> Predicate:
    text = node.text
    slop = max(int(node.slop), 0)

    def build(kind: str, any_field: bool) -> Optional[Callable[[AnalysedDoc, str], bool]]:
        if kind == TEXT:
            tokens = analyze_cached(text)
            if not tokens:
                return None
            if len(tokens) == 1:
                token = tokens[0]
                return lambda doc, path: token in doc.tokens.get(path, ())

            def check(doc: AnalysedDoc, path: str) -> bool:
                postings = doc.tokens.get(path)
                if not postings:
                    return False
                lists = []
                for t in tokens:
                    positions = postings.get(t)
                    if positions is None:
                        return False
                    lists.append(positions)
                return positions_match(lists, slop)
            return check
        if kind == KEYWORD:
            return _keywords_any(lambda value: value == text)
        return _exact_value_test(text, kind)
    if node.field == ir.ANY_FIELD:
        return _any_field_text_predicate(text, text, FieldTest(build), True, True)
    return _field_predicate(node.field, FieldTest(build))


def _term_string_test(value: str, case_insensitive: bool) -> TermTest:
    if case_insensitive:
        folded = lowercase(value)
        return lambda term: lowercase(term) == folded
    return lambda term: term == value


def _compile_term(node: ir.Term) -> Predicate:
    return _compile_terms_values(node.field, (node.value,), node.case_insensitive)


def _compile_terms(node: ir.Terms) -> Predicate:
    return _compile_terms_values(node.field, tuple(node.values), False)


def _compile_terms_values(field: str, values: Tuple[Any, ...], case_insensitive: bool) -> Predicate:
    strings = [text_of(v) for v in values]

    def build(kind: str, any_field: bool) -> Optional[Callable[[AnalysedDoc, str], bool]]:
        if kind in (TEXT, KEYWORD):
            if case_insensitive:
                folded = {lowercase(s) for s in strings}
                test: TermTest = lambda term: lowercase(term) in folded
            else:
                wanted = frozenset(strings)
                if kind == TEXT:
                    return lambda doc, path: any(w in doc.tokens.get(path, ()) for w in wanted)
                test = wanted.__contains__
            return _tokens_any(test) if kind == TEXT else _keywords_any(test)
        tests = [t for t in (_exact_value_test(v, kind) for v in values) if t is not None]
        if not tests:
            return None
        return lambda doc, path: any(t(doc, path) for t in tests)
    return _field_predicate(field, FieldTest(build))


def _pattern_predicate(field: str, make: Callable[[str], TermTest], value: str) -> Predicate:
    """Prefix/wildcard/regexp/fuzzy: a term test on text tokens and keyword values (nothing else)."""
    def build(kind: str, any_field: bool) -> Optional[Callable[[AnalysedDoc, str], bool]]:
        if kind == TEXT:
            return _tokens_any(make(lowercase(value) if any_field else value))
        if kind == KEYWORD:
            return _keywords_any(make(value))
        return None
    make(value)  # refuse untranslatable patterns now
    return _field_predicate(field, FieldTest(build))


def _compile_prefix(node: ir.Prefix) -> Predicate:
    ci = node.case_insensitive

    def make(value: str) -> TermTest:
        if ci:
            folded = lowercase(value)
            return lambda term: lowercase(term).startswith(folded)
        return lambda term: term.startswith(value)
    return _pattern_predicate(node.field, make, node.value)


def _compile_wildcard(node: ir.Wildcard) -> Predicate:
    return _pattern_predicate(node.field, lambda v: wildcard_test(v, node.case_insensitive), node.pattern)


def _compile_regexp(node: ir.Regexp) -> Predicate:
    expression = regexp_to_regex(node.pattern)
    compiled = _compile_regex(expression, node.case_insensitive)

    def build(kind: str, any_field: bool) -> Optional[Callable[[AnalysedDoc, str], bool]]:
        if kind == TEXT:
            return _tokens_any(compiled)
        if kind == KEYWORD:
            return _keywords_any(compiled)
        return None
    return _field_predicate(node.field, FieldTest(build))


def _compile_fuzzy(node: ir.Fuzzy) -> Predicate:
    _check_fuzziness(node.fuzziness)

    def make(value: str) -> TermTest:
        return fuzzy_test(value, fuzzy_edits(node.fuzziness, value), node.prefix_length, node.transpositions)
    return _pattern_predicate(node.field, make, node.value)


def _compile_range(node: ir.Range) -> Predicate:
    for bound in (node.gt, node.gte, node.lt, node.lte):
        if isinstance(bound, str) and ("||" in bound or bound.strip().lower().startswith("now")):
            raise UnsupportedQuery(f"date math {bound!r} in ranges is not supported", part=bound)
    if node.format is not None:
        _formats(node.format)
    lower = node.gt if node.gt is not None else node.gte
    lower_inclusive = node.gt is None
    upper = node.lt if node.lt is not None else node.lte
    upper_inclusive = node.lt is None

    def build(kind: str, any_field: bool) -> Optional[Callable[[AnalysedDoc, str], bool]]:
        if kind in (TEXT, KEYWORD):
            lo = None if lower is None else text_of(lower)
            hi = None if upper is None else text_of(upper)
            if any_field and kind == TEXT:
                lo = None if lo is None else lowercase(lo)
                hi = None if hi is None else lowercase(hi)

            def test(term: str) -> bool:
                if lo is not None and (term < lo or (term == lo and not lower_inclusive)):
                    return False
                if hi is not None and (term > hi or (term == hi and not upper_inclusive)):
                    return False
                return True
            return _tokens_any(test) if kind == TEXT else _keywords_any(test)
        if kind == LONG:
            lo_n, hi_n = -math.inf, math.inf
            if lower is not None:
                n = parse_number(lower)
                if n is None:
                    return None
                lo_n = math.ceil(n) if lower_inclusive else math.floor(n) + 1
            if upper is not None:
                n = parse_number(upper)
                if n is None:
                    return None
                hi_n = math.floor(n) if upper_inclusive else math.ceil(n) - 1
            return _numbers_in(lo_n, hi_n)
        if kind == FLOAT:
            lo_f, hi_f = -math.inf, math.inf
            if lower is not None:
                f = query_float(lower)
                if f is None:
                    return None
                lo_f = f
            if upper is not None:
                f = query_float(upper)
                if f is None:
                    return None
                hi_f = f
            return _numbers_in(lo_f, hi_f, lower_inclusive, upper_inclusive)
        if kind == DATE:
            lo_d, hi_d = -(2**63), 2**63 - 1
            if lower is not None:
                # gte rounds down, gt rounds up and excludes (Elasticsearch's date range rounding)
                d = parse_query_date(lower, node.format, round_up=not lower_inclusive)
                if d is None:
                    return None
                lo_d = d if lower_inclusive else d + 1
            if upper is not None:
                d = parse_query_date(upper, node.format, round_up=upper_inclusive)
                if d is None:
                    return None
                hi_d = d if upper_inclusive else d - 1
            return _dates_in(lo_d, hi_d)
        if kind == BOOLEAN:
            lo_b = 0 if lower is None else query_boolean(lower)
            hi_b = 1 if upper is None else query_boolean(upper)
            if lo_b is None or hi_b is None:
                return None
            lo_i = int(lo_b) + (0 if lower_inclusive or lower is None else 1)
            hi_i = int(hi_b) - (0 if upper_inclusive or upper is None else 1)
            return lambda doc, path: any(lo_i <= int(v) <= hi_i for v in doc.booleans.get(path, ()))
        return None
    return _field_predicate(node.field, FieldTest(build))


def _compile_exists(node: ir.Exists) -> Predicate:
    field = node.field
    if field == ir.ANY_FIELD:
        return lambda doc: bool(doc.present)
    if "*" in field:
        raise UnsupportedQuery(f"exists on a field pattern {field!r} is not supported", part=field)
    return lambda doc: field in doc.present


def _compile_bool(node: ir.Bool) -> Predicate:
    required = [compile_query(c) for c in tuple(node.must) + tuple(node.filter)]
    forbidden = [compile_query(c) for c in node.must_not]
    optional = [compile_query(c) for c in node.should]
    if node.minimum_should_match is not None:
        need = int(node.minimum_should_match)
        if not required and optional:
            need = max(need, 1)  # a pure disjunction needs one clause (Lucene)
    else:
        need = 0 if required else (1 if optional else 0)
    if need > len(optional):
        return lambda doc: False
    total_optional = len(optional)

    def check(doc: AnalysedDoc) -> bool:
        for p in required:
            if not p(doc):
                return False
        for p in forbidden:
            if p(doc):
                return False
        if need:
            return at_least(need, total_optional, (p(doc) for p in optional))
        return True
    return check


_COMPILERS: Dict[type, Callable[[Any], Predicate]] = {
    ir.MatchAll: _compile_match_all,
    ir.MatchNone: _compile_match_none,
    ir.Ids: _compile_ids,
    ir.Match: _compile_match,
    ir.Phrase: _compile_phrase,
    ir.Term: _compile_term,
    ir.Terms: _compile_terms,
    ir.Prefix: _compile_prefix,
    ir.Wildcard: _compile_wildcard,
    ir.Regexp: _compile_regexp,
    ir.Fuzzy: _compile_fuzzy,
    ir.Range: _compile_range,
    ir.Exists: _compile_exists,
    ir.Bool: _compile_bool,
}
