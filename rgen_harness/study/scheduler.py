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
# Runs whose replies the scoring phase scores (reward and reference scorers; CharRM for
# role-play); any other run (benchmarks, the judge) is scored inside its own lm_eval.
SCORED_LATER = ("deita", "charactereval")


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
    from rgen_harness.study.config import explicit_shards

    parallel = ray is not None or config.scheduler == "parallel" or explicit_shards(config)
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
    """GPUs set aside for the scorer process: the reward model's tp (none when it is served
    or on the CPU), at least one when it also holds CharRM on a GPU."""
    reward = config.reward
    gpus = 0
    on_cpu = str(reward.get("device", "")).startswith("cpu")
    if reward_enabled(config) and reward.get("backend") != "server" and not on_cpu:
        gpus = int(reward.get("tp") or 1)
    roleplay = config.charactereval
    if roleplay is not None and not str(roleplay.charrm.get("device", "")).startswith("cpu"):
        gpus = max(gpus, 1)
    return gpus


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


def print_plan(config, runs, states, stream) -> bool:
    """The placement plan of a dry run: GPUs per run (and shard), start order, estimated wall
    time, and each command as the parallel scheduler starts it. False when the study runs one
    run at a time (the sequential listing follows)."""
    try:
        mode = choose(config)
    except PlacementError as e:
        _say(stream, f"[study] plan: {e}")
        return False
    todo = [r for r in runs if states[r.label] != "done"]
    if not mode.parallel or not todo:
        _say(stream, "[study] plan: one run at a time" + (" (nothing to run)" if not todo else ""))
        return False
    where = (
        f"Ray cluster at {mode.ray_address}"
        if mode.ray_address
        else (f"GPUs {','.join(map(str, mode.gpus.ids))}" if mode.gpus.ids else "the CPU")
    )
    ids = mode.gpus.ids[mode.scorer_gpus :] if mode.gpus.ids else tuple(range(64))
    try:
        units, sharded = plan_units(config, todo, mode, len(mode.gpus.ids) - mode.scorer_gpus)
    except Exception as e:  # noqa: BLE001 (e.g. data unreachable: the plan says so)
        _say(stream, f"[study] plan: cannot split the runs ({type(e).__name__}: {e})")
        return False
    jobs = [u.job for u in units]
    by_label = {u.job.label: u for u in units}
    lines = [
        f"[study] plan on {where}"
        + (f" ({mode.gpus.memory_gb:g} GB each)" if mode.gpus.memory_gb else "")
    ]
    if mode.separate_scoring or sharded:
        lines.append(
            "  scoring: one scorer process, reward model loaded once"
            + (
                f", on GPU(s) {','.join(map(str, mode.gpus.ids[: mode.scorer_gpus]))}"
                if mode.scorer_gpus and mode.gpus.ids
                else ""
            )
        )
    for label, parts in sharded.items():
        sizes = "/".join(str(len(p.indices)) for p in parts)
        lines.append(f"  {label}: {len(parts)} shards of {sizes} conversations, merged, scored")
    if mode.ray_address and config.shards == "auto":
        lines.append("  shards: auto, decided from the cluster's GPUs when the study starts")
    slots = {s.label: s for s in simulate(jobs, ids, mode.max_parallel, _dependencies(units))}
    known = all(j.est_s is not None for j in jobs)
    for job in order(jobs):
        slot = slots[job.label]
        size = f"~{job.size_gb:.0f} GB" if job.size_gb is not None else "size unknown"
        pinned = mode.gpus.ids and job.gpus and not mode.ray_address
        gpus = ",".join(map(str, slot.gpu_ids)) if pinned else "-"
        timing = (
            f", starts at {_duration(slot.start_s)}, takes ~{_duration(job.est_s)}"
            if job.est_s is not None and known
            else (f", takes ~{_duration(job.est_s)}" if job.est_s is not None else "")
        )
        need = _needs(by_label[job.label].run.label, todo)
        after = f", after {need}" if need else ""
        lines.append(f"  {job.label}: {job.gpus} GPU(s) [{gpus}], {size}{timing}{after}")
        env = f"CUDA_VISIBLE_DEVICES={gpus} " if pinned else ""
        lines.append(f"    $ {env}{by_label[job.label].launch.shell_command()}")
    if known:
        wall = max(s.end_s for s in slots.values())
        longest = max(j.est_s for j in jobs)
        lines.append(
            f"  estimated wall time: {_duration(wall)} (slowest run {_duration(longest)}, "
            f"one at a time {_duration(sum(j.est_s for j in jobs))})"
        )
    else:
        missing = sorted({by_label[j.label].run.label for j in jobs if j.est_s is None})
        lines.append(
            f"  estimated wall time: unknown (no earlier throughput for {', '.join(missing)})"
        )
    for run in runs:
        if states[run.label] == "done":
            lines.append(f"[study] {run.label}: finished earlier, skipped")
    _say(stream, "\n".join(lines))
    return True


