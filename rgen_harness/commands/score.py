"""`rgen-harness score RUN_DIR_OR_SAMPLES [--scorers ...] [--reward-model ...]`: score saved
replies (again), without generating.

Reads lm-eval logged samples (`samples_<task>_<date>.jsonl` from `--log_samples`, e.g. of a
`--predict_only` run) and computes what the task computes inline: for the deita tasks the reply
figures (lengths, dropped turns, skipped and failed counts, which stay counts) and every scorer
of the run (`scorers`, default rouge+reward); for a plain generate_until task the reward. It
writes updated samples plus a `results_<date>.json` (per task: each metric and its stderr; the
run's model and config carried over, its model_name marked "(rescored)") into the output folder
(default `<dir>/rescored`), mirroring the input layout. Settings not given on the command line
are taken from the run's own metadata (`scorers`, `reward_*`, `rouge_*`, `similarity_*`, in its
results JSON), so the same models reproduce the inline numbers.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import fields
from pathlib import Path

# Top-level keys of the original results JSON that a rescored one keeps (the model and its
# settings); its own results and reward settings replace the rest.
CARRIED_KEYS = (
    "config",
    "model_name",
    "model_name_sanitized",
    "model_source",
    "git_hash",
    "pretty_env_info",
    "transformers_version",
    "lm_eval_version",
)
SCORER_KEY_PREFIXES = ("reward_", "rouge_", "similarity_", "charrm_")
SAMPLES_RE = re.compile(r"^samples_(?P<task>.+)_(?P<date>\d{4}-\d{2}-\d{2}T[\d\-.]+)\.jsonl$")


def add_parser(sub) -> None:
    from rgen_harness.metrics.reward.config import RewardConfig

    p = sub.add_parser(
        "score",
        help="score logged samples (again): reply figures and scorers, no generation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", type=Path, help="lm_eval --output_path folder or one samples file")
    p.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="where rescored samples and results go (default: <run dir>/rescored)",
    )
    p.add_argument("--bootstrap-iters", type=int, default=100000, help="as lm_eval's")
    p.add_argument(
        "--scorers",
        default=None,
        help="deita samples: scorers to run, e.g. reward,rouge (metadata key scorers; "
        "default: the run's, else rouge,reward); plain tasks get the reward",
    )
    for f in fields(RewardConfig):
        p.add_argument(
            f"--reward-{f.name.replace('_', '-')}",
            dest=f"reward_{f.name}",
            default=None,
            metavar=f.name.upper(),
            help=f"(metadata key reward_{f.name}; default: the run's, else {f.default!r})",
        )
    add_charrm_options(p)


def add_charrm_options(p) -> None:
    """`--charrm-<field>` for each charrm option (charactereval samples)."""
    from rgen_harness.metrics.charrm.options import CharRMOptions

    for f in fields(CharRMOptions):
        p.add_argument(
            f"--charrm-{f.name.replace('_', '-')}",
            dest=f"charrm_{f.name}",
            default=None,
            metavar=f.name.upper(),
            help=f"charactereval samples (metadata key charrm_{f.name}; default: the run's, "
            f"else {f.default!r})",
        )


def find_samples(path: Path) -> list[Path]:
    if path.is_file():
        if not SAMPLES_RE.match(path.name):
            raise ValueError(
                f"{path} is not an lm-eval samples file (samples_<task>_<date>.jsonl); "
                "pass the file lm_eval --log_samples wrote, or its --output_path folder."
            )
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist")
    files = sorted(p for p in path.rglob("samples_*.jsonl") if SAMPLES_RE.match(p.name))
    files = [p for p in files if "rescored" not in p.relative_to(path).parts]
    if not files:
        raise FileNotFoundError(
            f"no samples_<task>_<date>.jsonl under {path}: run lm_eval with --log_samples "
            "(add --predict_only to skip inline scoring)."
        )
    return files


def run_results(samples_file: Path) -> dict:
    """The results JSON lm-eval wrote beside `samples_file` ({} if there is none)."""
    date = SAMPLES_RE.match(samples_file.name)["date"]
    results = samples_file.parent / f"results_{date}.json"
    return json.loads(results.read_text(encoding="utf-8")) if results.is_file() else {}


def run_metadata(samples_file: Path, task: str) -> dict:
    """The scorer metadata of the run that wrote `samples_file` (from its results JSON):
    `scorers` and every `reward_*`, `rouge_*`, `similarity_*` key."""
    config = run_results(samples_file).get("configs", {}).get(task, {})
    return scorer_metadata(config.get("metadata") or {})


def scorer_metadata(metadata: dict) -> dict:
    """The keys of a run's metadata that its scorers read."""
    return {
        k: v for k, v in metadata.items() if k == "scorers" or k.startswith(SCORER_KEY_PREFIXES)
    }


