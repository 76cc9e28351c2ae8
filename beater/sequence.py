"""Per-index sequence numbers that only ever grow, even across restarts.

Writing a counter on every document would cost a disk write per batch, so
numbers are reserved in blocks: the file records the end of the reserved
block, and a restart continues after it (a gap, never a repeat).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, Optional

BLOCK = 100_000


class Sequencer:
    """Hands out ``_seq`` numbers per index; persisted in ``path`` (None: in memory only)."""

    def __init__(self, path: Optional[Path], block: int = BLOCK) -> None:
        self.path = path
        self.block = block
        self._next: Dict[str, int] = {}
        self._reserved: Dict[str, int] = {}
        if path is not None and path.exists():
            try:
                self._reserved = {k: int(v) for k, v in json.loads(path.read_text()).items()}
            except (ValueError, AttributeError) as e:
                raise RuntimeError(f"{path} is corrupt ({e}); remove it to restart sequences") from None
            self._next = dict(self._reserved)

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
            json.dump(self._reserved, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
