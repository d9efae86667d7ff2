"""The deita tasks through lm-eval's OpenAI-compatible API models against a real HTTP server on
127.0.0.1 (tests/served/openai_server.py: a tiny model, /v1/chat/completions and /v1/completions
with `usage`, HTTP 400 over its context length, HTTP 500 on a marker)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from deita_rows_util import conversation, write_rows
from openai_server import FAIL_MARKER
from openai_server_util import openai_server

pytestmark = pytest.mark.slow

MAX_GEN = 8
SMALL = 200  # the `tiny-small` model's context length on the server
LONG = " ".join(f"detail{i}" for i in range(60))


def write_data(path: Path) -> Path:
    def row(i, *turns):
        return conversation(f"s{i}", *turns)

    rows = [
        row(0, ("system", "You are terse."), ("human", "Name a prime."), ("gpt", "7")),
        row(
            1,
            ("human", "Tell me about Paris. " + LONG),
            ("gpt", "It is big. " + LONG),
            ("human", "And Lyon?"),
            ("gpt", "Smaller."),
        ),
        row(2, ("human", f"Please answer. {FAIL_MARKER}"), ("gpt", "x")),
        row(3, ("human", "你好，介绍一下长城。"), ("gpt", "长城很长。")),
        row(4, ("human", "Summarise: " + LONG), ("gpt", "ok")),  # fits 1024 tokens, not 200
    ]
    return write_rows(path, rows)


class Server(str):
    """The server's base URL; `requests_since(mark)` are the bodies it received after `mark`."""

    log: Path

    def mark(self) -> int:
        return len(self.received())

    def received(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text("utf-8").splitlines()]

    def requests_since(self, mark: int) -> list[dict]:
        return self.received()[mark:]


@pytest.fixture(scope="module")
def server(tiny_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("server")
    with openai_server(tiny_dir / "chat", folder, "--small-max-len", str(SMALL)) as url:
        base = Server(url)
        base.log = folder / "requests.jsonl"
        yield base


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp("served") / "rows.jsonl")


def evaluate(
    model: str, model_args: str, data: Path, tasks=("deita_qr", "deita_qcr"), server=None
) -> dict:
    from lm_eval import simple_evaluate

    mark = server.mark() if server is not None else 0
    out = simple_evaluate(
        model=model,
        model_args=model_args,
        tasks=list(tasks),
        metadata={"deita_path": str(data), "scorers": "none"},
        gen_kwargs=f"max_gen_toks={MAX_GEN}",
        log_samples=True,
        bootstrap_iters=0,
    )
    samples = {
        task: {s["doc"]["id"]: json.loads(s["filtered_resps"][0]) for s in rows}
        for task, rows in out["samples"].items()
    }
    received = server.requests_since(mark) if server is not None else []
    return {"results": out["results"], "samples": samples, "received": received}


def chat_args(base: str, tiny_dir: Path, *, model="tiny", max_length=1024, tokenizer=True) -> str:
    args = f"model={model},base_url={base}/v1/chat/completions,max_retries=2"
    args += f",max_length={max_length}" if max_length else ""
    if tokenizer:
        args += f",tokenizer_backend=huggingface,tokenizer={tiny_dir / 'chat'}"
    return args


def completion_args(base: str, tiny_dir: Path, *, model="tiny", max_length=1024) -> str:
    return (
        f"model={model},base_url={base}/v1/completions,max_retries=2,max_length={max_length},"
        f"tokenizer_backend=huggingface,tokenizer={tiny_dir / 'chat'}"
    )


def chat_ids(tokenizer, messages) -> list[int]:
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    return ids if isinstance(ids, list) else list(ids["input_ids"])


@pytest.fixture(scope="module")
def tokenizer(tiny_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_dir / "chat")


@pytest.fixture(scope="module")
def chat_run(server, tiny_dir, data):
    return evaluate("local-chat-completions", chat_args(server, tiny_dir), data, server=server)


@pytest.fixture(scope="module")
def completion_run(server, tiny_dir, data):
    return evaluate("local-completions", completion_args(server, tiny_dir), data, server=server)


