"""Distillation methods: each loss against a numpy hand computation on tiny fixed models, and
each method training a tiny student on an MNIST subset well past chance (also under QAT)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import tinykd  # noqa: F401
from tinykd.distill import Distiller, born_again, distillation_loss, get_method, select_teachers, train
from tinykd.distill.methods import METHODS, RKD, Ensemble, FitNets, Hinton, Online, SelfDistillation, ensemble_log_probs
from tinykd.errors import TinykdError
from tinykd.models import build_model

# ---- numpy reference ---------------------------------------------------------------------


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def relu(z):
    return np.maximum(z, 0.0)


def kl(p, q):
    return np.sum(p * (np.log(p) - np.log(q)), axis=-1).mean()


def ce(y, logits):
    return -np.log(softmax(logits)[np.arange(len(y)), y]).mean()


def huber(a, b):
    d = np.abs(a - b)
    return np.where(d < 1.0, 0.5 * d * d, d - 0.5).mean()


def np_rkd_distance(e):
    n = len(e)
    d = np.array([[np.linalg.norm(e[i] - e[j]) for j in range(n)] for i in range(n)])
    return d / (d.sum() / (n * (n - 1)))


def np_rkd_angle(e):
    n = len(e)
    out = np.zeros((n, n, n))
    for i in range(n):
        for j in range(n):
            for k in range(n):
                a, b = e[j] - e[i], e[k] - e[i]
                if j != i and k != i:
                    out[i, j, k] = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    return out


# ---- tiny hand-made models -----------------------------------------------------------------

X = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
Y = np.array([0, 2, 1, 1, 0])


def tiny_mlp(hidden, seed, name):
    """Input(4) -> fc1.. (ReLU) -> logits(3), with weights from a seeded numpy generator."""
    inputs = keras.Input(shape=(4,), name="input")
    x = inputs
    for i, units in enumerate(hidden, start=1):
        x = keras.layers.Dense(units, activation="relu", name=f"fc{i}")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(x), name=name)
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(scale=1.0, size=w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def np_forward(model, x):
    """(activations by layer name, logits) computed with numpy from the model's weights."""
    acts, h = {}, x.astype(np.float64)
    for layer in model.layers[1:]:
        w, b = layer.get_weights()
        h = h @ w + b
        if layer.name != "logits":
            h = relu(h)
        acts[layer.name] = h
    return acts, h


def loss_of(method, student, teacher):
    Distiller(student, teacher, method=method)  # binds the method
    parts = method.loss(tf.constant(X), tf.constant(Y), training=False)
    return float(parts.total), float(parts.soft), float(parts.hard)


def hinton_hand(y, s, t, T, alpha):
    soft = T * T * kl(softmax(t / T), softmax(s / T))
    hard = ce(y, s)
    return alpha * soft + (1 - alpha) * hard, soft, hard


# ---- (1) every loss against the hand computation -------------------------------------------


def test_hinton_method_matches_hand_and_distillation_loss():
    student, teacher = tiny_mlp([5, 3], 1, "s"), tiny_mlp([6], 2, "t")
    _, s = np_forward(student, X)
    _, t = np_forward(teacher, X)
    got = loss_of(Hinton(4.0, 0.7), student, teacher)
    np.testing.assert_allclose(got, hinton_hand(Y, s, t, 4.0, 0.7), rtol=1e-4)
    # The old function and the default Distiller give the same numbers.
    old = distillation_loss(Y, s.astype(np.float32), t.astype(np.float32), 4.0, 0.7)
    np.testing.assert_allclose(got, [float(v) for v in old], rtol=1e-5)
    assert isinstance(Distiller(student, teacher, 4.0, 0.7).method, Hinton)


