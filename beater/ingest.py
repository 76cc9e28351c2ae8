"""Turning a request body into documents, one error per bad item, never losing good neighbours.

Accepted bodies: one JSON object, a JSON array of objects, or NDJSON (one
object per line).  Any item may use estrom's original envelope
``{"_index": ..., "_id": ..., "_source": {...}}``; its ``_index`` must then
agree with the index named in the URL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

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
    """Why one item was refused: ``line`` for NDJSON (1-based), ``item`` for arrays (0-based)."""

    message: str
    line: Optional[int] = None
    item: Optional[int] = None

    def to_json(self) -> Dict[str, Any]:
        """The error as listed in the ingest answer."""
        body: Dict[str, Any] = {"error": "estrom.error.invalid_document", "message": self.message}
        if self.line is not None:
            body["line"] = self.line
        if self.item is not None:
            body["item"] = self.item
        return body


@dataclass
class ParsedBody:
    """The documents of one body, in order, and the errors of the items that were refused."""

    documents: List[Incoming] = field(default_factory=list)
    errors: List[ItemError] = field(default_factory=list)
    # Where each document was in the request: {"line": n} (NDJSON, 1-based) or {"item": i} (array).
    positions: List[Dict[str, int]] = field(default_factory=list)


def parse_body(body: bytes, index: str) -> ParsedBody:
    """Split a request body into documents for ``index`` and per-item errors."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        return ParsedBody(errors=[ItemError(f"body is not UTF-8: {e.reason} at byte {e.start}")])
    stripped = text.strip()
    if not stripped:
        return ParsedBody(errors=[ItemError("empty body: send a JSON object, a JSON array or NDJSON")])
    try:
        whole = json.loads(stripped)
    except json.JSONDecodeError:
        return _parse_ndjson(text, index)
    if isinstance(whole, list):
        return _collect((unwrap(item, index), None, i) for i, item in enumerate(whole))
    return _collect([(unwrap(whole, index), 1, None)])


def _parse_ndjson(text: str, index: str) -> ParsedBody:
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            items.append(((None, f"invalid JSON: {e.msg} at column {e.colno}"), number, None))
            continue
        items.append((unwrap(value, index), number, None))
    return _collect(items)


def _collect(items: Any) -> ParsedBody:
    parsed = ParsedBody()
    for (document, error), line, item in items:
        if document is not None:
            parsed.documents.append(document)
            parsed.positions.append({"item": item} if item is not None else {"line": line or 1})
        else:
            parsed.errors.append(ItemError(error or "invalid document", line=line, item=item))
    return parsed


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
