"""CharacterEval (morecry/CharacterEval): role-play dialogues as lm-eval docs.

Source: the authors' three data files at a pinned commit, downloaded once through `datasets`'
download manager (cached like any `datasets` download; `HF_DATASETS_OFFLINE=1` reuses the
cache). A local copy: `--metadata '{"charactereval_path": "/data/CharacterEval/data"}'`, a folder
holding `test_data.jsonl`, `character_profiles.json` and `id2metric.jsonl` as published (each a
single JSON document despite the `.jsonl` names). `"sample"` takes the bundled hand-written
files (a few rows in the same schema, for offline demos; not rows of the published set).

Each example becomes one doc whose `messages` are the dialogue as the authors' `get_response.py`
builds it: the profile and the role-play instruction as the first user turn, an acknowledgement
as the first assistant turn (with the role's opening line when the role speaks first), then for
each line of the role the line just before it (user) and the role's line (assistant), both
prefixed with the speaker's name, and the last line as the final user turn. Lines of other
speakers that do not directly precede a line of the role are not shown, as in the authors' code.

Malformed rows are kept as docs whose `problem` says why (the model is not called for them;
they are counted in `skipped`): a role without a profile, a context line without a speaker, a
context that ends on the role's own line or has two lines of the role in a row (the authors'
builder asserts against both), and an example that `id2metric` assigns no metric to.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

COMMIT = "fa232e6a9c3ec5d074240333fbffdf015b79533f"
REPOSITORY = "morecry/CharacterEval"
BASE_URL = f"https://raw.githubusercontent.com/{REPOSITORY}/{COMMIT}/data"
FILES = {
    "examples": "test_data.jsonl",
    "profiles": "character_profiles.json",
    "id2metric": "id2metric.jsonl",
}
SAMPLE = "sample"
SAMPLE_DIR = Path(__file__).parent / "sample" / "charactereval"
PATH_KEY = "charactereval_path"
SPEAKER_SEPARATOR = "："  # full-width colon, as in the published contexts

# The 12 reward-model metrics (English name as in id2metric, Chinese name the reward model reads).
METRICS: tuple[tuple[str, str], ...] = (
    ("Fluency", "对话流利度"),
    ("Coherence", "对话连贯性"),
    ("Consistency", "对话一致性"),
    ("Exposure", "知识曝光度"),
    ("Accuracy", "知识准确率"),
    ("Hallucination", "知识幻觉性"),
    ("Behavior", "行为一致性"),
    ("Utterance", "言语一致性"),
    ("Humanlikeness", "类人程度"),
    ("Communication_skills", "交流技巧"),
    ("Diversity", "表现多样性"),
    ("Empathy", "共情度"),
)
METRIC_ZH = dict(METRICS)


def instruction(profile_text: str, role: str) -> str:
    """The first user turn: the profile, then the instruction to play the role."""
    return f"{profile_text}\n现在请你扮演一个角色扮演专家。请你根据上述信息扮演{role}进行对话。\n"


def acknowledgement(role: str, opening: str | None) -> str:
    """The first assistant turn; `opening` is the role's first line when it speaks first."""
    text = f"好的！现在我来扮演{role}。"
    return text if opening is None else text + "我首先发话：" + opening


def profile_text(profile: Any) -> str:
    """The profile as both the prompt and the reward model read it: Python's str() of it."""
    return str(profile)


@dataclass(frozen=True)
class CharacterEvalSource:
    folder: Path | None  # None: the authors' files at COMMIT

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> CharacterEvalSource:
        raw = metadata.get(PATH_KEY)
        if raw in (None, ""):
            return cls(None)
        folder = SAMPLE_DIR if str(raw) == SAMPLE else Path(os.path.expanduser(str(raw)))
        missing = [name for name in FILES.values() if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{PATH_KEY}={str(raw)!r}: {folder} lacks {', '.join(missing)}. Give the folder "
                f"that holds {', '.join(FILES.values())} (the data/ folder of {REPOSITORY}), "
                f'"{SAMPLE}" for the bundled sample, or leave it out to download the authors\' '
                f"files at {COMMIT[:7]}."
            )
        return cls(folder)

    def describe(self) -> str:
        return str(self.folder) if self.folder else f"{REPOSITORY}@{COMMIT[:7]}"

    def paths(self) -> dict[str, Path]:
        if self.folder is not None:
            return {key: self.folder / name for key, name in FILES.items()}
        return {key: Path(_download(f"{BASE_URL}/{name}")) for key, name in FILES.items()}

    def read(self) -> tuple[Any, Any, Any]:
        """(examples, profiles, id2metric) as the JSON documents they are."""
        paths = self.paths()
        return tuple(_read_json(paths[key]) for key in FILES)


def _download(url: str) -> str:
    import datasets

    try:
        return datasets.DownloadManager().download(url)
    except Exception as e:
        raise RuntimeError(
            f"could not download {url} ({type(e).__name__}: {e}). Without network access, fetch "
            f"the data/ folder of {REPOSITORY} at {COMMIT[:7]} elsewhere and pass it with "
            f'--metadata \'{{"{PATH_KEY}": "/path/to/data"}}\'.'
        ) from e


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
        raise ValueError(
            f"{path}: not one JSON document (line {e.lineno}, column {e.colno}: {e.msg}); the "
            f"CharacterEval files are JSON documents as published in {REPOSITORY}."
        ) from None


