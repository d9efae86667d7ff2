"""GPU throughput of `--model lmdeploy` against raw `Pipeline.infer`, and QCR vs QR wall time.

1. The same rendered deita prompts, greedy, same max_new_tokens, on ONE engine (prefix caching
   off so neither run reuses the other's prefill): `pipe.infer(prompts)` directly, then
   `LMDeployLM.generate_until` (the code path `lm_eval --model lmdeploy` runs). Target: the
   adapter keeps >= 95% of raw generated tokens/s.
2. `LMDeployLM.generate_chat_rounds` on the same conversations as QR (one round) and QCR (two
   rounds), prefix caching on. Prefix caching should keep QCR well under 2x QR's wall time.

Needs a CUDA GPU and lmdeploy's engine; without them it says so and exits 0.

    python benchmarks/lmdeploy_throughput.py --model Qwen/Qwen2-1.5B-Instruct \\
        [--backend pytorch] [--prompts 512] [--max-new-tokens 256] [--deita-path sample]
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def gpu_unavailable() -> str | None:
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible"
    try:
        import lmdeploy  # noqa: F401
        from lmdeploy import pipeline  # noqa: F401
    except ImportError as e:
        return f'lmdeploy is not installed ({e}); pip install "rgen-harness[lmdeploy]"'
    return None


def load_histories(path: str, n: int) -> list[list[dict[str, str]]]:
    from rgen_harness.data.deita import SAMPLE_PATH

    source = SAMPLE_PATH if path == "sample" else path
    roles = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
             "system": "system"}  # fmt: skip
    histories = []
    with open(source, encoding="utf-8") as f:
        for line in f:
            turns = json.loads(line)["conversations"]
            msgs = [{"role": roles[t["from"]], "content": t["value"]} for t in turns]
            while msgs and msgs[-1]["role"] == "assistant":
                msgs.pop()
            if msgs:
                histories.append(msgs)
    return [histories[i % len(histories)] for i in range(n)]


def row(name: str, n: int, wall: float, tokens: int, ref: float | None) -> str:
    rate = tokens / wall if wall else float("nan")
    ratio = f"{rate / ref:7.1%}" if ref else "      -"
    return f"{name:44} {n:7d} {wall:9.2f} {tokens:10d} {rate:10.1f} {ratio}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="Qwen/Qwen2-1.5B-Instruct")
    parser.add_argument("--backend", default="pytorch", choices=("pytorch", "turbomind"))
    parser.add_argument("--prompts", type=int, default=512)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--session-len", type=int, default=8192)
    parser.add_argument("--deita-path", default="sample")
    args = parser.parse_args(argv)

    reason = gpu_unavailable()
    if reason:
        print(f"lmdeploy throughput benchmark skipped: {reason}. Run it on a GPU machine.")
        return 0

    from lm_eval.api.instance import Instance
    from lmdeploy import GenerationConfig

    from rgen_harness.chat.protocol import REQUEST_TYPE, ChatRequest, ChatResult
    from rgen_harness.models.lmdeploy_lm import LMDeployLM
    from rgen_harness.prompts.qcr import load_qcr_prompts

    histories = load_histories(args.deita_path, args.prompts)
    common = dict(
        pretrained=args.model,
        backend=args.backend,
        session_len=args.session_len,
        max_gen_toks=args.max_new_tokens,
    )
    print(f"model {args.model}, backend {args.backend}, {len(histories)} prompts, "
          f"max_new_tokens {args.max_new_tokens}")  # fmt: skip
    header = f"{'path':44} {'prompts':>7} {'wall s':>9} {'gen tok':>10} {'tok/s':>10} {'vs raw':>7}"
    print(header)
    print("-" * len(header))

    # 1. adapter vs raw pipeline, one engine, no prefix caching
    lm = LMDeployLM(**common, enable_prefix_caching=False)
    budget = lm.max_length - args.max_new_tokens
    prompts = []
    for h in histories:
        text = lm.apply_chat_template(h)
        if len(lm.tok_encode(text)) < budget:
            prompts.append(text)
    config = GenerationConfig(max_new_tokens=args.max_new_tokens, do_sample=False)
    lm.engine.pipe.infer(prompts[:8], gen_config=config, do_preprocess=False)  # warm-up
    t0 = time.perf_counter()
    raw = lm.engine.pipe.infer(prompts, gen_config=config, do_preprocess=False)
    raw_wall = time.perf_counter() - t0
    raw_tokens = sum(r.generate_token_len for r in raw)
    raw_rate = raw_tokens / raw_wall
    print(row("raw Pipeline.infer", len(prompts), raw_wall, raw_tokens, None))

    requests = [
        Instance("generate_until", {}, (p, {"until": [], "max_gen_toks": args.max_new_tokens}), i)
        for i, p in enumerate(prompts)
    ]
    before = lm.throughput.by_type.get("generate_until")
    t0 = time.perf_counter()
    lm.generate_until(requests, disable_tqdm=True)
    wall = time.perf_counter() - t0
    tokens = lm.throughput.by_type["generate_until"].generated_tokens - (
        before.generated_tokens if before else 0
    )
    print(row("LMDeployLM.generate_until (lm_eval path)", len(prompts), wall, tokens, raw_rate))
    lm.release()

    # 2. QR vs QCR through the multi-round path, prefix caching on
    lm = LMDeployLM(**common, enable_prefix_caching=True)
    gen_kwargs = {"until": [], "max_gen_toks": args.max_new_tokens, "do_sample": False}
    walls = {}
    for name, rounds in (("QR", [[]]), ("QCR", load_qcr_prompts(None).rounds())):
        chat = [
            Instance(
                REQUEST_TYPE,
                {},
                (ChatRequest.build(doc_id=str(i), messages=h, rounds=rounds), dict(gen_kwargs)),
                i,
            )
            for i, h in enumerate(histories)
        ]
        t0 = time.perf_counter()
        results = [ChatResult.from_json(r) for r in lm.generate_chat_rounds(chat, True)]
        walls[name] = time.perf_counter() - t0
        tokens = sum(r.reply_tokens or 0 for res in results for r in res.rounds)
        ok = sum(res.status == "ok" for res in results)
        print(row(f"generate_chat_rounds {name} ({ok} ok)", len(chat), walls[name], tokens, None))
    lm.release()
    print(f"\nQCR / QR wall time: {walls['QCR'] / walls['QR']:.2f}x (target: well under 2x)")
    print("vs raw: generated tokens/s relative to raw Pipeline.infer (target >= 95%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
