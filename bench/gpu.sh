#!/usr/bin/env bash
# GPU figures on the offline GPU host (one H200, CUDA 13, JAX, PyTorch, h5py, numpy, pandas;
# no TensorFlow, Keras or Prefect, no package index). Needs only the host's python3 plus the
# wheels bench/gpu_wheels.sh downloaded beforehand into bench/wheels/ (keras, namex, optree;
# carry that folder with the code), and ../shared/data (or CRYPTO_SHARED_DATA). Imports no
# Prefect. Under ~8 minutes on one H200:
#   1. s/epoch of CNN-3, LSTM, GRU at the tutorial settings beside its 2 / 45 / 40 s;
#   2. the tutorial zoo (10 models x ZOO_EPOCHS=100, batch 8) at 1 vs PER_GPU models per GPU;
#   3. the honest stride-1 zoo (~280 k windows) with early stopping at PER_GPU per GPU.
#
#   bash bench/gpu.sh                       # or: PARTS=models,zoo ZOO_EPOCHS=20 bash bench/gpu.sh
#   device tool: run(command="bash bench/gpu.sh", carry=["bench/wheels"], timeout_s=600)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
EPOCHS="${EPOCHS:-5}"
ZOO_EPOCHS="${ZOO_EPOCHS:-100}"
PER_GPU="${PER_GPU:-8}"
PARTS="${PARTS:-models,zoo,honest}"
export KERAS_BACKEND="${KERAS_BACKEND:-jax}" CRYPTOFLOW_BACKEND="${KERAS_BACKEND:-jax}"
export TF_CPP_MIN_LOG_LEVEL=2 XLA_PYTHON_CLIENT_PREALLOCATE=false

if ! "$PY" -c "import keras" 2>/dev/null; then
  ls bench/wheels/*.whl >/dev/null 2>&1 \
    || { echo "no keras here and no bench/wheels/*.whl: run bench/gpu_wheels.sh first" >&2; exit 2; }
  SITE="${TMPDIR:-/tmp}/cryptoflow-wheels"
  rm -rf "$SITE" && mkdir -p "$SITE"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" \
      bench/wheels/*.whl
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,memory.free,driver_version --format=csv,noheader
"$PY" - <<'PY'
import os, sys
import keras
print("python", sys.version.split()[0], "keras", keras.__version__, "backend", keras.backend.backend())
if keras.backend.backend() == "jax":
    import jax
    print("jax", jax.__version__, "devices", jax.devices())
assert "prefect" not in sys.modules and "tensorflow" not in sys.modules
PY
"$PY" bench/gpu_train.py --backend "$KERAS_BACKEND" --parts "$PARTS" --epochs "$EPOCHS" \
    --zoo-epochs "$ZOO_EPOCHS" --per-gpu "1,$PER_GPU" 2>&1 | grep -v -E '^(I|W|E)0000|^WARNING: All log'
