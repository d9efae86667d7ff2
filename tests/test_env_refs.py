"""`${VAR}` in lm_eval's --model_args and --metadata is read from the environment by the lm_eval
process (the study passes secrets so, never on a command line), and lm-eval records the model
arguments as written."""

from __future__ import annotations

import pytest

from rgen_harness.env_refs import UnsetVariable, expand, names


def test_expand_reads_the_environment_and_names_an_unset_variable(monkeypatch):
    monkeypatch.setenv("RM_PW", "pw-1")
    monkeypatch.delenv("NOPE", raising=False)
    value = {"url": "http://u:${RM_PW}@h", "n": 3, "list": ["${NOPE:-x}", "plain"]}
    assert expand(value, "--metadata") == {"url": "http://u:pw-1@h", "n": 3, "list": ["x", "plain"]}
    assert value["url"] == "http://u:${RM_PW}@h"  # a copy
    assert names(value) == {"RM_PW", "NOPE"}
    with pytest.raises(UnsetVariable, match=r"--model_args.token: environment variable NOPE"):
        expand({"token": "${NOPE}"}, "--model_args")


@pytest.mark.slow
def test_lm_eval_builds_the_model_from_the_environment_and_records_it_as_written(
    tiny_dir, monkeypatch
):
    from lm_eval import simple_evaluate

    monkeypatch.setenv("RGEN_TEST_CHAT", str(tiny_dir / "chat"))
    monkeypatch.setenv("RGEN_TEST_DATA", "sample")
    results = simple_evaluate(
        model="hf",
        model_args={"pretrained": "${RGEN_TEST_CHAT}"},
        device="cpu",
        tasks=["deita_qr"],
        metadata={"deita_path": "${RGEN_TEST_DATA}", "scorers": "none"},
        gen_kwargs="max_gen_toks=2",
        limit=1,
        predict_only=True,
    )
    assert results["config"]["model_args"] == {"pretrained": "${RGEN_TEST_CHAT}"}
    assert results["n-samples"]["deita_qr"]["effective"] == 1
    monkeypatch.delenv("RGEN_TEST_CHAT")
    with pytest.raises(UnsetVariable, match="RGEN_TEST_CHAT is not set"):
        simple_evaluate(
            model="hf",
            model_args={"pretrained": "${RGEN_TEST_CHAT}"},
            tasks=["deita_qr"],
            metadata={"deita_path": "sample"},
            limit=1,
            predict_only=True,
        )
