"""Shards inside a model: one model's conversations split over several engines at once.

Where a node has more GPUs than the study's runs take, a model's deita run is cut into shards:
each shard is its own `lm_eval --predict_only` process (one long-lived engine on its own GPU
group) over every n-th conversation (lm-eval `--samples`, the same indices for QR and QCR, so a
conversation's two tasks stay in one engine and share its prefix cache). When every shard has
ended, their samples are merged into the one generated folder an unsharded run writes
(`generated/<model>/deita/`), then the scoring phase scores it as usual, so results and
report do not depend on the layout.

lm-eval logs a sample's `doc_id` as its dataset index also under `--samples` (evaluator:
`doc_id_true`), as an unsharded run does, so the merge keeps it, checks that each shard
holds exactly its own conversations, and orders the samples by it.

Generations are cached by content (lm-eval's `--use_cache` keys are hashes of the request), so
a resume reuses them whatever the GPU layout was: before a sharded run starts, and after it
merges, every cache file of the run (`<run>_rank*.db`, `<run>.shard-*_rank*.db`) is merged into
the run's own `<run>_rank0.db`, and each shard starts from a copy of it.

How many shards (`shards:` in the study config, or per model): `auto` gives the slowest models
more shards as long as every run (and every shard) of the study fits on the GPUs at once; a
number fixes it (1: no shards).
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
import sqlite3
from pathlib import Path

SHARDS_SUFFIX = ".shards"
SHARD_CACHE = "{key}.shard-{k}of{n}"


@dataclasses.dataclass(frozen=True)
class Shard:
    """One shard of a run: the lm_eval run it launches and the dataset indices it covers."""

    parent: object  # the run (runner.PlannedRun) it is a shard of
    index: int  # 0-based
    count: int
    indices: tuple[int, ...]  # dataset indices, ascending
    run: object  # the PlannedRun to launch

    @property
    def label(self) -> str:
        return f"{self.parent.label}#{self.index + 1}of{self.count}"


# -- how many ----------------------------------------------------------------------------------


def shardable(run) -> bool:
    """Only the deita runs are cut: their conversations are independent and scored later."""
    from rgen_harness.study.config import DEITA_TASKS

    return run.key == "deita" and set(run.tasks) <= set(DEITA_TASKS)


def requested(config, run) -> int | str:
    """The run's `shards` setting: the model's own, else the study's ("auto" or a number)."""
    own = getattr(run.model, "shards", None)
    return own if own is not None else config.shards


def auto_counts(jobs, weights: dict[str, float], limits: dict[str, int], gpus: int) -> dict:
    """Shards per job label: one each, then one more to the job with the most work per shard
    (`weights`: estimated seconds, or size) while the extra shard's GPUs are free with every
    job running at once; `limits` caps a job's shards (its conversations; 1: not shardable)."""
    counts = {j.label: 1 for j in jobs}
    free = gpus - sum(j.gpus for j in jobs)
    while True:
        grow = [j for j in jobs if counts[j.label] < limits.get(j.label, 1) and 0 < j.gpus <= free]
        if not grow:
            return counts
        best = max(grow, key=lambda j: (weights.get(j.label, 1.0) / counts[j.label], j.label))
        counts[best.label] += 1
        free -= best.gpus


# -- the shard runs ----------------------------------------------------------------------------


def run_indices(config, run) -> list[int]:
    """The dataset indices of the conversations a deita run evaluates (ascending): its
    `--samples` (a seeded subset), else the first `limit`, else every row."""
    samples = run.settings.get("samples")
    if samples:
        return sorted({int(i) for i in next(iter(samples.values()))})
    from rgen_harness.data.deita import DeitaSource, read_rows

    n = len(read_rows(DeitaSource.from_metadata(config.task_metadata())))
    return list(range(min(n, config.limit) if config.limit is not None else n))


def shards_dir(run) -> Path:
    """`generated/<model>/<run>.shards/`: the shards' own folders."""
    from rgen_harness.study.scoring import generated_dir

    gen = generated_dir(run)
    return gen.with_name(gen.name + SHARDS_SUFFIX)


