"""Distillation methods behind one interface (`DistillationMethod`), selected by name.

    method = get_method("rkd", temperature=20, alpha=0.9, distance_weight=25)
    Distiller(student, teacher, method=method)   # then tinykd.distill.train(...) as usual

`hinton` (default), `ensemble` (several teachers), `fitnets` (hints through an adapter),
`rkd` (relational), `online` (deep mutual learning), `self` (born-again generations; see
`born_again`), `specialists` (a generalist plus specialist teachers for confused classes; see
`find_groups`, `train_specialists`). Each works on a tfmot-quantised (QAT) student too.

Each method's file also holds its `BuildRecipe`: what the build does for it besides the loss
(extra models, the teacher per stage, extra evaluations, its config keys). `register_method`
adds a method from outside the package.
"""

from __future__ import annotations

from .base import DistillationMethod, LossParts, feature_model, find_layer, soft_target_loss
from .born_again import Generation, SelfDistillation, SelfRecipe, born_again
from .ensemble import Ensemble, EnsembleRecipe, TeacherSelection, ensemble_log_probs, select_teachers
from .fitnets import FitNets, FitNetsRecipe, hint_loss
from .hinton import FeatureDistillation, Hinton, HintonRecipe, hinton_parts
from .online import Online, OnlineRecipe, mutual_losses
from .recipe import BuildRecipe
from .registry import (
    METHODS,
    RECIPES,
    get_method,
    get_recipe,
    register_method,
    searchable_methods,
    single_teacher_methods,
    unregister_method,
)
from .rkd import RKD, RKDRecipe, angles, normalised_distances, rkd_angle_loss, rkd_distance_loss
from .specialists import (
    Specialist,
    Specialists,
    SpecialistsRecipe,
    build_specialist,
    combine_log_probs,
    find_groups,
    soft_confusion,
    specialist_data,
    specialist_labels,
    train_specialists,
)

# The one table of methods, in the order --method lists them. A new method: its file (the loss
# and its BuildRecipe) and one line here.
for _recipe in (
    HintonRecipe(),
    EnsembleRecipe(),
    SpecialistsRecipe(),
    FitNetsRecipe(),
    RKDRecipe(),
    OnlineRecipe(),
    SelfRecipe(),
):
    register_method(_recipe)
del _recipe

__all__ = [
    "METHODS",
    "RECIPES",
    "BuildRecipe",
    "register_method",
    "unregister_method",
    "get_recipe",
    "searchable_methods",
    "single_teacher_methods",
    "get_method",
    "DistillationMethod",
    "LossParts",
    "feature_model",
    "find_layer",
    "soft_target_loss",
    "Hinton",
    "hinton_parts",
    "FeatureDistillation",
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
