"""Lucene wildcards and regular expressions as tests of one term.

Lucene runs them as automata, in time linear in the term.  So do these: a Lucene
``RegExp`` (flags ALL) is translated into a regex and run on RE2, and so is a
wildcard with several ``*`` or case folding; a wildcard with at most one ``*`` runs
on Python's ``re``, where it stays linear.  Operators without an equivalent
(intersection, complement, numeric intervals, the empty language) are refused
with UnsupportedQuery when the query is compiled.
"""

from __future__ import annotations

import re
from typing import Callable, List, Optional

import re2
import regex

from beater.errors import UnsupportedQuery


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
        while (c := self.peek()) is not None and c not in "|)":
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
    return compile_regex(expression, case_insensitive)


def compile_regex(expression: str, case_insensitive: bool) -> Callable[[str], bool]:
    """A test of one term fully matching ``expression`` (a Python regex) on RE2; UnsupportedQuery if RE2 cannot run it."""
    # RE2, not a backtracking engine: Lucene runs regexps and wildcards as automata, in time linear
    # in the term, and a pattern like (a|aa)+b must not stall the Beater on a long token (with
    # backtracking it took 33 s on 40 characters).
    try:
        compiled = re2.compile(("(?i)" if case_insensitive else "") + "(?s)" + expression)
    except re2.error as e:
        raise UnsupportedQuery(f"pattern {expression!r} cannot be matched in linear time: {e}", part=expression) from None
    return lambda term: compiled.fullmatch(term) is not None