def split(run, indices: list[int], count: int) -> list[Shard]:
    """`count` shards of the predict-only run, shard k taking every count-th conversation from
    the k-th (long and short conversations spread evenly)."""
    from rgen_harness.study.scoring import generation_run

    base = generation_run(run)
    count = max(1, min(count, len(indices)))
    shards = []
    for k in range(count):
        own = tuple(indices[k::count])
        name = f"{k + 1}of{count}"
        out = shards_dir(run) / name
        cache = run.cache.with_name(SHARD_CACHE.format(key=run.key, k=k + 1, n=count))
        samples = {task: list(own) for task in run.tasks}
        changes = {
            "--output_path": str(out),
            "--use_cache": str(cache),
            "--samples": json.dumps(samples),
            "--limit": None,
        }
        argv = _edit(list(base.argv), changes)
        words = shlex.split(base.command)
        command = shlex.join(_edit(words, changes))
        settings = {**run.settings, "samples": samples, "shard": name}
        settings.pop("limit", None)
        recorded = {**run.recorded_settings, "samples": samples, "shard": name}
        recorded.pop("limit", None)
        launch = dataclasses.replace(
            base,
            argv=tuple(argv),
            command=command,
            out_dir=out,
            cache=cache,
            settings=settings,
            recorded_settings=recorded,
        )
        shards.append(Shard(run, k, count, own, launch))
    return shards


def _edit(words: list[str], changes: dict[str, str | None]) -> list[str]:
    """`words` with each option's value replaced (None: the option dropped), or appended."""
    out = list(words)
    for name, value in changes.items():
        if name in out:
            i = out.index(name)
            if value is None:
                del out[i : i + 2]
            else:
                out[i + 1] = value
        elif value is not None:
            at = out.index("--predict_only") if "--predict_only" in out else len(out)
            out[at:at] = [name, value]
    return out


def finished_earlier(shard: Shard) -> bool:
    """The shard's folder holds its whole output from a run with the same settings."""
    from rgen_harness.study.finished import completion
    from rgen_harness.study.runner import RUN_FILE

    record = shard.run.out_dir / RUN_FILE
    try:
        saved = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(saved, dict)
        and saved.get("fingerprint") == shard.run.fingerprint
        and set(shard.run.tasks) <= completion(shard.run.out_dir).done
    )


def clear_other_layouts(run, shards: list[Shard]) -> None:
    """Remove shard folders of another layout (their generations are in the cache)."""
    keep = {s.run.out_dir.name for s in shards}
    folder = shards_dir(run)
    if folder.is_dir():
        for path in folder.iterdir():
            if path.name not in keep:
                shutil.rmtree(path) if path.is_dir() else path.unlink()


# -- merging -----------------------------------------------------------------------------------


def merge(run, shards: list[Shard]) -> Path:
    """Merge the shards' samples and results into `generated_dir(run)` as one unsharded
    predict-only run writes them; return that folder."""
    from rgen_harness.file_writes import write_text
    from rgen_harness.study.scoring import generated_dir

    everything = sorted(i for s in shards for i in s.indices)
    merged: dict[tuple[Path, str], list[dict]] = {}
    results: list[dict] = []
    rel_folder = None
    for shard in shards:
        found = _outputs(shard)
        for rel, task, lines in found["samples"]:
            rel_folder = rel
            ids = sorted(sample.get("doc_id") for sample in lines)
            if ids != list(shard.indices):
                raise RuntimeError(
                    f"{shard.label}: its {task} samples are of conversations {ids[:10]}, "
                    f"expected {list(shard.indices)[:10]}; delete {shard.run.out_dir} and run "
                    "the study again (generations are cached)"
                )
            merged.setdefault((rel, task), []).extend(lines)
        results.append(found["results"])
    out = generated_dir(run)
    for old in [*out.rglob("results_*.json"), *out.rglob("samples_*.jsonl")]:
        old.unlink()
    date = max(r["_date"] for r in results)
    folder = out / (rel_folder or Path("."))
    folder.mkdir(parents=True, exist_ok=True)
    for (_, task), lines in sorted(merged.items(), key=lambda kv: kv[0][1]):
        lines.sort(key=lambda s: s["doc_id"])
        if len(lines) != len(everything):
            raise RuntimeError(
                f"{run.label}: the shards hold {len(lines)} {task} samples, expected "
                f"{len(everything)}; run the study again (generations are cached)"
            )
        text = "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in lines)
        write_text(folder / f"samples_{task}_{date}.jsonl", text)
    combined = _combined_results(results, len(everything), run)
    from lm_eval.utils import hash_string

    combined["task_hashes"] = {  # as lm-eval's EvaluationTracker computes them
        task: hash_string(
            "".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"] for s in lines)
        )
        for (_, task), lines in merged.items()
        if all(k in s for s in lines for k in ("doc_hash", "prompt_hash", "target_hash"))
    }
    write_text(folder / f"results_{date}.json", json.dumps(combined, indent=2, ensure_ascii=False))
    return out


