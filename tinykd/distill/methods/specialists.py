"""Specialists (Hinton, Vinyals & Dean 2015, §5): a generalist teacher plus specialist teachers
for groups of classes it confuses, combined into one set of soft targets for the student.

1. Groups (`find_groups`). The paper clusters the covariance of the generalist's predictions
   with K-means, for JFT's 15 000 classes. With 10 classes K-means would put every class into
   some cluster, most of them not confusable at all; we want a few small disjoint groups of
   the classes the generalist mixes up most. So we read the generalist's *soft confusion* on
   validation data, M[i, j] = sum over examples of class i of p(j | x) (soft, because a good
   teacher makes too few hard errors to rank pairs), symmetrise it (S = M + Mᵀ, zero
   diagonal) and grow groups greedily: the most confused pair of unused classes seeds a group;
   a class joins while its mean confusion with the group is at least `join_fraction` of the
   seed pair's, up to `max_classes`. Deterministic (ties go to the lower class index).

2. Specialists (`build_specialist`, `specialist_data`, `train_specialists`). A specialist is
   the generalist's network with a new output layer over the group's classes plus one
   "dustbin" class for everything else. Its body starts from the generalist's weights; the
   output rows of the group's classes are the generalist's, the dustbin's row is the mean of
   the other classes' rows with bias + log(number of other classes) (a first-order stand-in
   for the log-sum-exp of their logits). It trains on data enriched with its classes: every
   training example of the group plus as many drawn at random from the other classes.

3. Combination (`combine_log_probs`), the paper's eq. 5: the soft target q over all classes
   minimises  KL(p_g || q) + sum_m KL(p_m || q_m),  where p_g is the generalist's
   distribution, p_m specialist m's over (its classes, dustbin) and q_m is q restricted to
   specialist m's classes with every other class's mass summed into the dustbin.

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

   Closed form for disjoint groups. Dropping constants, maximise
       sum_c a_c log q_c + sum_m d_m log(1 - Q_m)   subject to sum_c q_c = 1,
   with a_c = p_g(c) + p_m(c) (the second term only if c is in group m), d_m = p_m(dustbin),
   Q_m = sum_{c in G_m} q_c, and R the classes in no group (Q_R their mass). Inside a group
   (and inside R) only sum a_c log q_c depends on how Q_m is shared, so q_c = Q_m a_c / A_m
   with A_m = sum_{c in G_m} a_c (likewise q_c = Q_R a_c / A_R). What remains is
       max  sum_m [A_m log Q_m + d_m log(1 - Q_m)] + A_R log Q_R,  sum_m Q_m + Q_R = 1.
   Stationarity with multiplier lambda: A_m / Q_m - d_m / (1 - Q_m) = lambda and
   A_R / Q_R = lambda. The first is lambda Q² - (lambda + A_m + d_m) Q + A_m = 0, whose root
   in (0, 1) is Q_m = 2 A_m / (b + sqrt(b² - 4 lambda A_m)), b = lambda + A_m + d_m, for any
   real lambda; Q_R = A_R / lambda (lambda > 0 when R is not empty). Every Q falls as lambda
   rises, so the lambda with sum Q = 1 is found by bisection (float64, per example). The
   objective is concave in q, so this stationary point is the minimum. When every specialist
   agrees with the generalist (p_m = p_g restricted and dustbinned) q = p_g.

(Longer than 400 lines on purpose: the derivation above, the three steps and the method's build
recipe read as one.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras

import tinykd  # noqa: F401

from ...errors import TinykdError
from .base import DistillationMethod, LossParts, find_layer
from .hinton import hinton_parts
from .recipe import BuildRecipe

# The bracket below is at most M + 4 wide: 40 halvings leave it ~1e-11 wide (float64), and
# each costs ~20 small ops per batch, so more only slow training down.
_BISECTION_STEPS = 40
#: A specialist counts where one of its classes is the generalist's first choice (see "Active specialists").
TOP_K = 1


# ---- 1. groups -------------------------------------------------------------------------------


def soft_confusion(probabilities, labels, num_classes: int) -> np.ndarray:
    """M[i, j] = sum over examples labelled i of the predicted probability of class j."""
    probabilities = np.asarray(probabilities, np.float64)
    labels = np.asarray(labels).astype(np.int64)
    out = np.zeros((num_classes, num_classes))
    np.add.at(out, labels, probabilities)
    return out


def find_groups(confusion, n_groups: int, max_classes: int = 3, join_fraction: float = 0.5) -> list[list[int]]:
    """Up to `n_groups` disjoint groups of mutually confused classes (see the module docstring)."""
    c = np.asarray(confusion, np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] < 3:
        raise TinykdError(f"find_groups needs a square confusion matrix of at least 3 classes, got shape {c.shape}.")
    if int(n_groups) < 1 or int(max_classes) < 2:
        raise TinykdError(
            f"Specialists need at least 1 group of at least 2 classes (got {n_groups} groups of "
            f"up to {max_classes} classes)."
        )
    num_classes = c.shape[0]
    s = c + c.T
    np.fill_diagonal(s, 0.0)
    unused = list(range(num_classes))
    groups: list[list[int]] = []
    # A group may not take every class: the dustbin must keep at least one.
    while len(groups) < n_groups and len(unused) >= 3:
        # max() keeps the first of equal values: ties go to the lower class indices.
        pairs = [(i, j) for a, i in enumerate(unused) for j in unused[a + 1 :]]
        i, j = max(pairs, key=lambda pair: s[pair])
        best = s[i, j]
        if best <= 0:
            break
        group = [i, j]
        while len(group) < max_classes and len(unused) - len(group) > 1:
            k = max((k for k in unused if k not in group), key=lambda k: s[k, group].mean())
            score = s[k, group].mean()
            if score < join_fraction * best or score <= 0:
                break
            group.append(k)
        groups.append(sorted(group))
        unused = [k for k in unused if k not in group]
    if not groups:
        raise TinykdError(
            "The generalist confuses no pair of classes on the validation data, so there is "
            "nothing for a specialist to learn; use --method hinton instead."
        )
    return groups


def check_groups(groups: Sequence[Sequence[int]], num_classes: int) -> list[list[int]]:
    groups = [sorted(int(c) for c in g) for g in groups]
    seen = [c for g in groups for c in g]
    if (
        not groups
        or any(len(g) < 1 for g in groups)
        or len(set(seen)) != len(seen)
        or any(not 0 <= c < num_classes for c in seen)
        or (len(groups) == 1 and len(seen) == num_classes)
    ):
        raise TinykdError(
            f"Specialist groups must be disjoint lists of class indices in 0..{num_classes - 1}, and one group "
            f"alone may not hold every class (its dustbin would be empty); got {groups}."
        )
    return groups


# ---- 2. specialist networks --------------------------------------------------------------------


def build_specialist(generalist: keras.Model, group: Sequence[int], name: str = "specialist") -> keras.Model:
    """The generalist's network (a copy of its weights) with outputs: the group's classes, then a dustbin."""
    body = keras.models.clone_model(generalist)
    body.set_weights(generalist.get_weights())
    old = find_layer(body, "logits")
    kernel, bias = old.get_weights()
    group = list(group)
    others = [c for c in range(kernel.shape[1]) if c not in group]
    head = keras.layers.Dense(len(group) + 1, name="logits")
    model = keras.Model(body.inputs, head(old.input), name=name)
    head.set_weights(
        [
            np.concatenate([kernel[:, group], kernel[:, others].mean(axis=1, keepdims=True)], axis=1),
            np.concatenate([bias[group], [bias[others].mean() + np.log(len(others))]]).astype(bias.dtype),
        ]
    )
    return model


def specialist_labels(y, group: Sequence[int]) -> np.ndarray:
    """Class group[i] -> i; any other class -> len(group) (the dustbin)."""
    y = np.asarray(y).astype(np.int64)
    mapped = np.full(len(y), len(group), np.int64)
    for i, c in enumerate(group):
        mapped[y == c] = i
    return mapped


def specialist_data(x, y, group: Sequence[int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Every example of the group's classes plus as many from the other classes (the paper's half
    and half), drawn by the seed, in their original order; labels mapped by `specialist_labels`."""
    y = np.asarray(y)
    inside = np.flatnonzero(np.isin(y, list(group)))
    outside = np.flatnonzero(~np.isin(y, list(group)))
    rng = np.random.default_rng([seed, 7])
    drawn = rng.choice(outside, size=min(len(inside), len(outside)), replace=False)
    chosen = np.sort(np.concatenate([inside, drawn]))
    return x[chosen], specialist_labels(y[chosen], group)


