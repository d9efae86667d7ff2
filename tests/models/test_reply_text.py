"""One reply text for the same generated ids on every backend, and the token limit wins over a
model's own generation_config."""

from __future__ import annotations

import json
import shutil

import pytest
from cpu_engine_util import CPU_ENGINE
from lm_eval.api.instance import Instance

from rgen_harness.chat.protocol import REQUEST_TYPE, ChatRequest, ChatResult
from rgen_harness.chat.reply_text import reply_from_ids
from rgen_harness.smoke.families import build_family_model

HEADER = "<|start_header_id|>"  # special in tokenizer.json, not an additional special token


def test_reply_from_ids_rule(tiny_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir / "chat")
    hi = tok.encode("Hi there", add_special_tokens=False)
    e4 = tok.convert_tokens_to_ids("ä")  # byte 0xE4: the first of a 3-byte character
    end = tok.convert_tokens_to_ids("<|im_end|>")
    got = reply_from_ids(tok, [*hi, e4], until=[])
    assert (got.text, got.tokens, got.stopped) == ("Hi there", len(hi) + 1, False)
    got = reply_from_ids(tok, [*hi, end, *hi], until=[], stop_ids=[end])
    assert (got.text, got.tokens, got.stopped) == ("Hi there", len(hi), True)
    got = reply_from_ids(tok, hi + hi, until=[" there"])
    assert got.text == "Hi" and got.stopped and got.tokens <= len(hi)


def rigged_model(tiny_dir, root):
    """The tiny chat model rewired so that greedy decoding after the generation prompt emits an
    ordinary token, then a special token that is not an additional special token, then the
    first byte of a 3-byte character again and again."""
    import torch
    from tokenizers import AddedToken
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = shutil.copytree(tiny_dir / "chat", root / "rigged")
    tok = AutoTokenizer.from_pretrained(path)
    tok.add_tokens([AddedToken(HEADER, special=True)])
    tok.save_pretrained(path)
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    last = tok.encode(prompt, add_special_tokens=False)[-1]
    chain = [last, tok.convert_tokens_to_ids("a"), tok.convert_tokens_to_ids(HEADER)]
    chain.append(tok.convert_tokens_to_ids("ä"))
    model = AutoModelForCausalLM.from_pretrained(path)
    model.resize_token_embeddings(len(tok))
    with torch.no_grad():
        for layer in model.model.layers:  # the residual stream is the current token's embedding
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        emb, head = model.model.embed_tokens.weight, model.lm_head.weight
        head.zero_()
        for i, token in enumerate(chain):
            basis = torch.zeros(emb.shape[1])
            basis[i] = 1.0
            emb[token] = basis
            nxt = chain[min(i + 1, len(chain) - 1)]
            head[nxt] += 10 * basis
    model.save_pretrained(path)
    return path


def one_round(lm, max_gen: int) -> ChatResult:
    request = ChatRequest.build(
        doc_id="probe", messages=[{"role": "user", "content": "Hi"}], rounds=[[]]
    )
    instance = Instance(REQUEST_TYPE, {}, (request, {"until": [], "max_gen_toks": max_gen}), 0)
    [result] = [ChatResult.from_json(r) for r in lm.generate_chat_rounds([instance])]
    return result


def hf_lm(path, **kwargs):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(path), device="cpu", batch_size=1, **kwargs)


def test_special_and_partial_utf8_tokens_give_the_same_reply_on_hf_and_lmdeploy(
    tiny_dir, tmp_path, monkeypatch
):
    pytest.importorskip("lmdeploy")
    from rgen_harness.models.lmdeploy_lm import LMDeployLM

    path = rigged_model(tiny_dir, tmp_path)
    monkeypatch.setenv("RGEN_HARNESS_LMDEPLOY_ENGINE", CPU_ENGINE)
    lm = LMDeployLM(pretrained=str(path), session_len=512)
    ours = one_round(lm, 4)
    lm.release()
    theirs = one_round(hf_lm(path), 4)
    assert ours.reply == theirs.reply == "a"
    assert ours.rounds[0].reply_tokens == theirs.rounds[0].reply_tokens == 4
    assert ours.rounds[0].finish_reason == theirs.rounds[0].finish_reason == "length"


def test_max_gen_toks_wins_over_the_generation_config_on_hf(tmp_path):
    """Qwen2-1.5B's generation_config.json sets max_new_tokens 2048, which transformers lets
    override the max_length lm-eval passes."""
    path = build_family_model(tmp_path / "qwen2-base", "qwen2-base")
    config = json.loads((path / "generation_config.json").read_text())
    config["max_new_tokens"] = 2048
    (path / "generation_config.json").write_text(json.dumps(config))
    result = one_round(hf_lm(path, max_length=4096), 5)
    assert result.status == "ok"
    assert result.rounds[0].reply_tokens <= 5