@pytest.mark.parametrize("mean", ["arithmetic", "geometric"])
def test_ensemble_matches_hand(mean):
    student = tiny_mlp([5, 3], 1, "s")
    teachers = [tiny_mlp([6], 2, "t1"), tiny_mlp([6], 3, "t2")]
    T, alpha, w = 3.0, 0.8, np.array([0.25, 0.75])
    _, s = np_forward(student, X)
    p = [softmax(np_forward(t, X)[1] / T) for t in teachers]
    if mean == "arithmetic":
        target = w[0] * p[0] + w[1] * p[1]
    else:
        target = softmax(w[0] * np.log(p[0]) + w[1] * np.log(p[1]))
    soft, hard = T * T * kl(target, softmax(s / T)), ce(Y, s)
    got = loss_of(Ensemble(teachers, T, alpha, weights=[1, 3], mean=mean), student, None)
    np.testing.assert_allclose(got, (alpha * soft + (1 - alpha) * hard, soft, hard), rtol=1e-4)
    # The two means really differ on this case (the test would not notice a swapped mean otherwise).
    other = "geometric" if mean == "arithmetic" else "arithmetic"
    logits = [np_forward(t, X)[1].astype(np.float32) for t in teachers]
    assert not np.allclose(
        ensemble_log_probs(logits, T, w, mean).numpy(), ensemble_log_probs(logits, T, w, other).numpy(), atol=1e-3
    )


def test_ensemble_includes_distiller_teacher_and_rejects_bad_weights():
    student, t1, t2 = tiny_mlp([5, 3], 1, "s"), tiny_mlp([6], 2, "t1"), tiny_mlp([6], 3, "t2")
    method = Ensemble([t2], 2.0, 0.5)
    Distiller(student, t1, method=method)
    assert method.teachers == [t1, t2]
    with pytest.raises(TinykdError, match="weights"):
        Distiller(student, None, method=Ensemble([t1, t2], weights=[1.0]))
    with pytest.raises(TinykdError, match="at least one teacher"):
        Distiller(student, None, method=Ensemble([]))


def test_select_teachers_by_accuracy_and_by_agreement():
    y = np.array([0, 1, 2, 0])
    # A: confidently right on 0-2, unsure (wrong) on 3. B: confidently right on 3 only, unsure elsewhere.
    # C: wrong everywhere. Together A and B get every example right; C never helps.
    a = np.array([[5, 0, 0], [0, 5, 0], [0, 0, 5], [0, 0.5, 0]], np.float32)
    b = np.array([[0, 0.3, 0], [0.3, 0, 0], [0.3, 0, 0], [5, 0, 0]], np.float32)
    c = np.array([[0, 4, 0], [4, 0, 0], [4, 0, 0], [0, 0, 4]], np.float32)
    sel = select_teachers([a, b, c], None, y, criterion="accuracy")
    assert 0 in sel.indices and 1 in sel.indices and 2 not in sel.indices
    assert sel.scores["ensemble"] == 1.0 and sel.scores["teacher0"] == 0.75 and sel.scores["teacher2"] == 0.0
    np.testing.assert_allclose(sum(sel.weights), 1.0)
    assert sel.weights[sel.indices.index(0)] > sel.weights[sel.indices.index(1)]  # A picked more often

    # Agreement (no labels): predictions A=[0,1,2,1], A'=[0,1,2,1] (a copy), C=[1,0,0,2].
    # A agrees with the majority of the others (A', C: tie -> lowest class) on ... computed below.
    preds = [np.array([0, 1, 2, 1]), np.array([0, 1, 2, 1]), np.array([1, 0, 0, 2])]
    sel = select_teachers([a, a.copy(), c], None, y, criterion="agreement", min_agreement=0.3)

    def vote(others):
        v = np.zeros((4, 3))
        for p in others:
            v[np.arange(4), p] += 1
        return v.argmax(-1)

    agree = [np.mean(vote([preds[j] for j in range(3) if j != i]) == preds[i]) for i in range(3)]
    keep = [i for i in range(3) if agree[i] >= 0.3]
    assert sel.indices == keep and 2 not in keep
    np.testing.assert_allclose(sel.weights, np.array(agree)[keep] / np.sum(np.array(agree)[keep]))


