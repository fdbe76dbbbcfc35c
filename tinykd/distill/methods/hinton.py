"""Hinton, Vinyals & Dean (2015), "Distilling the Knowledge in a Neural Network": soft targets of
one teacher at temperature T, plus the labels.

loss = alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(y, softmax(s))

The T^2 factor keeps the soft term's gradients the same size as T changes (they scale as
1/T^2), so alpha means the same thing at every temperature. `hinton_parts` is the one place
this loss is written; the other methods and `tinykd.distill.distillation_loss` call it.
"""

from __future__ import annotations

import tensorflow as tf

import tinykd  # noqa: F401

from .base import DistillationMethod, LossParts, cross_entropy, feature_model, soft_target_loss
from .recipe import BuildRecipe


def hinton_parts(y, student_logits, teacher_log_probs, temperature: float, alpha: float) -> LossParts:
    """alpha * T^2 * KL(teacher || student at T) + (1 - alpha) * CE; teacher_log_probs=None means CE only."""
    hard = cross_entropy(y, student_logits)
    if teacher_log_probs is None:
        return LossParts(hard, tf.zeros_like(hard), hard, student_logits)
    soft = soft_target_loss(teacher_log_probs, student_logits, temperature)
    return LossParts(alpha * soft + (1.0 - alpha) * hard, soft, hard, student_logits)


class Hinton(DistillationMethod):
    """The default: one frozen teacher's soft targets. With no teacher, the labels alone.

    `needs_teacher` is False so that the no-KD baseline and the teacher itself train through
    the same loop with the same method object (teacher=None -> plain cross-entropy).
    """

    name = "hinton"
    needs_teacher = False

    def loss(self, x, y, training: bool = True) -> LossParts:
        student_logits = self.student(x, training=training)
        if self.teacher is None:
            return hinton_parts(y, student_logits, None, self.temperature, self.alpha)
        teacher_logits = tf.cast(self.teacher(x, training=False), tf.float32)
        log_p = tf.nn.log_softmax(teacher_logits / self.temperature)
        return hinton_parts(y, student_logits, tf.stop_gradient(log_p), self.temperature, self.alpha)


class FeatureDistillation(DistillationMethod):
    """Hinton's loss plus a term on what one student layer and one teacher layer compute
    (FitNets' hint, RKD's relations): a subclass gives `feature_loss` and its own settings.

    loss = hinton_parts(...) + feature_loss(student features, teacher features), the extra term
    counted in the soft part too; the teacher's features carry no gradient."""

    def __init__(self, temperature: float, alpha: float, student_layer: str, teacher_layer: str):
        super().__init__(temperature, alpha)
        self.student_layer, self.teacher_layer = student_layer, teacher_layer

    def bind(self, student, teacher) -> None:
        super().bind(student, teacher)
        self.student_features = feature_model(student, self.student_layer)
        self.teacher_features = feature_model(teacher, self.teacher_layer)

    def feature_loss(self, student_features, teacher_features) -> tf.Tensor:
        """The extra term, weighted (teacher_features are behind a stop_gradient)."""
        raise NotImplementedError

    def feature_settings(self) -> dict:
        """The extra term's settings (weights), listed before the two layers."""
        return {}

    def loss(self, x, y, training: bool = True) -> LossParts:
        s_feat, student_logits = self.student_features(x, training=training)
        t_feat, teacher_logits = self.teacher_features(x, training=False)
        log_p = tf.stop_gradient(tf.nn.log_softmax(tf.cast(teacher_logits, tf.float32) / self.temperature))
        parts = hinton_parts(y, student_logits, log_p, self.temperature, self.alpha)
        extra = self.feature_loss(s_feat, tf.stop_gradient(t_feat))
        return LossParts(parts.total + extra, parts.soft + extra, parts.hard, student_logits)

    def settings(self):
        return {
            **super().settings(),
            **self.feature_settings(),
            "student_layer": self.student_layer,
            "teacher_layer": self.teacher_layer,
        }


class HintonRecipe(BuildRecipe):
    name = "hinton"
    method = Hinton
    single_teacher = True