def _dependencies(units) -> dict[str, set[str]]:
    """Job label -> the job labels that must end first (a judge run after its model's run,
    or every shard of it)."""
    by_run: dict[str, list[str]] = {}
    for u in units:
        by_run.setdefault(u.run.label, []).append(u.job.label)
    runs = [u.run for u in units]
    out = {}
    for u in units:
        need = _needs(u.run.label, runs)
        if need is not None:
            out[u.job.label] = set(by_run.get(need, ()))
    return out


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

    def launch(self, run, gpus: int, label: str) -> str:
        ids = self.pool.take(gpus) if gpus else ()
        if ids is None:
            raise RuntimeError(f"{label}: launched without {gpus} free GPU(s)")  # a bug
        self.held[label] = ids
        if ids:
            run = replace(run, env=(*run.env, *cuda_env(ids).items()))
        threading.Thread(target=self._run, args=(run, label), daemon=True).start()
        return f"GPU {','.join(map(str, ids))}" if ids else "the CPU"

    def _run(self, run, label: str) -> None:
        from rgen_harness.study import runner

        try:
            code = runner._execute(run, _LogOnly())
            self.events.put(("generated", label, code, None))
        except BaseException as e:  # noqa: BLE001 (handed to the main thread)
            self.events.put(("error", label, None, e))

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
        self.charrm_loads: int | None = None
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
                self.charrm_loads = msg.get("charrm_loads")
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
            {
                "label": run.label,
                "generated": str(generated_dir(run)),
                "out": str(run.out_dir),
                "metadata": run.settings.get("metadata"),
            }
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


@dataclass
class _Unit:
    """What the scheduler launches: a whole run, or one shard of a run."""

    run: object  # runner.PlannedRun: the run it belongs to
    launch: object  # the PlannedRun started (the run, its predict-only form, or a shard)
    job: Job
    shard: object = None  # shards.Shard, when it is one
    separate: bool = False  # generated now, scored by the scorer afterwards
    held: bool = True  # holds GPUs from the executor (a reused shard holds none)


def plan_units(config, runs, mode: Mode, room: int) -> tuple[list[_Unit], dict[str, list]]:
    """The units to launch for `runs` (all to be generated; `room`: GPUs for generation), and
    each sharded run's shards."""
    from rgen_harness.study import shards as shard_mod

    jobs = {r.label: _job(r, mode, config) for r in runs}
    memo: dict[str, list[int]] = {}

    def indices(run) -> list[int]:  # the same for every model's run: the data is read once
        key = json.dumps(run.settings.get("samples"), sort_keys=True)
        if key not in memo:
            memo[key] = shard_mod.run_indices(config, run)
        return memo[key]

    counts = shard_counts(config, runs, jobs, mode, room, indices)
    units, sharded = [], {}
    for run in runs:
        job, n = jobs[run.label], counts.get(run.label, 1)
        separate = run.key in SCORED_LATER and (mode.separate_scoring or n > 1)
        if n > 1:
            parts = shard_mod.split(run, indices(run), n)
            sharded[run.label] = parts
            est = job.est_s / len(parts) if job.est_s is not None else None
            for part in parts:
                part_job = replace(job, label=part.label, est_s=est)
                units.append(_Unit(run, part.run, part_job, part, True))
        else:
            launch = generation_run(run) if separate else run
            units.append(_Unit(run, launch, job, None, separate))
    return units, sharded


