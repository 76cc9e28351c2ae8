"""The synchronous core of the embedded percolator: registered queries per index, matched in batches.

In the shape of Lucene's Monitor, :class:`QueryIndex` is the front and the work sits in
modules of its own.  The match path of one document (:meth:`QueryIndex.match_batch`)::

    doc = analyse_document(document, model, scope)         # fields.py: its tokens, keywords, numbers, dates
    dk = document_keys(doc, any_field, wanted)             # keys.py: the presearch keys it holds
    presearcher.observe(dk)                                # presearcher.py: counts them, to re-key queries
    exact, found = presearcher.split_candidates(dk, doc)   # presearcher.py: postings, ranges, always-check
    matched = exact | {n for n in found if verify(forms[n], dk, doc)}   # verification.py
    return [ids[n] for n in sorted(matched)]               # registration order

With the native core (``_core.c``) the last three lines run there, for groups of up to 64
documents at once (``presearcher.native_batch`` / ``native_answer``, forms as :mod:`.programs`):
a query that is a candidate of several documents of a group is loaded, and if its form is keys
alone verified, once for all of them.  It calls back into Python only for forms without a
native program.  A query whose verification raises is skipped for that one document
(:meth:`QueryIndex._verified_one_by_one`).

Registration (:meth:`QueryIndex.add`) is the other half.  The query is compiled once
(:mod:`.matcher`: what cannot be matched faithfully is refused); its keys are extracted
(:mod:`.extraction`) and it is indexed under them, under a range it requires
(:mod:`.ranges`), or on the always-check list; unless holding a key is the whole match,
its verification form is built (:mod:`.verification`).  As documents are counted,
queries are re-keyed under their rarest clause (:meth:`_IndexState.reweight`), and
queries naming fields not mapped yet are re-indexed once they are.
"""

from __future__ import annotations

import gc
import logging
import threading
from contextlib import contextmanager
from collections import Counter
from typing import Any, Callable, Dict, FrozenSet, Iterable, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, cast

from beater.mappings import IndexMapping
from beater.percolator.embedded.extraction import Extractor, extract_keys, is_exact, unmapped_fields
from beater.percolator.embedded.fields import FieldModel, FieldScope, analyse_document
from beater.percolator.embedded.keys import document_keys
from beater.percolator.embedded.matcher import compile_query
from beater.percolator.embedded.presearcher import NATIVE_BATCH, Presearcher
from beater.percolator.embedded.ranges import range_clause
from beater.percolator.embedded.verification import BoolForm, Form, compact_form, keyed_fields, shared_kinds, verify
from beater.query.ir import Node
from beater.query.reads import fields_read

ModelListener = Callable[[str, Dict[str, Any]], None]
log = logging.getLogger(__name__)
REWEIGHT_STEP = 500  # queries re-indexed after each document while statistics changed


