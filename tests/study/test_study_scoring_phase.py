"""Scoring as its own phase gives inline scoring's numbers, with the reward model loaded once
for the whole study; the same study on a real local Ray cluster (fake GPU resources) writes
the same results files as the local scheduler. Real lm_eval output of the tiny models (one
inline and one --predict_only run) stands in for what each model generates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from sim_study import SIM, lmdeploy_models, read_records, result_files, use_sim
from study_fakes import base_config, study

from rgen_harness.study.scoring import score_run

pytestmark = pytest.mark.slow
sys.path.insert(0, str(SIM.parent))
from sim_lm_eval import make_templates  # noqa: E402

MODELS = [("m7b", 1), ("m20b", 2), ("m1b", 1)]
SECONDS = {"org/m7b": 1.0, "org/m20b": 1.5, "org/m1b": 0.5}


@pytest.fixture(scope="module")
def templates(tiny_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("templates")
    metadata = make_templates(folder, tiny_dir / "chat", tiny_dir / "reward")
    return folder, metadata


def _scored_config(tmp_path, metadata, **overrides):
    reward = {k[len("reward_") :]: v for k, v in metadata.items() if k.startswith("reward_")}
    return base_config(
        tmp_path,
        models=lmdeploy_models(MODELS),
        data={"path": "sample"},
        limit=3,  # the conversations of the templates
        scorers=["rouge", "reward"],
        reward=reward,
        gpus=[0, 1, 2, 3],
        scoring="separate",
        **overrides,
    )


def _results(folder):
    (path,) = folder.rglob("results_*.json")
    return json.loads(path.read_text())


def _samples(folder, task):
    (path,) = folder.rglob(f"samples_{task}_*.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_scoring_phase_equals_inline_scoring(templates, tmp_path):
    folder, _ = templates
    score_run(folder / "predicted", tmp_path / "scored")
    inline, scored = _results(folder / "inline"), _results(tmp_path / "scored")
    for task in ("deita_qr", "deita_qcr"):
        a = {k: v for k, v in inline["results"][task].items() if "," in k}
        b = {k: v for k, v in scored["results"][task].items() if "," in k}
        assert "reward,none" in a and "rouge1_f,none" in a
        assert a == b, task
        for x, y in zip(
            _samples(folder / "inline", task), _samples(tmp_path / "scored", task), strict=False
        ):
            assert x["doc_id"] == y["doc_id"]
            assert {k: x.get(k) for k in x["metrics"]} == {k: y.get(k) for k in x["metrics"]}


def test_study_scores_every_run_with_one_reward_load(templates, tmp_path, monkeypatch):
    folder, metadata = templates
    records = tmp_path / "records"
    use_sim(monkeypatch, folder, records, SECONDS)
    outcome, printed = study(_scored_config(tmp_path, metadata))
    assert sorted(outcome.done) == sorted(f"{n}/deita" for n, _ in MODELS), printed
    assert outcome.scorer_loads == 1
    assert all(r["predict_only"] and not r["reward_load"] for r in read_records(records))
    inline = _results(folder / "inline")["results"]["deita_qr"]
    for name, _ in MODELS:
        scored = _results(tmp_path / f"study/runs/{name}/deita")["results"]["deita_qr"]
        assert scored["reward,none"] == inline["reward,none"]
    outcome, _ = study(_scored_config(tmp_path, metadata))  # finished: nothing to score again
    assert len(outcome.skipped) == 3 and outcome.scorer_loads is None


def test_the_scorer_gets_credentials_from_the_study_not_the_masked_records(
    templates, tmp_path, monkeypatch
):
    """A reward server behind basic auth, its password from the environment: the scoring
    phase scores with the study's own settings (the records mask the password)."""
    import base64

    from pooling_server_util import PoolingServer, hf_reward_backend

    folder, metadata = templates
    use_sim(monkeypatch, folder, tmp_path / "records", SECONDS)
    monkeypatch.setenv("RM_PASSWORD", "s3cret-pw-123")
    auth = "Basic " + base64.b64encode(b"rm-user:s3cret-pw-123").decode()
    with PoolingServer(hf_reward_backend(metadata["reward_model"]), auth=auth) as server:
        raw = _scored_config(tmp_path, metadata, shards=1)
        url = server.url.replace("http://", "http://rm-user:${RM_PASSWORD}@")
        raw["reward"] = {"model": metadata["reward_model"], "backend": "server", "url": url,
                         "cache": "none"}  # fmt: skip
        outcome, printed = study(raw)
        assert server.requests and sorted(outcome.done) == sorted(f"{n}/deita" for n, _ in MODELS)
    inline = _results(folder / "inline")["results"]["deita_qr"]
    for name, _ in MODELS:
        scored = _results(tmp_path / f"study/runs/{name}/deita")["results"]["deita_qr"]
        assert scored["reward_n,none"] == inline["reward_n,none"], printed
        assert scored["reward,none"] == pytest.approx(inline["reward,none"], abs=1e-5)
    written = [p for p in (tmp_path / "study").rglob("*") if p.is_file()]
    assert written and not [p for p in written if b"s3cret-pw-123" in p.read_bytes()]


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'rgen-harness[ray]'")
    tmp = tmp_path_factory.mktemp("ray")
    port = 36000 + os.getpid() % 2000
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), RAY_USAGE_STATS_ENABLED="0")
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    head = subprocess.Popen(
        [ray_bin, "start", "--head", "--block", f"--port={port}", "--num-gpus=8",
         "--num-cpus=8", "--include-dashboard=false", f"--temp-dir={tmp}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    import ray

    while True:
        try:
            ray.init(address=address, log_to_driver=False)
            ray.shutdown()
            break
        except Exception:
            if time.monotonic() > deadline or head.poll() is not None:
                os.killpg(head.pid, signal.SIGKILL)
                pytest.fail("the local Ray head did not start in 120 s")
            time.sleep(2)
    yield address
    os.killpg(head.pid, signal.SIGTERM)  # `ray start --block` stops what it started
    try:
        head.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()


INNER = "RGEN_TEST_RAY_INNER"


def test_ray_cluster_gives_the_local_schedulers_results():
    """Runs the Ray check below in its own pytest process: a Ray driver leaves a SIGTERM handler
    and state behind in the process that called ray.init, which later tests must not inherit."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0",
         f"{__file__}::test_ray_cluster_inner"],
        env=dict(os.environ, **{INNER: "1"}), capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout


@pytest.mark.skipif(not os.environ.get(INNER), reason="run in its own process by the test above")
def test_ray_cluster_inner(templates, tmp_path, monkeypatch, ray_cluster):
    folder, metadata = templates
    use_sim(monkeypatch, folder, tmp_path / "records-local", SECONDS)
    local = _scored_config(tmp_path, metadata, output_dir=str(tmp_path / "local"))
    outcome, _ = study(local)
    assert len(outcome.done) == 3
    monkeypatch.setenv("SIM_RECORDS", str(tmp_path / "records-ray"))
    raw = _scored_config(tmp_path, metadata, output_dir=str(tmp_path / "ray"))
    raw.pop("gpus")
    raw["ray"] = {"address": ray_cluster}
    outcome, printed = study(raw)
    assert sorted(outcome.done) == sorted(f"{n}/deita" for n, _ in MODELS), printed
    assert outcome.scorer_loads == 1
    assert "on a Ray task (2 GPU)" in printed
    recs = read_records(tmp_path / "records-ray")
    tp = {f"org/{n}": t for n, t in MODELS}
    assert all(len(r["gpus"].split(",")) == tp[r["model"]] for r in recs)
    # the 8 GPUs leave room: some models are split into shards, merged before scoring
    assert len(recs) > len(MODELS) and "shards merged" in printed, printed
    assert result_files(tmp_path / "ray") == result_files(tmp_path / "local")
