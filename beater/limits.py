"""The Beater's limits on what it takes in, and the pure checks every ingest path shares.

One document over a limit is that document's error (an HTTP answer's ``errors``,
a WAMP ingest report's, a Kafka poison record); a request over a whole-request
limit (body size, documents per request) is refused as a whole with 413.  Every
refusal names the limit (its setting name) and its value.

The depth and field checks never recurse: a document nested 100,000 levels deep
is measured without touching Python's recursion limit.  Python's own ``json``
module raises RecursionError on such input, which :func:`loads` turns into a
``max_depth`` violation.

Documents are parsed by :func:`decode`: orjson (2-3x faster) wherever it gives ``json``'s value, ``json``
otherwise, so that what is accepted, its values and the error messages are ``json``'s; except that NaN,
Infinity, -Infinity and numbers too large for a double are refused (a hit would carry NaN or Infinity,
which no JSON parser reads).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple, Union

import orjson

from router import contract

DEPTH_CEILING = 256
"""Deepest ``max_depth`` accepted: deeper documents reach recursive code (JSON encoding of hits and of the
embedded field model, whose nesting is twice the document's) too close to Python's recursion limit."""


@dataclass(frozen=True)
class Limits:
    """Every configurable limit on ingest and registration (``estrom/settings.py`` names them ``--max-*``)."""

    max_body_bytes: int = 64 * 1024 * 1024
    max_document_bytes: int = 1024 * 1024
    max_depth: int = 100
    max_fields: int = 1000
    max_line_bytes: int = 1024 * 1024
    max_docs_per_request: int = 100_000
    max_query_chars: int = 65_536
    max_query_clauses: int = 1024
    max_registrations_per_index: int = 100_000
    max_registrations: int = 1_000_000


DEFAULT = Limits()


@dataclass(frozen=True)
class Violation:
    """One limit a document (or request, or query) is over: the setting's name and value, a short ``reason``
    (``too_large``, ``too_deep``, ``too_many_fields``, ``line_too_long``: a Kafka poison reason and metric label)
    and a message for people."""

    limit: str
    value: int
    reason: str
    message: str

    def to_json(self) -> dict:
        """The error body (HTTP) or kwargs (WAMP) naming the limit."""
        return {"error": contract.ERROR_LIMIT_EXCEEDED, "message": self.message, "limit": self.limit, "value": self.value}


def too_large(size: int, limits: Limits = DEFAULT) -> Optional[Violation]:
    """A document of ``size`` bytes (its JSON) over ``max_document_bytes``, or None."""
    if size > limits.max_document_bytes:
        return Violation("max_document_bytes", limits.max_document_bytes, "too_large",
                         f"the document is {size} bytes, over the limit of {limits.max_document_bytes} (max_document_bytes)")
    return None


def too_deep(limits: Limits = DEFAULT, depth: Optional[int] = None) -> Violation:
    """The violation of a document nested deeper than ``max_depth`` (``depth`` if known)."""
    found = f"nested {depth} levels deep" if depth is not None else "nested too deeply to parse"
    return Violation("max_depth", limits.max_depth, "too_deep",
                     f"the document is {found}, over the limit of {limits.max_depth} levels (max_depth)")


def line_too_long(size: int, limits: Limits = DEFAULT) -> Violation:
    """The violation of an NDJSON line of ``size`` bytes over ``max_line_bytes``."""
    return Violation("max_line_bytes", limits.max_line_bytes, "line_too_long",
                     f"the line is {size} bytes, over the limit of {limits.max_line_bytes} (max_line_bytes)")


def loads(text: Union[str, bytes], limits: Limits = DEFAULT, long_digits: Optional[bool] = None) -> Tuple[Any, Optional[Violation]]:
    """:func:`decode` ``(text)``, or ``(None, too_deep)`` where ``json`` would recurse past Python's limit.

    JSONDecodeError (NonFinite for NaN and the like), ValueError (an integer of over 4,300 digits) and
    UnicodeDecodeError (for bytes) propagate as from :func:`decode`."""
    try:
        return decode(text, long_digits), None
    except RecursionError:
        return None, too_deep(limits)


class NonFinite(json.JSONDecodeError):
    """NaN, Infinity, -Infinity or a number too large for a double (``1e400``): ``json`` takes them, but
    they would reach hits as ``NaN`` or ``Infinity``, which JSON.parse, ijson and orjson refuse."""


def decode(text: Union[str, bytes], long_digits: Optional[bool] = None) -> Any:
    """``json.loads(text)``, by orjson where that gives the same value, refusing non-finite numbers (NonFinite).

    orjson refuses some JSON ``json`` takes (lone surrogates, a BOM before bytes, UTF-16 bytes, ints of
    thousands of digits, nesting past 1024) and words its errors differently: those texts are parsed by
    ``json``, which gives today's value or error.  Its one silent difference, integers past 64 bits read
    as floats, is ruled out by ``long_digits`` (the text has a run of 19 digits or more; None: look), and
    nesting ``json`` would refuse with RecursionError by counting brackets.  Raises as ``json.loads``."""
    return decode_marked(text, long_digits)[0]


def decode_marked(text: Union[str, bytes], long_digits: Optional[bool] = None) -> Tuple[Any, bool]:
    """:func:`decode`, and whether orjson parsed it: its strings then hold no lone surrogate (orjson
    refuses them), and :func:`lone_surrogate` need not look."""
    if long_digits is None:
        long_digits = has_long_digits(text)
    if long_digits or (len(text) > _SHALLOW_LENGTH and _openers(text) > _SAFE_DEPTH):
        return _strict_loads(text), False
    try:
        return orjson.loads(text), True
    except orjson.JSONDecodeError:
        return _strict_loads(text), False


_SAFE_DEPTH = 512
"""Nesting ``json`` surely parses below Python's recursion limit (1000) wherever it is called from; beyond
it orjson (limit 1024) might take what ``json`` refuses, and ``json`` decides (RecursionError or not)."""
_SHALLOW_LENGTH = 2 * _SAFE_DEPTH + 1
"""A valid text this long or shorter has at most ``_SAFE_DEPTH`` brackets: it need not be counted."""

_LONG_DIGITS = 19
"""2**63 has 19 digits: a shorter integer fits orjson's int64 / uint64, a longer one may become a float."""
_DIGIT_MAP = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))  # digits to "0", all else to " "
_DIGIT_RUN = b"0" * _LONG_DIGITS