def shard_counts(
    config, runs, jobs: dict[str, Job], mode: Mode, room: int, indices
) -> dict[str, int]:
    """Shards per run label (see `rgen_harness.study.shards`): a model's own `shards`, else
    the study's; `auto` fills the GPUs every run leaves free, on GPUs only and never with
    inline scoring. `indices`: run -> its conversations' dataset indices."""
    from rgen_harness.study import shards as shard_mod

    fixed, auto = {}, []
    for run in runs:
        want = shard_mod.requested(config, run)
        if not shard_mod.shardable(run) or config.scoring == "inline":
            continue
        if want == "auto":
            auto.append(run)
        elif want > 1:
            fixed[run.label] = want
    counts = dict(fixed)
    if auto and room > 0 and mode.max_parallel is None:
        ready = [j for j in jobs.values() if _needs(j.label, runs) is None]
        fixed_jobs = [replace(j, gpus=j.gpus * fixed.get(j.label, 1)) for j in ready]
        limits = {r.label: len(indices(r)) for r in auto}
        timed = all(j.est_s is not None for j in ready)
        sized = all(j.size_gb is not None for j in ready)
        weights = {
            j.label: (j.est_s if timed else j.size_gb if sized else 1.0) or 1.0 for j in ready
        }
        for label, n in shard_mod.auto_counts(fixed_jobs, weights, limits, room).items():
            if n > 1 and label in limits:
                counts[label] = n
    return counts


def _needs(label: str, runs) -> str | None:
    """The run that must be finished first: a model's judge run reads its deita replies."""
    model, _, key = label.partition("/")
    if key.startswith("judge-") and any(r.label == f"{model}/deita" for r in runs):
        return f"{model}/deita"
    return None


