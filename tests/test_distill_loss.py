"""The Hinton loss against a hand computation in numpy."""

import numpy as np
import pytest
import tensorflow as tf

import tinykd  # noqa: F401
from tinykd.distill import distillation_loss


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def hand_loss(y, s, t, T, alpha):
    p_t, p_s = softmax(t / T), softmax(s / T)
    kl = np.sum(p_t * (np.log(p_t) - np.log(p_s)), axis=-1).mean()
    ce = -np.log(softmax(s)[np.arange(len(y)), y]).mean()
    return alpha * T * T * kl + (1 - alpha) * ce, T * T * kl, ce


CASE = dict(
    y=np.array([2, 0, 1]),
    s=np.array([[1.0, -0.5, 2.0], [0.3, 0.1, -1.0], [-2.0, 1.5, 0.5]]),
    t=np.array([[2.0, -1.0, 5.0], [4.0, 0.5, -2.0], [-1.0, 3.0, 1.0]]),
)


@pytest.mark.parametrize("T,alpha", [(1.0, 0.5), (4.0, 0.9), (20.0, 0.7)])
def test_matches_hand_computation(T, alpha):
    total, soft, hard = distillation_loss(CASE["y"], CASE["s"], CASE["t"], T, alpha)
    want_total, want_soft, want_hard = hand_loss(CASE["y"], CASE["s"], CASE["t"], T, alpha)
    np.testing.assert_allclose(float(total), want_total, rtol=1e-4)  # float32 against float64
    np.testing.assert_allclose(float(soft), want_soft, rtol=1e-4)  # float32 against float64
    np.testing.assert_allclose(float(hard), want_hard, rtol=1e-4)  # float32 against float64


def test_alpha_limits():
    T = 8.0
    _, soft, hard = hand_loss(CASE["y"], CASE["s"], CASE["t"], T, 0.5)
    total0, *_ = distillation_loss(CASE["y"], CASE["s"], CASE["t"], T, 0.0)
    total1, *_ = distillation_loss(CASE["y"], CASE["s"], CASE["t"], T, 1.0)
    np.testing.assert_allclose(float(total0), hard, rtol=1e-5)  # alpha=0: labels only
    np.testing.assert_allclose(float(total1), soft, rtol=1e-5)  # alpha=1: teacher only


def test_t_squared_keeps_gradient_scale():
    """Without T^2 the soft gradients would shrink ~1/T^2; with it they stay the same order."""
    y, t = CASE["y"], tf.constant(CASE["t"], tf.float32)
    norms = []
    for T in (20.0, 200.0):
        s = tf.Variable(CASE["s"], dtype=tf.float32)
        with tf.GradientTape() as tape:
            total, _, _ = distillation_loss(y, s, t, T, 1.0)
        norms.append(float(tf.norm(tape.gradient(total, s))))
    # High-T limit: the gradient tends to (s - t - mean)/(N K), independent of T. Without the
    # T^2 factor the two norms would differ by a factor of 100.
    assert 0.8 < norms[0] / norms[1] < 1.25
    assert norms[1] > 0.05


def test_kl_is_zero_when_student_equals_teacher():
    _, soft, _ = distillation_loss(CASE["y"], CASE["t"], CASE["t"], 3.0, 0.9)
    assert abs(float(soft)) < 1e-6


def test_no_teacher_is_plain_cross_entropy():
    total, soft, hard = distillation_loss(CASE["y"], CASE["s"], None, 20.0, 0.9)
    _, _, want = hand_loss(CASE["y"], CASE["s"], CASE["t"], 20.0, 0.9)
    np.testing.assert_allclose(float(total), want, rtol=1e-6)
    assert float(soft) == 0.0
