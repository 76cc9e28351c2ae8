"""Registrations and field models on disk: one sqlite file, every write one transaction."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple

_SCHEMA = """
CREATE TABLE IF NOT EXISTS registrations (
    id TEXT PRIMARY KEY,
    idx TEXT NOT NULL,
    data TEXT NOT NULL,
    created REAL NOT NULL DEFAULT (julianday('now'))
);
CREATE TABLE IF NOT EXISTS field_models (
    idx TEXT PRIMARY KEY,
    properties TEXT NOT NULL,
    mapping TEXT NOT NULL DEFAULT ''
);
"""


class Store:
    """The sqlite file of the embedded percolator (WAL journal; safe to use from several threads)."""

    def __init__(self, path: Path) -> None:
        """Open (creating the file and its parent directories) the store at ``path``."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(field_models)")}
        if "mapping" not in columns:  # a store written before mappings could be configured
            self._db.execute("ALTER TABLE field_models ADD COLUMN mapping TEXT NOT NULL DEFAULT ''")

    def add(self, subscription_id: str, index: str, data: Dict[str, Any]) -> bool:
        """Store a registration; False (nothing written) if the id is already stored."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO registrations (id, idx, data) VALUES (?, ?, ?)",
                (subscription_id, index, json.dumps(data, separators=(",", ":"))),
            )
            return cursor.rowcount == 1

    def replace(self, subscription_id: str, data: Dict[str, Any]) -> bool:
        """Rewrite the JSON of a stored registration (keeping its place); False if it is not stored."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE registrations SET data = ? WHERE id = ?", (json.dumps(data, separators=(",", ":")), subscription_id)
            )
            return cursor.rowcount == 1

    def remove(self, subscription_id: str) -> bool:
        """Delete a registration; False if it was not stored."""
        with self._lock:
            return self._db.execute("DELETE FROM registrations WHERE id = ?", (subscription_id,)).rowcount == 1

    def get(self, subscription_id: str) -> Optional[Dict[str, Any]]:
        """The stored JSON of a registration, or None."""
        with self._lock:
            row = self._db.execute("SELECT data FROM registrations WHERE id = ?", (subscription_id,)).fetchone()
        return None if row is None else json.loads(row[0])

    def registrations(self) -> Iterator[Tuple[str, str, Dict[str, Any]]]:
        """(id, index, JSON) of every stored registration, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT id, idx, data FROM registrations ORDER BY rowid").fetchall()
        for subscription_id, index, data in rows:
            yield subscription_id, index, json.loads(data)

    def save_model(self, index: str, properties: Dict[str, Any], mapping: str = "") -> None:
        """Replace the stored field model of ``index``, grown from the configured mapping tagged ``mapping``."""
        with self._lock:
            self._db.execute(
                "INSERT INTO field_models (idx, properties, mapping) VALUES (?, ?, ?) "
                "ON CONFLICT(idx) DO UPDATE SET properties = excluded.properties, mapping = excluded.mapping",
                (index, json.dumps(properties, separators=(",", ":")), mapping),
            )

    def models(self) -> Dict[str, Tuple[Dict[str, Any], str]]:
        """Every stored field model by index, with the tag of the mapping it grew from."""
        with self._lock:
            rows = self._db.execute("SELECT idx, properties, mapping FROM field_models").fetchall()
        return {index: (json.loads(properties), mapping) for index, properties, mapping in rows}

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
