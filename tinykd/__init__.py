"""tinykd: distil a model, quantise it to int8 and prove it on a Cortex-M board."""

import os

# tensorflow-model-optimization 0.8 needs Keras 2 (tf_keras). The switch must be set before
# TensorFlow is first imported anywhere in the process, so the package sets it on import.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# Keep TensorFlow's C++ start-up chatter out of the user's terminal.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
