#!/usr/bin/env bash
# The GPU benchmark of docs/benchmarks.md, for a GPU machine with no network (issue 16).
#
#   bash scripts/gpu_bench.sh fetch          on a machine that reaches PyPI: puts in runs/gpu-carry/ the wheels a
#                                            bare GPU image lacks (trl, datasets, liger-kernel, ...) and the Gemma 3
#                                            270M's config and tokenizer (no weights), about 25 MiB
#   bash scripts/gpu_bench.sh run [PHASE]    on the GPU machine, from the repository root with runs/gpu-carry/
#                                            copied along: installs the wheels into /tmp/site (no network, no
#                                            root needed) and runs PHASE: bench, variants, train or all (default)
#
# bench:    sqlsft bench train --random-init --presets baseline,liger-slow,liger,fast --gpus 1
# variants: fast with torch.compile, and with flash-attn's varlen attention when flash-attn imports
# train:    a 20-step `sqlsft train --preset liger --gpus 1` that must complete and save its model
# The results (bench.json, bench.csv, bench.png, logs) are copied to $OUT (or runs/gpu-bench/).
#
# Where the image already has torch, transformers, accelerate, pandas and pyarrow (the H200 image does), only the
# wheels below are needed. --model embedded needs the 253 MB GGUF package, too big to carry: the benchmark builds
# the 270M from its config instead (--random-init; random weights do not change the throughput).
set -euo pipefail
cd "$(dirname "$0")/.."

CARRY=runs/gpu-carry  # runs/ is git-ignored: name it in the device tool's `carry`
WHEELS="$CARRY/whl"
MODEL_FILES="$CARRY/gemma-3-270m"
PYTHON_VERSION=${PYTHON_VERSION:-3.12}  # the GPU image's Python
# Pinned as in uv.lock; each wheel is fetched without its dependencies, so every missing one is named here.
PACKAGES=(
  trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 liger-kernel==0.8.5
  transformers==5.20.2 sqlparse==0.6.1 sqlglot==30.30.0
)
STEPS=${STEPS:-20}
WARMUP=${WARMUP:-3}
NUM_ROWS=${NUM_ROWS:-2000}

fetch() {
  rm -rf "$CARRY" && mkdir -p "$WHEELS" "$MODEL_FILES"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYTHON_VERSION" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d "$WHEELS" "${PACKAGES[@]}"
  # The embedded model's config, tokenizer and chat template (its weights stay behind), tokenizer.json xz'd.
  folder=$(uv run --locked python -c "
from rich.console import Console
from sqlsft.models.resolve import embedded_model_dir
print(embedded_model_dir(Console(stderr=True)))")
  for name in config.json generation_config.json tokenizer_config.json chat_template.jinja; do
    cp "$folder/$name" "$MODEL_FILES/"
  done
  xz -T0 -9 -c "$folder/tokenizer.json" >"$MODEL_FILES/tokenizer.json.xz"
  du -sh "$CARRY"
  echo "Carry $CARRY to the GPU machine (64 MiB at most with the repository), then: bash $0 run"
}

install_carried() {
  [ -d "$WHEELS" ] || { echo "no $WHEELS: run 'bash $0 fetch' where PyPI answers, and carry $CARRY" >&2; exit 2; }
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl
  export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  MODEL=/tmp/gemma-3-270m
  mkdir -p "$MODEL" && cp "$MODEL_FILES"/*.json "$MODEL_FILES"/*.jinja "$MODEL/"
  xz -dc "$MODEL_FILES/tokenizer.json.xz" >"$MODEL/tokenizer.json"
  # What the run needs, imported once: a missing package is named here, not minutes into a launch.
  python3 -c "import trl, datasets, accelerate, sqlsft.cli, sqlsft.train.worker, sqlsft.bench.train; print('imports ok')"
  python3 -m pip list 2>/dev/null | grep -iE '^(torch|transformers|trl|datasets|accelerate|liger.kernel|pyarrow|flash.attn|triton) ' || true
}

sqlsft() { python3 -m sqlsft "$@"; }

bench() {  # every preset, then fast's options one at a time
  sqlsft env --plain | tee "$RESULTS/env.txt"
  sqlsft bench train --model "$MODEL" --random-init --presets baseline,liger-slow,liger,fast --gpus 1 \
    --steps "$STEPS" --warmup-steps "$WARMUP" --num-rows "$NUM_ROWS" 2>&1 | tee "$RESULTS/bench.txt"
  copy_latest_bench main
}

variants() {
  sqlsft bench train --model "$MODEL" --random-init --presets fast --gpus 1 --steps "$STEPS" \
    --warmup-steps "$WARMUP" --num-rows "$NUM_ROWS" --set torch_compile=true 2>&1 | tee "$RESULTS/bench-compile.txt"
  copy_latest_bench compile
  if python3 -c "import flash_attn" 2>/dev/null; then
    sqlsft bench train --model "$MODEL" --random-init --presets fast --gpus 1 --steps "$STEPS" \
      --warmup-steps "$WARMUP" --num-rows "$NUM_ROWS" --set attn_implementation=flash_attention_2 2>&1 |
      tee "$RESULTS/bench-flash.txt"
    copy_latest_bench flash
  else
    echo "flash-attn is not installed: fast with flash_attention_2 not measured" | tee "$RESULTS/bench-flash.txt"
  fi
}

train20() {  # the workshop's liger preset must train and save on one GPU (random-init weights from `bench`)
  local weights
  weights=$(ls -d "${SQLSFT_CACHE_DIR:-$HOME/.cache/sqlsft}"/random-init/*/ 2>/dev/null | head -1)
  [ -n "$weights" ] || weights=$MODEL  # no bench ran: the hub is unreachable, so this fails and says so
  sqlsft train --preset liger --gpus 1 --model "$weights" --max-steps 20 --run-name gpu-liger-20 2>&1 |
    tee "$RESULTS/train-liger-20.txt"
  test -f runs/gpu-liger-20/model/config.json && echo "saved runs/gpu-liger-20/model" | tee -a "$RESULTS/train-liger-20.txt"
  cp runs/gpu-liger-20/metrics.jsonl "$RESULTS/train-liger-20-metrics.jsonl" 2>/dev/null || true
}

copy_latest_bench() {
  local latest
  latest=$(ls -d runs/bench/*-train 2>/dev/null | tail -1)
  [ -n "$latest" ] || return 0
  for f in bench.json bench.csv bench.png; do cp "$latest/$f" "$RESULTS/$1-$f" 2>/dev/null || true; done
}

case "${1:-}" in
  fetch) fetch ;;
  run)
    RESULTS=${OUT:-runs/gpu-bench}
    mkdir -p "$RESULTS"
    install_carried
    case "${2:-all}" in
      bench) bench ;;
      variants) variants ;;
      train) train20 ;;
      all) bench; variants; train20 ;;
      *) echo "unknown phase ${2}: bench, variants, train or all" >&2; exit 2 ;;
    esac
    echo "results in $RESULTS" ;;
  *) sed -n 2,17p "$0"; exit 2 ;;
esac
