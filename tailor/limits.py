"""How many tails the Tailor keeps open, in total and per client address.

Each open tail costs a socket, a bounded buffer and a share of every event;
past the limits a client gets 429 with ``Retry-After`` rather than a Tailor
that slows down for everyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

RETRY_AFTER_S = 5


@dataclass(frozen=True)
class Refusal:
    """Which limit a new tail would break."""

    name: str
    value: int
    message: str


class TailLimits:
    """Counts open tails per client address; says when one more would be too many."""

    def __init__(self, max_total: int, max_per_client: int) -> None:
        self.max_total = max_total
        self.max_per_client = max_per_client
        self.total = 0
        self._per_client: Dict[str, int] = {}

    def refusal(self, address: str) -> Optional[Refusal]:
        """None if ``address`` may open one more tail, else the limit it would break."""
        if self.max_total and self.total >= self.max_total:
            return Refusal("max_tails", self.max_total, f"the Tailor has {self.max_total} open tails, its limit; retry later")
        if self.max_per_client and self._per_client.get(address, 0) >= self.max_per_client:
            return Refusal("max_tails_per_client", self.max_per_client,
                           f"{address} has {self.max_per_client} open tails, the limit per client; close one or retry later")
        return None

    def opened(self, address: str) -> None:
        """A tail of ``address`` is being served."""
        self.total += 1
        self._per_client[address] = self._per_client.get(address, 0) + 1

    def closed(self, address: str) -> None:
        """A tail of ``address`` ended."""
        self.total -= 1
        left = self._per_client.get(address, 1) - 1
        if left > 0:
            self._per_client[address] = left
        else:
            self._per_client.pop(address, None)
