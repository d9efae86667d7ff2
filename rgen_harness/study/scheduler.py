"""Runs a study's runs side by side: every GPU of the node busy, or the nodes of a Ray cluster.

The plan (see `rgen_harness.study.placement`): each run asks for its `tp x dp` GPUs; runs start
largest model first, as many at once as the free GPUs hold (and `max_parallel` allows), each
pinned to its GPUs with CUDA_VISIBLE_DEVICES; a run that does not fit waits for GPUs to come
back. With scoring as its own phase (`scoring:`, see `rgen_harness.study.scoring`), lm_eval
generates with `--predict_only` and one scorer process, holding the reward model for the whole
study (on its own GPUs), scores each run as its generation ends.

Every run keeps the sequential runner's rules: its run.json, fingerprint and refusal of changed
inputs, resume from caches, its lm_eval.log (the console shows one line per event instead of
lm_eval's output), the study lock. Ctrl-C (or any error) stops every child: SIGINT to each
lm_eval's process group, then SIGKILL for what is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from rgen_harness.study.placement import (
    GpuPool,
    Gpus,
    Job,
    PlacementError,
    check_fits,
    check_placeable,
    cuda_env,
    gpus_per_run,
    model_size,
    next_fit,
    order,
    simulate,
    study_gpus,
)
from rgen_harness.study.scoring import generated_dir, generation_run

SCORING_LOG = "scoring.log"


@dataclass(frozen=True)
class Mode:
    parallel: bool  # through this scheduler (else the sequential runner)
    gpus: Gpus
    max_parallel: int | None
    separate_scoring: bool
    ray_address: str | None = None
    scorer_gpus: int = 0


def reward_enabled(config) -> bool:
    from rgen_harness.metrics.scorers import DEFAULT_SCORERS

    scorers = config.scorers if config.scorers is not None else DEFAULT_SCORERS
    return "reward" in scorers


def choose(config) -> Mode:
    """Parallel when more than one GPU is visible (or `scheduler: parallel`, or Ray); scoring
    separate when runs go in parallel and the reward scorer is on (or `scoring: separate`)."""
    ray = config.ray.address if config.ray is not None else None
    if ray is not None:
        gpus = Gpus((), config.gpu_memory_gb)
    elif config.scheduler == "sequential" and config.scoring != "separate":
        return Mode(False, Gpus((), None), 1, False)
    else:
        gpus = study_gpus(config.gpus, config.gpu_memory_gb)
    parallel = ray is not None or config.scheduler == "parallel"
    parallel = parallel or (config.scheduler == "auto" and len(gpus.ids) > 1)
    separate = config.scoring == "separate" or (
        config.scoring == "auto" and parallel and reward_enabled(config)
    )
    max_parallel = config.max_parallel
    if config.scheduler == "sequential" or (not gpus.ids and ray is None and not max_parallel):
        max_parallel = 1
    scorer = _scorer_gpus(config) if separate and (gpus.ids or ray is not None) else 0
    return Mode(parallel or separate, gpus, max_parallel, separate, ray, scorer)


def _scorer_gpus(config) -> int:
    reward = config.reward
    if reward.get("backend") == "server" or str(reward.get("device", "")).startswith("cpu"):
        return 0
    return int(reward.get("tp") or 1)


def _job(run, mode: Mode, config) -> Job:
    gpus = gpus_per_run(run.model.model, run.model.model_args)
    size = model_size(run.model.model_args)
    if mode.gpus.ids or mode.ray_address:
        check_fits(run.label, size, gpus, mode.gpus.memory_gb)
    else:
        gpus = 0  # no GPUs: runs share the CPU, `max_parallel` at a time
    return Job(run.label, gpus, size.total_gb if size else None, estimate_seconds(run, config))


def estimate_seconds(run, config) -> float | None:
    """From an earlier run's throughput (results JSON `config.throughput.total`): this run's
    requests over its samples per second (None when no earlier run measured it)."""
    for folder in _earlier_folders(run):
        for path in sorted(folder.rglob("results_*.json"), reverse=True):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                total = data["config"]["throughput"]["total"]
                rate = total["samples"] / total["wall_s"]
            except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError):
                continue
            per_task = config.subset.size if config.subset else config.limit
            if per_task is None:
                counts = data.get("n-samples") or {}
                requests = sum(v.get("effective", 0) for v in counts.values())
            else:
                requests = per_task * len(run.tasks)
            if rate > 0 and requests:
                return requests / rate
    return None


def _earlier_folders(run) -> list[Path]:
    """This run's own folders, then the same model's in sibling studies (e.g. a subset study
    beside the full one), where an earlier run may have measured its throughput."""
    own = [run.out_dir, generated_dir(run)]
    study = run.out_dir.parent.parent.parent
    siblings = sorted(p for p in study.parent.glob("*") if p.is_dir() and p != study)
    others = [s / sub / run.model.name / run.key for s in siblings for sub in ("runs", "generated")]
    return [f for f in own + others if f.is_dir()]


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# -- the plan -------------------------------------------------------------------------------------


def print_plan(config, runs, states, stream) -> None:
    """The placement plan of a dry run: GPUs per run, start order, estimated wall time."""
    try:
        mode = choose(config)
    except PlacementError as e:
        _say(stream, f"[study] plan: {e}")
        return
    todo = [r for r in runs if states[r.label] != "done"]
    if not mode.parallel or not todo:
        _say(stream, "[study] plan: one run at a time" + (" (nothing to run)" if not todo else ""))
        return
    jobs = [_job(r, mode, config) for r in todo]
    where = (
        f"Ray cluster at {mode.ray_address}"
        if mode.ray_address
        else (f"GPUs {','.join(map(str, mode.gpus.ids))}" if mode.gpus.ids else "the CPU")
    )
    ids = mode.gpus.ids[mode.scorer_gpus :] if mode.gpus.ids else tuple(range(64))
    lines = [
        f"[study] plan on {where}"
        + (f" ({mode.gpus.memory_gb:g} GB each)" if mode.gpus.memory_gb else "")
    ]
    if mode.separate_scoring:
        lines.append(
            "  scoring: one scorer process, reward model loaded once"
            + (
                f", on GPU(s) {','.join(map(str, mode.gpus.ids[: mode.scorer_gpus]))}"
                if mode.scorer_gpus and mode.gpus.ids
                else ""
            )
        )
    slots = {s.label: s for s in simulate(jobs, ids, mode.max_parallel)}
    known = all(j.est_s is not None for j in jobs)
    for job in order(jobs):
        slot = slots[job.label]
        size = f"~{job.size_gb:.0f} GB" if job.size_gb is not None else "size unknown"
        gpus = ",".join(map(str, slot.gpu_ids)) if mode.gpus.ids and job.gpus else "-"
        timing = (
            f", starts at {_duration(slot.start_s)}, takes ~{_duration(job.est_s)}"
            if job.est_s is not None and known
            else (f", takes ~{_duration(job.est_s)}" if job.est_s is not None else "")
        )
        lines.append(f"  {job.label}: {job.gpus} GPU(s) [{gpus}], {size}{timing}")
    if known:
        wall = max(s.end_s for s in slots.values())
        longest = max(j.est_s for j in jobs)
        lines.append(
            f"  estimated wall time: {_duration(wall)} (slowest run {_duration(longest)}, "
            f"one at a time {_duration(sum(j.est_s for j in jobs))})"
        )
    else:
        missing = [j.label for j in jobs if j.est_s is None]
        lines.append(
            f"  estimated wall time: unknown (no earlier throughput for {', '.join(missing)})"
        )
    _say(stream, "\n".join(lines))


# -- running --------------------------------------------------------------------------------------


class _LogOnly:
    """lm_eval's output goes to its lm_eval.log only (several run at once)."""

    def write(self, text):
        return len(text)

    def flush(self):
        pass


