"""Rescoring lm-eval logged samples with the reward scorer (`rgen-harness score`).

A samples line holds `doc`, `arguments` ({"gen_args_0": {"arg_0": context, "arg_1": gen_kwargs}})
and `filtered_resps`. For the deita tasks the context is a ChatRequest and the response a
ChatResult, so the history is rebuilt exactly as the task builds it inline (same dropped turns,
no QCR criteria turns). For a plain generate_until task the prompt is one user turn and the
response the reply.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rgen_harness.chat.protocol import ChatRequest, ChatResult, RoundRecord
from rgen_harness.file_writes import replacing, write_text
from rgen_harness.metrics.scorers import MetricSpec, ScoredItem
from rgen_harness.redact import mask_data, mask_text


@dataclass
class FileSummary:
    task: str
    metrics: tuple[MetricSpec, ...]
    values: dict[str, list[float]] = field(default_factory=dict)
    config: dict = field(default_factory=dict)


def _item(sample: dict, task: str, where: str) -> tuple[ScoredItem, bool]:
    """The ScoredItem of one logged sample, and whether it is a ChatResult (deita) sample."""
    try:
        context = sample["arguments"]["gen_args_0"]["arg_0"]
        response = sample["filtered_resps"][0]
        doc = sample["doc"]
    except (KeyError, IndexError, TypeError) as e:
        raise ValueError(
            f"{where}: not a generate_until sample from lm_eval --log_samples (missing {e}); "
            "rescore the samples files lm_eval wrote, unchanged."
        ) from None
    try:
        request = ChatRequest.parse(context)
    except ValueError:
        request = None
    if request is not None:
        try:
            result = ChatResult.from_json(response)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: filtered_resps[0] is not a ChatResult ({e})") from None
        return ScoredItem(task=task, doc=doc, result=result, history=request.messages), True
    result = ChatResult(status="ok", rounds=[RoundRecord(prompt=str(context), reply=str(response))])
    history = [{"role": "user", "content": str(context)}]
    return ScoredItem(task=task, doc=doc, result=result, history=history), False


def _scorers(metadata: dict, *, chat: bool) -> list:
    """The run's scorers (metadata `scorers`, default rouge+reward) for deita samples; the
    reward scorer alone for plain generate_until samples (no reference reply to compare)."""
    from rgen_harness.metrics.reward.scorer import from_metadata
    from rgen_harness.metrics.scorers import build_scorers

    return build_scorers(metadata) if chat else [from_metadata(metadata)]


def _reply_stat_specs(with_criteria: bool) -> tuple[MetricSpec, ...]:
    from rgen_harness.metrics.reply_stats import METRICS

    return tuple(
        MetricSpec(name, aggregation, higher)
        for name, (aggregation, higher) in METRICS.items()
        if with_criteria or name != "criteria_chars"
    )


def rescore_file(src: Path, dst: Path, *, task: str, metadata: dict) -> FileSummary:
    """Score every reply of `src` again, as the task does inline: for deita samples the reply
    figures (lengths, skipped/failed counts) and every scorer of the run; write `dst`."""
    from rgen_harness.metrics.reply_stats import reply_stats

    samples, items, chat = [], [], []
    with open(src, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                sample = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{src}:{number}: not JSON ({e})") from None
            item, is_chat = _item(sample, task, f"{src}:{number}")
            samples.append(sample)
            items.append(item)
            chat.append(is_chat)
    deita = bool(chat) and all(chat)
    scorers = _scorers(metadata, chat=deita)
    rows: list[dict[str, float]] = [{} for _ in items]  # every figure, as logged per sample
    scored: list[dict[str, float]] = [{} for _ in items]  # the scorers' (ChatResult.scores)
    specs: tuple[MetricSpec, ...] = ()
    if deita:
        with_criteria = any(
            len(ChatRequest.parse(s["arguments"]["gen_args_0"]["arg_0"]).rounds) > 1
            for s in samples
        )
        specs = _reply_stat_specs(with_criteria)
        for row, item in zip(rows, items, strict=True):
            row.update(reply_stats(item.result, with_criteria=with_criteria))
    for scorer in scorers:
        specs += tuple(scorer.metrics)
        for row, scores, values in zip(rows, scored, scorer.score(items), strict=True):
            row.update(values)
            scores.update(values)
    reward = next((sc for sc in scorers if sc.name == "reward"), None)
    summary = FileSummary(task, specs, config=asdict(reward.config) if reward else {})
    dst.parent.mkdir(parents=True, exist_ok=True)
    with replacing(dst) as tmp, open(tmp, "w", encoding="utf-8") as out:
        for sample, item, is_chat, row, scores in zip(
            samples, items, chat, rows, scored, strict=True
        ):
            if is_chat:
                item.result.scores.update(scores)
                if item.result.reason:
                    item.result.reason = mask_text(item.result.reason)
                sample["filtered_resps"][0] = item.result.to_json()
            for name, value in row.items():
                # strict JSON: a value that does not apply is null, never NaN
                sample[name] = None if isinstance(value, float) and math.isnan(value) else value
                summary.values.setdefault(name, []).append(value)
            sample["metrics"] = list(dict.fromkeys([*sample.get("metrics", []), *row]))
            out.write(json.dumps(sample, ensure_ascii=False, allow_nan=False) + "\n")
    return summary


def aggregate(summary: FileSummary, *, bootstrap_iters: int) -> dict[str, float | str]:
    """Per metric `name,none` and `name_stderr,none`, as lm-eval reports them (a summary with
    its own `aggregate`, e.g. charactereval's, aggregates itself)."""
    if hasattr(summary, "aggregate"):
        return summary.aggregate(bootstrap_iters=bootstrap_iters)
    from lm_eval.api.metrics import stderr_for_metric
    from lm_eval.api.registry import get_aggregation

    from rgen_harness.metrics import reply_stats

    reply_stats.register()  # the `sum` aggregation
    out: dict[str, float | str] = {"alias": summary.task}
    for spec in summary.metrics:
        # As the task does: values that do not apply (NaN) are left out before aggregating.
        values = [v for v in summary.values.get(spec.name, []) if not math.isnan(v)]
        agg = get_aggregation(spec.lm_eval_aggregation)
        value = float(agg(values)) if values else math.nan
        stderr_fn = stderr_for_metric(agg, bootstrap_iters) if len(values) > 1 else None
        out[f"{spec.name},none"] = value
        out[f"{spec.name}_stderr,none"] = (
            float(stderr_fn(values)) if stderr_fn is not None else "N/A"
        )
    return out


def write_results(
    path: Path,
    summaries: dict[str, FileSummary],
    *,
    bootstrap_iters: int,
    base: dict | None = None,
) -> str:
    """Write an lm-eval style results JSON; return the table lm-eval would print.

    `base` holds the top-level keys of the scored run's own results JSON (config, model_name,
    ...), kept so the rescored run reads like the original one."""
    from lm_eval.utils import make_table

    results = {
        **(base or {}),
        "results": {
            task: aggregate(s, bootstrap_iters=bootstrap_iters) for task, s in summaries.items()
        },
        "versions": {task: "N/A" for task in summaries},
        "n-shot": {task: 0 for task in summaries},
        "higher_is_better": {
            task: {m.name: m.higher_is_better for m in s.metrics} for task, s in summaries.items()
        },
        "n-samples": {
            task: {"effective": len(next(iter(s.values.values()), []))}
            for task, s in summaries.items()
        },
        "reward_config": {task: s.config for task, s in summaries.items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # The scored run's model_args and reward settings may hold credentials: masked.
    write_text(path, json.dumps(mask_data(results), indent=2, ensure_ascii=False))
    return make_table(results)
