"""Specialists (Hinton, Vinyals & Dean 2015, §5): a generalist teacher plus specialist teachers
for groups of classes it confuses, combined into one set of soft targets for the student.

The specialist teachers (their groups, networks and training) are in `specialist_teachers`,
the combination (the paper's eq. 5, in closed form) in `specialist_combination`; this file
holds the method's loss and its build recipe.

Active specialists. As in the paper, a specialist takes part only for the examples where
one of its classes is among the generalist's `top_k` most probable (default 1); for the
others its classes count as classes in no group. Consulting every specialist everywhere
hurts: a specialist a little unsure of its dustbin on, say, a clear "0" (p = 0.01 on its
classes) lifts them from the generalist's 1e-6 to ~0.005, and that is what the student
copies at T for every example (measured on a tiny MNIST student, 2 000 examples: 82 %
accuracy against Hinton's 88 % when every specialist counts everywhere; 87 % with top_k 1,
within Hinton's seed-to-seed spread of 87-88 %).

Temperature. The combination is made at T = 1, where the paper makes it, and log q is then
treated as the logits of one combined teacher: the student's soft target is
softmax(log q / T), as for any teacher. Combining the distributions at T instead is wrong:
at T = 20 every specialist spreads its mass almost evenly over its outputs, so its dustbin
(which stands for 7 classes) gets a quarter of it instead of ~7/10, the group's classes are
pushed up for every example, and matching that bias at T = 20 drives the student's logits
20 times as far (measured: a --quick student at 68 % error instead of 15 %).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

import tinykd  # noqa: F401

from ...errors import TinykdError
from .base import DistillationMethod, LossParts
from .hinton import hinton_parts
from .recipe import BuildRecipe, stage_training
from .specialist_combination import combine_log_probs
from .specialist_teachers import (
    Specialist,
    build_specialist,
    check_groups,
    find_groups,
    soft_confusion,
    specialist_data,
    specialist_labels,
    train_specialists,
)

__all__ = [
    "TOP_K",
    "Specialist",
    "Specialists",
    "SpecialistsRecipe",
    "build_specialist",
    "check_groups",
    "combine_log_probs",
    "find_groups",
    "soft_confusion",
    "specialist_data",
    "specialist_labels",
    "train_specialists",
]

#: A specialist counts where one of its classes is the generalist's first choice (see "Active specialists").
TOP_K = 1


class Specialists(DistillationMethod):
    """Soft targets from the Distiller's teacher (the generalist) combined with specialist teachers.

    `specialists` is a list of `Specialist` (or (model, classes) pairs): models whose outputs are
    the classes of their group, in the given order, then the dustbin.
    """

    name = "specialists"

    def __init__(self, specialists: Sequence = (), temperature: float = 20.0, alpha: float = 0.9, top_k: int = TOP_K):
        super().__init__(temperature, alpha)
        if int(top_k) < 1:
            raise TinykdError(
                f"Specialists' top_k must be at least 1 (got {top_k}): a specialist counts where one "
                "of its classes is among the generalist's top_k."
            )
        self.specialists = [s if isinstance(s, Specialist) else Specialist(s[0], list(s[1])) for s in specialists]
        self.top_k = int(top_k)

    def bind(self, student, teacher) -> None:
        super().bind(student, teacher)
        if not self.specialists:
            raise TinykdError(
                "The 'specialists' method needs at least one specialist teacher besides the generalist; train "
                "them with tinykd.distill.methods.train_specialists (a build does this in its extra-teachers stage)."
            )
        num_classes = int(teacher.outputs[0].shape[-1])
        self.groups = check_groups([s.classes for s in self.specialists], num_classes)
        for s, group in zip(self.specialists, self.groups):
            outputs = int(s.model.outputs[0].shape[-1])
            if outputs != len(group) + 1:
                raise TinykdError(
                    f"Specialist '{s.model.name}' has {outputs} outputs but its group {group} needs "
                    f"{len(group) + 1} (its classes, then the dustbin)."
                )
            s.model.trainable = False

    def target_log_probs(self, x) -> tf.Tensor:
        """Soft targets at T: the combined distribution (made at T = 1) softened like a teacher's logits."""
        generalist = self.teacher(x, training=False)
        others = [s.model(x, training=False) for s in self.specialists]
        combined = combine_log_probs(generalist, others, self.groups, 1.0, self.top_k)
        return tf.nn.log_softmax(combined / self.temperature)

    def loss(self, x, y, training: bool = True) -> LossParts:
        student_logits = self.student(x, training=training)
        target = tf.stop_gradient(self.target_log_probs(x))
        return hinton_parts(y, student_logits, target, self.temperature, self.alpha)

    def settings(self):
        return {**super().settings(), "groups": [list(s.classes) for s in self.specialists], "top_k": self.top_k}


