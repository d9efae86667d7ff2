"""generate_until and the multi-round chat path of LMDeployLM, inference by the CPU stand-in."""

from __future__ import annotations

import json

import pytest
from lm_eval.api.instance import Instance

from rgen_harness.chat.protocol import REQUEST_TYPE, ChatRequest, ChatResult
from rgen_harness.models.lmdeploy_lm import GenerationFailed

pytest.importorskip("lmdeploy")

from cpu_engine_util import CPU_ENGINE, fail_requests

PROMPTS = ["Question: what is accuracy?\nAnswer:", "Hello there", "Criteria List\n## depth"]


def gen(context: str, **gen_kwargs) -> Instance:
    return Instance("generate_until", {}, (context, gen_kwargs), 0)


@pytest.fixture(scope="module")
def hf_lm(tiny_dir):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(tiny_dir / "chat"), device="cpu", batch_size=1)


def test_all_prompts_go_to_the_engine_in_one_call(lmdeploy_standin, engine_calls):
    calls = engine_calls(lmdeploy_standin)
    out = lmdeploy_standin.generate_until([gen(p, until=[], max_gen_toks=4) for p in PROMPTS])
    assert calls == [("generate", len(PROMPTS))]
    assert len(out) == len(PROMPTS) and all(isinstance(t, str) for t in out)


def test_greedy_generation_matches_lm_eval_hf(lmdeploy_standin, hf_lm):
    requests = [gen(p, until=["\n\n"], max_gen_toks=10, do_sample=False) for p in PROMPTS]
    assert lmdeploy_standin.generate_until(requests) == hf_lm.generate_until(requests)


def test_stop_strings_are_cut_exactly_and_max_gen_toks_holds(lmdeploy_standin):
    prompt = PROMPTS[0]
    full = lmdeploy_standin.generate_until([gen(prompt, until=[], max_gen_toks=12)])[0]
    resp = lmdeploy_standin.engine.generate(
        [lmdeploy_standin.encode_prompt(prompt)],
        [lmdeploy_standin.plan({"until": [], "max_gen_toks": 12})[1]],
    )[0]
    assert resp.generate_token_len <= 12
    assert len(full) >= 4, full
    stop = full[2:4]  # a multi-character string from inside the reply: it must cut there
    cut = lmdeploy_standin.generate_until([gen(prompt, until=[stop], max_gen_toks=12)])[0]
    assert cut == full.split(stop, 1)[0]
    assert stop not in cut


def test_engine_error_is_raised_with_request_and_message(lmdeploy_standin):
    fail_requests(lmdeploy_standin, "POISON")
    requests = [gen("fine prompt", max_gen_toks=3), gen("a POISON prompt", max_gen_toks=3)]
    try:
        with pytest.raises(GenerationFailed) as info:
            lmdeploy_standin.generate_until(requests)
    finally:
        fail_requests(lmdeploy_standin, None)
    message = str(info.value)
    assert "failed 1 of 2 generate_until requests" in message
    assert "request 1" in message and "internal_error" in message


def test_replies_before_a_failure_are_cached_for_the_rerun(
    lmdeploy_standin, engine_calls, tmp_path
):
    from lm_eval.api.model import CacheHook, CachingLM

    fail_requests(lmdeploy_standin, "POISON")
    requests = [gen("fine prompt", max_gen_toks=3), gen("a POISON prompt", max_gen_toks=3)]
    cached = CachingLM(lmdeploy_standin, str(tmp_path / "c.db"))
    try:
        with pytest.raises(GenerationFailed):
            cached.generate_until(requests)
        fail_requests(lmdeploy_standin, None)
        calls = engine_calls(lmdeploy_standin)
        out = cached.generate_until(requests)
        assert calls == [("generate", 1)]  # only the failed one again
        assert out[0] == lmdeploy_standin.generate_until(requests[:1])[0]
    finally:
        lmdeploy_standin.set_cache_hook(CacheHook(None))


def test_context_over_max_length_is_left_truncated(lmdeploy_standin):
    long_context = "accuracy depth clarity " * 400  # far beyond session_len=1024 tokens
    out = lmdeploy_standin.generate_until([gen(long_context, max_gen_toks=4)])
    assert isinstance(out[0], str)  # not an engine error: the prompt was fitted first


def chat_request(doc_id: str, text: str, rounds: int) -> Instance:
    request = ChatRequest.build(
        doc_id=doc_id,
        messages=[{"role": "user", "content": text}],
        rounds=[[]] + [[{"role": "user", "content": "Now answer."}]] * (rounds - 1),
    )
    return Instance(REQUEST_TYPE, {}, (request, {"until": [], "max_gen_toks": 5}), 0)


def test_chat_rounds_one_engine_call_per_round_and_failures_recorded(
    lmdeploy_standin, engine_calls
):
    calls = engine_calls(lmdeploy_standin)
    fail_requests(lmdeploy_standin, "POISON")
    requests = [
        chat_request("a", "Tell me about accuracy.", 2),
        chat_request("b", "POISON here", 2),
        chat_request("c", "Short one.", 1),
    ]
    try:
        results = [ChatResult.from_json(r) for r in lmdeploy_standin.generate_chat_rounds(requests)]
    finally:
        fail_requests(lmdeploy_standin, None)
    assert calls == [("generate", 3), ("generate", 1)]  # round 1: all three; round 2: only a
    ok, failed, single = results
    assert ok.status == "ok" and len(ok.rounds) == 2 and ok.rounds[1].reply_tokens <= 5
    assert ok.rounds[1].prompt.startswith(ok.rounds[0].prompt)  # round 2 extends round 1
    assert ok.rounds[0].reply in ok.rounds[1].prompt
    assert failed.status == "failed" and "internal_error" in failed.reason
    assert single.status == "ok" and len(single.rounds) == 1
    rendered = lmdeploy_standin.apply_chat_template(
        [{"role": "user", "content": "Short one."}], add_generation_prompt=True
    )
    assert single.rounds[0].prompt == rendered


def test_throughput_lands_in_model_info(lmdeploy_standin):
    lmdeploy_standin.generate_until([gen("Hello", max_gen_toks=3)])
    info = lmdeploy_standin.get_model_info()
    stats = info["throughput"]["generate_until"]
    assert stats["samples"] >= 1 and stats["generated_tokens"] >= 1 and stats["wall_s"] > 0
    assert stats["samples_per_s"] > 0 and stats["generated_tokens_per_s"] > 0
    # backend=auto resolves as lmdeploy does on a GPU machine: TurboMind for a Llama model
    assert info["lmdeploy_engine"] == "LMDeployEngine" and info["lmdeploy_backend"] == "turbomind"
    assert info["lmdeploy_backends_used"]["generate_until"] == "turbomind"
    json.dumps(info)  # goes into the results JSON as is


def test_chat_template_override_and_tokenizer_name(tiny_dir, tmp_path, monkeypatch):
    from rgen_harness.models.lmdeploy_lm import LMDeployLM

    template = tmp_path / "plain.jinja"
    template.write_text(
        "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}[assistant] {% endif %}"
    )
    monkeypatch.setenv("RGEN_HARNESS_LMDEPLOY_ENGINE", CPU_ENGINE)
    lm = LMDeployLM(pretrained=str(tiny_dir / "chat"), chat_template=str(template))
    history = [{"role": "user", "content": "Hi"}]
    assert lm.apply_chat_template(history) == "[user] Hi\n[assistant] "
    assert lm.chat_template(True) == template.read_text()
    assert lm.tokenizer_name == str(tiny_dir / "chat").replace("/", "__")
    lm.release()
