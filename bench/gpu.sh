#!/usr/bin/env bash
# GPU figures at the tutorial's settings (N=256 -> K=16, batch 8, non-overlapping windows of the
# 2015-2017 5-minute BTC series), next to the tutorial's reported 2 s (CNN), 45 s (LSTM) and
# 40 s (GRU) per epoch. Installs nothing: needs the project's .venv with tensorflow[and-cuda]
# (pip install -e '.[gpu]') and ../shared/data (or CRYPTO_SHARED_DATA). A few minutes on one
# H100/H200: 5 epochs of CNN-3, LSTM and GRU, baseline and ours, then the zoo for 2 epochs.
#
#   bash bench/gpu.sh            # or: EPOCHS=10 ZOO_EPOCHS=0 bash bench/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
EPOCHS="${EPOCHS:-5}"
ZOO_EPOCHS="${ZOO_EPOCHS:-2}"
export TF_CPP_MIN_LOG_LEVEL=2 PREFECT_LOGGING_LEVEL=WARNING PREFECT_SERVER_ANALYTICS_ENABLED=false
export PREFECT_HOME="${PREFECT_HOME:-$(mktemp -d)}"

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" - <<'PY'
import os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf
gpus = tf.config.list_physical_devices("GPU")
print("TensorFlow", tf.__version__, "GPUs:", [g.name for g in gpus])
if not gpus:
    raise SystemExit("no GPU visible to TensorFlow (is tensorflow[and-cuda] installed?)")
PY

echo "== seconds per epoch: tutorial-style fit vs train_model; last column = the tutorial's GPU"
"$PY" bench/train.py --gpu --models cnn3_leaky,lstm_tanh_leaky,gru_tanh_leaky \
    --epochs "$EPOCHS" --skip-zoo 2>&1 | grep -v -E '^(I|W|E)0000|^WARNING: All log'
if [ "$ZOO_EPOCHS" -gt 0 ]; then
    echo "== whole zoo on gpu:0 (one model at a time on the GPU), ${ZOO_EPOCHS} epochs"
    "$PY" bench/train.py --gpu --skip-models --zoo-epochs "$ZOO_EPOCHS" 2>&1 \
        | grep -v -E '^(I|W|E)0000|^WARNING: All log'
fi
