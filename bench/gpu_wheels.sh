#!/usr/bin/env bash
# Download what bench/gpu.sh needs beyond the GPU host's own packages into bench/wheels/
# (git-ignored): Keras and its two pure additions, namex and optree (a manylinux x86_64 wheel
# for CPython 3.12, the host's python3). The host already has JAX (CUDA 13), h5py, numpy,
# pandas, absl-py, rich, ml-dtypes and packaging. Run here, with network, before the host:
#
#   bash bench/gpu_wheels.sh            # then carry bench/wheels to the host with the code
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="${PIP:-python3 -m pip}"
KERAS="${KERAS_VERSION:-3.15.1}"
NAMEX="${NAMEX_VERSION:-0.1.0}"
OPTREE="${OPTREE_VERSION:-0.20.0}"
mkdir -p bench/wheels
rm -f bench/wheels/*.whl
common=(download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp
        -d bench/wheels)
$PIP "${common[@]}" "keras==$KERAS" "namex==$NAMEX"
$PIP "${common[@]}" --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 "optree==$OPTREE"
ls -l bench/wheels
du -sh bench/wheels
