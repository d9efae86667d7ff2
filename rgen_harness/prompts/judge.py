"""Versioned pairwise judge prompts (package data, `judge_*.yaml`) and their verdict parsers.

Verdict labels: 1 = the response shown first is better, 2 = the one shown second, 0 = tie;
None = the reply could not be read (counted as a parse failure, never guessed).

Parsers:
- `bracket`: the labels `[1]`, `[2]`, `[0]` found in the reply; exactly one distinct label is the
  verdict ("[2]" or "[2]\n" or "[2] [2]"); none, or two different ones, is a parse failure.
- `autoj`: Auto-J's rule (`extract_pariwise_result` in GAIR-NLP/auto-j `codes/usage/example.py`):
  the text after the LAST "final decision is " (case-sensitive), stripped and lower-cased, must
  start with "response 1", "response 2" or "tie"; its Chinese twin reads "最终决定是" followed by
  "回应1", "回应2" or "平局".
- `llmbar`: LLMBar's forced choice (`completion_with_parsing` in princeton-nlp/LLMBar
  `LLMEvaluator/evaluate.py`, with the patterns of its `evaluators/config/*/Vanilla.json`): in
  the stripped reply, "Output (a)" at the start of a line (after at most one space) anywhere
  makes 1; else "Output (b)" so placed makes 2; else no verdict. Label 1 is tried first, so a
  reply naming both is read as 1, as their evaluator reads it. There is no tie.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

PROMPTS_DIR = Path(__file__).parent
DEFAULT_VERSION = "judge_v1"
_FIELDS = ("version", "parser", "max_gen_toks", "system", "user")
_PLACEHOLDER = re.compile(r"\{(query|response_1|response_2)\}")
_RESPONSES = re.compile(r"\{(response_1|response_2)\}")
_BRACKET = re.compile(r"\[([012])\]")


def parse_bracket(reply: str) -> int | None:
    found = {int(m) for m in _BRACKET.findall(reply)}
    return found.pop() if len(found) == 1 else None


_AUTOJ_RULES = (
    ("final decision is ", True, (("response 1", 1), ("response 2", 2), ("tie", 0))),
    ("最终决定是", False, (("回应1", 1), ("回应2", 2), ("平局", 0))),
)


def parse_autoj(reply: str) -> int | None:
    text = reply.strip()
    for marker, lower, choices in _AUTOJ_RULES:
        pos = text.rfind(marker)
        if pos == -1:
            continue
        rest = text[pos + len(marker) :].strip()
        rest = rest.lower() if lower else rest
        for prefix, label in choices:
            if rest.startswith(prefix):
                return label
        return None
    return None


_LLMBAR = ((1, re.compile(r"(?:^|\n) ?Output \(a\)")), (2, re.compile(r"(?:^|\n) ?Output \(b\)")))


def parse_llmbar(reply: str) -> int | None:
    text = reply.strip()
    for label, pattern in _LLMBAR:
        if pattern.search(text):
            return label
    return None


PARSERS = {"bracket": parse_bracket, "autoj": parse_autoj, "llmbar": parse_llmbar}


@dataclass(frozen=True)
class JudgePrompt:
    version: str
    parser: str
    max_gen_toks: int
    system: str
    user: str

    def messages(self, query: str, response_1: str, response_2: str) -> list[dict[str, str]]:
        """The chat messages for one pair, in the order shown to the judge."""
        fields = {"query": query, "response_1": response_1, "response_2": response_2}
        # One pass, so a response that contains "{query}" is not substituted again.
        text = _PLACEHOLDER.sub(lambda m: fields[m.group(1)], self.user)
        system = [{"role": "system", "content": self.system}] if self.system.strip() else []
        return [*system, {"role": "user", "content": text}]

    def frame(
        self, response_1: str, response_2: str, *, system_instruction: str | None = None
    ) -> dict:
        """The prompt for one pair with the query left open, as a quote frame
        (`rgen_harness.chat.quote`): the query (a quoted conversation) goes between consecutive
        `parts`. `system_instruction` comes before the prompt's own system text."""
        fields = {"response_1": response_1, "response_2": response_2}
        parts = [
            _RESPONSES.sub(lambda m: fields[m.group(1)], piece)
            for piece in self.user.split("{query}")
        ]
        system = "\n\n".join(t for t in (system_instruction, self.system) if t and t.strip())
        return {"system": system, "parts": parts}

    def parse(self, reply: str) -> int | None:
        return PARSERS[self.parser](reply)


def load_judge_prompt(name: str | None = None) -> JudgePrompt:
    """A bundled version by name (`judge_v1`, `judge_autoj_v1`, `judge_forced_v1`) or a YAML
    file by path; None is `judge_v1`."""
    name = str(name or DEFAULT_VERSION)
    path = Path(name) if name.endswith((".yaml", ".yml")) else PROMPTS_DIR / f"{name}.yaml"
    if not path.is_file():
        bundled = sorted(p.stem for p in PROMPTS_DIR.glob("judge_*.yaml"))
        raise FileNotFoundError(
            f"judge_prompt={name!r} not found. Use a bundled version ({', '.join(bundled)}) or "
            "the path of a .yaml file with keys " + ", ".join(_FIELDS)
        )
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    problems = (
        [f"unknown keys {sorted(set(data) - set(_FIELDS))}"] if set(data) - set(_FIELDS) else []
    )
    for key in ("version", "user"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            problems.append(f"{key!r} must be a non-empty string")
    if not isinstance(data.get("system", ""), str):
        problems.append("'system' must be a string ('' for none)")
    if data.get("parser") not in PARSERS:
        problems.append(f"'parser' is {data.get('parser')!r}; use one of {sorted(PARSERS)}")
    gen = data.get("max_gen_toks")
    if isinstance(gen, bool) or not isinstance(gen, int) or gen < 1:
        problems.append(f"'max_gen_toks' is {gen!r}; use a positive integer")
    user = data.get("user") if isinstance(data.get("user"), str) else ""
    missing = [p for p in ("query", "response_1", "response_2") if "{" + p + "}" not in user]
    if missing:
        problems.append(f"'user' lacks the placeholders {['{' + p + '}' for p in missing]}")
    if problems:
        raise ValueError(f"{path}: invalid judge prompt file: " + "; ".join(problems))
    return JudgePrompt(
        version=data["version"],
        parser=data["parser"],
        max_gen_toks=gen,
        system=data.get("system") or "",
        user=data["user"],
    )
