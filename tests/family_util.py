"""Family builders for tests: a family whose real vocabulary package is missing is skipped with
the install command as the reason (the dev extra installs them)."""

from __future__ import annotations

import pytest

from rgen_harness.smoke.families import build_family_model, build_family_tokenizer
from rgen_harness.smoke.real_vocab import VocabularyMissing


def family_tokenizer(out_dir, family: str):
    try:
        return build_family_tokenizer(out_dir, family)
    except VocabularyMissing as e:
        pytest.skip(f"{family}: {e}")


def family_model(out_dir, family: str, **kwargs):
    try:
        return build_family_model(out_dir, family, **kwargs)
    except VocabularyMissing as e:
        pytest.skip(f"{family}: {e}")
