"""Reward backends: each turns batches of token ids into one score per input.

- `hf`: transformers in this process (InternLM2 reward via its own code, or any
  AutoModelForSequenceClassification reward model);
- `lmdeploy`: lmdeploy's PyTorch engine in this process (`Pipeline.get_reward_score`, tp);
- `server`: an `lmdeploy serve api_server` reward model over HTTP (`POST /pooling`).
"""

from __future__ import annotations

from typing import Protocol


class BackendError(RuntimeError):
    """A whole batch could not be scored (engine or HTTP error); its replies count as failed."""


class RewardBackend(Protocol):
    name: str

    def score(self, batch: list[list[int]]) -> list[float]:
        """One score per input, in order; raises BackendError when the batch fails."""
        ...

    def close(self) -> None: ...
