"""The Beater's operations, independent of the protocol that calls them.

HTTP and WAMP front ends are thin adapters over :class:`Beater`: registering a
query, looking one up, ingesting documents and replaying what a subscription
matched all happen here once.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from twisted.logger import Logger

from beater.errors import BackendUnavailable, EstromError, InvalidQuery, NotAllDelivered, UnknownSubscription
from beater.ingest import ItemError, ParsedBody, unwrap
from beater.mappings import IndexMapping, field_kinds
from beater.percolator.base import Percolator
from beater.pipeline import Pipeline
from beater.registration import make_registration, validate_index
from beater.replay import MAX_LIMIT, ReplayStore

log = Logger()


class Beater:
    """Registration and ingestion over one percolator and one publishing pipeline."""

    def __init__(self, percolator: Percolator, pipeline: Pipeline, mappings: Optional[Mapping[str, IndexMapping]] = None,
                 replay: Optional[ReplayStore] = None) -> None:
        """``mappings`` are the configured mappings of the indexes that have one (the rest are dynamic);
        ``replay`` is the store the pipeline records into (None: replay answers unavailable)."""
        self.percolator = percolator
        self.pipeline = pipeline
        self.mappings: Mapping[str, IndexMapping] = mappings or {}
        self.replay_store = replay
        self.registrations_log: Optional[Any] = None
        """With Kafka as the source, the group's registrations log (beater.kafka.registrations.RegistrationLog):
        a registration is answered only once it is in the log, so every Beater of the group gets it."""

    async def register(self, index: Any, query: Any, default_operator: Any = "or") -> Dict[str, Any]:
        """Register ``query`` on ``index`` (idempotent); answer the registration as JSON."""
        index = validate_index(index)
        registration = make_registration(index, query, _operator(default_operator), field_kinds(self.mappings, index))
        created = await self.percolator.register(registration)
        if created:
            log.info("registered {id} on {index}: {canonical}", id=registration.id, index=registration.index, canonical=registration.canonical_text)
        if self.registrations_log is not None:  # durable for the whole group before it is answered
            await self.registrations_log.publish(registration)  # nothing produced if the log has it already
        return registration.to_json()

    async def lookup(self, subscription_id: Any) -> Dict[str, Any]:
        """The registration with this id, as JSON; UnknownSubscription if there is none."""
        registration = None
        if isinstance(subscription_id, str) and subscription_id:
            registration = await self.percolator.lookup(subscription_id)
        if registration is None:
            raise UnknownSubscription(f"no subscription with id {subscription_id!r}", part=str(subscription_id))
        return registration.to_json()

    async def replay(self, subscription_id: Any, since: Any, limit: Any = MAX_LIMIT) -> Dict[str, Any]:
        """What the subscription matched after ``since`` (``{"seq": n}`` exclusive, ``{"time_ms": t}``
        inclusive), at most ``limit`` hits (capped at 1000):
        ``{"hits": [[seq, json bytes], ...], "gap": bool, "missed": int | None, "more": bool}``."""
        since_seq, since_ms = _since(since)
        count = _limit(limit)
        registration = await self.lookup(subscription_id)  # UnknownSubscription for ids never registered
        if self.replay_store is None:
            raise BackendUnavailable("this Beater keeps no replay store")
        page = self.replay_store.replay(registration["index"], registration["id"], since_seq, since_ms, count)
        return page.to_json()

    async def ingest(self, index: Any, parsed: ParsedBody) -> Dict[str, Any]:
        """Percolate and publish the good documents of ``parsed``; report counts and per-item errors."""
        index = validate_index(index)
        if parsed.errors:
            self.pipeline.metrics.rejected.labels(index).inc(len(parsed.errors))
        try:
            report = await self.pipeline.submit(index, parsed.documents)
        except NotAllDelivered as e:
            if e.delivered < len(parsed.positions):
                e.retry_from = parsed.positions[e.delivered]
            raise
        return {
            "index": index,
            "accepted": report.accepted,
            "rejected": len(parsed.errors),
            "deliveries": report.deliveries,
            "errors": [e.to_json() for e in parsed.errors],
        }

    async def ingest_documents(self, index: Any, documents: Sequence[Any]) -> Dict[str, Any]:
        """Ingest already-decoded documents (the WAMP ingest RPC)."""
        index = validate_index(index)
        parsed = ParsedBody()
        for i, value in enumerate(documents):
            document, error = unwrap(value, index)
            if document is not None:
                parsed.documents.append(document)
                parsed.positions.append({"item": i})
            else:
                parsed.errors.append(ItemError(error or "invalid document", item=i))
        return await self.ingest(index, parsed)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _since(value: Any) -> Tuple[Optional[int], Optional[int]]:
    """``(seq, None)`` or ``(None, time_ms)`` from a replay cursor; InvalidArgument for anything else."""
    if isinstance(value, Mapping) and len(value) == 1:
        (key, cursor), = value.items()
        if key in ("seq", "time_ms") and _whole(cursor) and 0 <= cursor < 2 ** 63:
            return (cursor, None) if key == "seq" else (None, cursor)
    raise EstromError('since must be {"seq": <integer >= 0>} or {"time_ms": <integer >= 0>}', part=repr(value)[:200])


def _limit(value: Any) -> int:
    """A replay page size: an integer >= 1, capped at MAX_LIMIT."""
    if value is None:
        return MAX_LIMIT
    if not _whole(value) or value < 1:
        raise EstromError("limit must be an integer >= 1", part=repr(value)[:200])
    return min(value, MAX_LIMIT)


def _operator(value: Any) -> str:
    if value is None:
        return "or"
    if not isinstance(value, str) or value.lower() not in ("or", "and"):
        raise InvalidQuery("default_operator must be 'or' or 'and'", part=str(value))
    return value.lower()


__all__ = ["Beater"]
