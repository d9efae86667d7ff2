"""A small OpenAI-compatible server for tests: a tiny transformers model on 127.0.0.1.

`/v1/chat/completions` (messages rendered with the model's chat template) and `/v1/completions`
(a text prompt or token ids), greedy, with `usage`, `finish_reason` and stop strings, like
lmdeploy's api_server and vLLM's. Two model names share the weights with different context
lengths: `--model-name` (`--max-len`) and `<model-name>-small` (`--small-max-len`); a request
over its limit gets HTTP 400 with the server's message, as real servers answer. A prompt that
contains `FAIL_MARKER` gets HTTP 500. With `--scripted-judge`, chat replies are not generated
but given by `scripted_judge.verdict(last user message)` (a judge with known verdicts). With
`--log-file`, every request body is appended to it as one JSON line (tests check what arrived).
The process exits after `--max-seconds` or `--max-requests`, whichever comes first (a test
that forgets it cannot leave it running).

    python openai_server.py --model DIR --port P [--max-len 1024] [--small-max-len 200]
"""

import argparse
import json
import os
import threading
import time

FAIL_MARKER = "INJECT_SERVER_ERROR_500"


def build_app(
    model_dir: str,
    name: str,
    max_len: int,
    small_max_len: int,
    max_requests: int,
    log_file=None,
    scripted_judge: bool = False,
):
    import torch
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    limits = {name: max_len, f"{name}-small": small_max_len}
    app = FastAPI()
    lock = threading.Lock()
    served = {"requests": 0}

    def error(status: int, message: str) -> JSONResponse:
        body = {"object": "error", "message": message, "type": "invalid_request_error"}
        return JSONResponse(body, status_code=status)

    def generate(ids: list[int], body: dict) -> tuple[str, int, str]:
        max_tokens = int(body.get("max_tokens") or 16)
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        with lock, torch.no_grad():
            out = model.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=max_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
            )
        new = out[0, len(ids) :].tolist()
        finish = "length" if len(new) >= max_tokens else "stop"
        if tokenizer.eos_token_id in new:
            new, finish = new[: new.index(tokenizer.eos_token_id)], "stop"
        text = tokenizer.decode(new, skip_special_tokens=False)
        for s in stop:
            if s and s in text:
                text, finish = text[: text.index(s)], "stop"
        return text, len(new), finish

    def admit(body: dict, ids: list[int], text: str) -> JSONResponse | None:
        served["requests"] += 1
        if log_file:
            with open(log_file, "a", encoding="utf-8") as f:
                f.write(json.dumps(body, ensure_ascii=False) + "\n")
        if served["requests"] > max_requests:
            return error(503, f"request limit {max_requests} of this test server reached")
        limit = limits.get(body.get("model"))
        if limit is None:
            return error(404, f"model {body.get('model')!r} not served; serving {list(limits)}")
        if FAIL_MARKER in text:
            return error(500, "injected internal error")
        wanted = len(ids) + int(body.get("max_tokens") or 16)
        if wanted > limit:
            return error(
                400,
                f"This model's maximum context length is {limit} tokens. However, you requested "
                f"{wanted} tokens ({len(ids)} in the messages, {wanted - len(ids)} in the "
                "completion).",
            )
        return None

    def usage(prompt: int, completion: int) -> dict:
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        messages = body["messages"]
        ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
        if not isinstance(ids, list):  # transformers 5 returns a BatchEncoding
            ids = list(ids["input_ids"])
        rendered = tokenizer.decode(ids)
        rejected = admit(body, ids, rendered)
        if rejected is not None:
            return rejected
        if scripted_judge:
            from scripted_judge import verdict

            text = verdict(messages[-1]["content"])
            n, finish = len(tokenizer(text, add_special_tokens=False).input_ids), "stop"
        else:
            text, n, finish = generate(ids, body)
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish,
        }
        return {"object": "chat.completion", "choices": [choice], "usage": usage(len(ids), n)}

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await request.json()
        prompt = body["prompt"]
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (list, str)):
            prompt = prompt[0]  # a batch of one
        if isinstance(prompt, str):
            ids = tokenizer(prompt, add_special_tokens=False).input_ids
        elif isinstance(prompt, list) and all(isinstance(t, int) for t in prompt):
            ids = prompt
        else:
            return error(400, f"prompt must be a string or token ids, got {str(prompt)[:100]}")
        rejected = admit(body, ids, tokenizer.decode(ids))
        if rejected is not None:
            return rejected
        text, n, finish = generate(ids, body)
        choice = {"index": 0, "text": text, "finish_reason": finish}
        return {"object": "text_completion", "choices": [choice], "usage": usage(len(ids), n)}

    return app


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--model-name", default="tiny")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--max-len", type=int, default=1024)
    p.add_argument("--small-max-len", type=int, default=200)
    p.add_argument("--max-requests", type=int, default=2000)
    p.add_argument("--max-seconds", type=float, default=600)
    p.add_argument("--log-file", default=None)
    p.add_argument("--scripted-judge", action="store_true")
    args = p.parse_args()

    import uvicorn

    app = build_app(
        args.model,
        args.model_name,
        args.max_len,
        args.small_max_len,
        args.max_requests,
        args.log_file,
        args.scripted_judge,
    )
    deadline = time.monotonic() + args.max_seconds

    def watchdog() -> None:
        while time.monotonic() < deadline:
            time.sleep(1)
        os._exit(3)

    threading.Thread(target=watchdog, daemon=True).start()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
