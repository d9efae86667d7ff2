"""Deita samples files in the layout `lm_eval --log_samples` writes (doc, arguments,
filtered_resps = a ChatResult JSON, per-sample metric values), for two runs to be judged.

`SCENARIO` is a QCR (A) vs QR (B) comparison whose judge verdicts are known under the scripted
judge of tests/served/scripted_judge.py (`quality=<n>`, FIRST_BIAS, UNREADABLE); the expected
figures are worked out by hand in test_pairwise_served.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

TS = "2026-01-01T00-00-00.000001"
NAN = math.nan
LONG_TURN = " ".join(f"detail{i}" for i in range(90))


def reply(quality: int | None, chars: int, marker: str = "") -> str:
    head = (f"quality={quality} " if quality is not None else "") + marker
    return head + "x" * max(0, chars - len(head))


def history(conv: str, kind: str = "short") -> list[dict]:
    if kind == "long_turns":  # old turns the judge's budget must drop
        turns = []
        for i in range(3):
            turns += [
                {"role": "user", "content": f"old question {i} of {conv}: {LONG_TURN}"},
                {"role": "assistant", "content": f"old answer {i}: {LONG_TURN}"},
            ]
        return turns + [{"role": "user", "content": f"final question of {conv}"}]
    if kind == "too_long":  # the last user turn alone is over the judge's budget
        return [{"role": "user", "content": " ".join(f"word{i}" for i in range(3000))}]
    return [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": f"first question of {conv}"},
        {"role": "assistant", "content": f"first answer of {conv}"},
        {"role": "user", "content": f"second question of {conv}"},
    ]


# conv id -> source, history kind, A (quality, chars, marker, reward, status, dropped),
#            B (the same)
def side_spec(q, chars, marker="", reward=0.0, status="ok", dropped=0):
    return {
        "quality": q,
        "chars": chars,
        "marker": marker,
        "reward": reward,
        "status": status,
        "dropped": dropped,
    }


SCENARIO = {
    "c0": ("s1", "short", side_spec(3, 100, reward=2.0), side_spec(1, 90, reward=1.0)),
    "c1": ("s1", "short", side_spec(1, 100, reward=0.5), side_spec(3, 200, reward=1.0)),
    "c2": ("s1", "short", side_spec(2, 50, reward=1.0), side_spec(2, 50, reward=0.0)),
    "c3": ("s2", "short", side_spec(1, 300, "FIRST_BIAS ", 1.0), side_spec(1, 100, reward=2.0)),
    "c4": ("s2", "short", side_spec(5, 300, reward=1.0), side_spec(0, 100, reward=1.0)),
    "c5": ("s2", "short", side_spec(5, 300, reward=1.0), side_spec(1, 100, "UNREADABLE ", 0.0)),
    "c6": ("s2", "short", side_spec(4, 300, reward=3.0), side_spec(1, 100, reward=1.0)),
    "c7": ("s1", "short", side_spec(4, 300, reward=3.0), side_spec(None, 0, status="skipped")),
    "c8": ("s2", "short", side_spec(1, 300, reward=NAN), side_spec(2, 100, reward=1.0)),
    "c9": ("s3", "short", side_spec(9, 300, reward=5.0, dropped=2), side_spec(1, 100, reward=4.0)),
    "c10": ("s3", "too_long", side_spec(3, 300, reward=1.0), side_spec(1, 100, reward=0.0)),
    "c11": ("s3", "long_turns", side_spec(2, 300, reward=0.0), side_spec(1, 100, reward=1.0)),
    "c12": ("s3", "short", side_spec(2, 300, "FAIL", 0.0), side_spec(1, 100, reward=1.0)),
}


def chat_result(text: str, status: str, dropped: int, rounds: int) -> str:
    recs = [
        {
            "prompt": "",
            "reply": text if i == rounds - 1 else "# Criteria List\n## accuracy",
            "prompt_tokens": 50,
            "reply_tokens": 7,
            "finish_reason": "stop",
        }
        for i in range(rounds)
    ]
    ok = status == "ok"
    return json.dumps(
        {
            "status": status,
            "reason": None if ok else "context too long: test",
            "dropped_turns": dropped,
            "rounds": recs if ok else [],
            "scores": {},
            "reply": text if ok else "",
        }
    )


def sample_line(i: int, conv: str, source: str, messages: list[dict], spec: dict, qcr: bool):
    from_spec = spec["marker"].replace("FAIL", "INJECT_SERVER_ERROR_500 ")
    text = reply(spec["quality"], spec["chars"], from_spec) if spec["status"] == "ok" else ""
    resp = chat_result(text, spec["status"], spec["dropped"], 2 if qcr else 1)
    doc = {
        "id": conv,
        "source": source,
        "row": i,
        "messages": messages,
        "reference": "the reference",
        "problem": "",
    }
    line = {
        "doc_id": i,
        "doc": doc,
        "target": "the reference",
        "arguments": {"gen_args_0": {"arg_0": "{}", "arg_1": {}}},
        "resps": [[resp]],
        "filtered_resps": [resp],
        "filter": "none",
        "metrics": ["reward", "reply_chars"],
        "doc_hash": "0",
        "prompt_hash": "0",
        "target_hash": "0",
        "reply_chars": float(len(text)),
    }
    if math.isfinite(spec["reward"]) and spec["status"] == "ok":
        line["reward"] = spec["reward"]
    return line


def write_scenario(run_dir: Path, scenario: dict = SCENARIO, model: str = "tiny-model") -> Path:
    """`<run_dir>/<model>/samples_deita_q{c,}r_<TS>.jsonl`; returns the model folder."""
    out = run_dir / model
    out.mkdir(parents=True, exist_ok=True)
    for task, index, qcr in (("deita_qcr", 2, True), ("deita_qr", 3, False)):
        lines = [
            sample_line(i, conv, spec[0], history(conv, spec[1]), spec[index], qcr)
            for i, (conv, spec) in enumerate(scenario.items())
        ]
        if not qcr:
            lines.reverse()  # pairing follows the conversation id, not the line
        path = out / f"samples_{task}_{TS}.jsonl"
        path.write_text("".join(json.dumps(ln) + "\n" for ln in lines), encoding="utf-8")
    return out
