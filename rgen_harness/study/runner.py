"""Runs a study: every model through the real `lm_eval` command line, one model at a time.

Layout of a study folder (`output_dir`, default `studies/<name>`):

    study.json                     the resolved config (the report reads labels from it)
    subset.json                    the seeded conversation indices, when `subset` is set
    runs/<model>/<run>/            lm-eval `--output_path` (results_*.json, samples_*.jsonl)
    runs/<model>/<run>/run.json    the settings the run was started with (its fingerprint)
    runs/<model>/<run>/lm_eval.log everything lm_eval printed
    cache/<model>/<run>_rank0.db   lm-eval `--use_cache` (generations, reused on resume)

`<run>` is `deita` (the QR/QCR tasks), `charactereval` (role-play, from the `charactereval:`
block: rgen_harness.study.charactereval) or `bench-<n>` (standard benchmarks that share options).
Each run is one `lm_eval` subprocess, so GPU memory is freed between models. A run is skipped
only when everything it must write is there, whole (see `rgen_harness.study.finished`); any other
run starts again and reuses cached generations (and the reward scorer's own cache). A run
started with different settings or inputs (data, QCR prompts, reward model, tiny-model seeds:
see `rgen_harness.study.inputs`) is never mixed with new ones: the study stops and says which
folder to delete. So does an unreadable run.json, since the settings of the results beside it
can no longer be checked. An unreadable results file is set aside and the run starts again.
Broken cache files are set aside before lm_eval starts (see `rgen_harness.cache_files`).

Records describe the run that ran: study.json and subset.json are written only once the study
proceeds (a dry run, or a study refused for changed settings, writes nothing), every record is
written whole (`rgen_harness.file_writes`), and values from `${VAR}` appear as written and
credentials masked (`StudyConfig.recorded`); lm_eval's own output (its log, its results JSON)
is masked the same way. One study at a time per output folder: `study.lock` holds the running
study's pid, and a second study on the same folder is refused at once, naming it. The output,
report and reward cache folders are test-written before the first run starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rgen_harness.study.config import BenchmarkSpec, ModelSpec, StudyConfig, StudyConfigError
from rgen_harness.study.finished import completion

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
STUDY_FILE = "study.json"
SUBSET_FILE = "subset.json"
LOCK_FILE = "study.lock"
LOG_FILE = "lm_eval.log"


class StudyBusy(StudyConfigError):
    """Another study holds the output folder's lock."""


class OutputClosed(RuntimeError):
    """The stream the study prints to was closed (e.g. `| head`); lm_eval has been stopped."""


