"""The versioned QCR prompt texts (package data, one YAML file per version)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

PROMPTS_DIR = Path(__file__).parent
DEFAULT_VERSION = "qcr_v1"
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


def load_qcr_prompts(name: str | None = None) -> QCRPrompts:
    """A bundled version by name (`qcr_v1`) or a YAML file of the same shape by path."""
    name = name or DEFAULT_VERSION
    path = Path(name) if name.endswith((".yaml", ".yml")) else PROMPTS_DIR / f"{name}.yaml"
    if not path.is_file():
        bundled = sorted(p.stem for p in PROMPTS_DIR.glob("qcr_*.yaml"))
        raise FileNotFoundError(
            f"qcr_prompts={name!r} not found. Use a bundled version ({', '.join(bundled)}) "
            "or the path of a .yaml file with keys " + ", ".join(_FIELDS)
        )
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    missing = [k for k in _FIELDS if not isinstance(data.get(k), str) or not data[k].strip()]
    extra = sorted(set(data) - set(_FIELDS))
    if missing or extra:
        raise ValueError(
            f"{path}: QCR prompt file needs non-empty string keys {list(_FIELDS)}; "
            f"missing/empty: {missing}, unknown: {extra}"
        )
    return QCRPrompts(**{k: data[k] for k in _FIELDS})
