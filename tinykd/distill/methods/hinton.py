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

from .base import DistillationMethod, LossParts, cross_entropy, soft_target_loss
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


class HintonRecipe(BuildRecipe):
    name = "hinton"
    method = Hinton
    single_teacher = True
