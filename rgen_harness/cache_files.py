"""Health check for the SQLite caches (reward scores, lm-eval `--use_cache`), run when they open.

A cache file that is garbled, truncated or has another program's tables otherwise fails much
later (at scoring, after hours of generation) with `database disk image is malformed` and no
path. `set_aside_if_broken` checks the file first (SQLite's `quick_check` plus the expected
columns of the tables the cache uses). A broken file is renamed to `<name>.broken-<timestamp>`
(with its `-wal`/`-journal`/`-shm` companions) and a warning names both paths; the caller then
creates a fresh, empty cache at the original path. A cache holds only recomputable results, so
starting it again loses time, never results. A file that is merely locked by another process
is not broken: that error propagates.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

log = logging.getLogger(__name__)

COMPANIONS = ("-wal", "-journal", "-shm")
# lm-eval's `--use_cache` file: sqlitedict's default table.
LM_EVAL_TABLES = {"unnamed": ("key", "value")}
_NOT_BROKEN = ("locked", "busy", "unable to open", "readonly", "permission")


def problem(path: str | Path, tables: dict[str, tuple[str, ...]]) -> str | None:
    """Why the SQLite file at `path` cannot serve as a cache, or None when it can (or is absent).

    `tables` maps a table name to the columns the cache reads; a missing table is fine (the
    cache creates it), a table without those columns is not.
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return None
    db = sqlite3.connect(path, timeout=60)  # reads only; connecting writes nothing
    try:
        rows = db.execute("PRAGMA quick_check").fetchall()
        if [r[0] for r in rows] != ["ok"]:
            return "quick_check: " + "; ".join(str(r[0]) for r in rows[:3])
        for table, columns in tables.items():
            found = [r[1] for r in db.execute(f'PRAGMA table_info("{table}")')]
            missing = [c for c in columns if c not in found]
            if found and missing:
                return f"table {table!r} has columns {found}, expected {list(columns)}"
    except sqlite3.DatabaseError as e:
        if isinstance(e, sqlite3.OperationalError) and any(w in str(e) for w in _NOT_BROKEN):
            raise
        return f"{type(e).__name__}: {e}"
    finally:
        db.close()
    return None


def set_aside_if_broken(
    path: str | Path, tables: dict[str, tuple[str, ...]], *, what: str
) -> Path | None:
    """Rename a broken cache file out of the way; return where it went (None: it is fine)."""
    path = Path(path)
    why = problem(path, tables)
    if why is None:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.broken-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.broken-{stamp}-{n}")
    path.rename(target)
    for suffix in COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.rename(target.with_name(target.name + suffix))
    log.warning(
        "%s %s is broken (%s); moved it to %s and starting an empty cache in its place "
        "(delete the moved file once you no longer need it).",
        what,
        path,
        why,
        target,
    )
    return target


def reopen_if_broken(db):
    """lm-eval's open `--use_cache` database (a sqlitedict) checked: when its file is broken it
    is set aside and a fresh, empty one at the same path is returned; otherwise `db` itself.

    lm-eval opens the file before any request runs, so its own handle still points at the
    moved file; only what is looked up through the returned object starts afresh.
    """
    filename = getattr(db, "filename", None)
    if not filename:
        return db
    if set_aside_if_broken(filename, LM_EVAL_TABLES, what="lm-eval --use_cache database") is None:
        return db
    from sqlitedict import SqliteDict

    return SqliteDict(filename, tablename=db.tablename, autocommit=db.autocommit)