def test_fitnets_matches_hand():
    student, teacher = tiny_mlp([5, 3], 1, "s"), tiny_mlp([6], 2, "t")
    method = FitNets(2.0, 0.6, hint_weight=0.5)
    Distiller(student, teacher, method=method)
    rng = np.random.default_rng(9)
    wa, ba = rng.normal(size=(5, 6)).astype(np.float32), rng.normal(size=6).astype(np.float32)
    method.adapter.set_weights([wa, ba])
    s_acts, s = np_forward(student, X)
    t_acts, t = np_forward(teacher, X)
    total, soft, hard = hinton_hand(Y, s, t, 2.0, 0.6)
    hint = np.mean((s_acts["fc1"] @ wa + ba - t_acts["fc1"]) ** 2)
    got = method.loss(tf.constant(X), tf.constant(Y), training=False)
    np.testing.assert_allclose(
        [float(got.total), float(got.soft), float(got.hard)], [total + 0.5 * hint, soft + 0.5 * hint, hard], rtol=1e-4
    )
    # The adapter is trained (its variables are in the update) but is no part of the student.
    wrapper = Distiller(student, teacher, method=FitNets())
    adapter_vars = {id(v) for v in wrapper.method.adapter.trainable_variables}
    assert adapter_vars <= {id(v) for v in wrapper.trained_variables}
    assert not adapter_vars & {id(v) for v in student.variables}
    assert [layer.name for layer in student.layers] == ["input", "fc1", "fc2", "logits"]


def test_fitnets_unknown_layer_is_a_user_error():
    with pytest.raises(TinykdError, match="no layer named 'conv9'"):
        Distiller(tiny_mlp([5, 3], 1, "s"), tiny_mlp([6], 2, "t"), method=FitNets(teacher_layer="conv9"))


def test_rkd_matches_hand():
    student, teacher = tiny_mlp([5, 3], 1, "s"), tiny_mlp([6], 2, "t")
    s_acts, s = np_forward(student, X)
    t_acts, t = np_forward(teacher, X)
    es, et = s_acts["fc2"], t_acts["fc1"]  # penultimate layers: the inputs of `logits`
    # Distinct embeddings: every pair i != j has a direction, so the hand angles are all defined.
    assert min(np.linalg.norm(e[i] - e[j]) for e in (es, et) for i in range(5) for j in range(5) if i != j) > 1e-3
    dist = huber(np_rkd_distance(es), np_rkd_distance(et))
    ang = huber(np_rkd_angle(es), np_rkd_angle(et))
    assert dist > 1e-3 and ang > 1e-3
    total, soft, hard = hinton_hand(Y, s, t, 3.0, 0.9)
    got = loss_of(RKD(3.0, 0.9, distance_weight=25.0, angle_weight=50.0), student, teacher)
    rel = 25.0 * dist + 50.0 * ang
    np.testing.assert_allclose(got, (total + rel, soft + rel, hard), rtol=1e-4)
    # Relations are invariant to scale: a student whose embedding is the teacher's times 3 pays nothing.
    from tinykd.distill.methods import rkd_angle_loss, rkd_distance_loss

    assert float(rkd_distance_loss(3.0 * et.astype(np.float32), et.astype(np.float32))) < 1e-6
    assert float(rkd_angle_loss(3.0 * et.astype(np.float32), et.astype(np.float32))) < 1e-6


def test_online_matches_hand_and_trains_both_peers():
    student, peer, peer2 = tiny_mlp([5, 3], 1, "s"), tiny_mlp([6], 2, "p"), tiny_mlp([4], 3, "p2")
    T, alpha = 2.0, 0.5
    method = Online([peer2], T, alpha)
    wrapper = Distiller(student, peer, method=method)
    assert peer.trainable and method.peers == [peer, peer2]
    z = [np_forward(m, X)[1] for m in (student, peer, peer2)]
    parts = []
    for k in range(3):
        soft = np.mean([T * T * kl(softmax(z[j] / T), softmax(z[k] / T)) for j in range(3) if j != k])
        hard = ce(Y, z[k])
        parts.append((alpha * soft + (1 - alpha) * hard, soft, hard))
    got = method.loss(tf.constant(X), tf.constant(Y), training=False)
    np.testing.assert_allclose(
        [float(got.total), float(got.soft), float(got.hard)],
        [sum(p[0] for p in parts), parts[0][1], parts[0][2]],
        rtol=1e-4,
    )
    ids = {id(v) for v in wrapper.trained_variables}
    assert all(id(v) in ids for m in (student, peer, peer2) for v in m.trainable_variables)


