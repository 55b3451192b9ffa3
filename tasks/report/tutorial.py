"""The tutorial's published results, the yardstick the comparison page sets our runs against."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TutorialResult:
    """One row of the tutorial's published table (validation loss scaled; "test" MSE in USD²)."""

    model: str
    family: str
    layers: int | None
    activation: str
    val_loss: float | None
    test_mse: float


#: The tutorial's published results ("Predicting Cryptocurrency Price With Tensorflow and Keras",
#: Steeve Huang, 2018; code github.com/khuangaf/CryptocurrencyPrediction). The one place these
#: numbers live in code; docs/tutorial-results.md shows the same table (a test keeps them equal).
TUTORIAL_RESULTS: tuple[TutorialResult, ...] = (
    TutorialResult("cnn2_relu", "CNN", 2, "ReLU", 0.00029, 114308),
    TutorialResult("cnn2_leaky", "CNN", 2, "Leaky ReLU", 0.00029, 115525),
    TutorialResult("cnn3_relu", "CNN", 3, "ReLU", 0.00029, 201718),
    TutorialResult("cnn3_leaky", "CNN", 3, "Leaky ReLU", 0.00028, 108700),
    TutorialResult("cnn4_relu", "CNN", 4, "ReLU", 0.00030, 117947),
    TutorialResult("cnn4_leaky", "CNN", 4, "Leaky ReLU", 0.03217, 12356304),
    TutorialResult("lstm_tanh_relu", "LSTM", 1, "tanh + ReLU", 0.00007, 26649),
    TutorialResult("lstm_tanh_leaky", "LSTM", 1, "tanh + Leaky ReLU", 0.00004, 15364),
    TutorialResult("gru_tanh_relu", "GRU", 1, "tanh + ReLU", 0.00004, 17667),
    TutorialResult("gru_tanh_leaky", "GRU", 1, "tanh + Leaky ReLU", 0.00004, 15474),
    TutorialResult("lag", "baseline", None, "-", None, 19122),
    TutorialResult("linear", "baseline", None, "-", None, 19789),
)
