"""Engine seam, memory hand-off, LoRA adapters and a missing lmdeploy install."""

from __future__ import annotations

import sys

import pytest
from lm_eval.api.instance import Instance

from rgen_harness.models import engine as engine_mod
from rgen_harness.models.lmdeploy_config import ModelArgsError
from rgen_harness.models.lmdeploy_lm import LMDeployLM

pytest.importorskip("lmdeploy")

from cpu_engine_util import CPU_ENGINE


def ll(context, continuation):
    return Instance("loglikelihood", {}, (context, continuation), 0)


@pytest.fixture
def standin(monkeypatch):
    monkeypatch.setenv(engine_mod.ENGINE_ENV, CPU_ENGINE)


def test_release_all_closes_engines_and_the_model_rebuilds_on_use(tiny_dir, standin):
    lm = LMDeployLM(pretrained=str(tiny_dir / "chat"))
    first = lm.engine
    assert first in engine_mod.live_engines()
    assert engine_mod.release_all() >= 1
    assert first.closed and first not in engine_mod.live_engines()
    value = lm.loglikelihood([ll("a b", " c")])[0][0]  # a new engine is built on demand
    assert lm.engine is not first and value < 0
    lm.release()
    assert lm._engine is None


def test_sleep_and_wakeup_run_on_the_engine_loop(tiny_dir, standin, monkeypatch):
    import threading

    lm = LMDeployLM(
        pretrained=str(tiny_dir / "chat"), backend="pytorch", enable_prefix_caching=False
    )
    async_engine = lm.engine.pipe.async_engine
    with pytest.raises(ValueError, match="level 2"):
        lm.sleep(2)  # discards weights that wakeup() does not reload
    lm.sleep()
    assert async_engine.is_sleeping
    with pytest.raises(RuntimeError, match="asleep"):
        lm.loglikelihood([ll("a", " b")])
    threads = []
    real_wakeup = async_engine.wakeup

    def wakeup(*args, **kwargs):
        threads.append(threading.current_thread())
        return real_wakeup(*args, **kwargs)

    monkeypatch.setattr(async_engine, "wakeup", wakeup)
    lm.wakeup()
    assert threads == [lm.engine.pipe.internal_thread.thread]  # lmdeploy's own event loop
    assert not async_engine.is_sleeping
    assert lm.loglikelihood([ll("a", " b")])[0][0] < 0
    lm.release()


def test_sleep_is_refused_with_prefix_caching_as_0_18_keeps_the_trie(tiny_dir, standin):
    """lmdeploy 0.18 keeps the prefix trie across sleep while the KV cache comes back empty:
    the CPU engine does the same, so a prompt that hits a pre-sleep block gets another reply.
    The model refuses sleep() with prefix caching on, with the way out."""
    lm = LMDeployLM(pretrained=str(tiny_dir / "chat"), backend="pytorch", max_gen_toks=8)
    with pytest.raises(ValueError, match="prefix caching"):
        lm.sleep()
    prompt = [list(range(5, 5 + 150))]
    config = lm.plan({"until": [], "max_gen_toks": 8})[1]
    before = lm.engine.generate(prompt, [config])[0]
    pipe = lm.engine.pipe
    pipe._run(coro=pipe.async_engine.sleep(1)).result()  # what lm.sleep() would do
    pipe._run(fn=pipe.async_engine.wakeup).result()
    after = lm.engine.generate(prompt, [config])[0]
    assert after.cached_tokens == 128  # two stale 64-token blocks found in the kept trie
    assert after.token_ids != before.token_ids  # ... and read as emptied KV
    lm.release()


def test_engine_factory_env_must_be_module_colon_factory(tiny_dir, monkeypatch):
    monkeypatch.setenv(engine_mod.ENGINE_ENV, "no_colon_here")
    with pytest.raises(ValueError, match="must be 'module:factory'"):
        LMDeployLM(pretrained=str(tiny_dir / "chat"))


def test_wrong_model_args_through_lm_eval_get_the_fix(tiny_dir, standin):
    with pytest.raises(ModelArgsError, match="Did you mean 'max_gen_toks'"):
        LMDeployLM.create_from_arg_string(
            f"pretrained={tiny_dir / 'chat'},max_gen_tokens=8",
            {"batch_size": 1, "max_batch_size": None, "device": "cuda:0"},
        )


def test_missing_lmdeploy_names_the_pip_command(tiny_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "lmdeploy", None)
    with pytest.raises(ImportError, match=r'pip install "rgen-harness\[lmdeploy\]"'):
        LMDeployLM(pretrained=str(tiny_dir / "chat"))


def test_real_factory_refuses_cpu_with_the_fix(tiny_dir, monkeypatch):
    monkeypatch.delenv(engine_mod.ENGINE_ENV, raising=False)
    with pytest.raises(ModelArgsError, match="not on the CPU"):
        LMDeployLM(pretrained=str(tiny_dir / "chat"), device="cpu")


@pytest.fixture(scope="module")
def lora_dir(tiny_dir, tmp_path_factory):
    """A LoRA adapter with random (non-zero) weights on the tiny chat model."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_dir / "chat"))
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    out = tmp_path_factory.mktemp("lora")
    get_peft_model(base, config).save_pretrained(out)
    return out


def test_lora_adapter_matches_hf_peft(tiny_dir, lora_dir, standin):
    from lm_eval.models.huggingface import HFLM

    requests = [ll("The criteria are", " accuracy and depth"), ll("Hello", " there")]
    lora = LMDeployLM(pretrained=str(tiny_dir / "chat"), adapters=f"mylora:{lora_dir}")
    ours = lora.loglikelihood(requests)
    hf = HFLM(pretrained=str(tiny_dir / "chat"), peft=str(lora_dir), device="cpu", batch_size=2)
    theirs = hf.loglikelihood(requests)
    base = HFLM(pretrained=str(tiny_dir / "chat"), device="cpu", batch_size=2)
    plain = base.loglikelihood(requests)
    for (a, _), (b, _), (c, _) in zip(ours, theirs, plain, strict=True):
        assert abs(a - b) < 1e-4, (a, b)
        assert abs(a - c) > 1e-3  # the adapter changes the model
    info = lora.get_model_info()
    assert info["lora_adapter"] == "mylora" and info["lora_adapter_path"] == str(lora_dir)
    lora.release()


def test_real_factory_without_a_gpu_says_so(tiny_dir, monkeypatch):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the real engine is tested in test_lmdeploy_cuda.py")
    monkeypatch.delenv(engine_mod.ENGINE_ENV, raising=False)
    with pytest.raises(RuntimeError, match="found no CUDA GPU"):
        LMDeployLM(pretrained=str(tiny_dir / "chat"))