def test_self_distillation_is_hinton_with_own_architecture():
    student, previous = tiny_mlp([5, 3], 1, "gen1"), tiny_mlp([5, 3], 4, "gen0")
    _, s = np_forward(student, X)
    _, t = np_forward(previous, X)
    got = loss_of(SelfDistillation(1.0, 0.5), student, previous)
    np.testing.assert_allclose(got, hinton_hand(Y, s, t, 1.0, 0.5), rtol=1e-4)
    assert not previous.trainable
    with pytest.raises(TinykdError, match="needs a teacher"):
        Distiller(student, None, method=SelfDistillation())


def test_registry_and_user_errors():
    assert set(METHODS) == {"hinton", "ensemble", "specialists", "fitnets", "rkd", "online", "self"}
    assert get_method("rkd", 8.0, 0.5, angle_weight=0.0).angle_weight == 0.0
    with pytest.raises(TinykdError, match="Unknown distillation method 'dark'"):
        get_method("dark")
    with pytest.raises(TinykdError, match="no option hint_layer"):
        get_method("fitnets", hint_layer="fc1")
    with pytest.raises(TinykdError, match="Temperature must be > 0"):
        get_method("hinton", temperature=0.0)
    with pytest.raises(TinykdError, match="alpha must be between 0 and 1"):
        get_method("online", alpha=1.5)
    with pytest.raises(TinykdError, match="needs a teacher"):
        Distiller(tiny_mlp([5, 3], 1, "s"), None, method=get_method("rkd"))


# ---- (2) training a tiny student on MNIST ------------------------------------------------------

EPOCHS = 3
FIT = dict(epochs=EPOCHS, batch_size=64, learning_rate=1e-2, max_shift=0)


@pytest.fixture(scope="module")
def mnist_small(mnist_dir):
    from tinykd.data import mnist

    tf.config.experimental.enable_op_determinism()
    return mnist.load(mnist_dir, val_size=500, seed=0, train_limit=2000, test_limit=500)


def fit(wrapper, d, tmp_path, seed=1, limit=None, **overrides):
    return train(
        wrapper,
        d.x_train[:limit],
        d.y_train[:limit],
        None,
        seed=seed,
        checkpoint_dir=tmp_path,
        label="test",
        **{**FIT, **overrides},
    )


def accuracy(model, d):
    return float(np.mean(model.predict(d.x_test, verbose=0).argmax(-1) == d.y_test))


@pytest.fixture(scope="module")
def teacher(mnist_small, tmp_path_factory):
    """A small CNN taught in a few seconds: it has the conv/pool/fc1 layers the methods read."""
    keras.utils.set_random_seed(0)
    model = build_model("cnn-small", mnist_small.input_shape, mnist_small.num_classes)
    fit(Distiller(model, None), mnist_small, tmp_path_factory.mktemp("teacher"), seed=0, epochs=5)
    assert accuracy(model, mnist_small) >= 0.85
    return model


def student(d, seed=1, arch="mlp-30-30"):
    keras.utils.set_random_seed(seed)
    return build_model(arch, d.input_shape, d.num_classes)


@pytest.fixture(scope="module")
def second_teacher(mnist_small, tmp_path_factory):
    """A second, different teacher for the ensemble: an MLP."""
    mlp = student(mnist_small, seed=7, arch="mlp-64")
    fit(Distiller(mlp, None), mnist_small, tmp_path_factory.mktemp("second"), seed=7)
    return mlp


