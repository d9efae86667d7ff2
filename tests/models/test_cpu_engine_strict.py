"""The CPU engine is as strict as lmdeploy 0.18's engines where results or crashes depend on it,
and the lmdeploy model copes with what the real engines do (each test failed on the model and
the engine as they were when the CPU engine was kinder)."""

from __future__ import annotations

import json
import math
import shutil

import pytest
from cpu_engine_util import CPU_ENGINE, cpu_engine
from lm_eval.api.instance import Instance

pytest.importorskip("lmdeploy")

from rgen_harness.models.lmdeploy_config import ModelArgsError  # noqa: E402
from rgen_harness.models.lmdeploy_lm import LMDeployLM  # noqa: E402
from rgen_harness.models.responses import EngineStopped  # noqa: E402


@pytest.fixture
def engine_env(monkeypatch):
    monkeypatch.setenv("RGEN_HARNESS_LMDEPLOY_ENGINE", CPU_ENGINE)
    return monkeypatch


def with_arch(tiny_dir, tmp_path, arch: str):
    """The tiny chat model declared as `arch` (what lmdeploy reads to choose an engine)."""
    path = shutil.copytree(tiny_dir / "chat", tmp_path / arch)
    config = json.loads((path / "config.json").read_text())
    config["architectures"] = [arch]
    (path / "config.json").write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module")
def pytorch_lm(tiny_dir):
    mp = pytest.MonkeyPatch()
    mp.setenv("RGEN_HARNESS_LMDEPLOY_ENGINE", CPU_ENGINE)
    lm = LMDeployLM(pretrained=str(tiny_dir / "chat"), backend="pytorch")
    yield lm
    lm.release()
    mp.undo()


def ll(context, continuation):
    return Instance("loglikelihood", {}, (context, continuation), 0)


def test_turbomind_on_an_architecture_it_does_not_run_is_refused(tiny_dir, tmp_path, engine_env):
    """GLM-4-9B-chat is a ChatGLMModel: lmdeploy would quietly build a PyTorch engine without
    logprobs_mode (raw logits as log-probabilities)."""
    path = with_arch(tiny_dir, tmp_path, "ChatGLMModel")
    with pytest.raises(ModelArgsError, match="does not support ChatGLMModel.*backend=pytorch"):
        LMDeployLM(pretrained=str(path), backend="turbomind")
    lm = LMDeployLM(pretrained=str(path))  # auto: lmdeploy's own rule picks PyTorch
    assert lm.engine.backend == "pytorch"
    assert lm.get_model_info()["lmdeploy_engine_settings"]["pytorch"]["logprobs_mode"] == (
        "raw_logprobs"
    )
    lm.release()


def test_raw_logits_without_logprobs_mode_as_the_real_engine(pytorch_lm):
    """With logprobs_mode None the PyTorch engine returns logits, not log-probabilities."""
    engine = cpu_engine(pytorch_lm)
    assert engine.engine_config.logprobs_mode == "raw_logprobs"
    ids = pytorch_lm.tok_encode("Hello there, the criteria")
    with_mode = engine.input_logprobs(ids, 0, 1, None)
    engine.engine_config.logprobs_mode = None
    try:
        raw = engine.input_logprobs(ids, 0, 1, None)
    finally:
        engine.engine_config.logprobs_mode = "raw_logprobs"
    assert all(v <= 0 for row in with_mode for v in row.values())
    assert raw != with_mode


def test_loglikelihood_is_computed_through_an_fp32_lm_head(pytorch_lm):
    """bf16 logits (steps of ~0.016) would change the sums; the model asks lmdeploy for an fp32
    LM head, and the CPU engine rounds to bf16 without it."""
    engine = cpu_engine(pytorch_lm)
    assert engine.engine_config.hf_overrides == {"fp32_lm_head": True}
    requests = [ll("The user asked about", " the evaluation criteria list"), ll("Hi", " there")]
    exact = [s for s, _ in pytorch_lm.loglikelihood(requests)]
    engine.engine_config.hf_overrides = {}
    try:
        half = [s for s, _ in pytorch_lm.loglikelihood(requests)]
    finally:
        engine.engine_config.hf_overrides = {"fp32_lm_head": True}
    assert max(abs(a - b) for a, b in zip(exact, half, strict=True)) > 1e-4


def test_log_likelihood_tasks_with_turbomind_only_settings_are_refused_before_any_work(
    tiny_dir, engine_env
):
    import lm_eval

    from rgen_harness import plugin

    plugin.apply()
    lm = LMDeployLM(pretrained=str(tiny_dir / "chat"), cache_block_seq_len=128)
    assert lm.engine.backend == "turbomind"
    calls = []
    lm.generate_chat_rounds = lambda *a, **k: calls.append(a)  # no request may be made
    with pytest.raises(ModelArgsError, match="TurboMind-only settings|separate lm_eval"):
        lm_eval.simple_evaluate(
            model=lm,
            tasks=["deita_qr", "rgen_test_mc"],
            task_manager=lm_eval.tasks.TaskManager(
                include_path=str(_task_dir(tiny_dir)),
                metadata={"deita_path": "sample", "scorers": "none"},
            ),
            limit=1,
        )
    assert calls == []
    lm.release()


def _task_dir(tiny_dir):
    from pathlib import Path

    src = Path(__file__).parents[1] / "data" / "tasks"
    out = tiny_dir / "strict_tasks"
    out.mkdir(exist_ok=True)
    for path in src.glob("*.yaml"):
        (out / path.name).write_text(path.read_text().replace("@DATA@", str(src.resolve())))
    return out


