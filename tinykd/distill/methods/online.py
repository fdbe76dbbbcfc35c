"""Online distillation: deep mutual learning (Zhang, Xiang, Hospedales & Lu, CVPR 2018).

Two or more peers learn together from scratch. Peer k minimises
  (1 - alpha) * CE(y, p_k) + alpha * T^2 * mean_{l != k} KL(p_l || p_k)   (all at temperature T)
with the other peers' predictions held fixed in that term (stop-gradient), so one summed loss
updates every peer with its own gradient, the simultaneous form of the paper's alternating
updates. The student is peer 0; the Distiller's `teacher`, if given, becomes a peer and is
trained too (not frozen), as are any `peers` passed here. The paper uses T = 1; alpha = 0.5
gives its equal weighting of CE and KL.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf
import tf_keras as keras

import tinykd  # noqa: F401

from ...errors import TinykdError
from .base import DistillationMethod, LossParts, cross_entropy, soft_target_loss, with_teacher
from .recipe import BuildRecipe


def mutual_losses(y, peer_logits: Sequence, temperature: float, alpha: float) -> list[LossParts]:
    """Each peer's LossParts; peer k's soft term uses the other peers' (stopped) predictions."""
    log_p = [tf.nn.log_softmax(tf.cast(z, tf.float32) / temperature) for z in peer_logits]
    out = []
    for k, z in enumerate(peer_logits):
        hard = cross_entropy(y, z)
        others = [tf.stop_gradient(log_p[j]) for j in range(len(peer_logits)) if j != k]
        soft = tf.add_n([soft_target_loss(lp, z, temperature) for lp in others]) / len(others)
        out.append(LossParts(alpha * soft + (1.0 - alpha) * hard, soft, hard, z))
    return out


class Online(DistillationMethod):
    name = "online"
    needs_teacher = False
    freezes_teacher = False

    def __init__(self, peers: Sequence[keras.Model] = (), temperature: float = 1.0, alpha: float = 0.5):
        super().__init__(temperature, alpha)
        self.peers = list(peers)

    def bind(self, student, teacher) -> None:
        super().bind(student, teacher)
        self.peers = with_teacher(
            teacher,
            self.peers,
            "The 'online' (mutual learning) method needs at least one peer to learn with the student: "
            "pass a teacher model (it will be trained too) or peers=[...] of fresh models.",
        )
        if any(p is student for p in self.peers):
            raise TinykdError("An online peer must be a different model from the student (build a second one).")
        for p in self.peers:
            p.trainable = True

    def loss(self, x, y, training: bool = True) -> LossParts:
        logits = [self.student(x, training=training)] + [p(x, training=training) for p in self.peers]
        parts = mutual_losses(y, logits, self.temperature, self.alpha)
        total = tf.add_n([p.total for p in parts])
        for peer in self.peers:
            if peer.losses:
                total += tf.add_n(peer.losses)
        return LossParts(total, parts[0].soft, parts[0].hard, parts[0].logits)

    def extra_trainable_variables(self):
        return [v for p in self.peers for v in p.trainable_variables]

    def checkpoint_objects(self):
        return {f"peer{i}": p for i, p in enumerate(self.peers)}

    def settings(self):
        return {**super().settings(), "peers": [p.name for p in self.peers]}


class OnlineRecipe(BuildRecipe):
    """The student learns with one peer (as `peer`, default the student's architecture): a fresh
    one in the distill stage, saved as peer.keras, and that trained peer again in QAT."""

    name = "online"
    method = Online
    config_keys = ("peer",)

    def check(self, config) -> None:
        from ...models import check_model_name

        if config.distill.peer:
            check_model_name(config.distill.peer)

    def kd_pair(self, build, stage):
        method = self.make(build.config.distill)
        if stage == "qat":
            return method, build.load_model("peer")
        return method, build.new_model(build.config.distill.peer or build.config.student.arch)

    def keep_partner(self, build, teacher):
        return [build.save_model(teacher, "peer")]

    def evaluate_models(self, build):
        from ...evaluate import predict_logits

        return {"peer": predict_logits(build.load_model("peer"), build.dataset.x_test)}, {}

    def model_label(self, name):
        return "online peer, trained with the student (float)" if name == "peer" else None
