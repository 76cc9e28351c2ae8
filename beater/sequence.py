"""Per-index sequence numbers that only ever grow, even across restarts.

Writing a counter on every document would cost a disk write per batch, so
numbers are reserved in blocks: the file records the end of the reserved
block, and a restart continues after it (a gap, never a repeat).

The numbers mean something only on the Beater that handed them out, so the
file also holds that Beater's id (``_beater`` on every hit; a tail's cursor is
per Beater).  The id is born with the file: remove the file and the numbers
start again at 1 under a new id, so no old cursor can skip the new hits.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Dict, Optional

BLOCK = 100_000


def new_beater_id() -> str:
    """A random Beater id: 8 hex digits (a clash among a handful of Beaters is a one in 10^8 event)."""
    return secrets.token_hex(4)


class Sequencer:
    """Hands out ``_seq`` numbers per index; persisted in ``path`` (None: in memory only) with the Beater's id."""

    def __init__(self, path: Optional[Path], block: int = BLOCK) -> None:
        self.path = path
        self.block = block
        self._next: Dict[str, int] = {}
        self._reserved: Dict[str, int] = {}
        self.beater_id = new_beater_id()
        if path is not None and path.exists():
            try:
                saved = json.loads(path.read_text())
                if "reserved" in saved:
                    self.beater_id = str(saved["beater"])
                    saved = saved["reserved"]
                # else: a file from before Beaters had ids, {index: reserved}; it gets one now
                self._reserved = {k: int(v) for k, v in saved.items()}
            except (ValueError, AttributeError, KeyError, TypeError) as e:
                raise RuntimeError(f"{path} is corrupt ({e}); remove it to restart sequences") from None
            self._next = dict(self._reserved)
        self._save()  # the id is on disk before any hit carries it

    def take(self, index: str, count: int) -> int:
        """Reserve ``count`` consecutive numbers for ``index``; return the first."""
        first = self._next.get(index, 1)
        end = first + count
        self._next[index] = end
        if end > self._reserved.get(index, 1):
            self._reserved[index] = end + self.block
            self._save()
        return first

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump({"beater": self.beater_id, "reserved": self._reserved}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
