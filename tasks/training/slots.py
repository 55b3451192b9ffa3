"""Where worker processes run: GPU detection, usable cores, and the slots of a training request.

Several models per GPU (``models_per_gpu``): the zoo's models are tiny (8-filter CNNs, 50-unit
LSTM/GRU), so one process per GPU leaves it idle. Each GPU then holds ``models_per_gpu`` slots,
each process capped at ``1 / models_per_gpu`` of the GPU's memory; the default comes from the
GPU's free memory and :data:`MODEL_FOOTPRINT_MB`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from storage.errors import BadInputError

#: The ``--devices`` default: every GPU ``nvidia-smi`` lists, else the CPU.
DEFAULT_DEVICES = "auto"
#: GPU memory one training process needs (MiB): the CUDA context, cuDNN/cuBLAS workspaces and
#: the allocator's pool for a zoo model at batch 8-64 (weights and activations are a few MiB).
#: An upper estimate until bench/gpu.sh measures it on the GPU host (it prints the peak).
MODEL_FOOTPRINT_MB = 2048
#: The default never puts more than this many models on one GPU (each also needs a CPU core
#: to drive it).
MAX_DEFAULT_MODELS_PER_GPU = 8


@dataclass(frozen=True)
class Slot:
    """Where one worker process runs: visible GPUs ("" = CPU only) and its thread count."""

    name: str
    devices: str
    threads: int | None
    gpu: bool
    memory_fraction: float | None = None  # GPU memory cap of its process (several per GPU)


def detect_gpus() -> list[str]:
    """GPU indices listed by ``nvidia-smi -L`` (empty without NVIDIA GPUs); no TF import."""
    import shutil
    import subprocess

    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]


def gpu_free_memory_mb() -> dict[str, int]:
    """GPU index -> free memory in MiB as ``nvidia-smi`` reports it (empty without GPUs)."""
    import shutil
    import subprocess

    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {}
    try:
        out = subprocess.run([exe, "--query-gpu=index,memory.free", "--format=csv,noheader,"
                              "nounits"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return {}
    free: dict[str, int] = {}
    for line in out.stdout.splitlines():
        index, _, mb = line.partition(",")
        if index.strip().isdigit() and mb.strip().isdigit():
            free[index.strip()] = int(mb.strip())
    return free


def default_models_per_gpu(free_mb: int | None, cores_per_gpu: int,
                           footprint_mb: int = MODEL_FOOTPRINT_MB) -> int:
    """Models per GPU that fit its free memory (unknown: 1), at most one per CPU core given to
    that GPU and at most :data:`MAX_DEFAULT_MODELS_PER_GPU`; at least 1."""
    if not free_mb:
        return 1
    return max(1, min(free_mb // footprint_mb, max(1, cores_per_gpu),
                      MAX_DEFAULT_MODELS_PER_GPU))


def check_models_per_gpu(models_per_gpu: int, free_mb: dict[str, int], ids: list[str],
                         footprint_mb: int = MODEL_FOOTPRINT_MB) -> int:
    """``models_per_gpu`` if >= 1 and, where free memory is known, within it (BadInputError)."""
    if isinstance(models_per_gpu, bool) or int(models_per_gpu) != models_per_gpu \
            or models_per_gpu < 1:
        raise BadInputError(f"models_per_gpu must be a whole number >= 1, got {models_per_gpu!r}")
    for d in ids:
        have = free_mb.get(d)
        if have is not None and models_per_gpu * footprint_mb > have:
            raise BadInputError(
                f"models_per_gpu {models_per_gpu} needs about {models_per_gpu * footprint_mb} "
                f"MiB on GPU {d} ({footprint_mb} MiB per model), which has {have} MiB free: "
                f"use at most {max(1, have // footprint_mb)}"
            )
    return int(models_per_gpu)


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def plan_slots(devices: str, parallel: int | None, cores: int, gpus: list[str],
               jobs: int | None = None, models_per_gpu: int | None = None,
               free_mb: dict[str, int] | None = None) -> list[Slot]:
    """Worker slots for ``devices`` = ``auto`` | ``cpu`` | ``gpu:0,1``.

    GPUs: ``models_per_gpu`` slots per GPU (None: :func:`default_models_per_gpu` from
    ``free_mb``, GPU index -> free MiB; unknown: 1), interleaved across the GPUs, each capped at
    ``1 / models_per_gpu`` of its GPU's memory when more than one; with one per GPU, at most
    ``parallel`` GPUs (when given). CPU:
    ``parallel`` slots sharing the cores, ``cores // n`` threads each, but never more slots than
    cores (see :func:`parallel_note`). Never more slots than ``jobs`` (when given), so the
    slots are the devices a request really uses.
    """
    text = (devices or DEFAULT_DEVICES).strip().lower()
    if parallel is not None and parallel < 1:
        raise BadInputError(f"--parallel must be >= 1, got {parallel}")
    if text == DEFAULT_DEVICES:
        text = "gpu:" + ",".join(gpus) if gpus else "cpu"
    if text == "cpu":
        n = max(1, min(parallel or 1, cores, jobs or cores))
        threads = max(1, cores // n)
        return [Slot(f"cpu-{i}", "", threads, False) for i in range(n)]
    if text.startswith("gpu:") or text.startswith("gpu"):
        ids = [d.strip() for d in text.partition(":")[2].split(",") if d.strip()] or gpus
        if not ids or any(not d.isdigit() for d in ids):
            raise BadInputError(f"bad --devices {devices!r}: use auto, cpu or gpu:0,1")
        if not gpus:
            raise BadInputError(f"--devices {devices}: no GPU found (nvidia-smi lists none)")
        missing = [d for d in ids if d not in gpus]
        if missing:
            raise BadInputError(
                f"GPU(s) {', '.join(missing)} not found (have {', '.join(gpus)})"
            )
        ids = list(dict.fromkeys(ids))
        free_mb = free_mb or {}
        if models_per_gpu is None:
            known = [free_mb[d] for d in ids if d in free_mb]
            per = default_models_per_gpu(min(known) if known else None, cores // len(ids))
        else:
            per = check_models_per_gpu(models_per_gpu, free_mb, ids)
        fraction = None if per == 1 else round(1.0 / per, 4)
        slots = [Slot(f"gpu-{d}" if per == 1 else f"gpu-{d}-{k}", d, None, True, fraction)
                 for k in range(per) for d in ids]
        if parallel is not None and per == 1:
            slots = slots[: max(1, parallel)]
        if jobs:
            slots = slots[: max(1, jobs)]
        threads = max(1, cores // len(slots))
        return [Slot(s.name, s.devices, threads, True, s.memory_fraction) for s in slots]
    raise BadInputError(f"bad --devices {devices!r}: use auto, cpu or gpu:0,1")


def parallel_note(parallel: int | None, cores: int, slots: list[Slot]) -> str | None:
    """The warning for a CPU request of more models at once than there are cores (clamped)."""
    if slots and not slots[0].gpu and parallel is not None and parallel > cores:
        return (f"parallel {parallel} exceeds the {cores} CPU core(s) this process may use: "
                f"training at most {cores} at once")
    return None
