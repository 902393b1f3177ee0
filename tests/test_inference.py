"""mlplab's MLPs read from their .keras file and run in NumPy, without Keras, agree with
Keras; anything else is left to Keras."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mlplab.config import TrainConfig
from mlplab.errors import RunError
from mlplab.inference import load_forward, read_forward
from mlplab.models import LAB_MODELS, build_model, save_model


def with_moving_statistics(model: keras.Model) -> keras.Model:
    """Batch normalization with statistics and an affine part unlike its initial ones (so
    that a mix-up of its four variables changes the predictions)."""
    rng = np.random.default_rng(3)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 1, n))
            layer.moving_variance.assign(rng.uniform(0.3, 3, n))
            layer.gamma.assign(rng.uniform(0.5, 2, n))
            layer.beta.assign(rng.normal(0, 1, n))
    return model


@pytest.mark.parametrize("config", [
    LAB_MODELS["model_1"], LAB_MODELS["model_3"],
    TrainConfig(layers=(32, 16), activation="relu", batch_norm=True, dropout=0.3),
    TrainConfig(layers=(24,), activation="gelu", dropout=0.1),
    TrainConfig(layers=(20, 12), activation="sigmoid", batch_norm=True),
], ids=["model_1", "model_3", "batch_norm_dropout", "gelu", "sigmoid_batch_norm"])
def test_a_saved_mlp_runs_in_numpy_as_keras_does(tmp_path, config):
    model = with_moving_statistics(build_model(config))
    save_model(model, tmp_path / "model.keras")
    forward = read_forward(tmp_path / "model.keras")
    assert forward is not None
    assert (forward.inputs, forward.outputs) == (784, 10)
    assert forward.parameters == model.count_params()
    x = np.random.default_rng(1).random((40, 784), dtype=np.float32)
    np.testing.assert_allclose(forward(x), model.predict(x, verbose=0), atol=1e-5)
    np.testing.assert_allclose(forward(x[:1]), model.predict(x[:1], verbose=0), atol=1e-5)


def test_other_models_are_left_to_keras(tmp_path):
    """An activation or layer not mirrored in NumPy: not read, but still predicted (Keras)."""
    swish = build_model(TrainConfig(layers=(16,), activation="swish"))
    other = keras.Sequential([keras.Input((784,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.LayerNormalization(),
                              keras.layers.Dense(10, activation="softmax")])
    x = np.random.default_rng(2).random((5, 784), dtype=np.float32)
    for i, model in enumerate((swish, other)):
        path = tmp_path / f"{i}.keras"
        save_model(model, path)
        assert read_forward(path) is None
        forward = load_forward(path)
        assert forward.parameters == model.count_params()
        np.testing.assert_allclose(forward(x), model.predict(x, verbose=0), atol=1e-5)


def test_a_damaged_model_file_is_keras_plain_error(tmp_path):
    path = tmp_path / "model.keras"
    save_model(build_model(LAB_MODELS["model_1"]), path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])  # truncated
    assert read_forward(path) is None
    with pytest.raises(RunError, match="not a loadable Keras model"):
        load_forward(path)
    with pytest.raises(RunError, match="does not exist"):
        load_forward(tmp_path / "missing.keras")