def rescored_base(samples_file: Path) -> dict:
    """Top-level keys of the original run to carry over, its model marked as rescored, with
    credentials (a token in its model_args, a password in a URL) masked."""
    from rgen_harness.redact import mask_data

    original = run_results(samples_file)
    base = mask_data({k: v for k, v in original.items() if k in CARRIED_KEYS})
    name = original.get("model_name") or samples_file.parent.name
    base["model_name"] = f"{name} (rescored)"
    base["rescored_from"] = str(samples_file.parent)
    return base


def run(args) -> int:
    from rgen_harness.file_writes import WriteFailed, explain

    try:
        return _run(args)
    except WriteFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        if e.filename is None or isinstance(e, FileNotFoundError):
            raise
        print(f"error: {explain(e, e.filename, '--output-dir')}", file=sys.stderr)
        return 1


def rescorer(task: str, metadata: dict):
    """The function that scores a task's samples file, and the metadata it takes: CharRM's for
    charactereval (no reward keys), the reward and reference scorers' for any other task."""
    from rgen_harness.metrics.charrm.samples import is_charactereval

    if is_charactereval(task):
        from rgen_harness.metrics.charrm.samples import rescore_file

        return rescore_file, {k: v for k, v in metadata.items() if not k.startswith("reward_")}
    from rgen_harness.metrics.reward.samples import rescore_file

    return rescore_file, {k: v for k, v in metadata.items() if not k.startswith("charrm_")}


def _run(args) -> int:
    from rgen_harness.file_writes import check_writable
    from rgen_harness.metrics.reward.samples import write_results

    files = find_samples(args.path)
    root = args.path if args.path.is_dir() else args.path.parent
    out_root = args.output_dir or root / "rescored"
    check_writable(out_root, "--output-dir")
    given = {
        k: v
        for k, v in vars(args).items()
        if k.startswith(("reward_", "charrm_")) and v is not None
    }
    if args.scorers is not None:
        given["scorers"] = args.scorers
    by_folder: dict[Path, dict] = {}
    dates: dict[Path, str] = {}
    bases: dict[Path, dict] = {}
    for path in files:
        task = SAMPLES_RE.match(path.name)["task"]
        metadata = {**run_metadata(path, task), **given}
        out_dir = out_root / path.parent.relative_to(root)
        print(f"scoring {path} ({task})", file=sys.stderr, flush=True)
        rescore, metadata = rescorer(task, metadata)
        summary = rescore(path, out_dir / path.name, task=task, metadata=metadata)
        folder = by_folder.setdefault(out_dir, {})
        if task in folder:
            raise ValueError(
                f"{path.parent} holds several samples files of task {task!r}; pass one file."
            )
        folder[task] = summary
        # Named like the samples it scored, so results and samples pair up as lm-eval's do.
        dates.setdefault(out_dir, SAMPLES_RE.match(path.name)["date"])
        bases.setdefault(out_dir, rescored_base(path))
    for out_dir, summaries in by_folder.items():
        table = write_results(
            out_dir / f"results_{dates[out_dir]}.json",
            summaries,
            bootstrap_iters=args.bootstrap_iters,
            base=bases[out_dir],
        )
        print(table)
        print(f"wrote {out_dir}")
    return 0
