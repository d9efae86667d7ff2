"""Small test files in each judge set's real schema (field names and value types as published),
with the odd rows the real files have (JSON booleans, empty input, string labels) and a few
malformed ones."""

from __future__ import annotations

import json
from pathlib import Path


def pandalm_rows() -> list:
    def row(idx, r1, r2, a, inp="some input", instruction="Rewrite the sentence."):
        return {
            "idx": idx,
            "motivation_app": "Grammarly",
            "cmp_key": "bloom-7b_llama-7b",
            "instruction": instruction,
            "input": inp,
            "response1": r1,
            "response2": r2,
            "annotator1": a[0],
            "annotator2": a[1],
            "annotator3": a[2],
        }

    return [
        row(0, "Short.", "A longer rewrite.", (2, 2, 1)),
        row(1, True, "True.", (0, 0, 2), inp=""),  # boolean response, empty input
        {**row("2", "x", "y", ("1", "1", "1")), "instruction": " ", "input": "Truthfulness"},
        row(3, "a", "b", (0, 1, 2)),  # no majority
        row(4, "a", None, (1, 1, 1)),  # response is null
        row(5, "a", "b", (1, 1, 7)),  # label out of range
    ]


def autoj_rows() -> list:
    def row(
        label, p="Summarize the post.", r1=" first", r2=" second", scenario="post_summarization"
    ):
        return {
            "scenario": scenario,
            "label": label,
            "prompt": p,
            "response 1": r1,
            "response 2": r2,
        }

    return [row(0), row(1), row(2), row(0, p="概括这段话。", r1="回应一", r2="回应二"), row(3)]


def llmbar_rows() -> list:
    def row(label, i=0):
        return {
            "input": f"Instruction {i}",
            "output_1": f"out1 {i}",
            "output_2": f"out2 {i}",
            "label": label,
        }

    return [row(1, 0), row(2, 1), row(2, 2), {"input": "x", "output_1": "a", "label": 1}]


def mtbench_rows() -> list:
    def conv(model):
        return [
            {"content": "Q1?", "role": "user"},
            {"content": f"{model} answer 1", "role": "assistant"},
            {"content": "Q2?", "role": "user"},
            {"content": f"{model} answer 2", "role": "assistant"},
        ]

    def vote(qid, a, b, winner, judge, turn):
        return {
            "question_id": qid,
            "model_a": a,
            "model_b": b,
            "winner": winner,
            "judge": judge,
            "conversation_a": conv(a),
            "conversation_b": conv(b),
            "turn": turn,
        }

    return [
        vote(81, "gpt-4", "alpaca-13b", "model_a", "expert_0", 1),  # reordered: alpaca < gpt-4
        vote(81, "alpaca-13b", "gpt-4", "model_b", "expert_1", 1),
        vote(81, "alpaca-13b", "gpt-4", "tie", "expert_2", 1),
        vote(81, "alpaca-13b", "gpt-4", "model_a", "author_0", 1),  # authors' votes are not used
        vote(81, "alpaca-13b", "gpt-4", "tie (bothbad)", "expert_0", 2),
        vote(82, "claude-v1", "vicuna-13b-v1.2", "model_b", "expert_3", 2),
        vote(83, "claude-v1", "gpt-3.5-turbo", "model_c", "expert_4", 1),  # unknown winner
    ]


def write(folder: Path) -> dict[str, Path]:
    """One file per set, in its published format; returns set name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}

    def dump(name, rows, suffix):
        path = folder / f"{name}{suffix}"
        if suffix == ".json":
            path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
        else:
            text = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n{not json\n"
            path.write_text(text, encoding="utf-8")
        paths[name] = path

    dump("pandalm", pandalm_rows(), ".json")
    dump("autoj", autoj_rows(), ".jsonl")
    dump("autoj_zh", autoj_rows()[3:4] + autoj_rows()[:2], ".jsonl")
    for sub in ("natural", "neighbor", "gptinst", "gptout", "manual"):
        dump(f"llmbar_{sub}", llmbar_rows(), ".json")
    dump("mtbench_human", mtbench_rows(), ".jsonl")
    return paths
