"""The plain `lm_eval` command, as a user types it, on a deita file the project has never seen."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from deita_rows_util import conversation, write_rows

pytestmark = pytest.mark.slow

LONG = " ".join(f"detail{i}" for i in range(400))


def write_file(path: Path) -> Path:
    def row(i, *turns):
        return conversation(f"u{i}", *turns)

    rows = [
        row(0, ("system", "You are terse."), ("human", "Name a prime."), ("gpt", "7")),
        row(
            1,
            ("human", "Tell me about Paris. " + LONG),
            ("gpt", "It is big. " + LONG),
            ("human", "And Lyon?"),
            ("gpt", "Smaller."),
        ),
        row(2, ("human", "hi"), ("robot", "beep")),  # unknown role
        row(
            3,
            ("human", "你好，介绍一下长城。"),
            ("gpt", "长城很长。"),
            ("human", "多长？"),
            ("gpt", "两万多公里。"),
        ),
        row(4, ("human", "only a question")),  # no assistant reply
        row(5, ("human", "not reached: --limit 5"), ("gpt", "x")),
    ]
    return write_rows(path, rows)


def lm_eval(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run(
        ["lm_eval", *args], capture_output=True, text=True, env=env, check=check, timeout=600
    )


def read_samples(out: Path, task: str) -> list[dict]:
    (path,) = out.rglob(f"samples_{task}_*.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def run(tiny_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    data = write_file(tmp / "mine.jsonl")
    out = tmp / "out"
    meta = json.dumps({"deita_path": str(data), "scorers": "none"})
    lm_eval(
        "--model",
        "hf",
        "--model_args",
        f"pretrained={tiny_dir / 'chat'},max_length=1024",
        "--device",
        "cpu",
        "--tasks",
        "deita_qr,deita_qcr",
        "--metadata",
        meta,
        "--limit",
        "5",
        "--log_samples",
        "--output_path",
        str(out),
        "--use_cache",
        str(tmp / "cache" / "gen"),
        "--system_instruction",
        "Answer carefully.",
        "--gen_kwargs",
        "max_gen_toks=8",
    )
    (results_file,) = out.rglob("results_*.json")
    return {
        "out": out,
        "tmp": tmp,
        "data": data,
        "results": json.loads(results_file.read_text())["results"],
    }


def test_results_table_counts_skips(run):
    for task in ("deita_qr", "deita_qcr"):
        res = run["results"][task]
        assert res["skipped,none"] == 2  # rows u2 and u4
        assert res["failed,none"] == 0
        assert res["reply_chars,none"] >= 0
    assert run["results"]["deita_qcr"]["criteria_chars,none"] >= 0


def prompts_of(sample: dict, tiny_dir: Path, response: str) -> list[str]:
    """Each round's prompt rebuilt from the logged request, replies and dropped turns (the
    samples record prompts by hash, token count and dropped turns), checked against the hash."""
    import hashlib

    from transformers import AutoTokenizer

    from rgen_harness.chat.protocol import ChatRequest, ChatResult
    from rgen_harness.chat.runner import rebuild_prompts

    tok = AutoTokenizer.from_pretrained(tiny_dir / "chat")
    request = ChatRequest.parse(sample["arguments"]["gen_args_0"]["arg_0"])
    result = ChatResult.from_json(response)
    prompts = rebuild_prompts(
        request,
        result,
        lambda m: tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True),
    )
    for prompt, record in zip(prompts, result.rounds, strict=True):
        assert record.prompt == ""  # not copied into the samples
        assert hashlib.sha256(prompt.encode()).hexdigest() == record.prompt_sha256
    return prompts


def test_samples_show_each_round_templated(run, tiny_dir):
    samples = read_samples(run["out"], "deita_qcr")
    assert len(samples) == 5
    by_id = {s["doc"]["id"]: s for s in samples}
    res = json.loads(by_id["u3"]["filtered_resps"][0])
    assert res["status"] == "ok" and len(res["rounds"]) == 2
    criteria, final = res["rounds"]
    prompts = prompts_of(by_id["u3"], tiny_dir, by_id["u3"]["filtered_resps"][0])
    criteria["prompt"], final["prompt"] = prompts
    assert "<|im_start|>system\nAnswer carefully.<|im_end|>" in criteria["prompt"]
    assert (
        "<|im_start|>user\n你好，介绍一下长城。<|im_end|>\n<|im_start|>assistant\n长城很长。"
        in (criteria["prompt"])
    )
    assert "<|im_start|>assistant\n<PLACEHOLDER><|im_end|>" in criteria["prompt"]
    assert f"<|im_start|>assistant\n{criteria['reply']}<|im_end|>" in final["prompt"]
    assert res["reply"] == final["reply"]
    assert by_id["u3"]["target"] == "两万多公里。"
    # The system turn of the row is kept, merged after the run's system instruction.
    assert (
        "Answer carefully.\n\nYou are terse."
        in prompts_of(by_id["u0"], tiny_dir, by_id["u0"]["resps"][0][0])[0]
    )


def test_long_history_drops_oldest_turns_and_records_it(run, tiny_dir):
    for task in ("deita_qr", "deita_qcr"):
        by_id = {s["doc"]["id"]: s for s in read_samples(run["out"], task)}
        res = json.loads(by_id["u1"]["filtered_resps"][0])
        assert res["status"] == "ok" and res["dropped_turns"] == 2
        assert by_id["u1"]["dropped_turns"] == 2
        assert res["rounds"][0]["dropped_turns"] == 2
        prompt = prompts_of(by_id["u1"], tiny_dir, by_id["u1"]["filtered_resps"][0])[0]
        assert "And Lyon?" in prompt
        assert "detail399" not in prompt


def test_bad_rows_are_counted_skips_with_their_reason(run):
    by_id = {s["doc"]["id"]: s for s in read_samples(run["out"], "deita_qr")}
    res = json.loads(by_id["u2"]["filtered_resps"][0])
    assert res["status"] == "skipped" and "unknown role 'robot'" in res["reason"]
    assert by_id["u2"]["skipped"] == 1
    assert (
        "does not end in an assistant turn"
        in json.loads(by_id["u4"]["filtered_resps"][0])["reason"]
    )


def test_generations_are_in_the_use_cache_db(run):
    from sqlitedict import SqliteDict

    (db,) = (run["tmp"] / "cache").glob("gen*.db")
    with SqliteDict(str(db)) as d:
        rounds = [v for v in d.values() if isinstance(v, dict) and "text" in v]
    assert len(rounds) == 3 + 3 * 2  # 3 usable rows: QR one round, QCR two


def test_error_policy_last_line_names_row_and_problem(run, tiny_dir):
    meta = json.dumps({"deita_path": str(run["data"]), "on_bad_row": "error"})
    proc = lm_eval(
        "--model",
        "hf",
        "--model_args",
        f"pretrained={tiny_dir / 'chat'}",
        "--device",
        "cpu",
        "--tasks",
        "deita_qr",
        "--metadata",
        meta,
        check=False,
    )
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("row 4 (id 'u4') does not end in an assistant turn"), last
