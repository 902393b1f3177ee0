"""mlplab: train and understand multilayer-perceptron classifiers on MNIST-style images.

Importing this package is cheap: NumPy, Keras and JAX are imported lazily by the
modules that need them, so ``mlplab --help`` stays instant.
"""

from __future__ import annotations

import os

# The Keras backend must be chosen before the first ``import keras`` anywhere in the
# process, and this package's import is the earliest point we control. JAX is the
# default because it measured fastest on CPU for these models; a backend the user
# chose with KERAS_BACKEND is respected.
os.environ.setdefault("KERAS_BACKEND", "jax")
# TensorFlow (when it is the user's backend) is chatty at import; keep its C++ logs quiet.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

__all__ = ["__version__"]