def run_parallel(config, runs, states, stream, mode: Mode):
    """Run `runs` side by side (see the module docstring); the sequential runner's outcome."""
    from rgen_harness.study import runner
    from rgen_harness.study import shards as shard_mod

    outcome = runner.StudyOutcome([], [], [])
    separate_mode = mode.separate_scoring
    generate, score_only = [], []
    for run in runs:
        state = states[run.label]
        if state == "done":
            _say(stream, f"[study] {run.label}: finished earlier, skipped")
            outcome.skipped.append(run.label)
        elif (
            run.key in SCORED_LATER
            and state == "partial"
            and _complete(run, generated_dir(run))
            and (separate_mode or config.scoring != "inline")
        ):
            _say(stream, f"[study] {run.label}: generated earlier; scoring")
            score_only.append(run)
        else:
            if state == "partial":
                runner._report_unfinished(run, stream, set_aside=True)
            generate.append(run)
    events: queue.Queue = queue.Queue()
    if mode.ray_address:
        from rgen_harness.study.ray_runner import RayExecutor

        executor = RayExecutor(mode, events, config)
    else:
        executor = LocalExecutor(mode, events)
    units, sharded = plan_units(config, generate, mode, executor.capacity - mode.scorer_gpus)
    by_unit = {u.job.label: u for u in units}
    by_label = {r.label: r for r in runs}
    scorer = None
    running: set[str] = set()
    scoring: set[str] = set()
    ended: dict[str, dict[str, str | None]] = {label: {} for label in sharded}
    started: set[str] = set()
    instant: list = []  # events decided here (a shard reused from an earlier run)
    pending = order([u.job for u in units])

    def finished(label: str) -> bool:
        return label in outcome.done or label in outcome.skipped

    def ready(job: Job) -> bool:
        need = _needs(by_unit[job.label].run.label, runs)
        return need is None or finished(need)

    def blocked() -> None:  # runs whose prerequisite failed cannot run
        for job in list(pending):
            need = _needs(by_unit[job.label].run.label, runs)
            if need is not None and need in outcome.failed:
                pending.remove(job)
                run = by_unit[job.label].run
                _failed(outcome, run, stream, f"not started: {need} failed")

    def shard_ended(unit, label, result, error) -> bool:
        """Record a shard's end; True once every shard of its run ended well and they are
        merged (a failed shard or merge fails the run)."""
        run = unit.run
        ok = result == 0 and _complete(unit.launch, unit.launch.out_dir)
        log = unit.launch.out_dir / runner.LOG_FILE
        ended[run.label][label] = None if ok else (error or f"exit code {result}; see {log}")
        if len(ended[run.label]) < len(sharded[run.label]):
            return False
        problems = [f"{k}: {v}" for k, v in sorted(ended[run.label].items()) if v]
        if problems:
            _failed(outcome, run, stream, "; ".join(problems))
            return False
        try:
            shard_mod.merge(run, sharded[run.label])
            shard_mod.consolidate_cache(run)
        except Exception as e:  # noqa: BLE001 (that run failed; the others go on)
            _failed(outcome, run, stream, f"merging its shards: {e}")
            return False
        _say(stream, f"[study] {run.label}: {len(sharded[run.label])} shards merged")
        return True

    def after_generation(run) -> None:
        """A separately scored run whose generation is whole: to the scorer."""
        runner._mask_results(replace(run, out_dir=generated_dir(run)))
        _say(stream, f"[study] {run.label}: generated; scoring")
        scorer.submit(run)
        scoring.add(run.label)

    try:
        if score_only or any(u.separate for u in units):
            scorer = executor.start_scorer(config, mode.scorer_gpus)
            scorer.preload(config.task_metadata())
        check_placeable(pending, executor.capacity)
        for run in score_only:
            scorer.submit(run)
            scoring.add(run.label)
        for label, parts in sharded.items():
            _say(
                stream,
                f"[study] {label}: {len(parts)} shards of "
                + "/".join(str(len(p.indices)) for p in parts)
                + " conversations",
            )
        while pending or running or scoring:
            blocked()
            while job := next_fit(
                [j for j in pending if ready(j)], executor.free(), len(running), mode.max_parallel
            ):
                pending.remove(job)
                unit = by_unit[job.label]
                run = unit.run
                if unit.shard is not None and run.label not in started:
                    _start_sharded(run, sharded[run.label])
                started.add(run.label)
                if unit.shard is not None and shard_mod.finished_earlier(unit.shard):
                    _say(stream, f"[study] {job.label}: generated earlier, reused")
                    instant.append(("generated", job.label, 0, None))
                    running.add(job.label)
                    unit.held = False
                else:
                    if unit.shard is None:
                        runner._check_generation_cache(run)
                    where = executor.launch(unit.launch, job.gpus, job.label)
                    running.add(job.label)
                    verb = "resuming" if states[run.label] == "partial" else "running"
                    what = "generating (scored later)" if unit.separate else verb
                    _say(
                        stream,
                        f"[study] {job.label}: {what} on {where}\n$ {unit.launch.shell_command()}",
                    )
            event = instant.pop(0) if instant else executor.next_event(0.5)
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
            if kind == "generated":
                unit = by_unit[label]
                running.discard(label)
                if unit.held:
                    executor.release(label)
                run = unit.run
                if unit.shard is not None:
                    if shard_ended(unit, label, result, error):
                        after_generation(run)
                    continue
                folder = generated_dir(run) if unit.separate else run.out_dir
                if result == 0 and _complete(run, folder):
                    if unit.separate:
                        after_generation(run)
                    else:
                        outcome.done.append(run.label)
                        _say(stream, f"[study] {run.label}: done")
                else:
                    why = error or f"exit code {result}; see {run.out_dir / runner.LOG_FILE}"
                    _failed(outcome, run, stream, why)
            elif kind == "scored":
                run = by_label[label]
                scoring.discard(label)
                if result and _complete(run, run.out_dir):
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
            outcome.charrm_loads = scorer.charrm_loads
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


def _start_sharded(run, parts) -> None:
    """Before a sharded run's first shard: its run.json (the run's own settings, so a resume
    checks them as for any run), every cache file of the run merged into one, each shard's
    cache seeded from it, and shard folders of another layout removed."""
    from rgen_harness.study import runner
    from rgen_harness.study import shards as shard_mod

    runner._start_record(
        run, command=f"{len(parts)} shards: " + " ; ".join(p.run.shell_command() for p in parts)
    )
    shard_mod.consolidate_cache(run)
    shard_mod.clear_other_layouts(run, parts)
    for part in parts:
        shard_mod.seed_cache(part)


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
