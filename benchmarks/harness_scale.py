"""The harness's own cost at deita-6k scale: `lm_eval` on deita_qr + deita_qcr over an engine
that answers at once and over one that takes a GPU's time, on both paths: `--model lmdeploy`
(benchmarks/sim_engine.py in place of lmdeploy's engine) and a served model, `--model
local-completions` or `local-chat-completions` against an OpenAI-compatible server on 127.0.0.1
(benchmarks/served_engine.py, the same two engines behind HTTP).

Generates a seeded synthetic deita set (1 + Poisson(4) turn pairs, lognormal turn lengths,
~21.7k characters per conversation, `--chinese` of them Chinese, default 10%; no network),
trains a byte-level BPE tokenizer on it (`--vocab`, default 32,000: a real-size vocabulary
tokenises slower than the 600-token test ones) with Qwen2's chat template, and runs the real
`lm_eval` command once per model and engine. Prints wall time, the engine's time, the time added
over it, the time from data loaded to the first engine call (request), time per stage (budget =
rendering + counting, possibly overlapping the engine), the CPU seconds of `lm_eval` and of the
server (on a shared machine wall time varies with the load, CPU time much less), the logged
samples' size and the peak RSS of `lm_eval` (the server runs in a process of its own).

    python benchmarks/harness_scale.py [--n 6000] [--engines instant,sim] [--label after]
    python benchmarks/harness_scale.py --models lmdeploy,local-completions --n 2000
    python benchmarks/harness_scale.py --pythonpath /tmp/before --label before   # another tree
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SYLLABLES = [c + v for c in "bcdfghklmnprstvwz" for v in "aeiou"] + ["th", "ing", "er", "on"]


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((1, 1, 2, 2, 3))))


def _turn(rng: random.Random, chars: int, chinese: bool, words: list[str]) -> str:
    out, n = [], 0
    while n < chars:
        if chinese:
            piece = "".join(chr(0x4E00 + rng.randrange(600)) for _ in range(rng.randint(2, 12)))
            piece += rng.choice("，。！？\n")
        else:
            piece = rng.choice(words) + rng.choice("     ,.\n")
        out.append(piece)
        n += len(piece)
    return "".join(out)


def make_dataset(path: Path, n: int, seed: int, chinese_share: float = 0.1) -> float:
    """Writes n conversations; returns the mean characters per conversation."""
    rng = random.Random(seed)
    words = [_word(rng) for _ in range(5000)]
    mu = math.log(2170) - 0.5  # lognormal(mu, 1): mean 2,170 characters per turn
    total = 0
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            chinese = rng.random() < chinese_share
            pairs = 1 + _poisson(rng, 4)
            conv = []
            for _ in range(pairs):
                for who in ("human", "gpt"):
                    text = _turn(rng, int(rng.lognormvariate(mu, 1.0)) + 1, chinese, words)
                    conv.append({"from": who, "value": text})
                    total += len(text)
            f.write(json.dumps({"id": f"s{i}", "conversations": conv}, ensure_ascii=False) + "\n")
    return total / max(n, 1)


def _poisson(rng: random.Random, lam: float) -> int:
    k, p, limit = 0, 1.0, math.exp(-lam)
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def make_model(folder: Path, data: Path, vocab: int) -> Path:
    """A Qwen2-instruct-like model folder whose tokenizer is a `vocab`-token BPE trained on data."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from rgen_harness.smoke.families import FAMILIES, build_family_model

    build_family_model(folder, "qwen2-instruct")
    if vocab <= 600:
        return folder
    family = FAMILIES["qwen2-instruct"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=list(family.special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    with open(data, encoding="utf-8") as f:
        lines = [line for _, line in zip(range(500), f, strict=False)]  # ~10 MB is plenty
    texts = [t["value"] for line in lines for t in json.loads(line)["conversations"]]
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=family.eos,
        pad_token=family.pad,
        additional_special_tokens=[t for t in family.special_tokens if t not in (family.eos,)],
    )
    fast.chat_template = family.chat_template()
    fast.save_pretrained(folder)
    return folder


# -- the child: lm_eval with timers around the stages ------------------------------------------
def child(out: str, argv: list[str]) -> int:
    """Runs `lm_eval argv` with the stages timed; writes the times to `out` (JSON)."""
    import atexit

    import lm_eval.api.model as lm_model
    from lm_eval.__main__ import cli_evaluate
    from lm_eval.loggers.evaluation_tracker import EvaluationTracker

    import rgen_harness.chat.runner as runner
    import rgen_harness.tasks.deita as deita
    from rgen_harness.chat.protocol import REQUEST_TYPE
    from rgen_harness.models.lmdeploy_lm import LMDeployLM

    times = {"start": time.time(), "data_loaded": None}

    def timed(owner, name, key, mark=None):
        original = getattr(owner, name, None)
        if original is None:
            return

        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                times[key] = times.get(key, 0.0) + time.perf_counter() - t0
                if mark:
                    times[mark] = time.time()

        setattr(owner, name, wrapper)

    timed(deita, "load_source", "load_data_s", mark="data_loaded")
    timed(runner, "_prepare", "budget_s")  # the code before: one conversation at a time
    timed(runner, "_prepare_many", "budget_s")
    timed(LMDeployLM, REQUEST_TYPE, "chat_rounds_s")
    timed(lm_model.LM, REQUEST_TYPE, "chat_rounds_s")  # every other model: API models too
    timed(deita.DeitaTask, "apply_filters", "scoring_s")
    timed(EvaluationTracker, "save_results_samples", "write_samples_s")
    atexit.register(lambda: Path(out).write_text(json.dumps(times)))
    sys.argv = ["lm_eval", *argv]
    return cli_evaluate() or 0


# -- the parent ---------------------------------------------------------------------------------
SERVED = {"local-completions": "/v1/completions", "local-chat-completions": "/v1/chat/completions"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args, engine: str, engine_file: Path, log_file: Path):
    """benchmarks/served_engine.py on a free port, once it answers; (process, port)."""
    port = _free_port()
    cmd = [sys.executable, str(HERE / "served_engine.py"), "--port", str(port)]
    cmd += ["--engine", engine, "--log", str(engine_file), "--reply_tokens", str(args.reply)]
    cmd += ["--prefill_tps", str(args.prefill_tps), "--decode_tps", str(args.decode_tps)]
    proc = subprocess.Popen(cmd, stdout=log_file.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"served_engine.py exited with {proc.returncode}, see {log_file}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError as e:
            if time.time() > deadline:
                proc.kill()
                raise SystemExit(f"served_engine.py did not answer on port {port} in 60 s") from e
            time.sleep(0.2)


def stop_server(proc) -> None:
    import signal

    proc.send_signal(signal.SIGINT)  # aiohttp shuts down and writes its stats
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def model_args(args, model_name: str, model: Path, port: int | None) -> str:
    if model_name == "lmdeploy":
        return f"pretrained={model},session_len={args.session_len}"
    return (
        f"model=bench,base_url=http://127.0.0.1:{port}{SERVED[model_name]},"
        f"tokenizer_backend=huggingface,tokenizer={model},max_length={args.session_len},"
        f"num_concurrent={args.num_concurrent},max_retries=3,timeout=600"
    )


def run_one(args, model_name: str, engine: str, data: Path, model: Path, work: Path) -> dict:
    name = f"{model_name}_{engine}"
    out_dir = work / f"out_{args.label}_{name}".replace(" ", "_")
    shutil.rmtree(out_dir, ignore_errors=True)  # samples_mb counts this run's files only
    stage_file, engine_file = work / "stages.json", work / "engine.json"
    for f in (stage_file, engine_file):
        f.unlink(missing_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (args.pythonpath, str(HERE), env.get("PYTHONPATH")) if p
    )
    env["RGEN_HARNESS_LMDEPLOY_ENGINE"] = f"sim_engine:build_{engine}_engine"
    env["RGEN_SIM_ENGINE_LOG"] = str(engine_file)
    env["RGEN_SIM_PREFILL_TPS"] = str(args.prefill_tps)
    env["RGEN_SIM_DECODE_TPS"] = str(args.decode_tps)
    env["RGEN_SIM_REPLY_TOKENS"] = str(args.reply)
    env["TOKENIZERS_PARALLELISM"] = "true"
    env["HF_HUB_OFFLINE"] = "1"
    server = port = None
    if model_name != "lmdeploy":
        server, port = start_server(args, engine, engine_file, work / f"server_{name}.log")
    meta = {"deita_path": str(data), "scorers": args.scorers}
    lm_args = [
        "--model",
        model_name,
        "--model_args",
        model_args(args, model_name, model, port),
        "--gen_kwargs",
        f"max_gen_toks={args.max_gen_toks}",
        "--tasks",
        args.tasks,
        "--metadata",
        json.dumps(meta),
        "--log_samples",
        "--output_path",
        str(out_dir),
    ]
    cmd = [sys.executable, __file__, "--child", str(stage_file), "--", *lm_args]
    t0 = time.time()
    log_file = work / f"lm_eval_{name}.log"
    try:
        with open(log_file, "wb") as log:
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(proc.pid, 0)
        wall = time.time() - t0
    finally:
        if server is not None:
            stop_server(server)
    if os.waitstatus_to_exitcode(status) != 0:
        tail = log_file.read_text(errors="replace")[-3000:]
        raise SystemExit(f"lm_eval failed ({name}), see {log_file}:\n{tail}")
    stages = json.loads(stage_file.read_text()) if stage_file.exists() else {}
    eng = json.loads(engine_file.read_text()) if engine_file.exists() else {}
    samples = sum(p.stat().st_size for p in out_dir.rglob("samples_*.jsonl"))
    first = eng.get("first_call")
    loaded = stages.get("data_loaded")
    engine_s = eng.get("engine_s", 0.0)
    return {
        "label": args.label,
        "model": model_name,
        "engine": engine,
        "wall_s": wall,
        "engine_s": engine_s,
        "added_s": wall - engine_s,
        "added_pct": 100 * (wall - engine_s) / engine_s if engine_s > 0.5 else float("nan"),
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "server_cpu_s": eng.get("cpu_s", float("nan")),
        "first_call_s": (first - loaded) if first and loaded else float("nan"),
        "calls": eng.get("calls"),
        "budget_s": stages.get("budget_s", float("nan")),
        "chat_rounds_s": stages.get("chat_rounds_s", float("nan")),
        "scoring_s": stages.get("scoring_s", float("nan")),
        "write_s": stages.get("write_samples_s", float("nan")),
        "samples_mb": samples / 1e6,
        "peak_rss_gb": usage.ru_maxrss / 1e6,
    }


COLUMNS = [
    ("label", "{}"),
    ("model", "{}"),
    ("engine", "{}"),
    ("wall_s", "{:.1f}"),
    ("engine_s", "{:.1f}"),
    ("added_s", "{:.1f}"),
    ("added_pct", "{:.1f}"),
    ("cpu_s", "{:.1f}"),
    ("server_cpu_s", "{:.1f}"),
    ("first_call_s", "{:.1f}"),
    ("calls", "{}"),
    ("budget_s", "{:.1f}"),
    ("chat_rounds_s", "{:.1f}"),
    ("scoring_s", "{:.1f}"),
    ("write_s", "{:.1f}"),
    ("samples_mb", "{:.0f}"),
    ("peak_rss_gb", "{:.2f}"),
]


def table(rows: list[dict]) -> str:
    head = "| " + " | ".join(c for c, _ in COLUMNS) + " |"
    lines = [head, "|" + "---|" * len(COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join(fmt.format(r[c]) for c, fmt in COLUMNS) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child(argv[1], argv[3:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=6000, help="conversations (deita-6k: 6000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vocab", type=int, default=32000, help="BPE vocabulary (600: tiny)")
    parser.add_argument("--engines", default="instant,sim")
    parser.add_argument(
        "--models",
        default="lmdeploy,local-completions",
        help="lmdeploy, local-completions, local-chat-completions (comma-separated)",
    )
    parser.add_argument("--chinese", type=float, default=0.1, help="share of Chinese rows")
    parser.add_argument("--max_gen_toks", type=int, default=512)
    parser.add_argument("--reply", type=int, default=256, help="tokens of every reply")
    parser.add_argument("--num_concurrent", type=int, default=32, help="served: requests at once")
    parser.add_argument("--tasks", default="deita_qr,deita_qcr")
    parser.add_argument("--scorers", default="rouge", help="--metadata scorers (no reward)")
    parser.add_argument("--session_len", type=int, default=32768)
    parser.add_argument("--prefill_tps", type=float, default=30000)
    parser.add_argument("--decode_tps", type=float, default=4000)
    parser.add_argument("--label", default="this tree")
    parser.add_argument("--pythonpath", default=None, help="run another rgen_harness tree")
    parser.add_argument("--work", default=None, help="folder for data and model (default: temp)")
    args = parser.parse_args(argv)

    work = Path(args.work or Path(tempfile.gettempdir()) / "rgen_harness_scale")
    work.mkdir(parents=True, exist_ok=True)
    for model_name in args.models.split(","):
        if model_name != "lmdeploy" and model_name not in SERVED:
            parser.error(f"--models: unknown {model_name!r}; use lmdeploy, {', '.join(SERVED)}")
    data = work / f"deita_synth_{args.n}_{args.seed}_zh{args.chinese:g}.jsonl"
    if not data.exists():
        mean = make_dataset(data, args.n, args.seed, args.chinese)
        print(f"data: {data} ({data.stat().st_size / 1e6:.0f} MB, {mean:.0f} chars/conversation)")
    model = work / f"model_v{args.vocab}_s{args.seed}_zh{args.chinese:g}"
    if not (model / "tokenizer.json").exists():
        make_model(model, data, args.vocab)
    rows = [
        run_one(args, m, e, data, model, work)
        for e in args.engines.split(",")
        for m in args.models.split(",")
    ]
    print(
        f"n={args.n}, vocab={args.vocab}, chinese={args.chinese:g}, tasks={args.tasks}, "
        f"scorers={args.scorers}, max_gen_toks={args.max_gen_toks}, reply={args.reply} tokens, "
        f"served: num_concurrent={args.num_concurrent}"
    )
    print(table(rows))
    with open(work / "results.jsonl", "a", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({**r, "n": args.n, "vocab": args.vocab}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
