"""The deita tasks' metadata: one checked config; typos, wrong types and wrong models fail when
the task loads (before the data is read or anything is generated), naming the value and the fix."""

from __future__ import annotations

import pytest

from rgen_harness.prompts.qcr import load_qcr_prompts
from rgen_harness.tasks.settings import DeitaSettings, known_keys

SAMPLE = {"deita_path": "sample", "scorers": "none"}


def settings(**metadata):
    return DeitaSettings.from_metadata({**SAMPLE, **metadata}, task="deita_qr")


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("on_bad_rows", "on_bad_row"),
        ("qcr_prompt", "qcr_prompts"),
        ("deita_pth", "deita_path"),
        ("scorer", "scorers"),
        ("similarity_modle", "similarity_model"),  # checked even with similarity off
        ("reward_modl", "reward_model"),
    ],
)
def test_misspelt_keys_get_a_suggestion(key, suggestion):
    with pytest.raises(ValueError) as err:
        settings(**{key: "x"})
    assert str(err.value).startswith(f"deita_qr: unknown --metadata key {key!r}.")
    assert f"Did you mean {suggestion!r}?" in str(err.value)


def test_unknown_key_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown --metadata key 'bogus_key'. Known keys: deita_"):
        settings(bogus_key=1)


def test_known_and_lm_eval_keys_pass():
    s = settings(version=1.0, config_source="x.yaml", on_bad_row="error", qcr_prompts="qcr_v1")
    assert s.source.on_bad_row == "error" and s.qcr_prompts.version
    assert {"reward_model", "similarity_model", "deita_split"} <= set(known_keys())


@pytest.mark.parametrize("value", [5, 1.5, {"reward": 1}, ["reward", 3], True])
def test_scorers_of_the_wrong_type(value):
    with pytest.raises(ValueError) as err:
        settings(scorers=value)
    assert str(err.value).startswith(f"metadata scorers={value!r} is a ")
    assert '"scorers": "reward,rouge"' in str(err.value)


def test_scorers_as_string_or_list():
    assert settings(scorers="rouge, reward").scorers == ("rouge", "reward")
    assert settings(scorers=["rouge"]).scorers == ("rouge",)
    assert settings(scorers="none").scorers == ()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("version: v9\nplaceholder: [unclosed\n", "is not valid UTF-8 YAML"),
        ("- a\n- b\n", "holds a list, not a mapping with string keys version"),
        ("just text", "holds a str, not a mapping"),
    ],
)
def test_broken_qcr_prompt_file_names_file_and_key(tmp_path, text, needle):
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as err:
        settings(qcr_prompts=str(path))
    message = str(err.value)
    assert message.startswith(f"qcr_prompts={str(path)!r}: {path} ") and needle in message


def test_qcr_prompt_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_bytes(b"version: \xff\n")
    with pytest.raises(ValueError, match="is not valid UTF-8 YAML"):
        load_qcr_prompts(str(path))


def test_qcr_prompts_of_the_wrong_type():
    with pytest.raises(ValueError, match="qcr_prompts=5 is a int: give a bundled version name"):
        settings(qcr_prompts=5)


@pytest.mark.parametrize("key", ["deita_dataset", "deita_split", "deita_path"])
def test_deita_text_keys_of_the_wrong_type(key):
    with pytest.raises(ValueError, match=f"metadata {key}=\\[1\\] is a list, not a string"):
        DeitaSettings.from_metadata({key: [1], "scorers": "none"}, task="deita_qr")


# -- through lm-eval, as the command line loads the tasks -----------------------------------


def evaluate(tiny_dir, metadata, **kwargs):
    """simple_evaluate as `lm_eval --model hf --model_args ... --metadata ...` calls it: the
    TaskManager gets model_args | metadata."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    model_args = {"pretrained": str(tiny_dir / "chat"), "max_length": 512}
    return simple_evaluate(
        model="hf",
        model_args=model_args,
        tasks=["deita_qr"],
        device="cpu",
        limit=1,
        gen_kwargs="max_gen_toks=2",
        task_manager=TaskManager(metadata={**model_args, **metadata}),
        **kwargs,
    )


def test_model_args_in_the_metadata_pass_and_typos_fail(tiny_dir):
    results = evaluate(tiny_dir, SAMPLE)
    assert results["results"]["deita_qr"]["skipped,none"] == 0
    with pytest.raises(ValueError, match="Did you mean 'on_bad_row'"):
        evaluate(tiny_dir, {**SAMPLE, "on_bad_rows": "error"})


def test_causal_lm_as_reward_model_fails_when_the_task_loads(tiny_dir):
    chat = str(tiny_dir / "chat")
    with pytest.raises(ValueError) as err:
        evaluate(tiny_dir, {"deita_path": "sample", "scorers": "reward", "reward_model": chat})
    message = str(err.value)
    assert message.startswith(f"reward_model={chat!r} declares architectures ['LlamaForCausalLM']")
    assert "InternLM2ForRewardModel or *ForSequenceClassification" in message
    assert '{"scorers": "rouge"}' in message
