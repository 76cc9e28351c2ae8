"""The shape of a delivered document: an Elasticsearch search hit, so ES users feel at home."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from typing import Any, Dict, Optional

Hit = Dict[str, Any]


def new_document_id() -> str:
    """A random 20-character URL-safe id, like those Elasticsearch generates."""
    return secrets.token_urlsafe(15)


def received_now() -> str:
    """The current UTC time as ISO 8601 with milliseconds (the ``_received`` of a hit)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_hit(index: str, source: Dict[str, Any], seq: int, received: str, doc_id: Optional[str] = None) -> Hit:
    """One hit: ``{"_index", "_id", "_seq", "_received", "_source"}``."""
    return {
        "_index": index,
        "_id": doc_id if doc_id is not None else new_document_id(),
        "_seq": seq,
        "_received": received,
        "_source": source,
    }
