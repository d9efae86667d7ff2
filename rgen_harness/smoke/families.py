"""Tiny models whose tokenizers behave like the study's real model families.

Each copies the published facts that change what reaches the engine or the reward model: the
chat template (from the model card's `tokenizer_config.json`, shortened where it only adds
tool-use branches), the prefix the tokenizer adds by itself, BOS / EOS tokens, and the EOS ids
of `generation_config.json`. Weights are random (2 layers, 64 wide) and the vocabulary is a small
byte-level BPE, so token ids differ from the real ones; the behaviours do not.

| family | prefix added by the tokenizer | tokenizer EOS | generation_config EOS | turn ends with |
|---|---|---|---|---|
| internlm2_5-chat | `<s>` (template also writes it) | `</s>` | `</s>`, `<|im_end|>` | `<|im_end|>` |
| qwen2-instruct | none | `<|im_end|>` | `<|im_end|>`, `<|endoftext|>` | `<|im_end|>` |
| qwen2-base | none | `<|endoftext|>` | `<|endoftext|>` | `<|im_end|>` |
| llama-3.1-instruct | `<|begin_of_text|>` (template too) | `<|eot_id|>` | `<|end_of_text|>`, `<|eom_id|>`, `<|eot_id|>` | `<|eot_id|>` |
| glm-4-chat | `[gMASK]<sop>` (template too; no BOS token) | `<|endoftext|>` | `<|endoftext|>`, `<|user|>`, `<|observation|>` | next role token |
"""  # noqa: E501

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
QWEN2 = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA_3_1 = (
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' %}"
    "{%- set system_message = messages[0]['content']|trim %}{%- set messages = messages[1:] %}"
    "{%- else %}{%- set system_message = '' %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\n\n' }}"
    "{{- 'Cutting Knowledge Date: December 2023\n' }}{{- 'Today Date: 26 Jul 2024\n\n' }}"
    "{{- system_message }}{{- '<|eot_id|>' }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    " + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}"
)
GLM_4 = (
    "[gMASK]<sop>{% for item in messages %}{% if item['content'] %}"
    "<|{{ item['role'] }}|>\n{{ item['content'] }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@dataclass(frozen=True)
class Family:
    special_tokens: tuple[str, ...]
    template: str
    eos: str
    generation_eos: tuple[str, ...]
    bos: str | None = None
    prefix: tuple[str, ...] = ()  # what the tokenizer itself adds in front of a text
    pad: str | None = None
    arch: str = "llama"


FAMILIES: dict[str, Family] = {
    "internlm2_5-chat": Family(
        special_tokens=("<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"),
        template="{{ bos_token }}" + CHATML,
        bos="<s>",
        eos="</s>",
        generation_eos=("</s>", "<|im_end|>"),
        prefix=("<s>",),
        pad="</s>",
    ),
    "qwen2-instruct": Family(
        special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
        template=QWEN2,
        eos="<|im_end|>",
        generation_eos=("<|im_end|>", "<|endoftext|>"),
        pad="<|endoftext|>",
        arch="qwen2",
    ),
    "qwen2-base": Family(
        special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
        template=QWEN2,
        eos="<|endoftext|>",
        generation_eos=("<|endoftext|>",),
        pad="<|endoftext|>",
        arch="qwen2",
    ),
    "llama-3.1-instruct": Family(
        special_tokens=(
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eom_id|>",
            "<|eot_id|>",
        ),
        template=LLAMA_3_1,
        bos="<|begin_of_text|>",
        eos="<|eot_id|>",
        generation_eos=("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"),
        prefix=("<|begin_of_text|>",),
    ),
    "glm-4-chat": Family(
        special_tokens=(
            "<|endoftext|>",
            "[MASK]",
            "[gMASK]",
            "[sMASK]",
            "<sop>",
            "<eop>",
            "<|system|>",
            "<|user|>",
            "<|assistant|>",
            "<|observation|>",
        ),
        template=GLM_4,
        eos="<|endoftext|>",
        generation_eos=("<|endoftext|>", "<|user|>", "<|observation|>"),
        prefix=("[gMASK]", "<sop>"),
        pad="<|endoftext|>",
    ),
}


def build_family_tokenizer(out_dir: str | Path, family: str):
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    from rgen_harness.smoke.tiny_models import train_bpe

    spec = FAMILIES[family]
    tok = train_bpe(list(spec.special_tokens))
    if spec.prefix:
        tok.post_processor = processors.TemplateProcessing(
            single=" ".join([*spec.prefix, "$A"]),
            pair=" ".join([*spec.prefix, "$A", "$B"]),
            special_tokens=[(t, tok.token_to_id(t)) for t in spec.prefix],
        )
    named = {spec.bos, spec.eos, spec.pad}
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=spec.bos,
        eos_token=spec.eos,
        pad_token=spec.pad,
        additional_special_tokens=[t for t in spec.special_tokens if t not in named],
    )
    fast.chat_template = spec.template
    fast.save_pretrained(out_dir)
    return fast


def build_family_model(out_dir: str | Path, family: str, *, seed: int = 0) -> Path:
    """A random causal LM with the family's tokenizer, template and EOS ids."""
    from rgen_harness.smoke.tiny_models import save_random_model

    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    spec = FAMILIES[family]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = build_family_tokenizer(out_dir, family)
    eos_ids = [tok.convert_tokens_to_ids(t) for t in spec.generation_eos]
    save_random_model(
        out_dir,
        tok,
        kind="chat",
        arch=spec.arch,
        max_pos=2048,
        seed=seed,
        eos_token_id=eos_ids[0] if len(eos_ids) == 1 else eos_ids,
    )
    return out_dir
