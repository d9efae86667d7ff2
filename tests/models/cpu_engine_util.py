"""Helpers for tests that run lmdeploy's Pipeline over the CPU engine."""

from __future__ import annotations

import re

CPU_ENGINE = "rgen_harness.models.cpu_engine:build_cpu_engine"


def cpu_engine(lm):
    """The `CPUEngine` under an LMDeployLM's lmdeploy Pipeline."""
    return lm.engine.pipe.async_engine.engine


def fail_requests(lm, pattern: str | None) -> None:
    """Make the CPU engine under `lm` fail every request whose prompt matches `pattern`."""
    cpu_engine(lm).fail = re.compile(pattern) if pattern else None
