"""The specialist teachers of the `specialists` method (Hinton, Vinyals & Dean 2015, §5): the
groups of classes they are for, their networks and their training.

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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tf_keras as keras

import tinykd  # noqa: F401

from ...errors import TinykdError
from .base import find_layer

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
