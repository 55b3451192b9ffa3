"""The flows' parameter types: one typed, constrained, described type per kind of value.

Every flow annotates the same kind of value with the same type, so every deployment's Custom
run form in the Prefect UI and every generated CLI option (``cryptoflow/options.py``) refuses a
bad value the same way, naming the parameter. Defaults shared by several flows live here too.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from storage.runs import validate_name
from storage.schema import Interval, validate_symbol
from tasks.scaling import ScalerKind
from tasks.training import CheckpointMode
from tasks.windows import Feature, Protocol
from tasks.zoo import MODEL_NAMES, ModelName

#: Training defaults sized for a 2-core CPU (the tutorial's: 100 epochs, batch 8, no patience).
DEFAULT_EPOCHS = 20
DEFAULT_BATCH_SIZE = 64
DEFAULT_PATIENCE = 3
DEFAULT_PARALLEL = 2
TUTORIAL_TRAINING: dict[str, Any] = {"epochs": 100, "batch_size": 8, "patience": None}


class RunnerKind(StrEnum):
    """Where the zoo's training tasks run."""

    PROCESS = "process"
    DASK = "dask"


def _fold_upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


def _fold_lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _models(value: Any) -> Any:
    """``"all"``, a comma list, or a list (whose items may be comma lists) -> model names."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        return value
    names: list[Any] = []
    for item in items:
        if isinstance(item, str):
            parts = [p.strip().lower() for p in item.split(",") if p.strip()]
            names.extend(MODEL_NAMES if parts == ["all"] else parts)
        else:
            names.append(item)
    return list(dict.fromkeys(names))


def _optional(value: Any) -> Any:
    """An empty or ``none`` text means "not set" (the CLI's way to say ``None``)."""
    return None if isinstance(value, str) and value.strip().lower() in ("", "none") else value


_DEVICES = re.compile(r"^(auto|cpu|gpu(:\d+(,\d+)*)?)$")


def _devices(value: str) -> str:
    text = value.strip().lower()
    if not _DEVICES.fullmatch(text):
        raise ValueError(f"devices must be auto, cpu or gpu:0,1,..., got {value!r}")
    return text


def _url(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
        raise ValueError(f"expected an http(s) URL, got {value!r}")
    return value


#: ASCII letters and digits only (refused before any case folding), then upper-cased.
Symbol = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9]{1,16}_[A-Za-z0-9]{1,16}$"), AfterValidator(validate_symbol)
]
Symbols = Annotated[list[Symbol], Field(min_length=1, max_length=64)]
IntervalName = Annotated[Interval, BeforeValidator(_fold_upper)]
ProtocolName = Annotated[Protocol, BeforeValidator(_fold_lower)]
ScalerName = Annotated[ScalerKind, BeforeValidator(_fold_lower)]
FeatureName = Annotated[Feature, BeforeValidator(_fold_lower)]
Models = Annotated[list[ModelName], BeforeValidator(_models), Field(min_length=1)]
Past = Annotated[int, Field(ge=1, le=10_000)]
Future = Annotated[int, Field(ge=1, le=1_000)]
Stride = Annotated[int | None, BeforeValidator(_optional), Field(ge=1)]
Epochs = Annotated[int, Field(ge=1, le=10_000)]
BatchSize = Annotated[int, Field(ge=1, le=65_536)]
Parallel = Annotated[int | None, BeforeValidator(_optional), Field(ge=1, le=64)]
Patience = Annotated[int | None, BeforeValidator(_optional), Field(ge=1, le=10_000)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
Repeats = Annotated[int, Field(ge=1, le=1_000)]
Devices = Annotated[str, AfterValidator(_devices)]
Checkpoints = Annotated[CheckpointMode, BeforeValidator(_fold_lower)]
TaskRunner = Annotated[RunnerKind, BeforeValidator(_fold_lower)]
RunId = Annotated[str | None, BeforeValidator(_optional),
                  AfterValidator(lambda v: v if v is None else validate_name(v, "run id"))]
DataDir = Annotated[str | None, BeforeValidator(_optional), Field(max_length=4096)]
BaseUrl = Annotated[str | None, BeforeValidator(_optional), AfterValidator(_url)]
DaskAddress = Annotated[str | None, BeforeValidator(_optional), Field(max_length=512)]
