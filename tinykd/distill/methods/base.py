"""The one interface every distillation method implements, and the losses they share.

A method is a strategy object held by `Distiller` (the keras.Model wrapper that the training
loop trains). The wrapper asks it, inside the gradient tape, for the loss of one batch; the
method may own extra trainable state (an adapter, peer networks) that is trained alongside
the student and checkpointed with it but never exported: the student stays the plain
functional model it was, so QAT (`tfmot quantize_model`) and conversion work on it unchanged.

Methods touch the student only through its logits (`student(x)`) or through a functional
sub-model over its named layers, so a tfmot-quantised student works too: its layers are
found under their own name or tfmot's `quant_<name>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import tensorflow as tf
import tf_keras as keras

import tinykd  # noqa: F401

from ...errors import TinykdError


@dataclass
class LossParts:
    """One batch's loss: `total` is minimised; `soft` (teacher part) and `hard` (labels) are shown."""

    total: tf.Tensor
    soft: tf.Tensor
    hard: tf.Tensor
    logits: tf.Tensor  # the student's logits, for the accuracy metric


def check_temperature_alpha(temperature: float, alpha: float) -> tuple[float, float]:
    temperature, alpha = float(temperature), float(alpha)
    if not temperature > 0:
        raise TinykdError(
            f"Temperature must be > 0 (got {temperature}). Distillation divides the logits by T; "
            "Hinton et al. used 1-20 (try --temperature 20)."
        )
    if not 0.0 <= alpha <= 1.0:
        raise TinykdError(
            f"alpha must be between 0 and 1 (got {alpha}): it is the weight of the soft (teacher) loss, "
            "1 - alpha that of the labels. Try --alpha 0.9."
        )
    return temperature, alpha


def cross_entropy(y_true, logits) -> tf.Tensor:
    """Batch mean of the sparse softmax cross-entropy."""
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.cast(y_true, tf.int32), logits=tf.cast(logits, tf.float32)
        )
    )


def soft_target_loss(target_log_probs, student_logits, temperature: float) -> tf.Tensor:
    """T^2 * batch mean of KL(p || softmax(s/T)), where p = exp(target_log_probs) are soft targets at T."""
    t = tf.cast(temperature, tf.float32)  # a number, or a variable (the T/alpha search's one graph)
    target_log_probs = tf.cast(target_log_probs, tf.float32)
    log_p_student = tf.nn.log_softmax(tf.cast(student_logits, tf.float32) / t)
    kl = tf.reduce_sum(tf.exp(target_log_probs) * (target_log_probs - log_p_student), axis=-1)
    return tf.reduce_mean(kl) * t * t


def find_layer(model: keras.Model, name: str) -> keras.layers.Layer:
    """A layer by name, also under tfmot's `quant_<name>` (a QAT-quantised model)."""
    for candidate in (name, f"quant_{name}"):
        try:
            return model.get_layer(candidate)
        except ValueError:
            continue
    names = ", ".join(layer.name for layer in model.layers)
    raise TinykdError(
        f"Model '{model.name}' has no layer named '{name}' (its layers: {names}). Pass the name of one "
        "of its layers (e.g. fc1 for the MLPs and the CNN) as the method's layer option."
    )


PENULTIMATE = "penultimate"


def feature_model(model: keras.Model, layer_name: str = PENULTIMATE) -> keras.Model:
    """A functional model over the same weights returning (features of `layer_name`, logits).

    `layer_name="penultimate"` means the input of the `logits` layer: for our MLPs the last
    hidden layer, for the CNN its dropout (the identity when the teacher runs with
    training=False, so fc1's output).
    """
    if not getattr(model, "_is_graph_network", False):
        raise TinykdError(
            f"Model '{model.name}' is not a functional Keras model, so its layer '{layer_name}' cannot be "
            "read. Build students and teachers with tinykd.models.build_model (functional models)."
        )
    if layer_name == PENULTIMATE:
        features = find_layer(model, "logits").input
    else:
        features = find_layer(model, layer_name).output
    return keras.Model(model.inputs, [features, model.outputs[0]], name=f"{model.name}_{layer_name}_features")


def with_teacher(teacher: keras.Model | None, models: list, none_given: str) -> list:
    """`models` with the Distiller's teacher first, unless it is None or one of them already
    (the ensemble's teachers, online learning's peers); TinykdError(none_given) if that leaves none."""
    if teacher is not None and all(teacher is not m for m in models):
        models = [teacher] + models
    if not models:
        raise TinykdError(none_given)
    return models


class DistillationMethod:
    """Base class: a loss over one batch plus the state the method trains or reads.

    Subclasses set `name`, implement `loss`, and may override `bind` (to build sub-models
    and adapters once the student and teacher are known), `extra_trainable_variables`
    and `checkpoint_objects` (state trained with the student), and `settings`.
    """

    name = "base"
    #: Whether the Distiller's `teacher` argument is required.
    needs_teacher = True
    #: Whether the Distiller's teacher is frozen (online learning trains it).
    freezes_teacher = True

    def __init__(self, temperature: float = 20.0, alpha: float = 0.9):
        self.temperature, self.alpha = check_temperature_alpha(temperature, alpha)
        self.student: keras.Model | None = None
        self.teacher: keras.Model | None = None

    def bind(self, student: keras.Model, teacher: keras.Model | None) -> None:
        """Called once by Distiller: remember the models, build what the method needs."""
        if self.needs_teacher and teacher is None:
            raise TinykdError(
                f"The '{self.name}' distillation method needs a teacher model, but none was given. Train or "
                "load a teacher first (tinykd train-teacher), or use the plain no-KD baseline."
            )
        self.student, self.teacher = student, teacher

    def loss(self, x, y, training: bool = True) -> LossParts:
        raise NotImplementedError

    def extra_trainable_variables(self) -> list[tf.Variable]:
        """Variables trained with the student (adapters, peers); not part of the exported student."""
        return []

    def checkpoint_objects(self) -> dict[str, Any]:
        """Trackable objects to save beside the student so an interrupted run resumes exactly."""
        return {}

    def settings(self) -> dict[str, Any]:
        """What distinguishes this method's run (for stages.json / reports)."""
        return {"method": self.name, "temperature": self.temperature, "alpha": self.alpha}
