"""Broken SQLite caches are found when they open, set aside under a `.broken-<time>` name with a
warning naming both paths, and started again; healthy and absent files are left alone."""

from __future__ import annotations

import logging
import sqlite3
from types import SimpleNamespace

import pytest
from sqlitedict import SqliteDict

from rgen_harness.cache_files import LM_EVAL_TABLES, problem, set_aside_if_broken
from rgen_harness.chat.runner import Generation, RoundCache

TABLES = {"scores": ("model", "score")}


def _healthy(path, rows=2000):
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE scores (model TEXT, score REAL, pad TEXT)")
    db.executemany(
        "INSERT INTO scores VALUES (?, ?, ?)", [("m", i, "x" * 200) for i in range(rows)]
    )
    db.commit()
    db.close()
    return path


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garble(path, page=4):
    """Overwrite a data page; the header and schema (page 1) stay valid, so the file opens."""
    data = bytearray(path.read_bytes())
    data[4096 * page : 4096 * page + 2048] = b"\xff" * 2048
    path.write_bytes(bytes(data))


def _wrong_schema(path):
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE scores (something TEXT)")
    db.commit()
    db.close()


@pytest.mark.parametrize("damage", [_truncate, _garble, _wrong_schema, "noise"])
def test_broken_cache_is_set_aside_with_a_warning(tmp_path, caplog, damage):
    path = tmp_path / "scores.sqlite"
    if damage == "noise":
        path.write_bytes(b"not a database at all\x00\xff" * 100)
    elif damage is _wrong_schema:
        damage(path)
    else:
        damage(_healthy(path))
    (tmp_path / "scores.sqlite-wal").write_bytes(b"stale")
    with caplog.at_level(logging.WARNING):
        moved = set_aside_if_broken(path, TABLES, what="test cache")
    assert moved is not None and moved.name.startswith("scores.sqlite.broken-")
    assert moved.is_file() and not path.exists()
    assert not (tmp_path / "scores.sqlite-wal").exists()  # no stale log for the new cache
    assert str(path) in caplog.text and str(moved) in caplog.text


def test_healthy_empty_and_absent_files_are_kept(tmp_path):
    path = _healthy(tmp_path / "ok.sqlite")
    assert problem(path, TABLES) is None
    assert set_aside_if_broken(path, TABLES, what="test") is None and path.is_file()
    (tmp_path / "empty.sqlite").write_bytes(b"")
    assert problem(tmp_path / "empty.sqlite", TABLES) is None
    assert problem(tmp_path / "absent.sqlite", TABLES) is None
    other = tmp_path / "other.sqlite"  # the table is created by the cache when missing
    sqlite3.connect(other).execute("CREATE TABLE unrelated (a)").connection.close()
    assert problem(other, TABLES) is None


def test_round_cache_restarts_a_garbled_use_cache_database(tmp_path, caplog):
    """lm-eval opens a --use_cache file with a garbled data page without complaint; the round
    cache checks it before the first lookup instead of failing at a lookup."""
    path = tmp_path / "cache_rank0.db"
    db = SqliteDict(str(path), autocommit=True)
    for i in range(300):
        db[f"k{i}"] = {"text": "y" * 300}
    db.close()
    _garble(path)
    opened = SqliteDict(str(path), autocommit=True)  # what lm-eval's CachingLM does
    lm = SimpleNamespace(cache_hook=SimpleNamespace(dbdict=opened))
    with caplog.at_level(logging.WARNING):
        cache = RoundCache.of(lm)
    assert "lm-eval --use_cache database" in caplog.text and str(path) in caplog.text
    assert list(tmp_path.glob("cache_rank0.db.broken-*"))
    assert lm.cache_hook.dbdict is cache.db is not opened
    gen = Generation("hello", "stop", 1)
    cache.put("prompt", {}, gen)
    cache.commit()
    assert cache.get("prompt", {}) == gen
    assert problem(path, LM_EVAL_TABLES) is None
