"""`rgen-harness demo`: the offline smoke run.

Builds tiny random-weight models (if missing) and runs the real `lm_eval` command on the bundled
deita sample for deita_qr and deita_qcr on the CPU. It proves the pipeline runs end to end; the
models are random, so the scores mean nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

BANNER = (
    "SMOKE RUN: tiny random-weight models on the bundled 8-conversation sample, CPU.\n"
    "It shows that the pipeline runs; the scores below mean nothing."
)


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="offline smoke run on tiny random models (CPU, ~1 minute)")
    p.add_argument(
        "--work-dir",
        type=Path,
        default=Path("demo_out"),
        help="where models and results go (default: ./demo_out)",
    )
    p.add_argument("--limit", type=int, default=None, help="conversations per task")
    p.add_argument("--max-gen-toks", type=int, default=32)


def lm_eval_command(
    model_dir: Path,
    out_dir: Path,
    *,
    limit: int | None,
    max_gen_toks: int,
    extra_metadata: dict | None = None,
) -> list[str]:
    lm_eval = shutil.which("lm_eval") or "lm_eval"
    metadata = {"deita_path": "sample", **(extra_metadata or {})}
    cmd = [
        lm_eval,
        "--model",
        "hf",
        "--model_args",
        f"pretrained={model_dir}",
        "--device",
        "cpu",
        "--tasks",
        "deita_qr,deita_qcr",
        "--metadata",
        json.dumps(metadata),
        "--gen_kwargs",
        f"max_gen_toks={max_gen_toks}",
        "--log_samples",
        "--output_path",
        str(out_dir),
        "--bootstrap_iters",
        "100",
    ]
    if limit:
        cmd += ["--limit", str(limit)]
    return cmd


def run(args) -> int:
    from rgen_harness.smoke.tiny_models import build_chat_model

    work = args.work_dir.resolve()
    print(BANNER, flush=True)
    model_dir = build_chat_model(work / "models" / "chat")
    cmd = lm_eval_command(
        model_dir, work / "results", limit=args.limit, max_gen_toks=args.max_gen_toks
    )
    print("$ " + " ".join(cmd), flush=True)
    env = dict(
        os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false"
    )
    code = subprocess.call(cmd, env=env)
    print(BANNER)
    return code
