"""Distillation methods behind one interface (`DistillationMethod`), selected by name.

    method = get_method("rkd", temperature=20, alpha=0.9, distance_weight=25)
    Distiller(student, teacher, method=method)   # then tinykd.distill.train(...) as usual

`hinton` (default), `ensemble` (several teachers), `fitnets` (hints through an adapter),
`rkd` (relational), `online` (deep mutual learning), `self` (born-again generations; see
`born_again`), `specialists` (a generalist plus specialist teachers for confused classes; see
`find_groups`, `train_specialists`). Each works on a tfmot-quantised (QAT) student too.
"""

from __future__ import annotations

import inspect

from ...errors import TinykdError
from .base import DistillationMethod, LossParts, feature_model, find_layer, soft_target_loss
from .born_again import Generation, SelfDistillation, born_again
from .ensemble import Ensemble, TeacherSelection, ensemble_log_probs, select_teachers
from .fitnets import FitNets, hint_loss
from .hinton import Hinton, hinton_parts
from .online import Online, mutual_losses
from .rkd import RKD, angles, normalised_distances, rkd_angle_loss, rkd_distance_loss
from .specialists import (
    Specialist,
    Specialists,
    build_specialist,
    combine_log_probs,
    find_groups,
    soft_confusion,
    specialist_data,
    specialist_labels,
    train_specialists,
)

METHODS: dict[str, type[DistillationMethod]] = {
    cls.name: cls for cls in (Hinton, Ensemble, Specialists, FitNets, RKD, Online, SelfDistillation)
}


def get_method(
    name: str, temperature: float | None = None, alpha: float | None = None, **options
) -> DistillationMethod:
    """Build the method `name`; temperature/alpha left as None take the method's own defaults."""
    if name not in METHODS:
        raise TinykdError(f"Unknown distillation method '{name}'. Choose one of: {', '.join(METHODS)}.")
    cls = METHODS[name]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TinykdError(
            f"The '{name}' distillation method has no option {', '.join(unknown)}; its options are: "
            f"{', '.join(accepted)}."
        )
    if temperature is not None:
        options["temperature"] = temperature
    if alpha is not None:
        options["alpha"] = alpha
    return cls(**options)


__all__ = [
    "METHODS",
    "get_method",
    "DistillationMethod",
    "LossParts",
    "feature_model",
    "find_layer",
    "soft_target_loss",
    "Hinton",
    "hinton_parts",
    "Ensemble",
    "ensemble_log_probs",
    "select_teachers",
    "TeacherSelection",
    "FitNets",
    "hint_loss",
    "RKD",
    "rkd_distance_loss",
    "rkd_angle_loss",
    "normalised_distances",
    "angles",
    "Online",
    "mutual_losses",
    "SelfDistillation",
    "born_again",
    "Generation",
    "Specialists",
    "Specialist",
    "combine_log_probs",
    "find_groups",
    "soft_confusion",
    "build_specialist",
    "specialist_data",
    "specialist_labels",
    "train_specialists",
]
