"""transformers reward backend: InternLM2 reward models (their own code, `trust_remote_code`) and
generic AutoModelForSequenceClassification reward models (Skywork-Reward, ...).

Batches are right-padded. The score is read at each input's own last real token, found from
the attention mask, by running the model body and applying the value head to that one hidden
state: transformers' sequence-classification pooling instead looks for the last token that is
not `pad_token_id`, which picks the wrong position when a template ends with the pad token. With
causal attention, padding after the last real token cannot change its hidden state, so a
batched score equals the one-at-a-time score (up to float rounding).
"""

from __future__ import annotations

import logging

from rgen_harness.metrics.reward.backends import BackendError
from rgen_harness.metrics.reward.render import INTERNLM2_REWARD_ARCH

log = logging.getLogger(__name__)

HEAD_NAMES = ("v_head", "score")  # InternLM2 reward; *ForSequenceClassification of decoders


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"reward_device={device!r} but CUDA is not available; use reward_device 'cpu' "
            "or 'auto'."
        )
    return device


def resolve_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


class HFRewardBackend:
    name = "hf"

    def __init__(
        self,
        path: str,
        *,
        model_config: dict,
        revision: str | None = None,
        dtype: str = "auto",
        device: str = "auto",
        trust_remote_code: bool = True,
    ) -> None:
        from transformers import AutoModel, AutoModelForSequenceClassification

        self.device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, self.device)
        if self.device.startswith("cuda"):
            from rgen_harness.metrics.reward.backends.lmdeploy import release_generator

            if release_generator():  # an lmdeploy generator holds most of the GPU otherwise
                log.info("released the generator engine before loading the reward model")
        if INTERNLM2_REWARD_ARCH in (model_config.get("architectures") or []):
            if not trust_remote_code:
                raise ValueError(
                    f"{path} is an InternLM2 reward model, whose HF code ships with the model: "
                    'add "reward_trust_remote_code": true, or use reward_backend lmdeploy.'
                )
            loader = AutoModel
        else:
            loader = AutoModelForSequenceClassification
        model = loader.from_pretrained(
            path, revision=revision, dtype=torch_dtype, trust_remote_code=trust_remote_code
        )
        self.model = model.to(self.device).eval()
        self.pad_id = _pad_id(model_config)
        self.head = next((getattr(model, n) for n in HEAD_NAMES if hasattr(model, n)), None)
        self.body = getattr(model, getattr(model, "base_model_prefix", ""), None)
        if self.head is None or self.body is None or self.body is model:
            log.warning(
                "reward model %s: no known value head (%s); scoring one input at a time "
                "through its own forward (no padding).",
                path,
                "/".join(HEAD_NAMES),
            )
            self.head = self.body = None
        self.forward_passes = 0

    def score(self, batch: list[list[int]]) -> list[float]:
        try:
            if self.head is None:
                return [self._score_alone(ids) for ids in batch]
            return self._score_padded(batch)
        except Exception as e:  # out of memory, a bad token id, ...
            raise BackendError(f"hf reward model: {type(e).__name__}: {e}") from e

    def _score_padded(self, batch: list[list[int]]) -> list[float]:
        import torch

        from rgen_harness.metrics.padded_batch import at_last_token, pad_right

        input_ids, mask = pad_right(batch, self.pad_id, self.device)
        with torch.inference_mode():
            hidden = self.body(input_ids=input_ids, attention_mask=mask)[0]
            pooled = at_last_token(hidden, mask)
            values = self.head(pooled.to(_param_dtype(self.head)))
        self.forward_passes += 1
        return _first_label(values)

    def _score_alone(self, ids: list[int]) -> float:
        import torch

        with torch.inference_mode():
            out = self.model(input_ids=torch.tensor([ids], device=self.device))
        self.forward_passes += 1
        logits = out.logits if hasattr(out, "logits") else out[0]
        return _first_label(logits)[0]

    def close(self) -> None:
        from rgen_harness.models.engine import free_memory

        self.model = self.head = self.body = None
        free_memory()


def _first_label(values) -> list[float]:
    values = values.float()
    if values.dim() == 2 and values.shape[-1] != 1:
        raise BackendError(
            f"the reward model returns {values.shape[-1]} values per input; a reward model "
            "must return one score (num_labels=1)"
        )
    return values.reshape(values.shape[0], -1)[:, 0].cpu().tolist()


def _param_dtype(module):
    return next(module.parameters()).dtype


def _pad_id(model_config: dict) -> int:
    """Any valid id: padded positions are masked and sit after the pooled token."""
    pad = model_config.get("pad_token_id")
    return pad if isinstance(pad, int) and pad >= 0 else 0
