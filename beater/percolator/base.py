"""The one interface both percolator backends implement.

A percolator stores registrations and, given a micro-batch of documents of one
index, answers which registrations each document matches.  Everything is
asynchronous (Deferreds) so that a remote backend never blocks the reactor and
the embedded one can move work to a thread when that pays.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple

from twisted.internet.defer import Deferred

from beater.registration import Registration

Document = Mapping[str, Any]


class Percolator(Protocol):
    """Stores registered queries and matches documents against them."""

    name: str
    incremental: bool
    """True if matching a few documents at a time costs no more per document than a whole batch
    (an in-process backend): the pipeline then publishes the hits of each slice of a batch as soon as
    that slice is matched.  False for a remote backend, where every call pays a round trip."""

    def start(self) -> "Deferred[None]":
        """Load stored registrations (they survive restarts) and get ready to percolate."""

    def register(self, registration: Registration) -> "Deferred[bool]":
        """Store ``registration``; fire True if it is new, False if it was already there (idempotent)."""

    def lookup(self, subscription_id: str) -> "Deferred[Optional[Registration]]":
        """Fire the registration with this id, or None."""

    def unregister(self, subscription_id: str) -> "Deferred[bool]":
        """Stop matching and forget the registration; fire True if there was one (idempotent)."""

    def update(self, registration: Registration) -> "Deferred[bool]":
        """Rewrite the stored metadata (``persist``) of an existing registration; fire False if absent."""

    def registrations(self) -> "Deferred[List[Dict[str, Any]]]":
        """Fire the stored JSON (:meth:`Registration.to_json`) of every registration: the lifecycle
        tracks them from the start, without compiling anything again."""

    def percolate(self, index: str, documents: Sequence[Document]) -> "Deferred[List[List[str]]]":
        """Fire, for each document in order, the ids of the registrations of ``index`` it matches.

        Raise BackendUnavailable (or a ConnectionError) when the backend cannot answer now; anything else
        it raises is taken as the fault of a document in the batch (the pipeline finds which)."""

    def highlight(self, registration: Registration, documents: Sequence[Document]) -> "Deferred[List[Dict[str, List[str]]]]":
        """Fire, for each document in order, ``{field: [term, ...]}``: the terms of each field that the
        registration's query matched (analysed tokens of text fields, whole values of keyword fields;
        terms sorted and distinct), ``{}`` for a document it does not match.  Nothing is registered,
        stored or published; the documents are read as :meth:`percolate` reads them.  What a backend
        cannot highlight is left out (Elasticsearch highlights no number, date or boolean field)."""

    def counts(self, index: str) -> "Deferred[Tuple[int, int]]":
        """Fire ``(registrations of index, registrations in total)``: what the registration limits count."""

    def stop(self) -> "Deferred[None]":
        """Flush and release resources."""
