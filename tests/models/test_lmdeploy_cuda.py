"""The real lmdeploy engine on a tiny model (CUDA only; skipped elsewhere)."""

from __future__ import annotations

import pytest
from lm_eval.api.instance import Instance

pytestmark = pytest.mark.cuda

GPU_TOL = 1e-2  # nats; the engine computes in half precision


@pytest.fixture(scope="module")
def real_lm(tiny_dir):
    import os

    from rgen_harness.models.lmdeploy_lm import LMDeployLM

    os.environ.pop("RGEN_HARNESS_LMDEPLOY_ENGINE", None)
    lm = LMDeployLM(pretrained=str(tiny_dir / "chat"), backend="pytorch", cache_max_entry_count=0.2)
    yield lm
    lm.release()


def test_real_engine_is_lmdeploy(real_lm):
    from rgen_harness.models.engine import LMDeployEngine

    assert isinstance(real_lm.engine, LMDeployEngine) and real_lm.engine.backend == "pytorch"


def test_loglikelihood_matches_hf_on_gpu(real_lm, tiny_dir):
    from lm_eval.models.huggingface import HFLM

    requests = [
        Instance("loglikelihood", {}, ("The criteria are", " accuracy and depth"), 0),
        Instance("loglikelihood", {}, ("", "hello world"), 0),
        Instance("loglikelihood_rolling", {}, ("A text to score. " * 20,), 0),
    ]
    hf = HFLM(pretrained=str(tiny_dir / "chat"), device="cuda", batch_size=2)
    ours = real_lm.loglikelihood(requests[:2]) + [real_lm.loglikelihood_rolling(requests[2:])[0]]
    theirs = hf.loglikelihood(requests[:2]) + [hf.loglikelihood_rolling(requests[2:])[0]]
    for a, b in zip(ours, theirs, strict=True):
        a = a[0] if isinstance(a, tuple) else a
        b = b[0] if isinstance(b, tuple) else b
        print(f"lmdeploy {a:.5f} hf {b:.5f} diff {abs(a - b):.2e}")
        assert abs(a - b) < GPU_TOL * max(1.0, abs(b) / 10)


def test_generate_until_and_stop_strings(real_lm):
    requests = [
        Instance("generate_until", {}, (f"Prompt {i}:", {"until": ["\n"], "max_gen_toks": 8}), i)
        for i in range(16)
    ]
    out = real_lm.generate_until(requests)
    assert len(out) == 16 and all("\n" not in t for t in out)
    assert real_lm.get_model_info()["throughput"]["generate_until"]["generated_tokens"] > 0


def test_prefix_cache_reused_by_a_second_round(real_lm):
    _, config, _ = real_lm.plan({"until": [], "max_gen_toks": 4})
    prompt = real_lm.apply_chat_template([{"role": "user", "content": "accuracy " * 200}])
    real_lm.engine.generate([real_lm.encode_prompt(prompt)], [config])
    [again] = real_lm.engine.generate([real_lm.encode_prompt(prompt + "more")], [config])
    assert again.cached_tokens > 0


def test_release_frees_gpu_memory(tiny_dir):
    import os

    import torch

    from rgen_harness.models import engine as engine_mod
    from rgen_harness.models.lmdeploy_lm import LMDeployLM

    os.environ.pop("RGEN_HARNESS_LMDEPLOY_ENGINE", None)
    free_before = torch.cuda.mem_get_info()[0]
    lm = LMDeployLM(pretrained=str(tiny_dir / "chat"), backend="pytorch", cache_max_entry_count=0.3)
    assert torch.cuda.mem_get_info()[0] < free_before - 1e9  # the KV cache took memory
    assert engine_mod.release_all() >= 1
    assert torch.cuda.mem_get_info()[0] > free_before - 5e8
    del lm
