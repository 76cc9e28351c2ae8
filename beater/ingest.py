"""Turning a request body into documents, one error per bad item, never losing good neighbours.

Accepted bodies: one JSON object, a JSON array of objects, or NDJSON (one
object per line).  Any item may use estrom's original envelope
``{"_index": ..., "_id": ..., "_source": {...}}``; its ``_index`` must then
agree with the index named in the URL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from json.decoder import WHITESPACE  # type: ignore[attr-defined]  # exists at runtime; typeshed omits it
from typing import Any, Dict, List, Optional, Tuple

import orjson

from beater.errors import LimitExceeded
from beater.limits import (DEFAULT, Limits, NonFinite, Violation, check_document, decode_marked, has_long_digits, line_too_long,
                           lone_surrogate, raw_decode, too_deep, too_large, value_end)
from router import contract

ENVELOPE_KEYS = frozenset({"_index", "_id", "_source"})


@dataclass(frozen=True)
class Incoming:
    """A document accepted for percolation: its source, the id it brought, if any, and where in Kafka it
    was read (``{"topic", "partition", "offset"}``; None for HTTP and WAMP ingest)."""

    source: Dict[str, Any]
    id: Optional[str] = None
    kafka: Optional[Dict[str, Any]] = None


@dataclass(frozen=True)
class ItemError:
    """Why one item was refused: ``line`` for NDJSON (1-based), ``item`` for arrays (0-based); over a limit,
    the ``limit`` (its setting name) and its ``value``, under ``estrom.error.limit_exceeded``."""

    message: str
    line: Optional[int] = None
    item: Optional[int] = None
    error: str = contract.ERROR_INVALID_DOCUMENT
    limit: Optional[str] = None
    value: Optional[int] = None

    @classmethod
    def over(cls, violation: Violation, line: Optional[int] = None, item: Optional[int] = None) -> "ItemError":
        """The error of an item over a limit."""
        return cls(violation.message, line=line, item=item, error=contract.ERROR_LIMIT_EXCEEDED,
                   limit=violation.limit, value=violation.value)

    def to_json(self) -> Dict[str, Any]:
        """The error as listed in the ingest answer."""
        body: Dict[str, Any] = {"error": self.error, "message": self.message}
        if self.line is not None:
            body["line"] = self.line
        if self.item is not None:
            body["item"] = self.item
        if self.limit is not None:
            body["limit"] = self.limit
            body["value"] = self.value
        return body


@dataclass
class ParsedBody:
    """The documents of one body, in order, and the errors of the items that were refused."""

    documents: List[Incoming] = field(default_factory=list)
    errors: List[ItemError] = field(default_factory=list)
    # Where each document was in the request: {"line": n} (NDJSON, 1-based) or {"item": i} (array).
    positions: List[Dict[str, int]] = field(default_factory=list)

    def add(self, value: Any, index: str, limits: Limits, position: Dict[str, int], size: Optional[int],
            text: Optional[str] = None, start: int = 0, end: Optional[int] = None, by_orjson: bool = False) -> None:
        """Keep the decoded item ``value`` as a document, or its error if it is no document or over a limit.

        ``by_orjson``: orjson parsed it, so it holds no lone surrogate (the look costs 2-3 us a document)."""
        document, error = unwrap(value, index)
        if document is None:
            self.errors.append(ItemError(error or "invalid document", line=position.get("line"), item=position.get("item")))
            return
        violation = check_document(document.source, limits, size, text, start, end)
        if violation is not None:
            self.errors.append(ItemError.over(violation, line=position.get("line"), item=position.get("item")))
            return
        if text is not None and not by_orjson:
            unwritable = lone_surrogate(document.source, text, start, end)
            if unwritable is not None:
                self.errors.append(ItemError(unwritable, line=position.get("line"), item=position.get("item")))
                return
        self.documents.append(document)
        self.positions.append(position)


_SPACE = WHITESPACE.match


def parse_body(body: bytes, index: str, limits: Limits = DEFAULT) -> ParsedBody:
    """Split a request body into documents for ``index`` and per-item errors.

    Each item is checked against the document limits (an item over one is that item's error, naming
    the limit); LimitExceeded (413) if the whole body is over ``max_body_bytes`` or holds more than
    ``max_docs_per_request`` items.  Never recurses on the nesting of the input.  Items are parsed as by
    ``json``, but NaN, Infinity, -Infinity and numbers too large for a double are invalid JSON
    (``beater.limits.decode``)."""
    if len(body) > limits.max_body_bytes:
        raise LimitExceeded(f"the body is {len(body)} bytes, over the limit of {limits.max_body_bytes} (max_body_bytes)",
                            limit="max_body_bytes", value=limits.max_body_bytes)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        if b"\n" not in body.strip() or _one_array(body):
            return ParsedBody(errors=[ItemError(f"body is not UTF-8: {e.reason} at byte {e.start}")])
        return _parse_ndjson_lines_of_bytes(body, index, limits)  # the bad lines cost only themselves
    stripped = text.strip()
    if not stripped:
        return ParsedBody(errors=[ItemError("empty body: send a JSON object, a JSON array or NDJSON")])
    is_ascii = text.isascii()
    # One look at the whole body: without 19 digits in a row anywhere, no line needs its own (limits.decode).
    long_digits = None if has_long_digits(body) else False
    # The line of the body that ``stripped`` starts on (errors name lines and columns of the body).
    first_line = 1 + text.count("\n", 0, text.find(stripped[0]))
    if stripped[0] == "[":
        parsed = _parse_array(stripped, index, limits, is_ascii, first_line)
        if parsed is not None:
            return parsed
    elif stripped[0] == "{" and "\n" in stripped:  # one pretty-printed object, or NDJSON
        parsed = _parse_multiline_object(stripped, index, limits, is_ascii, long_digits, first_line)
        if parsed is not None:
            return parsed
    return _parse_ndjson(text, index, limits, is_ascii, single="\n" not in stripped, long_digits=long_digits)


def _size(text: str, start: int, end: int, is_ascii: bool) -> int:
    """Bytes of ``text[start:end]`` in UTF-8."""
    return end - start if is_ascii else len(text[start:end].encode("utf-8"))


def _parse_multiline_object(text: str, index: str, limits: Limits, is_ascii: bool,
                            long_digits: Optional[bool] = None, first_line: int = 1) -> Optional[ParsedBody]:
    """The body as one (pretty-printed) object, or None if it holds more than one value (NDJSON)."""
    if _first_line_is_a_value(text):
        # A whole value then more text (``text`` is stripped and holds a line break) is never one value:
        # this is NDJSON.  Without this look the whole body went through orjson and then ``json`` just
        # to learn that, ~30 us a 20-document POST and twice that under load.
        return None
    try:
        value, by_orjson = decode_marked(text, long_digits)
    except NonFinite as e:
        end = value_end(text, 0)
        if end is None or text[end:].strip():
            return None  # NDJSON: its line with the NaN is refused, naming its column
        return ParsedBody(errors=[ItemError(_where(e, first_line), line=1)])
    except ValueError:  # not one JSON value, or a number Python will not convert: read line by line
        return None
    except RecursionError:
        end = value_end(text, 0)
        if end is not None and text[end:].strip():
            return None  # a deep first line of NDJSON: refused line by line
        return ParsedBody(errors=[ItemError.over(too_deep(limits), line=1)])
    parsed = ParsedBody()
    parsed.add(value, index, limits, {"line": 1}, _size(text, 0, len(text), is_ascii), text, by_orjson=by_orjson)
    return parsed


def _first_line_is_a_value(text: str) -> bool:
    """Whether the first line of ``text`` is by itself one JSON value (as orjson, which takes a subset
    of what ``json`` takes, reads it: False says nothing)."""
    try:
        orjson.loads(text[: text.find("\n")])
    except orjson.JSONDecodeError:
        return False
    return True


def _where(error: NonFinite, first_line: int) -> str:
    """The message of a non-finite number at ``error.pos`` of a body (its ``first_line`` is the body's)."""
    return f"invalid JSON: {error.msg} at line {error.lineno + first_line - 1} column {error.colno}"


def _parse_array(text: str, index: str, limits: Limits, is_ascii: bool, first_line: int = 1) -> Optional[ParsedBody]:
    """A JSON array body item by item (so that one item too deep to parse costs only itself), or None if the
    body is not one well-formed array (it is then read as NDJSON, which names the offending line)."""
    parsed = ParsedBody()
    pos = _SPACE(text, 1).end()
    if text.startswith("]", pos):
        return parsed if not text[pos + 1:].strip() else None
    item = 0
    while True:
        if item >= limits.max_docs_per_request:
            raise _too_many(limits)
        start = pos
        try:
            value, end = raw_decode(text, pos)
        except NonFinite as e:  # well-formed, but a NaN a hit could not carry: this item's error
            found = value_end(text, pos) if text.startswith(("{", "["), pos) else None
            if found is None:
                return None
            end = found
            parsed.errors.append(ItemError(_where(e, first_line), item=item))
        except json.JSONDecodeError:
            return None
        except ValueError as e:  # well-formed, but a number of more digits than Python converts
            found = value_end(text, pos) if text.startswith(("{", "["), pos) else None
            if found is None:
                return None
            end = found
            parsed.errors.append(ItemError(invalid_json(e), item=item))
        except RecursionError:
            found = value_end(text, pos) if text.startswith(("{", "["), pos) else None
            if found is None:
                return None
            end = found
            parsed.errors.append(ItemError.over(too_deep(limits), item=item))
        else:
            parsed.add(value, index, limits, {"item": item}, _size(text, start, end, is_ascii), text, start, end)
        item += 1
        pos = _SPACE(text, end).end()
        if text.startswith(",", pos):
            pos = _SPACE(text, pos + 1).end()
            continue
        if text.startswith("]", pos) and not text[pos + 1:].strip():
            return parsed
        return None


def _parse_ndjson(text: str, index: str, limits: Limits, is_ascii: bool, single: bool = False,
                  long_digits: Optional[bool] = None) -> ParsedBody:
    """One document per non-blank line; ``single``: the body is one line, its limit is the document's;
    ``long_digits``: False if the body has no 19 digits in a row (see ``limits.decode``), None to look per line."""
    lines = text.split("\n")  # not splitlines(): JSON strings may hold U+2028 and other line breaks
    if sum(1 for line in lines if line.strip()) > limits.max_docs_per_request:
        raise _too_many(limits)
    parsed = ParsedBody()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        size = _size(line, 0, len(line), is_ascii)
        if size > limits.max_line_bytes and not single:
            parsed.errors.append(ItemError.over(line_too_long(size, limits), line=number))
            continue
        over = too_large(size, limits)  # refused before it is parsed
        if over is not None:
            parsed.errors.append(ItemError.over(over, line=number))
            continue
        try:
            value, by_orjson = decode_marked(line, long_digits)
        except RecursionError:
            parsed.errors.append(ItemError.over(too_deep(limits), line=number))
            continue
        except json.JSONDecodeError as e:
            parsed.errors.append(ItemError(f"invalid JSON: {e.msg} at column {e.colno}", line=number))
            continue
        except ValueError as e:  # a number of more digits than Python converts (4,300)
            parsed.errors.append(ItemError(invalid_json(e), line=number))
            continue
        parsed.add(value, index, limits, {"line": number}, None, line, by_orjson=by_orjson)
    return parsed


def _one_array(body: bytes) -> bool:
    """Whether a body that opens with ``[`` is one (pretty-printed) array rather than NDJSON whose first line
    is an array: only then is its first line not a whole JSON value by itself."""
    first = body.lstrip().split(b"\n", 1)[0]
    if not first.startswith(b"["):
        return False
    try:
        json.loads(first)
    except (ValueError, RecursionError):
        return True
    return False


def _parse_ndjson_lines_of_bytes(body: bytes, index: str, limits: Limits) -> ParsedBody:
    """NDJSON whose body is not all UTF-8: each line that is not is that line's error, the others are read."""
    texts: List[str] = []
    errors: List[ItemError] = []
    for number, raw in enumerate(body.split(b"\n"), start=1):
        try:
            texts.append(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            texts.append("")  # keeps the line numbers of the lines after it
            errors.append(ItemError(f"the line is not UTF-8: {e.reason} at byte {e.start} of the line", line=number))
    parsed = _parse_ndjson("\n".join(texts), index, limits, is_ascii=False)
    parsed.errors = sorted(parsed.errors + errors, key=lambda error: error.line or 0)
    return parsed


def invalid_json(error: ValueError) -> str:
    """The message for JSON that ``json`` refuses although it is well-formed (a number of over 4,300 digits)."""
    # Python's own message ends with advice for programmers ("use sys.set_int_max_str_digits()").
    return "invalid JSON: " + str(error).split(";", 1)[0]


def _too_many(limits: Limits) -> LimitExceeded:
    return LimitExceeded(f"more than {limits.max_docs_per_request} documents in one request (max_docs_per_request)",
                         limit="max_docs_per_request", value=limits.max_docs_per_request)


def unwrap(value: Any, index: str) -> Tuple[Optional[Incoming], Optional[str]]:
    """One item as a document, or None and the reason it is refused."""
    if not isinstance(value, dict):
        return None, f"a document must be a JSON object, not {type(value).__name__}"
    if "_source" in value and set(value) <= ENVELOPE_KEYS:
        source = value["_source"]
        if not isinstance(source, dict):
            return None, "_source must be a JSON object"
        if "_index" in value and value["_index"] != index:
            return None, f"_index {value['_index']!r} does not match the index {index!r} of the URL"
        doc_id = value.get("_id")
        if doc_id is not None and not isinstance(doc_id, (str, int)):
            return None, "_id must be a string"
        return Incoming(source=source, id=None if doc_id is None else str(doc_id)), None
    return Incoming(source=value), None
