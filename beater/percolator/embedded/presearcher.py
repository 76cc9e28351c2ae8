"""Candidate selection in the manner of Lucene's Monitor: match a document only against queries it could match.

The :class:`Presearcher` of an index holds postings from keys (:mod:`.keys`) to the
numbers of the queries indexed under them (:mod:`.extraction` says which keys), the
ranges of queries indexed under a range of a long field (:mod:`.ranges`), and the
always-check list of queries that have no key set.  A document's candidates are the
union of the postings of its keys, of the ranges holding its values and of the
always-check list, so the cost per document grows with the queries that share its
terms, not with all queries.  Queries that need no verification (``exact``) have
postings of their own: a document's exact matches are a union of lists.

It also counts how often documents hold each key (:meth:`Presearcher.observe`) so
that a conjunction can be indexed under its rarest clause, and names the queries to
re-key when a key turns out common (:meth:`Presearcher.to_reweight`).

With the optional native module (``_core.c``, built at install where a C compiler
is available) the postings are mirrored over integer key ids and each verified
query's form is compiled into a program there (:func:`.programs.native_program`): a
document's candidates are collected and verified natively
(:meth:`Presearcher.native_candidates`), calling back into Python only for the forms
without a native counterpart.  Both paths give the same answers.
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Optional, Set, Tuple

from beater.percolator.embedded.fields import AnalysedDoc
from beater.percolator.embedded.keys import ANY, SEP, Keys, prior_weight
from beater.percolator.embedded.programs import native_program
from beater.percolator.embedded.ranges import RangeIndex

# Read through this module by tests/unit/test_embedded_native.py (``presearcher.RangeForm`` and the
# like), which pins the native core's programs: re-exported so that the split into modules changed
# no test body.  Their homes are .programs and .verification.
from beater.percolator.embedded.programs import P_ANY_PHRASE, P_PATTERN  # noqa: F401
from beater.percolator.embedded.verification import PATTERN_GLOB, PATTERN_PREFIX, PhraseForm, RangeForm  # noqa: F401

try:
    from beater.percolator.embedded._core import Core
except ImportError:  # not built (no C compiler at install): the pure-Python loop does the same
    Core = None

NATIVE = Core is not None
"""Whether the native candidate loop is available."""

NATIVE_BATCH = 64
"""Most documents the native core matches at once (:meth:`Presearcher.native_batch`: a bit each in a word)."""

REWEIGHT_MIN_DOCS = 50  # document frequencies are trusted from this many documents on
COMMON = 0.02  # a key held by more than this fraction of the documents is common
RANGE_RATHER = 0.25  # a query indexed under keys held this often is indexed under a required range instead
DECAY_DOCS = 1_000_000  # past this many documents, counts are halved and the rarest forgotten


class Presearcher:
    """Postings from keys to query numbers, and the always-check list.

    Queries that need no verification (``exact``) have postings of their own, so that a
    document's exact matches are a union of lists.  The presearcher counts in how many
    percolated documents each key occurs (``observe``) so that a conjunction can be indexed
    under its rarest clause; :meth:`to_reweight` names the queries indexed under keys that
    turned out common.
    """

    def __init__(self, native: bool = NATIVE) -> None:
        """``native``: also keep postings, ranges and verification programs in the native core (if built)."""
        self.core = Core() if native and Core is not None else None
        self.key_ids: Dict[str, int] = {}  # key -> its integer id in the native core
        self.postings: Dict[str, List[int]] = {}
        self.exact_postings: Dict[str, List[int]] = {}
        self.always: Set[int] = set()
        self.indexed: Dict[int, Keys] = {}
        self.exact: Set[int] = set()
        self.ranges: Dict[str, RangeIndex] = {}
        self.ranged: Dict[int, str] = {}
        self.df: Counter = Counter()
        self.counted: Set[str] = set()  # the keys whose frequencies are counted: those of registered queries
        self.docs = 0
        self.next_reweight = REWEIGHT_MIN_DOCS
        self.common: Set[str] = set()  # keys found common at the last reweighting

    def weight(self, k: str) -> float:
        """Estimated number of documents (so far) holding key ``k``."""
        if self.docs < REWEIGHT_MIN_DOCS:
            return prior_weight(k)
        return self.frequency(k) + prior_weight(k)

    def frequency(self, k: str) -> int:
        """How many of the documents observed held key ``k`` (0 unless it is counted)."""
        if self.core is None:
            return self.df.get(k, 0)
        key_id = self.key_ids.get(k)
        return 0 if key_id is None else self.core.df(key_id)

    def _frequencies(self) -> Callable[[str, int], int]:
        """``frequency`` as a ``get(k, 0)`` for the loops that read many (the native core's counts, or ``df``)."""
        if self.core is None:
            return self.df.get
        ids, df = self.key_ids.get, self.core.df

        def get(k: str, default: int = 0) -> int:
            key_id = ids(k)
            return default if key_id is None else df(key_id)

        return get

    def add(self, number: int, keys: Keys, exact: bool = False) -> None:
        """Index query ``number`` under ``keys`` (None: always check; empty: never); ``exact``: holding a key is a match."""
        self.remove(number)
        self.indexed[number] = keys
        if keys is ANY:
            self.always.add(number)
            return
        if exact:
            self.exact.add(number)
            postings = self.exact_postings
        else:
            postings = self.postings
        for k in keys:
            posting = postings.get(k)
            if posting is None:
                postings[sys.intern(k)] = [number]
            else:
                posting.append(number)
        if self.core is not None:
            for k in keys:
                self.core.add_posting(self._key_id(k), number, exact)

    def _key_id(self, k: str) -> int:
        key_id = self.key_ids.get(k)
        if key_id is None:
            key_id = self.key_ids[sys.intern(k)] = len(self.key_ids)
        return key_id

    def set_form(self, number: int, form: Any) -> None:
        """Tell the native core how query ``number`` is verified (``None``: it is not)."""
        if self.core is not None:
            self.core.set_program(number, None if form is None else native_program(form, self._key_id))

    def add_range(self, number: int, field: str, low: int, high: int, exact: bool) -> None:
        """Index query ``number`` under a range of long field ``field`` (``exact``: a value in it is a match)."""
        self.remove(number)
        self.ranged[number] = field
        ranges = self.ranges.get(field)
        if ranges is None:
            ranges = self.ranges[field] = RangeIndex()
        ranges.add(number, low, high, exact)
        if self.core is not None:
            self.core.add_range(field, number, low, high, exact)

    def remove(self, number: int) -> None:
        """Forget query ``number``."""
        field = self.ranged.pop(number, None)
        if field is not None:
            self.ranges[field].remove(number)
            if self.core is not None:
                self.core.remove_range(field, number)
            return
        if number not in self.indexed:
            return
        keys = self.indexed.pop(number)
        if keys is ANY:
            self.always.discard(number)
            return
        if number in self.exact:
            self.exact.discard(number)
            postings = self.exact_postings
        else:
            postings = self.postings
        for k in keys:
            posting = postings.get(k)
            if posting is not None:
                posting.remove(number)
                if not posting:
                    del postings[k]
            if self.core is not None:
                self.core.remove_posting(self.key_ids[k], number, postings is self.exact_postings)

    def count_keys(self, keys: Iterable[str]) -> None:
        """Count from now on how many documents hold each of ``keys``."""
        if self.core is not None:  # counted in the core, as it looks the document's keys up (see observe)
            for k in keys:
                self.core.count_key(self._key_id(k))
        else:
            self.counted.update(keys)

    def observe(self, doc_keys: Set[str]) -> None:
        """Count the keys of one percolated document (those queries use).

        With the native core the keys are counted by its ``candidates`` (as it looks each up; the
        intersection with ~100,000 counted keys and the Counter update were ~30 µs a document at
        100,000 queries): a document's counts arrive as it is matched, just after this."""
        if self.core is None:
            self.df.update(doc_keys & self.counted)
        self.docs += 1
        if self.docs >= DECAY_DOCS:  # halve the counts now and then: frequencies follow the recent documents
            if self.core is not None:
                self.core.halve_df()
            else:
                self.df = Counter({k: c // 2 for k, c in self.df.items() if c >= 2})
            self.docs //= 2
            self.next_reweight = min(self.next_reweight, self.docs * 4)

    def cost(self, keys: Iterable[str]) -> float:
        """Expected number of documents holding one of ``keys`` (as Extractor.cost with these weights)."""
        if self.docs < REWEIGHT_MIN_DOCS:
            return sum(prior_weight(k) for k in keys)
        # self.weight inlined, a loop rather than sum(): re-keying calls this for every clause of ~30,000 queries
        get = self._frequencies()
        total = 0.0
        for k in keys:
            total += get(k, 0) + 1.0 / (2 + len(k) - k.find(SEP))
        return total

    def cheapest(self, alternatives: Tuple[Tuple[str, ...], ...], memo: Optional[Dict[Tuple[str, ...], float]] = None) -> Tuple[str, ...]:
        """The clause of ``alternatives`` the fewest documents are expected to hold (by :meth:`cost`,
        the first of equals); ``memo`` keeps the costs of the Python loop while frequencies hold still."""
        if len(alternatives) == 1:
            return alternatives[0]
        if self.core is not None and self.docs >= REWEIGHT_MIN_DOCS:
            return alternatives[self.core.cheapest(alternatives, self.key_ids)]
        if memo is None:
            return min(alternatives, key=self.cost)
        cost_of = self.cost

        def cost(keys: Tuple[str, ...]) -> float:
            c = memo.get(keys)
            if c is None:
                c = memo[keys] = cost_of(keys)
            return c

        return min(alternatives, key=cost)

    def too_common(self, keys: FrozenSet[str]) -> bool:
        """Whether documents hold one of ``keys`` so often that a range would select better."""
        if self.docs < REWEIGHT_MIN_DOCS:
            return False
        if self.core is not None:
            held: int = self.core.held(keys, self.key_ids)
            return held > self.docs * RANGE_RATHER
        get = self._frequencies()
        held = 0
        for k in keys:
            held += get(k, 0)
        return held > self.docs * RANGE_RATHER

    def to_reweight(self) -> List[int]:
        """At growing intervals: the verified queries indexed under keys that have become common.

        Keys already common at the previous interval are left out: their queries were
        reconsidered then, and every query indexed since was keyed with the observed
        frequencies.  (Reconsidering them again re-extracted ~25,000 queries at 100k
        stored ones to move ~6,000.)
        """
        if self.docs < self.next_reweight:
            return []
        self.next_reweight = self.docs * 4
        limit = self.docs * COMMON
        get = self._frequencies()
        common = {k for k in self.postings if get(k, 0) > limit}
        numbers: Set[int] = set()
        for k in common - self.common:
            numbers.update(self.postings[k])
        self.common = common
        return sorted(numbers)

    def candidates(self, doc_keys: Iterable[str], doc: Optional[AnalysedDoc] = None) -> Set[int]:
        """Query numbers a document with these keys could match (verified or not)."""
        exact, found = self.split_candidates(doc_keys, doc)
        return exact | found

    def native_candidates(self, doc_keys: Set[str], doc: AnalysedDoc) -> List[int]:
        """With the native core: start a document and return the candidates Python must verify.

        The core selects the candidates (postings, ranges, the always-check list), verifies
        them and keeps the matches for :meth:`native_answer`; only queries without a native
        program come back here (none, normally).  A :meth:`native_batch` of one.
        """
        return self.native_batch([doc_keys], [doc])[0]

    def native_batch(self, doc_keys: List[Set[str]], docs: List[AnalysedDoc]) -> List[List[int]]:
        """As :meth:`native_candidates` for up to :data:`NATIVE_BATCH` documents at once: per document,
        the candidates Python must verify.  A query that is a candidate of several of them is loaded,
        and verified if its form is keys alone, once for all; :meth:`native_answer` then answers
        each document by its position."""
        core = self.core
        assert core is not None
        lists: List[List[int]] = core.batch(doc_keys, self.key_ids, docs)
        if self.always:
            for position, to_verify in enumerate(lists):
                to_verify.extend(core.check(self.always, position))
        return lists

    def _range_candidates(self, doc: AnalysedDoc, exact: Set[int], found: Set[int]) -> None:
        """Add the queries indexed under a range holding one of the document's values."""
        numbers = doc.numbers
        for field, ranges in self.ranges.items():
            values = numbers.get(field)
            if values:
                ranges.find(values, exact, found)

    def native_answer(self, verified: List[int], ids: List[Optional[str]], position: int = 0) -> List[str]:
        """After :meth:`native_candidates` (or :meth:`native_batch`, the document at ``position``): the ids
        of every match of the document, in registration order."""
        assert self.core is not None
        return self.core.answer(verified, ids, position)

    def split_candidates(self, doc_keys: Iterable[str], doc: Optional[AnalysedDoc] = None) -> Tuple[Set[int], Set[int]]:
        """(queries the document matches, queries to verify)."""
        exact: Set[int] = set()
        found: Set[int] = set(self.always)
        postings = self.postings
        exact_postings = self.exact_postings
        for k in doc_keys:
            posting = postings.get(k)
            if posting is not None:
                found.update(posting)
            posting = exact_postings.get(k)
            if posting is not None:
                exact.update(posting)
        if doc is not None and self.ranges:
            self._range_candidates(doc, exact, found)
        return exact, found
