"""Public pairwise judge test sets (PandaLM, Auto-J, LLMBar, MT-Bench human judgments) as
lm-eval docs: sources.py (where each set is, reading raw rows) -> rows.py / mtbench.py (one
doc per pair, labels mapped onto 0 = tie, 1, 2) -> `load_judge_set` (the tasks' custom_dataset).

Malformed rows are never dropped silently: they stay as docs whose `problem` says what is wrong
(row, id, field, fix); the judge is not called for them and they are counted in `skipped`.
"""

from __future__ import annotations

import logging
from typing import Any

from rgen_harness.data.judge.sources import SETS, SetSpec, describe, get_spec, local_path, read_rows

log = logging.getLogger(__name__)

__all__ = ["SETS", "SetSpec", "get_spec", "load_docs", "load_judge_set"]


def load_docs(spec: SetSpec, metadata: dict[str, Any]) -> list[dict]:
    from rgen_harness.data.judge.mtbench import mtbench_docs
    from rgen_harness.data.judge.rows import normalise_row

    path = local_path(spec, metadata)
    rows = read_rows(spec, path)
    if spec.kind == "mtbench":
        docs = mtbench_docs(spec, rows)
    else:
        docs = [normalise_row(spec, row, i) for i, row in enumerate(rows)]
    bad = [d for d in docs if d["problem"]]
    if bad:
        log.warning(
            "%s: %d of %d rows are malformed and skipped (counted in 'skipped'); first: %s",
            describe(spec, path),
            len(bad),
            len(docs),
            bad[0]["problem"],
        )
    return docs


def load_judge_set(**metadata: Any):
    """`custom_dataset` of the judge task YAMLs: lm-eval passes the run's metadata, whose
    `judge_set` (from the YAML) names the set."""
    import datasets

    spec = get_spec(metadata.get("judge_set"))
    docs = load_docs(spec, metadata)
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "set": datasets.Value("string"),
            "row": datasets.Value("int64"),
            "query": datasets.Value("string"),
            "response_1": datasets.Value("string"),
            "response_2": datasets.Value("string"),
            "gold": datasets.Value("int64"),
            "turn": datasets.Value("int64"),
            "votes": [datasets.Value("int64")],
            "scenario": datasets.Value("string"),
            "problem": datasets.Value("string"),
        }
    )
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs, features=features)})
