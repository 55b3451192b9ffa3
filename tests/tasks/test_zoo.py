"""The model zoo: every registry key builds, predicts the right shape and trains on real windows;
the layers and parameter counts are the tutorial's listings."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.zoo import (
    BASELINE_NAMES,
    MODEL_NAMES,
    REGISTRY,
    CNNSpec,
    Family,
    RecurrentSpec,
    Regularizer,
    build_model,
    compile_model,
    entry,
    model_targets,
    output_shape,
    parse_models,
    spec_from_dict,
    spec_to_dict,
)
from tasks.zoo.cnn import conv_length, conv_plan
from tests.support.windows import write_real_windows

PAST, FUTURE = 64, 4


@pytest.fixture(scope="module")
def real_windows(tmp_path_factory):
    """A few real training and validation windows (N=64, K=4, close only)."""
    from tasks.windows import open_dataset

    path = write_real_windows(tmp_path_factory.mktemp("zoo") / "zoo.h5", PAST, FUTURE, stride=32)
    with open_dataset(str(path)) as ds:
        x, y = ds.split_arrays("train")
        xv, yv = ds.split_arrays("validation")
    return x[:48], y[:48], xv[:16], yv[:16]


def test_registry_names_are_the_tutorials_zoo():
    assert set(MODEL_NAMES) == {
        "cnn2_relu", "cnn2_leaky", "cnn3_relu", "cnn3_leaky", "cnn4_relu", "cnn4_leaky",
        "lstm_tanh_relu", "lstm_tanh_leaky", "gru_tanh_relu", "gru_tanh_leaky",
    }
    assert not set(BASELINE_NAMES) & set(REGISTRY)


def test_unknown_model_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown model 'cnn9_relu'.*lstm_tanh_leaky"):
        build_model("cnn9_relu", 256, 16, 1)
    with pytest.raises(ValueError, match="valid models"):
        parse_models("cnn2_relu,nope")
    assert parse_models("all") == list(MODEL_NAMES)
    names = parse_models(" gru_tanh_relu , cnn2_relu,gru_tanh_relu")
    assert names == ["gru_tanh_relu", "cnn2_relu"]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_conformance_build_predict_train_one_epoch(name, real_windows):
    """Builds for (N, F), predicts (K, F) or (K,), one epoch on real windows: finite loss."""
    import keras

    x, y, xv, yv = real_windows
    keras.utils.set_random_seed(0)
    model = build_model(name, PAST, FUTURE, x.shape[2])
    assert not any(type(layer).__name__ == "Lambda" for layer in model.layers)
    pred = model.predict(x[:5], verbose=0)
    assert pred.shape == (5, *output_shape(name, FUTURE, x.shape[2]))
    compile_model(model)
    yt, yvt = model_targets(name, y, 0), model_targets(name, yv, 0)
    history = model.fit(x, yt, batch_size=8, epochs=1, validation_data=(xv, yvt), verbose=0)
    assert np.isfinite(history.history["loss"][0]) and np.isfinite(history.history["val_loss"][0])


# ------------------------------------------------------------------- architecture


def conv_params(kernel: int, channels_in: int, filters: int) -> int:
    return kernel * channels_in * filters + filters


#: The tutorial's listings at N=256, K=16, F=1: (kernel, stride) per convolution.
TUTORIAL_CNN = {
    2: [(20, 3), (16, 4)],
    3: [(8, 3), (8, 2), (8, 2)],
    4: [(2, 2), (2, 2), (2, 2), (2, 2)],
}


@pytest.mark.parametrize("layers", [2, 3, 4])
@pytest.mark.parametrize("act", ["relu", "leaky"])
def test_cnn_layers_and_params_match_the_tutorial(layers, act):
    model = build_model(f"cnn{layers}_{act}", 256, 16, 1)
    convs = [lyr for lyr in model.layers if type(lyr).__name__ == "Conv1D"]
    assert [(c.kernel_size[0], c.strides[0]) for c in convs] == TUTORIAL_CNN[layers]
    assert [c.padding for c in convs] == ["valid"] * layers
    assert [c.filters for c in convs] == [8] * (layers - 1) + [1]
    dropouts = [lyr.rate for lyr in model.layers if type(lyr).__name__ == "Dropout"]
    assert dropouts == [0.5] * (layers - 1)
    leaky = [lyr for lyr in model.layers if type(lyr).__name__ == "LeakyReLU"]
    hidden_acts = [c.get_config()["activation"] for c in convs[:-1]]
    if act == "relu":
        assert hidden_acts == ["relu"] * (layers - 1) and not leaky
    else:
        assert hidden_acts == ["linear"] * (layers - 1) and len(leaky) == layers - 1
    assert convs[-1].get_config()["activation"] == "linear"
    # Output lengths by the tutorial's formula (input - kernel) / stride + 1, ending at K=16.
    length = 256
    for kernel, stride in TUTORIAL_CNN[layers]:
        length = (length - kernel) // stride + 1
    assert length == 16 and model.output_shape == (None, 16, 1)
    channels = [1] + [8] * (layers - 1)
    expected = sum(
        conv_params(k, cin, cout)
        for (k, _), cin, cout in zip(TUTORIAL_CNN[layers], channels, [8] * (layers - 1) + [1],
                                     strict=True)
    )
    assert model.count_params() == expected


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("head", ["relu", "leaky"])
def test_recurrent_layers_and_params_match_the_tutorial(cell, head):
    units, feats, k = 50, 1, 16
    model = build_model(f"{cell}_tanh_{head}", 256, k, feats)
    kinds = [type(lyr).__name__ for lyr in model.layers]
    assert kinds == [cell.upper(), "Dropout", "Dense", "ReLU" if head == "relu" else "LeakyReLU"]
    rnn = model.layers[0]
    assert rnn.units == units and rnn.get_config()["activation"] == "tanh"
    assert not rnn.return_sequences
    assert model.layers[1].rate == 0.2
    if cell == "lstm":
        rnn_params = 4 * (units * (feats + units) + units)
    else:  # Keras 3 GRU (reset_after=True): two bias vectors per gate
        rnn_params = 3 * (units * (feats + units) + 2 * units)
    assert model.count_params() == rnn_params + units * k + k
    assert model.output_shape == (None, k)


def test_cnn_last_layer_is_derived_for_other_horizons():
    spec = REGISTRY["cnn2_relu"].default_spec
    plan = conv_plan(PAST, FUTURE, spec)
    assert plan[-1][2] == FUTURE
    assert conv_length(plan[0][2], plan[-1][0], plan[-1][1]) == FUTURE
    for name in MODEL_NAMES:
        if entry(name).family is Family.CNN:
            assert build_model(name, 100, 5, 3).output_shape == (None, 5, 3)
    with pytest.raises(ValueError, match="fewer than the horizon"):
        build_model("cnn3_relu", 32, 4, 1)


def test_specs_round_trip_unchanged_through_json():
    import json

    for name, e in REGISTRY.items():
        d = spec_to_dict(e.default_spec)
        assert spec_from_dict(name, json.loads(json.dumps(d))) == e.default_spec
    reg = RecurrentSpec(regularizers=(Regularizer("bias", "l2", 0.01),))
    back = spec_from_dict("lstm_tanh_leaky", spec_to_dict(reg))
    assert back == reg
    model = build_model("lstm_tanh_leaky", 32, 4, 1, back)
    assert model.layers[0].bias_regularizer.get_config() == {"l2": 0.01}
    with pytest.raises(ValueError, match="unknown RecurrentSpec fields"):
        spec_from_dict("gru_tanh_relu", {"filters": 3})
    with pytest.raises(ValueError):
        CNNSpec(kernel_sizes=(2,), strides=(2,))
    with pytest.raises(ValueError, match="needs a CNNSpec"):
        build_model("cnn2_relu", 256, 16, 1, RecurrentSpec())


def test_real_windows_follow_the_contract(tmp_path):
    from tasks.windows.reader import open_dataset

    path = write_real_windows(tmp_path / "abc123.h5")
    with open_dataset(path) as ds:
        x, y = ds.split_arrays("train")
        xv, yv = ds.split_arrays("validation")
        assert x.shape[1:] == (64, 1) and y.shape[1:] == (4, 1)
        assert len(x) > 50 and len(xv) > 5
        assert np.isfinite(x).all() and 0.0 <= x.min() and x.max() <= 1.0 + 1e-6
