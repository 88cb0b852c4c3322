#!/usr/bin/env bash
# The README's test command: installs what the tests need, then lint, format check and the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --all
export PATH="$HOME/.local/bin:$PATH"
echo "==> ruff"
uv run --locked ruff check .
uv run --locked ruff format --check .
echo "==> pytest"
uv run --locked pytest "$@"
