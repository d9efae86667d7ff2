"""Oldest-turns-first context budgeting with a real tokenizer and chat template."""

from __future__ import annotations

import pytest

from rgen_harness.chat.budget import ContextTooLong, drop_oldest, droppable_turns, fit_prompt


@pytest.fixture(scope="module")
def tok(tiny_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_dir / "chat")


def history(n_pairs: int, words: int = 30) -> list[dict]:
    msgs = [{"role": "system", "content": "Be brief."}]
    for i in range(n_pairs):
        msgs.append({"role": "user", "content": f"question {i} " + "word " * words})
        msgs.append({"role": "assistant", "content": f"answer {i} " + "text " * words})
    msgs.append({"role": "user", "content": "the last question " + "why " * words})
    return msgs


def render_with(tok):
    return lambda m: tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True)


def count_with(tok):
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])


def test_drop_keeps_system_and_last_user_turn():
    msgs = history(3)
    assert droppable_turns(msgs) == 6
    kept = drop_oldest(msgs, 4)
    assert kept[0]["role"] == "system"
    assert kept[1]["content"].startswith("question 2")
    assert kept[-1]["content"].startswith("the last question")


@pytest.mark.parametrize("n_pairs", [0, 1, 4, 9])
def test_fewest_turns_dropped_that_fit(tok, n_pairs):
    msgs = history(n_pairs)
    render, count = render_with(tok), count_with(tok)
    full = count(render(msgs))
    last_only = count(render(drop_oldest(msgs, droppable_turns(msgs))))
    for budget in sorted({max(b, last_only) for b in (full, full - 1, (full + last_only) // 2)}):
        fitted = fit_prompt(msgs, [], render=render, count_tokens=count, max_prompt_tokens=budget)
        assert fitted.prompt_tokens <= budget
        assert fitted.prompt_tokens == count(fitted.prompt)
        # Brute force: no smaller even drop count fits.
        for fewer in range(0, fitted.dropped_turns, 2):
            assert count(render(drop_oldest(msgs, fewer))) > budget
        assert fitted.prompt.rstrip().endswith("assistant")  # generation prompt kept
        assert "the last question" in fitted.prompt


def test_tail_counts_against_the_budget_and_min_dropped_is_respected(tok):
    msgs = history(4)
    render, count = render_with(tok), count_with(tok)
    tail = [
        {"role": "assistant", "content": "<PLACEHOLDER>"},
        {"role": "user", "content": "x " * 40},
    ]
    budget = count(render(msgs))
    fitted = fit_prompt(msgs, tail, render=render, count_tokens=count, max_prompt_tokens=budget)
    assert fitted.dropped_turns > 0 and fitted.prompt.count("<PLACEHOLDER>") == 1
    again = fit_prompt(
        msgs,
        [],
        render=render,
        count_tokens=count,
        max_prompt_tokens=10**6,
        min_dropped=fitted.dropped_turns,
    )
    assert again.dropped_turns == fitted.dropped_turns


def test_last_turn_alone_too_long_raises(tok):
    msgs = history(2, words=200)
    with pytest.raises(ContextTooLong, match="with all 4 earlier turns dropped"):
        fit_prompt(
            msgs, [], render=render_with(tok), count_tokens=count_with(tok), max_prompt_tokens=50
        )
