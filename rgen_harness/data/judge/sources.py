"""Where each pairwise judge test set comes from, and reading its raw rows.

Default sources are the authors' own publications: the raw GitHub files pinned to a commit
(downloaded once through `datasets`' download manager, so they are cached like any `datasets`
download and `HF_DATASETS_OFFLINE=1` reuses the cache) or the Hugging Face hub dataset.

A local copy in the same schema replaces a set's source:
`--metadata '{"judge_path_<set>": "/data/file.json"}'` (one set), or `"judge_path"` (every set of
the run; meant for running one task). JSON (a list of rows), JSONL or Parquet. The value
"sample" names the bundled hand-written sample rows (`samples/<set>.json[l]`, a few rows per set
for offline demos; not rows of the published sets).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rgen_harness.data.local_files import BadLine

__all__ = ["SETS", "BadLine", "SetSpec", "get_spec", "local_path", "read_rows"]

Kind = Literal["pandalm", "autoj", "llmbar", "mtbench"]

_PANDALM = (
    "https://raw.githubusercontent.com/WeOpenML/PandaLM/3871806e72b4832f815ecafd24d3503c73403f48"
)
_AUTOJ = (
    "https://raw.githubusercontent.com/GAIR-NLP/auto-j/2ae17a3965d933232e9cd50302aa0f176249c83b"
)
_LLMBAR = "https://raw.githubusercontent.com/princeton-nlp/LLMBar/900616bff90b6c6c8e1681f7d079250637c55992"
LOCAL_SUFFIXES = (".json", ".jsonl", ".parquet")
SAMPLES_DIR = Path(__file__).parent / "samples"
SAMPLE = "sample"


@dataclass(frozen=True)
class SetSpec:
    name: str
    kind: Kind
    url: str | None = None  # a raw file pinned to a commit
    hub: tuple[str, str] | None = None  # (dataset id, split)

    @property
    def path_key(self) -> str:
        return f"judge_path_{self.name}"

    @property
    def has_ties(self) -> bool:
        """Whether gold labels include ties (macro-F1 over 3 classes) or not (2 classes)."""
        return self.kind != "llmbar"

    @property
    def default_prompt(self) -> str:
        """The judge prompt used unless the run names one: forced choice (no tie, read as
        LLMBar's evaluator reads it) on LLMBar, whose pairs have no ties; `judge_v1` elsewhere."""
        return "judge_forced_v1" if self.kind == "llmbar" else "judge_v1"


SETS: dict[str, SetSpec] = {
    s.name: s
    for s in (
        SetSpec("pandalm", "pandalm", url=f"{_PANDALM}/data/testset-v1.json"),
        SetSpec("autoj", "autoj", url=f"{_AUTOJ}/data/test/testdata_pairwise.jsonl"),
        SetSpec("autoj_zh", "autoj", url=f"{_AUTOJ}/data/test/zh_testdata_pairwise.jsonl"),
        SetSpec("llmbar_natural", "llmbar", url=f"{_LLMBAR}/Dataset/LLMBar/Natural/dataset.json"),
        *(
            SetSpec(
                f"llmbar_{sub.lower()}",
                "llmbar",
                url=f"{_LLMBAR}/Dataset/LLMBar/Adversarial/{sub}/dataset.json",
            )
            for sub in ("Neighbor", "GPTInst", "GPTOut", "Manual")
        ),
        SetSpec("mtbench_human", "mtbench", hub=("lmsys/mt_bench_human_judgments", "human")),
    )
}


def get_spec(name: Any) -> SetSpec:
    if name not in SETS:
        raise ValueError(
            f"judge_set={name!r} is not a known pairwise test set; use one of {sorted(SETS)} "
            "(set in the task YAML's metadata)."
        )
    return SETS[name]


def local_path(spec: SetSpec, metadata: dict[str, Any]) -> Path | None:
    """The local file that replaces the set's default source, if the run names one."""
    key = spec.path_key if metadata.get(spec.path_key) not in (None, "") else "judge_path"
    raw = metadata.get(key)
    if raw in (None, ""):
        return None
    if str(raw) == SAMPLE:
        return sample_path(spec)
    path = Path(os.path.expanduser(str(raw)))
    if not path.is_file():
        raise FileNotFoundError(
            f"{key}={str(raw)!r} is not a file. Give a local {'/'.join(LOCAL_SUFFIXES)} file in "
            f'the {spec.name} schema, e.g. --metadata \'{{"{spec.path_key}": "/data/file.json"}}\''
            f', "{SAMPLE}" for the bundled sample rows, or leave it out to download the '
            "authors' published file."
        )
    if path.suffix.lower() not in LOCAL_SUFFIXES:
        raise ValueError(
            f"{key}={str(raw)!r}: unsupported file type {path.suffix!r}; use one of "
            f"{', '.join(LOCAL_SUFFIXES)}."
        )
    return path


def sample_path(spec: SetSpec) -> Path:
    """The bundled hand-written sample file of a set (a few rows in its published schema)."""
    for suffix in LOCAL_SUFFIXES:
        path = SAMPLES_DIR / f"{spec.name}{suffix}"
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{spec.path_key}={SAMPLE!r}: no bundled sample file for {spec.name} in {SAMPLES_DIR} "
        "(the installation is incomplete: reinstall rgen-harness, or give a local file path)."
    )


def describe(spec: SetSpec, path: Path | None) -> str:
    if path is not None:
        return str(path)
    return spec.url or f"{spec.hub[0]} [{spec.hub[1]}]"


def read_rows(spec: SetSpec, path: Path | None) -> list[Any]:
    """Raw rows as Python objects (no schema inference: one odd row cannot break the rest;
    PandaLM has JSON booleans among its string responses).

    Files are read by rgen_harness.data.local_files: JSONL split on "\\n" only (a row whose text
    holds U+2028 stays one row), each line decoded on its own (a line that is not UTF-8 or not
    JSON becomes a `BadLine` naming the file and line, counted as a malformed row), a UTF-8 BOM
    ignored; a .json file that cannot be parsed, or a file with no rows, is a named error."""
    if path is None and spec.hub is not None:
        import datasets  # honours HF_ENDPOINT / HF_HUB_OFFLINE like any hub download

        return datasets.load_dataset(spec.hub[0], split=spec.hub[1]).to_list()
    from rgen_harness.data.local_files import read_json, read_jsonl

    # A download's cached name need not keep the URL's suffix: the suffix says the format.
    suffix = Path(spec.url).suffix.lower() if path is None else path.suffix.lower()
    if path is None:
        path = Path(_download(spec.url))
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
    elif suffix == ".json":
        blank = not path.read_bytes().strip(b" \t\r\n\xef\xbb\xbf")
        rows = [] if blank else read_json(path)
    else:
        rows = [
            BadLine(row.line, f"{path} {row.reason}") if isinstance(row, BadLine) else row
            for row in read_jsonl(path)
        ]
    if not rows:
        raise ValueError(
            f"{path} holds no rows: give a {spec.name} file with at least one row in its "
            f"published schema (a JSON list, or one JSON object per line for .jsonl), or "
            f'--metadata \'{{"{spec.path_key}": "{SAMPLE}"}}\' for the bundled sample rows.'
        )
    return rows


def _download(url: str) -> str:
    """A cached download through `datasets` (its cache folder, offline mode and retries)."""
    import datasets

    try:
        return datasets.DownloadManager().download(url)
    except Exception as e:
        raise RuntimeError(
            f"could not download {url} ({type(e).__name__}: {e}). Without network access, fetch "
            'the file elsewhere and pass it with --metadata \'{"judge_path_<set>": "/path"}\'.'
        ) from e