@dataclass(frozen=True)
class PlannedRun:
    """One `lm_eval` invocation for one model."""

    model: ModelSpec
    key: str  # "deita", "charactereval" or "bench-<n>"
    tasks: tuple[str, ...]
    settings: dict  # everything that determines the results (the fingerprint)
    argv: tuple[str, ...]
    out_dir: Path
    cache: Path
    recorded_settings: dict  # `settings` as run.json shows them (see StudyConfig.recorded)
    command: str  # the lm_eval command line as records and the console show it
    secrets: tuple[str, ...] = ()  # values masked in lm_eval's output
    env: tuple[tuple[str, str], ...] = ()  # set for lm_eval only (e.g. CUDA_VISIBLE_DEVICES)

    @property
    def fingerprint(self) -> str:
        """Hash of the settings with credentials masked (a new token is not a new run)."""
        from rgen_harness.redact import mask_data

        text = json.dumps(mask_data(self.settings), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        return f"{self.model.name}/{self.key}"

    def shell_command(self) -> str:
        return self.command


def run_state(run: PlannedRun) -> str:
    """'done', 'partial' (started, not finished) or 'new'. Raises if settings changed."""
    record = run.out_dir / RUN_FILE
    if not record.is_file():
        return "new"
    saved = _read_record(run, record)
    if saved.get("fingerprint") != run.fingerprint:
        old = saved.get("settings")
        old = old if isinstance(old, dict) else {}
        if "inputs" not in old and "inputs" in run.settings:
            raise StudyConfigError(
                f"{record} does not record the hashes of the run's inputs (data, QCR prompts, "
                "reward model; written by an older rgen-harness), so the study cannot tell "
                f"whether they changed since. Delete {run.out_dir} to run {run.label} again "
                "(cached generations are reused)."
            )
        changed = ", ".join(_changed(old, run.recorded_settings)) or (
            "a value taken from the environment or a credential"
        )
        raise StudyConfigError(
            f"{run.out_dir} was run with different settings (changed: {changed}). "
            f"Delete that folder to run {run.label} again with the new settings, or restore the "
            "config or input files (a study never mixes results from different settings)."
        )
    return "done" if set(run.tasks) <= completion(run.out_dir).done else "partial"


def _read_record(run: PlannedRun, record: Path) -> dict:
    try:
        saved = json.loads(record.read_bytes().decode("utf-8"))
    except (OSError, ValueError) as e:
        saved = e
    if not isinstance(saved, dict):
        why = f"{type(saved).__name__}: {saved}" if isinstance(saved, Exception) else "not a dict"
        raise StudyConfigError(
            f"{record} is unreadable ({why}). It records the settings the results in "
            f"{run.out_dir} were made with, so they cannot be checked without it. Delete "
            f"{run.out_dir} to run {run.label} again (cached generations are reused)."
        )
    return saved


def _changed(old: dict, new: dict) -> list[str]:
    """Keys whose values differ; nested `inputs` keys by dotted name with old -> new."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if key == "inputs" and isinstance(a, dict) and isinstance(b, dict):
            out += [
                f"inputs.{k}: {str(a.get(k))[:80]} -> {str(b.get(k))[:80]}"
                for k in sorted(set(a) | set(b))
                if a.get(k) != b.get(k)
            ]
        else:
            out.append(key)
    return out


# -- planning -----------------------------------------------------------------------------------


def subset_indices(config: StudyConfig) -> dict | None:
    """The seeded subset: `size` of the dataset's row indices (sorted), with their ids."""
    if config.subset is None:
        return None
    import numpy as np

    from rgen_harness.data.deita import DeitaSource, normalise_row, read_rows

    source = DeitaSource.from_metadata(config.task_metadata())
    rows = read_rows(source)
    n = len(rows)
    size = min(config.subset.size, n)
    if size < config.subset.size:
        log.warning("subset.size=%d but the data has %d rows: using all", config.subset.size, n)
    rng = np.random.default_rng(config.subset.seed)
    indices = sorted(int(i) for i in rng.choice(n, size=size, replace=False))
    return {
        "size": size,
        "seed": config.subset.seed,
        "n_rows": n,
        "data": source.describe(),
        "method": "numpy.random.default_rng(seed).choice(n_rows, size, replace=False), sorted",
        "indices": indices,
        "ids": [normalise_row(rows[i], i)["id"] for i in indices],
    }


def plan_runs(
    config: StudyConfig, subset: dict | None = None, *, dry_run: bool = False
) -> list[PlannedRun]:
    runs = []
    study_dir = config.study_dir
    roleplay = _charactereval_planner(config, dry_run)
    for model in config.models:
        runs.append(_deita_run(config, model, subset, study_dir, dry_run))
        if roleplay is not None:
            runs.append(roleplay(model))
        for i, group in enumerate(_benchmark_groups(config.benchmarks)):
            runs.append(_benchmark_run(config, model, group, f"bench-{i + 1}", study_dir))
    from rgen_harness.study.judge_block import judge_runs

    replies = {r.model.name: r.fingerprint for r in runs if r.key == "deita"}
    return runs + judge_runs(config, study_dir, replies)  # after every model's generation


def _charactereval_planner(config: StudyConfig, dry_run: bool):
    """model -> its charactereval run (rgen_harness.study.charactereval); None without the
    `charactereval:` block. The seeded subset is drawn once for every model."""
    if config.charactereval is None:
        return None
    from rgen_harness.study import charactereval

    indices = charactereval.subset_indices(config, dry_run=dry_run)
    return lambda model: charactereval.plan_run(config, model, indices, dry_run=dry_run)


def _common(config: StudyConfig, model: ModelSpec) -> tuple[list[str], dict]:
    argv = ["--model", model.model, "--model_args", json.dumps(model.model_args)]
    settings: dict = {"model": model.model, "model_args": model.model_args}
    device = model.device or config.device
    batch_size = model.batch_size or config.batch_size
    if device:
        argv += ["--device", device]
        settings["device"] = device
    if batch_size:
        argv += ["--batch_size", batch_size]
        settings["batch_size"] = batch_size
    return argv, settings


def _finish(model, key, tasks, argv, settings, config, study_dir) -> PlannedRun:
    out_dir = study_dir / "runs" / model.name / key
    cache = study_dir / "cache" / model.name / key
    argv = [
        *argv,
        "--tasks",
        ",".join(tasks),
        "--log_samples",
        "--output_path",
        str(out_dir),
        "--use_cache",
        str(cache),
    ]
    settings = {**settings, "tasks": list(tasks)}
    # Values from the environment go to lm_eval as written (`${TOKEN}`) and are expanded by the
    # lm_eval process (rgen_harness.env_refs): a secret never stands on a command line.
    for i, arg in enumerate(argv[:-1]):
        if arg in ("--model_args", "--metadata"):
            written = config.written(json.loads(argv[i + 1]))
            argv[i + 1] = json.dumps(written, ensure_ascii=False)
    full = (sys.executable, "-m", "lm_eval", *argv)
    import shlex

    command = "lm_eval " + " ".join(shlex.quote(a) for a in config.recorded(argv))
    return PlannedRun(
        model,
        key,
        tuple(tasks),
        settings,
        full,
        out_dir,
        cache,
        recorded_settings=config.recorded(settings),
        command=command,
        secrets=config.secret_values(),
        env=tuple(config.env_vars().items()),
    )


def _deita_run(config, model, subset, study_dir, dry_run: bool = False) -> PlannedRun:
    argv, settings = _common(config, model)
    metadata = config.task_metadata()
    argv += ["--metadata", json.dumps(metadata, ensure_ascii=False)]
    settings["metadata"] = metadata
    gen = config.gen_kwargs()
    if gen:
        argv += ["--gen_kwargs", json.dumps(gen)]
        settings["gen_kwargs"] = gen
    if config.limit is not None:
        argv += ["--limit", str(config.limit)]
        settings["limit"] = config.limit
    if subset is not None:
        samples = {task: subset["indices"] for task in config.tasks}
        argv += ["--samples", json.dumps(samples)]
        settings["samples"] = samples
    from rgen_harness.study.inputs import deita_inputs

    settings["inputs"] = deita_inputs(config, model, dry_run=dry_run)
    return _finish(model, "deita", config.tasks, argv, settings, config, study_dir)


def _benchmark_groups(benchmarks: tuple[BenchmarkSpec, ...]) -> list[list[BenchmarkSpec]]:
    """Benchmarks that share lm-eval options run in one process (one model load)."""
    groups: dict[tuple, list[BenchmarkSpec]] = {}
    for b in benchmarks:
        groups.setdefault((b.num_fewshot, b.limit, b.apply_chat_template), []).append(b)
    return list(groups.values())


def _benchmark_run(config, model, group, key, study_dir) -> PlannedRun:
    argv, settings = _common(config, model)
    first = group[0]
    if first.num_fewshot is not None:
        argv += ["--num_fewshot", str(first.num_fewshot)]
        settings["num_fewshot"] = first.num_fewshot
    if first.limit is not None:
        argv += ["--limit", str(first.limit)]
        settings["limit"] = first.limit
    if first.apply_chat_template:
        argv += ["--apply_chat_template"]
        settings["apply_chat_template"] = True
    tasks = tuple(b.task for b in group)
    from rgen_harness.study.inputs import model_inputs

    inputs = model_inputs(config, model)
    if inputs:
        settings["inputs"] = inputs
    return _finish(model, key, tasks, argv, settings, config, study_dir)


# -- running ------------------------------------------------------------------------------------


@dataclass
class StudyOutcome:
    done: list[str]
    skipped: list[str]
    failed: list[str]
    scorer_loads: int | None = None  # reward models the separate scorer loaded (None: inline)
    charrm_loads: int | None = None  # CharRM models it loaded (role-play runs)


def prepare(config: StudyConfig, *, dry_run: bool = False, stream=None) -> dict | None:
    """Build declared tiny models; return the subset. Writes no study record. A dry run
    without the data (offline) says what it cannot know and goes on (and builds nothing)."""
    if dry_run:
        return _dry_run_subset(config, stream or sys.stdout)
    if config.tiny_models:
        from rgen_harness.smoke.tiny_models import build_chat_model, build_reward_model

        for t in config.tiny_models:
            if t.kind == "charrm":
                from rgen_harness.smoke.tiny_charrm import build_charrm

                build_charrm(Path(t.path), seed=t.seed)
                continue
            build = build_chat_model if t.kind == "chat" else build_reward_model
            build(Path(t.path), arch=t.arch, seed=t.seed)
    return subset_indices(config)


def write_records(config: StudyConfig, subset: dict | None) -> None:
    """study.json and subset.json, written when the study proceeds (never by a dry run)."""
    from rgen_harness.file_writes import write_json

    if subset is not None:
        write_json(config.study_dir / SUBSET_FILE, config.recorded(subset), setting="output_dir")
    write_json(config.study_dir / STUDY_FILE, config.to_dict(), setting="output_dir")


def check_locations(config: StudyConfig, *, report: bool, reward_cache: bool) -> None:
    """Create and test-write every folder the study will write to, before any run starts;
    `WriteFailed` names the setting and the path."""
    from rgen_harness.file_writes import check_writable

    check_writable(config.study_dir, "output_dir")
    if report:
        check_writable(config.results_dir, "report_dir")
    if reward_cache:
        from rgen_harness.metrics.reward.cache import check_folder
        from rgen_harness.study.inputs import reward_cache_dir

        check_folder(reward_cache_dir(config), "reward.cache")


class StudyLock:
    """`<output_dir>/study.lock`: an exclusive `flock` held while a study runs, with its pid.
    The system releases it when the process ends, however it ends, so a stale file never
    blocks a later study."""

    def __init__(self, study_dir: Path) -> None:
        self.path = study_dir / LOCK_FILE
        self._file = None

    def acquire(self) -> StudyLock:
        import fcntl

        from rgen_harness.file_writes import explain

        try:
            f = open(self.path, "a+")  # noqa: SIM115 (held until release)
        except OSError as e:
            raise explain(e, self.path, "output_dir") from None
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise StudyBusy(
                f"another rgen-harness study (pid {holder}) is running in {self.path.parent}. "
                "Wait for it to end, or give this study another output_dir (the lock "
                f"{self.path} is released when that process exits)."
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing releases the flock
            self._file = None

    def __enter__(self) -> StudyLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _dry_run_subset(config: StudyConfig, stream) -> dict | None:
    """The subset for a dry run, which writes nothing: drawn when the data can be read, else
    the one written by an earlier run, else unknown (the commands are shown without it)."""
    from rgen_harness.data.deita import DataUnavailable

    try:
        return subset_indices(config)
    except DataUnavailable as e:
        earlier = config.study_dir / SUBSET_FILE
        if earlier.is_file():
            _say(stream, f"[study] dry run: data unreachable; using the subset in {earlier}")
            return json.loads(earlier.read_text(encoding="utf-8"))
        if config.subset is not None:
            _say(
                stream,
                f"[study] dry run: cannot tell which {config.subset.size} conversations the "
                f"subset holds (drawn from the data, which cannot be read now: {e}). The commands "
                "below lack their --samples indices.",
            )
        return None


def run_study(
    config: StudyConfig,
    *,
    only: list[str] | None = None,
    dry_run: bool = False,
    stream=None,
    report: bool = True,
) -> StudyOutcome:
    """Run the planned runs (`report`: the report folder will be written afterwards, so it is
    checked too). A dry run only prints the plan."""
    stream = stream or sys.stdout
    for name in only or []:
        config.model(name)  # unknown name -> error with a suggestion
    subset = prepare(config, dry_run=dry_run, stream=stream)
    planned = plan_runs(config, subset, dry_run=dry_run)
    # Every model's fingerprint is checked, also with --only: the report shows them all, so a
    # model finished on other data or settings must not stand beside new ones.
    states = {r.label: run_state(r) for r in planned}
    runs = [r for r in planned if not only or r.model.name in only]
    from rgen_harness.study import scheduler

    if dry_run:
        if not scheduler.print_plan(config, runs, states, stream):
            return _run(runs, states, stream, dry_run=True)
        for run in runs:
            if states[run.label] == "partial":
                _report_unfinished(run, stream, set_aside=False)
        return StudyOutcome([], [r.label for r in runs if states[r.label] == "done"], [])
    mode = scheduler.choose(config)
    needs_cache = any(states[r.label] != "done" and r.key == "deita" for r in runs)
    from rgen_harness.file_writes import check_writable

    check_writable(config.study_dir, "output_dir")
    with StudyLock(config.study_dir):
        # Read again under the lock: another study may have finished runs meanwhile.
        states = {r.label: run_state(r) for r in planned}
        check_locations(config, report=report, reward_cache=needs_cache)
        write_records(config, subset)
        if mode.parallel:
            return scheduler.run_parallel(config, runs, states, stream, mode)
        return _run(runs, states, stream, dry_run=False, name=config.name)


def _run(runs, states, stream, *, dry_run: bool, name: str = "") -> StudyOutcome:
    from tqdm import tqdm

    outcome = StudyOutcome([], [], [])
    bar = tqdm(runs, desc=f"study {name}", unit="run", file=sys.stderr, disable=dry_run)
    for run in bar:
        bar.set_postfix_str(run.label)
        state = states[run.label]
        if state == "done":
            _say(stream, f"[study] {run.label}: finished earlier, skipped")
            outcome.skipped.append(run.label)
            continue
        if state == "partial":
            _report_unfinished(run, stream, set_aside=not dry_run)
        verb = "resuming (cached generations are reused)" if state == "partial" else "running"
        _say(stream, f"[study] {run.label}: {verb}\n$ {run.shell_command()}")
        if dry_run:
            continue
        _check_generation_cache(run)
        code = _execute(run, stream)
        if code == 0 and set(run.tasks) <= completion(run.out_dir).done:
            outcome.done.append(run.label)
        else:
            _say(
                stream,
                f"[study] {run.label}: FAILED (exit code {code}); see "
                f"{run.out_dir / LOG_FILE}. The other models continue; run the study again "
                "to retry this one.",
            )
            outcome.failed.append(run.label)
    bar.close()
    return outcome


def _report_unfinished(run: PlannedRun, stream, *, set_aside: bool) -> None:
    """Say why a started run is not finished; set unreadable results files aside."""
    state = completion(run.out_dir)
    for why in state.problems:
        _say(stream, f"[study] {run.label}: not finished: {why}")
    if not set_aside:
        return
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for path in state.broken:
        target = path.with_name(f"{path.name}.broken-{stamp}")
        path.rename(target)
        _say(stream, f"[study] {run.label}: moved the unreadable {path.name} to {target.name}")


def _check_generation_cache(run: PlannedRun) -> None:
    """lm-eval opens `<cache>_rank<N>.db` itself; a broken one is set aside before it does."""
    from rgen_harness.cache_files import LM_EVAL_TABLES, set_aside_if_broken

    for path in sorted(run.cache.parent.glob(f"{run.cache.name}_rank*.db")):
        set_aside_if_broken(path, LM_EVAL_TABLES, what="lm-eval --use_cache database")


def _start_record(run: PlannedRun, command: str | None = None) -> dict:
    """Write the run's run.json as it starts (its folders test-written first); the record."""
    from rgen_harness.file_writes import check_writable

    check_writable(run.out_dir, "output_dir")
    check_writable(run.cache.parent, "output_dir")
    record = {
        "fingerprint": run.fingerprint,
        "settings": run.recorded_settings,
        "command": command or run.shell_command(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    _write_json(run.out_dir / RUN_FILE, record)
    return record


def _execute(run: PlannedRun, stream) -> int:
    from rgen_harness.file_writes import explain

    record = _start_record(run)
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", **dict(run.env))
    start = time.perf_counter()
    log_path = run.out_dir / LOG_FILE
    masker = _LineMasker(run.secrets)
    try:
        logf = open(log_path, "ab", buffering=0)  # noqa: SIM115 (closed below)
    except OSError as e:
        raise explain(e, log_path, "output_dir") from None
    # Its own process group, so that stopping it also stops what it started (engine workers).
    proc = subprocess.Popen(
        run.argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    with _CHILDREN_LOCK:
        _CHILDREN.add(proc)
    try:
        assert proc.stdout is not None
        while True:
            chunk = proc.stdout.read1(65536)
            data = masker.feed(chunk) if chunk else masker.flush()
            if data:
                try:
                    logf.write(data)
                except OSError as e:
                    raise explain(e, log_path, "output_dir") from None
                try:
                    _write_bytes(stream, data)
                except (BrokenPipeError, ValueError) as e:  # ValueError: a closed file
                    raise OutputClosed(
                        f"the output of `rgen-harness study` was closed ({e}) during "
                        f"{run.label}; lm_eval was stopped. Run the same command to resume, "
                        "with its output going to a terminal or a file."
                    ) from None
            if not chunk:
                break
        code = proc.wait()
    except BaseException as e:
        _stop(proc)
        if isinstance(e, KeyboardInterrupt):
            with contextlib.suppress(OSError, ValueError):
                _say(
                    stream,
                    f"\n[study] interrupted during {run.label}; run the same command to resume",
                )
        raise
    finally:
        with _CHILDREN_LOCK:
            _CHILDREN.discard(proc)
        with contextlib.suppress(OSError):
            logf.close()
    _mask_results(run)
    record.update(wall_s=round(time.perf_counter() - start, 3), returncode=code)
    _write_json(run.out_dir / RUN_FILE, record)
    return code


def _stop(proc: subprocess.Popen) -> None:
    """Stop lm_eval as Ctrl-C would (it saves nothing half-way), then for good."""
    stop_all([proc])


def stop_all(procs: list[subprocess.Popen] | None = None, *, grace_s: float = 30) -> None:
    """Stop children (default: every lm_eval this process started) and their process groups:
    SIGINT to all at once, then SIGKILL to what is left after `grace_s`."""
    if procs is None:
        with _CHILDREN_LOCK:
            procs = list(_CHILDREN)
    for proc in procs:
        _signal_group(proc, signal.SIGINT)
    deadline = time.monotonic() + grace_s
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    for proc in procs:
        _signal_group(proc, signal.SIGKILL)  # what it left behind, and itself if still there
        proc.wait()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


_CHILDREN: set[subprocess.Popen] = set()
_CHILDREN_LOCK = threading.Lock()


class _LineMasker:
    """Masks credentials in lm_eval's output line by line (a secret never straddles a cut)."""

    LIMIT = 1 << 20

    def __init__(self, secrets: tuple[str, ...]) -> None:
        self.secrets = secrets
        self.pending = b""

    def feed(self, chunk: bytes) -> bytes:
        from rgen_harness.redact import mask_bytes

        data = self.pending + chunk
        cut = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
        if cut == 0 and len(data) < self.LIMIT:
            self.pending = data
            return b""
        cut = cut or len(data)
        self.pending = data[cut:]
        return mask_bytes(data[:cut], self.secrets)

    def flush(self) -> bytes:
        from rgen_harness.redact import mask_bytes

        data, self.pending = self.pending, b""
        return mask_bytes(data, self.secrets) if data else b""


def _mask_results(run: PlannedRun) -> None:
    """lm_eval records its `--model_args` and task metadata in its results JSON: mask there
    what the records mask (rewritten whole, only when something changes)."""
    from rgen_harness.redact import mask_data

    for path in run.out_dir.rglob("results_*.json"):
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
        except (OSError, ValueError):
            continue  # an unreadable file is the resume check's concern
        masked = mask_data(data, run.secrets)
        if masked != data:
            _write_json(path, masked)


def _write_bytes(stream, chunk: bytes) -> None:
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        buffer.write(chunk)
        buffer.flush()
    else:
        stream.write(chunk.decode("utf-8", errors="replace"))
        stream.flush()


def _say(stream, text: str) -> None:
    stream.write(text + "\n")
    stream.flush()


def _write_json(path: Path, data) -> None:
    from rgen_harness.file_writes import write_json

    write_json(path, data, setting="output_dir")
