"""Throughput the lmdeploy model measures while it runs (samples/s, generated tokens/s, wall time).

lm-eval 0.4.13 merges `lm.get_model_info()` into `results["config"]` after every request has
run (`lm_eval/evaluator.py`, simple_evaluate), so figures recorded here end up in the results
JSON under `config.throughput`, per request type and in total.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Tally:
    samples: int = 0  # lm-eval requests (a multi-round conversation counts once)
    engine_requests: int = 0  # requests sent to the engine (one per round per conversation)
    engine_calls: int = 0  # batched engine calls
    failed: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    wall_s: float = 0.0

    def add(self, other: Tally) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def summary(self) -> dict[str, float | int]:
        out = asdict(self)
        out["wall_s"] = round(self.wall_s, 4)
        wall = self.wall_s or float("nan")
        out["samples_per_s"] = round(self.samples / wall, 4) if self.wall_s else None
        out["generated_tokens_per_s"] = (
            round(self.generated_tokens / wall, 2) if self.wall_s else None
        )
        return out


@dataclass
class ThroughputLog:
    by_type: dict[str, Tally] = field(default_factory=dict)

    def record(
        self,
        request_type: str,
        *,
        samples: int,
        responses: list,
        engine_calls: int,
        wall_s: float,
    ) -> None:
        tally = self.by_type.setdefault(request_type, Tally())
        tally.samples += samples
        tally.engine_calls += engine_calls
        tally.wall_s += wall_s
        for resp in responses:
            tally.engine_requests += 1
            tally.prompt_tokens += int(getattr(resp, "input_token_len", 0) or 0)
            tally.generated_tokens += int(getattr(resp, "generate_token_len", 0) or 0)
            if getattr(resp, "finish_reason", None) in ("error", "abort"):
                tally.failed += 1

    def add_wall(self, request_type: str, wall_s: float, samples: int) -> None:
        tally = self.by_type.setdefault(request_type, Tally())
        tally.wall_s += wall_s
        tally.samples += samples

    def summary(self) -> dict:
        total = Tally()
        for tally in self.by_type.values():
            total.add(tally)
        return {
            "total": total.summary(),
            **{name: tally.summary() for name, tally in self.by_type.items()},
        }
