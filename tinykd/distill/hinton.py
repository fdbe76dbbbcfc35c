"""The distilling model wrapper (`Distiller`) that the training loop trains, and
`distillation_loss`, Hinton's loss from logits (written once, in `methods.hinton.hinton_parts`).
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

import tinykd  # noqa: F401


def distillation_loss(y_true, student_logits, teacher_logits, temperature: float, alpha: float):
    """Per-batch mean of alpha * T^2 * KL(teacher || student at T) + (1 - alpha) * CE (see
    `methods.hinton`); teacher_logits=None means CE alone. Returns (total, soft, hard)."""
    from .methods.hinton import hinton_parts

    log_p_teacher = None
    if teacher_logits is not None:
        log_p_teacher = tf.nn.log_softmax(tf.cast(teacher_logits, tf.float32) / tf.constant(temperature, tf.float32))
    parts = hinton_parts(y_true, student_logits, log_p_teacher, temperature, alpha)
    return parts.total, parts.soft, parts.hard


class Distiller(keras.Model):
    """Trains `student` on the distillation loss against a frozen `teacher`.

    With `teacher=None` it trains the student on the labels alone: the no-KD baseline and the
    teacher itself go through the very same loop, so comparisons differ only in the loss.
    The student must be a functional model (QAT needs that); the wrapper is only for training.

    `method` (a `tinykd.distill.methods.DistillationMethod`, e.g. from `get_method(name, ...)`)
    chooses the loss; the default is Hinton's at (`temperature`, `alpha`). A method given here
    carries its own temperature and alpha, and may train state of its own (an adapter, peer
    networks) alongside the student: `trained_variables` lists everything the optimiser updates.
    """

    def __init__(
        self,
        student: keras.Model,
        teacher: keras.Model | None = None,
        temperature: float = 20.0,
        alpha: float = 0.9,
        method=None,
    ):
        super().__init__(name="distiller")
        from .methods.hinton import Hinton

        defaulted = method is None
        if defaulted:
            method = Hinton(temperature, alpha)
        self.student = student
        self.teacher = teacher
        self.method = method
        self.temperature = float(method.temperature)
        # The labels-only case (default method, no teacher) reports alpha 0, as it always did.
        self.alpha = 0.0 if (defaulted and teacher is None) else float(method.alpha)
        if teacher is not None and method.freezes_teacher:
            teacher.trainable = False
        method.bind(student, teacher)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.soft_tracker = keras.metrics.Mean(name="soft")
        self.hard_tracker = keras.metrics.Mean(name="hard")
        self.accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    @property
    def metrics(self):
        return [self.loss_tracker, self.soft_tracker, self.hard_tracker, self.accuracy]

    @property
    def trained_variables(self) -> list:
        """The student's trainable variables, then the method's own (adapter, peers), without repeats."""
        seen, out = set(), []
        for v in list(self.student.trainable_variables) + list(self.method.extra_trainable_variables()):
            if id(v) not in seen:
                seen.add(id(v))
                out.append(v)
        return out

    def call(self, x, training=False):
        return self.student(x, training=training)

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            parts = self.method.loss(x, y, training=True)
            total = parts.total
            # Regularisation losses of the student (none by default) still count.
            if self.student.losses:
                total += tf.add_n(self.student.losses)
        variables = self.trained_variables
        self.optimizer.apply_gradients(zip(tape.gradient(total, variables), variables))
        return self._update(total, parts.soft, parts.hard, y, parts.logits)

    def test_step(self, data):
        x, y = data
        student_logits = self.student(x, training=False)
        # Validation measures the student on the labels: that is what we select and report on.
        total, soft, hard = distillation_loss(y, student_logits, None, self.temperature, 0.0)
        return self._update(total, soft, hard, y, student_logits)

    def _update(self, total, soft, hard, y, logits):
        self.loss_tracker.update_state(total)
        self.soft_tracker.update_state(soft)
        self.hard_tracker.update_state(hard)
        self.accuracy.update_state(y, logits)
        return {m.name: m.result() for m in self.metrics}