def test_chat_rounds_arrive_as_role_messages_with_server_token_counts(chat_run, tokenizer):
    run = chat_run
    for task, n_rounds in (("deita_qr", 1), ("deita_qcr", 2)):
        res = run["results"][task]
        assert res["failed,none"] == 1, res
        failed = run["samples"][task]["s2"]
        assert failed["status"] == "failed"
        assert "HTTP 500" in failed["reason"] and "injected internal error" in failed["reason"]
        for doc_id in ("s0", "s1", "s3", "s4"):
            result = run["samples"][task][doc_id]
            if task == "deita_qcr" and result["status"] == "skipped":
                # QCR's criteria request makes the long ones too long for 1024 tokens
                assert doc_id in ("s1", "s4") and "context too long" in result["reason"]
                continue
            assert result["status"] == "ok", result
            assert len(result["rounds"]) == n_rounds
            for record in result["rounds"]:
                assert 1 <= record["reply_tokens"] <= MAX_GEN
                assert record["finish_reason"] in ("stop", "length")
    # What arrived: role messages, never one JSON string; the token counts are the server's.
    received = run["received"]
    assert received and all("prompt" not in body for body in received)
    for body in received:
        assert all(set(m) == {"role", "content"} for m in body["messages"])
        assert body["messages"][-1]["role"] == "user" and body["max_tokens"] == MAX_GEN
    sent_lengths = sorted(len(chat_ids(tokenizer, body["messages"])) for body in received)
    logged = [
        record["prompt_tokens"]
        for task in ("deita_qr", "deita_qcr")
        for result in run["samples"][task].values()
        if result["status"] == "ok"
        for record in result["rounds"]
    ]
    assert set(logged) <= set(sent_lengths)
    qr_s0 = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Name a prime."},
    ]
    assert qr_s0 in [body["messages"] for body in received]
    qcr = run["samples"]["deita_qcr"]["s0"]["rounds"]
    criteria = {"role": "assistant", "content": qcr[0]["reply"]}
    round2 = [b["messages"] for b in received if criteria in b["messages"]]
    assert any(m[:2] == qr_s0 for m in round2)  # round 1's reply is history in round 2


def test_small_server_context_is_respected_with_a_tokenizer(server, tiny_dir, data, tokenizer):
    run = evaluate(
        "local-chat-completions",
        chat_args(server, tiny_dir, model="tiny-small", max_length=SMALL),
        data,
        tasks=("deita_qr",),
    )
    res, samples = run["results"]["deita_qr"], run["samples"]["deita_qr"]
    # Nothing reached the server over its limit: only the injected error failed.
    assert res["failed,none"] == 1 and "HTTP 500" in samples["s2"]["reason"]
    assert samples["s1"]["status"] == "ok" and samples["s1"]["dropped_turns"] == 2
    assert samples["s4"]["status"] == "skipped" and "context too long" in samples["s4"]["reason"]
    assert res["skipped,none"] == 1
    for result in samples.values():
        for record in result["rounds"]:
            if record["prompt_tokens"] is not None and result["status"] == "ok":
                assert record["prompt_tokens"] + MAX_GEN <= SMALL - 1


def test_small_server_context_without_tokenizer_uses_the_estimate(
    server, tiny_dir, data, tokenizer
):
    from rgen_harness.chat.api_backend import estimate_tokens

    run = evaluate(
        "local-chat-completions",
        chat_args(server, tiny_dir, model="tiny-small", max_length=SMALL, tokenizer=False),
        data,
        tasks=("deita_qr",),
        server=server,
    )
    res, samples = run["results"]["deita_qr"], run["samples"]["deita_qr"]
    # No 400: only the injected error failed; the estimate bounded every prompt from above.
    assert res["failed,none"] == 1 and "HTTP 500" in samples["s2"]["reason"]
    for body in run["received"]:
        exact = len(chat_ids(tokenizer, body["messages"]))
        assert exact <= estimate_tokens(body["messages"]) <= SMALL - 1 - MAX_GEN
    for doc_id in ("s0", "s3"):
        assert samples[doc_id]["status"] == "ok"
        assert samples[doc_id]["rounds"][0]["prompt_tokens"] is not None  # the server's usage
    assert samples["s1"]["status"] == "ok" and samples["s1"]["dropped_turns"] == 2
    assert samples["s4"]["status"] == "skipped" and res["skipped,none"] == 1


def test_server_rejection_is_a_failed_conversation_not_the_end_of_the_run(server, tiny_dir, data):
    # max_length claims more than the server has: it answers 400 for the long conversations.
    run = evaluate(
        "local-chat-completions",
        chat_args(server, tiny_dir, model="tiny-small", max_length=1024),
        data,
        tasks=("deita_qr",),
    )
    res, samples = run["results"]["deita_qr"], run["samples"]["deita_qr"]
    rejected = [r for r in samples.values() if "HTTP 400" in (r["reason"] or "")]
    assert {r["status"] for r in rejected} == {"failed"} and samples["s4"] in rejected
    assert all("maximum context length is 200" in r["reason"] for r in rejected)
    # s1 keeps only the turns QCR's longer prompt leaves (the same history in both modes),
    # which may fit the server; s4 has no turn to drop.
    assert samples["s1"]["dropped_turns"] == 2
    assert res["failed,none"] == len(rejected) + 1  # the rejections and the injected 500
    assert samples["s0"]["status"] == "ok" and samples["s0"]["reply"] == samples["s0"]["reply"]


