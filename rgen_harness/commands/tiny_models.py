"""`rgen-harness tiny-models DIR`: build the tiny random-weight models the smoke run uses."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "tiny-models", help="build tiny random-weight chat and reward models (offline)"
    )
    p.add_argument("out_dir", type=Path, help="folder to write chat/ and reward/ into")


def run(args) -> int:
    from rgen_harness.smoke.tiny_models import build_chat_model, build_reward_model

    chat = build_chat_model(args.out_dir / "chat")
    reward = build_reward_model(args.out_dir / "reward")
    print(f"chat model:   {chat}\nreward model: {reward}")
    return 0