def test_inputs_are_capped_by_the_kv_pool_and_the_budget_follows(tiny_dir, engine_env):
    """The PyTorch engine caps a session at min(session_len, KV blocks - 1 block) and rejects
    longer inputs; the model's max_length is that cap, so the deita budget drops turns."""
    engine_env.setenv("RGEN_HARNESS_CPU_ENGINE_KV_BLOCKS", "4")  # 4 x 64 tokens
    lm = LMDeployLM(pretrained=str(tiny_dir / "chat"), backend="pytorch", session_len=1024)
    assert lm.max_length == 3 * 64
    too_long = [list(range(5, 5 + 200))]
    config = lm.plan({"until": [], "max_gen_toks": 4})[1]
    [resp] = lm.engine.generate(too_long, [config])
    assert resp.finish_reason == "error"
    lm.release()


def test_kv_pool_evicts_oldest_first_so_cached_tokens_are_earned(tiny_dir, engine_env):
    engine_env.setenv("RGEN_HARNESS_CPU_ENGINE_KV_BLOCKS", "6")
    lm = LMDeployLM(pretrained=str(tiny_dir / "chat"), backend="pytorch", max_gen_toks=2)
    config = lm.plan({"until": [], "max_gen_toks": 2})[1]
    first = list(range(5, 5 + 130))
    others = [list(range(300 + 10 * k, 300 + 10 * k + 130)) for k in range(3)]
    assert lm.engine.generate([first], [config])[0].cached_tokens == 0
    assert lm.engine.generate([first], [config])[0].cached_tokens == 128  # still cached
    for ids in others:  # 3 x 2 blocks push the first prompt's blocks out of a 6-block pool
        lm.engine.generate([ids], [config])
    assert lm.engine.generate([first], [config])[0].cached_tokens == 0
    assert cpu_engine(lm).stats["evicted_blocks"] > 0
    lm.release()


def test_engine_wide_failure_stops_the_run(tiny_dir, engine_env):
    """After an engine-wide failure every request answers ENGINE_STOP_ERROR: the run must stop
    (not count each as a failed conversation and finish)."""
    from rgen_harness.chat.protocol import REQUEST_TYPE, ChatRequest

    engine_env.setenv("RGEN_HARNESS_CPU_ENGINE_STOP_AFTER", "1")
    lm = LMDeployLM(pretrained=str(tiny_dir / "chat"), max_gen_toks=4)
    requests = [
        Instance(
            REQUEST_TYPE,
            {},
            (
                ChatRequest.build(
                    doc_id=f"d{i}", messages=[{"role": "user", "content": f"Hi {i}"}], rounds=[[]]
                ),
                {"until": [], "max_gen_toks": 4},
            ),
            i,
        )
        for i in range(3)
    ]
    with pytest.raises(EngineStopped, match="--use_cache"):
        lm.generate_chat_rounds(requests)
    lm.release()


def test_a_failed_request_stays_one_failed_conversation(lmdeploy_standin):
    from cpu_engine_util import fail_requests

    from rgen_harness.chat.protocol import REQUEST_TYPE, ChatRequest, ChatResult

    requests = [
        Instance(
            REQUEST_TYPE,
            {},
            (
                ChatRequest.build(
                    doc_id=name, messages=[{"role": "user", "content": text}], rounds=[[]]
                ),
                {"until": [], "max_gen_toks": 4},
            ),
            0,
        )
        for name, text in (("ok", "Hello"), ("bad", "FAILME please"))
    ]
    fail_requests(lmdeploy_standin, "FAILME")
    try:
        results = [ChatResult.from_json(r) for r in lmdeploy_standin.generate_chat_rounds(requests)]
    finally:
        fail_requests(lmdeploy_standin, None)
    assert [r.status for r in results] == ["ok", "failed"]


def test_turbomind_layout_is_lmdeploys_own_and_reported(tiny_dir, engine_env):
    """TurboMind lays tp x dp over the GPUs it sees with derive_parallel_config: tp=2, dp=2
    on two GPUs runs as attention dp 2 x tp 1 on 2 GPUs; the model reports that layout, and
    a layout that cannot fit is refused with the fix."""
    engine_env.setenv("RGEN_HARNESS_CPU_ENGINE_GPUS", "2")
    lm = LMDeployLM(pretrained=str(tiny_dir / "chat"), backend="turbomind", tp=2, dp=2)
    info = lm.get_model_info()["lmdeploy_engine_settings"]["turbomind"]
    assert (info["device_num"], info["attn_tp_size"], info["attn_dp_size"]) == (2, 1, 2)
    lm.release()
    engine_env.setenv("RGEN_HARNESS_CPU_ENGINE_GPUS", "1")
    with pytest.raises(ModelArgsError, match="tp=2.*CUDA_VISIBLE_DEVICES"):
        LMDeployLM(pretrained=str(tiny_dir / "chat"), backend="turbomind", tp=2)


def test_reward_input_over_the_engine_limit_fails_alone(tiny_dir, tmp_path, engine_env):
    """lmdeploy's async_get_logits would index a failed request's missing logits and fail the
    batch; each input is scored on its own."""
    from rgen_harness.metrics.reward.backends.lmdeploy import LMDeployRewardBackend

    path = shutil.copytree(tiny_dir / "reward", tmp_path / "reward")
    config = json.loads((path / "config.json").read_text())
    config["architectures"] = ["InternLM2ForRewardModel"]
    (path / "config.json").write_text(json.dumps(config))
    backend = LMDeployRewardBackend(str(path), max_length=64)
    try:
        scores = backend.score([[5, 6, 7], list(range(5, 5 + 100)), [9, 8]])
    finally:
        backend.close()
    assert not math.isnan(scores[0]) and not math.isnan(scores[2])
    assert math.isnan(scores[1])
    assert len(backend.failures) == 1