@dataclass
class Specialist:
    model: keras.Model
    classes: list[int]
    history: dict = field(default_factory=dict)
    seconds: float = 0.0


def train_specialists(
    generalist: keras.Model,
    groups: Sequence[Sequence[int]],
    x_train,
    y_train,
    validation: tuple | None,
    *,
    checkpoint_dir: str | Path,
    seed: int,
    label: str = "specialist",
    **train_kwargs,
) -> list[Specialist]:
    """Train one specialist per group (see `build_specialist`, `specialist_data`) through the
    ordinary training loop; specialist i checkpoints in checkpoint_dir/specialist<i> with seed
    seed + i, so a cut-short run resumes. `train_kwargs` go to `tinykd.distill.train`."""
    from ..hinton import Distiller
    from ..training import train

    num_classes = int(generalist.outputs[0].shape[-1])
    groups = check_groups(groups, num_classes)
    out = []
    for i, group in enumerate(groups):
        keras.utils.set_random_seed(seed + i)
        model = build_specialist(generalist, group, name=f"specialist{i}")
        x, y = specialist_data(x_train, y_train, group, seed + i)
        val = None
        if validation is not None:
            val = (validation[0], specialist_labels(validation[1], group))
        result = train(
            Distiller(model, None),
            x,
            y,
            val,
            seed=seed + i,
            checkpoint_dir=Path(checkpoint_dir) / f"specialist{i}",
            label=f"{label} {i} {group}",
            **train_kwargs,
        )
        out.append(Specialist(model, list(group), result.history, result.seconds))
    return out


