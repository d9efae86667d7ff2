"""Hand-written lm-eval output of judge runs: a results JSON and one samples file per set, in
the layout `lm_eval --log_samples --output_path` writes (values from the task's own
aggregations, as lm-eval computes them)."""

from __future__ import annotations

import json
from pathlib import Path

from rgen_harness.data.judge import get_spec
from rgen_harness.tasks.judge.aggregate import metrics_for

TS = "2026-01-01T00-00-00.000000"


def record(gold, pred, *, turn=0, votes=(), skipped=0, scenario=""):
    return {
        "gold": gold,
        "turn": turn,
        "votes": list(votes),
        "scenario": scenario,
        "skipped": skipped,
        "pred": [] if skipped else list(pred),
        "shown": [] if skipped else list(pred),
        "error": [] if skipped else ["" if p is not None else "unparsed" for p in pred],
    }


def lm_eval_values(set_name: str, records: list[dict]) -> dict[str, float]:
    spec = get_spec(set_name)
    labels = (0, 1, 2) if spec.has_ties else (1, 2)
    return {
        f"{name},none": aggregation(records, labels)
        for name, (aggregation, _) in metrics_for(spec.kind).items()
    }


def write_run(
    folder: Path,
    sets: dict[str, list[dict]],
    *,
    model: str = "hf",
    model_args: dict | str | None = None,
    metadata: dict | None = None,
    model_name: str = "judge-model",
    samples: bool = True,
    ts: str = TS,
    overrides: dict[str, dict[str, float]] | None = None,
) -> Path:
    """Writes results_<ts>.json (+ samples_judge_<set>_<ts>.jsonl); returns the results file."""
    folder.mkdir(parents=True, exist_ok=True)
    results, configs, n_samples = {}, {}, {}
    for set_name, records in sets.items():
        task = f"judge_{set_name}"
        results[task] = {"alias": task, **lm_eval_values(set_name, records)}
        results[task].update((overrides or {}).get(set_name, {}))
        meta = {"version": 1.0, "judge_set": set_name, **(metadata or {})}
        configs[task] = {"task": task, "metadata": meta}
        n_samples[task] = {"original": len(records), "effective": len(records)}
        if samples:
            lines = []
            for i, r in enumerate(records):
                line = {"doc_id": i, "doc": {"id": f"row{i}"}, "filtered_resps": ["{}"]}
                line.update({name: r for name in metrics_for(get_spec(set_name).kind)})
                lines.append(json.dumps(line))
            (folder / f"samples_{task}_{ts}.jsonl").write_text("\n".join(lines) + "\n")
    data = {
        "results": results,
        "configs": configs,
        "n-samples": n_samples,
        "config": {"model": model, "model_args": model_args or {}, "limit": None},
        "model_name": model_name,
    }
    path = folder / f"results_{ts}.json"
    path.write_text(json.dumps(data))
    return path
