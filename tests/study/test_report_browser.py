"""The results browser, loaded in a real headless browser (Debian's chromium) from file://:
the list shows the right numbers for known rows, an opened row shows the replies, model text
stays text, and the page opens within seconds on 300 conversations x 6 models."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from lm_eval_fixtures import paired_fixture, write_run

from rgen_harness.study.report import build_report

EVIL = "<script>document.title='pwned'</script><b>bold?</b>"


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(
        "no chromium on PATH: install it with `apt-get install -y chromium` (scripts/setup.sh "
        "--dev and .ci/run do so when apt-get is available)"
    )


def browse(url: str, tmp: Path, *, screenshot: Path | None = None, budget_ms: int = 8000) -> str:
    args = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp / 'chromium-profile'}",
        f"--virtual-time-budget={budget_ms}",
    ]
    if screenshot is not None:
        args += [f"--screenshot={screenshot}", "--window-size=1400,1800"]
    else:
        args += ["--dump-dom"]
    done = subprocess.run([*args, url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def rows_of(dom: str) -> dict[tuple[str, str], dict[str, str]]:
    """(conversation id, model) -> {cell class: text} for every list row in the DOM."""
    out = {}
    for _attrs, body in re.findall(r'<tr class="row[^"]*"([^>]*)>(.*?)</tr>', dom, re.S):
        cells = {
            cls.split()[1] if cls.split()[0] == "num" else cls.split()[0]: html.unescape(text)
            for cls, text in re.findall(r'<td class="([^"]+)">(.*?)</td>', body, re.S)
        }
        out[cells["id"], cells["model"]] = cells
    return out


def make_study(root: Path, n: int, models: list[str]) -> None:
    root.mkdir(parents=True)
    spec = [{"name": m, "model": "hf", "model_args": {"pretrained": f"org/{m}"}} for m in models]
    study = {
        "name": "browse",
        "models": spec,
        "notice": "SMOKE RUN: fixture data",
        "generation": {"max_gen_toks": 64},
        "output_dir": "study",
        "report_dir": "report",
    }
    (root / "study.json").write_text(json.dumps(study))
    for k, m in enumerate(models):
        tasks = paired_fixture(n, seed=k)
        first = next(ln for ln in tasks["deita_qr"] if ln["doc"]["id"] == "conv-000")
        result = json.loads(first["filtered_resps"][0])
        result["reply"] = result["rounds"][0]["reply"] = EVIL
        first["filtered_resps"] = first["resps"][0] = [json.dumps(result)]
        write_run(root / f"runs/{m}/deita", model_name=f"org/{m}", model_args={}, tasks=tasks)


def test_browser_shows_known_rows_and_replies_as_text(tmp_path):
    root = tmp_path / "study"
    make_study(root, 40, ["alpha", "beta"])
    files = build_report(root, resamples=100)
    page = files.browser
    assert page == tmp_path / "report" / "browser.html"
    assert "[alpha](browser.html#model=alpha)" in files.markdown.read_text()

    # Expected numbers read independently from the sample files.
    samples = {
        mode: {
            json.loads(line)["doc"]["id"]: json.loads(line)
            for line in next((root / "runs/beta/deita").rglob(f"samples_deita_{mode}_*")).open()
        }
        for mode in ("qr", "qcr")
    }
    qr, qcr = samples["qr"]["conv-004"], samples["qcr"]["conv-004"]

    dom = browse(f"{page.as_uri()}#model=beta&conv=conv-000", tmp_path)
    assert "40 conversations, 2 model(s)" in dom
    assert "SMOKE RUN: fixture data" in dom
    rows = rows_of(dom)
    assert {model for _, model in rows} == {"beta"}  # the #model= link filters
    row = rows["conv-004", "beta"]
    assert row["qr-reward"] == f"{qr['reward']:.3f}"
    assert row["qcr-reward"] == f"{qcr['reward']:.3f}"
    assert row["gap"] == f"{qcr['reward'] - qr['reward']:.3f}"
    assert row["ref-reward"] == f"{qr['reference_reward']:.3f}"
    assert rows["conv-007", "beta"]["qr-status"] == "skipped"
    assert rows["conv-010", "beta"]["dropped"] == "0 / 1"
    # Sorted by the QCR - QR gap, largest first.
    gaps = [float(r["gap"]) for r in rows.values() if r["gap"] != "n/a"]
    assert gaps == sorted(gaps, reverse=True)

    # conv-000 was opened from the link: its replies are there, the script as text.
    detail = dom[dom.index('class="detail-row"') :]
    assert "QCR criteria (round 1)" in detail and "# Criteria List" in detail
    assert html.escape(EVIL, quote=False) in detail
    assert "<b>bold?</b>" not in dom and "pwned" not in dom.split("<body")[0]
    browse(f"{page.as_uri()}#conv=conv-000", tmp_path, screenshot=tmp_path / "browser.png")
    assert (tmp_path / "browser.png").read_bytes()[:4] == b"\x89PNG"


def test_browser_opens_quickly_on_300_conversations_by_6_models(tmp_path):
    root = tmp_path / "study"
    make_study(root, 300, [f"m{i}" for i in range(6)])
    files = build_report(root, resamples=50)
    start = time.perf_counter()
    dom = browse(f"{files.browser.as_uri()}#sort=gap-desc", tmp_path, budget_ms=3000)
    took = time.perf_counter() - start
    assert "300 conversations, 6 model(s)" in dom
    assert "1800 rows" in dom  # 300 x 6 in the list, 50 on the page
    assert len(rows_of(dom)) == 50
    assert took < 20, f"the page took {took:.1f} s to load"
    chunks = sorted((files.browser.parent / "browser_data").glob("c*.js"))
    assert len(chunks) == 3  # texts in chunks of 100 conversations, loaded on demand


def test_judge_browser_shows_both_orders_against_the_gold_label(tmp_path):
    from rgen_harness.judge_report.collect import collect
    from rgen_harness.report_page import write_judge_page

    run = tmp_path / "judge_runs"
    run.mkdir()
    task = "judge_llmbar_natural"
    record = {"gold": 1, "turn": 0, "votes": [], "skipped": 0, "pred": [1, 2]}
    record |= {"shown": [1, 1], "error": ["", ""]}
    orders = [
        {"order": "original", "status": "ok", "reply": "Output (a) <i>wins</i>", "verdict": 1},
        {"order": "swapped", "status": "ok", "reply": "Output (a)", "verdict": 1},
    ]
    line = {
        "doc_id": 0,
        "doc": {"id": "p1", "query": "Which is right?", "response_1": "R1", "response_2": "R2"},
        "filtered_resps": [json.dumps(o) for o in orders],
        "skipped": record,
        "acc": record,
    }
    (run / f"samples_{task}_2026-01-01T00-00-00.000000.jsonl").write_text(json.dumps(line) + "\n")
    results = {
        "results": {task: {"alias": task, "acc,none": 0.5}},
        "configs": {task: {"task": task, "metadata": {"judge_set": "llmbar_natural"}}},
        "n-samples": {task: {"original": 1, "effective": 1}},
        "config": {"model": "hf", "model_args": {"pretrained": "org/judge"}},
        "model_name": "org/judge",
    }
    (run / "results_2026-01-01T00-00-00.000000.json").write_text(json.dumps(results))
    page = write_judge_page(collect([run]), tmp_path / "judge_browser.html", notice="SMOKE")
    dom = browse(f"{page.as_uri()}#conv=p1/0", tmp_path)
    assert "1 pairs, 1 judge(s)" in dom
    row = re.search(r'<tr class="row[^"]*"[^>]*>(.*?)</tr>', dom, re.S).group(1)
    assert '<td class="gold">reply 1</td>' in row
    assert '<td class="pred0">reply 1</td>' in row and '<td class="pred1">reply 2</td>' in row
    assert "1 of 2" in row
    detail = dom[dom.index('class="detail-row"') :]
    assert "Output (a) &lt;i&gt;wins&lt;/i&gt;" in detail and "swapped order" in detail
    assert "Reply 1 (preferred by the humans)" in detail
