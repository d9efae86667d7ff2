"""Reports compared across runs of one study in different layouts (one at a time, side by
side, shards): equal but for when they ran, how fast, and on which GPUs."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

LAYOUT = ("gpus", "scheduler", "shards", "max_parallel", "output_dir", "report_dir")


def report_files(folder: Path, root: Path | None = None) -> dict[str, object]:
    """Every file of the report, without what records when it ran, how fast (throughput) or
    on which layout, and with `root` (default: the report's parent folder) written as ROOT."""

    def drop(value):
        if isinstance(value, dict):
            return {k: drop(v) for k, v in value.items() if k != "throughput"}
        return [drop(v) for v in value] if isinstance(value, list) else value

    out: dict[str, object] = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        name = str(path.relative_to(folder))
        if path.suffix == ".png":
            out[name] = path.read_bytes()
            continue
        text = path.read_text(encoding="utf-8").replace(str(root or folder.parent), "ROOT")
        text = re.sub(r"\d{4}-\d\d-\d\dT[\d.-]+", "TIME", text)  # lm-eval's file stamps
        if path.suffix == ".json":
            data = drop(json.loads(text))
            for key in LAYOUT:
                data.get("study", {}).pop(key, None)
            out[name] = data
        elif path.suffix == ".csv":
            rows = list(csv.DictReader(io.StringIO(text)))
            out[name] = [
                {k: v for k, v in r.items() if not k.startswith("throughput_")} for r in rows
            ]
        elif path.suffix == ".md":
            text = re.sub(r"Generated \S+ \S+ ", "Generated ", text)
            out[name] = re.sub(r"## Throughput\n.*?(?=\n## |\Z)", "", text, flags=re.S)
        else:
            out[name] = text
    return out
