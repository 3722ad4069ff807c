#!/usr/bin/env bash
# The throughput table on a lent GPU machine, in one call (how long it took on an H100: benchmarks/README.md):
#
#   bash benchmarks/gpu_check.sh [extra benchmark flags]   # from the repository root; results in $OUT
#
# The GPU image has JAX, flax, optax, orbax, matplotlib and pillow but not ml_collections, which the experiment
# configs need: it is installed from the wheels in .whl/ (carry `.whl` with the call) when it is missing.  The
# Fashion-MNIST IDX files are read from $DATA_DIR (default data/fashion-mnist: carry it).  Writes $OUT/gpu_all.json
# (the machine, versions and one record per config), $OUT/gpu_table.md, $OUT/gpu_log.txt and $OUT/environment.txt.
set -euo pipefail
OUT="${OUT:-gpu_out}"
mkdir -p "$OUT"
PYTHON="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1

if ! "$PYTHON" -c "import ml_collections" 2>/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/ml_collections-*.whl
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  "$PYTHON" -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())"
} > "$OUT/environment.txt" 2>&1
cat "$OUT/environment.txt"

# Every Fashion-MNIST config as its training loop runs it, against the per-step baseline, with the PyTorch peers
# where PyTorch is installed.
"$PYTHON" -m benchmarks.throughput --config experiments/configs/*_fashion_mnist.py \
  --config.data_dir="${DATA_DIR:-data/fashion-mnist}" --baseline --repeats 5 --json "$OUT/gpu_all.json" \
  --markdown "$OUT/gpu_table.md" "$@" 2>&1 | tee "$OUT/gpu_log.txt"
