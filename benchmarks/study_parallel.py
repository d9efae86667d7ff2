"""The six-model study on a simulated 8-GPU node: one run at a time with inline scoring (what a
study did before the scheduler) against the parallel scheduler with scoring as its own phase,
with and without shards inside a model (`shards: auto`, weighed by the throughput the run
without them measured), and optionally the same study on a local Ray cluster. Prints a table.

Simulated: each model's lm_eval is `benchmarks/sim_lm_eval.py`, which sleeps for the model's
GPU time, `--seconds-per-b` seconds per billion parameters (InternLM2.5-7B 7.7, InternLM2.5-20B
19.9, Llama-3.1-8B 8.0, Qwen2-1.5B 1.5, Qwen2-7B 7.6, GLM-4-9B 9.4), tp as in
study_default.yaml (1 each), and then writes real lm_eval output of the tiny models. An
inline-scored run also sleeps `--reward-load-s` for loading the 20B reward model. GPUs are
fake ids (`gpus: [0..7]`) handed out by the scheduler's own code, which pins each child with
CUDA_VISIBLE_DEVICES. The scoring phase is real: one process scores every run's samples with
the tiny reward model on the CPU (its load counted by the scorer itself).

    python benchmarks/study_parallel.py [--seconds-per-b 2] [--ray-local]
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SIZES_B = {
    "internlm2.5-7b-chat": 7.7,
    "internlm2.5-20b-chat": 19.9,
    "llama-3.1-8b-instruct": 8.0,
    "qwen2-1.5b": 1.5,
    "qwen2-7b-instruct": 7.6,
    "glm-4-9b-chat": 9.4,
}


CONVERSATIONS = 3  # the templates' (real lm_eval output of the tiny models)


def _config(root: Path, name: str, metadata: dict, **extra) -> dict:
    reward = {k[len("reward_") :]: v for k, v in metadata.items() if k.startswith("reward_")}
    return {
        "name": name,
        "models": [
            {"name": m, "model": "lmdeploy", "model_args": {"pretrained": f"org/{m}", "tp": 1}}
            for m in SIZES_B
        ],
        "data": {"path": "sample"},
        "limit": CONVERSATIONS,
        "scorers": ["rouge", "reward"],
        "reward": reward,
        "output_dir": str(root / "studies" / name),
        "report_dir": str(root / "results" / name),
        **extra,
    }


def _run(raw: dict, records: Path) -> tuple[float, object]:
    from rgen_harness.study import runner
    from rgen_harness.study.config import parse_study_config

    os.environ["SIM_RECORDS"] = str(records)
    original = runner.plan_runs
    sim = str(HERE / "sim_lm_eval.py")
    env = tuple((k, v) for k, v in os.environ.items() if k.startswith("SIM_"))
    runner.plan_runs = lambda *a, **k: [
        dataclasses.replace(r, argv=(sys.executable, sim, *r.argv[3:]), env=env)
        for r in original(*a, **k)
    ]
    try:
        start = time.perf_counter()
        outcome = runner.run_study(parse_study_config(raw), stream=io.StringIO())
        return time.perf_counter() - start, outcome
    finally:
        runner.plan_runs = original


def _row(label, wall, outcome, records: Path, slowest: float, gpus: int) -> dict:
    from sim_lm_eval import __name__ as _  # noqa: F401 (the records' writer)

    recs = [json.loads(p.read_text()) for p in records.glob("*.json")]
    loads = sum(r["reward_load"] for r in recs) + (outcome.scorer_loads or 0)
    busy = {str(g): 0.0 for g in range(gpus)}
    for r in recs:
        for g in (r["gpus"] or "0").split(","):
            busy[g] = busy.get(g, 0.0) + (r["end"] - r["start"])
    idle = [1 - busy[str(g)] / wall for g in range(gpus)]
    return {
        "mode": label,
        "wall_s": wall,
        "ratio": wall / slowest,
        "loads": loads,
        "idle": idle,
        "done": len(outcome.done),
    }


def _ray_head(tmp: Path) -> tuple[subprocess.Popen, str]:
    port = 37000 + os.getpid() % 2000
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), RAY_USAGE_STATS_ENABLED="0")
    head = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "ray"), "start", "--head", "--block",
         f"--port={port}", "--num-gpus=8", "--num-cpus=8", "--include-dashboard=false",
         f"--temp-dir={tmp}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    import ray

    for _ in range(60):
        try:
            ray.init(address=f"127.0.0.1:{port}", log_to_driver=False)
            ray.shutdown()
            return head, f"127.0.0.1:{port}"
        except Exception:
            time.sleep(2)
    os.killpg(head.pid, signal.SIGKILL)
    raise RuntimeError("the local Ray head did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds-per-b", type=float, default=2.0)
    ap.add_argument("--reward-load-s", type=float, default=3.0)
    ap.add_argument("--ray-local", action="store_true", help="also on a local Ray cluster")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    from sim_lm_eval import make_templates

    from rgen_harness.smoke.tiny_models import build_chat_model, build_reward_model

    root = Path(tempfile.mkdtemp(prefix="study_parallel_"))
    build_chat_model(root / "tiny/chat")
    build_reward_model(root / "tiny/reward")
    metadata = make_templates(root / "templates", root / "tiny/chat", root / "tiny/reward")
    seconds = {f"org/{m}": b * args.seconds_per_b for m, b in SIZES_B.items()}
    os.environ.update(
        SIM_TEMPLATES=str(root / "templates"),
        SIM_SECONDS=json.dumps(seconds),
        SIM_REWARD_LOAD_S=str(args.reward_load_s),
        SIM_CONVERSATIONS=str(CONVERSATIONS),
    )
    slowest = max(seconds.values()) + 0.0
    rows = []
    raw = _config(root, "sequential", metadata, scheduler="sequential", scoring="inline")
    wall, outcome = _run(raw, root / "rec-seq")
    rows.append(_row("one at a time, inline scoring", wall, outcome, root / "rec-seq", slowest, 8))
    gpus = list(range(8))
    raw = _config(root, "parallel", metadata, gpus=gpus, shards=1)
    wall, outcome = _run(raw, root / "rec-par")
    rows.append(_row("parallel, scoring phase", wall, outcome, root / "rec-par", slowest, 8))
    # shards: auto, weighed by the throughput the run above measured
    raw = _config(root, "shards", metadata, gpus=gpus)
    wall, outcome = _run(raw, root / "rec-shards")
    rows.append(
        _row(
            "parallel, shards: auto, scoring phase", wall, outcome, root / "rec-shards", slowest, 8
        )
    )
    same_shards = _same(root / "studies/parallel", root / "studies/shards")
    if args.ray_local:
        head, address = _ray_head(root / "ray")
        try:
            raw = _config(root, "ray", metadata, ray={"address": address}, shards=1)
            wall, outcome = _run(raw, root / "rec-ray")
            rows.append(
                _row("Ray (local, 8 fake GPUs)", wall, outcome, root / "rec-ray", slowest, 8)
            )
            same = _same(root / "studies/parallel", root / "studies/ray")
        finally:
            os.killpg(head.pid, signal.SIGTERM)
            head.wait()
    print(
        f"six models, {args.seconds_per_b:g} s of GPU time per billion parameters (slowest: "
        f"internlm2.5-20b-chat, {slowest:.1f} s; all six one after the other: "
        f"{sum(seconds.values()):.1f} s), reward model load {args.reward_load_s:g} s"
    )
    print("| mode | wall (s) | wall / slowest model | reward loads | GPU idle share, GPUs 0-7 |")
    print("|---|---|---|---|---|")
    for r in rows:
        idle = " ".join(f"{x:.0%}" for x in r["idle"])
        print(
            f"| {r['mode']} | {r['wall_s']:.1f} | {r['ratio']:.2f}x | {r['loads']} | {idle} |"
            + ("" if r["done"] == 6 else f" ({r['done']}/6 runs done)")
        )
    print(f"results files with shards identical to those without (timings aside): {same_shards}")
    if args.ray_local:
        print(f"Ray results files identical to the local scheduler's: {same}")


def _same(a: Path, b: Path) -> bool:
    """The same samples files, byte for byte, and results files but for times and throughput."""

    def files(root: Path) -> dict:
        out = {}
        for p in sorted((root / "runs").rglob("*")):
            if p.is_file() and p.name.startswith("samples_"):
                out[str(p.relative_to(root))] = p.read_bytes()
            elif p.is_file() and p.name.startswith("results_"):
                data = json.loads(p.read_text(encoding="utf-8"))
                for key in ("start_time", "end_time", "total_evaluation_time_seconds", "date"):
                    data.pop(key, None)
                data.get("config", {}).pop("throughput", None)
                data["config"].pop("model_args", None)
                out[str(p.relative_to(root))] = data
        return out

    return files(a) == files(b) and bool(files(a))


if __name__ == "__main__":
    main()
