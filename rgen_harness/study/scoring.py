"""Scoring as its own phase: lm_eval generates with `--predict_only` into
`generated/<model>/<run>/`, then one scorer process (the reward model loaded once for the whole
study) scores every run's samples as it finishes and writes `runs/<model>/<run>/` in lm-eval's
layout, as an inline run would have (what `rgen-harness score` does, run by run).

The scored results JSON keeps every top-level key of the generation's own (config, model,
timings, task configs) and replaces its per-task results with the scored ones; the samples are
written first and the results file last, so a run stopped half-way is not taken as finished.
The numbers equal inline scoring's: the same scorers, settings (the run's task metadata), inputs
and aggregation.

`python -m rgen_harness.study.scoring` is the scorer process: JSON lines on stdin
(`{"preload": metadata}`, then `{"label", "generated", "out", "metadata"}` per run: the run's
task metadata, credentials included, through the pipe and never through a file), one JSON line
per run on stdout (`{"label", "ok", "error", "seconds"}`), and `{"loads": n, "charrm_loads": m}`
(reward and CharRM models loaded) at the end of its input.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import traceback
from pathlib import Path

GENERATED_DIR = "generated"
# Keys of the results JSON that the scored results compute again (the rest is carried over).
SCORED_KEYS = ("results", "versions", "n-shot", "higher_is_better", "n-samples", "reward_config")


def generated_dir(run) -> Path:
    """`<output_dir>/generated/<model>/<run>`: where a predict-only run writes."""
    return run.out_dir.parent.parent.parent / GENERATED_DIR / run.model.name / run.key


def generation_run(run):
    """The run as lm_eval generates it for later scoring: `--predict_only`, its output in
    `generated_dir(run)`. Its settings (fingerprint) are those of the scored run."""
    import shlex

    argv = list(run.argv)
    argv[argv.index("--output_path") + 1] = str(generated_dir(run))
    command = run.command.replace(
        f"--output_path {shlex.quote(str(run.out_dir))}",
        f"--output_path {shlex.quote(str(generated_dir(run)))}",
    )
    return dataclasses.replace(
        run, argv=(*argv, "--predict_only"), command=f"{command} --predict_only"
    )


def score_run(
    generated: Path, out: Path, *, bootstrap_iters: int = 100000, metadata: dict | None = None
) -> list[str]:
    """Score every samples file under `generated` into `out` (same relative paths); return the
    tasks scored. `metadata`: the run's task metadata as the study holds it; without it, the
    metadata the run recorded in its results JSON, where credentials (a reward server URL's
    user-info, a key) are masked, so a study always passes its own."""
    from rgen_harness.commands.score import (
        SAMPLES_RE,
        find_samples,
        rescorer,
        run_metadata,
        scorer_metadata,
    )
    from rgen_harness.metrics.reward.samples import write_results
    from rgen_harness.redact import mask_data

    by_folder: dict[Path, dict] = {}
    for path in _in_task_order(generated, find_samples(generated)):
        task = SAMPLES_RE.match(path.name)["task"]
        rel = path.parent.relative_to(generated)
        given = scorer_metadata(metadata) if metadata is not None else run_metadata(path, task)
        rescore, settings = rescorer(task, given)
        summary = rescore(path, out / rel / path.name, task=task, metadata=settings)
        date = SAMPLES_RE.match(path.name)["date"]
        by_folder.setdefault((rel, date), {})[task] = summary
    tasks = []
    for (rel, date), summaries in by_folder.items():
        source = generated / rel / f"results_{date}.json"
        original = json.loads(source.read_text(encoding="utf-8")) if source.is_file() else {}
        base = mask_data({k: v for k, v in original.items() if k not in SCORED_KEYS})
        write_results(
            out / rel / f"results_{date}.json",
            summaries,
            bootstrap_iters=bootstrap_iters,
            base=base,
        )
        tasks += list(summaries)
    return tasks


def _in_task_order(generated: Path, paths: list[Path]) -> list[Path]:
    """Samples files in the order lm-eval evaluated their tasks (its results JSON's order):
    the reward cache then fills as inline scoring filled it (the reference replies scored
    with the first task), so the batches, and the float32 scores, are inline scoring's."""
    from rgen_harness.commands.score import SAMPLES_RE

    orders: dict[tuple[Path, str], list[str]] = {}

    def rank(path: Path) -> tuple:
        match = SAMPLES_RE.match(path.name)
        rel, date, task = path.parent.relative_to(generated), match["date"], match["task"]
        if (rel, date) not in orders:
            try:
                source = generated / rel / f"results_{date}.json"
                orders[rel, date] = list(json.loads(source.read_text(encoding="utf-8"))["results"])
            except (OSError, ValueError, KeyError, TypeError):
                orders[rel, date] = []
        tasks = orders[rel, date]
        return (str(rel), date, tasks.index(task) if task in tasks else len(tasks), task)

    return sorted(paths, key=rank)


def preload(metadata: dict) -> None:
    """Load the scorers' models now (the reward model), so the first run waits less."""
    from rgen_harness.metrics.scorers import build_scorers

    for scorer in build_scorers(metadata):
        if scorer.name == "reward":
            scorer.backend()
            _ = scorer.renderer


def reward_loads() -> int:
    """Reward models this process has loaded."""
    from rgen_harness.metrics.reward.scorer import _LOADED

    return sum(1 for key in _LOADED if key[0] == "backend")


def charrm_loads() -> int:
    """CharRM models this process has loaded (role-play runs)."""
    import sys

    module = sys.modules.get("rgen_harness.metrics.charrm.scorer")
    return sum(1 for key in getattr(module, "_LOADED", {}) if key[0] == "model")


def serve(lines, reply) -> None:
    """The scorer process's loop (see the module docstring)."""
    for line in lines:
        if not line.strip():
            continue
        job = json.loads(line)
        if "preload" in job:
            try:
                preload(job["preload"])
            except Exception:  # the runs' own scoring will say what is wrong
                traceback.print_exc(file=sys.stderr)
            continue
        start = time.perf_counter()
        try:
            score_run(Path(job["generated"]), Path(job["out"]), metadata=job.get("metadata"))
            error = None
        except Exception as e:
            traceback.print_exc(file=sys.stderr)
            error = f"{type(e).__name__}: {e}"
        seconds = round(time.perf_counter() - start, 3)
        reply({"label": job["label"], "ok": error is None, "error": error, "seconds": seconds})
    reply({"loads": reward_loads(), "charrm_loads": charrm_loads()})


def main() -> None:
    out = sys.stdout

    def reply(message: dict) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    sys.stdout = sys.stderr  # anything else printed goes to the log, not to the replies
    serve(sys.stdin, reply)


if __name__ == "__main__":
    main()
