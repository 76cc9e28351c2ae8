"""The Beater's operations, independent of the protocol that calls them.

HTTP and WAMP front ends are thin adapters over :class:`Beater`: registering a
query, looking one up, ingesting documents and replaying what a subscription
matched all happen here once.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from beater.errors import (
    BackendUnavailable, EstromError, InvalidQuery, LimitExceeded, NotAllDelivered, TooManyRegistrations, UnknownSubscription,
)
from beater.ingest import ItemError, ParsedBody, unwrap
from beater.limits import DEFAULT as DEFAULT_LIMITS, Limits, Violation, check_document, encoded_size, too_large
from beater.lifecycle import DELETED, EXPIRED, Lifecycle
from beater.mappings import IndexMapping, field_kinds
from beater.percolator.base import Percolator
from beater.pipeline import Pipeline
from beater.registration import Registration, check_length, make_registration, validate_index
from beater.replay import MAX_LIMIT, ReplayStore
from router import contract

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
        self.lifecycle = Lifecycle(0.0)
        """Expiry of registrations without subscribers and their hit rates (``beater/lifecycle.py``; off until wired)."""
        self._removing: Dict[str, "Deferred[None]"] = {}  # ids being removed: a register waits for it, then creates anew
        self.limits: Limits = DEFAULT_LIMITS
        """Limits on ingest and registration (``beater/limits.py``; set from the settings by ``beater/app.py``)."""

    async def register(self, index: Any, query: Any, default_operator: Any = "or", persist: Any = False) -> Dict[str, Any]:
        """Register ``query`` on ``index`` (idempotent); answer the registration as JSON.  ``persist=True``
        exempts it from expiry (also when it was registered before without)."""
        index = validate_index(index)
        check_length(query, self.limits.max_query_chars)
        registration = make_registration(index, query, _operator(default_operator), field_kinds(self.mappings, index),
                                         max_clauses=self.limits.max_query_clauses)
        registration = dataclasses.replace(registration, persist=_flag(persist, "persist"), created_at=self.lifecycle.wall())
        if registration.id in self._removing:
            await self._removing[registration.id]
        await self._check_room(registration)
        created = await self.percolator.register(registration)
        if created:
            log.info("registered {id} on {index}: {canonical}", id=registration.id, index=registration.index, canonical=registration.canonical_text)
        else:  # answer what is stored (its created_at, its persist), upgraded to persist if asked
            known = self.lifecycle.tracked.get(registration.id)
            stored = None
            if known is not None and (known.persist or not registration.persist):  # no round trip to the backend
                registration = dataclasses.replace(registration, persist=known.persist, created_at=known.created_at)
            else:
                stored = await self.percolator.lookup(registration.id)
            if stored is not None:
                upgrade = registration.persist and not stored.persist
                registration = dataclasses.replace(stored, persist=stored.persist or registration.persist)
                if upgrade:
                    await self.percolator.update(registration)
                    log.info("registration {id} made persistent", id=registration.id)
        self.lifecycle.track(registration.id, registration.index, registration.persist, registration.created_at)
        if self.registrations_log is not None:  # durable for the whole group before it is answered
            await self.registrations_log.publish(registration)  # nothing produced if the log has it already
        return registration.to_json()

    async def _check_room(self, registration: Registration) -> None:
        """TooManyRegistrations (429) if ``registration`` is new and one more would pass
        ``max_registrations_per_index`` or ``max_registrations`` (registering a known query again always works).
        Registrations racing each other may pass a limit by a few: it bounds memory, it is no quota."""
        counts = getattr(self.percolator, "counts", None)
        if counts is None:
            return
        per_index, total = await counts(registration.index)
        limits = self.limits
        if per_index < limits.max_registrations_per_index and total < limits.max_registrations:
            return
        if await self.percolator.lookup(registration.id) is not None:
            return
        if per_index >= limits.max_registrations_per_index:
            raise TooManyRegistrations(
                f"index {registration.index!r} has {per_index} registrations, the limit (max_registrations_per_index)",
                limit="max_registrations_per_index", value=limits.max_registrations_per_index, part=registration.index)
        raise TooManyRegistrations(f"this Beater has {total} registrations, the limit (max_registrations)",
                                   limit="max_registrations", value=limits.max_registrations)

    async def adopt(self, registration: Registration) -> bool:
        """Register here what another Beater registered (the registrations log); True if it is new here."""
        created = await self.percolator.register(registration)
        if not created and registration.persist:
            stored = await self.percolator.lookup(registration.id)
            if stored is not None and not stored.persist:
                await self.percolator.update(dataclasses.replace(stored, persist=True))
        self.lifecycle.track(registration.id, registration.index, registration.persist, registration.created_at)
        return bool(created)

    async def delete(self, subscription_id: Any) -> Dict[str, Any]:
        """Remove a registration now (the admin API), for the whole group with Kafka; UnknownSubscription if absent."""
        registration = await self._stored(subscription_id)
        if self.registrations_log is not None:  # before removing here: what the log still has would come back at restart
            await self.registrations_log.tombstone(registration.id, DELETED)
        await self.remove_here(registration.id, DELETED)
        return {"id": registration.id, "index": registration.index, "deleted": True}

    async def expire(self, subscription_id: str) -> bool:
        """Remove a registration the lifecycle found expired; True if done here or handed to the log.

        With Kafka only the tombstone is produced: every Beater, this one included, removes it when
        it reads the tombstone, unless a subscriber came meanwhile (see :meth:`dropped_from_log`)."""
        if self.registrations_log is not None:
            await self.registrations_log.tombstone(subscription_id, EXPIRED)
            return True
        return await self.remove_here(subscription_id, EXPIRED)

    async def dropped_from_log(self, subscription_id: str, reason: str) -> None:
        """A tombstone in the registrations log: remove the registration here, except an expired one
        this Beater sees a subscriber for (it registered or subscribed while the expiry was decided):
        that one is written to the log again, so the group keeps it."""
        if reason != DELETED and self.lifecycle.in_use(subscription_id) and self.registrations_log is not None:
            registration = await self.percolator.lookup(subscription_id)
            if registration is not None:
                log.info("registration {id} expired elsewhere but has a subscriber here: kept", id=subscription_id)
                self.lifecycle.touch(subscription_id)
                await self.registrations_log.publish(registration, force=True)
                return
        await self.remove_here(subscription_id, reason)

    async def remove_here(self, subscription_id: str, reason: str) -> bool:
        """Unregister from this Beater's percolator and stop tracking; True if it was registered."""
        done: "Deferred[None]" = Deferred()
        self._removing[subscription_id] = done
        try:
            removed = await self.percolator.unregister(subscription_id)
            if removed or subscription_id in self.lifecycle.tracked:
                self.lifecycle.forget(subscription_id, reason)
                log.info("registration {id} {reason}", id=subscription_id, reason=reason)
            return bool(removed)
        finally:
            del self._removing[subscription_id]
            done.callback(None)

    async def _stored(self, subscription_id: Any) -> Registration:
        registration = None
        if isinstance(subscription_id, str) and subscription_id:
            registration = await self.percolator.lookup(subscription_id)
        if registration is None:
            raise UnknownSubscription(self._unknown_message(subscription_id), part=str(subscription_id))
        return registration

    def _unknown_message(self, subscription_id: Any) -> str:
        """Why an id is unknown, with what to do about it (HTTP tails and WAMP callers both read it)."""
        again = "register the query again (i=<index>&q=<query>, or estrom.register) and use the id it answers"
        gone = self.lifecycle.gone(subscription_id) if isinstance(subscription_id, str) else None
        if gone is not None and gone[0] == EXPIRED:
            return (f"subscription {subscription_id!r} expired: it had no subscriber for {self.lifecycle.grace_s:g} s "
                    f"(--registration-grace-s); {again}")
        if gone is not None:
            return f"subscription {subscription_id!r} was deleted by an administrator; {again}"
        return (f"no subscription with id {subscription_id!r}: it was never registered, or it expired without "
                f"subscribers or was deleted; {again}")

    async def lookup(self, subscription_id: Any) -> Dict[str, Any]:
        """The registration with this id, as JSON; UnknownSubscription (saying how to get it back) if there is none."""
        return (await self._stored(subscription_id)).to_json()

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

    async def highlight(self, subscription_id: Any, sources: Any) -> Dict[str, Any]:
        """``{"highlights": [{field: [term, ...]}, ...]}``: per source in order, what the subscription's query
        matched in it, as the percolator finds it (``{}`` for a source it does not match, or that is no object).
        UnknownSubscription for an unknown id; LimitExceeded past ``MAX_HIGHLIGHT_SOURCES`` sources."""
        if not isinstance(sources, (list, tuple)):
            raise EstromError("sources must be a list of document sources", part=type(sources).__name__)
        if len(sources) > contract.MAX_HIGHLIGHT_SOURCES:
            raise LimitExceeded(f"{len(sources)} sources in one call, more than {contract.MAX_HIGHLIGHT_SOURCES}",
                                limit="max_highlight_sources", value=contract.MAX_HIGHLIGHT_SOURCES)
        registration = await self._stored(subscription_id)
        at = [i for i, source in enumerate(sources) if isinstance(source, Mapping)]
        found = await self.percolator.highlight(registration, [sources[i] for i in at]) if at else []
        highlights: List[Dict[str, List[str]]] = [{} for _ in sources]
        for i, terms in zip(at, found):
            highlights[i] = terms
        return {"highlights": highlights}

    async def ingest(self, index: Any, parsed: ParsedBody) -> Dict[str, Any]:
        """Percolate and publish the good documents of ``parsed``; report counts and per-item errors."""
        index = validate_index(index)
        if parsed.errors:
            self.pipeline.metrics.rejected.labels(index).inc(len(parsed.errors))
            self.pipeline.metrics.document_errors.labels("invalid_document").inc(len(parsed.errors))
        try:
            report = await self.pipeline.submit(index, parsed.documents)
        except NotAllDelivered as e:
            if e.delivered < len(parsed.positions):
                e.retry_from = parsed.positions[e.delivered]
            raise
        # A document the percolator could not match is that document's error; its neighbours went on.
        errors = parsed.errors + [ItemError(message, line=parsed.positions[at].get("line"), item=parsed.positions[at].get("item"))
                                  for at, message in report.errors]
        if report.errors:
            self.pipeline.metrics.rejected.labels(index).inc(len(report.errors))
            errors.sort(key=lambda e: e.line if e.line is not None else (e.item if e.item is not None else -1))
        return {
            "index": index,
            "accepted": report.accepted - len(report.errors),
            "rejected": len(errors),
            "deliveries": report.deliveries,
            "errors": [e.to_json() for e in errors],
        }

    async def ingest_documents(self, index: Any, documents: Sequence[Any]) -> Dict[str, Any]:
        """Ingest already-decoded documents (the WAMP ingest RPC), each checked against the document limits
        (an error of its own); LimitExceeded if there are more than ``max_docs_per_request``."""
        index = validate_index(index)
        limits = self.limits
        if not isinstance(documents, (list, tuple)):
            raise EstromError("docs must be a list of documents", part=type(documents).__name__)
        if len(documents) > limits.max_docs_per_request:
            raise LimitExceeded(f"{len(documents)} documents in one call, more than {limits.max_docs_per_request} "
                                f"(max_docs_per_request)", limit="max_docs_per_request", value=limits.max_docs_per_request)
        parsed = ParsedBody()
        for i, value in enumerate(documents):
            document, error = unwrap(value, index)
            if document is None:
                parsed.errors.append(ItemError(error or "invalid document", item=i))
                continue
            # Already decoded: depth and fields first (encoding recurses), then its size as JSON, as its hits will be.
            problem = check_document(document.source, limits) or _unencodable(document.source, limits)
            if isinstance(problem, Violation):
                parsed.errors.append(ItemError.over(problem, item=i))
            elif problem is not None:
                parsed.errors.append(ItemError(problem, item=i))
            else:
                parsed.documents.append(document)
                parsed.positions.append({"item": i})
        return await self.ingest(index, parsed)


def _unencodable(source: Any, limits: Limits) -> Union[None, str, Violation]:
    """Why an already decoded document (its depth is checked) cannot be taken: over ``max_document_bytes``
    as JSON, or not JSON at all (bytes from a binary serializer, NaN); None if it can."""
    try:
        return too_large(encoded_size(source), limits)
    except (TypeError, ValueError) as e:
        return f"the document cannot be encoded as JSON: {e}"


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


def _flag(value: Any, name: str) -> bool:
    """A boolean argument: a bool, or (from HTTP) true/false/1/0/yes/no; InvalidArgument otherwise."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "false", "0", "no", ""):
        return value.strip().lower() in ("true", "1", "yes")
    raise EstromError(f"{name} must be true or false", part=f"{name}={value!r}"[:200])


def _operator(value: Any) -> str:
    if value is None:
        return "or"
    if not isinstance(value, str) or value.lower() not in ("or", "and"):
        raise InvalidQuery("default_operator must be 'or' or 'and'", part=str(value))
    return value.lower()


__all__ = ["Beater"]
