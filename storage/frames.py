"""Typed frames of the Parquet stores: cast a frame to a store's column dtypes, and turn it into
an Arrow table of the store's schema (the forecast and score stores share both)."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import pyarrow as pa

from storage.errors import BadInputError


def cast_frame(df: pd.DataFrame, dtypes: Mapping[str, str], what: str) -> pd.DataFrame:
    """``df``'s columns named in ``dtypes``, in order, with those dtypes (``datetime64[…, UTC]``
    via ``to_datetime``); ``BadInputError`` naming the ``what`` rows' missing columns."""
    missing = [c for c in dtypes if c not in df.columns]
    if missing:
        raise BadInputError(f"{what} rows lack columns {missing}")
    out = pd.DataFrame(index=pd.RangeIndex(len(df)))
    for col, dtype in dtypes.items():
        values = df[col].reset_index(drop=True)
        if dtype.startswith("datetime64"):
            out[col] = pd.to_datetime(values, utc=True).astype(dtype)
        elif dtype == "object":
            out[col] = values.astype(object)
        else:
            out[col] = values.astype(dtype)
    return out


def arrow_table(df: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """The Arrow table of ``df``'s columns in ``schema``, typed by it."""
    arrays = [pa.Array.from_pandas(df[f.name], type=f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)
