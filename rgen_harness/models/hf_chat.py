"""The chat-rounds backend of lm-eval's `--model hf`: the deita rounds as token ids.

lm-eval's `generate_until` re-encodes each prompt string and hands `max_length` to transformers,
which a model's own `generation_config.json` overrides (Qwen2-1.5B sets `max_new_tokens: 2048`:
every reply ran to 2,048 tokens whatever `max_gen_toks` said). Here the rounds go to the model as
the same ids the lmdeploy backend sends (`IdChatBackend`), with `max_new_tokens=max_gen_toks`,
which wins over the model's generation config; replies are decoded from the generated ids by the
rule every backend follows (`rgen_harness.chat.reply_text`), and their length is the number of
ids generated."""

from __future__ import annotations

import logging

from rgen_harness.chat.generation import Generation
from rgen_harness.chat.id_backend import IdChatBackend
from rgen_harness.chat.reply_text import reply_from_ids
from rgen_harness.chat.special_tokens import template_tokens

log = logging.getLogger(__name__)


def is_hf_causal(lm) -> bool:
    import sys

    module = sys.modules.get("lm_eval.models.huggingface")
    return (
        module is not None
        and isinstance(lm, module.HFLM)
        and getattr(lm, "backend", None) == "causal"
        and getattr(lm, "tokenizer", None) is not None
    )


def generation_stop_ids(lm, until: list[str]) -> set[int]:
    """Ids that end a reply: EOS of the tokenizer and of the model's generation config, the
    template's end of turn, padding (finished rows of a batch), single-token `until` strings."""
    tokenizer = lm.tokenizer
    ids: set[int] = set()
    eos = getattr(getattr(lm.model, "generation_config", None), "eos_token_id", None)
    for value in (eos, tokenizer.eos_token_id, tokenizer.pad_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    eot = template_tokens(tokenizer).end_of_turn_id
    if eot is not None:
        ids.add(eot)
    for word in until:
        enc = tokenizer.encode(word, add_special_tokens=False) if word else []
        if len(enc) == 1 and tokenizer.decode(enc, skip_special_tokens=False) == word:
            ids.add(enc[0])
    return ids


class HFChatBackend(IdChatBackend):
    def __init__(self, lm, *, use_tqdm: bool = True) -> None:
        super().__init__(lm, max_length=lm.max_length, use_tqdm=use_tqdm)
        size = getattr(lm, "batch_size", 1)
        self.batch_size = size if isinstance(size, int) and size > 0 else 1

    def generate(self, prompts: list[str], gen_kwargs: list[dict]) -> list[Generation]:
        from tqdm import tqdm

        ids = [list(self.unstage(p)) for p in prompts]
        groups: dict[str, list[int]] = {}
        for i, kwargs in enumerate(gen_kwargs):
            groups.setdefault(repr(sorted(kwargs.items())), []).append(i)
        out: list[Generation | None] = [None] * len(prompts)
        bar = tqdm(total=len(prompts), desc="hf generate", disable=not self.use_tqdm)
        for members in groups.values():
            members.sort(key=lambda i: -len(ids[i]))  # similar lengths share a batch
            for start in range(0, len(members), self.batch_size):
                batch = members[start : start + self.batch_size]
                replies = self._generate_batch([ids[i] for i in batch], gen_kwargs[batch[0]])
                for i, gen in zip(batch, replies, strict=True):
                    out[i] = gen
                bar.update(len(batch))
        bar.close()
        return out  # type: ignore[return-value]

    def _generate_batch(self, batch: list[list[int]], kwargs: dict) -> list[Generation]:
        import torch
        from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs
        from lm_eval.models.utils_hf import stop_sequences_criteria

        lm = self.lm
        kwargs = normalize_gen_kwargs(self._with_end_of_turn(kwargs), lm.max_gen_toks)
        eos = lm.tok_decode(lm.eot_token_id, skip_special_tokens=False)
        until = handle_stop_sequences(kwargs.pop("until", None), eos=eos)
        max_gen = int(kwargs.pop("max_gen_toks"))
        kwargs.pop("max_length", None)
        if not kwargs.get("do_sample"):  # greedy, as lm-eval's _model_generate sets it
            kwargs.pop("temperature", None)
            kwargs["do_sample"] = False
        pad = lm.tokenizer.pad_token_id
        pad = pad if pad is not None else (lm.eot_token_id or 0)
        width = max(len(x) for x in batch)
        context = torch.tensor([[pad] * (width - len(x)) + x for x in batch], device=lm.device)
        mask = torch.tensor(
            [[0] * (width - len(x)) + [1] * len(x) for x in batch], device=lm.device
        )
        with torch.no_grad():
            output = lm.model.generate(
                input_ids=context,
                attention_mask=mask,
                max_new_tokens=max_gen,  # wins over the model's generation_config.json
                stopping_criteria=stop_sequences_criteria(lm.tokenizer, until, width, len(batch)),
                pad_token_id=pad,
                use_cache=True,
                **kwargs,
            )
        stops = generation_stop_ids(lm, until)
        out = []
        for row in output[:, width:].tolist():
            reply = reply_from_ids(lm.tokenizer, row, until=until, stop_ids=stops)
            reason = "stop" if reply.stopped else "length"
            out.append(Generation(text=reply.text, finish_reason=reason, tokens=reply.tokens))
        return out
