"""The reward score cache checks its file when it opens: a garbled, truncated or foreign file
is set aside (with a warning naming both paths) and scoring goes on with an empty cache."""

from __future__ import annotations

import logging
import sqlite3

import pytest

from rgen_harness.metrics.reward.cache import ScoreCache

FILE_NAME = "scores.sqlite"


def _filled(folder, n=400):
    cache = ScoreCache(folder, "model-a")
    cache.put_many((f"d{i}", 10, float(i)) for i in range(n))
    cache.close()
    return folder / FILE_NAME


def _truncated(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def _foreign(path):
    path.unlink()
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE scores (key TEXT, value BLOB)")
    db.commit()
    db.close()


def _noise(path):
    path.write_bytes(b"\x00\xffgarbage" * 500)


@pytest.mark.parametrize("damage", [_truncated, _foreign, _noise])
def test_broken_cache_file_is_set_aside_and_rebuilt(tmp_path, caplog, damage):
    path = _filled(tmp_path)
    damage(path)
    with caplog.at_level(logging.WARNING):
        cache = ScoreCache(tmp_path, "model-a")
    moved = list(tmp_path.glob(f"{FILE_NAME}.broken-*"))
    assert len(moved) == 1
    assert str(path) in caplog.text and str(moved[0]) in caplog.text
    assert cache.get_many(["d1"]) == {}
    cache.put_many([("d1", 10, 1.5)])
    assert cache.get_many(["d1", "d2"]) == {"d1": 1.5}
    cache.close()


def test_healthy_cache_is_kept(tmp_path):
    from rgen_harness.metrics.reward.cache import check_folder

    _filled(tmp_path)
    assert check_folder(tmp_path) is None
    cache = ScoreCache(tmp_path, "model-a")
    assert cache.get_many(["d3"]) == {"d3": 3.0}
    cache.close()
    assert not list(tmp_path.glob("*.broken-*"))
