"""The Beater's limits on what it takes in, and the pure checks every ingest path shares.

One document over a limit is that document's error (an HTTP answer's ``errors``,
a WAMP ingest report's, a Kafka poison record); a request over a whole-request
limit (body size, documents per request) is refused as a whole with 413.  Every
refusal names the limit (its setting name) and its value.

The depth and field checks never recurse: a document nested 100,000 levels deep
is measured without touching Python's recursion limit.  Python's own ``json``
module raises RecursionError on such input, which :func:`loads` turns into a
``max_depth`` violation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple, Union

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


def loads(text: Any, limits: Limits = DEFAULT) -> Tuple[Any, Optional[Violation]]:
    """``json.loads(text)``, or ``(None, too_deep)`` where the parser would recurse past Python's limit.

    JSONDecodeError and UnicodeDecodeError (for bytes) propagate as from ``json.loads``."""
    try:
        return json.loads(text), None
    except RecursionError:
        return None, too_deep(limits)


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
    "DEFAULT", "DEPTH_CEILING", "Limits", "Violation", "check_document", "check_shape", "encoded_size", "line_too_long",
    "loads", "request_too_large", "shape", "too_deep", "too_large", "value_end",
]
