"""The study's `judge:` block: a pairwise LLM judge of each model's QCR replies against its QR
replies, beside the reward model.

    judge:
      name: glm4-judge                 # label; runs go to runs/<model>/judge-<name>/
      model: lmdeploy                  # any lm-eval --model (hf, lmdeploy, local-chat-completions)
      model_args: {pretrained: THUDM/glm-4-9b-chat, trust_remote_code: true}
      prompt: judge_v1                 # or judge_autoj_v1, judge_forced_v1, a YAML path
      subset: 300                      # optional: judge 300 conversations (seeded)

After every model's generation run, one `lm_eval --tasks deita_pairwise` run per model judges
that model's QCR vs QR replies in both orders (rgen_harness.tasks.pairwise). Its results join
the model's row: "Judge W/T/L (QCR vs QR)" and "Reward-judge agreement" (`judge_row`).
Other comparisons (a model against a baseline model) run with the plain command:
`lm_eval ... --tasks deita_pairwise --metadata '{"pairwise_a": ..., "pairwise_b": ...}'`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TASK = "deita_pairwise"


@dataclass(frozen=True)
class JudgeSpec:
    model: str  # lm-eval `--model` of the judge
    model_args: dict[str, Any] = field(default_factory=dict)
    name: str = "judge"
    prompt: str | None = None  # `judge_prompt`
    subset: int | None = None  # conversations judged per model (seeded), default all
    seed: int = 0
    length_ratio: float = 1.25  # close-length pairs: longer / shorter below this
    device: str | None = None
    batch_size: str | None = None

    def run_key(self) -> str:
        return f"judge-{self.name}"


def check_judge(judge: JudgeSpec, source: str) -> None:
    import re

    from rgen_harness.study.config import StudyConfigError

    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", judge.name):
        raise StudyConfigError(
            f"{source}: judge.name {judge.name!r} must be folder-safe (letters, digits, . _ -)"
        )
    if judge.subset is not None and judge.subset < 1:
        raise StudyConfigError(f"{source}: judge.subset={judge.subset} must be >= 1")
    if not judge.length_ratio > 1:
        raise StudyConfigError(
            f"{source}: judge.length_ratio={judge.length_ratio} must be > 1, e.g. 1.25"
        )
    if judge.prompt is not None:
        from rgen_harness.prompts.judge import load_judge_prompt

        try:
            load_judge_prompt(judge.prompt)
        except (OSError, ValueError) as e:
            raise StudyConfigError(f"{source}: judge.prompt: {e}") from e


def judge_metadata(config, model_name: str) -> dict[str, Any]:
    judge = config.judge
    md: dict[str, Any] = {
        "pairwise_run": str(config.study_dir / "runs" / model_name / "deita"),
        "pairwise_seed": judge.seed,
        "pairwise_length_ratio": judge.length_ratio,
        "pairwise_interval": config.report.interval,
    }
    if judge.prompt is not None:
        md["judge_prompt"] = judge.prompt
    if judge.subset is not None:
        md["pairwise_subset"] = judge.subset
    return md


def judge_runs(config, study_dir: Path, replies: dict[str, str] | None = None) -> list:
    """One PlannedRun per model: the judge on that model's QCR vs QR replies (none without a
    `judge:` block or without both deita tasks). `replies`: each model's deita run fingerprint,
    part of its judge run's settings, so verdicts on replies made with other settings are
    never taken for verdicts on the new ones."""
    judge = getattr(config, "judge", None)
    if judge is None or not {"deita_qr", "deita_qcr"} <= set(config.tasks):
        return []
    from rgen_harness.study.config import ModelSpec
    from rgen_harness.study.runner import _common, _finish

    runs = []
    for model in config.models:
        spec = ModelSpec(
            name=model.name,
            model=judge.model,  # type: ignore[arg-type]  (any lm-eval model may judge)
            model_args=judge.model_args,
            device=judge.device,
            batch_size=judge.batch_size,
        )
        argv, settings = _common(config, spec)
        metadata = judge_metadata(config, model.name)
        argv += ["--metadata", json.dumps(metadata, ensure_ascii=False)]
        settings["metadata"] = metadata
        settings["judge"] = judge.name
        if replies and model.name in replies:
            settings["judged_run"] = replies[model.name]
        runs.append(_finish(spec, judge.run_key(), (TASK,), argv, settings, config, study_dir))
    return runs


def _num(value: Any) -> float:
    return (
        float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        else math.nan
    )


def judge_row(model) -> dict[str, Any] | None:
    """The judge's figures for a model's row (QCR = A vs QR = B), from its deita_pairwise
    results; None when the model has none."""
    result = model.tasks.get(TASK)
    if result is None:
        return None
    m = {k.split(",")[0]: _num(v) for k, v in result.metrics.items() if "stderr" not in k}
    keys = (
        "n", "wins", "ties", "losses", "win_rate", "tie_rate", "loss_rate",
        "win_rate_adjusted", "win_rate_adjusted_low", "win_rate_adjusted_high",
        "consistency", "first_pick_rate", "reward_agreement", "reward_agreement_n",
        "reward_agreement_no_ties", "reward_agreement_no_ties_n",
        "close_length_win_rate_adjusted", "close_length_n",
        "pairs", "skipped", "too_long", "failed", "unreadable",
    )  # fmt: skip
    row = {k: m.get(k, math.nan) for k in keys}
    row["judge"] = str(result.run_info.get("model_name") or result.results_file.parent.name)
    return row