# ---- 3. combination ------------------------------------------------------------------------------


def _membership(groups: Sequence[Sequence[int]], num_classes: int) -> np.ndarray:
    g = np.zeros((num_classes, len(groups)))
    for m, group in enumerate(groups):
        g[list(group), m] = 1.0
    return g


def combine_log_probs(
    generalist_logits,
    specialist_logits: Sequence,
    groups: Sequence[Sequence[int]],
    temperature: float = 1.0,
    top_k: int | None = None,
) -> tf.Tensor:
    """log q, the full distribution closest to the generalist and the specialists (module docstring),
    from [batch, classes] generalist logits and one [batch, len(group) + 1] logits tensor per group.
    `top_k`: a specialist counts for an example only if one of its classes is among the generalist's
    top_k there (None: every specialist everywhere)."""
    num_classes = int(generalist_logits.shape[-1])
    groups = check_groups(groups, num_classes)
    if len(specialist_logits) != len(groups):
        raise TinykdError(f"{len(specialist_logits)} specialist outputs for {len(groups)} groups: one each needed.")
    f64 = tf.float64
    t = tf.constant(temperature, f64)
    p_g = tf.nn.softmax(tf.cast(generalist_logits, f64) / t)
    member = tf.constant(_membership(groups, num_classes), f64)  # [C, M]
    if top_k is None:
        active = tf.ones_like(p_g[:, :1]) * tf.ones([1, len(groups)], f64)
    else:
        top = tf.math.top_k(p_g, k=min(int(top_k), num_classes)).indices
        in_top = tf.reduce_sum(tf.one_hot(top, num_classes, dtype=f64), axis=1)  # [B, C]
        active = tf.cast(tf.matmul(in_top, member) > 0, f64)  # [B, M]
    rest = 1.0 - tf.matmul(active, member, transpose_b=True)  # [B, C]: classes in no active group
    a = p_g
    dust = []
    for m, (z, group) in enumerate(zip(specialist_logits, groups)):
        p_m = tf.nn.softmax(tf.cast(z, f64) / t) * active[:, m : m + 1]
        # Scatter the specialist's class probabilities onto their full-class columns.
        place = tf.constant(np.eye(num_classes)[list(group)], f64)  # [k, C]
        a = a + tf.matmul(p_m[:, :-1], place)
        dust.append(p_m[:, -1])
    d = tf.stack(dust, axis=1)  # [B, M]
    a_m = tf.matmul(a, member) * active  # [B, M]
    a_r = tf.reduce_sum(a * rest, axis=1, keepdims=True)  # [B, 1]
    has_rest = a_r > 0

    def masses(lam):
        b = lam + a_m + d
        root = 2.0 * a_m / (b + tf.sqrt(tf.maximum(b * b - 4.0 * lam * a_m, 0.0)))
        q_m = tf.where(a_m > 0, root, tf.zeros_like(root))  # an inactive group holds no mass of its own
        q_r = tf.where(has_rest, a_r / tf.maximum(lam, 1e-300), tf.zeros_like(a_r))
        return q_m, q_r

    # S(lambda) = sum Q falls from above 1 at lo to at most 1 at hi (see the module docstring):
    # lo = -3 covers the case without a rest (lambda may be negative), hi = 1 + M bounds it.
    num_groups = float(len(groups))
    lo = tf.fill(tf.shape(a_r), tf.constant(-3.0, f64))
    hi = tf.fill(tf.shape(a_r), tf.constant(1.0 + num_groups, f64))
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        q_m, q_r = masses(mid)
        total = tf.reduce_sum(q_m, axis=1, keepdims=True) + q_r
        too_much = tf.logical_or(total > 1.0, tf.logical_and(has_rest, mid <= 0))
        lo = tf.where(too_much, mid, lo)
        hi = tf.where(too_much, hi, mid)
    q_m, q_r = masses(0.5 * (lo + hi))
    share = tf.matmul(q_m / tf.maximum(a_m, 1e-300), member, transpose_b=True) + rest * (q_r / tf.maximum(a_r, 1e-300))
    q = a * share
    q = q / tf.reduce_sum(q, axis=1, keepdims=True)  # removes the bisection's last rounding
    return tf.cast(tf.math.log(tf.maximum(q, 1e-30)), tf.float32)


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
        specialists = train_specialists(
            generalist,
            groups,
            d.x_train,
            d.y_train,
            (d.x_val, d.y_val),
            checkpoint_dir=build.checkpoints("extra-teachers"),
            seed=build.seed("extra-teachers"),
            epochs=section.epochs,
            batch_size=section.batch_size,
            learning_rate=section.learning_rate,
            max_shift=build.config.data.jitter,
        )
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
