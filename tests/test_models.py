"""The lab's models have the lab's exact parameter counts; configs build what they say."""

from __future__ import annotations

import keras
import pytest

from mlplab.config import TrainConfig
from mlplab.models import LAB_MODELS, EpochSchedule, build_model


@pytest.mark.parametrize("name,params", [("model_1", 50_890), ("model_2", 52_650),
                                         ("model_3", 52_650)])
def test_lab_parameter_counts(name, params):
    model = build_model(LAB_MODELS[name], name=name)
    assert model.count_params() == params


def test_lab_activations():
    acts = [[layer.activation.__name__ for layer in build_model(c).layers]
            for c in LAB_MODELS.values()]
    assert acts == [["tanh", "softmax"], ["tanh", "tanh", "softmax"],
                    ["relu", "relu", "softmax"]]


def test_batch_norm_and_dropout_layers():
    model = build_model(TrainConfig(layers=(32, 16), batch_norm=True, dropout=0.3))
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Dense", "BatchNormalization", "Activation", "Dropout",
                     "Dense", "BatchNormalization", "Activation", "Dropout", "Dense"]


def test_schedule_warmup_cosine_and_step():
    import numpy as np

    cos = EpochSchedule(0.1, steps_per_epoch=10, epochs=10, schedule="cosine", warmup_epochs=2)
    rates = np.array([float(cos(s)) for s in range(100)])
    assert rates[0] == pytest.approx(0.1 / 20) and rates[19] == pytest.approx(0.1)
    assert rates[20] == pytest.approx(0.1) and rates[-1] < 0.001
    assert np.all(np.diff(rates[20:]) <= 1e-9)
    step = EpochSchedule(0.1, steps_per_epoch=5, epochs=30, schedule="step", step_epochs=10,
                         step_factor=0.5)
    assert [round(float(step(s)), 6) for s in (0, 49, 50, 100)] == [0.1, 0.1, 0.05, 0.025]


@pytest.mark.parametrize("activation,batch_norm", [("tanh", False), ("relu", True),
                                                   ("gelu", False), ("sigmoid", True)])
def test_fast_predict_matches_keras_in_numpy(activation, batch_norm):
    """predict_fn runs mlplab's models in NumPy and agrees with model.predict."""
    import numpy as np

    from mlplab import engine
    from mlplab.models import build_model

    config = TrainConfig(layers=(32, 16), activation=activation, batch_norm=batch_norm,
                         dropout=0.3)
    model = build_model(config)
    if batch_norm:  # non-trivial moving statistics
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.moving_mean.assign(np.linspace(-1, 1, layer.moving_mean.shape[0]))
                layer.moving_variance.assign(np.linspace(0.5, 2, layer.moving_mean.shape[0]))
    x = np.random.default_rng(1).random((50, 784), dtype=np.float32)
    assert engine.numpy_layers(model) is not None
    fast = engine.predict_fn(model)
    np.testing.assert_allclose(fast(x), model.predict(x, verbose=0), atol=1e-5)
    np.testing.assert_allclose(fast(x[:1]), model.predict(x[:1], verbose=0), atol=1e-5)


def test_fast_predict_falls_back_to_jax_for_other_layers():
    import numpy as np

    from mlplab import engine

    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(8, activation="elu"),
                              keras.layers.LayerNormalization(),
                              keras.layers.Dense(10, activation="softmax")])
    assert engine.numpy_layers(model) is None
    x = np.random.default_rng(2).random((5, 784), dtype=np.float32)
    np.testing.assert_allclose(engine.predict_fn(model)(x), model.predict(x, verbose=0),
                               atol=1e-5)