class LocalExecutor:
    """Runs on this node: GPUs from a pool, each run in a thread around `runner._execute`."""

    def __init__(self, mode: Mode, events: queue.Queue) -> None:
        self.pool = GpuPool(mode.gpus.ids)
        self.events = events
        self.held: dict[str, tuple[int, ...]] = {}

    @property
    def capacity(self) -> int:
        return len(self.pool.free)

    def free(self) -> int:
        return len(self.pool.free)

    def launch(self, run, gpus: int) -> str:
        ids = self.pool.take(gpus) if gpus else ()
        if ids is None:
            raise RuntimeError(f"{run.label}: launched without {gpus} free GPU(s)")  # a bug
        self.held[run.label] = ids
        if ids:
            run = replace(run, env=(*run.env, *cuda_env(ids).items()))
        threading.Thread(target=self._run, args=(run,), daemon=True).start()
        return f"GPU {','.join(map(str, ids))}" if ids else "the CPU"

    def _run(self, run) -> None:
        from rgen_harness.study import runner

        try:
            code = runner._execute(run, _LogOnly())
            self.events.put(("generated", run.label, code, None))
        except BaseException as e:  # noqa: BLE001 (handed to the main thread)
            self.events.put(("error", run.label, None, e))

    def release(self, label: str) -> None:
        ids = self.held.pop(label, ())
        if ids:
            self.pool.give(ids)

    def start_scorer(self, config, gpus: int) -> ScorerProcess:
        ids = self.pool.take(gpus) if gpus else ()
        env = cuda_env(ids) if ids else {}
        return ScorerProcess(config.study_dir / SCORING_LOG, env, self.events)

    def next_event(self, timeout: float):
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            return None

    def stop(self) -> None:
        from rgen_harness.study import runner

        runner.stop_all()


