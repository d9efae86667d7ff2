"""Embedding similarity: cosine between sentence embeddings of each reply and its reference.

Metric `similarity` (-1..1, in practice 0..1; higher is better), NaN for replies that were not
generated, 0.0 for an empty reply (an embedding of nothing says nothing about the reply).
Opt-in because it loads another model: list it with the other scorers wanted, e.g.
`--metadata '{"scorers": "reward,rouge,similarity"}'`.

Options (task metadata, validated at task start):
- `similarity_model`: hub id or local folder of a transformers encoder (default BAAI/bge-m3,
  multilingual, Chinese included; thenlper/gte-large-zh and other sentence-transformers
  models work the same way).
- `similarity_pooling`: `auto` (default) reads the model's sentence-transformers pooling config
  (`modules.json` -> `1_Pooling/config.json`), falling back to `mean`; or `cls`, `mean`, `max`,
  `lasttoken`.
- `similarity_batch_size` (32); `similarity_max_length` (512 tokens, or the tokenizer's limit
  if lower; longer texts are cut); `similarity_device` (`auto`: cuda when available, else
  cpu); `similarity_dtype` (`auto`: float16 on cuda, float32 on cpu).

Instruction prefixes some encoders expect (e5's "query: ") are not added.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rgen_harness.metrics.scorer_options import options_from_metadata
from rgen_harness.metrics.scorers import MetricSpec, ScoredItem

log = logging.getLogger(__name__)

DEFAULT_SIMILARITY_MODEL = "BAAI/bge-m3"
METRICS = (MetricSpec("similarity", "nanmean", True),)
POOLINGS = ("auto", "cls", "mean", "max", "lasttoken")
DTYPES = ("auto", "float32", "float16", "bfloat16")


@dataclass(frozen=True)
class SimilarityOptions:
    model: str = DEFAULT_SIMILARITY_MODEL
    pooling: str = "auto"
    batch_size: int = 32
    max_length: int = 512
    device: str = "auto"
    dtype: str = "auto"

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("similarity_model is empty: pass a hub id or a local model folder.")
        path = Path(os.path.expanduser(self.model))
        if _looks_like_path(self.model) and not path.is_dir():
            raise ValueError(
                f"similarity_model={self.model!r} is not a folder. Pass a local folder holding "
                f"config.json and the tokenizer, or a hub id such as {DEFAULT_SIMILARITY_MODEL!r}."
            )
        if self.pooling not in POOLINGS:
            raise ValueError(f"similarity_pooling={self.pooling!r}: use one of {POOLINGS}.")
        if self.dtype not in DTYPES:
            raise ValueError(f"similarity_dtype={self.dtype!r}: use one of {DTYPES}.")
        if self.batch_size < 1:
            raise ValueError(f"similarity_batch_size={self.batch_size}: use a positive integer.")
        if self.max_length < 2:
            raise ValueError(f"similarity_max_length={self.max_length}: use at least 2 tokens.")
        if self.device != "auto" and not self.device.startswith(("cpu", "cuda", "mps", "xpu")):
            raise ValueError(f"similarity_device={self.device!r}: use auto, cpu, cuda or cuda:N.")


def build(metadata: dict[str, Any]) -> SimilarityReplyScorer:
    """Scorer factory (`SCORER_FACTORIES["similarity"]`): validates the options and checks,
    from its config.json alone (no weights), that the model is reachable and a text encoder,
    so a wrong or missing model fails when the task loads, before generation."""
    from rgen_harness.metrics.model_kind import check_similarity_model, read_config

    options = options_from_metadata(SimilarityOptions, metadata, "similarity_")
    config, sentence_transformers = read_config("similarity_model", options.model)
    check_similarity_model(
        "similarity_model", options.model, config, sentence_transformers=sentence_transformers
    )
    return SimilarityReplyScorer(options)


class SimilarityReplyScorer:
    name = "similarity"
    metrics = METRICS

    def __init__(self, options: SimilarityOptions | None = None) -> None:
        self.options = options or SimilarityOptions()

    def score(self, items: list[ScoredItem]) -> list[dict[str, float]]:
        out = [{"similarity": math.nan} for _ in items]
        wanted = [i for i, item in enumerate(items) if item.result.status == "ok"]
        if not wanted:
            return out
        encoder = load_encoder(self.options)
        task = items[0].task
        replies = list(dict.fromkeys(items[i].reply for i in wanted))
        references = list(dict.fromkeys(items[i].reference for i in wanted))
        reply_emb = encoder.encode(replies, desc=f"similarity replies ({task})")
        ref_emb = encoder.encode(references, desc=f"similarity references ({task})", remember=True)
        reply_row = {text: row for row, text in enumerate(replies)}
        ref_row = {text: row for row, text in enumerate(references)}
        for i in wanted:
            reply, reference = items[i].reply, items[i].reference
            if not reply.strip() or not reference.strip():
                out[i]["similarity"] = 0.0
                continue
            out[i]["similarity"] = float(reply_emb[reply_row[reply]] @ ref_emb[ref_row[reference]])
        return out

    def similarity(self, a: str, b: str) -> float:
        """Cosine of one pair (for checks by hand)."""
        emb = load_encoder(self.options).encode([a, b], desc="similarity")
        return float(emb[0] @ emb[1])


_ENCODERS: dict[tuple, Encoder] = {}


def load_encoder(options: SimilarityOptions) -> Encoder:
    """One loaded encoder per (model, device, dtype, pooling) and process, so deita_qr and
    deita_qcr in one run share it."""
    key = (options.model, options.device, options.dtype, options.pooling)
    if key not in _ENCODERS:
        _ENCODERS[key] = Encoder(options)
    return _ENCODERS[key]


class Encoder:
    """A transformers encoder plus pooling; `encode` gives L2-normalized float32 rows."""

    def __init__(self, options: SimilarityOptions) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.options = options
        device = options.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        dtype = options.dtype
        if dtype == "auto":
            dtype = "float16" if self.device.type == "cuda" else "float32"
        self.pooling = (
            model_pooling(options.model) if options.pooling == "auto" else options.pooling
        )
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(options.model)
            self.model = AutoModel.from_pretrained(
                options.model, **{_dtype_kwarg(): getattr(torch, dtype)}
            )
        except OSError as e:
            raise OSError(
                f"could not load the similarity model {options.model!r}: {e}\n"
                'Pass another with --metadata \'{"similarity_model": "<hub id or folder>"}\'; '
                "without network access, download it first (`hf download "
                f"{options.model}`) or point similarity_model at a local copy."
            ) from e
        self.model.to(self.device).eval()
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        # The tokenizer's own limit (transformers uses a huge sentinel when it has none).
        self.max_length = min(options.max_length, self.tokenizer.model_max_length)
        self._remembered: dict[str, Any] = {}  # text -> embedding, for `remember=True`
        log.info("similarity model %s on %s (%s pooling)", options.model, device, self.pooling)

    def encode(self, texts: list[str], desc: str = "similarity", remember: bool = False):
        """Embed `texts` in batches (longest first, so padding stays small), in input order.

        With `remember`, the embeddings are kept for later calls (references: deita_qr and
        deita_qcr share them), and texts embedded before are not embedded again.
        """
        import numpy as np
        import torch
        from tqdm.auto import tqdm

        dim = self.model.config.hidden_size
        out = np.zeros((len(texts), dim), dtype=np.float32)
        todo = []
        for i, text in enumerate(texts):
            if text in self._remembered:
                out[i] = self._remembered[text]
            else:
                todo.append(i)
        order = sorted(todo, key=lambda i: -len(texts[i]))
        bs = self.options.batch_size
        with torch.inference_mode(), tqdm(total=len(order), desc=desc, unit="text") as bar:
            for start in range(0, len(order), bs):
                idx = order[start : start + bs]
                batch = self.tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**batch).last_hidden_state
                pooled = pool(hidden, batch["attention_mask"], self.pooling).float()
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out[idx] = pooled.cpu().numpy()
                bar.update(len(idx))
        if remember:
            self._remembered.update((texts[i], out[i]) for i in order)
        return out


def pool(hidden, mask, pooling: str):
    """Token states (batch, seq, dim) -> one vector per text."""
    import torch

    if pooling == "cls":
        return hidden[:, 0]
    m = mask.unsqueeze(-1).to(hidden.dtype)
    if pooling == "mean":
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1)
    if pooling == "max":
        return hidden.masked_fill(m == 0, torch.finfo(hidden.dtype).min).max(1).values
    if pooling == "lasttoken":  # the last non-padding token, for left or right padding
        last = mask.shape[1] - 1 - mask.flip(1).argmax(1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise ValueError(f"unknown pooling {pooling!r}; use one of {POOLINGS[1:]}.")


# sentence-transformers pooling flags -> our pooling names
_ST_POOLING = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_lasttoken": "lasttoken",
}


def model_pooling(model: str) -> str:
    """The pooling a sentence-transformers model declares, `mean` if it declares none."""
    from transformers.utils import cached_file

    def read(name: str) -> Any:
        path = cached_file(
            model,
            name,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
        )
        return json.loads(Path(path).read_text(encoding="utf-8")) if path else None

    modules = read("modules.json") or []
    folder = next((m.get("path") for m in modules if m.get("type", "").endswith(".Pooling")), None)
    config = read(f"{folder}/config.json") if folder else None
    if not config:
        log.info("similarity model %s declares no pooling; using mean pooling", model)
        return "mean"
    chosen = [name for flag, name in _ST_POOLING.items() if config.get(flag)]
    unsupported = [
        k for k, v in config.items() if k.startswith("pooling_mode") and v and k not in _ST_POOLING
    ]
    if len(chosen) != 1 or unsupported:
        raise ValueError(
            f"similarity model {model!r} declares pooling {config}, which is not one of "
            f"cls/mean/max/lasttoken alone. Choose one with --metadata "
            '\'{"similarity_pooling": "mean"}\'.'
        )
    return chosen[0]


def _dtype_kwarg() -> str:
    """`from_pretrained` takes `dtype` since transformers 4.56, `torch_dtype` before."""
    import transformers
    from packaging.version import Version

    return "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"


def _looks_like_path(model: str) -> bool:
    """Hub ids are `name` or `org/name`; anything else is meant as a folder."""
    return (
        model.startswith(("/", ".", "~"))
        or model.count("/") > 1
        or os.sep != "/"
        and os.sep in model
    )
