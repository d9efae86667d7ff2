"""The study's CharacterEval runs: the `charactereval:` block checked; one lm_eval run per model.

A benchmark run passes no `--metadata`, and charactereval needs its own (data, the charrm
scorer's model and consent), so the block plans a run of its own per model, beside the deita run:
`runs/<model>/charactereval/`, cached generations in `cache/<model>/charactereval`. Like a deita
run it is skipped when finished, resumed when not, and refused when its settings or inputs
changed (rgen_harness.study.runner.run_state): the inputs are the data files' sha256 (a
download is pinned by its commit), the CharRM weights as the score cache names them, and the
build settings of any tiny model the run uses.

`trust_remote_code: true` under `charrm` is required: BaichuanCharRM is loaded with the model
folder's own code, which the study runs only with that consent, given in the config.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from rgen_harness.study.config import ModelSpec, StudyConfig, StudyConfigError, _unknown

log = logging.getLogger(__name__)

TASK = "charactereval"
RUN_KEY = "charactereval"


def check_config(config: StudyConfig, source: str) -> None:
    """The block's keys and values, checked when the config loads (no model is touched)."""
    from rgen_harness.metrics.charrm.options import PREFIX, CharRMOptions

    def fail(msg: str) -> None:
        raise StudyConfigError(f"{source}: {msg}")

    if TASK in config.tasks or any(t.startswith(f"{TASK}_") for t in config.tasks):
        fail(
            f"'tasks' lists {TASK}; role-play runs are set up in the 'charactereval:' block "
            "(data, charrm model and consent), which plans them per model. Remove it from 'tasks'."
        )
    if any(b.task == TASK for b in config.benchmarks):
        fail(f"benchmark {TASK!r}: use the 'charactereval:' block (the task needs its metadata)")
    spec = config.charactereval
    if spec is None:
        return
    if spec.limit is not None and spec.subset is not None:
        fail("charactereval: set either 'limit' or 'subset', not both")
    if spec.limit is not None and spec.limit < 1:
        fail(f"charactereval.limit={spec.limit} must be >= 1")
    if spec.subset is not None and spec.subset.size < 1:
        fail(f"charactereval.subset.size={spec.subset.size} must be >= 1")
    if spec.max_gen_toks is not None and spec.max_gen_toks < 1:
        fail(f"charactereval.max_gen_toks={spec.max_gen_toks} must be >= 1")
    known = [f.name for f in dataclasses.fields(CharRMOptions)]
    for key in spec.charrm:
        if key not in known:
            fail("charactereval.charrm: " + _unknown("key", key, known))
    try:
        options = CharRMOptions.from_metadata(task_metadata(config))
    except (TypeError, ValueError) as e:
        fail(f"charactereval.charrm: {e}")
    if options.trust_remote_code is not True:
        fail(
            f"charactereval.charrm.trust_remote_code is not true. BaichuanCharRM "
            f"({options.model}) is loaded with its folder's own model code "
            "(modeling_baichuan.py); read it, then consent with `trust_remote_code: true` under "
            f"charactereval.charrm (task metadata {PREFIX}trust_remote_code)."
        )


def task_metadata(config: StudyConfig) -> dict[str, Any]:
    """What the charactereval task receives through `--metadata`."""
    from rgen_harness.data.charactereval import PATH_KEY
    from rgen_harness.metrics.charrm.options import PREFIX

    spec = config.charactereval
    md: dict[str, Any] = {}
    if spec is None:
        return md
    if spec.data is not None:
        md[PATH_KEY] = spec.data
    for key, value in spec.charrm.items():
        md[PREFIX + key] = value
    return md


def subset_indices(config: StudyConfig, *, dry_run: bool = False) -> list[int] | None:
    """The seeded example indices of `charactereval.subset` (sorted), drawn as the deita subset
    is (numpy default_rng(seed).choice without replacement). None without a subset, and in a
    dry run whose data cannot be read (said in the log)."""
    spec = config.charactereval
    if spec is None or spec.subset is None:
        return None
    import numpy as np

    from rgen_harness.data.charactereval import CharacterEvalSource, load_docs

    try:
        n = len(load_docs(CharacterEvalSource.from_metadata(task_metadata(config))))
    except (OSError, ValueError, RuntimeError) as e:
        if dry_run:
            log.warning("dry run: the charactereval subset is unknown (data unreadable: %s)", e)
            return None
        raise StudyConfigError(f"charactereval.data: {e}") from e
    size = min(spec.subset.size, n)
    if size < spec.subset.size:
        log.warning("charactereval.subset.size=%d but the data has %d examples", size, n)
    rng = np.random.default_rng(spec.subset.seed)
    return sorted(int(i) for i in rng.choice(n, size=size, replace=False))


def inputs(config: StudyConfig, model: ModelSpec, *, dry_run: bool = False) -> dict[str, Any]:
    """The `inputs` entry of the run's settings (see the module docstring)."""
    from rgen_harness.data.charactereval import CharacterEvalSource
    from rgen_harness.metrics.charrm.options import CharRMOptions
    from rgen_harness.metrics.reward.config import RewardConfig
    from rgen_harness.metrics.reward.source import RewardModelUnavailable, resolve
    from rgen_harness.study.inputs import _tiny_models, file_sha256

    metadata = task_metadata(config)
    out: dict[str, Any] = {}
    try:
        source = CharacterEvalSource.from_metadata(metadata)
    except (OSError, ValueError) as e:
        raise StudyConfigError(f"charactereval.data: {e}") from e
    out["charactereval_data"] = source.describe()
    if source.folder is not None:
        out["charactereval_data_sha256"] = {
            key: file_sha256(path) for key, path in sorted(source.paths().items())
        }
    options = CharRMOptions.from_metadata(metadata)
    charrm_path = None
    try:
        resolved = resolve(RewardConfig(model=options.model, revision=options.revision or None))
        out["charrm_model"] = resolved.key
        charrm_path = resolved.path if resolved.key.startswith("local:") else None
    except RewardModelUnavailable as e:
        if not dry_run:
            raise StudyConfigError(f"charactereval.charrm: {e}") from e
        out["charrm_model"] = "unknown (dry run: the hub cannot be asked)"
    tiny = _tiny_models(config, [model.model_args.get("pretrained"), charrm_path])
    if tiny:
        out["tiny_models"] = tiny
    return out


def plan_run(config: StudyConfig, model: ModelSpec, indices: list[int] | None, *, dry_run: bool):
    """The model's charactereval run (a runner.PlannedRun)."""
    from rgen_harness.study.runner import _common, _finish

    spec = config.charactereval
    argv, settings = _common(config, model)
    metadata = task_metadata(config)
    argv += ["--metadata", json.dumps(metadata, ensure_ascii=False)]
    settings["metadata"] = metadata
    if spec.max_gen_toks is not None:
        gen = {"max_gen_toks": spec.max_gen_toks}
        argv += ["--gen_kwargs", json.dumps(gen)]
        settings["gen_kwargs"] = gen
    if spec.limit is not None:
        argv += ["--limit", str(spec.limit)]
        settings["limit"] = spec.limit
    if indices is not None:
        samples = {TASK: indices}
        argv += ["--samples", json.dumps(samples)]
        settings["samples"] = samples
    settings["inputs"] = inputs(config, model, dry_run=dry_run)
    return _finish(model, RUN_KEY, (TASK,), argv, settings, config, config.study_dir)
