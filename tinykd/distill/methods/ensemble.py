"""Many teachers -> one student: the teachers' soft targets averaged (Hinton et al. 2015, §1, §5).

At temperature T each teacher i gives p_i = softmax(z_i / T). The student's soft target is
  arithmetic: p = sum_i w_i p_i
  geometric:  p = softmax(sum_i w_i log p_i)   (normalised weighted product of the p_i)
with weights w summing to one (uniform unless given). Loss = alpha * T^2 * KL(p || student at T)
+ (1 - alpha) * CE, as for a single teacher.

`select_teachers` chooses which teachers to use and with what weights, either by the
validation accuracy of the ensemble (greedy forward selection with replacement, Caruana et
al. 2004: a teacher picked k times gets weight k / picks) or by teacher agreement (each
teacher weighted by how often it agrees with the others' majority vote; teachers that
agree less than `min_agreement` are dropped).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf
import tf_keras as keras

import tinykd  # noqa: F401

from ...errors import TinykdError
from .base import DistillationMethod, LossParts, with_teacher
from .hinton import hinton_parts
from .recipe import BuildRecipe, numbered

MEANS = ("arithmetic", "geometric")


def _check_weights(weights, n: int) -> np.ndarray:
    if weights is None:
        return np.full(n, 1.0 / n)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise TinykdError(
            f"Ensemble weights must be {n} non-negative numbers (one per teacher) with a positive sum; got "
            f"{list(np.asarray(weights).reshape(-1))}. Leave them out for equal weights."
        )
    return w / w.sum()


def ensemble_log_probs(teacher_logits: Sequence, temperature: float, weights=None, mean: str = "arithmetic"):
    """log of the ensemble's soft targets at T from a list of [batch, classes] teacher logits."""
    if mean not in MEANS:
        raise TinykdError(
            f"Unknown ensemble mean '{mean}': use 'arithmetic' (of probabilities) or "
            "'geometric' (softmax of the mean log-probabilities)."
        )
    w = tf.constant(_check_weights(weights, len(teacher_logits)), tf.float32)
    log_p = tf.stack([tf.nn.log_softmax(tf.cast(z, tf.float32) / temperature) for z in teacher_logits])
    w = tf.reshape(w, [-1, 1, 1])
    if mean == "arithmetic":
        # log sum_i w_i p_i, computed stably.
        return tf.reduce_logsumexp(log_p + tf.math.log(tf.maximum(w, 1e-30)), axis=0)
    return tf.nn.log_softmax(tf.reduce_sum(w * log_p, axis=0))


class Ensemble(DistillationMethod):
    """Soft targets averaged over several frozen teachers (the Distiller's teacher, if given, is one more)."""

    name = "ensemble"
    needs_teacher = False

    def __init__(
        self,
        teachers: Sequence[keras.Model] = (),
        temperature: float = 20.0,
        alpha: float = 0.9,
        weights: Sequence[float] | None = None,
        mean: str = "arithmetic",
    ):
        super().__init__(temperature, alpha)
        if mean not in MEANS:
            raise TinykdError(
                f"Unknown ensemble mean '{mean}': use 'arithmetic' (of probabilities) or "
                "'geometric' (softmax of the mean log-probabilities)."
            )
        self.teachers = list(teachers)
        self.weights = None if weights is None else list(weights)
        self.mean = mean

    def bind(self, student, teacher) -> None:
        super().bind(student, teacher)
        self.teachers = with_teacher(
            teacher,
            self.teachers,
            "The 'ensemble' distillation method needs at least one teacher (usually several, e.g. "
            "teachers trained with different seeds or architectures); none was given.",
        )
        self._weights = _check_weights(self.weights, len(self.teachers))
        for t in self.teachers:
            t.trainable = False

    def loss(self, x, y, training: bool = True) -> LossParts:
        student_logits = self.student(x, training=training)
        logits = [t(x, training=False) for t in self.teachers]
        target = tf.stop_gradient(ensemble_log_probs(logits, self.temperature, self._weights, self.mean))
        return hinton_parts(y, student_logits, target, self.temperature, self.alpha)

    def settings(self):
        return {
            **super().settings(),
            "teachers": len(self.teachers),
            "mean": self.mean,
            "weights": [round(float(w), 6) for w in self._weights] if self.student is not None else self.weights,
        }


