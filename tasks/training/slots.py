"""Where worker processes run: GPU detection, usable cores, and the slots of a training request."""

from __future__ import annotations

import os
from dataclasses import dataclass

from storage.errors import BadInputError

#: The ``--devices`` default: every GPU ``nvidia-smi`` lists, else the CPU.
DEFAULT_DEVICES = "auto"


@dataclass(frozen=True)
class Slot:
    """Where one worker process runs: visible GPUs ("" = CPU only) and its thread count."""

    name: str
    devices: str
    threads: int | None
    gpu: bool


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


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def plan_slots(devices: str, parallel: int | None, cores: int, gpus: list[str],
               jobs: int | None = None) -> list[Slot]:
    """Worker slots for ``devices`` = ``auto`` | ``cpu`` | ``gpu:0,1``.

    GPUs: one slot per GPU (one model per GPU at a time), at most ``parallel``. CPU:
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
        if parallel is not None:
            ids = ids[: max(1, parallel)]
        if jobs:
            ids = ids[: max(1, jobs)]
        threads = max(1, cores // len(ids))
        return [Slot(f"gpu-{d}", d, threads, True) for d in ids]
    raise BadInputError(f"bad --devices {devices!r}: use auto, cpu or gpu:0,1")


def parallel_note(parallel: int | None, cores: int, slots: list[Slot]) -> str | None:
    """The warning for a CPU request of more models at once than there are cores (clamped)."""
    if slots and not slots[0].gpu and parallel is not None and parallel > cores:
        return (f"parallel {parallel} exceeds the {cores} CPU core(s) this process may use: "
                f"training at most {cores} at once")
    return None
