"""Random-weight models described by a compact layer spec: the test and benchmark zoo for the
firmware runtime (every kernel, shape and activation the runtime must match TFLite Micro on)."""

from __future__ import annotations

import numpy as np

import tinykd  # noqa: F401  (sets TF_USE_LEGACY_KERAS before tensorflow loads)


def build_from_spec(spec: tuple, seed: int):
    """spec = (input_shape, [layer tuples]) -> a functional tf_keras model with random weights.

    Layer tuples: ("dense", units, act), ("conv", filters, k, stride, padding, act),
    ("dw", k, stride, padding, depth_multiplier, act), ("maxpool", k, stride, padding),
    ("avgpool", k, stride, padding), ("flatten",), ("reshape", shape), ("softmax",),
    ("act", name) e.g. tanh, ("add_branch", act): x + conv1x1(x) (same shape),
    ("add_bcast",): x + a per-channel term from a full-size VALID conv,
    ("add_const",): x + a constant tensor.
    """
    import tensorflow as tf
    import tf_keras as keras

    keras.utils.set_random_seed(seed)
    input_shape, layers_spec = spec
    inp = keras.Input(input_shape, batch_size=1)
    x = inp
    for ls in layers_spec:
        kind = ls[0]
        if kind == "dense":
            x = keras.layers.Dense(ls[1], activation=ls[2])(x)
        elif kind == "conv":
            x = keras.layers.Conv2D(ls[1], ls[2], strides=ls[3], padding=ls[4], activation=ls[5])(x)
        elif kind == "dw":
            x = keras.layers.DepthwiseConv2D(
                ls[1], strides=ls[2], padding=ls[3], depth_multiplier=ls[4], activation=ls[5]
            )(x)
        elif kind == "maxpool":
            x = keras.layers.MaxPooling2D(ls[1], strides=ls[2], padding=ls[3])(x)
        elif kind == "avgpool":
            x = keras.layers.AveragePooling2D(ls[1], strides=ls[2], padding=ls[3])(x)
        elif kind == "flatten":
            x = keras.layers.Flatten()(x)
        elif kind == "reshape":
            x = keras.layers.Reshape(ls[1])(x)
        elif kind == "softmax":
            x = keras.layers.Softmax()(x)
        elif kind == "act":
            x = keras.layers.Activation(ls[1])(x)
        elif kind == "add_branch":
            y = keras.layers.Conv2D(x.shape[-1], 1, activation=ls[1])(x)
            x = keras.layers.Add()([x, y])
        elif kind == "add_bcast":
            # [1,H,W,C] + [1,1,1,C]: a full-size VALID conv gives the per-channel term
            y = keras.layers.Conv2D(x.shape[-1], (x.shape[1], x.shape[2]))(x)
            x = keras.layers.Lambda(lambda t: t[0] + t[1])([x, y])
        elif kind == "add_const":
            c = np.random.default_rng(seed + 2).normal(0, 1, (1, *x.shape[1:])).astype(np.float32)
            x = keras.layers.Lambda(lambda t, c=c: t + tf.constant(c))(x)
        else:
            raise ValueError(kind)
    model = keras.Model(inp, x)
    # Random, non-zero biases so the bias path is exercised (Keras starts them at 0).
    rng = np.random.default_rng(seed + 1)
    for layer in model.layers:
        ws = layer.get_weights()
        if len(ws) == 2:
            layer.set_weights([ws[0], rng.normal(0.0, 0.2, ws[1].shape).astype(np.float32)])
    return model
