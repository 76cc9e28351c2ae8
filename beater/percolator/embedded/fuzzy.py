"""Fuzzy term tests: a single term within so many edits of a query value (``fuzziness``, ``~``).

Edits are counted as Lucene counts them: optimal string alignment, a transposition
being one edit unless ``transpositions`` is off; ``AUTO`` allows none up to 2
characters, one up to 5, two beyond.
"""

from __future__ import annotations

from typing import Callable, List, Optional

from beater.errors import UnsupportedQuery


def fuzzy_edits(fuzziness: Optional[str], term: str) -> int:
    """Edits allowed for ``term``: ``AUTO`` is 0 up to 2 characters, 1 up to 5, 2 beyond."""
    if fuzziness is None:
        return 0
    text = str(fuzziness).strip().upper()
    if text.startswith("AUTO"):
        low, high = 3, 6
        if ":" in text:
            low, high = (int(x) for x in text[5:].split(","))
        n = len(term)
        return 0 if n < low else (1 if n < high else 2)
    value = float(text)
    return min(int(value), 2)


def check_fuzziness(fuzziness: Optional[str]) -> None:
    """Refuse (UnsupportedQuery) a ``fuzziness`` that is not understood."""
    if fuzziness is None:
        return
    try:
        fuzzy_edits(fuzziness, "abc")
    except ValueError:
        raise UnsupportedQuery(f"fuzziness {fuzziness!r} is not understood", part=str(fuzziness)) from None


def edit_distance_within(a: str, b: str, limit: int, transpositions: bool = True) -> bool:
    """Whether the (optimal string alignment when ``transpositions``) distance of a and b is <= limit."""
    if a == b:
        return True
    if limit <= 0 or abs(len(a) - len(b)) > limit:
        return False
    previous2: List[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        best = current[0]
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            value = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if transpositions and i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                value = min(value, previous2[j - 2] + 1)
            current[j] = value
            best = min(best, value)
        if best > limit:
            return False
        previous2, previous = previous, current
    return previous[-1] <= limit


def fuzzy_test(value: str, edits: int, prefix_length: int = 0, transpositions: bool = True) -> Callable[[str], bool]:
    """A test of single terms against ``value`` within ``edits`` edits, the first ``prefix_length`` chars exact."""
    prefix = value[:prefix_length]
    if edits <= 0:
        return lambda term: term == value
    return lambda term: term.startswith(prefix) and edit_distance_within(value, term, edits, transpositions)