def make_method(name, d, teacher, second_teacher=None):
    """(method, teacher for the Distiller) for each method name."""
    if name == "ensemble":
        return get_method("ensemble", 4.0, 0.9, teachers=[second_teacher], mean="geometric"), teacher
    if name == "online":
        return get_method("online"), student(d, seed=11)  # a fresh peer, trained with the student
    return get_method(name, 4.0, 0.9), teacher


@pytest.mark.parametrize("name", ["hinton", "ensemble", "fitnets", "rkd", "online"])
def test_method_trains_tiny_student(name, mnist_small, teacher, second_teacher, tmp_path):
    method, t = make_method(name, mnist_small, teacher, second_teacher)
    s = student(mnist_small)
    result = fit(Distiller(s, t, method=method), mnist_small, tmp_path)
    assert result.history["loss"][-1] < result.history["loss"][0]
    assert accuracy(s, mnist_small) >= 0.80  # chance is 0.10
    if name == "online":
        assert accuracy(t, mnist_small) >= 0.80  # the peer learnt too


def test_born_again_generations(mnist_small, tmp_path):
    gens = born_again(
        lambda: build_model("mlp-30-30", mnist_small.input_shape, mnist_small.num_classes),
        1,
        mnist_small.x_train,
        mnist_small.y_train,
        None,
        checkpoint_dir=tmp_path,
        seed=3,
        **FIT,
    )
    assert len(gens) == 2 and gens[0].model is not gens[1].model
    assert gens[1].history["soft"][-1] > 0  # generation 1 was taught by generation 0
    assert gens[0].history["soft"][-1] == 0  # generation 0 learnt from the labels alone
    for g in gens:
        assert accuracy(g.model, mnist_small) >= 0.80


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            raise KeyboardInterrupt


