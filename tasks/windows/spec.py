"""What a window file holds: the protocol, feature and split vocabularies and ``WindowSpec``."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from storage.errors import BadInputError
from storage.schema import parse_choice
from storage.windows.format import SPLIT_CODES, Layout
from tasks.scaling import ScalerKind


class Protocol(StrEnum):
    """How windows are cut, scaled and split."""

    SEED = "seed"
    HONEST = "honest"


class Feature(StrEnum):
    """Columns a window can carry (candle schema names, plus derived log returns)."""

    OPEN = "open"
    HIGH = "high"
    LOW = "low"
    CLOSE = "close"
    VOLUME_BASE = "volume_base"
    VOLUME_QUOTE = "volume_quote"
    TRADE_COUNT = "trade_count"
    LOG_RETURN = "log_return"  # log(close_t / close_{t-1}); needs the previous candle


class FoldMode(StrEnum):
    """How walk-forward folds grow: training from the first candle, or a window that slides."""

    EXPANDING = "expanding"
    SLIDING = "sliding"


DEFAULT_SPLITS: dict[Protocol, tuple[float, ...]] = {
    Protocol.SEED: (0.8, 0.2),
    Protocol.HONEST: (0.7, 0.15, 0.15),
}


def parse_features(features: list[str] | tuple[str, ...] | str) -> tuple[Feature, ...]:
    """Feature names (list or comma text) -> unique ``Feature`` tuple, else ``BadInputError``."""
    names = features.split(",") if isinstance(features, str) else list(features)
    names = [str(n).strip().lower() for n in names if str(n).strip()]
    if not names:
        raise BadInputError("features: at least one feature is needed, e.g. close")
    out: list[Feature] = []
    for name in names:
        try:
            feat = parse_choice(Feature, name, "feature")
        except ValueError as exc:
            raise BadInputError(f"features: {exc}") from None
        if feat in out:
            raise BadInputError(f"features: {name!r} is listed twice")
        out.append(feat)
    return tuple(out)


@dataclass(frozen=True)
class WindowSpec:
    """What a window file holds; checked on construction (``BadInputError`` names the parameter)."""

    protocol: Protocol = Protocol.HONEST
    past: int = 256
    future: int = 16
    stride: int | None = None  # None: seed non-sliding (past+future), honest 1
    features: tuple[Feature, ...] = (Feature.CLOSE,)
    scaler: ScalerKind = ScalerKind.MINMAX
    splits: tuple[float, ...] | None = None  # None: the protocol's default
    layout: Layout = Layout.FULL
    drop_gaps: bool | None = None  # None: honest drops windows that span gaps, seed keeps them
    folds: int = 1  # walk-forward folds (honest); 1: one chronological split
    fold: int = 0  # which fold this file holds, 0 = oldest
    fold_mode: FoldMode = FoldMode.EXPANDING

    def __post_init__(self) -> None:
        try:
            self._validate()
        except BadInputError:
            raise
        except ValueError as exc:  # a vocabulary's parser: protocol, scaler, layout
            raise BadInputError(str(exc)) from None

    def _validate(self) -> None:
        set_ = object.__setattr__
        set_(self, "protocol", parse_choice(Protocol, self.protocol, "protocol", fold="lower"))
        for name in ("past", "future"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
                raise BadInputError(f"{name} must be a positive integer, got {value!r}")
            set_(self, name, int(value))
        set_(self, "features", parse_features(self.features))
        set_(self, "scaler", ScalerKind.parse(self.scaler))
        set_(self, "layout", Layout(self.layout))
        set_(self, "stride", self._check_stride(self.stride))
        set_(self, "splits", self._check_splits(self.splits))
        if self.drop_gaps is None:
            set_(self, "drop_gaps", self.protocol is Protocol.HONEST)
        elif self.protocol is Protocol.SEED and self.drop_gaps:
            raise BadInputError("drop_gaps: the seed protocol ignores gaps, as the tutorial did")
        set_(self, "drop_gaps", bool(self.drop_gaps))
        if self.protocol is Protocol.SEED and self.scaler is not ScalerKind.MINMAX:
            raise BadInputError("scaler: the seed protocol reproduces the tutorial's MinMax scaler")
        self._check_folds()
        if self.scaler is ScalerKind.WINDOW and Feature.CLOSE not in self.features:
            raise BadInputError(
                "scaler: window divides each window by its last input close; add close to "
                "features"
            )

    def _check_folds(self) -> None:
        set_ = object.__setattr__
        for name in ("folds", "fold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise BadInputError(f"{name} must be an integer, got {value!r}")
            set_(self, name, int(value))
        if self.folds < 1:
            raise BadInputError(f"folds must be at least 1, got {self.folds}")
        if not 0 <= self.fold < self.folds:
            raise BadInputError(f"fold must be in 0..{self.folds - 1}, got {self.fold}")
        set_(self, "fold_mode", parse_choice(FoldMode, self.fold_mode, "fold_mode", fold="lower"))
        if self.folds > 1 and self.protocol is Protocol.SEED:
            raise BadInputError("folds: the seed protocol reproduces the tutorial's single split")

    @property
    def window_length(self) -> int:
        """Candles per window, past + future."""
        return self.past + self.future

    def _check_stride(self, stride: int | None) -> int:
        m = self.past + self.future
        if stride is None:
            return m if self.protocol is Protocol.SEED else 1
        if isinstance(stride, bool) or not isinstance(stride, int | np.integer) or stride <= 0:
            raise BadInputError(f"stride must be a positive integer, got {stride!r}")
        if self.protocol is Protocol.SEED and stride not in (1, m):
            raise BadInputError(
                f"stride: the seed protocol has the tutorial's two modes only, 1 (sliding) or "
                f"past+future={m} (non-overlapping), got {stride}"
            )
        return int(stride)

    def _check_splits(self, splits: Any) -> tuple[float, ...]:
        default = DEFAULT_SPLITS[self.protocol]
        if splits is None:
            return default
        try:
            values = tuple(float(s) for s in splits)
        except (TypeError, ValueError):
            raise BadInputError(f"splits must be a list of fractions, got {splits!r}") from None
        if len(values) != len(default):
            names = "/".join(list(SPLIT_CODES)[: len(default)])
            raise BadInputError(
                f"splits: the {self.protocol.value} protocol takes {len(default)} fractions "
                f"({names}), got {len(values)}"
            )
        if any(not math.isfinite(v) or v <= 0 for v in values) or sum(values) > 1 + 1e-9:
            raise BadInputError(f"splits: fractions must be > 0 and sum to at most 1, got {values}")
        if self.protocol is Protocol.SEED and abs(sum(values) - 1) > 1e-9:
            raise BadInputError(
                f"splits: seed train/validation fractions must sum to 1, got {values}"
            )
        return values

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able description (goes into the dataset id and the file's attributes)."""
        d = asdict(self)
        d["protocol"] = self.protocol.value
        d["features"] = [f.value for f in self.features]
        d["scaler"] = self.scaler.value
        d["layout"] = self.layout.value
        d["splits"] = list(self.splits)
        d["fold_mode"] = self.fold_mode.value
        if self.folds == 1:  # a single split: the spec (and dataset id) of before folds existed
            for key in ("folds", "fold", "fold_mode"):
                del d[key]
        return d


def target_index(features: tuple[Feature, ...]) -> int:
    """Index of the forecast target: ``close`` if present, else ``log_return``, else 0."""
    for target in (Feature.CLOSE, Feature.LOG_RETURN):
        if target in features:
            return features.index(target)
    return 0
