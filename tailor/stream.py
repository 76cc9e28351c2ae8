"""The bytes of an HTTP tail: a JSON document that is a valid prefix at every moment.

``{"subscription_id": "<id>", "hits": [`` opens it, hits follow separated by
``,\\n``, and ``\\n]}\\n`` closes it when a ``limit`` or ``timeout`` ends the
stream.  Heartbeats are a lone newline: whitespace is valid between JSON
tokens, so proxies see traffic and parsers see nothing.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

HEARTBEAT = b"\n"
FOOTER = b"\n]}\n"


def header(subscription_id: str) -> bytes:
    """The opening bytes of a tail for ``subscription_id``."""
    return b'{"subscription_id": ' + json.dumps(subscription_id).encode() + b', "hits": [\n'


def encode_hit(hit: Any) -> bytes:
    """One hit as compact UTF-8 JSON (encoded once per event, shared by every tail of the topic)."""
    return json.dumps(hit, separators=(",", ":"), ensure_ascii=False).encode()


def join_hits(encoded: Sequence[bytes], first: bool) -> bytes:
    """Encoded hits as array elements; ``first`` says whether nothing precedes them in the array."""
    if not encoded:
        return b""
    body = b",\n".join(encoded)
    return body if first else b",\n" + body


def encode_hits(hits: Iterable[Any], first: bool) -> bytes:
    """``hits`` as array elements; ``first`` says whether nothing precedes them in the array."""
    return join_hits([encode_hit(hit) for hit in hits], first)
