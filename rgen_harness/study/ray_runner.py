"""The study on the nodes of a Ray cluster (`rgen-harness study CONFIG --ray auto`, or
`ray: {address: ...}` in the config; `pip install "rgen-harness[ray]"`).

Each generation run is a Ray task asking for its `tp x dp` GPUs (Ray picks the node and sets
CUDA_VISIBLE_DEVICES; the task pins lm_eval to them as the local scheduler does) and runs the
same `runner._execute` there; the scorer is one Ray actor holding the reward model (on its own
GPUs) for the whole study. Runs are handed to Ray largest first, no more at once than the
cluster's GPUs hold. Every node must see the study's output_dir at the same path (a shared
file system): records, caches and results are written there as on one node. Ctrl-C cancels
every task (each stops its lm_eval as the local scheduler does) and ends the actor.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

INSTALL_HINT = 'pip install "rgen-harness[ray]"'


def require_ray():
    try:
        import ray
    except ImportError as e:
        from rgen_harness.study.config import StudyConfigError

        raise StudyConfigError(
            f"the study's ray setting needs Ray, which is not installed ({e}): {INSTALL_HINT}"
        ) from None
    return ray


def _generate(run) -> tuple[int, tuple[int, ...], str]:
    """A Ray task: lm_eval on the GPUs Ray gave it; (exit code, GPU ids, node)."""
    import dataclasses
    import socket

    import ray

    from rgen_harness.study import runner
    from rgen_harness.study.placement import cuda_env
    from rgen_harness.study.scheduler import _LogOnly

    ids = tuple(int(i) for i in ray.get_gpu_ids())
    run = dataclasses.replace(run, env=(*run.env, *cuda_env(ids).items()))
    return runner._execute(run, _LogOnly()), ids, socket.gethostname()


class _Scorer:
    """A Ray actor: the scorer process's work, its models loaded once."""

    def preload(self, metadata: dict) -> None:
        from rgen_harness.study.scoring import preload

        with contextlib.suppress(Exception):  # the runs' own scoring says what is wrong
            preload(metadata)

    def score(
        self, label: str, generated: str, out: str, metadata: dict | None = None
    ) -> tuple[str, bool, str | None]:
        from pathlib import Path

        from rgen_harness.study.scoring import score_run

        try:
            score_run(Path(generated), Path(out), metadata=metadata)
        except Exception as e:  # noqa: BLE001 (reported as the run's failure)
            return label, False, f"{type(e).__name__}: {e}"
        return label, True, None

    def loads(self) -> tuple[int, int]:
        from rgen_harness.study.scoring import charrm_loads, reward_loads

        return reward_loads(), charrm_loads()


class RayExecutor:
    """The scheduler's executor on a Ray cluster (see `scheduler.LocalExecutor`)."""

    def __init__(self, mode, events, config) -> None:
        ray = require_ray()
        self.ray = ray
        env = {"TOKENIZERS_PARALLELISM": "false"}
        if os.environ.get("PYTHONPATH"):
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        try:
            ray.init(
                address=mode.ray_address,
                runtime_env={"env_vars": env},
                log_to_driver=False,
                ignore_reinit_error=True,
            )
        except ConnectionError as e:
            from rgen_harness.study.config import StudyConfigError

            raise StudyConfigError(
                f"no Ray cluster at {mode.ray_address!r} ({e}). Start one (`ray start --head "
                "--num-gpus 8` on the head node, `ray start --address HEAD:6379` on the others) "
                "or set ray.address to its address."
            ) from None
        self.total = int(ray.cluster_resources().get("GPU", 0))
        self.gpus: dict[str, int] = {}
        self.refs: dict = {}  # ref -> ("generated" | "scored", label)
        self.actor = None
        self.scorer_gpus = 0
        self._task = ray.remote(max_retries=0)(_generate)

    @property
    def capacity(self) -> int:
        return self.total - self.scorer_gpus

    def free(self) -> int:
        return self.capacity - sum(self.gpus.values())

    def launch(self, run, gpus: int, label: str) -> str:
        ref = self._task.options(num_gpus=gpus, num_cpus=1).remote(run)
        self.refs[ref] = ("generated", label)
        self.gpus[label] = gpus
        return f"a Ray task ({gpus} GPU)"

    def release(self, label: str) -> None:
        self.gpus.pop(label, None)

    def start_scorer(self, config, gpus: int):
        self.scorer_gpus = gpus
        actor = self.ray.remote(_Scorer).options(num_gpus=gpus, num_cpus=1).remote()
        self.actor = actor
        return _ActorScorer(self, actor)

    def next_event(self, timeout: float):
        if not self.refs:
            time.sleep(timeout)
            return None
        ready, _ = self.ray.wait(list(self.refs), num_returns=1, timeout=timeout)
        if not ready:
            return None
        ref = ready[0]
        kind, label = self.refs.pop(ref)
        try:
            value = self.ray.get(ref)
        except Exception as e:  # noqa: BLE001 (a task that died: that run failed)
            return (kind, label, None, f"Ray task failed: {type(e).__name__}: {e}")
        if kind == "generated":
            return ("generated", label, value[0], None)
        return ("scored", label, value[1], value[2])

    def stop(self) -> None:
        """Cancel every task (KeyboardInterrupt in it: `_execute` stops its lm_eval), then
        force what is still running, and end the scorer actor."""
        refs = [r for r, (kind, _) in self.refs.items() if kind == "generated"]
        for ref in refs:
            self.ray.cancel(ref)
        if refs:
            self.ray.wait(refs, num_returns=len(refs), timeout=40)
        for ref in refs:
            with contextlib.suppress(Exception):  # already ended
                self.ray.cancel(ref, force=True)
        if self.actor is not None:
            self.ray.kill(self.actor)
            self.actor = None


class _ActorScorer:
    def __init__(self, executor: RayExecutor, actor) -> None:
        self.executor, self.actor = executor, actor
        self.charrm_loads: int | None = None

    def preload(self, metadata: dict) -> None:
        self.actor.preload.remote(metadata)

    def submit(self, run) -> None:
        from rgen_harness.study.scoring import generated_dir

        ref = self.actor.score.remote(
            run.label, str(generated_dir(run)), str(run.out_dir), run.settings.get("metadata")
        )
        self.executor.refs[ref] = ("scored", run.label)

    def close(self) -> int | None:
        ray = self.executor.ray
        if self.executor.actor is None:
            return None
        try:
            loads, self.charrm_loads = ray.get(self.actor.loads.remote(), timeout=60)
        except Exception as e:  # noqa: BLE001
            print(f"[study] the scorer actor did not answer: {e}", file=sys.stderr)
            loads = None
        ray.kill(self.actor)
        self.executor.actor = None
        return loads
