"""deita_qr and deita_qcr: ConfigurableTask subclasses that emit multi-round chat requests.

Each doc becomes ONE Instance of request type `generate_chat_rounds` (see rgen_harness.chat):
QR has one round (answer the history), QCR two (criteria, then the final answer). Prompts are
rendered by the evaluated model's own chat template, so no `--apply_chat_template` is needed;
with the flag, the result is the same.
"""

from __future__ import annotations

import contextlib
import math
import weakref
from functools import partial
from typing import ClassVar

from rgen_harness.chat.protocol import ChatRequest, ChatResult
from rgen_harness.data.deita import DeitaSource, load_source
from rgen_harness.metrics import reply_stats
from rgen_harness.metrics.model_kind import check_reward_config_model
from rgen_harness.metrics.scorers import ScoredItem, build_scorers
from rgen_harness.run_mode import predict_only
from rgen_harness.tasks.settings import DeitaSettings
from rgen_harness.tasks.zero_shot import ZeroShotChatTask, task_config

reply_stats.register()


class DeitaTask(ZeroShotChatTask):
    MODE: ClassVar[str] = ""
    CONTEXT = "the history"

    def __init__(self, config: dict | None = None, **kwargs) -> None:
        config = task_config(config)
        metadata = dict(config.get("metadata") or {})
        # Checked once, before the data is read and before any generation.
        self.settings = DeitaSettings.from_metadata(metadata, task=str(config.get("task")))
        # The data comes from the checked source (lm-eval would pass the raw metadata again).
        config["custom_dataset"] = partial(_shared_source, self.settings.source)
        super().__init__(config=config, **kwargs)  # reads the data (bad rows are reported)
        # Built (and validated) before any generation too; their models load when scoring.
        # None with --predict_only: nothing is scored (`rgen-harness score` scores later).
        scorer_metadata = self.settings.scorer_metadata(metadata)
        self._scorers = [] if predict_only() else build_scorers(scorer_metadata)
        for scorer in self._scorers:
            if scorer.name == "reward":
                check_reward_config_model(scorer.config)
        self._add_scorer_metrics()

    def _add_scorer_metrics(self) -> None:
        from lm_eval.api.registry import get_aggregation

        for scorer in self._scorers:
            for spec in scorer.metrics:
                self._set_metric(
                    spec.name,
                    reply_stats.passthrough,
                    get_aggregation(spec.lm_eval_aggregation),
                    spec.higher_is_better,
                )

    def override_metric(self, metric_name: str) -> None:
        """`--predict_only` asks for lm-eval's "bypass" metric, whose aggregation would turn the
        counts into means. Here it means: generate and log the replies, score nothing (no model
        loads; `rgen-harness score` scores the logged samples later, with the same numbers);
        the reply figures need no model and keep their own aggregations (counts stay sums)."""
        if metric_name != "bypass":
            return super().override_metric(metric_name)
        for scorer in self._scorers:
            for spec in scorer.metrics:
                self._drop_metric(spec.name)
        self._scorers = []

    def test_docs(self):
        """The docs as one list of dicts, shared by every deita task reading the same source:
        lm-eval keeps each instance's doc and, with --log_samples, the doc it iterates again for
        the sample; from a list both are the same objects (from the Arrow table, each pass
        would make a new copy of every history)."""
        if self.config.process_docs is not None:
            return super().test_docs()
        return _shared_docs(self.dataset)

    # -- what a doc looks like to lm-eval -------------------------------------------------
    def doc_to_target(self, doc, doc_to_target=None) -> str:
        return doc["reference"]

    def rounds(self) -> list[list[dict[str, str]]]:
        raise NotImplementedError

    def chat_request(self, doc: dict, system_instruction: str | None) -> ChatRequest:
        return self.history_request(
            doc,
            system_instruction,
            rounds=self.rounds(),
            budget_tail=self.settings.qcr_prompts.budget_tail()
            if self.settings.same_history
            else None,
            special_text=self.settings.special_text,
        )

    def apply_filters(self):
        """Lm-eval's filters, then every enabled reply scorer over all replies at once."""
        super().apply_filters()
        if self._scorers:
            self._update_results(self._score)
        return self._instances

    def _score(self, results: list[ChatResult]) -> None:
        items = [
            ScoredItem(
                task=self.config.task,
                doc=inst.doc,
                result=result,
                history=ChatRequest.parse(inst.args[0]).messages,
            )
            for inst, result in zip(self._instances, results, strict=True)
        ]
        for scorer in self._scorers:
            scores = scorer.score(items)
            for result, values in zip(results, scores, strict=True):
                result.scores.update(values)

    def process_results(self, doc, results) -> dict[str, float]:
        result = ChatResult.from_json(results[0])
        stats = reply_stats.reply_stats(result, with_criteria=self.MODE == "qcr")
        for scorer in self._scorers:
            for spec in scorer.metrics:
                stats[spec.name] = float(result.scores.get(spec.name, math.nan))
        # A value that does not apply (NaN: reply not generated, not scored) is left out, so each
        # mean runs over the docs it applies to (see MetricSpec.lm_eval_aggregation) and lm-eval
        # logs the per-metric counts.
        return {k: v for k, v in stats.items() if not math.isnan(v)}


# The last source read, held weakly (its tasks hold it): {key: DatasetDict}.
_SHARED: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def _source_key(source: DeitaSource):
    """The source, and for a local file its identity and version (a changed file is read again)."""
    if source.path is None:
        return (source,)
    try:
        st = source.path.stat()
    except OSError:
        return None
    return (source, st.st_ino, st.st_size, st.st_mtime_ns)


def _shared_source(source: DeitaSource, **lm_eval_kwargs):
    """`load_source`, read once for the tasks of a run that name the same source (QR and QCR)."""
    key = _source_key(source)
    dataset = _SHARED.get(key) if key is not None else None
    if dataset is None:
        dataset = load_source(source, **lm_eval_kwargs)
        _SHARED.clear()
        if key is not None:
            _SHARED[key] = dataset
    return dataset


class DocList(list):
    """Docs as a list, with the `features` lm-eval reads from a Dataset."""

    def __init__(self, split) -> None:
        super().__init__(split.to_list())
        self.features = split.features


def _shared_docs(dataset) -> DocList:
    """The test split as dicts (as iterating the Arrow table gives them), made once per table."""
    docs = getattr(dataset, "_rgen_docs", None)
    if docs is None:
        docs = DocList(dataset["test"])
        with contextlib.suppress(AttributeError):  # lives as long as the table the tasks hold
            dataset._rgen_docs = docs
    return docs


class DeitaQRTask(DeitaTask):
    """QR: the model answers the history directly."""

    MODE = "qr"

    def rounds(self):
        return [[]]


class DeitaQCRTask(DeitaTask):
    """QCR: criteria first (after an assistant placeholder turn), then the final answer."""

    MODE = "qcr"

    def rounds(self):
        return self.settings.qcr_prompts.rounds()
