"""Building ScoredItems for scorer tests."""

from __future__ import annotations

from rgen_harness.chat.protocol import ChatResult, RoundRecord
from rgen_harness.metrics.scorers import ScoredItem


def item(reply: str, reference: str, status: str = "ok") -> ScoredItem:
    rounds = [RoundRecord(prompt="p", reply=reply)] if status == "ok" else []
    return ScoredItem(
        task="deita_qr",
        doc={"id": "x", "reference": reference},
        result=ChatResult(status=status, rounds=rounds),
        history=[],
    )
