"""max_gen_toks is checked before any rendering or generation, with the value and the fix."""

from __future__ import annotations

import pytest

from rgen_harness.chat.gen_options import check_generation_options
from rgen_harness.chat.protocol import ChatRequest
from rgen_harness.chat.runner import run_rounds

MESSAGES = [{"role": "user", "content": "hello"}]


class Backend:
    """Counts tokens as characters; records every render and generate call."""

    def __init__(self, max_length=64, default=16):
        self.max_length = max_length
        self.default = default
        self.calls = []

    def render(self, messages):
        self.calls.append("render")
        return "".join(m["content"] for m in messages)

    def count_tokens(self, text):
        return len(text)

    def max_gen_toks(self, gen_kwargs):
        return int(gen_kwargs.get("max_gen_toks", self.default))

    def generate(self, prompts, gen_kwargs):
        from rgen_harness.chat.runner import Generation

        self.calls.append("generate")
        return [Generation(text="ok") for _ in prompts]


def requests(max_gen_toks, n=3):
    ctx = ChatRequest.build(doc_id="d", messages=MESSAGES, rounds=[[]])
    return [(ctx, {"until": [], "max_gen_toks": max_gen_toks}) for _ in range(n)]


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("abc", "max_gen_toks='abc' is not a whole number"),
        (2.5, "max_gen_toks=2.5 is not a whole number"),
        (True, "max_gen_toks=True is not a whole number"),
        (None, "max_gen_toks=None is not a whole number"),
        (0, "max_gen_toks=0 is below 1"),
        (-5, "max_gen_toks=-5 is below 1"),
    ],
)
def test_bad_values_fail_before_any_work(value, needle):
    backend = Backend()
    with pytest.raises(ValueError, match=needle) as err:
        run_rounds(requests(value), backend)
    assert "--gen_kwargs max_gen_toks=512" in str(err.value)
    assert backend.calls == []


@pytest.mark.parametrize("value", [64, 100000])
def test_no_room_for_a_prompt_fails_before_any_work(value):
    backend = Backend(max_length=64)
    with pytest.raises(ValueError) as err:
        run_rounds(requests(value), backend)
    assert str(err.value).startswith(f"gen_kwargs max_gen_toks={value} leaves no room")
    assert "maximum length is 64 tokens" in str(err.value) and "max_gen_toks=32" in str(err.value)
    assert backend.calls == []


def test_valid_and_default_values_run():
    backend = Backend(max_length=64)
    assert [r.status for r in run_rounds(requests(50), backend)] == ["ok"] * 3
    ctx = ChatRequest.build(doc_id="d", messages=MESSAGES, rounds=[[]])
    assert run_rounds([(ctx, {"until": []})], backend)[0].status == "ok"
    with pytest.raises(ValueError, match="max_gen_toks=64 leaves no room"):
        run_rounds([(ctx, {})], Backend(max_length=64, default=64))


def test_a_backend_that_cannot_count_tokens_only_checks_the_type():
    check_generation_options([{"max_gen_toks": 10**6}], Backend(max_length=None))
    with pytest.raises(ValueError, match="is below 1"):
        check_generation_options([{"max_gen_toks": 0}], Backend(max_length=None))


@pytest.fixture(scope="module")
def hf_lm(tiny_dir):
    import lm_eval.api.model  # noqa: F401  (the start-up hook extends LM on import)
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(tiny_dir / "chat"), device="cpu", max_length=256, batch_size=2)


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("abc", "is not a whole number"),
        (-5, "is below 1"),
        (0, "is below 1"),
        (100000, "leaves no room for any prompt: the model's maximum length is 256 tokens"),
    ],
)
def test_lm_eval_models_get_the_check(hf_lm, value, needle):
    from lm_eval.api.instance import Instance

    calls = []
    hf_lm.generate_until = lambda reqs, *a, **k: calls.append(reqs) or ["x"] * len(reqs)
    ctx, gen = requests(value, n=1)[0]
    inst = Instance("generate_chat_rounds", doc={}, arguments=(ctx, gen), idx=0)
    try:
        with pytest.raises(ValueError, match=needle):
            hf_lm.generate_chat_rounds([inst])
    finally:
        del hf_lm.generate_until
    assert calls == []
