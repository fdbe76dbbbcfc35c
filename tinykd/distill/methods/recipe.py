"""What a distillation method does in a build, beside its loss: its `BuildRecipe`.

A `DistillationMethod` is the loss of one batch; its recipe tells the build (`tinykd.pipeline`)
everything else, so that the build orchestrates stages and never names a method:

- `config_keys` / `check`: the [distill] keys it reads besides temperature and alpha (they
  enter the fingerprints of the stages it shapes) and their checks;
- `extra_models` / `extra_model_settings` / `train_extra_models`: models to train in the
  extra-teachers stage (ensemble members, specialists) and what their fingerprint hashes;
- `kd_pair`: the (method, teacher) pair the student learns with in the distill and qat stages;
- `distill` and `keep_partner`: how the distill stage makes the student (born-again
  generations for `self`) and what it keeps of a partner trained alongside (online's peer);
- `evaluate_models` / `model_label`: the models it adds to the evaluation and the report;
- `single_teacher`: whether it distils one student from the build's teacher alone at
  (T, alpha), as `tinykd sweep` and `tinykd fit` need; `searchable`: whether the build's
  T/alpha search can run it (also the methods with extra teachers).

The `build` argument of the hooks is a `tinykd.pipeline.Build`; the hooks use its public
helpers (`dataset`, `config`, `out`, `log`, `new_model`, `load_model`, `save_model`,
`save_history`, `seed`, `checkpoints`, `train`). A new method is one file with its
`DistillationMethod` and its recipe, plus one line in the table of `tinykd.distill.methods`
(or a call to `register_method` from outside the package).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ...errors import TinykdError
from .base import DistillationMethod


class BuildRecipe:
    """The build's side of one distillation method; the defaults are Hinton's (one teacher)."""

    #: The method's name: --method, [distill] method, and the registry's key.
    name: str = ""
    #: The loss (built with the configured temperature and alpha).
    method: type[DistillationMethod] = DistillationMethod
    #: [distill] keys this method reads besides temperature and alpha, in fingerprint order.
    config_keys: tuple[str, ...] = ()
    #: Whether it trains models of its own in the extra-teachers stage.
    extra_models: bool = False
    #: Whether it distils one student from the build's teacher alone at (T, alpha).
    single_teacher: bool = False

    @property
    def searchable(self) -> bool:
        """Whether the build's T/alpha search can distil it: one loss over models fixed before the
        distill stage (the teacher, and the extra-teachers stage's ensemble members or specialists).
        Peers trained alongside the student (online) and generations (self) are not."""
        return self.single_teacher or self.extra_models

    # ---- configuration -------------------------------------------------------------------
    def check(self, config) -> None:
        """Raise TinykdError on a bad value of one of its keys (checked whatever the method)."""

    def key_settings(self, kd) -> tuple:
        """(key, value) of each of its keys: what of [distill] besides T and alpha shapes its result."""
        return tuple((k, getattr(kd, k)) for k in self.config_keys)

    def make(self, kd, **options) -> DistillationMethod:
        """The loss at the configured temperature and alpha."""
        temperature, alpha = kd.numbers()  # the build hands its recipe the chosen ones for "auto"
        return self.method(temperature=temperature, alpha=alpha, **options)

    # ---- extra-teachers stage -----------------------------------------------------------------
    def extra_model_settings(self, config) -> Any:
        """What the extra-teachers stage's result depends on (besides the teacher stage)."""
        if not self.extra_models:
            return ("none",)
        return (dataclasses.replace(config.teacher, model=""), (self.name,) + self.key_settings(config.distill))

    def train_extra_models(self, build) -> tuple[list[str], dict]:
        """Train and save the extra models; returns (artifacts, info) for stages.json."""
        return [], {"teachers": 0}

    # ---- distill and qat stages -------------------------------------------------------------
    def kd_pair(self, build, stage: str):
        """(method, teacher model) the student learns with in `stage` ("distill" or "qat")."""
        return self.make(build.config.distill), build.load_model("teacher")

    def distill(self, build, baseline) -> tuple[Any, Any, list[str]]:
        """Train the student (the no-KD `baseline` is trained and saved already; the distill
        stage's seed is set). Returns (student, TrainResult, artifacts besides the student)."""
        c = build.config.student
        student = build.new_model(c.arch)
        method, teacher = self.kd_pair(build, "distill")
        result = build.train("distill", student, c, (method, teacher))
        return student, result, self.keep_partner(build, teacher)

    def keep_partner(self, build, teacher) -> list[str]:
        """Save a model trained alongside the student (online's peer); returns its artifacts."""
        return []

    # ---- evaluate and report stages --------------------------------------------------------
    def evaluate_models(self, build) -> tuple[dict[str, Any], dict]:
        """Float test logits of the models it adds ({name: logits}), and extra evaluation info."""
        return {}, {}

    def model_label(self, name: str) -> str | None:
        """The report's label of one of the models it adds (None: not one of its models)."""
        return None


def stage_training(build, stage: str, section) -> dict:
    """The arguments of a training loop a recipe runs itself in `stage` (born-again's
    generations, the specialists): the build's data, the stage's checkpoints and seed (set
    now, in that order), [section]'s epochs, batch size and learning rate, the data's jitter."""
    d = build.dataset
    return {
        "x_train": d.x_train,
        "y_train": d.y_train,
        "validation": (d.x_val, d.y_val),
        "checkpoint_dir": build.checkpoints(stage),
        "seed": build.seed(stage),
        "epochs": section.epochs,
        "batch_size": section.batch_size,
        "learning_rate": section.learning_rate,
        "max_shift": build.config.data.jitter,
        # The student stops early on validation as the build's own student does.
        "patience": build.config.distill.patience if stage == "distill" else 0,
    }


def numbered(name: str, prefix: str) -> str | None:
    """'3' for numbered('teacher3', 'teacher'); None if `name` is not prefix + a number."""
    rest = name[len(prefix) :]
    return rest if name.startswith(prefix) and rest.isdigit() else None


def check_recipe(recipe: BuildRecipe) -> BuildRecipe:
    """Refuse a recipe the build could not use, with what to fix."""
    if not isinstance(recipe, BuildRecipe):
        raise TinykdError(
            f"register_method takes a BuildRecipe instance (tinykd.distill.methods.BuildRecipe), got {recipe!r}."
        )
    if not recipe.name or recipe.name != getattr(recipe.method, "name", None):
        raise TinykdError(
            f"The recipe {type(recipe).__name__} must have a name and the name of its method class "
            f"(got '{recipe.name}' and '{getattr(recipe.method, 'name', None)}'): set both to the same word."
        )
    return recipe
