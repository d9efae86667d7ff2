"""Tiny random-weight models with real transformers architectures and a real tokenizer.

They make the whole pipeline runnable offline on a CPU in seconds (the smoke run and the tests).
Their outputs are random text and their scores mean nothing.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from rgen_harness.data.deita import SAMPLE_PATH

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|reward|>"]
_MARKER = "rgen_tiny.json"
log = logging.getLogger(__name__)


def _training_text() -> list[str]:
    texts = []
    for line in SAMPLE_PATH.read_text(encoding="utf-8").splitlines():
        for turn in json.loads(line)["conversations"]:
            texts.append(turn["value"])
    texts.append("# Criteria List\n## accuracy\nDescription: user assistant system")
    return texts


def train_bpe(special_tokens: list[str], vocab_size: int = 600):
    """A byte-level BPE `tokenizers.Tokenizer` (any language) trained on the bundled sample."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_training_text(), trainer=trainer)
    return tok


def build_tokenizer(out_dir: Path, vocab_size: int = 600):
    """A byte-level BPE tokenizer (any language) with a ChatML chat template."""
    from transformers import PreTrainedTokenizerFast

    tok = train_bpe(SPECIAL_TOKENS, vocab_size)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|reward|>"],
    )
    fast.chat_template = CHATML_TEMPLATE
    fast.save_pretrained(out_dir)
    return fast


def _built_with(out_dir: Path) -> dict | None:
    """The settings recorded by the last complete build in `out_dir` (None: none, or unreadable)."""
    try:
        data = json.loads((out_dir / _MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _build(
    out_dir: str | Path, *, kind: str, arch: str, max_position_embeddings: int, seed: int
) -> Path:
    """Tokenizer + a 2-layer, 64-wide random model of `arch`, saved once.

    The marker file, written last, records the settings (seed included): a folder built with
    other settings is built again, so a changed seed never leaves the old weights in place.
    """
    out_dir = Path(out_dir)
    settings = {
        "build": 2,  # version of this builder: 2 = special tokens never likelier than text
        "kind": kind,
        "arch": arch,
        "seed": seed,
        "max_position_embeddings": max_position_embeddings,
    }
    built = _built_with(out_dir)
    if built == settings:
        return out_dir
    if built is not None:
        log.info(
            "tiny model %s was built with %s; building it again with %s", out_dir, built, settings
        )
    (out_dir / _MARKER).unlink(missing_ok=True)  # an interrupted rebuild must not look complete
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(out_dir)
    save_random_model(
        out_dir, tok, kind=kind, arch=arch, max_pos=max_position_embeddings, seed=seed
    )
    (out_dir / _MARKER).write_text(json.dumps(settings))
    return out_dir


def save_random_model(
    out_dir: Path,
    tok,
    *,
    kind: str,
    arch: str,
    max_pos: int,
    seed: int,
    eos_token_id: int | list[int] | None = None,
    vocab_size: int | None = None,
    hidden_size: int = 64,
    generation_config: dict | None = None,
) -> None:
    """A 2-layer, `hidden_size`-wide random model of `arch` for tokenizer `tok`, saved to
    `out_dir`, with `vocab_size` embedding rows (default: the tokenizer's length).

    Chat models get logit 0 for every special token and every row past the tokenizer, so greedy
    replies are plain text; the generation config is `generation_config` (a published one) or
    else EOS `eos_token_id` (default: the tokenizer's)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    head = {"num_labels": 1} if kind == "reward" else {"tie_word_embeddings": False}
    config = AutoConfig.for_model(
        arch,
        vocab_size=vocab_size or len(tok),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_pos,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **head,
    )
    torch.manual_seed(seed)
    if kind == "reward":
        model = AutoModelForSequenceClassification.from_config(config)
    else:
        model = AutoModelForCausalLM.from_config(config)
        special = set(tok.all_special_ids) | {
            i for i, t in tok.added_tokens_decoder.items() if t.special
        }
        with torch.no_grad():  # logit 0 for special tokens: greedy replies are plain text
            model.lm_head.weight[sorted(special)] = 0.0
            model.lm_head.weight[len(tok) :] = 0.0  # padding rows of a real vocabulary
        if generation_config is not None:
            from transformers import GenerationConfig

            model.generation_config = GenerationConfig(**generation_config)
        else:
            model.generation_config.eos_token_id = (
                tok.eos_token_id if eos_token_id is None else eos_token_id
            )
            model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out_dir)


def build_chat_model(
    out_dir: str | Path, *, arch: str = "llama", max_position_embeddings: int = 1024, seed: int = 0
) -> Path:
    """A causal LM (llama or qwen2 architecture) with the tiny ChatML tokenizer."""
    return _build(
        out_dir, kind="chat", arch=arch, max_position_embeddings=max_position_embeddings, seed=seed
    )


def build_reward_model(
    out_dir: str | Path, *, arch: str = "llama", max_position_embeddings: int = 1024, seed: int = 1
) -> Path:
    """A sequence-classification reward model (one score per sequence)."""
    return _build(
        out_dir,
        kind="reward",
        arch=arch,
        max_position_embeddings=max_position_embeddings,
        seed=seed,
    )
