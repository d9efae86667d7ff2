"""`rgen-harness` console script. Each subcommand lives in `rgen_harness/commands/<name>.py`
with `add_parser(subparsers)` and `run(args) -> int`; heavy imports stay inside `run`."""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ("demo", "tiny-models", "study", "report", "score", "judge-report")


def _module(name: str):
    return importlib.import_module(f"rgen_harness.commands.{name.replace('-', '_')}")


def build_parser() -> argparse.ArgumentParser:
    from rgen_harness import __version__

    parser = argparse.ArgumentParser(
        prog="rgen-harness",
        description="QR vs QCR response-generation studies on lm-evaluation-harness. "
        "Evaluation itself runs through `lm_eval --tasks deita_qr,deita_qcr ...`.",
    )
    parser.add_argument("--version", action="version", version=f"rgen-harness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        _module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(_module(args.command).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