@dataclass
class TeacherSelection:
    indices: list[int]  # chosen teachers, in the order given
    weights: list[float]  # one per chosen teacher, summing to 1
    criterion: str
    scores: dict[str, float] = field(default_factory=dict)  # per-teacher score, and the ensemble's

    def pick(self, teachers: Sequence) -> list:
        return [teachers[i] for i in self.indices]


def _logits_of(teachers, x, batch_size: int) -> list[np.ndarray]:
    out = []
    for t in teachers:
        if isinstance(t, np.ndarray):
            out.append(t.astype(np.float32))
        else:
            out.append(np.asarray(t.predict(x, batch_size=batch_size, verbose=0), np.float32))
    return out


def select_teachers(
    teachers: Sequence,
    x_val,
    y_val,
    *,
    criterion: str = "accuracy",
    max_picks: int = 10,
    mean: str = "arithmetic",
    temperature: float = 1.0,
    min_agreement: float = 0.0,
    batch_size: int = 512,
) -> TeacherSelection:
    """Choose a subset of `teachers` (models, or their precomputed validation logits) and weights.

    criterion="accuracy": greedy forward selection with replacement, up to `max_picks` rounds,
    adding the teacher that most raises the ensemble's validation accuracy (ties: lower
    validation cross-entropy at `temperature`); it stops when no addition helps.
    criterion="agreement": weight each teacher by the fraction of validation examples on which
    its prediction matches the majority vote of the other teachers (no labels used); drop those
    under `min_agreement`.
    Deterministic: no randomness, ties go to the lower index.
    """
    if len(teachers) == 0:
        raise TinykdError("select_teachers needs at least one teacher.")
    if criterion not in ("accuracy", "agreement"):
        raise TinykdError(
            f"Unknown teacher-selection criterion '{criterion}': use 'accuracy' (validation "
            "accuracy of the ensemble) or 'agreement' (agreement between teachers)."
        )
    logits = _logits_of(teachers, x_val, batch_size)
    y_val = np.asarray(y_val).astype(np.int64)
    n = len(logits)
    preds = [z.argmax(-1) for z in logits]
    scores = {f"teacher{i}": float(np.mean(p == y_val)) for i, p in enumerate(preds)}

    if criterion == "agreement":
        num_classes = logits[0].shape[-1]
        agree = np.zeros(n)
        for i in range(n):
            others = [preds[j] for j in range(n) if j != i]
            if not others:
                agree[i] = 1.0
                continue
            votes = np.zeros((len(y_val), num_classes))
            for p in others:
                votes[np.arange(len(p)), p] += 1
            agree[i] = np.mean(votes.argmax(-1) == preds[i])
        chosen = [i for i in range(n) if agree[i] >= min_agreement and agree[i] > 0]
        if not chosen:
            raise TinykdError(
                f"No teacher agrees with the others on at least {min_agreement:.0%} of the "
                "validation set: lower min_agreement or check the teachers."
            )
        w = agree[chosen] / agree[chosen].sum()
        scores.update({f"agreement{i}": float(agree[i]) for i in range(n)})
    else:
        counts = np.zeros(n, dtype=np.int64)

        def evaluate(c):
            lp = ensemble_log_probs(
                [logits[i] for i in range(n) if c[i]], temperature, c[c > 0] / c.sum(), mean
            ).numpy()
            return float(np.mean(lp.argmax(-1) == y_val)), float(-np.mean(lp[np.arange(len(y_val)), y_val]))

        best = (-1.0, np.inf)
        for _ in range(max(1, max_picks)):
            trial_best, trial_i = None, None
            for i in range(n):
                c = counts.copy()
                c[i] += 1
                acc, ce = evaluate(c)
                if trial_best is None or (acc, -ce) > (trial_best[0], -trial_best[1]):
                    trial_best, trial_i = (acc, ce), i
            if (trial_best[0], -trial_best[1]) <= (best[0], -best[1]):
                break
            counts[trial_i] += 1
            best = trial_best
        chosen = [i for i in range(n) if counts[i]]
        w = counts[chosen] / counts.sum()
    acc, _ = _ensemble_accuracy([logits[i] for i in chosen], w, y_val, mean, temperature)
    scores["ensemble"] = acc
    return TeacherSelection(chosen, [float(v) for v in w], criterion, scores)


