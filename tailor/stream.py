"""The bytes of an HTTP tail: a JSON document that is a valid prefix at every moment.

``{"subscription_id": "<id>", "hits": [`` opens it, hits follow separated by
``,\\n``, and ``\\n]}\\n`` closes it when a ``limit`` or ``timeout`` ends the
stream.  Heartbeats are a lone newline: whitespace is valid between JSON
tokens, so proxies see traffic and parsers see nothing.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

HEARTBEAT = b"\n"
FOOTER = b"\n]}\n"


def header(subscription_id: str) -> bytes:
    """The opening bytes of a tail for ``subscription_id``."""
    return b'{"subscription_id": ' + json.dumps(subscription_id).encode() + b', "hits": [\n'


def encode_hits(hits: Iterable[Any], first: bool) -> bytes:
    """``hits`` as array elements; ``first`` says whether nothing precedes them in the array."""
    parts = [json.dumps(hit, separators=(",", ":"), ensure_ascii=False).encode() for hit in hits]
    body = b",\n".join(parts)
    if not parts:
        return b""
    return body if first else b",\n" + body
