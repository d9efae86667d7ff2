"""Where each run of a study goes: how many GPUs it needs, how big its model is, and in which
order runs take the node's GPUs.

A model's size is estimated from its `config.json` (a local folder, or the Hugging Face cache;
nothing is downloaded): parameters from the hidden size, layers, attention and KV heads, vocab
and intermediate size (embeddings, attention, gated MLP, an untied LM head), 2 bytes each
(bf16), plus the KV cache of one full `session_len` sequence (2 x layers x KV heads x head dim
x session_len x 2 bytes). A run gets `tp x dp` whole GPUs (lmdeploy's own parallelism; other
model types one), pinned with CUDA_VISIBLE_DEVICES; it must fit in USABLE of their memory, or
the plan is refused with the tp to set. Runs never share a GPU (lmdeploy takes most of a GPU's
free memory for its cache), so a run needing more GPUs than are free waits; a smaller one
behind it may start first. Order: largest model first.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rgen_harness.study.config import StudyConfigError

USABLE = 0.9  # share of a GPU's memory the weights and one session's KV cache may take
BYTES_PER_PARAM = 2  # bf16


class PlacementError(StudyConfigError):
    """A run that cannot be placed on the GPUs given; the message names the fix."""


@dataclass(frozen=True)
class ModelSize:
    params: int
    weights_gb: float
    kv_gb: float
    session_len: int

    @property
    def total_gb(self) -> float:
        return self.weights_gb + self.kv_gb


@dataclass(frozen=True)
class Job:
    """One run to place: `gpus` whole GPUs, `size_gb` for the order, `est_s` when known."""

    label: str
    gpus: int
    size_gb: float | None = None
    est_s: float | None = None


@dataclass(frozen=True)
class Slot:
    """A job's place in a simulated schedule."""

    label: str
    gpu_ids: tuple[int, ...]
    start_s: float
    end_s: float


# -- sizes ------------------------------------------------------------------------------------


def _first(cfg: dict, *keys: str) -> Any:
    for key in keys:
        value = cfg.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return value
    return None


def size_from_config(cfg: dict, session_len: int | None = None) -> ModelSize | None:
    """The estimate from a config.json's keys (None when the keys that matter are missing).
    Names of the common families are read: llama/qwen2/internlm2 and ChatGLM/GLM-4's own."""
    cfg = {**cfg.get("text_config", {}), **cfg} if isinstance(cfg.get("text_config"), dict) else cfg
    hidden = _first(cfg, "hidden_size", "n_embd", "d_model")
    layers = _first(cfg, "num_hidden_layers", "num_layers", "n_layer")
    vocab = _first(cfg, "vocab_size", "padded_vocab_size")
    if not (hidden and layers and vocab):
        return None
    inter = _first(cfg, "intermediate_size", "ffn_hidden_size") or 4 * hidden
    heads = _first(cfg, "num_attention_heads", "n_head") or 1
    kv_heads = _first(cfg, "num_key_value_heads", "multi_query_group_num") or heads
    if not cfg.get("multi_query_attention", True):
        kv_heads = heads
    head_dim = _first(cfg, "head_dim", "kv_channels") or hidden // heads
    attn = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2  # q, o; k, v
    mlp = 3 * hidden * inter  # gate, up, down
    experts = _first(cfg, "num_local_experts", "num_experts", "n_routed_experts") or 1
    tied = bool(cfg.get("tie_word_embeddings", False))
    params = vocab * hidden * (1 if tied else 2) + layers * (attn + mlp * experts + 2 * hidden)
    n = int(session_len or _first(cfg, "max_position_embeddings", "seq_length") or 4096)
    kv = 2 * layers * kv_heads * head_dim * n * BYTES_PER_PARAM
    return ModelSize(int(params), params * BYTES_PER_PARAM / 1e9, kv / 1e9, n)


def find_config(pretrained: str, revision: str | None = None) -> Path | None:
    """config.json of a local folder or of a hub id already in the Hugging Face cache."""
    local = Path(pretrained)
    if local.is_dir():
        path = local / "config.json"
        return path if path.is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(pretrained, "config.json", revision=revision)
    except ValueError:  # not a repo id
        return None
    return Path(found) if isinstance(found, str) else None


def model_size(model_args: dict) -> ModelSize | None:
    """The estimate for a study model (None: no config.json to read; its size is unknown)."""
    path = find_config(str(model_args.get("pretrained", "")), model_args.get("revision"))
    if path is None:
        return None
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    session = model_args.get("session_len") or model_args.get("max_length")
    return (
        size_from_config(cfg, int(session) if session else None) if isinstance(cfg, dict) else None
    )


def gpus_per_run(model_type: str, model_args: dict) -> int:
    """lmdeploy: tp x dp (its own parallelism); any other model type: one GPU."""
    if model_type != "lmdeploy":
        return 1
    tp = int(model_args.get("tp") or 1)
    dp = int(model_args.get("dp") or 1)
    return tp * dp


def check_fits(label: str, size: ModelSize | None, gpus: int, gpu_memory_gb: float | None):
    """Refuse a model that does not fit its GPUs (unknown sizes and memory pass)."""
    if size is None or gpu_memory_gb is None:
        return
    room = gpus * gpu_memory_gb * USABLE
    if size.total_gb > room:
        tp = 1 << max(0, math.ceil(math.log2(size.total_gb / (gpu_memory_gb * USABLE))))
        raise PlacementError(
            f"{label} needs ~{size.total_gb:.0f} GB (weights {size.weights_gb:.0f} GB + KV cache "
            f"{size.kv_gb:.0f} GB for session_len {size.session_len}) but {gpus} GPU(s) of "
            f"{gpu_memory_gb:g} GB give {room:.0f} GB usable. Set tp: {tp} in its model_args, "
            "or a smaller session_len."
        )


