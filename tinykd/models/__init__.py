"""Teacher and student architectures, built by name from a registry.

Every model outputs logits (no softmax) and uses only layers that become ops our firmware
runtime runs: FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D, pooling, ADD, RESHAPE.
Dropout and jitter exist only at training time and vanish in the int8 model.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import tinykd  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tf_keras as keras

from ..errors import TinykdError


@dataclass(frozen=True)
class Architecture:
    name: str
    description: str
    build: Callable[[tuple[int, ...], int], keras.Model]


def mlp(hidden: tuple[int, ...], dropout: float = 0.0, input_dropout: float = 0.0) -> Callable:
    """Hinton's MNIST nets: flatten, ReLU hidden layers, logits. Dropout as in the paper's teacher."""

    def build(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
        inputs = keras.Input(shape=input_shape, name="input")
        x = keras.layers.Flatten(name="flatten")(inputs)
        if input_dropout:
            x = keras.layers.Dropout(input_dropout, name="input_dropout")(x)
        for i, units in enumerate(hidden, start=1):
            x = keras.layers.Dense(units, activation="relu", name=f"fc{i}")(x)
            if dropout:
                x = keras.layers.Dropout(dropout, name=f"dropout{i}")(x)
        outputs = keras.layers.Dense(num_classes, name="logits")(x)
        return keras.Model(inputs, outputs, name="mlp-" + "-".join(map(str, hidden)))

    return build


def cnn(filters: tuple[int, int] = (16, 32), dense: int = 256, dropout: float = 0.4) -> Callable:
    """A LeNet-style CNN teacher: two 5x5 conv + max-pool blocks, then a dense layer.

    About 3 M multiply-accumulates per image, so it trains in a few minutes on two cores,
    yet reaches well under 100 test errors on MNIST: a stronger teacher than Hinton's MLP
    for the same time, and the student is only as good as its teacher.
    """

    def build(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
        inputs = keras.Input(shape=input_shape, name="input")
        x = inputs
        for block, f in enumerate(filters, start=1):
            x = keras.layers.Conv2D(f, 5, padding="same", activation="relu", name=f"conv{block}")(x)
            x = keras.layers.MaxPooling2D(2, name=f"pool{block}")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Dense(dense, activation="relu", name="fc1")(x)
        x = keras.layers.Dropout(dropout, name="dropout_fc")(x)
        outputs = keras.layers.Dense(num_classes, name="logits")(x)
        return keras.Model(inputs, outputs, name="cnn")

    return build


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in [
        Architecture("hinton-1200", "Hinton's teacher: 784-1200-1200-10, dropout 0.5 (input 0.2)",
                     mlp((1200, 1200), dropout=0.5, input_dropout=0.2)),
        Architecture("cnn", "CNN teacher: 2x(conv5x5-maxpool) 16/32 filters, dense 256, dropout 0.4",
                     cnn((16, 32), 256)),
        Architecture("cnn-small", "small CNN: 2x(conv5x5-maxpool) 4/8 filters, dense 32",
                     cnn((4, 8), 32, dropout=0.2)),
        Architecture("mlp-800-800", "Hinton's student 784-800-800-10, no regularisation", mlp((800, 800))),
        Architecture("mlp-300-300", "student 784-300-300-10 (default)", mlp((300, 300))),
        Architecture("mlp-30-30", "student 784-30-30-10", mlp((30, 30))),
    ]
}

_MLP_PATTERN = re.compile(r"^mlp-(\d+(?:-\d+)*)$")


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Build an architecture by name; `mlp-W1-W2-...` builds any plain ReLU MLP."""
    if name in ARCHITECTURES:
        return ARCHITECTURES[name].build(input_shape, num_classes)
    match = _MLP_PATTERN.match(name)
    if match:
        return mlp(tuple(int(w) for w in match.group(1).split("-")))(input_shape, num_classes)
    raise TinykdError(
        f"Unknown model '{name}'. Choose one of: {', '.join(ARCHITECTURES)}, or 'mlp-W1-W2-...' "
        "for a plain MLP with those hidden widths (e.g. mlp-100-50)."
    )


def check_model_name(name: str) -> None:
    if name not in ARCHITECTURES and not _MLP_PATTERN.match(name):
        build_model(name, (1,), 1)  # raises the TinykdError with the list


def count_params(model: keras.Model) -> int:
    return int(sum(int(w.shape.num_elements()) for w in model.trainable_weights))