class SpecialistsRecipe(BuildRecipe):
    """Groups found on the teacher's validation confusion, one specialist fine-tuned per group in
    the extra-teachers stage (specialists.json keeps the groups); the student learns from the
    teacher combined with them."""

    name = "specialists"
    method = Specialists
    config_keys = ("specialists", "specialist_classes", "specialist_epochs")
    extra_models = True

    def check(self, config) -> None:
        kd = config.distill
        if kd.specialists < 1 or kd.specialist_classes < 2 or kd.specialist_epochs < 1:
            raise TinykdError(
                f"[distill] needs specialists >= 1 (groups), specialist_classes >= 2 and specialist_epochs >= 1 "
                f"(got {kd.specialists}, {kd.specialist_classes}, {kd.specialist_epochs}). Try 2, 3 and 2."
            )

    def train_extra_models(self, build):
        import dataclasses

        from ...evaluate import predict_logits
        from ...fileio import write_json

        d, c, kd = build.dataset, build.config.teacher, build.config.distill
        generalist = build.load_model("teacher")
        logits = predict_logits(generalist, d.x_val)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        confusion = soft_confusion(probs, d.y_val, d.num_classes)
        groups = find_groups(confusion, kd.specialists, kd.specialist_classes)
        names = d.class_names
        build.log(
            "  specialist groups (most confused on validation): "
            + "; ".join("{" + ", ".join(names[k] for k in g) + "}" for g in groups)
        )
        # Fine-tuning from the generalist's weights: a quarter of its learning rate keeps what the
        # body already knows while the new output layer settles.
        section = dataclasses.replace(c, epochs=kd.specialist_epochs, learning_rate=c.learning_rate / 4)
        specialists = train_specialists(generalist, groups, **stage_training(build, "extra-teachers", section))
        artifacts = []
        for i, s in enumerate(specialists):
            artifacts.append(build.save_model(s.model, f"specialist{i}"))
            build.save_history(f"specialist{i}", s)
        write_json(
            build.out / "specialists.json",
            {
                "groups": groups,
                "class_names": list(names),
                "validation_soft_confusion": np.round(confusion, 3).tolist(),
            },
        )
        return artifacts + ["specialists.json"], {"groups": groups, "train_seconds": [s.seconds for s in specialists]}

    @staticmethod
    def groups(build) -> list[list[int]]:
        import json

        return json.loads((build.out / "specialists.json").read_text())["groups"]

    def kd_pair(self, build, stage):
        teacher = build.load_model("teacher")
        groups = self.groups(build)
        specialists = [Specialist(build.load_model(f"specialist{i}"), g) for i, g in enumerate(groups)]
        return self.make(build.config.distill, specialists=specialists), teacher

    def evaluate_models(self, build):
        """The teacher combined with its specialists (T = 1), and each specialist on its own task
        (one of its classes, or the dustbin)."""
        from ...evaluate import predict_logits

        d = build.dataset
        teacher_logits = predict_logits(build.load_model("teacher"), d.x_test)
        outputs, info = [], []
        for i, group in enumerate(self.groups(build)):
            outputs.append(predict_logits(build.load_model(f"specialist{i}"), d.x_test))
            own = specialist_labels(d.y_test, group)
            info.append(
                {
                    "classes": group,
                    "errors": int(np.sum(outputs[-1].argmax(1) != own)),
                    "total": int(len(own)),
                    "test_examples_of_its_classes": int(np.sum(own < len(group))),
                }
            )
        combined = combine_log_probs(teacher_logits, outputs, self.groups(build), 1.0, TOP_K).numpy()
        return {"specialists": combined}, {"specialists": info}

    def model_label(self, name):
        return "teacher + specialists combined (float, at T = 1)" if name == "specialists" else None