def _ensemble_accuracy(logits, w, y, mean, temperature):
    lp = ensemble_log_probs(logits, temperature, w, mean).numpy()
    return float(np.mean(lp.argmax(-1) == y)), lp


class EnsembleRecipe(BuildRecipe):
    """The build's teacher and `teachers - 1` more, trained in the extra-teachers stage with the
    [teacher] settings (as `ensemble_arch`) and their own seeds."""

    name = "ensemble"
    method = Ensemble
    config_keys = ("teachers", "ensemble_arch", "mean")
    extra_models = True

    def check(self, config) -> None:
        from ...models import check_model_name

        kd = config.distill
        if kd.teachers < 2:
            raise TinykdError(
                f"[distill] teachers must be at least 2 (got {kd.teachers}): the ensemble averages the "
                "build's teacher and teachers - 1 more. Try 2 or 3."
            )
        if kd.mean not in MEANS:
            raise TinykdError(
                f"[distill] mean must be 'arithmetic' (of probabilities) or 'geometric' (softmax of the "
                f"mean log-probabilities), not '{kd.mean}'."
            )
        if kd.ensemble_arch:
            check_model_name(kd.ensemble_arch)

    def train_extra_models(self, build):
        from ...models import count_params

        c, kd = build.config.teacher, build.config.distill
        arch = kd.ensemble_arch or c.arch
        folder = build.checkpoints("extra-teachers")
        artifacts, info = [], {"arch": arch, "params": {}, "train_seconds": {}}
        for i in range(1, kd.teachers):
            # Each member its own seed: same data, different initialisation, order and jitter.
            seed = build.seed("extra-teachers") + 1000 * i
            model = build.new_model(arch)
            result = build.train(
                "extra-teachers", model, c, seed=seed, checkpoint_dir=folder / f"teacher{i}", label=f"teacher{i}"
            )
            artifacts.append(build.save_model(model, f"teacher{i}"))
            build.save_history(f"teacher{i}", result)
            info["params"][f"teacher{i}"] = count_params(model)
            info["train_seconds"][f"teacher{i}"] = result.seconds
        return artifacts, info

    def kd_pair(self, build, stage):
        kd = build.config.distill
        teacher = build.load_model("teacher")
        others = [build.load_model(f"teacher{i}") for i in range(1, kd.teachers)]
        return self.make(kd, teachers=others, mean=kd.mean), teacher

    def evaluate_models(self, build):
        """Each member, and the ensemble itself (its mean at T = 1)."""
        from ...evaluate import predict_logits

        d, kd = build.dataset, build.config.distill
        members = [predict_logits(build.load_model("teacher"), d.x_test)]
        logits = {}
        for i in range(1, kd.teachers):
            members.append(predict_logits(build.load_model(f"teacher{i}"), d.x_test))
            logits[f"teacher{i}"] = members[-1]
        logits["ensemble"] = ensemble_log_probs(members, 1.0, None, kd.mean).numpy()
        return logits, {}

    def model_label(self, name):
        if name == "ensemble":
            return "ensemble of the teachers (float, mean at T = 1)"
        number = numbered(name, "teacher")
        return None if number is None else f"teacher {number} of the ensemble (float)"