class BadRow(ValueError):
    """Why an example cannot be built into a dialogue."""


def parse_context(context: str) -> list[tuple[str, str]]:
    """(speaker, utterance) per line, split at the first full-width colon as the authors do."""
    lines = []
    for number, line in enumerate(context.split("\n"), start=1):
        speaker, sep, utterance = line.partition(SPEAKER_SEPARATOR)
        if not sep or not speaker.strip():
            raise BadRow(f"context line {number} has no speaker ('name：text'): {line[:40]!r}")
        lines.append((speaker, utterance))
    return lines


def build_messages(role: str, profile: str, lines: list[tuple[str, str]]) -> list[dict]:
    """The authors' `concat_messages` plus the final query, as chat messages."""
    if lines[-1][0] == role:
        raise BadRow("the context ends on the role's own line: there is nothing to reply to")
    for number, ((before, _), (speaker, _)) in enumerate(
        zip(lines, lines[1:], strict=False), start=2
    ):
        if before == speaker == role:
            raise BadRow(f"context lines {number - 1} and {number} are both the role's")
    opening = lines[0][1] if lines[0][0] == role else None
    messages = [
        {"role": "user", "content": instruction(profile, role)},
        {"role": "assistant", "content": acknowledgement(role, opening)},
    ]
    for i in range(1, len(lines)):
        if lines[i][0] == role:
            (other, said), (_, reply) = lines[i - 1], lines[i]
            messages.append({"role": "user", "content": f"{other}{SPEAKER_SEPARATOR}{said}"})
            messages.append({"role": "assistant", "content": f"{role}{SPEAKER_SEPARATOR}{reply}"})
    last_speaker, last_said = lines[-1]
    messages.append({"role": "user", "content": f"{last_speaker}{SPEAKER_SEPARATOR}{last_said}"})
    return messages


def make_doc(row: Any, index: int, profiles: dict, id2metric: dict) -> dict:
    doc = {
        "id": f"row{index}",
        "role": "",
        "novel_name": "",
        "context": "",
        "role_info": "",
        "metrics": [],
        "messages": [],
        "problem": "",
    }
    try:
        if not isinstance(row, dict):
            raise BadRow(f"row {index} is a {type(row).__name__}, not an object")
        for key in ("id", "role", "context"):
            if key not in row:
                raise BadRow(f"row {index} has no {key!r}")
        doc["id"] = str(row["id"])
        role, context = row["role"], row["context"]
        if not isinstance(role, str) or not isinstance(context, str) or not context:
            raise BadRow(f"example {doc['id']}: role and context must be non-empty strings")
        doc.update(role=role, context=context, novel_name=str(row.get("novel_name") or ""))
        if role not in profiles:
            raise BadRow(f"example {doc['id']}: no profile for role {role!r}")
        doc["role_info"] = profile_text(profiles[role])
        pairs = id2metric.get(doc["id"])
        if pairs:
            doc["metrics"] = [_metric(pair, doc["id"]) for pair in pairs]
        doc["messages"] = build_messages(role, doc["role_info"], parse_context(context))
        if not doc["metrics"]:
            raise BadRow(f"example {doc['id']}: id2metric assigns no metric (not scored)")
    except BadRow as e:
        doc["problem"] = str(e) if str(e).startswith(("row", "example")) else _named(doc, e)
    return doc


def _named(doc: dict, e: Exception) -> str:
    return f"example {doc['id']}: {e}"


def _metric(pair: Any, example_id: str) -> dict[str, str]:
    if (
        not isinstance(pair, list)
        or len(pair) != 2
        or pair[0] not in METRIC_ZH
        or pair[1] != METRIC_ZH[pair[0]]
    ):
        raise BadRow(f"example {example_id}: id2metric entry {pair!r} is not a known metric")
    return {"en": pair[0], "zh": pair[1]}


def load_docs(source: CharacterEvalSource) -> list[dict]:
    examples, profiles, id2metric = source.read()
    for name, value, kind in (
        (FILES["examples"], examples, list),
        (FILES["profiles"], profiles, dict),
        (FILES["id2metric"], id2metric, dict),
    ):
        if not isinstance(value, kind):
            raise ValueError(
                f"{source.describe()}: {name} holds a {type(value).__name__}, not a "
                f"{kind.__name__} as published in {REPOSITORY}."
            )
    if not examples:
        raise ValueError(f"{source.describe()}: {FILES['examples']} holds no examples")
    docs = [make_doc(row, i, profiles, id2metric) for i, row in enumerate(examples)]
    bad = [d for d in docs if d["problem"]]
    if bad:
        log.warning(
            "charactereval %s: %d of %d examples skipped (counted in 'skipped'); first: %s",
            source.describe(),
            len(bad),
            len(docs),
            bad[0]["problem"],
        )
    return docs


def features():
    import datasets

    text = datasets.Value("string")
    return datasets.Features(
        {
            "id": text,
            "role": text,
            "novel_name": text,
            "context": text,
            "role_info": text,
            "metrics": [{"en": text, "zh": text}],
            "messages": [{"role": text, "content": text}],
            "problem": text,
        }
    )


def load_charactereval(**metadata: Any):
    """`custom_dataset` of the charactereval task YAML."""
    import datasets

    docs = load_docs(CharacterEvalSource.from_metadata(metadata))
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs, features=features())})
