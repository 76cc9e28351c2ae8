"""Phrase positions: whether a document's positions of a phrase's tokens fit the phrase within its slop."""

from __future__ import annotations

from typing import List, Sequence, Tuple


def positions_match(position_lists: Sequence[Sequence[int]], slop: int) -> bool:
    """Whether one position per phrase term fits the phrase within ``slop`` (Lucene's sloppy phrase distance).

    Term i at position p_i is at relative position p_i - i; the phrase matches when some choice
    (distinct positions for repeated terms) has max - min of the relative positions <= slop.
    """
    if slop == 0:
        first, rest = position_lists[0], [set(p) for p in position_lists[1:]]
        return any(all(p + i in s for i, s in enumerate(rest, 1)) for p in first)
    events = sorted((p - i, i, p) for i, positions in enumerate(position_lists) for p in positions)
    k = len(position_lists)
    # smallest window of relative positions holding every term (then check distinct positions)
    counts = [0] * k
    covered = 0
    left = 0
    for right in range(len(events)):
        term = events[right][1]
        if counts[term] == 0:
            covered += 1
        counts[term] += 1
        while covered == k:
            if events[right][0] - events[left][0] <= slop:
                window = events[left : right + 1]
                if _distinct_choice(window, k):
                    return True
            lterm = events[left][1]
            counts[lterm] -= 1
            if counts[lterm] == 0:
                covered -= 1
            left += 1
    return False


def _distinct_choice(window: Sequence[Tuple[int, int, int]], k: int) -> bool:
    """One position per term in ``window`` with no position used twice (repeated phrase terms)."""
    options: List[List[int]] = [[] for _ in range(k)]
    for _, term, position in window:
        options[term].append(position)
    used: set = set()

    def choose(i: int) -> bool:
        if i == k:
            return True
        for p in options[i]:
            if p not in used:
                used.add(p)
                if choose(i + 1):
                    return True
                used.discard(p)
        return False
    return choose(0)
