"""Loading BaichuanCharRM from its folder and scoring batches of token ids.

BaichuanCharRM is custom code shipped in the model folder (`modeling_baichuan.py`, with its
`configuration_baichuan.py` and `tokenization_baichuan.py`); run_char_rm.py imports the class
from there. It is loaded the same way here, through transformers' dynamic-module loader (the
mechanism behind `trust_remote_code`), which needs the user's explicit consent
(`charrm_trust_remote_code`). The class is the one `config.json`'s `auto_map` names as
`...BaichuanCharRM`, else `modeling_baichuan.BaichuanCharRM`; the tokenizer is the folder's
`AutoTokenizer` (its `auto_map`, i.e. `tokenization_baichuan.BaichuanTokenizer`).

Score: `model(input_ids)[1] * 4 + 1`, where BaichuanCharRM's forward returns the sigmoid of its
`score` head at the last position. Batches are right-padded and the same head is applied to each
input's own last real token (body `model`, head `score`): every real token keeps the position it
has alone, so a batched score equals the one-at-a-time score up to float rounding. A model
without that body and head is scored one input at a time through its own forward.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

CLASS_NAME = "BaichuanCharRM"
DEFAULT_CLASS_REF = f"modeling_baichuan.{CLASS_NAME}"


class ScoringError(RuntimeError):
    """A batch could not be scored; its pairs count as failed."""


def consent_error(model: str, where: str) -> ValueError:
    return ValueError(
        f"charrm_model={model!r}: {CLASS_NAME} is custom model code shipped with the model "
        f"({where}); loading it runs that code in this process. If you trust it, add "
        '"charrm_trust_remote_code": true to --metadata.'
    )


def class_ref(config: dict, folder: Path | None) -> str:
    """The `module.Class` of BaichuanCharRM in a model folder (from config.json's auto_map)."""
    for ref in (config.get("auto_map") or {}).values():
        ref = ref[0] if isinstance(ref, list) else ref
        if isinstance(ref, str) and ref.split("--")[-1].endswith(f".{CLASS_NAME}"):
            return ref
    if folder is not None and not (folder / "modeling_baichuan.py").is_file():
        raise ValueError(
            f"{folder} holds no {CLASS_NAME} code: neither config.json's auto_map names "
            f"'<module>.{CLASS_NAME}' nor is there a modeling_baichuan.py. Give the folder of "
            "morecry/BaichuanCharRM as downloaded from the hub."
        )
    return DEFAULT_CLASS_REF


def read_config(path: str, revision: str | None) -> dict:
    from transformers.utils import cached_file

    with open(cached_file(path, "config.json", revision=revision), encoding="utf-8") as f:
        return json.load(f)


def resolve_device(device: str) -> str:
    from rgen_harness.metrics.reward.backends.hf import resolve_device as resolve

    return resolve(device)


def resolve_dtype(dtype: str, device: str):
    from rgen_harness.metrics.reward.backends.hf import resolve_dtype as resolve

    return resolve(dtype, device)


def hand_off(device: str) -> int:
    """Before a model loads on a GPU: close every in-process generator engine (lmdeploy's, see
    rgen_harness.models.engine.release_all) and free its memory. Returns how many closed."""
    if not device.startswith("cuda"):
        return 0
    from rgen_harness.metrics.reward.backends.lmdeploy import release_generator

    closed = release_generator()
    if closed:
        log.info("released %d generator engine(s) before loading %s", closed, CLASS_NAME)
    return closed


def load_tokenizer(path: str, *, revision: str | None, trust_remote_code: bool):
    from transformers import AutoTokenizer

    if not trust_remote_code:
        raise consent_error(path, "tokenization_baichuan.py")
    return AutoTokenizer.from_pretrained(path, revision=revision, trust_remote_code=True)


class CharRMModel:
    """BaichuanCharRM loaded from its folder; `score(batch)` -> one 1-5 score per input."""

    def __init__(
        self,
        path: str,
        *,
        revision: str | None,
        trust_remote_code: bool,
        dtype: str = "auto",
        device: str = "auto",
    ) -> None:
        from transformers.dynamic_module_utils import get_class_from_dynamic_module

        local = Path(path) if Path(path).is_dir() else None
        config = read_config(path, revision)
        ref = class_ref(config, local)
        if not trust_remote_code:
            raise consent_error(path, ref.split(".")[0] + ".py")
        self.device = resolve_device(device)
        hand_off(self.device)
        cls = get_class_from_dynamic_module(ref, path, revision=revision)
        model = cls.from_pretrained(
            path, revision=revision, dtype=resolve_dtype(dtype, self.device)
        )
        self.model = model.to(self.device).eval()
        self.pad_id = (
            config.get("pad_token_id") if isinstance(config.get("pad_token_id"), int) else 0
        )
        body, head = getattr(model, "model", None), getattr(model, "score", None)
        if body is None or head is None or getattr(head, "out_features", None) != 1:
            log.warning(
                "%s at %s has no `model` body with a one-output `score` head; scoring one "
                "input at a time through its own forward.",
                CLASS_NAME,
                path,
            )
            body = head = None
        self.body, self.head = body, head
        self.forward_passes = 0

    def score(self, batch: list[list[int]]) -> list[float]:
        try:
            if self.head is None or len(batch) == 1:
                return [self.score_alone(ids) for ids in batch]
            return self._score_padded(batch)
        except Exception as e:  # out of memory, a bad token id, ...
            raise ScoringError(f"{CLASS_NAME}: {type(e).__name__}: {e}") from e

    def score_alone(self, ids: list[int]) -> float:
        """run_char_rm.py's call: `model(input_ids=ids[None])[1].item() * 4 + 1`."""
        import torch

        with torch.inference_mode():
            out = self.model(input_ids=torch.tensor([ids], device=self.device))
        self.forward_passes += 1
        return float(out[1].float().reshape(-1)[0].item()) * 4 + 1

    def _score_padded(self, batch: list[list[int]]) -> list[float]:
        import torch

        from rgen_harness.metrics.padded_batch import at_last_token, pad_right

        input_ids, mask = pad_right(batch, self.pad_id, self.device)
        with torch.inference_mode():
            hidden = self.body(input_ids, attention_mask=mask)[0]
            values = torch.sigmoid(self.head(at_last_token(hidden, mask)).squeeze(-1))
        self.forward_passes += 1
        return [float(v) * 4 + 1 for v in values.float().cpu().tolist()]

    def close(self) -> None:
        from rgen_harness.models.engine import free_memory

        self.model = self.body = self.head = None
        free_memory()