def group_size(queries: int) -> int:
    """How many documents the native core matches together, for an index of ``queries`` queries.

    Sharing candidates pays once documents have thousands of them: at 100,000 queries a group of
    64 matched 12% faster than one of 16 and 40% faster than one at a time.  Below that, 64
    analyses outgrow the L2 cache and the allocator's misses cost more than sharing saves (at
    1,000 and 10,000 queries 64 was 20-30% slower than 16, and 16 as fast as 8 or 1)."""
    return NATIVE_BATCH if queries >= 50_000 else 16


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector held off while a group of documents is analysed and matched.

    A group's analyses live together (a document's alone died before the collector ran): ~300
    containers each pushed the collector past its thresholds a hundred times a pass, and its full
    passes walk every object not frozen (1 of 3 s at 100,000 queries).  Nothing a match makes is
    cyclic garbage, so nothing is left for it; it runs as before once the group is done."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class QueryIndex:
    """Registered queries of every index; ``match_batch`` answers which ones each document matches.

    Thread-safe (one lock): the embedded percolator may match in a worker thread
    while the reactor thread registers.
    """

    def __init__(self, on_model_change: Optional[ModelListener] = None, mappings: Optional[Mapping[str, IndexMapping]] = None) -> None:
        """``on_model_change(index, properties)`` is called when an index's field model grows;
        ``mappings`` are the configured mappings the field models of their indexes start from."""
        self.mappings: Mapping[str, IndexMapping] = mappings or {}
        self._states: Dict[str, _IndexState] = {}
        self._index_of: Dict[str, str] = {}
        self._lock = threading.RLock()
        self.on_model_change = on_model_change
        self._faulty: Set[Optional[str]] = set()  # ids of queries whose matcher raised (logged once each)

    def match_batch(self, index: str, documents: Sequence[Mapping[str, Any]]) -> List[List[str]]:
        """For each document in order, the ids of the queries of ``index`` it matches, in registration order.

        The lock is held per document (and to grow the field model), not for the whole
        batch, so that registrations wait for one document at most; with the native core,
        per group of up to NATIVE_BATCH documents, which it matches together.
        """
        lock = self._lock
        with lock:
            self.grow_model(index, documents)
            state = self._state(index)
            native = state.presearcher.core is not None
            model = state.model
            version = state.scope_version
            scope = state.scope()
            wanted = state.wanted_keys
        if native:
            return self._match_native(state, index, documents)
        results: List[List[str]] = []
        for document in documents:
            doc = analyse_document(document, model, scope)
            dk = document_keys(doc, scope is None, wanted)
            with lock:
                presearcher = state.presearcher
                presearcher.observe(dk)
                state.reweight()
                if state.scope_version != version:
                    # A query registered meanwhile, or re-keyed just now, may read fields (or use
                    # kinds of keys) this document was analysed without.
                    version = state.scope_version
                    scope = state.scope()
                    wanted = state.wanted_keys
                    doc = analyse_document(document, model, scope)
                    dk = document_keys(doc, scope is None, wanted)
                try:
                    results.append(self._verified(state, dk, doc))
                except Exception:  # a query's matcher raised on this document: verify again, one query at a time
                    results.append(self._verified_one_by_one(index, state, dk, doc))
        return results

    def _match_native(self, state: _IndexState, index: str, documents: Sequence[Mapping[str, Any]]) -> List[List[str]]:
        """:meth:`match_batch` with the native core: documents analysed, counted and matched in groups."""
        lock = self._lock
        results: List[List[str]] = []
        size = group_size(len(state.queries))
        for start in range(0, len(documents), size):
            group = documents[start : start + size]
            with lock:
                model, version, scope, wanted = state.model, state.scope_version, state.scope(), state.wanted_keys
            with collector_paused():
                docs = [analyse_document(document, model, scope) for document in group]
                dks = [document_keys(doc, scope is None, wanted) for doc in docs]
                with lock:
                    if state.scope_version != version:
                        # A query registered meanwhile may read fields (or use kinds of keys) these
                        # documents were analysed without.
                        scope, wanted = state.scope(), state.wanted_keys
                        docs = [analyse_document(document, model, scope) for document in group]
                        dks = [document_keys(doc, scope is None, wanted) for doc in docs]
                    presearcher = state.presearcher
                    for dk in dks:
                        presearcher.observe(dk)
                    results.extend(self._verified_group(state, index, dks, docs))
                    del docs  # before the collector runs again: it would walk them all
                    # Re-keyed after the group is matched, not before each document: the core counts
                    # the keys of a group as it matches it, and re-keying reads those counts.
                    for _ in dks:
                        state.reweight()
                    del dks
        return results

    def _verified_group(self, state: _IndexState, index: str, dks: List[Set[str]], docs: List[Any]) -> List[List[str]]:
        """:meth:`_verified` for a group of documents matched together by the native core."""
        presearcher = state.presearcher
        try:
            lists = presearcher.native_batch(dks, docs)
        except Exception:  # a query's program raised on one of them: one document at a time, to find which
            # (the keys of the documents before it are counted twice then: frequencies are estimates)
            return [self._verified_or_one_by_one(state, index, dk, doc) for dk, doc in zip(dks, docs)]
        results: List[List[str]] = []
        for position, (to_verify, dk, doc) in enumerate(zip(lists, dks, docs)):
            try:
                numbers = self._python_verified(state, to_verify, dk, doc)
            except Exception:
                results.append(self._verified_one_by_one(index, state, dk, doc))
                continue
            results.append(presearcher.native_answer(numbers, state.ids, position))
        return results

    def _verified_or_one_by_one(self, state: _IndexState, index: str, dk: Set[str], doc: Any) -> List[str]:
        try:
            return self._verified(state, dk, doc)
        except Exception:
            return self._verified_one_by_one(index, state, dk, doc)

    @staticmethod
    def _python_verified(state: _IndexState, found: Iterable[int], dk: Set[str], doc: Any) -> List[int]:
        """Those of the candidates ``found`` the document matches (forms verified in Python)."""
        numbers: List[int] = []
        append = numbers.append
        issuperset = dk.issuperset
        isdisjoint = dk.isdisjoint
        forms = state.forms
        for number in found:
            form = forms[number]
            t = type(form)
            if t is tuple:
                if issuperset(form[0]) and isdisjoint(form[1]):
                    for any_of in form[2]:
                        if any_of.isdisjoint(dk):
                            break
                    else:
                        append(number)
            elif t is BoolForm:
                if form.check(dk, doc):
                    append(number)
            elif verify(form, dk, doc):
                append(number)
        return numbers

    def _verified(self, state: _IndexState, dk: Set[str], doc: Any) -> List[str]:
        """The ids of the queries of ``state`` the analysed document matches, in registration order (the hot path)."""
        presearcher = state.presearcher
        ids = state.ids
        if presearcher.core is not None:
            return presearcher.native_answer(self._python_verified(state, presearcher.native_candidates(dk, doc), dk, doc), ids)
        exact, found = presearcher.split_candidates(dk, doc)
        numbers = list(exact)
        numbers.extend(self._python_verified(state, found, dk, doc))
        numbers.sort()  # numbers, not ids: ints compare faster
        # a removed query (id None) is no candidate any more, so every id here is a str
        return cast(List[str], [ids[number] for number in numbers])

    def _verified_one_by_one(self, index: str, state: _IndexState, dk: Set[str], doc: Any) -> List[str]:
        """As :meth:`_verified`, without the native core and each candidate verified on its own: a query whose
        matcher raises is skipped for this document (and logged once), the others still match it."""
        exact, found = state.presearcher.split_candidates(dk, doc)
        numbers = set(exact)
        for number in found:
            if number in numbers:
                continue
            form = state.forms[number]
            try:
                matched = verify(form, dk, doc)
            except Exception as e:
                subscription_id = state.ids[number]
                if subscription_id not in self._faulty:
                    self._faulty.add(subscription_id)
                    log.warning("query %s of index %s raised while matching a document (%r); it is skipped for "
                                "the documents it raises on", subscription_id, index, e)
                continue
            if matched:
                numbers.add(number)
        return [sid for sid in (state.ids[number] for number in sorted(numbers)) if sid is not None]

    def __len__(self) -> int:
        return len(self._index_of)

    def __contains__(self, subscription_id: object) -> bool:
        return subscription_id in self._index_of

    def _state(self, index: str) -> _IndexState:
        state = self._states.get(index)
        if state is None:
            configured = self.mappings.get(index)
            if configured is None:
                state = self._states[index] = _IndexState()
            else:
                state = self._states[index] = _IndexState(configured.properties, configured.dynamic)
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
            query = state.queries[number] = _Query(subscription_id, node)
            state.read_by(query, 1)
            state.ids.append(subscription_id)
            state.forms.append(None)
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
            state.read_by(query, -1)
            state.ids[number] = None
            state.forms[number] = None
            state.presearcher.set_form(number, None)
            state.presearcher.remove(number)
            state.settled.discard(number)
            state.alternatives.pop(number, None)
            state.form_keyed.pop(number, None)
            state.note_keyed_fields(number, frozenset())
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

    def counts(self, index: str) -> Tuple[int, int]:
        """(queries of ``index``, queries in total)."""
        with self._lock:
            state = self._states.get(index)
            return (0 if state is None else len(state.queries)), len(self._index_of)

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


