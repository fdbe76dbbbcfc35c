"""Teacher and student architectures, built by name from a registry.

Every model outputs logits (no softmax) and uses only layers that become ops our firmware
runtime runs: FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D, pooling, ADD, RESHAPE. Models are
sized from the task's input shape: MLPs flatten any H x W x C, the CNNs take any channels and
sides (odd or even, pooling or striding until the map is small).
Dropout and jitter exist only at training time and vanish in the int8 model.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import tf_keras as keras

import tinykd  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from ..errors import TinykdError


@dataclass(frozen=True)
class Architecture:
    name: str
    description: str
    build: Callable[[tuple[int, ...], int], keras.Model]


def mlp(
    hidden: tuple[int, ...], dropout: float = 0.0, input_dropout: float = 0.0, max_norm: float | None = None
) -> Callable:
    """Hinton's MNIST nets: flatten, ReLU hidden layers, logits. Dropout and the max-norm weight
    constraint (each unit's incoming weight vector kept within a ball) as in the paper's teacher."""

    def build(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
        inputs = keras.Input(shape=input_shape, name="input")
        x = keras.layers.Flatten(name="flatten")(inputs)
        if input_dropout:
            x = keras.layers.Dropout(input_dropout, name="input_dropout")(x)
        limit = keras.constraints.MaxNorm(max_norm) if max_norm else None
        for i, units in enumerate(hidden, start=1):
            x = keras.layers.Dense(units, activation="relu", kernel_constraint=limit, name=f"fc{i}")(x)
            if dropout:
                x = keras.layers.Dropout(dropout, name=f"dropout{i}")(x)
        outputs = keras.layers.Dense(num_classes, kernel_constraint=limit, name="logits")(x)
        return keras.Model(inputs, outputs, name="mlp-" + "-".join(map(str, hidden)))

    return build


def _halve(x, name: str):
    """A 2x2 max-pool that suits any map: no pooling along an axis of size 1, and "same" padding
    when a side is odd (e.g. 21 -> 11 -> 6: no edge row dropped)."""
    h, w = int(x.shape[1]), int(x.shape[2])
    pool = (2 if h > 1 else 1, 2 if w > 1 else 1)
    if pool == (1, 1):
        return x
    padding = "same" if (h > 1 and h % 2) or (w > 1 and w % 2) else "valid"
    return keras.layers.MaxPooling2D(2 if pool == (2, 2) else pool, padding=padding, name=name)(x)


# The CNNs pool until the last feature map is at most this many pixels a side (28x28 -> 7x7,
# 32x32 -> 8x8, 96x96 -> 6x6), so the dense layer stays small for large inputs.
MAX_FINAL_SIDE = 8


def _image_input(input_shape: tuple[int, ...], family: str):
    if len(input_shape) != 3:
        raise TinykdError(
            f"{family} models take images (height x width x channels); the task's inputs have shape "
            f"{tuple(input_shape)}. Use an MLP (e.g. mlp-300-300) for these inputs."
        )
    return keras.Input(shape=input_shape, name="input")


def cnn(filters: tuple[int, int] = (16, 32), dense: int = 256, dropout: float = 0.4) -> Callable:
    """A LeNet-style CNN teacher: two 5x5 conv + max-pool blocks, then a dense layer.

    About 3 M multiply-accumulates per MNIST image, so it trains in a few minutes on two cores,
    yet reaches well under 100 test errors on MNIST: a stronger teacher than Hinton's MLP
    for the same time, and the student is only as good as its teacher.

    Any image shape: the convolutions take any number of channels, the pools adapt to odd or
    tiny sides (`_halve`), and inputs larger than 32x32 get extra pools before the dense layer
    (MAX_FINAL_SIDE). On 28x28x1 it is exactly the MNIST teacher it always was.
    """

    def build(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
        inputs = x = _image_input(input_shape, "CNN")
        for block, f in enumerate(filters, start=1):
            x = keras.layers.Conv2D(f, 5, padding="same", activation="relu", name=f"conv{block}")(x)
            x = _halve(x, f"pool{block}")
        extra = 0
        while max(int(x.shape[1]), int(x.shape[2])) > MAX_FINAL_SIDE:
            extra += 1
            x = _halve(x, f"pool_extra{extra}")
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Dense(dense, activation="relu", name="fc1")(x)
        x = keras.layers.Dropout(dropout, name="dropout_fc")(x)
        outputs = keras.layers.Dense(num_classes, name="logits")(x)
        return keras.Model(inputs, outputs, name="cnn")

    return build


def cnn_student(filters: tuple[int, ...], dense: int = 0, dropout: float = 0.0) -> Callable:
    """A small CNN student for microcontrollers: 3x3 convolutions with stride 2 ("same" padding,
    so any side works: 32 -> 16 -> 8, 21 -> 11 -> 6), ReLU, then logits from the flattened map
    (through a `dense`-unit hidden layer when given). Only CONV_2D, RESHAPE and FULLY_CONNECTED
    on the device; a stride-2 convolution costs a quarter of a stride-1 one plus a pool.
    Inputs larger than 32x32 get extra stride-2 convolutions (MAX_FINAL_SIDE)."""

    def build(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
        inputs = x = _image_input(input_shape, "CNN")
        widths = list(filters)
        side = max(int(x.shape[1]), int(x.shape[2]))
        for _ in widths:
            side = (side + 1) // 2
        while side > MAX_FINAL_SIDE:
            widths.append(widths[-1])
            side = (side + 1) // 2
        for i, f in enumerate(widths, start=1):
            strides = (2 if int(x.shape[1]) > 1 else 1, 2 if int(x.shape[2]) > 1 else 1)
            x = keras.layers.Conv2D(f, 3, strides=strides, padding="same", activation="relu", name=f"conv{i}")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        if dense:
            x = keras.layers.Dense(dense, activation="relu", name="fc1")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name="dropout")(x)
        outputs = keras.layers.Dense(num_classes, name="logits")(x)
        return keras.Model(inputs, outputs, name="cnn-" + "-".join(map(str, filters)))

    return build


# Batch-norm statistics follow the data within tens of steps (Keras' 0.99 needs hundreds,
# more than a small or --quick KWS run takes; its validation accuracy then sits at chance).
BN_MOMENTUM = 0.9


def ds_cnn(channels: int, blocks: int, first_stride: tuple[int, int] = (2, 2), dropout: float = 0.2) -> Callable:
    """Hello Edge's depthwise-separable CNN for keyword spotting (Zhang et al. 2017).

    A 10x4 convolution (stride `first_stride`), then `blocks` depthwise-separable blocks
    (3x3 depthwise + 1x1 pointwise, each followed by batch normalisation and ReLU), an
    average pool over the whole remaining time x frequency map and one dense layer.
    Batch normalisation folds into the convolutions at conversion; the pool is an
    AveragePooling2D of the map's full size (GlobalAveragePooling would become MEAN, which
    our runtime does not run).
    """

    def build(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
        if len(input_shape) != 3:
            raise TinykdError(
                f"DS-CNN models take 2-D feature maps with a channel axis (e.g. 49x10x1 MFCC); "
                f"the task's inputs have shape {tuple(input_shape)}. Use an MLP or CNN for this "
                "task, or a task with spectrogram inputs (--task kws)."
            )
        inputs = keras.Input(shape=input_shape, name="input")
        x = keras.layers.Conv2D(channels, (10, 4), strides=first_stride, padding="same", use_bias=False, name="conv1")(
            inputs
        )
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name="conv1_bn")(x)
        x = keras.layers.ReLU(name="conv1_relu")(x)
        for i in range(1, blocks + 1):
            x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"dw{i}")(x)
            x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"dw{i}_bn")(x)
            x = keras.layers.ReLU(name=f"dw{i}_relu")(x)
            x = keras.layers.Conv2D(channels, 1, use_bias=False, name=f"pw{i}")(x)
            x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"pw{i}_bn")(x)
            x = keras.layers.ReLU(name=f"pw{i}_relu")(x)
        x = keras.layers.AveragePooling2D(pool_size=tuple(int(d) for d in x.shape[1:3]), name="pool")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name="dropout")(x)
        outputs = keras.layers.Dense(num_classes, name="logits")(x)
        return keras.Model(inputs, outputs, name=f"ds-cnn-{channels}x{blocks}")

    return build


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in [
        Architecture(
            "hinton-1200",
            "Hinton's teacher: 784-1200-1200-10, dropout 0.5 (input 0.2), max-norm 3.5",
            mlp((1200, 1200), dropout=0.5, input_dropout=0.2, max_norm=3.5),
        ),
        Architecture(
            "cnn", "CNN teacher: 2x(conv5x5-maxpool) 16/32 filters, dense 256, dropout 0.4", cnn((16, 32), 256)
        ),
        Architecture("cnn-small", "small CNN: 2x(conv5x5-maxpool) 4/8 filters, dense 32", cnn((4, 8), 32, dropout=0.2)),
        Architecture(
            "cnn-s",
            "CNN student for images: 2 x conv3x3/2 (8, 16 filters), logits; any size and channels",
            cnn_student((8, 16)),
        ),
        Architecture(
            "cnn-m",
            "CNN student for images: 3 x conv3x3/2 (16, 32, 32 filters), dense 64; any size and channels",
            cnn_student((16, 32, 32), dense=64, dropout=0.1),
        ),
        Architecture("mlp-800-800", "Hinton's student 784-800-800-10, no regularisation", mlp((800, 800))),
        Architecture("mlp-300-300", "student 784-300-300-10 (default)", mlp((300, 300))),
        Architecture("mlp-30-30", "student 784-30-30-10", mlp((30, 30))),
        Architecture(
            "ds-cnn-l",
            "KWS teacher, Hello Edge DS-CNN L: conv 10x4/(2,1) + 5 DS blocks, 276 ch",
            ds_cnn(276, 5, first_stride=(2, 1), dropout=0.4),
        ),
        Architecture(
            "ds-cnn-m", "KWS DS-CNN M (Hello Edge): conv 10x4/2 + 4 DS blocks, 172 ch", ds_cnn(172, 4, dropout=0.3)
        ),
        Architecture("ds-cnn-s", "KWS student, Hello Edge DS-CNN S: conv 10x4/2 + 4 DS blocks, 64 ch", ds_cnn(64, 4)),
        Architecture(
            "ds-cnn-xs", "KWS student for <= 64 KB RAM: conv 10x4/2 + 3 DS blocks, 32 ch", ds_cnn(32, 3, dropout=0.1)
        ),
    ]
}

_MLP_PATTERN = re.compile(r"^mlp-(\d+(?:-\d+)*)$")
# ds-cnn-CxB: a DS-CNN of C channels and B depthwise-separable blocks (what `tinykd fit` searches for KWS).
_DS_CNN_PATTERN = re.compile(r"^ds-cnn-(\d+)x(\d+)$")


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Build an architecture by name; `mlp-W1-W2-...` builds any plain ReLU MLP."""
    if name in ARCHITECTURES:
        return ARCHITECTURES[name].build(input_shape, num_classes)
    match = _MLP_PATTERN.match(name)
    if match:
        return mlp(tuple(int(w) for w in match.group(1).split("-")))(input_shape, num_classes)
    match = _DS_CNN_PATTERN.match(name)
    if match and int(match.group(1)) >= 1 and int(match.group(2)) >= 1:
        return ds_cnn(int(match.group(1)), int(match.group(2)))(input_shape, num_classes)
    raise TinykdError(
        f"Unknown model '{name}'. Choose one of: {', '.join(ARCHITECTURES)}, 'mlp-W1-W2-...' "
        "for a plain MLP with those hidden widths (e.g. mlp-100-50), or 'ds-cnn-CxB' for a KWS DS-CNN "
        "of C channels and B blocks (e.g. ds-cnn-48x3)."
    )


def check_model_name(name: str) -> None:
    if name not in ARCHITECTURES and not _MLP_PATTERN.match(name) and not _DS_CNN_PATTERN.match(name):
        build_model(name, (1,), 1)  # raises the TinykdError with the list


def count_params(model: keras.Model) -> int:
    return int(sum(int(w.shape.num_elements()) for w in model.trainable_weights))
