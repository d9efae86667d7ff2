"""The study's records describe the run that ran, one study per folder, every folder checked
before work, and the end of a run (closed pipe, full disk) is one clear error with lm_eval
stopped. lm_eval is a small Python child here (see `ChildLmEval`), run by the real `_execute`."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import sys
import textwrap
import time

import pytest
from study_fakes import FakeLmEval, base_config, study

from rgen_harness.file_writes import WriteFailed
from rgen_harness.study import runner
from rgen_harness.study.config import StudyConfigError, parse_study_config

# A stand-in for `python -m lm_eval`: logs its model_args as lm-eval does ("Initializing ...
# with arguments"), writes lm-eval's results JSON (config.model_args, the task metadata) and
# samples, records its pid; with SLOW set it keeps printing for a minute.
CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    sys.path.insert(0, os.environ["FIXTURES"])
    from lm_eval_fixtures import sample_line, write_run
    argv = sys.argv[1:]
    opt = lambda name: argv[argv.index(name) + 1]
    out, model_args = Path(opt("--output_path")), json.loads(opt("--model_args"))
    metadata = json.loads(opt("--metadata"))
    Path(os.environ["PID_FILE"]).write_text(str(os.getpid()))
    Path(os.environ["PID_FILE"] + ".argv").write_text(json.dumps(sys.argv))
    print(f"INFO Initializing hf model, with arguments: {model_args}", flush=True)
    print(f"INFO task metadata: {metadata}", flush=True)
    if os.environ.get("SLOW"):
        for i in range(600):
            print(f"step {i}", flush=True)
            time.sleep(0.1)
    lines = [sample_line(i, f"c{i}", {"reply_chars": 10.0 + i}) for i in range(3)]
    tasks = opt("--tasks").split(",")
    extra = {"metadata": metadata}
    write_run(out, model_name=model_args["pretrained"], model_args=model_args,
              tasks={t: lines for t in tasks}, config_extra=extra)
    """
)


class ChildLmEval:
    """Runs the real `runner._execute` with CHILD in place of `python -m lm_eval`."""

    def __init__(self, monkeypatch, tmp_path, **env):
        script = tmp_path / "fake_lm_eval.py"
        script.write_text(CHILD)
        self.pid_file = tmp_path / "child.pid"
        monkeypatch.setenv("FIXTURES", os.path.dirname(__file__))
        monkeypatch.setenv("PID_FILE", str(self.pid_file))
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        original = runner._execute

        def execute(run, stream):
            run = dataclasses.replace(run, argv=(sys.executable, str(script), *run.argv[3:]))
            return original(run, stream)

        monkeypatch.setattr(runner, "_execute", execute)

    def pid(self) -> int:
        return int(self.pid_file.read_text())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) counts as stopped
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _files(root) -> dict[str, bytes]:
    paths = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in paths}


# -- records ----------------------------------------------------------------------------------


def test_dry_run_writes_nothing(tmp_path, monkeypatch):
    fake = FakeLmEval(monkeypatch)
    raw = base_config(tmp_path, subset={"size": 3, "seed": 1})
    outcome, printed = study(raw, dry_run=True)
    assert "first/deita: running" in printed and fake.calls == []
    assert not (tmp_path / "study").exists() and not (tmp_path / "report").exists()


def test_refused_run_leaves_the_records_of_the_run_that_ran(tmp_path, monkeypatch):
    FakeLmEval(monkeypatch)
    raw = base_config(tmp_path, subset={"size": 3, "seed": 1})
    study(raw)
    before = _files(tmp_path / "study")
    raw["subset"] = {"size": 4, "seed": 2}
    with pytest.raises(StudyConfigError, match="different settings"):
        study(raw)
    with pytest.raises(StudyConfigError, match="different settings"):
        study(raw, dry_run=True)
    assert _files(tmp_path / "study") == before  # study.json and subset.json untouched


def test_second_study_on_the_same_folder_is_refused_with_the_holder_pid(tmp_path, monkeypatch):
    fake = FakeLmEval(monkeypatch)
    config = parse_study_config(base_config(tmp_path))
    config.study_dir.mkdir(parents=True)
    busy = pytest.raises(runner.StudyBusy, match=rf"pid {os.getpid()}\) is running in")
    with runner.StudyLock(config.study_dir), busy:
        study(base_config(tmp_path))
    assert fake.calls == []
    outcome, _ = study(base_config(tmp_path))  # released: the study runs
    assert outcome.done == ["first/deita"]


