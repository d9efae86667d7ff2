#!/usr/bin/env bash
# Creates ./.venv with everything rgen-harness needs on a CPU machine (idempotent).
#   bash scripts/setup.sh          # the package, CPU torch (for the offline demo)
#   bash scripts/setup.sh --dev    # + test/lint tools and lmdeploy's Python package (import only)
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0
[[ "${1:-}" == "--dev" ]] && dev=1
python3 -m venv .venv
py=.venv/bin/python
export PIP_DISABLE_PIP_VERSION_CHECK=1
# CPU torch first: otherwise pip resolves torch to the multi-GB CUDA build.
"$py" -m pip install -q "torch==2.13.0"
if [[ $dev == 1 ]]; then
  "$py" -m pip install -q -e ".[dev]"
  "$py" -m pip install -q --no-deps "lmdeploy==0.18.0"
  "$py" -m pip install -q -r requirements/lmdeploy-cpu.txt
else
  "$py" -m pip install -q -e .
fi
"$py" -c "import torch, lm_eval, rgen_harness; print('rgen-harness', rgen_harness.__version__, '| torch', torch.__version__, '| lm-eval', lm_eval.__version__)"