# -- GPUs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gpus:
    ids: tuple[int, ...]
    memory_gb: float | None  # per GPU (the smallest), None when unknown


def visible_gpus() -> Gpus:
    """The GPUs this process may use: nvidia-smi's list, narrowed by CUDA_VISIBLE_DEVICES."""
    memory: dict[int, float] = {}
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=index,memory.total", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        for line in out.splitlines():
            index, _, mib = line.partition(",")
            if index.strip().isdigit():
                memory[int(index)] = float(mib) * 1.048576 / 1000 if mib.strip() else math.nan
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        ids = tuple(int(x) for x in env.split(",") if x.strip().isdigit())
        mem = [memory[i] for i in ids if i in memory]
    else:
        ids = tuple(sorted(memory))
        mem = list(memory.values())
    mem = [m for m in mem if not math.isnan(m)]
    return Gpus(ids, round(min(mem), 1) if mem else None)


def study_gpus(setting: int | tuple[int, ...] | None, memory_gb: float | None) -> Gpus:
    """The GPUs a study uses: `gpus:` as ids (used as given), as a count (the first visible),
    or all visible."""
    if isinstance(setting, tuple):
        seen = visible_gpus() if memory_gb is None else Gpus((), memory_gb)
        return Gpus(setting, memory_gb or seen.memory_gb)
    seen = visible_gpus()
    ids = seen.ids
    if isinstance(setting, int):
        if setting > len(ids):
            raise PlacementError(
                f"gpus: {setting} but {len(ids)} GPU(s) are visible "
                f"({', '.join(map(str, ids)) or 'none'}); lower it, or list GPU ids."
            )
        ids = ids[:setting]
    return Gpus(ids, memory_gb or seen.memory_gb)


class GpuPool:
    """Whole GPUs handed out and taken back; never more than it holds."""

    def __init__(self, ids: tuple[int, ...]) -> None:
        self.ids = tuple(ids)
        self.free = list(ids)

    def take(self, n: int) -> tuple[int, ...] | None:
        if n > len(self.free):
            return None
        taken, self.free = tuple(self.free[:n]), self.free[n:]
        return taken

    def give(self, ids: tuple[int, ...]) -> None:
        for i in ids:
            if i not in self.ids or i in self.free:
                raise RuntimeError(f"GPU {i} given back but not handed out")  # a bug here
        self.free = sorted([*self.free, *ids], key=self.ids.index)


def cuda_env(gpu_ids: tuple[int, ...]) -> dict[str, str]:
    """What pins a run to its GPUs."""
    return {"CUDA_VISIBLE_DEVICES": ",".join(map(str, gpu_ids))}


# -- order and schedule ----------------------------------------------------------------------


def order(jobs: list[Job]) -> list[Job]:
    """Largest model first (then most GPUs, longest estimate); unknown sizes last."""
    return sorted(
        jobs,
        key=lambda j: (
            j.size_gb is None,
            -(j.size_gb or 0),
            -j.gpus,
            -(j.est_s or 0),
            j.label,
        ),
    )


def next_fit(pending: list[Job], free: int, running: int, max_parallel: int | None) -> Job | None:
    """The first job in order that fits the free GPUs (None when none does, or when
    `max_parallel` runs are going)."""
    if max_parallel is not None and running >= max_parallel:
        return None
    return next((j for j in pending if j.gpus <= free), None)


def check_placeable(jobs: list[Job], pool_size: int) -> None:
    for job in jobs:
        if job.gpus > pool_size:
            raise PlacementError(
                f"{job.label} needs {job.gpus} GPU(s) (tp x dp) but the study has {pool_size}; "
                "lower its tp, or give the study more GPUs (gpus: in the study config)."
            )


def simulate(
    jobs: list[Job],
    gpu_ids: tuple[int, ...],
    max_parallel: int | None = None,
    after: dict[str, set[str]] | None = None,
) -> list[Slot]:
    """The schedule the local scheduler follows, with each job lasting `est_s` (1 s when
    unknown): list scheduling, largest first, never more GPUs than there are; a job in `after`
    starts once the jobs it names have ended."""
    check_placeable(jobs, len(gpu_ids))
    after = after or {}
    pool = GpuPool(gpu_ids)
    pending = order(jobs)
    running: list[tuple[float, Slot]] = []
    slots: list[Slot] = []
    ended: set[str] = set()
    now = 0.0
    while pending or running:
        while True:
            ready = [j for j in pending if after.get(j.label, set()) <= ended]
            job = next_fit(ready, len(pool.free), len(running), max_parallel)
            if job is None:
                break
            pending.remove(job)
            ids = pool.take(job.gpus)
            assert ids is not None
            slot = Slot(job.label, ids, now, now + (job.est_s if job.est_s is not None else 1.0))
            running.append((slot.end_s, slot))
            slots.append(slot)
        if not running:  # what is left waits for jobs that are not in the plan
            raise PlacementError(f"cannot schedule {[j.label for j in pending]}: {after}")
        running.sort(key=lambda r: r[0])
        end, slot = running.pop(0)
        now = end
        ended.add(slot.label)
        pool.give(slot.gpu_ids)
    return slots