class _IndexState:
    """Queries, presearcher and field model of one index."""

    def __init__(self, properties: Optional[Mapping[str, Any]] = None, dynamic: bool = True) -> None:
        self.model = FieldModel(properties, dynamic)
        self.queries: Dict[int, _Query] = {}
        self.numbers: Dict[str, int] = {}
        self.presearcher = Presearcher()
        self.watch: Dict[str, Set[int]] = {}
        self.next_number = 0
        self.ids: List[Optional[str]] = []  # by query number (None once removed)
        self.forms: List[Form] = []  # by query number: how a candidate is verified
        self.pending: List[int] = []  # queries to re-index under rarer keys (see reweight)
        self.settled: Set[int] = set()  # queries whose keys no frequency can change (no choice to make)
        # query -> its keys to choose among (Extractor.alternatives), as tuples in the sets' order: a third
        # of the memory of frozensets, and a cost summed in the same order
        self.alternatives: Dict[int, Tuple[Tuple[str, ...], ...]] = {}
        self.keyed: Dict[int, FrozenSet[Tuple[str, str]]] = {}  # query -> the (kind, field) of the keys it uses
        self.form_keyed: Dict[int, FrozenSet[Tuple[str, str]]] = {}  # query -> those its form checks (re-keying keeps the form)
        self.keyed_counts: Counter[Tuple[str, str]] = Counter()
        self.wanted_keys: FrozenSet[Tuple[str, str]] = frozenset()  # the (kind, field) of the keys documents must make
        self.reads: Counter[str] = Counter()  # field -> queries reading it
        self.reading_every_field = 0  # queries reading ANY_FIELD
        self._scope: Optional[FieldScope] = None
        self.scope_version = 0

    def read_by(self, query: _Query, delta: int) -> None:
        """Count ``query``'s fields in (delta 1) or out (delta -1) of what documents must show."""
        if query.reads is None:
            self.reading_every_field += delta
        else:
            for name in query.reads:
                self.reads[name] += delta
                if self.reads[name] <= 0:
                    del self.reads[name]
        self._scope = None
        self.scope_version += 1

    def scope(self) -> Optional[FieldScope]:
        """The fields the queries read, None if some query reads every field."""
        if self.reading_every_field:
            return None
        if self._scope is None:
            self._scope = FieldScope.of(self.reads)
        return self._scope

    def note_keyed_fields(self, number: int, fields: FrozenSet[Tuple[str, str]]) -> None:
        """Record the (kind, field) of the keys query ``number`` uses (empty once it is gone)."""
        old = self.keyed.pop(number, frozenset())
        if fields:
            self.keyed[number] = fields
        if old == fields:
            return
        counts = self.keyed_counts
        counts.subtract(old)
        counts.update(fields)
        if any(counts[f] == 1 for f in fields - old) or any(counts[f] <= 0 for f in old - fields):
            self.wanted_keys = frozenset(f for f, n in counts.items() if n > 0)
            self.scope_version += 1  # documents being matched need these keys: analyse them again

    def note_keys(self, number: int, keys: Optional[FrozenSet[str]], kinds: Optional[FrozenSet[Tuple[str, str]]] = None) -> None:
        """Record the kinds of keys query ``number`` uses now that it is indexed under ``keys``
        (``kinds``: ``keyed_fields(keys, None)`` if known)."""
        if kinds is None:
            kinds = keyed_fields(keys, None)  # a shared set already
        form_kinds = self.form_keyed.get(number)
        if form_kinds and not form_kinds <= kinds:
            kinds = shared_kinds(kinds | form_kinds)
        self.note_keyed_fields(number, kinds)

    def index_query(self, number: int) -> None:
        query = self.queries[number]
        types = self.model.types
        extractor = Extractor(types, self.presearcher.weight)
        keys = extractor.extract(query.node)
        self.presearcher.count_keys(extractor.seen)
        exact = keys is not None and is_exact(query.node, types)
        rng = range_clause(query.node, types) if keys is None else None
        if rng is not None:
            exact = rng[3]
            self.presearcher.add_range(number, *rng)
        else:
            self.presearcher.add(number, keys, exact)
        if rng is None and not extractor.chose and range_clause(query.node, types) is None:
            self.settled.add(number)
        else:
            self.settled.discard(number)
        if extractor.alternatives is not None:
            self.alternatives[number] = tuple(tuple(clause) for clause in extractor.alternatives)
        else:
            self.alternatives.pop(number, None)
        self.forms[number] = None if exact else compact_form(query.node, types)
        self.presearcher.set_form(number, self.forms[number])
        form_fields = keyed_fields(None, self.forms[number])
        if form_fields:
            self.form_keyed[number] = form_fields
        else:
            self.form_keyed.pop(number, None)
        self.note_keys(number, keys)
        for field in unmapped_fields(query.node, types):
            self.watch.setdefault(field, set()).add(number)

    def reweight(self, budget: int = REWEIGHT_STEP) -> None:
        """Re-index up to ``budget`` queries under keys the documents showed to be common, under their
        rarest clause now (a little after each document, so that registrations never wait long)."""
        presearcher = self.presearcher
        pending = self.pending
        if not pending:
            pending.extend(reversed(presearcher.to_reweight()))
            if not pending:
                return
        types = self.model.types
        # The frequencies hold still during this call and clauses recur: the Python loop costs each
        # clause once (the first pass after a cold start re-keys ~30,000 of 100,000 queries here).
        costs: Dict[Tuple[str, ...], float] = {}
        kinds_of: Dict[Tuple[str, ...], FrozenSet[Tuple[str, str]]] = {}
        cheapest, too_common = presearcher.cheapest, presearcher.too_common
        queries, alternatives_of, settled = self.queries, self.alternatives, self.settled
        exact, ranged, indexed = presearcher.exact, presearcher.ranged, presearcher.indexed

        for _ in range(min(budget, len(pending))):
            number = pending.pop()
            query = queries.get(number)
            if query is None or number in exact or number in ranged or number in settled:
                continue
            alternatives = alternatives_of.get(number)
            keys: Optional[FrozenSet[str]]
            clause: Optional[Tuple[str, ...]] = None
            if alternatives is not None:
                clause = cheapest(alternatives, costs)
                keys = frozenset(clause)
            else:
                keys, _ = extract_keys(query.node, types, presearcher.weight)
            if keys is not None and too_common(keys):
                rng = range_clause(query.node, types)
                if rng is not None:  # a required range on a long field is likely rarer than a key most documents hold
                    presearcher.add_range(number, rng[0], rng[1], rng[2], False)
                    continue
            if keys != indexed.get(number):
                presearcher.add(number, keys, False)
                kinds: Optional[FrozenSet[Tuple[str, str]]] = None
                if clause is not None:  # clauses recur: their kinds of keys are made once a call
                    kinds = kinds_of.get(clause)
                    if kinds is None:
                        kinds = kinds_of[clause] = keyed_fields(keys, None)
                self.note_keys(number, keys, kinds)

    def unwatch(self, number: int, node: Node) -> None:
        for field in unmapped_fields(node, self.model.types):
            numbers = self.watch.get(field)
            if numbers is not None:
                numbers.discard(number)
                if not numbers:
                    del self.watch[field]


class _Query:
    """A registered query: its id, its tree, and how a candidate document is verified."""

    __slots__ = ("id", "node", "reads")

    def __init__(self, id: str, node: Node) -> None:
        self.id = id
        self.node = node
        self.reads: Optional[FrozenSet[str]] = fields_read(node)  # None: every field