def _outputs(shard: Shard) -> dict:
    """The shard's newest results JSON (with `_date`) and its samples, by task."""
    from rgen_harness.study.finished import read_results

    paths = sorted(shard.run.out_dir.rglob("results_*.json"))
    if not paths:
        raise RuntimeError(f"{shard.label}: no results file in {shard.run.out_dir}")
    path = paths[-1]
    data = read_results(path)
    date = path.name[len("results_") : -len(".json")]
    data["_date"] = date
    rel = path.parent.relative_to(shard.run.out_dir)
    samples = []
    for task in shard.run.tasks:
        file = path.parent / f"samples_{task}_{date}.jsonl"
        lines = [json.loads(x) for x in file.read_text(encoding="utf-8").splitlines() if x]
        samples.append((rel, task, lines))
    return {"results": data, "samples": samples}


def _combined_results(results: list[dict], n: int, run) -> dict:
    """The first shard's results JSON with what differs per shard made whole: sample counts,
    the run's own limit/samples, the time span and the throughput of all shards together."""
    first = {k: v for k, v in results[0].items() if k not in ("_date", "task_hashes")}
    config = dict(first.get("config") or {})
    config["limit"] = run.settings.get("limit")
    walls = []
    samples = 0
    for r in results:
        total = ((r.get("config") or {}).get("throughput") or {}).get("total") or {}
        if isinstance(total.get("wall_s"), (int, float)):
            walls.append(total["wall_s"])
            samples += total.get("samples", 0)
    if walls:
        config["throughput"] = {
            "total": {"samples": samples, "wall_s": max(walls)},
            "shards": len(results),
        }
    first["config"] = config
    first["n-samples"] = {
        task: {"original": entry.get("original", n), "effective": n}
        for task, entry in (first.get("n-samples") or {}).items()
    }
    starts = [r["start_time"] for r in results if isinstance(r.get("start_time"), (int, float))]
    ends = [r["end_time"] for r in results if isinstance(r.get("end_time"), (int, float))]
    if starts and ends:
        first["start_time"], first["end_time"] = min(starts), max(ends)
        first["total_evaluation_time_seconds"] = str(max(ends) - min(starts))
    return first


# -- caches ------------------------------------------------------------------------------------


def cache_files(run) -> list[Path]:
    """Every lm-eval cache file of the run: its own ranks and any shard's of any layout."""
    folder = run.cache.parent
    own = folder.glob(f"{run.cache.name}_rank*.db")
    shards = folder.glob(f"{run.cache.name}.shard-*_rank*.db")
    return sorted({*own, *shards})


def canonical_cache(run) -> Path:
    return run.cache.parent / f"{run.cache.name}_rank0.db"


def consolidate_cache(run) -> Path:
    """Merge every cache file of the run into `<run>_rank0.db` (entries are keyed by content,
    so any file's entry serves any layout); the others are removed. Returns that file."""
    from rgen_harness.cache_files import LM_EVAL_TABLES, set_aside_if_broken

    target = canonical_cache(run)
    target.parent.mkdir(parents=True, exist_ok=True)
    others = [p for p in cache_files(run) if p != target]
    for path in [target, *others]:
        set_aside_if_broken(path, LM_EVAL_TABLES, what="lm-eval --use_cache database")
    others = [p for p in others if p.is_file()]
    if not others:
        return target
    db = sqlite3.connect(target, timeout=60)
    try:
        db.execute('CREATE TABLE IF NOT EXISTS "unnamed" (key TEXT PRIMARY KEY, value BLOB)')
        for n, path in enumerate(others):
            db.execute(f"ATTACH DATABASE ? AS s{n}", (str(path),))
            has = db.execute(
                f"SELECT 1 FROM s{n}.sqlite_master WHERE type='table' AND name='unnamed'"
            ).fetchone()
            if has:
                db.execute(f'INSERT OR IGNORE INTO "unnamed" SELECT key, value FROM s{n}."unnamed"')
            db.commit()
            db.execute(f"DETACH DATABASE s{n}")
    finally:
        db.close()
    for path in others:
        for companion in (path, *(path.with_name(path.name + s) for s in ("-wal", "-journal"))):
            companion.unlink(missing_ok=True)
    return target


def seed_cache(shard: Shard) -> None:
    """The shard's cache file starts as a copy of the run's merged cache."""
    source = canonical_cache(shard.parent)
    target = shard.run.cache.parent / f"{shard.run.cache.name}_rank0.db"
    if source.is_file() and not target.exists():
        shutil.copyfile(source, target)
