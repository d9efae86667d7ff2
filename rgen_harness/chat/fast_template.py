"""A tokenizer's chat template compiled once and rendered without transformers' per-call work."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class FastChatTemplate:
    """`tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)` for
    plain messages (dicts of `role` and `content` strings), without transformers' per-call
    work (copying and checking the messages, collecting the special tokens): the same compiled
    template rendered with the same variables. Used only where a probe conversation renders
    the same both ways; any other input goes through `apply_chat_template`."""

    KEYS = frozenset(("role", "content"))
    PROBE = (
        [{"role": "system", "content": "Be brief.\n"}],
        [
            {"role": "user", "content": "Hello  world,\t你好 🙂"},
            {"role": "assistant", "content": " Hi.\n\n"},
            {"role": "user", "content": "数学 2+2?"},
        ],
    )

    def __init__(self, compiled, variables: dict) -> None:
        self.compiled = compiled
        self.variables = variables

    @classmethod
    def build(cls, tokenizer) -> FastChatTemplate | None:
        try:
            from transformers.utils.chat_template_utils import (
                _compile_jinja_template,
                _plain_template_data,
            )

            compiled = _compile_jinja_template(tokenizer.get_chat_template())
            variables = _plain_template_data(dict(tokenizer.special_tokens_map))
        except Exception as e:  # noqa: BLE001  (no template, another transformers: the slow path)
            log.debug("chat template rendered by apply_chat_template: %s", e)
            return None
        fast = cls(compiled, variables)
        system, turns = cls.PROBE
        for probe in (system + turns, turns, turns[:1]):
            try:
                want = tokenizer.apply_chat_template(
                    probe, tokenize=False, add_generation_prompt=True
                )
            except Exception:  # noqa: BLE001  (a template that refuses this probe)
                continue
            try:
                got = fast.render(probe)
            except Exception:  # noqa: BLE001
                got = None
            if got != want:
                log.info("chat template rendered by apply_chat_template (probe differs)")
                return None
        return fast

    def takes(self, messages) -> bool:
        return all(
            type(m) is dict and m.keys() <= self.KEYS and all(type(v) is str for v in m.values())
            for m in messages
        )

    def render(self, messages: list[dict[str, str]]) -> str:
        return self.compiled.render(
            messages=[dict(m) for m in messages],
            tools=None,
            documents=None,
            add_generation_prompt=True,
            **self.variables,
        )
