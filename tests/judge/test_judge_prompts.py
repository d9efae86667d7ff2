"""Judge prompt files and their verdict parsers."""

from __future__ import annotations

import pytest

from rgen_harness.prompts.judge import load_judge_prompt, parse_autoj, parse_bracket


@pytest.mark.parametrize(
    ("reply", "label"),
    [
        ("[1]", 1),
        (" [2]\n", 2),
        ("[0]", 0),
        ("[1] [1]", 1),
        ("[1] or [2]", None),  # two different verdicts: not guessed
        ("1", None),
        ("", None),
        ("[3]", None),
    ],
)
def test_bracket_parser(reply, label):
    assert parse_bracket(reply) == label


@pytest.mark.parametrize(
    ("reply", "label"),
    [
        ("Response 2 is longer.\nSo, the final decision is Response 1.", 1),
        ("So, the final decision is Response 2", 2),
        ("the final decision is tie", 0),
        ("the final decision is Response 1 ... but the final decision is Tie", 0),  # the last
        ("Final decision is Response 2", None),  # Auto-J's marker is case-sensitive
        ("So, the final decision is unclear", None),
        ("所以，最终决定是回应2。", 2),
        ("所以，最终决定是平局", 0),
        ("no decision here", None),
    ],
)
def test_autoj_parser_follows_autoj_rule(reply, label):
    assert parse_autoj(reply) == label


def test_bundled_prompts_and_single_pass_substitution():
    prompt = load_judge_prompt(None)
    assert prompt.version == "judge_v1" and prompt.parser == "bracket" and prompt.max_gen_toks <= 32
    messages = prompt.messages("Q {response_2}", "A", "B {query}")
    assert [m["role"] for m in messages] == ["user"]
    text = messages[0]["content"]
    assert "[Query]\nQ {response_2}\n" in text and "[Response 2]\nB {query}\n" in text
    assert "[1]" in text and "[2]" in text and "[0]" in text
    autoj = load_judge_prompt("judge_autoj_v1")
    assert autoj.parse("So, the final decision is Response 2") == 2
    assert "So, the final decision is Response 1 / Response 2 / Tie" in autoj.user


def test_prompt_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"judge_prompt='judge_v9' not found.*judge_v1"):
        load_judge_prompt("judge_v9")
    bad = tmp_path / "p.yaml"
    bad.write_text("version: x\nparser: regex\nmax_gen_toks: 0\nuser: '{query} {response_1}'\n")
    with pytest.raises(ValueError) as e:
        load_judge_prompt(str(bad))
    msg = str(e.value)
    assert "'parser' is 'regex'" in msg and "'max_gen_toks' is 0" in msg
    assert "lacks the placeholders ['{response_2}']" in msg
    good = tmp_path / "mine.yaml"
    good.write_text(
        "version: mine\nparser: bracket\nmax_gen_toks: 4\nsystem: Be fair.\n"
        "user: '{query}|{response_1}|{response_2}'\n"
    )
    mine = load_judge_prompt(str(good))
    assert mine.messages("q", "a", "b") == [
        {"role": "system", "content": "Be fair."},
        {"role": "user", "content": "q|a|b"},
    ]
