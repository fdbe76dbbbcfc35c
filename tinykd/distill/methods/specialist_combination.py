"""How the `specialists` method combines its teachers (Hinton, Vinyals & Dean 2015, §5, eq. 5):
the soft target q over all classes minimises  KL(p_g || q) + sum_m KL(p_m || q_m),  where p_g
is the generalist's distribution, p_m specialist m's over (its classes, dustbin) and q_m is q
restricted to specialist m's classes with every other class's mass summed into the dustbin.

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
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

import tinykd  # noqa: F401

from ...errors import TinykdError
from .specialist_teachers import check_groups

# The bracket below is at most M + 4 wide: 40 halvings leave it ~1e-11 wide (float64), and
# each costs ~20 small ops per batch, so more only slow training down.
_BISECTION_STEPS = 40


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
