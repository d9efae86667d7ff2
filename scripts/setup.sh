#!/usr/bin/env bash
# Creates ./.venv with everything rgen-harness needs on a CPU machine (idempotent).
#   bash scripts/setup.sh          # the package, CPU torch (for the offline demo)
#   bash scripts/setup.sh --dev    # + test/lint tools, lmdeploy's Python package (import only)
#                                  #   and chromium (the results-browser test) when apt-get works
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0
[[ "${1:-}" == "--dev" ]] && dev=1
python3 -m venv .venv
py=.venv/bin/python
export PIP_DISABLE_PIP_VERSION_CHECK=1
TORCH="torch==2.13.0"
CPU_INDEX="https://download.pytorch.org/whl/cpu"
# CPU torch first: from PyPI's default index, Linux gets the multi-GB CUDA build. PyTorch's CPU
# wheel index is used when it answers within 5 s; otherwise the default index (or the local
# mirror pip is configured with) is used.
if "$py" - "$CPU_INDEX" <<'PY'
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1] + "/torch/", timeout=5).close()
except Exception:
    sys.exit(1)
PY
then
  echo "setup: installing $TORCH (CPU build) from $CPU_INDEX"
  "$py" -m pip install -q "$TORCH" --index-url "$CPU_INDEX"
else
  echo "setup: $CPU_INDEX not reachable in 5 s; installing $TORCH from the default index"
  "$py" -m pip install -q "$TORCH"
fi
if [[ $dev == 1 ]]; then
  # lmdeploy goes in last, with --no-deps: its own pins (torch<=2.12.1, the CUDA stack) do not
  # fit a CPU machine. Installs after it would print pip's resolver ERROR block about those
  # pins, so a rerun (lmdeploy already there) skips that warning.
  quiet=()
  "$py" -c "import importlib.util as u, sys; sys.exit(u.find_spec('lmdeploy') is None)" \
    && quiet=(--no-warn-conflicts)
  "$py" -m pip install -q "${quiet[@]}" -e ".[dev]"
  "$py" -m pip install -q "${quiet[@]}" -r requirements/lmdeploy-cpu.txt
  "$py" -m pip install -q --no-deps "lmdeploy==0.18.0"
  if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
    if command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
      echo "setup: installing chromium (tests/study/test_report_browser.py loads the page in it)"
      apt-get update -qq >/dev/null 2>&1 || true
      apt-get install -y -q chromium >/dev/null || echo "setup: chromium not installed; that test will be skipped with the reason"
    else
      echo "setup: no chromium; tests/study/test_report_browser.py will be skipped (install: apt-get install -y chromium)"
    fi
  fi
else
  "$py" -m pip install -q -e .
fi
"$py" -c "import torch, lm_eval, rgen_harness; print('rgen-harness', rgen_harness.__version__, '| torch', torch.__version__, '| lm-eval', lm_eval.__version__)"
