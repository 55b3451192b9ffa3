"""The flows' parameter types: one typed, constrained, described type per kind of value.

Every flow annotates the same kind of value with the same type, so every deployment's Custom
run form in the Prefect UI and every generated CLI option (``cryptoflow/options.py``) refuses a
bad value the same way, naming the parameter. Defaults shared by several flows live here too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field

from storage.runs import validate_name
from storage.schema import Interval, from_epoch_ms, to_epoch_ms, validate_symbol
from storage.windows.format import Layout
from tasks.scaling import ScalerKind
from tasks.training.backends import BACKENDS
from tasks.training.checkpoints import CheckpointMode
from tasks.training.loop import DEFAULT_SEED, TUTORIAL_BATCH_SIZE, TUTORIAL_EPOCHS
from tasks.training.slots import DEFAULT_DEVICES
from tasks.windows.spec import Feature, FoldMode, Protocol
from tasks.zoo import MODEL_NAMES, ModelName
from tasks.zoo.recurrent import RegularizerKind, RegularizerTarget

#: Training defaults of every flow, sized for a 2-core CPU: at most 20 epochs with early
#: stopping, batch 64, two models at once (on GPUs one per GPU). ``--tutorial`` restores the
#: tutorial's 100 epochs, batch 8, no early stopping.
DEFAULT_SYMBOL = "BTC_USDT"
DEFAULT_INTERVAL = Interval.MINUTE_5
#: The tutorial's window: 256 past candles predicting the next 16.
DEFAULT_PAST = 256
DEFAULT_FUTURE = 16
DEFAULT_PROTOCOL = Protocol.HONEST
DEFAULT_SCALER = ScalerKind.MINMAX
DEFAULT_LAYOUT = Layout.FULL
#: Walk-forward: 1 fold = one chronological train/validation/test split.
DEFAULT_FOLDS = 1
DEFAULT_FOLD_MODE = FoldMode.EXPANDING
DEFAULT_EPOCHS = 20
DEFAULT_BATCH_SIZE = 64
DEFAULT_PATIENCE = 3
DEFAULT_PARALLEL = 2
DEFAULT_MODELS: list[ModelName] = list(ModelName)
DEFAULT_CHECKPOINTS = CheckpointMode.EVERY
#: The tutorial's regularization sweep: 30 repeats of 30 epochs of the LSTM (LeakyReLU head).
DEFAULT_SWEEP_MODEL = ModelName("lstm_tanh_leaky")
TUTORIAL_SWEEP_REPEATS = 30
TUTORIAL_SWEEP_EPOCHS = 30
TUTORIAL_TRAINING: dict[str, Any] = {
    "epochs": TUTORIAL_EPOCHS, "batch_size": TUTORIAL_BATCH_SIZE, "patience": None,
}
__all__ = ["DEFAULT_DEVICES", "DEFAULT_SEED", "TUTORIAL_BATCH_SIZE", "TUTORIAL_EPOCHS"]
DEFAULT_TASK_RUNNER = "process"


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


def optional(kind: Any) -> Any:
    """``kind`` or None; an empty or ``none`` text (the CLI's way to say None) is None."""
    return Annotated[kind | None, BeforeValidator(_optional)]


#: BASE_QUOTE of ASCII letters and digits (refused before any case folding), upper-cased;
#: the pattern is what the UI's form checks, the validator (run first) what names the problem.
#: A constraint must come before a BeforeValidator to reach the JSON schema (the form).
Symbol = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9]{1,16}_[A-Za-z0-9]{1,16}$"), BeforeValidator(validate_symbol)
]
Symbols = Annotated[list[Symbol], Field(min_length=1, max_length=64)]
IntervalName = Annotated[Interval, BeforeValidator(_fold_upper)]
#: A list of intervals (a market is a symbol at an interval): at most the intervals there are.
Intervals = Annotated[list[IntervalName], Field(min_length=1, max_length=len(Interval))]
#: Markets (symbols x intervals) one pipeline or forecast run works on: each trains a zoo, so
#: a cap keeps a typo in a list from queueing days of training.
MAX_MARKETS = 32
ProtocolName = Annotated[Protocol, BeforeValidator(_fold_lower)]
ScalerName = Annotated[ScalerKind, BeforeValidator(_fold_lower)]
FeatureName = Annotated[Feature, BeforeValidator(_fold_lower)]
Features = optional(Annotated[list[FeatureName], Field(min_length=1)])
LayoutName = Annotated[Layout, BeforeValidator(_fold_lower)]
Splits = optional(
    Annotated[list[Annotated[float, Field(gt=0, lt=1)]], Field(min_length=2, max_length=3)]
)
RecurrentModel = Annotated[ModelName, BeforeValidator(_fold_lower)]
Targets = optional(
    Annotated[list[Annotated[RegularizerTarget, BeforeValidator(_fold_lower)]], Field(min_length=1)]
)
Kinds = optional(
    Annotated[list[Annotated[RegularizerKind, BeforeValidator(_fold_lower)]], Field(min_length=1)]
)
Strengths = optional(Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=1)])
Models = Annotated[list[ModelName], BeforeValidator(_models), Field(min_length=1)]
Past = Annotated[int, Field(ge=1, le=10_000)]
Future = Annotated[int, Field(ge=1, le=1_000)]
Stride = optional(Annotated[int, Field(ge=1)])
Folds = Annotated[int, Field(ge=1, le=100)]
Fold = Annotated[int, Field(ge=0, le=99)]
FoldModeName = Annotated[FoldMode, BeforeValidator(_fold_lower)]
Epochs = Annotated[int, Field(ge=1, le=10_000)]
BatchSize = Annotated[int, Field(ge=1, le=65_536)]
Parallel = optional(Annotated[int, Field(ge=1, le=64)])
Patience = optional(Annotated[int, Field(ge=1, le=10_000)])
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
Repeats = Annotated[int, Field(ge=1, le=1_000)]
Devices = Annotated[
    str, Field(pattern=r"^(auto|cpu|gpu(:\d+(,\d+)*)?)$"), BeforeValidator(_fold_lower)
]
Checkpoints = Annotated[CheckpointMode, BeforeValidator(_fold_lower)]
#: The Keras backend of the training processes; empty: $CRYPTOFLOW_BACKEND, else
#: $KERAS_BACKEND, else tensorflow (tasks.training.backends).
Backend = optional(Annotated[Literal[BACKENDS], BeforeValidator(_fold_lower)])
#: Models trained at once on each GPU; empty: from its free memory (tasks.training.slots).
ModelsPerGpu = optional(Annotated[int, Field(ge=1, le=64)])
#: Where the zoo trains: one local process per model, or a Dask cluster (flows.runners).
TaskRunner = Annotated[Literal["process", "dask"], BeforeValidator(_fold_lower)]
RunName = Annotated[str, AfterValidator(lambda v: validate_name(v, "run id"))]
RunId = optional(RunName)
RunNames = Annotated[list[RunName], Field(min_length=1, max_length=100)]


