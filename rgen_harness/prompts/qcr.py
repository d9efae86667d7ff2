"""The versioned QCR prompt texts (package data, one YAML file per version)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

PROMPTS_DIR = Path(__file__).parent
DEFAULT_VERSION = "qcr_v1"
CRITERIA_STANDIN = "criteria"
_FIELDS = ("version", "placeholder", "criteria_request", "final_request")


@dataclass(frozen=True)
class QCRPrompts:
    version: str
    placeholder: str
    criteria_request: str
    final_request: str

    def rounds(self) -> list[list[dict[str, str]]]:
        """Messages appended before each QCR generation: criteria first, then the answer."""
        return [
            [
                {"role": "assistant", "content": self.placeholder},
                {"role": "user", "content": self.criteria_request},
            ],
            [{"role": "user", "content": self.final_request}],
        ]

    def budget_tail(self) -> list[dict[str, str]]:
        """QCR's longest prompt after the history, the criteria reply stood in for by one short
        turn (the budget sets max_gen_toks aside for it): what decides which turns QR and QCR
        keep (see `rgen_harness.chat.budget`)."""
        first, second = self.rounds()
        return [*first, {"role": "assistant", "content": CRITERIA_STANDIN}, *second]


def load_qcr_prompts(name: str | None = None) -> QCRPrompts:
    """A bundled version by name (`qcr_v1`) or a YAML file of the same shape by path."""
    name = name or DEFAULT_VERSION
    if not isinstance(name, str):
        raise ValueError(
            f"qcr_prompts={name!r} is a {type(name).__name__}: give a bundled version name "
            f"({DEFAULT_VERSION!r}) or the path of a .yaml file, e.g. --metadata "
            '\'{"qcr_prompts": "/path/to/prompts.yaml"}\'.'
        )
    path = Path(name) if name.endswith((".yaml", ".yml")) else PROMPTS_DIR / f"{name}.yaml"
    if not path.is_file():
        bundled = sorted(p.stem for p in PROMPTS_DIR.glob("qcr_*.yaml"))
        raise FileNotFoundError(
            f"qcr_prompts={name!r} not found. Use a bundled version ({', '.join(bundled)}) "
            "or the path of a .yaml file with keys " + ", ".join(_FIELDS)
        )
    shape = "a mapping with string keys " + ", ".join(_FIELDS)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ValueError(
            f"qcr_prompts={name!r}: {path} is not valid UTF-8 YAML ({e}). Fix the file ({shape}), "
            f'or use a bundled version, e.g. --metadata \'{{"qcr_prompts": "{DEFAULT_VERSION}"}}\'.'
        ) from None
    if not isinstance(data, dict):
        raise ValueError(
            f"qcr_prompts={name!r}: {path} holds a {type(data).__name__}, not {shape}."
        )
    missing = [k for k in _FIELDS if not isinstance(data.get(k), str) or not data[k].strip()]
    extra = sorted(map(str, set(data) - set(_FIELDS)))
    if missing or extra:
        raise ValueError(
            f"qcr_prompts={name!r}: {path} needs non-empty string keys {list(_FIELDS)}; "
            f"missing/empty: {missing}, unknown: {extra}"
        )
    return QCRPrompts(**{k: data[k] for k in _FIELDS})
