"""model_args and gen_kwargs of --model lmdeploy, checked against lmdeploy's real config types."""

from __future__ import annotations

import sys

import pytest

from rgen_harness.models.lmdeploy_config import (
    PIP_HINT,
    LMDeployArgs,
    ModelArgsError,
    generation_config,
    require_lmdeploy,
    split_gen_kwargs,
)

lmdeploy = pytest.importorskip("lmdeploy")


def args(**kwargs) -> LMDeployArgs:
    return LMDeployArgs.from_kwargs({"pretrained": "/models/m", **kwargs})


def test_model_args_map_onto_real_pytorch_engine_config():
    a = args(
        backend="pytorch",
        tp="2",
        dp=1,
        session_len="4096",
        max_batch_size=64,
        cache_max_entry_count="0.5",
        quant_policy=8,
        dtype="bfloat16",
        block_size=32,
    )
    config = a.engine_config("pytorch")
    assert isinstance(config, lmdeploy.PytorchEngineConfig)
    assert (config.tp, config.dp, config.session_len, config.max_batch_size) == (2, 1, 4096, 64)
    assert config.cache_max_entry_count == 0.5 and config.dtype == "bfloat16"
    assert config.enable_prefix_caching is True  # our default: QCR round 2 reuses round 1
    assert config.logprobs_mode == "raw_logprobs"  # exact prompt log-likelihoods
    assert int(config.quant_policy) == 8
    assert config.block_size == 32  # a pass-through lmdeploy field


def test_model_args_map_onto_real_turbomind_engine_config():
    a = args(
        backend="turbomind",
        tp=4,
        model_format="awq",
        enable_prefix_caching="False",
        cache_block_seq_len=128,
    )
    config = a.engine_config("turbomind")
    assert isinstance(config, lmdeploy.TurbomindEngineConfig)
    assert (config.tp, config.model_format, config.cache_block_seq_len) == (4, "awq", 128)
    assert config.enable_prefix_caching is False


def test_unknown_key_is_an_error_with_a_suggestion():
    with pytest.raises(ModelArgsError, match=r"unknown model_arg 'tpp'.*Did you mean 'tp'"):
        args(tpp=2)
    with pytest.raises(ModelArgsError, match=r"Did you mean 'session_len'"):
        args(sesion_len=2048)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tp": "two"}, r"tp='two' is not an integer"),
        ({"backend": "turbo"}, r"Did you mean 'turbomind'"),
        ({"cache_max_entry_count": 3}, r"must lie in \[0.01, 1.0\]"),
        ({"quant_policy": 5}, r"quant_policy=5 is not one of 0, 4, 8"),
        ({"enable_prefix_caching": "maybe"}, r"use enable_prefix_caching=True"),
        ({"session_len": 256, "max_gen_toks": 512}, r"lower max_gen_toks or raise session_len"),
        ({"chat_template": "no/such/file.jinja"}, r"neither a Jinja template nor a file"),
    ],
)
def test_bad_values_name_the_argument_and_the_fix(kwargs, message):
    with pytest.raises(ModelArgsError, match=message):
        args(**kwargs)


def test_field_of_the_other_backend_says_which_backend_has_it():
    a = args(cache_block_seq_len=128)  # a TurboMind field; fine while backend=auto
    with pytest.raises(ModelArgsError, match=r"cache_block_seq_len.*Use backend=turbomind"):
        a.engine_config("pytorch")
    with pytest.raises(ModelArgsError, match=r"unknown model_arg"):
        args(backend="pytorch", cache_block_seq_len=128)


def test_lm_eval_cli_extras_are_accepted():
    a = LMDeployArgs.from_kwargs(
        {"pretrained": "m", "batch_size": 1, "max_batch_size": None, "device": "cuda:0"}
    )
    assert a.device == "cuda:0" and a.max_batch_size is None
    assert args(max_length=2048).session_len == 2048


def test_missing_pretrained_says_how_to_give_it():
    with pytest.raises(ModelArgsError, match="pretrained=<hub id or folder>"):
        LMDeployArgs.from_kwargs({"pretrained": None})


def test_lora_adapters():
    a = args(adapters="math:/ckpt/math;code:/ckpt/code", adapter_name="code")
    assert a.adapters == {"math": "/ckpt/math", "code": "/ckpt/code"}
    assert a.backend == "pytorch"  # adapters exist only on the PyTorch engine
    assert a.engine_config("pytorch").adapters == {"math": "/ckpt/math", "code": "/ckpt/code"}
    assert args(adapters="math:/ckpt/math").adapter_name == "math"
    with pytest.raises(ModelArgsError, match="choose the one to evaluate with adapter_name"):
        args(adapters="a:/x;b:/y")
    with pytest.raises(ModelArgsError, match="PyTorch engine only"):
        args(adapters="a:/x", backend="turbomind")
    with pytest.raises(ModelArgsError, match="Did you mean 'math'"):
        args(adapters="math:/x", adapter_name="maths")


def test_gen_kwargs_map_onto_real_generation_config():
    until, max_gen, rest = split_gen_kwargs(
        {
            "until": "Q:",
            "max_new_tokens": 64,
            "do_sample": True,
            "temperature": 0.7,
            "top_p": 0.9,
            "top_k": 20,
            "seed": 3,
        },
        default_max_gen_toks=256,
        eos="</s>",
    )
    assert until == ["Q:", "</s>"] and max_gen == 64
    config = generation_config(rest, max_gen_toks=max_gen, default_seed=None, stop_token_ids=[2])
    assert isinstance(config, lmdeploy.GenerationConfig)
    assert (config.do_sample, config.temperature, config.top_p, config.top_k) == (
        True,
        0.7,
        0.9,
        20,
    )
    assert config.random_seed == 3 and config.max_new_tokens == 64
    assert config.stop_token_ids == [2] and config.include_stop_str_in_output is False


def test_greedy_by_default_and_model_seed_only_when_sampling():
    greedy = generation_config(
        {"temperature": 0.0}, max_gen_toks=8, default_seed=7, stop_token_ids=[]
    )
    assert greedy.do_sample is False and greedy.random_seed is None and greedy.max_new_tokens == 8
    sampled = generation_config(
        {"temperature": 0.5}, max_gen_toks=8, default_seed=7, stop_token_ids=[]
    )
    assert sampled.do_sample is True and sampled.random_seed == 7


def test_unknown_gen_kwarg_is_an_error_with_a_suggestion():
    with pytest.raises(ValueError, match=r"temprature.*Did you mean 'temperature'"):
        generation_config({"temprature": 0.5}, max_gen_toks=8, default_seed=None, stop_token_ids=[])
    with pytest.raises(ValueError, match="sets stop_words itself"):
        generation_config(
            {"stop_words": ["x"]}, max_gen_toks=8, default_seed=None, stop_token_ids=[]
        )


def test_missing_lmdeploy_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "lmdeploy", None)  # import lmdeploy -> ImportError
    with pytest.raises(ImportError) as info:
        require_lmdeploy()
    assert PIP_HINT == 'pip install "rgen-harness[lmdeploy]"'
    assert PIP_HINT in str(info.value)


def test_dp_on_the_pytorch_engine_is_refused_with_the_alternatives(tiny_dir):
    args = LMDeployArgs.from_kwargs({"pretrained": str(tiny_dir / "chat"), "dp": 2})
    with pytest.raises(ModelArgsError, match=r"dp=2 cannot run on lmdeploy's PyTorch engine"):
        args.engine_config("pytorch")
    assert args.engine_config("turbomind").dp == 2  # TurboMind runs replicas in one process
