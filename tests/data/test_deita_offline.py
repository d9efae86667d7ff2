"""Offline, the default (hub) data fails within seconds with the fixes, not after datasets'
minute of retries with a bare ConnectionError."""

from __future__ import annotations

import time

import pytest

from rgen_harness.data.deita import DataUnavailable, DeitaSource, hub_reachable, read_rows


def test_unreachable_hub_fails_fast_and_names_the_fixes(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on port 9
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf" / "datasets"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    assert not hub_reachable()
    start = time.perf_counter()
    with pytest.raises(DataUnavailable) as info:
        read_rows(DeitaSource.from_metadata({}))
    took = time.perf_counter() - start
    message = str(info.value)
    assert "hkust-nlp/deita-6k-v0" in message and "not reachable" in message
    assert '"deita_path": "/data/deita-6k.jsonl"' in message
    assert '"deita_path": "sample"' in message and "HF_ENDPOINT" in message
    assert took < 15, f"took {took:.1f} s"
