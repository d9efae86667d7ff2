"""Exact log-likelihoods through LMDeployLM + stand-in vs lm-eval's own `hf` model, same weights."""

from __future__ import annotations

import pytest
from cpu_engine_util import CPU_ENGINE, fail_requests
from lm_eval.api.instance import Instance

from rgen_harness.models.lmdeploy_lm import LMDeployLM, LogprobsUnavailable
from rgen_harness.models.loglikelihood import score_continuation

pytest.importorskip("lmdeploy")

TOL = 1e-4  # nats, per request
PAIRS = [
    ("Question: which criterion asks for correctness?\nAnswer:", " accuracy"),
    ("Question: which criterion asks for correctness?\nAnswer:", " brevity"),
    ("The user asked", " about the criteria list"),
    ("", "hello world"),  # empty context: lm-eval conditions on the prefix token
    ("Trailing space ", "moves to the continuation"),
]
LONG_TEXT = " ".join(
    ["The assistant proposes evaluation criteria, then answers the question in full."] * 6
)


def ll(context, continuation):
    return Instance("loglikelihood", {}, (context, continuation), 0)


def rolling(text):
    return Instance("loglikelihood_rolling", {}, (text,), 0)


@pytest.fixture(scope="module")
def hf_lm(tiny_dir):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(tiny_dir / "chat"), device="cpu", batch_size=2)


def test_tokenisation_matches_hf(lmdeploy_standin, hf_lm):
    for text in ["plain text", "<|endoftext|>starts with BOS", ""]:
        assert lmdeploy_standin.tok_encode(text) == hf_lm.tok_encode(text)
    assert lmdeploy_standin.prefix_token_id == hf_lm.prefix_token_id


def test_loglikelihood_matches_hf_within_1e4(lmdeploy_standin, hf_lm):
    requests = [ll(c, x) for c, x in PAIRS]
    ours = lmdeploy_standin.loglikelihood(requests)
    theirs = hf_lm.loglikelihood(requests)
    for (a, greedy_a), (b, greedy_b) in zip(ours, theirs, strict=True):
        assert abs(a - b) < TOL, (a, b)
        assert greedy_a == greedy_b
    assert len({round(a, 3) for a, _ in ours}) > 1  # real, differing values


def test_greedy_flag_is_true_for_the_model_own_continuation(lmdeploy_standin):
    context = "Criteria List\n## accuracy"
    _, config, _ = lmdeploy_standin.plan({"until": [], "max_gen_toks": 3})
    [resp] = lmdeploy_standin.engine.generate([lmdeploy_standin.encode_prompt(context)], [config])
    generated = list(resp.token_ids)
    assert generated, resp
    context_ids = lmdeploy_standin.tok_encode(context)
    [(value, greedy)] = lmdeploy_standin._loglikelihood_tokens(
        [(None, context_ids, generated)], disable_tqdm=True
    )
    assert greedy is True and value < 0
    [(_, greedy)] = lmdeploy_standin._loglikelihood_tokens(
        [(None, context_ids, [(generated[0] + 1) % 500])], disable_tqdm=True
    )
    assert greedy is False


def test_rolling_matches_hf_with_several_windows(tiny_dir, hf_lm, monkeypatch):
    from lm_eval.models.huggingface import HFLM

    monkeypatch.setenv("RGEN_HARNESS_LMDEPLOY_ENGINE", CPU_ENGINE)
    # lmdeploy needs input < session_len, so session_len = hf max_length + 2 gives equal windows
    ours_lm = LMDeployLM(pretrained=str(tiny_dir / "chat"), session_len=42, max_gen_toks=16)
    hf_short = HFLM(pretrained=str(tiny_dir / "chat"), device="cpu", batch_size=4, max_length=40)
    assert len(ours_lm.tok_encode(LONG_TEXT)) > 3 * 40  # at least 4 windows
    requests = [rolling(LONG_TEXT), rolling("A short text.")]
    ours = ours_lm.loglikelihood_rolling(requests)
    theirs = hf_short.loglikelihood_rolling(requests)
    for a, b in zip(ours, theirs, strict=True):
        assert abs(a - b) < TOL, (a, b)
    full = hf_lm.loglikelihood_rolling([rolling(LONG_TEXT)])[0]
    assert abs(full - ours[0]) > 1e-3  # windows really were used (different context)
    ours_lm.release()


def test_turbomind_refuses_loglikelihood_with_the_fix(tiny_dir, monkeypatch):
    monkeypatch.setenv("RGEN_HARNESS_LMDEPLOY_ENGINE", CPU_ENGINE)
    lm = LMDeployLM(pretrained=str(tiny_dir / "chat"), backend="turbomind")
    assert lm.engine.backend == "turbomind"
    with pytest.raises(LogprobsUnavailable, match="backend=pytorch"):
        lm.loglikelihood([ll("a", " b")])
    with pytest.raises(LogprobsUnavailable, match="backend=pytorch"):
        lm.loglikelihood_rolling([rolling("some text")])
    lm.release()


def test_score_continuation_follows_lmdeploy_rows():
    rows = [{5: -0.1}, {7: -2.0, 3: -0.5}]  # target first, then the top-1 token
    assert score_continuation(rows, [5, 7]) == pytest.approx((-2.1, False))
    assert score_continuation(rows[:1], [5]) == pytest.approx((-0.1, True))
    with pytest.raises(RuntimeError, match="2 logprob rows for 1 continuation tokens"):
        score_continuation(rows, [5])


def test_failed_scoring_request_is_raised(lmdeploy_standin):
    lmdeploy_standin.loglikelihood([ll("a", " b")])  # on the PyTorch engine from here on
    fail_requests(lmdeploy_standin, "POISON")
    try:
        with pytest.raises(RuntimeError, match=r"loglikelihood request 0.*internal_error"):
            lmdeploy_standin.loglikelihood([ll("POISON context", " x")])
    finally:
        fail_requests(lmdeploy_standin, None)


def test_auto_backend_scores_on_a_pytorch_engine(tiny_dir, monkeypatch):
    """The default user command: backend=auto builds TurboMind for a Llama model on a GPU;
    log-likelihood requests then run on a PyTorch engine built for them."""
    monkeypatch.setenv("RGEN_HARNESS_LMDEPLOY_ENGINE", CPU_ENGINE)
    lm = LMDeployLM(pretrained=str(tiny_dir / "chat"))
    assert lm.engine.backend == "turbomind"
    value, _ = lm.loglikelihood([ll("a b", " c")])[0]
    assert value < 0 and lm.engine.backend == "pytorch"
    info = lm.get_model_info()
    assert info["lmdeploy_backend"] == "pytorch"
    assert info["lmdeploy_backends_used"]["loglikelihood"] == "pytorch"
    lm.release()
