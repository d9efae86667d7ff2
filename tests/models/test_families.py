"""The study's model families through lm-eval's evaluator: `lmdeploy` (lmdeploy's own Pipeline
and AsyncEngine over the CPU engine) against lm-eval's `hf` model, on tiny random models with the
real Qwen2-Instruct, Qwen2 base and Llama-3.1 tokenizers (real vocabulary sizes, published
templates and generation configs) and imitations of InternLM2.5-chat and GLM-4."""

from __future__ import annotations

import json

import pytest
from cpu_engine_util import CPU_ENGINE
from family_util import family_model

from rgen_harness.chat.protocol import ChatResult
from rgen_harness.chat.special_tokens import encode_prompt, template_tokens
from rgen_harness.smoke.families import FAMILIES

pytest.importorskip("lmdeploy")

LIMIT = 4
MAX_GEN = 6


class _Built(dict):
    """Family model folders, each built on first use (skipped without its vocabulary)."""

    def __init__(self, root):
        super().__init__()
        self.root = root

    def __missing__(self, name):
        self[name] = family_model(self.root / name, name)
        return self[name]


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory):
    return _Built(tmp_path_factory.mktemp("families"))


def evaluate(lm, max_gen: int = MAX_GEN) -> dict[str, dict[str, ChatResult]]:
    """QR and QCR on the bundled sample; {task: {doc id: ChatResult}}."""
    import lm_eval

    out = lm_eval.simple_evaluate(
        model=lm,
        tasks=["deita_qr", "deita_qcr"],
        limit=LIMIT,
        gen_kwargs=f"max_gen_toks={max_gen}",
        metadata={"deita_path": "sample", "scorers": "none"},
        log_samples=True,
        bootstrap_iters=0,
    )
    return {
        task: {s["doc"]["id"]: ChatResult.from_json(s["resps"][0][0]) for s in samples}
        for task, samples in out["samples"].items()
    }


def special_texts(tokenizer) -> list[str]:
    return [t.content for t in tokenizer.added_tokens_decoder.values() if t.special]


def lmdeploy_lm(path, monkeypatch):
    from rgen_harness.models.lmdeploy_lm import LMDeployLM

    monkeypatch.setenv("RGEN_HARNESS_LMDEPLOY_ENGINE", CPU_ENGINE)
    return LMDeployLM(pretrained=str(path), session_len=2048)


def hf_lm(path):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(path), device="cpu", batch_size=1, max_length=2048)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_qr_qcr_lmdeploy_equals_hf(family, family_dirs, monkeypatch):
    path = family_dirs[family]
    ours_lm = lmdeploy_lm(path, monkeypatch)
    tokenizer = ours_lm.tokenizer
    prefix = list(template_tokens(tokenizer).prefix_ids)
    ours = evaluate(ours_lm)
    hf = hf_lm(path)
    theirs = evaluate(hf)
    ours_lm.release()
    specials = special_texts(tokenizer)
    compared = 0
    for task in ("deita_qr", "deita_qcr"):
        assert ours[task].keys() == theirs[task].keys()
        for doc_id, mine in ours[task].items():
            other = theirs[task][doc_id]
            assert mine.status == other.status == "ok", (mine.reason, other.reason)
            # both decode the generated ids by one rule (rgen_harness.chat.reply_text)
            assert mine.reply == other.reply, (task, doc_id)
            assert [r.reply for r in mine.rounds] == [r.reply for r in other.rounds]
            assert [r.reply_tokens for r in mine.rounds] == [r.reply_tokens for r in other.rounds]
            compared += 1
            for record in mine.rounds + other.rounds:
                assert not any(s in record.reply for s in specials), record.reply
            ids = [encode_prompt(tokenizer, r.prompt) for r in mine.rounds]
            hf_ids = [hf.tok_batch_encode([r.prompt])[0][0].tolist() for r in other.rounds]
            for round_ids in ids + hf_ids:  # GLM-4: [gMASK]<sop> in template and tokenizer
                if prefix:  # the prefix exactly once
                    assert round_ids[: len(prefix)] == prefix
                    assert round_ids[len(prefix) : 2 * len(prefix)] != prefix
            if len(ids) == 2:  # QCR: round 2 extends round 1, so lmdeploy's prefix cache holds
                assert ids[1][: len(ids[0])] == ids[0]
                assert mine.rounds[1].cached_tokens >= min(64, len(ids[0]) // 64 * 64)
            assert all(r.finish_reason in ("stop", "length") for r in mine.rounds)
    assert compared == 2 * LIMIT


def end_turns(path, text: str) -> None:
    """Rewrite the model so that `text` (a special token) follows its first greedy tokens:
    its logit becomes 3x that of the model's first greedy choice for a probe prompt."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    ids = torch.tensor([encode_prompt(tokenizer, prompt)])
    first = int(model(ids).logits[0, -1].argmax())
    with torch.no_grad():
        model.lm_head.weight[tokenizer.convert_tokens_to_ids(text)] = (
            3 * model.lm_head.weight[first]
        )
    model.save_pretrained(path)


@pytest.mark.parametrize(
    "family, ends_with",
    [
        ("internlm2_5-chat", "<|im_end|>"),  # an EOS of generation_config.json only
        ("qwen2-base", "<|im_end|>"),  # in no EOS list: the template's end of turn
        ("llama-3.1-instruct", "<|eot_id|>"),
    ],
)
def test_replies_stop_at_the_end_of_the_turn_without_its_text(
    family, ends_with, tmp_path, monkeypatch
):
    from lm_eval.api.instance import Instance

    from rgen_harness.chat.protocol import REQUEST_TYPE, ChatRequest

    path = family_model(tmp_path / family, family)
    end_turns(path, ends_with)
    request = ChatRequest.build(
        doc_id="probe", messages=[{"role": "user", "content": "Hi"}], rounds=[[]]
    )
    instance = Instance(REQUEST_TYPE, {}, (request, {"until": [], "max_gen_toks": 16}), 0)
    ours_lm = lmdeploy_lm(path, monkeypatch)
    [mine] = [ChatResult.from_json(r) for r in ours_lm.generate_chat_rounds([instance])]
    ours_lm.release()
    [other] = [ChatResult.from_json(r) for r in hf_lm(path).generate_chat_rounds([instance])]
    for result in (mine, other):
        record = result.rounds[0]
        assert result.status == "ok"
        assert record.finish_reason == "stop" and record.reply_tokens < 16, record
        assert ends_with not in record.reply
    assert mine.reply == other.reply


def test_internlm2_reward_input_has_one_prefix_and_one_reward_token(family_dirs):
    from transformers import AutoTokenizer

    from rgen_harness.metrics.reward.render import RewardRenderer

    config = {"architectures": ["InternLM2ForRewardModel"], "max_position_embeddings": 4096}
    history = [{"role": "user", "content": "Hi"}]
    for family in ("internlm2_5-chat", "glm-4-chat", "qwen2-instruct"):
        tokenizer = AutoTokenizer.from_pretrained(family_dirs[family])
        tokenizer.add_special_tokens({"additional_special_tokens": ["<|reward|>"]})
        reward_id = tokenizer.convert_tokens_to_ids("<|reward|>")
        ids = RewardRenderer(tokenizer, config).render(history, "Hello.").ids
        prefix = list(template_tokens(tokenizer).prefix_ids)
        assert ids[: len(prefix)] == prefix
        assert ids[len(prefix) : 2 * len(prefix)] != prefix or not prefix
        assert ids[-1] == reward_id and ids.count(reward_id) == 1
        assert json.dumps(ids)  # plain ints for every backend