def test_resume_restores_method_state(mnist_small, teacher, tmp_path):
    """A FitNets run cut after epoch 1 resumes with its adapter and ends where an uninterrupted one does."""

    def wrapper(seed):
        s = student(mnist_small, seed=seed)  # a new process would start from fresh weights, then restore
        return Distiller(s, teacher, method=FitNets(4.0, 0.9))

    straight = wrapper(5)
    fit(straight, mnist_small, tmp_path / "a", limit=640, epochs=2)
    with pytest.raises(KeyboardInterrupt):
        fit(wrapper(5), mnist_small, tmp_path / "b", limit=640, epochs=2, callbacks=[_Interrupt()])
    resumed = wrapper(6)
    result = fit(resumed, mnist_small, tmp_path / "b", limit=640, epochs=2)
    assert len(result.history["loss"]) == 2
    for a, b in zip(straight.trained_variables, resumed.trained_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert resumed.method.adapter.kernel.shape == (30, 32)  # student fc1 -> cnn-small fc1


@pytest.fixture(scope="module")
def float_student(mnist_small, tmp_path_factory):
    s = student(mnist_small)
    fit(Distiller(s, None), mnist_small, tmp_path_factory.mktemp("float"))
    return s


@pytest.mark.parametrize("name", ["fitnets", "rkd"])
def test_method_with_qat_student(name, mnist_small, teacher, float_student, tmp_path):
    """The methods read a tfmot-quantised student's logits and its `quant_<layer>` sub-models."""
    from tinykd.quantize import quantize_student

    qat = quantize_student(float_student)
    method, t = make_method(name, mnist_small, teacher)
    wrapper = Distiller(qat, t, method=method)
    before = qat.get_weights()
    result = fit(wrapper, mnist_small, tmp_path, epochs=1, learning_rate=1e-3)
    assert result.history["soft"][-1] > 0  # the teacher (and the hint or relation terms) took part
    assert any(not np.array_equal(a, b) for a, b in zip(before, qat.get_weights()))
    assert {layer.name for layer in qat.layers} >= {"quant_fc1", "quant_fc2", "quant_logits"}
    assert accuracy(qat, mnist_small) >= 0.80


# ---- specialists (Hinton et al. 2015, §5) ---------------------------------------------------------

from tinykd.distill.methods import (
    Specialist,
    Specialists,
    build_specialist,
    combine_log_probs,  # noqa: E402
    find_groups,
    soft_confusion,
    specialist_data,
    specialist_labels,
    train_specialists,
)


def paper_objective(q, p_g, p_ms, groups):
    """KL(p_g || q) + sum_m KL(p_m || q restricted to group m plus a dustbin), by hand."""
    total = np.sum(p_g * np.log(p_g / q))
    for p_m, g in zip(p_ms, groups):
        q_m = np.append(q[g], 1.0 - q[g].sum())
        total += np.sum(p_m * np.log(p_m / q_m))
    return total


def minimise_by_gradient(p_g, p_ms, groups, steps=4000, lr=0.3):
    """The paper's way: gradient descent on the logits of q (numpy, by hand)."""
    z = np.log(p_g).copy()
    for _ in range(steps):
        q = softmax(z)
        # d/dq of the objective, then through the softmax.
        grad_q = -p_g / q
        for p_m, g in zip(p_ms, groups):
            others = np.setdiff1d(np.arange(len(q)), g)
            grad_q[g] -= p_m[:-1] / q[g]
            grad_q[others] -= p_m[-1] / q[others].sum()
        z -= lr * q * (grad_q - np.dot(q, grad_q))
    return softmax(z)


def restricted(p, group):
    return np.append(p[group], 1.0 - p[group].sum())


def test_specialists_agreeing_with_the_generalist_leave_its_targets_unchanged():
    rng = np.random.default_rng(3)
    z_g = rng.normal(size=(4, 6)) * 2
    groups = [[1, 4], [0, 2, 5]]
    p_g = softmax(z_g)
    z_s = [np.log(np.stack([restricted(p, g) for p in p_g])) for g in groups]
    got = np.exp(combine_log_probs(z_g.astype(np.float32), [z.astype(np.float32) for z in z_s], groups).numpy())
    np.testing.assert_allclose(got, p_g, atol=1e-5)


def test_sure_specialist_moves_mass_to_its_class_and_matches_the_paper_objective():
    p_g = np.array([0.30, 0.05, 0.30, 0.20, 0.15])  # the generalist hesitates between 0 and 2
    groups = [[0, 2]]
    p_s = [np.array([0.90, 0.05, 0.05])]  # the specialist is sure: class 0
    q = np.exp(
        combine_log_probs(
            np.log(p_g)[None].astype(np.float32), [np.log(p_s[0])[None].astype(np.float32)], groups
        ).numpy()[0]
    ).astype(np.float64)
    np.testing.assert_allclose(q.sum(), 1.0, atol=1e-6)
    assert q[0] > p_g[0] + 0.1 and q[2] < p_g[2] - 0.1 and q.argmax() == 0
    # The closed form is the minimum the paper finds by gradient steps, and nothing near it is lower.
    by_gradient = minimise_by_gradient(p_g, p_s, groups)
    np.testing.assert_allclose(q, by_gradient, atol=2e-3)
    best = paper_objective(q, p_g, p_s, groups)
    rng = np.random.default_rng(0)
    for _ in range(200):
        nearby = softmax(np.log(q) + rng.normal(scale=0.05, size=q.shape))
        assert paper_objective(nearby, p_g, p_s, groups) >= best - 1e-9


def test_combination_with_two_groups_covering_every_class_matches_gradient_descent():
    rng = np.random.default_rng(5)
    p_g = softmax(rng.normal(size=5))
    groups = [[0, 3], [1, 2, 4]]  # no class is left outside a group
    p_s = [softmax(rng.normal(size=3) * 2), softmax(rng.normal(size=4) * 2)]
    q = np.exp(
        combine_log_probs(
            np.log(p_g)[None].astype(np.float32), [np.log(p)[None].astype(np.float32) for p in p_s], groups, 1.0
        ).numpy()[0]
    )
    np.testing.assert_allclose(q, minimise_by_gradient(p_g, p_s, groups), atol=2e-3)
    # At temperature T the inputs are logits divided by T: T = 2 on doubled logits is the same.
    q2 = np.exp(
        combine_log_probs(
            2 * np.log(p_g)[None].astype(np.float32), [2 * np.log(p)[None].astype(np.float32) for p in p_s], groups, 2.0
        ).numpy()[0]
    )
    np.testing.assert_allclose(q2, q, atol=1e-5)


def test_find_groups_on_a_hand_made_confusion():
    c = np.diag([100.0] * 6)
    c[4, 1], c[1, 4] = 9, 7  # 1 <-> 4: the most confused pair
    c[4, 5], c[5, 1] = 9, 8  # 5 mixes with both (mean 8.5 >= half of 16): joins them
    c[0, 2], c[2, 0] = 4, 4  # 0 <-> 2: the next group
    c[3, 0] = 1
    assert find_groups(c, 2, max_classes=3) == [[1, 4, 5], [0, 2]]
    assert find_groups(c, 2, max_classes=2) == [[1, 4], [0, 2]]
    assert find_groups(c, 1) == [[1, 4, 5]]
    with pytest.raises(TinykdError, match="confuses no pair"):
        find_groups(np.eye(4), 2)
    # soft confusion sums each example's probabilities into the row of its label
    m = soft_confusion(np.array([[0.7, 0.3, 0.0], [0.1, 0.9, 0.0], [0.5, 0.5, 0.0]]), np.array([0, 1, 0]), 3)
    np.testing.assert_allclose(m, [[1.2, 0.8, 0.0], [0.1, 0.9, 0.0], [0.0, 0.0, 0.0]])


def test_specialist_starts_from_the_generalist_and_data_is_half_its_classes():
    generalist = tiny_mlp([6], 2, "g")
    group = [2, 0]
    spec = build_specialist(generalist, group)
    assert spec.outputs[0].shape[-1] == 3
    z_g = generalist.predict(X, verbose=0)
    z_s = spec.predict(X, verbose=0)
    np.testing.assert_allclose(z_s[:, :2], z_g[:, group], rtol=1e-5, atol=1e-5)  # same body, same rows
    np.testing.assert_array_equal(specialist_labels([0, 1, 2, 1], group), [1, 2, 0, 2])
    y = np.array([0, 1, 1, 1, 2, 3, 3, 3, 3, 1])
    x = np.arange(len(y))
    xs, ys = specialist_data(x, y, [0, 2], seed=0)
    assert np.sum(ys < 2) == 2 and np.sum(ys == 2) == 2 and np.all(np.diff(xs) > 0)
    with pytest.raises(TinykdError, match="disjoint"):
        Distiller(tiny_mlp([5, 3], 1, "s"), generalist, method=Specialists([(spec, [0, 2]), (spec, [2, 1])]))


def test_specialists_method_loss_is_hinton_on_the_combined_targets():
    student, generalist = tiny_mlp([5, 3], 1, "s"), tiny_mlp([6], 2, "t")
    spec = build_specialist(generalist, [0, 1])
    method = Specialists([Specialist(spec, [0, 1])], 3.0, 0.7)
    Distiller(student, generalist, method=method)
    _, s = np_forward(student, X)
    # A specialist copied from the generalist is nearly (not exactly: its dustbin's row is the mean
    # of the other rows) the generalist restricted; the method must use exactly the combined target,
    # made at T = 1 and softened at T like a teacher's logits.
    target = softmax(
        combine_log_probs(generalist(X), [spec(X)], [[0, 1]], 1.0, top_k=1).numpy().astype(np.float64) / 3.0
    )
    soft = 9.0 * kl(target, softmax(s / 3.0))
    hard = ce(Y, s)
    got = loss_of(method, student, generalist)
    np.testing.assert_allclose(got, (0.7 * soft + 0.3 * hard, soft, hard), rtol=1e-4)
    assert method.settings()["groups"] == [[0, 1]] and "specialists" in METHODS
    # The first choice of the generalist is in the group for some examples and not for others, so
    # the test above saw active and inactive specialists both.
    first = np.argmax(generalist(X).numpy(), axis=1)
    assert np.any(np.isin(first, [0, 1])) and np.any(first == 2)


def test_specialist_counts_only_where_its_classes_are_the_generalists_top_k():
    p_g = np.array([[0.6, 0.25, 0.1, 0.05], [0.1, 0.2, 0.6, 0.1]])
    p_s = np.array([[0.05, 0.9, 0.05], [0.05, 0.9, 0.05]])  # group [0, 1]: "it is class 1"
    z_g, z_s = np.log(p_g).astype(np.float32), np.log(p_s).astype(np.float32)
    q1 = np.exp(combine_log_probs(z_g, [z_s], [[0, 1]], 1.0, top_k=1).numpy())
    q_all = np.exp(combine_log_probs(z_g, [z_s], [[0, 1]], 1.0).numpy())
    assert q1[0, 1] > p_g[0, 1] + 0.2  # example 0: first choice 0 is in the group
    np.testing.assert_allclose(q1[1], p_g[1], atol=1e-6)  # example 1: first choice 2 is not, nothing changes
    assert q_all[1, 1] > p_g[1, 1] + 0.1  # ...unless every specialist counts everywhere
    q2 = np.exp(combine_log_probs(z_g, [z_s], [[0, 1]], 1.0, top_k=2).numpy())
    assert q2[1, 1] > p_g[1, 1] + 0.1  # class 1 is example 1's second choice


def test_specialists_train_and_teach_a_tiny_student(mnist_small, teacher, tmp_path):
    logits = teacher.predict(mnist_small.x_val, verbose=0)
    groups = find_groups(soft_confusion(softmax(logits), mnist_small.y_val, 10), 1, max_classes=2)
    assert len(groups) == 1 and len(groups[0]) == 2
    specialists = train_specialists(
        teacher,
        groups,
        mnist_small.x_train,
        mnist_small.y_train,
        None,
        checkpoint_dir=tmp_path / "spec",
        seed=0,
        epochs=1,
        batch_size=64,
        learning_rate=1e-3,
        max_shift=0,
    )
    s = specialists[0]
    own = specialist_labels(mnist_small.y_test, groups[0])
    predicted = s.model.predict(mnist_small.x_test, verbose=0).argmax(-1)
    inside = own < 2
    # Its own task (class a, class b or dustbin; chance 1/3), on all test examples and on its classes.
    assert np.mean(predicted == own) >= 0.8 and np.mean(predicted[inside] == own[inside]) >= 0.6
    st = student(mnist_small)
    result = fit(Distiller(st, teacher, method=Specialists(specialists, 4.0, 0.9)), mnist_small, tmp_path / "st")
    assert result.history["soft"][-1] > 0
    assert accuracy(st, mnist_small) >= 0.80  # chance is 0.10


def test_rkd_angle_term_uses_the_first_angle_batch_examples():
    """The angle term (B^3) is computed on a sub-batch for speed; the distance term on the whole batch."""
    student, teacher = tiny_mlp([5, 3], 1, "s"), tiny_mlp([6], 2, "t")
    s_acts, s = np_forward(student, X)
    t_acts, t = np_forward(teacher, X)
    es, et = s_acts["fc2"], t_acts["fc1"]
    total, soft, hard = hinton_hand(Y, s, t, 3.0, 0.9)
    rel = 25.0 * huber(np_rkd_distance(es), np_rkd_distance(et)) + 50.0 * huber(
        np_rkd_angle(es[:3]), np_rkd_angle(et[:3])
    )
    got = loss_of(RKD(3.0, 0.9, angle_batch=3), student, teacher)
    np.testing.assert_allclose(got, (total + rel, soft + rel, hard), rtol=1e-4)
    with pytest.raises(TinykdError, match="angle_batch must be at least 3"):
        RKD(angle_batch=2)