class ScorerProcess:
    """`python -m rgen_harness.study.scoring`: loads the scorers once, scores runs on request."""

    def __init__(self, log_path: Path, env: dict, events: queue.Queue) -> None:
        from rgen_harness.file_writes import explain
        from rgen_harness.study import runner

        try:
            self.log = open(log_path, "ab")  # noqa: SIM115 (closed in close)
        except OSError as e:
            raise explain(e, log_path, "output_dir") from None
        self.events = events
        self.loads: int | None = None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rgen_harness.study.scoring"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=dict(os.environ, TOKENIZERS_PARALLELISM="false", **env),
            text=True,
            start_new_session=True,
        )
        with runner._CHILDREN_LOCK:
            runner._CHILDREN.add(self.proc)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "loads" in msg:
                self.loads = msg["loads"]
            else:
                self.events.put(("scored", msg["label"], msg["ok"], msg.get("error")))
        self.events.put(("scorer_exit", None, self.proc.wait(), None))

    def _send(self, message: dict) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass  # it ended: the reader reports it

    def preload(self, metadata: dict) -> None:
        self._send({"preload": metadata})

    def submit(self, run) -> None:
        self._send(
            {"label": run.label, "generated": str(generated_dir(run)), "out": str(run.out_dir)}
        )

    def close(self) -> int | None:
        """End its input, wait for it; the number of reward models it loaded."""
        from rgen_harness.study import runner

        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.close()
        self.proc.wait()
        self.reader.join(timeout=10)
        with runner._CHILDREN_LOCK:
            runner._CHILDREN.discard(self.proc)
        self.log.close()
        return self.loads


