"""The MLPerf Tiny model classes of issue 11 with random weights, as tf_keras models: the
public architectures (MLPerf Tiny v0.5 reference models), built here layer by layer.

- MobileNet-v1 alpha 0.25, visual wake words, 96x96x3 input, 2 classes;
- the anomaly-detection FC autoencoder 640 -> 128 x4 -> 8 -> 128 x4 -> 640;
- the CIFAR-10 ResNet-8 (3 stacks of 3x3 convs, 16/32/64 channels, residual ADDs).

BatchNorm layers of the originals fold into the convolutions at conversion, so they are left
out; biases are random (non-zero) so the bias path is exercised."""

from __future__ import annotations

import numpy as np

import tinykd  # noqa: F401  (sets TF_USE_LEGACY_KERAS before tensorflow loads)


def _random_biases(model, seed: int) -> None:
    rng = np.random.default_rng(seed + 1)
    for layer in model.layers:
        ws = layer.get_weights()
        if len(ws) == 2:
            layer.set_weights([ws[0], rng.normal(0.0, 0.2, ws[1].shape).astype(np.float32)])


def mobilenet_v1_vww(seed: int):
    """MobileNet-v1 0.25 on 96x96x3: conv 3x3 s2 8 ch, 13 depthwise-separable blocks
    (16, 32, 32, 64, 64, 128 x6, 256 x2 channels, stride 2 at 32, 64, 128, 256), average
    pool 3x3, dense 2, softmax."""
    import tf_keras as keras

    keras.utils.set_random_seed(seed)
    L = keras.layers
    inp = keras.Input((96, 96, 3), batch_size=1)
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    blocks = [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2)] + [(128, 1)] * 5 + [(256, 2), (256, 1)]
    for ch, stride in blocks:
        x = L.DepthwiseConv2D(3, strides=stride, padding="same", activation="relu")(x)
        x = L.Conv2D(ch, 1, padding="same", activation="relu")(x)
    x = L.AveragePooling2D(x.shape[1:3])(x)
    x = L.Flatten()(x)
    x = L.Dense(2)(x)
    x = L.Softmax()(x)
    model = keras.Model(inp, x)
    _random_biases(model, seed)
    return model


def fc_autoencoder(seed: int):
    """MLPerf Tiny anomaly detection: 640 -> 128 x4 -> 8 -> 128 x4 -> 640, ReLU between."""
    import tf_keras as keras

    keras.utils.set_random_seed(seed)
    L = keras.layers
    inp = keras.Input((640,), batch_size=1)
    x = inp
    for units in [128] * 4 + [8] + [128] * 4:
        x = L.Dense(units, activation="relu")(x)
    x = L.Dense(640)(x)
    model = keras.Model(inp, x)
    _random_biases(model, seed)
    return model


def resnet8_cifar(seed: int):
    """MLPerf Tiny image classification ResNet-8 on 32x32x3: conv 3x3 16 ch, three residual
    stacks (16, 32 s2, 64 s2 channels; two 3x3 convs each, a 1x1 s2 conv on the shortcut of
    the strided ones, ADD + ReLU), average pool 8x8, dense 10, softmax."""
    import tf_keras as keras

    keras.utils.set_random_seed(seed)
    L = keras.layers
    inp = keras.Input((32, 32, 3), batch_size=1)
    x = L.Conv2D(16, 3, padding="same", activation="relu")(inp)
    for ch, stride in ((16, 1), (32, 2), (64, 2)):
        y = L.Conv2D(ch, 3, strides=stride, padding="same", activation="relu")(x)
        y = L.Conv2D(ch, 3, padding="same")(y)
        if stride != 1:
            x = L.Conv2D(ch, 1, strides=stride, padding="same")(x)
        x = L.Activation("relu")(L.Add()([x, y]))
    x = L.AveragePooling2D(x.shape[1:3])(x)
    x = L.Flatten()(x)
    x = L.Dense(10)(x)
    x = L.Softmax()(x)
    model = keras.Model(inp, x)
    _random_biases(model, seed)
    return model
