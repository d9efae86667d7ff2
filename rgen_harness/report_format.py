"""Formatting shared by the study report and the judge report (both import it; it imports
neither): JSON without NaN, Markdown tables, estimates with their intervals."""

from __future__ import annotations

import math
from typing import Any

NA = "n/a"


def jsonable(value: Any) -> Any:
    """`value` with every non-finite float as None (strict JSON), containers walked."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def md_table(header: list[str], lines: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in line) + " |" for line in lines]
    return "\n".join(out)


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def est_text(e: dict | None, digits: int = 3) -> str:
    """'value [low, high]', 'value' without an interval, n/a without a value."""
    if not e or not finite(e.get("value")):
        return NA
    if finite(e.get("low")) and finite(e.get("high")):
        return f"{e['value']:.{digits}f} [{e['low']:.{digits}f}, {e['high']:.{digits}f}]"
    return f"{e['value']:.{digits}f}"


def finish_figure(fig, notice: str | None) -> None:
    """Lay the figure out, with the run's notice (e.g. "SMOKE RUN ... the scores mean
    nothing") in red along its bottom edge, so a plot copied on its own still carries it."""
    if not notice:
        fig.tight_layout()
        return
    import textwrap

    width_in = fig.get_size_inches()[0]
    lines = textwrap.wrap(" ".join(notice.split()), width=max(40, int(width_in * 15)))
    fig.text(0.5, 0.01, "\n".join(lines), ha="center", va="bottom", color="#B00020", fontsize=7)
    height_in = fig.get_size_inches()[1]
    fig.tight_layout(rect=(0, min(0.4, (0.14 * len(lines) + 0.08) / height_in), 1, 1))
