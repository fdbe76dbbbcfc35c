"""FitNets-style hints (Romero et al. 2015): a student layer, through a learned adapter, regresses
a teacher layer; trained jointly with the Hinton loss (the one-stage variant):

  loss = alpha * T^2 * KL(teacher || student at T) + (1 - alpha) * CE + beta * MSE(adapter(s_l), t_l)

The adapter (a Dense layer, or a 1x1 convolution when both layers are feature maps of the
same height and width) lives in the method, is trained with the student, and is never part
of the exported student. Defaults: student `fc1`, teacher `fc1` (our MLPs and the CNN both
have one; for the CNN that is its 256-unit dense layer).
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

import tinykd  # noqa: F401

from ...errors import TinykdError
from .hinton import FeatureDistillation
from .recipe import BuildRecipe


def hint_loss(student_features, teacher_features) -> tf.Tensor:
    """Mean squared error over every element of the batch."""
    return tf.reduce_mean(tf.square(tf.cast(student_features, tf.float32) - tf.cast(teacher_features, tf.float32)))


class FitNets(FeatureDistillation):
    name = "fitnets"

    def __init__(
        self,
        temperature: float = 20.0,
        alpha: float = 0.9,
        hint_weight: float = 1.0,
        student_layer: str = "fc1",
        teacher_layer: str = "fc1",
    ):
        super().__init__(temperature, alpha, student_layer, teacher_layer)
        if not hint_weight >= 0:
            raise TinykdError(f"The FitNets hint weight must be >= 0 (got {hint_weight}); 1.0 is a good start.")
        self.hint_weight = float(hint_weight)
        self.adapter: keras.layers.Layer | None = None

    def bind(self, student, teacher) -> None:
        super().bind(student, teacher)
        s_shape = tuple(self.student_features.outputs[0].shape[1:])
        t_shape = tuple(self.teacher_features.outputs[0].shape[1:])
        self._spatial = len(s_shape) == 3 and len(t_shape) == 3 and s_shape[:2] == t_shape[:2]
        if self._spatial:
            self.adapter = keras.layers.Conv2D(t_shape[-1], 1, name="fitnets_adapter")
            self.adapter.build((None, *s_shape))
        else:
            self.adapter = keras.layers.Dense(int(tf.TensorShape(t_shape).num_elements()), name="fitnets_adapter")
            self.adapter.build((None, int(tf.TensorShape(s_shape).num_elements())))

    def adapt(self, student_features):
        if not self._spatial:
            student_features = tf.reshape(student_features, [tf.shape(student_features)[0], -1])
        return self.adapter(student_features)

    def feature_loss(self, student_features, teacher_features) -> tf.Tensor:
        if not self._spatial:
            teacher_features = tf.reshape(teacher_features, [tf.shape(teacher_features)[0], -1])
        return self.hint_weight * hint_loss(self.adapt(student_features), teacher_features)

    def extra_trainable_variables(self):
        return list(self.adapter.trainable_variables)

    def checkpoint_objects(self):
        return {"fitnets_adapter": self.adapter}

    def feature_settings(self):
        return {"hint_weight": self.hint_weight}


class FitNetsRecipe(BuildRecipe):
    name = "fitnets"
    method = FitNets
    single_teacher = True
