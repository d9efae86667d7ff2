"""OpenAI-compatible servers on 127.0.0.1 that cost the harness nothing but their own time: the
served counterpart of `sim_engine.py`, for `lm_eval --model local-completions` and
`local-chat-completions`.

- `--engine instant`: answers every request at once (what is left is the harness's time);
- `--engine sim`: a GPU that works through the requests in arrival order at the stated
  throughputs (`--prefill_tps` prompt tokens/s, `--decode_tps` generated tokens/s): a request is
  answered when the GPU has done the work of every earlier one and its own, so the harness's CPU
  work can overlap it as it would overlap a real server (requests in flight share the GPU).

Both answer `/v1/completions` and `/v1/chat/completions` with a fixed reply of `--reply_tokens`
tokens (as `sim_engine`: "answer " repeated, finish_reason "length") and `usage`. The request
body is never parsed (a real server parses it on its own CPUs, not the harness's): the prompt
tokens of a completions request are its ids, counted as the commas of its `prompt` array plus
one; those of a chat or text request are estimated as a quarter of its body's bytes. With
`--log`, writes there (JSON) at exit when it started, when the first and last requests came and
went, how many it served, the GPU's busy seconds (`engine_s`) and its own CPU seconds.

    python benchmarks/served_engine.py --port 8000 [--engine sim --prefill_tps 30000 ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

REPLY_WORD = "answer "
BYTES_PER_CHAT_TOKEN = 4


def prompt_tokens(body: bytes) -> tuple[int, bool]:
    """(prompt tokens, exact?) of a request body, without parsing it."""
    key = body.find(b'"prompt"')
    if key >= 0:
        value = body[body.find(b":", key) + 1 :].lstrip()
        if value[:1] == b"[" and value.lstrip(b"[ ")[:1] != b'"':  # token ids, not text
            inner = value[: value.find(b"]")].lstrip(b"[ ")
            return (inner.count(b",") + 1 if inner.strip() else 0), True
    return len(body) // BYTES_PER_CHAT_TOKEN, False


class Gpu:
    """A device working through requests one after another at the given throughputs."""

    def __init__(self, prefill_tps: float | None, decode_tps: float | None, reply: int) -> None:
        self.prefill_tps, self.decode_tps, self.reply = prefill_tps, decode_tps, reply
        self.busy_until = 0.0
        self.stats = {
            "built": time.time(),
            "first_call": None,
            "last_end": None,
            "calls": 0,
            "prompts": 0,
            "prompt_tokens": 0,
            "engine_s": 0.0,
        }

    async def run(self, tokens: int) -> None:
        now = time.time()
        if self.stats["first_call"] is None:
            self.stats["first_call"] = now
        self.stats["calls"] += 1
        self.stats["prompts"] += 1
        self.stats["prompt_tokens"] += tokens
        if self.prefill_tps:
            work = tokens / self.prefill_tps + self.reply / self.decode_tps
            self.busy_until = max(now, self.busy_until) + work
            self.stats["engine_s"] += work
            await asyncio.sleep(max(0.0, self.busy_until - now))
        self.stats["last_end"] = time.time()


def build_app(gpu: Gpu, log: str | None):
    from aiohttp import web

    text = REPLY_WORD * gpu.reply

    async def answer(request, chat: bool):
        body = await request.read()
        tokens, exact = prompt_tokens(body) if (gpu.prefill_tps or not chat) else (0, False)
        await gpu.run(tokens)
        usage = {"completion_tokens": gpu.reply}
        if exact and not chat:
            usage.update(prompt_tokens=tokens, total_tokens=tokens + gpu.reply)
        if chat:
            message = {"role": "assistant", "content": text}
            choice = {"index": 0, "message": message, "finish_reason": "length"}
        else:
            choice = {"index": 0, "text": text, "finish_reason": "length"}
        return web.json_response({"choices": [choice], "usage": usage})

    async def completions(request):
        return await answer(request, chat=False)

    async def chat_completions(request):
        return await answer(request, chat=True)

    async def write_stats(app) -> None:
        import resource

        usage = resource.getrusage(resource.RUSAGE_SELF)
        gpu.stats["cpu_s"] = usage.ru_utime + usage.ru_stime
        if log:
            with open(log, "w", encoding="utf-8") as f:
                json.dump(gpu.stats, f)

    app = web.Application(client_max_size=1 << 30)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.on_cleanup.append(write_stats)
    return app


def main(argv: list[str] | None = None) -> None:
    from aiohttp import web

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--engine", choices=("instant", "sim"), default="instant")
    p.add_argument("--prefill_tps", type=float, default=30000)
    p.add_argument("--decode_tps", type=float, default=4000)
    p.add_argument("--reply_tokens", type=int, default=256)
    p.add_argument("--log", default=None)
    args = p.parse_args(argv)
    sim = args.engine == "sim"
    gpu = Gpu(
        args.prefill_tps if sim else None, args.decode_tps if sim else None, args.reply_tokens
    )
    web.run_app(
        build_app(gpu, args.log), host="127.0.0.1", port=args.port, print=None, access_log=None
    )


if __name__ == "__main__":
    main()
