"""The synchronous core of the embedded percolator: registered queries per index, matched in batches."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Union

from beater.percolator.embedded.fields import FieldModel, analyse_document
from beater.percolator.embedded.matcher import Predicate, compile_query
from beater.percolator.embedded.presearcher import Presearcher, document_keys, extract_keys, is_exact, unmapped_fields
from beater.query.ir import Node

ModelListener = Callable[[str, Dict[str, Any]], None]


@dataclass
class _Query:
    id: str
    node: Node
    predicate: Optional[Predicate] = None  # compiled when first needed (queries the presearcher decides need none)


class _IndexState:
    """Queries, presearcher and field model of one index."""

    def __init__(self, properties: Optional[Mapping[str, Any]] = None) -> None:
        self.model = FieldModel(properties)
        self.queries: Dict[int, _Query] = {}
        self.numbers: Dict[str, int] = {}
        self.presearcher = Presearcher()
        self.watch: Dict[str, Set[int]] = {}
        self.exact: Set[int] = set()
        self.next_number = 0

    def index_query(self, number: int) -> None:
        query = self.queries[number]
        keys, _ = extract_keys(query.node, self.model.types)
        self.presearcher.add(number, keys)
        if keys is not None and is_exact(query.node, self.model.types):
            self.exact.add(number)
        else:
            self.exact.discard(number)
        for field in unmapped_fields(query.node, self.model.types):
            self.watch.setdefault(field, set()).add(number)

    def unwatch(self, number: int, node: Node) -> None:
        for field in unmapped_fields(node, self.model.types):
            numbers = self.watch.get(field)
            if numbers is not None:
                numbers.discard(number)
                if not numbers:
                    del self.watch[field]


class QueryIndex:
    """Registered queries of every index; ``match_batch`` answers which ones each document matches.

    Thread-safe (one lock): the embedded percolator may match in a worker thread
    while the reactor thread registers.
    """

    def __init__(self, on_model_change: Optional[ModelListener] = None) -> None:
        """``on_model_change(index, properties)`` is called when an index's field model grows."""
        self._states: Dict[str, _IndexState] = {}
        self._index_of: Dict[str, str] = {}
        self._lock = threading.RLock()
        self.on_model_change = on_model_change

    def __len__(self) -> int:
        return len(self._index_of)

    def __contains__(self, subscription_id: object) -> bool:
        return subscription_id in self._index_of

    def _state(self, index: str) -> _IndexState:
        state = self._states.get(index)
        if state is None:
            state = self._states[index] = _IndexState()
        return state

    def load_model(self, index: str, properties: Mapping[str, Any]) -> None:
        """Restore a persisted field model (before queries are added, at start)."""
        with self._lock:
            state = self._state(index)
            new = state.model.grow_with(properties)
            self._reextract(state, new)

    def model(self, index: str) -> FieldModel:
        """The field model of ``index``."""
        with self._lock:
            return self._state(index).model

    def add(self, registration_or_id: Any, index: Optional[str] = None, node: Optional[Node] = None) -> bool:
        """Add a query: ``add(registration)`` or ``add(id, index, node)``; False if the id is already there.

        The query is compiled first: UnsupportedQuery is raised and nothing is added
        if the embedded percolator cannot match it.
        """
        if index is None or node is None:
            registration = registration_or_id
            subscription_id, index, node = registration.id, registration.index, registration.canonical
        else:
            subscription_id = registration_or_id
        compile_query(node)  # refuse now what cannot be matched; compiled again when first needed
        with self._lock:
            if subscription_id in self._index_of:
                return False
            state = self._state(index)
            number = state.next_number
            state.next_number += 1
            state.queries[number] = _Query(subscription_id, node)
            state.numbers[subscription_id] = number
            self._index_of[subscription_id] = index
            state.index_query(number)
            return True

    def remove(self, subscription_id: str) -> bool:
        """Forget a query; False if it was not there."""
        with self._lock:
            index = self._index_of.pop(subscription_id, None)
            if index is None:
                return False
            state = self._states[index]
            number = state.numbers.pop(subscription_id)
            query = state.queries.pop(number)
            state.presearcher.remove(number)
            state.exact.discard(number)
            state.unwatch(number, query.node)
            return True

    def _reextract(self, state: _IndexState, new_fields: Sequence[str]) -> None:
        """Re-index the queries waiting for fields that are now mapped."""
        waiting: Set[int] = set()
        for field in new_fields:
            waiting |= state.watch.pop(field, set())
        for number in waiting:
            if number in state.queries:
                state.index_query(number)

    def grow_model(self, index: str, documents: Sequence[Mapping[str, Any]]) -> List[str]:
        """Map the fields ``documents`` show first; return them."""
        with self._lock:
            state = self._state(index)
            new = state.model.grow(documents)
            if new:
                self._reextract(state, new)
                if self.on_model_change is not None:
                    self.on_model_change(index, state.model.to_json())
            return new

    def match_batch(self, index: str, documents: Sequence[Mapping[str, Any]]) -> List[List[str]]:
        """For each document in order, the sorted ids of the queries of ``index`` it matches."""
        with self._lock:
            self.grow_model(index, documents)
            state = self._state(index)
            results: List[List[str]] = []
            queries = state.queries
            exact = state.exact
            for document in documents:
                doc = analyse_document(document, state.model)
                matched: List[str] = []
                for number in state.presearcher.candidates(document_keys(doc)):
                    query = queries[number]
                    if number in exact:
                        matched.append(query.id)
                        continue
                    predicate = query.predicate
                    if predicate is None:
                        predicate = query.predicate = compile_query(query.node)
                    if predicate(doc):
                        matched.append(query.id)
                matched.sort()
                results.append(matched)
            return results

    def stats(self) -> Dict[str, Any]:
        """Sizes, for metrics and tests."""
        with self._lock:
            return {
                index: {
                    "queries": len(state.queries),
                    "always_check": len(state.presearcher.always),
                    "keys": len(state.presearcher.postings),
                    "fields": len(state.model.types),
                }
                for index, state in self._states.items()
            }
