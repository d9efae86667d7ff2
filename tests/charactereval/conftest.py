"""A tiny BaichuanCharRM folder (its own model code) and the real-row fixture."""

from __future__ import annotations

from pathlib import Path

import pytest

REAL_ROWS = Path(__file__).parent / "real_rows"


@pytest.fixture(scope="session")
def charrm_dir(tmp_path_factory):
    from rgen_harness.smoke.tiny_charrm import build_charrm

    return build_charrm(tmp_path_factory.mktemp("charrm") / "BaichuanCharRM")


@pytest.fixture
def charrm_metadata(charrm_dir, tmp_path):
    return {
        "charrm_model": str(charrm_dir),
        "charrm_trust_remote_code": True,
        "charrm_cache": str(tmp_path / "scores"),
    }
