"""Data parallel: the deita requests shard, pad and gather like built-in tasks'. Two CPU
processes (torchrun with accelerate's multi-CPU mode, gloo) give the results and samples of
one process, and every rank gets the same number of requests of each type."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from openai_server_util import free_port

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).with_name("data_parallel_eval.py")


def write_plain_task(folder: Path) -> Path:
    rows = [{"q": f"Say {i}.", "a": str(i)} for i in range(7)]
    data = folder / "plain.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (folder / "plain_echo.yaml").write_text(
        f"""task: plain_echo
dataset_path: json
dataset_kwargs: {{data_files: {{test: {data}}}}}
test_split: test
output_type: generate_until
doc_to_text: "{{{{q}}}}"
doc_to_target: a
generation_kwargs: {{until: ["\\n"], max_gen_toks: 4, do_sample: false}}
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""
    )
    return folder


def run(cmd: list[str], out: Path) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=400)
    assert proc.returncode == 0, proc.stderr[-4000:]
    payload = json.loads(out.read_text())
    ranks = sorted(out.parent.glob(out.name + ".rank*"))
    payload["calls"] = [json.loads(p.read_text()) for p in ranks]
    return payload


@pytest.fixture(scope="module")
def runs(tiny_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dp")
    tasks = write_plain_task(tmp)
    args = [str(SCRIPT), str(tiny_dir / "chat"), str(tasks)]
    single = run([sys.executable, *args, str(tmp / "one.json")], tmp / "one.json")
    # torchrun + ACCELERATE_USE_CPU=1: accelerate's multi-CPU mode (gloo), as
    # `accelerate launch --cpu --multi_cpu` would set up; one process per rank.
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    launch += ["--master_addr", "127.0.0.1", "--master_port", str(free_port())]
    double = run([*launch, *args, str(tmp / "two.json")], tmp / "two.json")
    return single, double


def test_two_ranks_give_the_results_of_one_process(runs):
    single, double = runs
    assert single["world_size"] == 1 and double["world_size"] == 2
    assert double["results"] == single["results"]
    assert double["samples"].keys() == single["samples"].keys()
    for task, rows in single["samples"].items():
        two = double["samples"][task]
        assert [s["doc_id"] for s in two] == [s["doc_id"] for s in rows] == list(range(5))
        assert [s["filtered"] for s in two] == [s["filtered"] for s in rows]


def test_every_rank_gets_the_same_number_of_requests_of_each_type(runs):
    _, double = runs
    rank0, rank1 = double["calls"]
    # 5 docs per task over 2 ranks: 3 + 2, the short rank padded by one per task, and the
    # padding of the deita tasks is deita requests (not generate_until ones of plain_echo).
    assert rank0 == rank1 == {"generate_chat_rounds": [6], "generate_until": [3]}


def test_padding_copies_do_not_reach_other_tasks(runs):
    """lm-eval pads a rank by repeating its last request of a type: plain_echo's doc 3 (rank
    1's last generate_until request) answers its own task's one padding copy, no more."""
    _, double = runs
    for row in double["samples"]["plain_echo"]:
        assert [len(r) for r in row["resps"]] == [2 if row["doc_id"] == 3 else 1]
