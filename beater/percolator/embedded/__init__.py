"""The embedded percolator: registered queries matched in-process, registrations kept in sqlite.

:class:`EmbeddedPercolator` implements :class:`beater.percolator.base.Percolator`
over the synchronous :class:`QueryIndex`.  Queries are compiled at registration
(what cannot be matched with Elasticsearch's semantics is refused there with
UnsupportedQuery); documents are matched in batches, each document against the
candidate queries the presearcher selects.  Given a reactor, batches are matched
in the reactor's thread pool so that large batches never stall it; without one
everything runs synchronously and the Deferreds have already fired.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import sqlite3
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, TypeVar

from twisted.internet import defer
from twisted.internet.defer import Deferred

from beater.percolator.embedded.fields import analyse_document
from beater.percolator.embedded.highlight import highlight
from beater.percolator.embedded.matcher import compile_query
from beater.percolator.embedded.query_index import QueryIndex
from beater.percolator.embedded.store import Store
from beater.errors import EstromError
from beater.mappings import IndexMapping, field_kinds
from beater.query import parse
from beater.query.ir import Node
from beater.registration import Registration, make_registration

__all__ = ["EmbeddedPercolator", "QueryIndex"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class StoreUnreadable(RuntimeError):
    """The sqlite file of registrations is corrupt or truncated."""


FREEZE_EVERY = 10_000  # live registrations between two gc.freeze() calls


class EmbeddedPercolator:
    """In-process percolator with Elasticsearch 7.17 percolator semantics."""

    name = "embedded"
    incremental = True

    def __init__(self, path: Path, reactor: Any = None, mappings: Optional[Mapping[str, IndexMapping]] = None) -> None:
        """``path`` is the sqlite file (created with its directories at start); ``reactor`` enables threads;
        ``mappings`` are the configured mappings of the indexes that have one."""
        self.path = Path(path)
        self.reactor = reactor
        self.mappings: Mapping[str, IndexMapping] = mappings or {}
        self.store: Optional[Store] = None
        self.index = QueryIndex(on_model_change=self._save_model, mappings=self.mappings)
        self.refused: List[str] = []
        self.remapped: Dict[str, str] = {}  # old id -> new id of registrations made under another mapping
        self._unfrozen = 0  # registrations made since the collector last froze what it holds

    def _mapping_tag(self, index: str) -> str:
        return field_kinds(self.mappings, index).tag

    def _save_model(self, index: str, properties: Any) -> None:
        if self.store is not None:
            self.store.save_model(index, properties, self._mapping_tag(index))

    def _call(self, function: Callable[..., T], *args: Any) -> "Deferred[T]":
        """Run ``function`` synchronously, its result or exception in an already fired Deferred."""
        return defer.maybeDeferred(function, *args)

    def _call_in_thread(self, function: Callable[..., T], *args: Any) -> "Deferred[T]":
        if self.reactor is None:
            return self._call(function, *args)
        from twisted.internet.threads import deferToThreadPool

        return deferToThreadPool(self.reactor, self.reactor.getThreadPool(), function, *args)

    # --- Percolator protocol ---------------------------------------------------------------------

    def start(self) -> "Deferred[None]":
        """Open the store and load its field models and registrations."""
        return self._call(self._start)

    def _start(self) -> None:
        if self.store is not None:
            return  # already started
        try:
            self.store = Store(self.path)
            models = self.store.models()
            stored = list(self.store.registrations())
        except sqlite3.DatabaseError as e:
            self.store = None
            # Never repair or recreate it here: what it still holds may be recoverable by hand.
            raise StoreUnreadable(
                f"the registration store {self.path} cannot be read ({e}); it was left untouched: "
                f"move it aside to start with no registrations, or restore a copy"
            ) from None
        for index, (properties, tag) in models.items():
            if tag == self._mapping_tag(index):
                self.index.load_model(index, properties)
            else:  # fields mapped under another configured mapping: start again from this one
                log.warning("index %s: its mapping changed; its field model starts again from the configured one", index)
                self._save_model(index, self.index.model(index).to_json())
        loaded = 0
        for subscription_id, _, data in stored:
            try:
                registration = Registration.from_json(data)
                if registration.mapping != self._mapping_tag(registration.index):
                    registration = self._remap(registration)
                self.index.add(registration)
                loaded += 1
            except Exception as e:  # a registration this version cannot match stays stored, unmatched
                self.refused.append(subscription_id)
                log.warning("stored registration %s cannot be loaded: %s", subscription_id, e)
        log.info("embedded percolator: %d registrations loaded from %s", loaded, self.path)
        # What was just loaded lives as long as the process. Left to the collector, its first full
        # pass after start walks all of it while documents wait: 1-3.5 s at 100,000 queries,
        # measured during the first few thousand documents. Frozen, it is never walked again.
        gc.collect()
        gc.freeze()

    def _remap(self, old: Registration) -> Registration:
        """``old`` made again under its index's current mapping, stored under its new id in place of the old.

        Under another mapping the same query can match other documents, so it gets
        another id; the query itself is kept.  Adding before removing means a crash
        in between leaves both, and the next start finishes the move.
        """
        assert self.store is not None
        new = make_registration(old.index, old.source, old.default_operator, field_kinds(self.mappings, old.index))
        new = dataclasses.replace(new, persist=old.persist, created_at=old.created_at)
        self.store.add(new.id, new.index, new.to_json())
        self.store.remove(old.id)
        self.remapped[old.id] = new.id
        log.warning("registration %s of index %s was made under another mapping: it is now %s", old.id, old.index, new.id)
        return new

    def _require_store(self) -> Store:
        if self.store is None:
            self._start()
        assert self.store is not None
        return self.store

    def register(self, registration: Registration) -> "Deferred[bool]":
        """Compile and store ``registration``; True if new; UnsupportedQuery (errback) if it cannot be matched."""
        return self._call(self._register, registration)

    def _register(self, registration: Registration) -> bool:
        store = self._require_store()
        if registration.id in self.index:
            return False
        added = self.index.add(registration)  # compiles first: UnsupportedQuery leaves nothing behind
        stored = store.add(registration.id, registration.index, registration.to_json())
        self._unfrozen += 1
        if self._unfrozen >= FREEZE_EVERY:
            # Registrations made while running live as long as those loaded at start, which are frozen
            # (see _start): these too are kept out of the collector's full passes. No collect first (a
            # pause of up to a second at 100,000 queries): what little cyclic garbage is pending stays.
            gc.freeze()
            self._unfrozen = 0
        return added or stored

    def lookup(self, subscription_id: str) -> "Deferred[Optional[Registration]]":
        """The stored registration with this id, or None."""
        return self._call(self._lookup, subscription_id)

    def _lookup(self, subscription_id: str) -> Optional[Registration]:
        data = self._require_store().get(subscription_id)
        return None if data is None else Registration.from_json(data)

    def unregister(self, subscription_id: str) -> "Deferred[bool]":
        """Stop matching and forget the registration with this id; True if there was one."""
        return self._call(self._unregister, subscription_id)

    def _unregister(self, subscription_id: str) -> bool:
        store = self._require_store()
        matched = self.index.remove(subscription_id)  # under the index's lock: a batch in a thread sees it or not
        stored = store.remove(subscription_id)
        return matched or stored

    def update(self, registration: Registration) -> "Deferred[bool]":
        """Rewrite what is stored of an existing registration (its metadata: ``persist``); False if absent."""
        return self._call(lambda: self._require_store().replace(registration.id, registration.to_json()))

    def registrations(self) -> "Deferred[List[Dict[str, Any]]]":
        """The stored JSON of every registration (also the ones this version cannot match), oldest first."""
        return self._call(lambda: [data for _, _, data in self._require_store().registrations()])

    def counts(self, index: str) -> "Deferred[Tuple[int, int]]":
        """(registrations of ``index``, registrations in total) being matched."""
        return self._call(self.index.counts, index)

    def percolate(self, index: str, documents: Sequence[Mapping[str, Any]]) -> "Deferred[List[List[str]]]":
        """For each document, the ids of the registrations of ``index`` it matches."""
        if not documents:
            return defer.succeed([])
        self._require_store()
        return self._call_in_thread(self.index.match_batch, index, list(documents))

    def highlight(self, registration: Registration, documents: Sequence[Mapping[str, Any]]) -> "Deferred[List[Dict[str, List[str]]]]":
        """Per document, what ``registration``'s query matched in each field (:mod:`.highlight`), ``{}`` where it
        does not match; in the thread pool, as batches are matched."""
        if not documents:
            return defer.succeed([])
        return self._call_in_thread(self._highlight, registration, list(documents))

    def _highlight(self, registration: Registration, documents: List[Mapping[str, Any]]) -> List[Dict[str, List[str]]]:
        # The index's field model as it is: highlighting maps no new field and persists nothing (the
        # documents highlighted were matched already, so their fields are mapped).
        model = self.index.model(registration.index)
        matches = compile_query(registration.canonical)
        written = self._as_written(registration)
        out: List[Dict[str, List[str]]] = []
        for document in documents:
            doc = analyse_document(document, model)
            out.append(highlight(written, doc) if matches(doc) else {})
        return out

    def _as_written(self, registration: Registration) -> Node:
        """The registration's query parsed as written, before canonicalisation, to highlight with.

        Canonicalisation may lowercase a text (``MisterSynergy``) where that changes no match: the text
        field matches either way.  It does change what a ``.keyword`` sub-field highlights, and
        Elasticsearch highlights the query as written.  The canonical tree if that does not compile."""
        try:
            tree = parse(registration.source, registration.default_operator, field_kinds(self.mappings, registration.index))
            compile_query(tree)
        except EstromError:
            return registration.canonical
        return tree

    def stop(self) -> "Deferred[None]":
        """Close the store (every write was already committed)."""
        return self._call(self._stop)

    def _stop(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None


