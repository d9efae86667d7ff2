"""On-disk reward cache: (model key, sha256 of the exact token ids) -> score, in SQLite.

Scores are written after every batch, so an interrupted run keeps what it finished and a
repeated run (another generator, a rescoring, the reference replies) never scores an input
twice. Only finite scores are stored: a failure is retried next time; each batch is one SQLite
transaction, so a crash or a full disk never leaves half a batch. The folder is created and
test-written when the scorer is set up (`check_folder`, before any generation): a folder that
cannot be written stops the run naming `reward_cache` and the path. A broken cache file
(garbled, truncated, other tables) is set aside with a warning and started again when it opens
(see `rgen_harness.cache_files`), never discovered at the first lookup.
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from rgen_harness.cache_files import set_aside_if_broken

FILE_NAME = "scores.sqlite"
COLUMNS = {"scores": ("model", "ids_sha256", "n_tokens", "score")}
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS scores ("
    " model TEXT NOT NULL, ids_sha256 TEXT NOT NULL, n_tokens INTEGER NOT NULL,"
    " score REAL NOT NULL, PRIMARY KEY (model, ids_sha256))"
)


def check_folder(folder: Path | None, setting: str = "reward_cache") -> Path | None:
    """Before any work: create `folder` and prove it writable (`WriteFailed` naming `setting`
    and the path otherwise), and set aside a broken cache file in it; return where that went."""
    if folder is None:
        return None
    from rgen_harness.file_writes import check_writable

    check_writable(folder, setting)
    path = Path(folder) / FILE_NAME
    if path.exists() and not path.is_file():
        from rgen_harness.file_writes import WriteFailed

        raise WriteFailed(
            f"{setting}: {path} is not a file; move it away or set {setting} to another folder."
        )
    return set_aside_if_broken(path, COLUMNS, what="reward score cache")


def ids_digest(ids: list[int]) -> str:
    return hashlib.sha256(",".join(map(str, ids)).encode("ascii")).hexdigest()


class ScoreCache:
    """`ScoreCache(None, key)` is a cache that stores nothing."""

    def __init__(self, folder: Path | None, model_key: str) -> None:
        self.model_key = model_key
        self.path = None if folder is None else Path(folder) / FILE_NAME
        self._db = None
        if self.path is not None:
            check_folder(self.path.parent)
            self._db = sqlite3.connect(self.path, timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(SCHEMA)
            self._db.commit()

    def get_many(self, digests: Iterable[str]) -> dict[str, float]:
        if self._db is None:
            return {}
        digests = list(dict.fromkeys(digests))
        found: dict[str, float] = {}
        for start in range(0, len(digests), 500):
            chunk = digests[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT ids_sha256, score FROM scores WHERE model = ? AND ids_sha256 IN ({marks})",
                [self.model_key, *chunk],
            )
            found.update(rows.fetchall())
        return found

    def put_many(self, entries: Iterable[tuple[str, int, float]]) -> None:
        """entries: (digest, n_tokens, score); non-finite scores are not stored."""
        if self._db is None:
            return
        rows = [(self.model_key, d, n, float(s)) for d, n, s in entries if math.isfinite(float(s))]
        self._db.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?)", rows)
        self._db.commit()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
