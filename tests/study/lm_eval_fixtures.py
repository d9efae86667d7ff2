"""Hand-written lm-eval output folders in lm-eval 0.4.13's exact file format.

`results_<ts>.json` and `samples_<task>_<ts>.jsonl` under `<run>/<model name sanitized>/`, each
sample line with doc_id, doc (id, messages, reference, problem), target, arguments, resps,
filtered_resps (a ChatResult JSON), filter, metrics and the per-sample metric values.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

TS = "2026-01-01T00-00-00.000001"


def chat_result(reply: str, *, status: str = "ok", dropped: int = 0, rounds: int = 1) -> str:
    recs = (
        [
            {
                "prompt": f"<prompt {i}>",
                "reply": reply if i == rounds - 1 else "# Criteria List",
                "prompt_tokens": 50,
                "reply_tokens": 7,
                "finish_reason": "stop",
            }
            for i in range(rounds)
        ]
        if status == "ok"
        else []
    )
    return json.dumps(
        {
            "status": status,
            "reason": None,
            "dropped_turns": dropped,
            "rounds": recs,
            "scores": {},
            "reply": reply if status == "ok" else "",
        }
    )


def sample_line(doc_id: int, conv_id: str, values: dict, *, status="ok", qcr=False, dropped=0):
    reply = (
        "x" * int(values.get("reply_chars", 10))
        if math.isfinite(values.get("reply_chars", 10))
        else ""
    )
    resp = chat_result(reply, status=status, dropped=dropped, rounds=2 if qcr else 1)
    doc = {
        "id": conv_id,
        "source": "fixture",
        "row": doc_id,
        "messages": [{"role": "user", "content": f"question {conv_id}"}],
        "reference": "the reference",
        "problem": "",
    }
    line = {
        "doc_id": doc_id,
        "doc": doc,
        "target": "the reference",
        "arguments": {"gen_args_0": {"arg_0": "{}", "arg_1": {}}},
        "resps": [[resp]],
        "filtered_resps": [resp],
        "filter": "none",
        "metrics": sorted(values),
        "doc_hash": "0",
        "prompt_hash": "0",
        "target_hash": "0",
    }
    line.update(values)
    return line


def write_run(
    run_dir: Path,
    *,
    model_name: str,
    model_args: dict,
    tasks: dict[str, list[dict]],
    extra_results: dict[str, dict] | None = None,
    group_subtasks: dict | None = None,
    ts: str = TS,
    config_extra: dict | None = None,
    wall_s: float = 12.5,
) -> Path:
    """One lm_eval run: `tasks` maps a deita task to its sample lines; `extra_results` maps
    other tasks (benchmarks) to their results entries."""
    sanitized = model_name.replace("/", "__")
    out = run_dir / sanitized
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for task, lines in tasks.items():
        with open(out / f"samples_{task}_{ts}.jsonl", "w", encoding="utf-8") as f:
            for line in lines:
                f.write(json.dumps(line, allow_nan=True) + "\n")
        entry = {"alias": task, "sample_len": len(lines)}
        for key in ("reward", "reply_chars", "dropped_turns"):
            vals = np.array([ln.get(key, math.nan) for ln in lines], float)
            if np.isfinite(vals).any():
                entry[f"{key},none"] = float(np.nanmean(vals))
                entry[f"{key}_stderr,none"] = "N/A"
        results[task] = entry
    results.update(extra_results or {})
    config = {"model": "hf", "model_args": model_args, "batch_size": 1}
    config.update(config_extra or {})
    data = {
        "results": results,
        "group_subtasks": group_subtasks or {},
        "configs": {},
        "config": config,
        "model_name": model_name,
        "model_name_sanitized": sanitized,
        "lm_eval_version": "0.4.13",
        "transformers_version": "5.0",
        "pretty_env_info": "GPU models and configuration: GPU 0: NVIDIA H100 80GB HBM3\n"
        "Model name: Test CPU\nCPU(s): 16\n",
        "total_evaluation_time_seconds": str(wall_s),
        # lm-eval's count of the samples it evaluated (and logged) per task
        "n-samples": {t: {"original": len(ls), "effective": len(ls)} for t, ls in tasks.items()},
    }
    (out / f"results_{ts}.json").write_text(json.dumps(data, allow_nan=True))
    return out


def paired_fixture(n: int = 40, seed: int = 0) -> dict[str, dict[str, list[dict]]]:
    """QR and QCR sample lines for one model: rewards correlated with length, some NaN rewards,
    one skipped and one failed reply, truncation in QCR, and the conversations in another
    order in the QCR file (pairing must follow the conversation id, not the line)."""
    rng = np.random.default_rng(seed)
    ids = [f"conv-{i:03d}" for i in range(n)]
    difficulty = rng.normal(0, 1, n)
    qr_len = rng.integers(200, 2000, n).astype(float)
    qcr_len = qr_len * rng.uniform(1.0, 1.8, n)
    ref = difficulty + rng.normal(0, 0.5, n)
    qr_reward = difficulty + 0.3 * np.log1p(qr_len) + rng.normal(0, 0.3, n)
    qcr_reward = difficulty + 0.3 * np.log1p(qcr_len) + 0.2 + rng.normal(0, 0.3, n)
    qr_reward[3] = math.nan  # not scored
    qcr_reward[5] = math.nan
    qr, qcr = [], []
    for i, cid in enumerate(ids):
        base = {
            "reference_reward": float(ref[i]),
            "reward_failed": 0.0,
            "skipped": 0.0,
            "failed": 0.0,
        }
        qr_status = "skipped" if i == 7 else "ok"
        qr_vals = {
            **base,
            "reward": float(qr_reward[i]),
            "reply_chars": float(qr_len[i]),
            "reply_tokens": float(qr_len[i] / 4),
            "dropped_turns": 0.0,
        }
        if qr_status == "skipped":
            qr_vals.update(
                reward=math.nan,
                reply_chars=math.nan,
                reply_tokens=math.nan,
                dropped_turns=math.nan,
                skipped=1.0,
            )
        if i == 3:
            qr_vals["reward_failed"] = 1.0
        qr.append(sample_line(i, cid, qr_vals, status=qr_status))
        qcr_status = "failed" if i == 9 else "ok"
        qcr_vals = {
            **base,
            "reward": float(qcr_reward[i]),
            "reply_chars": float(qcr_len[i]),
            "reply_tokens": float(qcr_len[i] / 4),
            "criteria_chars": 300.0,
            "dropped_turns": 1.0 if i % 10 == 0 else 0.0,
        }
        if qcr_status == "failed":
            qcr_vals.update(
                reward=math.nan,
                reply_chars=math.nan,
                reply_tokens=math.nan,
                dropped_turns=math.nan,
                failed=1.0,
                criteria_chars=math.nan,
            )
        qcr.append(
            sample_line(
                i,
                cid,
                qcr_vals,
                status=qcr_status,
                qcr=True,
                dropped=0 if qcr_status == "failed" else int(qcr_vals["dropped_turns"]),
            )
        )
    qcr = qcr[::-1]
    return {"deita_qr": qr, "deita_qcr": qcr}
