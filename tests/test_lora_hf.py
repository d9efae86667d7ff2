"""A base model plus a LoRA adapter through `lm_eval --model hf --model_args ...,peft=<adapter>`.

The adapter is built at test time with peft (random, non-zero LoRA weights) on the tiny chat
model. The deita_qr replies that lm_eval logs must be the adapted model's greedy replies, and
differ from the base model's.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pytest

pytestmark = pytest.mark.slow

MAX_NEW = 8


@pytest.fixture(scope="module")
def adapter(tiny_dir, tmp_path_factory):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_dir / "chat")
    config = LoraConfig(
        r=8,
        lora_alpha=32,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"],
        init_lora_weights=False,  # random A and B: the adapter changes the model
        task_type="CAUSAL_LM",
    )
    out = tmp_path_factory.mktemp("lora") / "adapter"
    get_peft_model(base, config).save_pretrained(out)
    assert (out / "adapter_config.json").is_file()
    return out


def greedy(model, tokenizer, prompt: str) -> str:
    """What lm-eval's hf model does for a generate_until request at batch size 1: encode without
    special tokens, greedy decode, decode without special tokens."""
    import torch

    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(
            **ids, max_new_tokens=MAX_NEW, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
    return tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)


def test_lm_eval_hf_applies_peft_adapter(tiny_dir, adapter, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    model_args = f"pretrained={tiny_dir / 'chat'},peft={adapter}"
    cmd = ["lm_eval", "--model", "hf", "--model_args", model_args, "--device", "cpu"]
    cmd += ["--tasks", "deita_qr", "--limit", "3", "--gen_kwargs", f"max_gen_toks={MAX_NEW}"]
    cmd += ["--metadata", json.dumps({"deita_path": "sample", "scorers": "none"})]
    cmd += ["--log_samples", "--output_path", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    (results_path,) = out.rglob("results_*.json")
    results = json.loads(results_path.read_text())
    assert results["config"]["model_args"]["peft"] == str(adapter)  # recorded with the results
    (samples_path,) = out.rglob("samples_deita_qr_*.jsonl")
    samples = [json.loads(line) for line in samples_path.read_text().splitlines()]
    assert len(samples) == 3

    from rgen_harness.chat.protocol import ChatRequest, ChatResult
    from rgen_harness.chat.runner import rebuild_prompts

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir / "chat")

    def render(messages):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    base = AutoModelForCausalLM.from_pretrained(tiny_dir / "chat").eval()
    base_replies = []
    prompts, logged = [], []
    for s in samples:
        result = ChatResult.from_json(s["filtered_resps"][0])
        assert result.status == "ok"
        request = ChatRequest.parse(s["arguments"]["gen_args_0"]["arg_0"])
        [prompt] = rebuild_prompts(request, result, render)
        assert hashlib.sha256(prompt.encode()).hexdigest() == result.rounds[0].prompt_sha256
        prompts.append(prompt)
        logged.append(result.reply)
        base_replies.append(greedy(base, tokenizer, prompts[-1]))
    adapted = PeftModel.from_pretrained(base, adapter).eval()
    adapted_replies = [greedy(adapted, tokenizer, p) for p in prompts]

    assert logged == adapted_replies
    assert logged != base_replies