def run_parallel(config, runs, states, stream, mode: Mode):
    """Run `runs` side by side (see the module docstring); the sequential runner's outcome."""
    from rgen_harness.study import runner
    from rgen_harness.study.finished import completion

    outcome = runner.StudyOutcome([], [], [])
    separate = {r.label: mode.separate_scoring and r.key == "deita" for r in runs}
    generate, score_only = [], []
    for run in runs:
        state = states[run.label]
        if state == "done":
            _say(stream, f"[study] {run.label}: finished earlier, skipped")
            outcome.skipped.append(run.label)
        elif separate[run.label] and state == "partial" and _complete(run, generated_dir(run)):
            _say(stream, f"[study] {run.label}: generated earlier; scoring")
            score_only.append(run)
        else:
            if state == "partial":
                runner._report_unfinished(run, stream, set_aside=True)
            generate.append(run)
    jobs = {r.label: _job(r, mode, config) for r in generate}
    events: queue.Queue = queue.Queue()
    if mode.ray_address:
        from rgen_harness.study.ray_runner import RayExecutor

        executor = RayExecutor(mode, events, config)
    else:
        executor = LocalExecutor(mode, events)
    by_label = {r.label: r for r in runs}
    scorer = None
    running: set[str] = set()
    scoring: set[str] = set()
    pending = order(list(jobs.values()))
    try:
        if score_only or any(separate[r.label] for r in generate):
            scorer = executor.start_scorer(config, mode.scorer_gpus)
            scorer.preload(config.task_metadata())
        check_placeable(pending, executor.capacity)
        for run in score_only:
            scorer.submit(run)
            scoring.add(run.label)
        while pending or running or scoring:
            while job := next_fit(pending, executor.free(), len(running), mode.max_parallel):
                pending.remove(job)
                run = by_label[job.label]
                runner._check_generation_cache(run)
                verb = "resuming" if states[run.label] == "partial" else "running"
                todo = generation_run(run) if separate[run.label] else run
                where = executor.launch(todo, job.gpus)
                running.add(run.label)
                what = "generating (scored later)" if separate[run.label] else verb
                _say(stream, f"[study] {run.label}: {what} on {where}\n$ {todo.shell_command()}")
            event = executor.next_event(0.5)
            if event is None:
                continue
            kind, label, result, error = event
            if kind == "error":
                raise error
            if kind == "scorer_exit":
                if scoring:  # it ended with runs still to score
                    for label in sorted(scoring):
                        _failed(
                            outcome,
                            by_label[label],
                            stream,
                            f"the scorer ended (exit code "
                            f"{result}); see {config.study_dir / SCORING_LOG}",
                        )
                    scoring.clear()
                continue
            run = by_label[label]
            if kind == "generated":
                running.discard(label)
                executor.release(label)
                if not separate[label]:
                    if result == 0 and set(run.tasks) <= completion(run.out_dir).done:
                        outcome.done.append(label)
                        _say(stream, f"[study] {label}: done")
                    else:
                        _failed(
                            outcome,
                            run,
                            stream,
                            error or f"exit code {result}; see {run.out_dir / runner.LOG_FILE}",
                        )
                elif result == 0 and _complete(run, generated_dir(run)):
                    runner._mask_results(replace(run, out_dir=generated_dir(run)))
                    _say(stream, f"[study] {label}: generated; scoring")
                    scorer.submit(run)
                    scoring.add(label)
                else:
                    _failed(
                        outcome,
                        run,
                        stream,
                        error or f"exit code {result}; see {run.out_dir / runner.LOG_FILE}",
                    )
            elif kind == "scored":
                scoring.discard(label)
                if result and set(run.tasks) <= completion(run.out_dir).done:
                    runner._mask_results(run)
                    outcome.done.append(label)
                    _say(stream, f"[study] {label}: scored, done")
                else:
                    _failed(
                        outcome,
                        run,
                        stream,
                        f"scoring: {error}; see {config.study_dir / SCORING_LOG}",
                    )
        if scorer is not None:
            outcome.scorer_loads = scorer.close()
            scorer = None
    except BaseException as e:
        executor.stop()
        if scorer is not None:
            with contextlib.suppress(Exception):
                scorer.close()
        if isinstance(e, KeyboardInterrupt):
            with contextlib.suppress(OSError, ValueError):
                _say(
                    stream,
                    "\n[study] interrupted; every run was stopped. Run the same command to resume",
                )
        raise
    return outcome


def _complete(run, folder: Path) -> bool:
    from rgen_harness.study.finished import completion

    return folder.is_dir() and set(run.tasks) <= completion(folder).done


def _failed(outcome, run, stream, why: str) -> None:
    _say(
        stream,
        f"[study] {run.label}: FAILED ({why}). The other models continue; run the study again "
        "to retry this one.",
    )
    outcome.failed.append(run.label)


def _say(stream, text: str) -> None:
    stream.write(text + "\n")
    stream.flush()