def test_completions_render_the_models_template(completion_run, tokenizer):
    run = completion_run
    for task in ("deita_qr", "deita_qcr"):
        assert run["results"][task]["failed,none"] == 1
        result = run["samples"][task]["s0"]
        assert result["status"] == "ok"
        for record in result["rounds"]:
            assert 1 <= record["reply_tokens"] <= MAX_GEN
    # What arrived: the model's template as token ids (as lm-eval sends prompts).
    received = run["received"]
    assert received and all("messages" not in body for body in received)
    texts = [tokenizer.decode(body["prompt"][0]) for body in received]
    assert all(t.endswith("<|im_start|>assistant\n") for t in texts)
    system = "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nName a prime."
    assert any(t.startswith(system) for t in texts)
    assert all("<|im_end|>" in body["stop"] for body in received)  # end of turn stops


def test_same_replies_through_chat_and_completions(chat_run, completion_run):
    """The chat server applies the template the completions path renders: same greedy replies."""
    for task in ("deita_qr", "deita_qcr"):
        for doc_id, result in chat_run["samples"][task].items():
            assert result["reply"] == completion_run["samples"][task][doc_id]["reply"]


def test_completions_without_tokenizer_is_refused_with_the_fix(server, data):
    from rgen_harness.chat.api_backend import ApiModelUnusable

    args = f"model=tiny,base_url={server}/v1/completions,tokenizer_backend=None,max_length=1024"
    with pytest.raises(ApiModelUnusable, match="tokenizer_backend=huggingface,tokenizer="):
        evaluate("local-completions", args, data, ("deita_qr",))


def test_missing_max_length_is_an_error_with_the_fix(server, tiny_dir, data):
    from rgen_harness.chat.api_backend import ApiModelUnusable

    with pytest.raises(ApiModelUnusable, match="max_length=<the server's context length>"):
        evaluate("local-chat-completions", chat_args(server, tiny_dir, max_length=None), data)


def test_lm_eval_command_line(server, tiny_dir, data, tmp_path):
    out = tmp_path / "out"
    meta = json.dumps({"deita_path": str(data), "scorers": "none"})
    cmd = ["lm_eval", "--model", "local-chat-completions", "--model_args"]
    cmd += [chat_args(server, tiny_dir) + ",num_concurrent=2"]
    cmd += ["--tasks", "deita_qr,deita_qcr", "--metadata", meta, "--gen_kwargs"]
    cmd += [f"max_gen_toks={MAX_GEN}", "--log_samples", "--output_path", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (results_file,) = out.rglob("results_*.json")
    results = json.loads(results_file.read_text())["results"]
    for task in ("deita_qr", "deita_qcr"):
        assert results[task]["failed,none"] == 1
        assert results[task]["reply_tokens,none"] <= MAX_GEN
    assert "|failed" in proc.stdout


@pytest.mark.parametrize("model", ["local-completions", "local-chat-completions"])
def test_judge_tasks_through_a_served_judge(server, tiny_dir, tokenizer, model):
    """The judge tasks on the bundled sample rows through a served judge: every prompt arrives
    as the ids of the logged prompt (completions) or as its messages (chat), each judged."""
    from lm_eval import simple_evaluate

    tasks = ["judge_pandalm", "judge_autoj_zh"]
    mark = server.mark()
    if model == "local-completions":
        args = completion_args(server, tiny_dir, max_length=4096)
    else:
        args = chat_args(server, tiny_dir, max_length=4096)
    out = simple_evaluate(
        model=model,
        model_args=args.replace("max_retries=2", "max_retries=2,num_concurrent=4"),
        tasks=tasks,
        metadata={f"judge_path_{t.removeprefix('judge_')}": "sample" for t in tasks},
        gen_kwargs="max_gen_toks=4",
        log_samples=True,
        bootstrap_iters=0,
    )
    received = server.requests_since(mark)
    judged = [
        json.loads(resp)
        for task in tasks
        for sample in out["samples"][task]
        for resp in sample["filtered_resps"]
    ]
    judged = [j for record in judged for j in (record if isinstance(record, list) else [record])]
    prompts = [j["prompt"] for j in judged]
    assert prompts and all(j["status"] in ("ok", "unparsed") for j in judged), judged[:2]
    assert len(received) == len(prompts)
    if model == "local-completions":
        sent = sorted(body["prompt"][0] for body in received)
        assert sent == sorted(tokenizer.encode(p, add_special_tokens=False) for p in prompts)
    else:
        assert sorted(json.dumps(b["messages"], ensure_ascii=False) for b in received) == sorted(
            prompts
        )
