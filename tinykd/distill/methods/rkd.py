"""Relational knowledge distillation (Park, Kim, Lu & Cho, CVPR 2019) on penultimate embeddings.

Distance-wise: psi_D(i, j) = ||e_i - e_j|| / mu, mu the mean distance over pairs i != j of the
batch; loss = mean over all (i, j) of Huber(psi_D(student), psi_D(teacher)).
Angle-wise: psi_A(i, j, k) = <(e_j - e_i)/||.||, (e_k - e_i)/||.||>; loss = mean over all
(i, j, k) of Huber(psi_A(student), psi_A(teacher)). Huber with delta 1 (smooth L1), as in
the paper's code. Total = Hinton loss + w_d * distance + w_a * angle (paper: 25 and 50).
Only relations are matched, so the student's and teacher's embeddings may differ in width.

The angle term costs B^3 (and B^2 x D memory) per batch: 1.1 s per batch of 128 on two
cores, ten times the rest of the step. It is computed on the first `angle_batch` examples
of each batch (32 by default; batches are shuffled, so that is a random sub-batch): 64x
fewer triplets, still ~30 000 per batch, an unbiased estimate of the same mean. The
distance term (B^2) keeps the whole batch.
"""

from __future__ import annotations

import tensorflow as tf

import tinykd  # noqa: F401

from ...errors import TinykdError
from .base import PENULTIMATE
from .hinton import FeatureDistillation
from .recipe import BuildRecipe

_EPS = 1e-12


def _flat(e):
    e = tf.cast(e, tf.float32)
    return tf.reshape(e, [tf.shape(e)[0], -1])


def huber(a, b) -> tf.Tensor:
    d = tf.abs(a - b)
    return tf.reduce_mean(tf.where(d < 1.0, 0.5 * d * d, d - 0.5))


def pairwise_distances(e) -> tf.Tensor:
    """[n, n] Euclidean distances with a zero diagonal (and finite gradients at zero)."""
    e = _flat(e)
    sq = tf.reduce_sum(e * e, axis=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * tf.matmul(e, e, transpose_b=True)
    d = tf.sqrt(tf.maximum(d2, _EPS))
    n = tf.shape(e)[0]
    return d * (1.0 - tf.eye(n))


def normalised_distances(e) -> tf.Tensor:
    d = pairwise_distances(e)
    n = tf.cast(tf.shape(d)[0], tf.float32)
    mean = tf.reduce_sum(d) / tf.maximum(n * (n - 1.0), 1.0)
    return d / tf.maximum(mean, _EPS)


def angles(e) -> tf.Tensor:
    """[n, n, n] cosines of the angle at i between e_j - e_i and e_k - e_i (zero vectors give 0)."""
    e = _flat(e)
    diff = e[None, :, :] - e[:, None, :]  # diff[i, j] = e_j - e_i
    unit = diff * tf.math.rsqrt(tf.maximum(tf.reduce_sum(diff * diff, axis=-1, keepdims=True), _EPS))
    return tf.matmul(unit, unit, transpose_b=True)


def rkd_distance_loss(student_e, teacher_e) -> tf.Tensor:
    return huber(normalised_distances(student_e), tf.stop_gradient(normalised_distances(teacher_e)))


def rkd_angle_loss(student_e, teacher_e) -> tf.Tensor:
    return huber(angles(student_e), tf.stop_gradient(angles(teacher_e)))


class RKD(FeatureDistillation):
    name = "rkd"

    def __init__(
        self,
        temperature: float = 20.0,
        alpha: float = 0.9,
        distance_weight: float = 25.0,
        angle_weight: float = 50.0,
        student_layer: str = PENULTIMATE,
        teacher_layer: str = PENULTIMATE,
        angle_batch: int = 32,
    ):
        super().__init__(temperature, alpha, student_layer, teacher_layer)
        if not (distance_weight >= 0 and angle_weight >= 0):
            raise TinykdError(
                f"RKD weights must be >= 0 (got distance {distance_weight}, angle {angle_weight}); "
                "the paper used 25 and 50."
            )
        if int(angle_batch) < 3:
            raise TinykdError(
                f"RKD's angle_batch must be at least 3 examples (an angle needs three); got "
                f"{angle_batch}. 32 is a good start."
            )
        self.distance_weight, self.angle_weight = float(distance_weight), float(angle_weight)
        self.angle_batch = int(angle_batch)

    def feature_loss(self, student_e, teacher_e) -> tf.Tensor:
        loss = tf.constant(0.0)
        if self.distance_weight:
            loss += self.distance_weight * rkd_distance_loss(student_e, teacher_e)
        if self.angle_weight:
            n = self.angle_batch
            loss += self.angle_weight * rkd_angle_loss(student_e[:n], teacher_e[:n])
        return loss

    def feature_settings(self):
        return {
            "distance_weight": self.distance_weight,
            "angle_weight": self.angle_weight,
            "angle_batch": self.angle_batch,
        }


class RKDRecipe(BuildRecipe):
    name = "rkd"
    method = RKD
    single_teacher = True