def test_lock_is_released_when_the_holder_dies(tmp_path):
    import subprocess

    folder = tmp_path / "study"
    folder.mkdir()
    code = (
        "import sys, pathlib; from rgen_harness.study.runner import StudyLock; "
        "lock = StudyLock(pathlib.Path(sys.argv[1])).acquire(); print('held', flush=True); "
        "sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(runner.StudyBusy, match=f"pid {holder.pid}"):
        runner.StudyLock(folder).acquire()
    holder.kill()
    holder.wait()
    runner.StudyLock(folder).acquire().release()


# -- locations checked before work --------------------------------------------------------------


@pytest.mark.parametrize(
    "setting, path",
    [
        ("report_dir", "report"),
        ("output_dir", "study"),
    ],
)
def test_unwritable_folder_is_named_before_any_run(tmp_path, monkeypatch, setting, path):
    fake = FakeLmEval(monkeypatch)
    (tmp_path / path).write_text("a file where a folder should be")
    with pytest.raises(WriteFailed, match=rf"^{setting}: cannot write {tmp_path / path}"):
        study(base_config(tmp_path))
    assert fake.calls == []


def test_unusable_reward_cache_is_named_before_generation(tmp_path, monkeypatch, tiny_dir):
    fake = FakeLmEval(monkeypatch)
    cache = tmp_path / "cache-file"
    cache.write_text("not a folder")
    raw = base_config(
        tmp_path,
        scorers=["reward"],
        reward={"model": str(tiny_dir / "reward"), "backend": "hf", "cache": str(cache)},
    )
    with pytest.raises(WriteFailed, match=rf"^reward.cache: cannot write {cache}"):
        study(raw)
    assert fake.calls == [] and not (tmp_path / "study/study.json").exists()


def test_unwritable_report_folder_in_the_command_is_one_line(tmp_path, monkeypatch, capsys):
    import yaml

    from rgen_harness.cli import main

    FakeLmEval(monkeypatch)
    raw = base_config(tmp_path)
    (tmp_path / "report").write_text("x")
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    assert main(["study", str(cfg)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: report_dir: cannot write {tmp_path / 'report'}: File exists; a file stands "
        "where a folder is needed; move it away or set report_dir to another folder."
    ]


# -- the end of a run ------------------------------------------------------------------------------


class ClosedPipe(io.StringIO):
    def __init__(self, after: int):
        super().__init__()
        self.after = after

    def write(self, text):
        if "step" in text:
            self.after -= 1
            if self.after < 0:
                raise BrokenPipeError(32, "Broken pipe")
        return super().write(text)


def test_closed_pipe_stops_lm_eval_with_one_message(tmp_path, monkeypatch):
    child = ChildLmEval(monkeypatch, tmp_path, SLOW="1")
    config = parse_study_config(base_config(tmp_path))
    start = time.monotonic()
    with pytest.raises(runner.OutputClosed, match="output of `rgen-harness study` was closed"):
        runner.run_study(config, stream=ClosedPipe(after=3))
    assert time.monotonic() - start < 30
    assert not _alive(child.pid())


def test_full_disk_stops_lm_eval_and_names_the_log(tmp_path, monkeypatch):
    if not os.path.exists("/dev/full"):
        pytest.fail("this test needs /dev/full (Linux)")
    child = ChildLmEval(monkeypatch, tmp_path, SLOW="1")
    config = parse_study_config(base_config(tmp_path))
    log = config.study_dir / "runs/first/deita/lm_eval.log"
    log.parent.mkdir(parents=True)
    log.symlink_to("/dev/full")
    with pytest.raises(WriteFailed, match=rf"output_dir: cannot write {log}: No space left"):
        runner.run_study(config, stream=io.StringIO())
    assert not _alive(child.pid())


# -- secrets --------------------------------------------------------------------------------------


SECRETS = {
    "env": "hf_envSECRETvalue0123456789",  # model_args token: ${HF_TOKEN}
    "config": "cfgLITERALsecret42",  # model_args api_key written in the config
    "url": "urlPASSWORDsecret77",  # reward url http://user:<password>@host
}


def test_no_secret_in_any_file_the_study_writes(tmp_path, monkeypatch, tiny_dir):
    ChildLmEval(monkeypatch, tmp_path, HF_TOKEN=SECRETS["env"], REWARD_HOST="127.0.0.1:9")
    raw = base_config(tmp_path)
    raw["models"][0]["model_args"].update(token="${HF_TOKEN}", api_key=SECRETS["config"])
    raw["metadata"] = {"judge_url": f"http://user:{SECRETS['url']}@${{REWARD_HOST}}/v1"}
    out = io.StringIO()
    config = parse_study_config(raw)
    outcome = runner.run_study(config, stream=out)
    assert outcome.done == ["first/deita"], out.getvalue()
    from rgen_harness.study.report import build_report

    build_report(config.study_dir, config.results_dir)
    from rgen_harness.cli import main

    reward = ["--reward-model", str(tiny_dir / "reward"), "--reward-backend", "hf"]
    rescore = [*reward, "--reward-cache", "none", "--reward-device", "cpu"]
    assert main(["score", str(config.study_dir / "runs"), *rescore]) == 0

    written = {**_files(tmp_path / "study"), **_files(tmp_path / "report")}
    assert any(name.endswith("lm_eval.log") for name in written)
    assert any("rescored" in name and "results_" in name for name in written)
    for name, data in written.items():
        for route, secret in SECRETS.items():
            assert secret.encode() not in data, f"{route} secret in {name}"
    for route, secret in SECRETS.items():
        assert secret not in out.getvalue(), f"{route} secret printed"
    # Values from the environment are recorded as written.
    assert (
        json.loads((tmp_path / "study/study.json").read_text())["models"][0]["model_args"]["token"]
        == "${HF_TOKEN}"
    )
    run = json.loads((tmp_path / "study/runs/first/deita/run.json").read_text())
    assert run["settings"]["model_args"]["token"] == "${HF_TOKEN}"
    assert run["settings"]["model_args"]["api_key"] == "***"
    assert "${REWARD_HOST}" in run["command"] and "http://***@" in run["command"]
    # and never on lm_eval's command line (any user's `ps` shows it): passed as written, the
    # variable set for lm_eval alone, which expands it (rgen_harness.env_refs)
    argv = (tmp_path / "child.pid.argv").read_text()
    assert SECRETS["env"] not in argv and "${HF_TOKEN}" in argv
