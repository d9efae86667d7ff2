"""Reward-model scoring of generated replies (the `reward` scorer of the deita tasks).

config.py (the `reward_*` settings) -> source.py (where the model is) -> render.py (chat
template, reward token, truncation) -> batching.py -> backends/ (hf, lmdeploy, server) with
cache.py (scores on disk) -> scorer.py (per-reply metrics). lm_eval_task.py offers the same
scoring to any generate_until task from YAML; `rgen-harness score` rescores logged samples.
Heavy libraries are imported only when a model is loaded.
"""
