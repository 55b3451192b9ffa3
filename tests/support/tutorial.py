"""Support: the tutorial's windowing, verbatim: the independent oracle of the seed protocol.

Kept apart from ``tasks/windows`` on purpose (the point is independence): the tests compare
``cryptoflow prepare --protocol seed`` with it bit for bit, and ``bench/windows.py`` times it as
the baseline. Do not "fix" it; it is the tutorial's code.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from sklearn.preprocessing import MinMaxScaler


# --- the tutorial, verbatim ("Predicting cryptocurrency price with TensorFlow and Keras") -------
class PastSampler:
    """
    Forms training samples for predicting future values from past value
    """

    def __init__(self, N, K, sliding_window=True):
        """
        Predict K future sample using N previous samples
        """
        self.K = K
        self.N = N
        self.sliding_window = sliding_window

    def transform(self, A):
        M = self.N + self.K  # Number of samples per row (sample + target)
        # indexes
        if self.sliding_window:
            I = np.arange(M) + np.arange(A.shape[0] - M + 1).reshape(-1, 1)  # noqa: E741
        else:
            if A.shape[0] % M == 0:
                I = np.arange(M) + np.arange(0, A.shape[0], M).reshape(-1, 1)  # noqa: E741
            else:
                I = np.arange(M) + np.arange(0, A.shape[0] - M, M).reshape(-1, 1)  # noqa: E741

        B = A[I].reshape(-1, M * A.shape[1], A.shape[2])
        ci = self.N * A.shape[1]  # Number of features per sample
        return B[:, :ci], B[:, ci:]  # Sample matrix, Target matrix


def tutorial_h5(df: pd.DataFrame, file_name: Path, NPS: int, NFS: int, sliding: bool) -> None:
    """The tutorial's preparation script on a frame with its column names (Close, Timestamp)."""
    columns = ["Close"]
    time_stamps = df["Timestamp"]
    original_df = df.loc[:, columns]
    df = df.loc[:, columns].copy()
    scaler = MinMaxScaler()
    # normalization
    for c in columns:
        df[c] = scaler.fit_transform(df[c].values.reshape(-1, 1))
    # Features are input sample dimensions(channels)
    A = np.array(df)[:, None, :]
    original_A = np.array(original_df)[:, None, :]
    time_stamps = np.array(time_stamps)[:, None, None]
    # Make samples of temporal sequences of pricing data (channel)
    ps = PastSampler(NPS, NFS, sliding_window=sliding)
    B, Y = ps.transform(A)
    input_times, output_times = ps.transform(time_stamps)
    original_B, original_Y = ps.transform(original_A)
    with h5py.File(file_name, "w") as f:
        f.create_dataset("inputs", data=B)
        f.create_dataset("outputs", data=Y)
        f.create_dataset("input_times", data=input_times)
        f.create_dataset("output_times", data=output_times)
        f.create_dataset("original_datas", data=np.array(original_df))
        f.create_dataset("original_inputs", data=original_B)
        f.create_dataset("original_outputs", data=original_Y)
