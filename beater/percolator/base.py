"""The one interface both percolator backends implement.

A percolator stores registrations and, given a micro-batch of documents of one
index, answers which registrations each document matches.  Everything is
asynchronous (Deferreds) so that a remote backend never blocks the reactor and
the embedded one can move work to a thread when that pays.
"""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Protocol, Sequence

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

    def percolate(self, index: str, documents: Sequence[Document]) -> "Deferred[List[List[str]]]":
        """Fire, for each document in order, the ids of the registrations of ``index`` it matches."""

    def stop(self) -> "Deferred[None]":
        """Flush and release resources."""
