"""Reading Deferreds that have already fired (the embedded percolator without a reactor is synchronous)."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure


def result(deferred: Deferred) -> Any:
    """The result of an already fired Deferred, or its exception raised."""
    out = []
    deferred.addBoth(out.append)
    assert out, "Deferred has not fired"
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]