def has_long_digits(text: Union[str, bytes]) -> bool:
    """Whether ``text`` holds 19 or more digits in a row (an integer orjson may turn into a float).

    A translate and a substring search, both in C (about 1.2 ns a byte): a regular expression costs 10x."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return _DIGIT_RUN in data.translate(_DIGIT_MAP)


def _openers(text: Union[str, bytes]) -> int:
    if isinstance(text, bytes):
        return text.count(b"{") + text.count(b"[")
    return text.count("{") + text.count("[")


class _Refused(Exception):
    """Raised from ``json``'s hooks, which are not told where the refused number is."""


def _refuse_constant(name: str) -> Any:
    raise _Refused(name)


def _finite_float(literal: str) -> float:
    value = float(literal)
    if math.isinf(value):
        raise _Refused(literal)
    return value


_STRICT = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)
"""``json``'s decoder refusing NaN, Infinity, -Infinity and numbers past a double (see :func:`refused`)."""


def raw_decode(text: str, start: int) -> Tuple[Any, int]:
    """``json.JSONDecoder().raw_decode(text, start)``, refusing non-finite numbers (NonFinite)."""
    try:
        return _STRICT.raw_decode(text, start)
    except _Refused:
        raise refused(text, start) from None


def _strict_loads(text: Union[str, bytes]) -> Any:
    """``json.loads(text)`` (bytes decoded as it decodes them) refusing non-finite numbers."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    elif text.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    try:
        return _STRICT.decode(text)
    except _Refused:
        raise refused(text, 0) from None


def refused(text: str, start: int) -> NonFinite:
    """The error naming the first non-finite number of ``text[start:]``, which ``json`` has parsed up to it."""
    for match in _TOKEN.finditer(text, start):
        literal = match.group(1)
        if literal is None:
            continue  # a string
        if literal in ("NaN", "Infinity", "-Infinity"):
            return NonFinite("Expecting value", text, match.start())  # json's words for any other non-JSON word
        if any(c in literal for c in ".eE") and math.isinf(float(literal)):  # an integer is never infinite
            return NonFinite("Number out of range", text, match.start())
    return NonFinite("Number out of range", text, start)  # not reached: json refused one


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|(NaN|-?Infinity|-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)', re.DOTALL)
"""A JSON string (skipped), or a number or non-finite word: outside strings, text that ``json`` parsed holds
no other letters than those of true, false and null."""


def shape(value: Any, cutoff_depth: int, cutoff_fields: int) -> Tuple[int, int]:
    """``(depth, fields)`` of a decoded JSON value, without recursion: depth counts nested objects and
    arrays (a flat object is 1), fields counts distinct field paths (``a.b``; array elements share their
    array's path, as Elasticsearch maps them).  Stops early once past either cutoff."""
    if not isinstance(value, (dict, list)):
        return 0, 0
    deepest = 0
    paths: set = set()
    stack: List[Tuple[Any, int, str]] = [(value, 1, "")]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth, prefix = pop()
        if depth > deepest:
            deepest = depth
            if deepest > cutoff_depth:
                break
        if type(node) is dict:
            for key, child in node.items():
                path = f"{prefix}.{key}" if prefix else str(key)
                paths.add(path)
                if isinstance(child, (dict, list)):
                    push((child, depth + 1, path))
            if len(paths) > cutoff_fields:
                break
        else:
            for child in node:
                if isinstance(child, (dict, list)):
                    push((child, depth + 1, prefix))
    return deepest, len(paths)


def check_shape(source: Any, limits: Limits = DEFAULT) -> Optional[Violation]:
    """The ``max_depth`` or ``max_fields`` violation of a decoded document, or None."""
    depth, fields = shape(source, limits.max_depth, limits.max_fields)
    if depth > limits.max_depth:
        return too_deep(limits, depth)
    if fields > limits.max_fields:
        return Violation("max_fields", limits.max_fields, "too_many_fields",
                         f"the document has more than {limits.max_fields} distinct fields (max_fields)")
    return None


def check_document(source: Any, limits: Limits = DEFAULT, size: Optional[int] = None,
                   text: Union[str, bytes, None] = None, start: int = 0, end: Optional[int] = None) -> Optional[Violation]:
    """The first limit a decoded document is over (size, then depth, then fields), or None.

    ``size``: its JSON's bytes when known (HTTP, Kafka); None skips the size check (see :func:`encoded_size`).
    ``text[start:end]``: the JSON (str or bytes) it was parsed from, if at hand: when it has too few brackets and
    colons to be too deep or to have too many fields, the walk over the document is skipped (counting is far
    cheaper).  Kafka: ``check_document(document.source, limits, len(value), value)``."""
    if size is not None:
        violation = too_large(size, limits)
        if violation is not None:
            return violation
    if text is not None:
        stop = len(text) if end is None else end
        brace, bracket, colon = _NEEDLES[type(text) is bytes]
        # Brackets or colons inside strings only make these counts larger: the shortcut never misses a violation.
        if (text.count(brace, start, stop) + text.count(bracket, start, stop) <= limits.max_depth
                and text.count(colon, start, stop) <= limits.max_fields):
            return None
    return check_shape(source, limits)


_NEEDLES: Tuple[Tuple[Any, Any, Any], Tuple[Any, Any, Any]] = (("{", "[", ":"), (b"{", b"[", b":"))


def lone_surrogate(source: Any, text: Union[str, bytes], start: int = 0, end: Optional[int] = None) -> Optional[str]:
    """Why ``source`` (parsed from ``text[start:end]``) cannot be delivered, if it holds a lone UTF-16
    surrogate (``"\\ud800"``: valid JSON, but no UTF-8 writer, WAMP serializer or tail can carry it); else None.

    Only a ``\\uD800``-``\\uDFFF`` escape in the text can produce one (a pair becomes one character), so the
    document is encoded only when the text has such an escape: one ``find`` per case otherwise."""
    stop = len(text) if end is None else end
    needles = (b"\\ud", b"\\uD") if isinstance(text, bytes) else ("\\ud", "\\uD")
    if all(text.find(needle, start, stop) == -1 for needle in needles):  # type: ignore[arg-type]
        return None
    try:
        json.dumps(source, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:
        return f"a string holds a lone UTF-16 surrogate (U+{ord(e.object[e.start]):04X}), which UTF-8 cannot carry"
    except ValueError:
        return None  # not this check's business (a number too long to write is refused elsewhere)
    return None


def encoded_size(source: Any) -> int:
    """Bytes of ``source`` as compact UTF-8 JSON (what a hit carries); TypeError or ValueError if it is not
    JSON (bytes from a binary WAMP serializer, NaN).  Check its depth first: encoding recurses."""
    return len(json.dumps(source, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8"))


def value_end(text: str, start: int) -> Optional[int]:
    """Where the JSON value (object or array) opening at ``text[start]`` ends, found without recursion
    (for a value too deep for ``json``); None if it never closes."""
    depth = 0
    i = start
    n = len(text)
    find = text.find
    while i < n:
        c = text[i]
        if c == '"':
            i += 1
            while True:  # to the closing quote, skipping escaped characters
                j = find('"', i)
                if j < 0:
                    return None
                backslashes = 0
                k = j - 1
                while k >= i and text[k] == "\\":
                    backslashes += 1
                    k -= 1
                i = j + 1
                if backslashes % 2 == 0:
                    break
            continue
        if c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def request_too_large(limit: str, value: int, message: str) -> Violation:
    """A whole-request violation (``max_body_bytes``, ``max_docs_per_request``)."""
    return Violation(limit, value, "too_large", message)


__all__ = [
    "DEFAULT", "DEPTH_CEILING", "Limits", "NonFinite", "Violation", "check_document", "check_shape", "decode",
    "decode_marked", "encoded_size", "has_long_digits", "line_too_long", "loads", "raw_decode", "refused",
    "request_too_large", "shape", "too_deep", "too_large", "value_end",
]
