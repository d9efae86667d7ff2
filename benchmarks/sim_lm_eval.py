"""A stand-in for `python -m lm_eval` that costs the machine nothing but its own time, for the
study scheduler's tests and `benchmarks/study_parallel.py`.

As a child (`python benchmarks/sim_lm_eval.py <lm_eval arguments>`) it sleeps as long as the
run would take on a GPU (`SIM_SECONDS`: JSON {pretrained: seconds}, for a shard its share of
`SIM_CONVERSATIONS`; an inline-scored run adds `SIM_REWARD_LOAD_S` for loading the reward
model), printing a line a tenth of a second, then copies real lm_eval output
(`SIM_TEMPLATES/predicted` for `--predict_only`, else `SIM_TEMPLATES/inline`, see
`make_templates`) into `--output_path` (with `--samples`, the chosen conversations), with
`config.throughput` as the lmdeploy model records it. It writes `SIM_RECORDS/<pid>.json`
(its model, CUDA_VISIBLE_DEVICES, start, end, whether it loaded the reward model) when it
starts and again when it ends. `SIM_FAIL_INDEX=i`: each model's first run given conversation i
in its `--samples` exits 1 without output.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path


def _opt(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def make_templates(out: Path, chat: Path, reward: Path, data: str = "sample", limit: int = 3):
    """Real lm_eval output of the tiny chat model, deita_qr + deita_qcr scored with rouge and
    the tiny reward model: `out/inline` (scored inline) and `out/predicted` (--predict_only).
    Returns the task metadata both used."""
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker

    metadata = {
        "deita_path": data,
        "on_bad_row": "skip",
        "scorers": "rouge,reward",
        "reward_model": str(reward),
        "reward_backend": "hf",
        "reward_device": "cpu",
        "reward_cache": "none",
    }
    for name, predict_only in (("inline", False), ("predicted", True)):
        tracker = EvaluationTracker(output_path=str(out / name))
        results = simple_evaluate(
            model="hf",
            model_args=f"pretrained={chat}",
            device="cpu",
            tasks=["deita_qr", "deita_qcr"],
            metadata=metadata,
            gen_kwargs="max_gen_toks=8",
            limit=limit,
            log_samples=True,
            predict_only=predict_only,
            evaluation_tracker=tracker,
        )
        samples = results.pop("samples")
        tracker.save_results_aggregated(results=results, samples=samples)
        for task in results["configs"]:
            tracker.save_results_samples(task_name=task, samples=samples[task])
    return metadata


def _chosen_lines(src: Path, chosen: dict) -> str:
    """With `--samples`: the template's sample of each chosen dataset index (cycling when the
    template has fewer), its doc_id the index as lm-eval logs it."""
    task = next(t for t in chosen if src.name.startswith(f"samples_{t}_"))
    lines = [json.loads(x) for x in src.read_text(encoding="utf-8").splitlines() if x]
    by_id = {line["doc_id"]: line for line in lines}
    out = []
    for index in sorted(chosen[task]):
        line = dict(by_id.get(index, lines[index % len(lines)]), doc_id=index)
        out.append(json.dumps(line, ensure_ascii=False) + "\n")
    return "".join(out)


def _record(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def main(argv: list[str]) -> int:
    out = Path(_opt(argv, "--output_path"))
    model_args = json.loads(_opt(argv, "--model_args"))
    predict_only = "--predict_only" in argv
    seconds = json.loads(os.environ.get("SIM_SECONDS", "{}")).get(model_args["pretrained"], 0.5)
    chosen = json.loads(_opt(argv, "--samples")) if "--samples" in argv else None
    if chosen and os.environ.get("SIM_CONVERSATIONS"):
        # a shard: its share of the run's conversations (SIM_CONVERSATIONS in the whole run)
        seconds *= len(next(iter(chosen.values()))) / int(os.environ["SIM_CONVERSATIONS"])
    scores_inline = not predict_only and "reward" in _opt(argv, "--metadata")
    load_s = float(os.environ.get("SIM_REWARD_LOAD_S", "0")) if scores_inline else 0.0
    records = Path(os.environ["SIM_RECORDS"])
    records.mkdir(parents=True, exist_ok=True)
    record = {
        "pid": os.getpid(),
        "model": model_args["pretrained"],
        "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "predict_only": predict_only,
        "reward_load": scores_inline,
        "start": time.time(),
        "end": None,
    }
    _record(records / f"{os.getpid()}.json", record)
    deadline = time.monotonic() + seconds + load_s
    while (left := deadline - time.monotonic()) > 0:
        print(f"step {left:.1f}s left", flush=True)
        time.sleep(min(0.1, left))
    fail = os.environ.get("SIM_FAIL_INDEX")  # a model's run of this conversation fails, once
    marker = records / f"failed-{fail}-{model_args['pretrained'].replace('/', '_')}"
    if fail is not None and not marker.exists() and int(fail) in sum((chosen or {}).values(), []):
        marker.write_text("")
        print(f"simulated failure on conversation {fail}", flush=True)
        return 1
    template = Path(os.environ["SIM_TEMPLATES"]) / ("predicted" if predict_only else "inline")
    for src in sorted(template.rglob("*")):
        if not src.is_file():
            continue
        dst = out / src.relative_to(template)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.name.startswith("results_"):
            data = json.loads(src.read_text(encoding="utf-8"))
            if chosen is not None:
                for task, entry in data.get("n-samples", {}).items():
                    entry["effective"] = len(chosen.get(task, []))
            n = sum(v.get("effective", 0) for v in data.get("n-samples", {}).values())
            total = {"samples": n, "wall_s": seconds}
            data["config"]["throughput"] = {"total": total}
            data["config"]["model_args"] = model_args
            data["model_name"] = model_args["pretrained"]
            dst.write_text(json.dumps(data, indent=2), encoding="utf-8")
        elif chosen is not None and src.name.startswith("samples_"):
            dst.write_text(_chosen_lines(src, chosen), encoding="utf-8")
        else:
            shutil.copyfile(src, dst)
    record["end"] = time.time()
    _record(records / f"{os.getpid()}.json", record)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
