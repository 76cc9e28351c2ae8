"""The shape of a delivered document: an Elasticsearch search hit, so ES users feel at home."""

from __future__ import annotations

import json
import math
import secrets
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Optional

import orjson

Hit = Dict[str, Any]
Encode = Callable[[Hit], bytes]
"""Gives a hit's JSON bytes (:func:`encode_hit`, or a :class:`SliceEncodings` that remembers them)."""


def new_document_id() -> str:
    """A random 20-character URL-safe id, like those Elasticsearch generates."""
    return secrets.token_urlsafe(15)


def received_now() -> str:
    """The current UTC time as ISO 8601 with milliseconds (the ``_received`` of a hit)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_hit(index: str, source: Dict[str, Any], seq: int, received: str, doc_id: Optional[str] = None,
             kafka: Optional[Dict[str, Any]] = None, beater: str = "-") -> Hit:
    """One hit: ``{"_index", "_id", "_seq", "_beater", "_received", "_source"}``, and ``_kafka`` (``{"topic",
    "partition", "offset"}``) only for a document read from Kafka, so a subscriber can drop redelivered
    duplicates.  ``_seq`` counts the index's documents on the Beater ``_beater``: together they say where a
    tail has got to (``tailor/cursor.py``)."""
    hit: Hit = {
        "_index": index,
        "_id": doc_id if doc_id is not None else new_document_id(),
        "_seq": seq,
        "_beater": beater,
        "_received": received,
        "_source": source,
    }
    if kafka is not None:
        hit["_kafka"] = kafka
    return hit


def encode_hit(hit: Any) -> bytes:
    """One hit as compact UTF-8 JSON: the bytes a tail writes, and what the replay store keeps.

    The Tailor encodes live hits with this same function, so a replayed hit and a live one are
    the same bytes.  orjson writes what ``json.dumps(separators=(",", ":"), ensure_ascii=False)``
    writes, several times faster, except small floats (``0.00001`` for ``1e-05``, ``1e-7`` for
    ``1e-07``) and NaN or infinities (``null``); a hit that may hold one, or that orjson refuses
    (an integer past 64 bits, a lone surrogate), is written by ``json``.
    """
    try:
        data = orjson.dumps(hit)
    except TypeError:  # orjson.JSONEncodeError: an integer past 64 bits, a lone surrogate, a non-JSON value
        return json_encode_hit(hit)
    if b"0.0000" in data or _one_digit_exponent(data) or (b"null" in data and _non_finite(hit)):
        return json_encode_hit(hit)
    return data


_NUMBER_ENDS = frozenset(b",]}")


def _one_digit_exponent(data: bytes) -> bool:
    """Whether orjson's output ``data`` may hold a float such as ``1e-7``, where json writes ``1e-07``.

    Such a float is a digit, ``e-``, one digit, then the ``,``, ``]`` or ``}`` that ends a value in
    compact JSON.  Each ``e-`` is looked at in turn: a regular expression's scan of every byte was
    half the cost of encoding a recent-change hit, and ids such as ``...9e-4b...`` inside strings
    sent 4% of them down the slow path.  A string that happens to hold ``1e-5,`` only costs that path."""
    at = data.find(b"e-")
    end = len(data)
    while at >= 0:
        if (at and 48 <= data[at - 1] <= 57 and at + 2 < end and 48 <= data[at + 2] <= 57
                and (at + 3 == end or data[at + 3] in _NUMBER_ENDS)):
            return True
        at = data.find(b"e-", at + 2)
    return False


class SliceEncodings:
    """Each hit of one slice encoded once: the replay store keeps those bytes and the Tailors' event carries
    them, so neither the router nor the Tailor decodes or encodes a hit."""

    def __init__(self) -> None:
        self._data: Dict[int, bytes] = {}  # by id(): the slice holds its hits for as long as this lives

    def __call__(self, hit: Hit) -> bytes:
        """``hit``'s :func:`encode_hit` bytes, encoded the first time it is asked for."""
        data = self._data.get(id(hit))
        if data is None:
            data = self._data[id(hit)] = encode_hit(hit)
        return data


def json_encode_hit(hit: Any) -> bytes:
    """:func:`encode_hit` by the standard library: the reference its fast path is held equal to."""
    return json.dumps(hit, separators=(",", ":"), ensure_ascii=False).encode()


def _non_finite(value: Any) -> bool:
    """Whether a float NaN or infinity sits anywhere in ``value`` (orjson writes those as null)."""
    stack = [value]
    while stack:
        node = stack.pop()
        if type(node) is float:
            if not math.isfinite(node):
                return True
        elif type(node) is dict:
            stack.extend(node.values())
        elif type(node) in (list, tuple):
            stack.extend(node)
    return False


def received_ms(received: str) -> int:
    """Epoch milliseconds of a ``_received`` timestamp (``2026-11-25T15:13:00.770Z``)."""
    moment = datetime.fromisoformat(received[:-1] + "+00:00" if received.endswith("Z") else received)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    # Integer arithmetic on the parts: float seconds would round some milliseconds down.
    whole = int(moment.replace(microsecond=0).timestamp())
    return whole * 1000 + moment.microsecond // 1000