def _when(value: Any) -> Any:
    """Any date/time the one epoch-ms parser reads (``"2017"`` is a year, an int is ms) ->
    a UTC datetime; empty/``none`` -> None."""
    value = _optional(value)
    return None if value is None else from_epoch_ms(to_epoch_ms(value)).to_pydatetime()


When = Annotated[datetime | None, BeforeValidator(_when)]
LookbackDays = Annotated[float, Field(gt=0, le=36_500)]
Retries = optional(Annotated[int, Field(ge=0, le=100)])
RetryDelays = optional(
    Annotated[list[Annotated[float, Field(ge=0, le=3_600)]], Field(min_length=1)]
)
RequestRate = optional(Annotated[float, Field(ge=0, le=10_000)])
Timeout = optional(Annotated[float, Field(gt=0, le=600)])
InFlight = optional(Annotated[int, Field(ge=1, le=16)])
DataDir = optional(Annotated[str, Field(max_length=4096)])
BaseUrl = optional(Annotated[str, Field(pattern=r"^https?://[^\s/]+(/\S*)?$")])
Dataset = optional(Annotated[str, Field(max_length=4096)])
DaskAddress = optional(Annotated[str, Field(max_length=512)])


def market_list(symbols: list[str], intervals: list[Any]) -> list[tuple[str, str]]:
    """The markets of a run, ``(symbol, interval name)`` for every symbol at every interval, in
    the order given, duplicates dropped; ``BadInputError`` naming ``symbols``/``intervals`` when
    there are more than :data:`MAX_MARKETS` or an interval has no fixed length (before anything
    is fetched or written)."""
    from storage.errors import BadInputError

    names = []
    for i in intervals:
        iv = Interval.parse(i)
        try:
            iv.ms  # noqa: B018 - raises for MONTH_1, which has no fixed length
        except ValueError as exc:
            raise BadInputError(f"intervals: {exc}") from None
        names.append(iv.value)
    out = list(dict.fromkeys((s, i) for s in symbols for i in names))
    if len(out) > MAX_MARKETS:
        raise BadInputError(
            f"symbols x intervals names {len(out)} markets; at most {MAX_MARKETS} per run "
            "(split them over several runs or deployments)"
        )
    return out


def market_label(symbol: str, interval: str) -> str:
    """How a market is named in logs, artifacts and result keys: ``BTC_USDT MINUTE_5``."""
    return f"{symbol} {interval}"
