"""The label store: one SQLite file in the workdir; every submit is validated, then committed at once.

Labels are keyed by ``(query_id, match_id)``, so submitting a pair again (from another tab, or after changing
one's mind) updates it instead of duplicating it. A submit is one transaction: if any label in it is bad,
nothing of it is written. The store also keeps the rounds (one row per submit) and the user's settings.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS labels (
    query_id TEXT NOT NULL,
    match_id TEXT NOT NULL,
    label INTEGER NOT NULL CHECK (label IN (-1, 1)),
    round INTEGER NOT NULL,
    client TEXT,
    updated REAL NOT NULL,
    PRIMARY KEY (query_id, match_id)
);
CREATE TABLE IF NOT EXISTS rounds (
    round INTEGER PRIMARY KEY AUTOINCREMENT,
    client TEXT,
    n_labels INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class LabelError(ValueError):
    """A submitted label is malformed or names a document that is not in the pool; nothing was stored."""


@dataclass(frozen=True)
class Label:
    """One answer: is ``match_id`` relevant (+1) or irrelevant (-1) to ``query_id``."""

    query_id: str
    match_id: str
    label: int


def parse_labels(items: Iterable[Any], known_ids: Mapping[str, Any] | set[str]) -> list[Label]:
    """Validate raw label dicts ``{"query_id", "match_id", "label"}``; raise :class:`LabelError` naming the culprit.

    ``label`` must be +1/-1 (``true``/``false`` and ``"relevant"``/``"irrelevant"`` are accepted too); both ids
    must be pool documents and differ from each other.
    """
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise LabelError("labels must be a list of {query_id, match_id, label} objects")
    aliases = {"relevant": 1, "irrelevant": -1, "+1": 1, "1": 1, "-1": -1}
    parsed = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise LabelError(f"label #{i} is {type(item).__name__}, expected an object with query_id, match_id, label")
        missing = [key for key in ("query_id", "match_id", "label") if key not in item]
        if missing:
            raise LabelError(f"label #{i} lacks {', '.join(missing)}")
        query_id, match_id, raw = item["query_id"], item["match_id"], item["label"]
        for name, value in (("query_id", query_id), ("match_id", match_id)):
            if not isinstance(value, str) or value not in known_ids:
                raise LabelError(f"label #{i}: unknown document id {value!r} in {name}; it is not in the pool")
        if query_id == match_id:
            raise LabelError(f"label #{i}: document {query_id!r} cannot be labelled against itself")
        if isinstance(raw, bool):
            value = 1 if raw else -1
        elif isinstance(raw, (int, float)) and raw in (1, -1):
            value = int(raw)
        else:
            value = aliases.get(raw) if isinstance(raw, str) else None
        if value is None:
            raise LabelError(
                f"label #{i} ({query_id!r} -> {match_id!r}): label must be +1 (relevant) or -1 (irrelevant), "
                f"got {raw!r}"
            )
        parsed.append(Label(query_id, match_id, value))
    if not parsed:
        raise LabelError("no labels given")
    return parsed


class LabelStore:
    """Labels, rounds and settings in ``<workdir>/labels.sqlite``; safe to share between threads and processes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(SCHEMA)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def submit(self, labels: list[Label], client: str | None = None) -> int:
        """Store ``labels`` as one round in one committed transaction; returns the round number."""
        now = time.time()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                cursor = self._conn.execute(
                    "INSERT INTO rounds (client, n_labels, created) VALUES (?, ?, ?)", (client, len(labels), now)
                )
                round_id = int(cursor.lastrowid)
                self._conn.executemany(
                    "INSERT INTO labels (query_id, match_id, label, round, client, updated) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (query_id, match_id) DO UPDATE SET label = excluded.label, "
                    "round = excluded.round, client = excluded.client, updated = excluded.updated",
                    [(lab.query_id, lab.match_id, lab.label, round_id, client, now) for lab in labels],
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return round_id

    def labels(self) -> list[Label]:
        """Every stored label, in submission order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT query_id, match_id, label FROM labels ORDER BY round, rowid"
            ).fetchall()
        return [Label(q, m, int(v)) for q, m, v in rows]

    def counts(self) -> dict[str, int]:
        """``labelled``, ``positive``, ``negative``, ``queries`` and ``rounds``."""
        with self._lock:
            pos, neg, queries = self._conn.execute(
                "SELECT COALESCE(SUM(label > 0), 0), COALESCE(SUM(label < 0), 0), COUNT(DISTINCT query_id) FROM labels"
            ).fetchone()
            rounds = self._conn.execute("SELECT COUNT(*) FROM rounds").fetchone()[0]
        return {
            "labelled": int(pos + neg),
            "positive": int(pos),
            "negative": int(neg),
            "queries": int(queries),
            "rounds": int(rounds),
        }

    def settings(self) -> dict[str, Any]:
        """The saved settings (JSON values)."""
        with self._lock:
            rows = self._conn.execute("SELECT key, value FROM settings").fetchall()
        return {key: json.loads(value) for key, value in rows}

    def save_settings(self, values: Mapping[str, Any]) -> None:
        """Persist ``values`` (merged into the saved settings)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany(
                "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [(key, json.dumps(value)) for key, value in values.items()],
            )
            self._conn.execute("COMMIT")
