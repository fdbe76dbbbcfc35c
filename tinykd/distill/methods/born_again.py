"""Self-distillation: born-again networks (Furlanello, Lipton, Tschannen, Itti & Anandkumar, ICML 2018).

Generation 0 learns from the labels; generation k (the same architecture, freshly built)
is distilled from generation k-1. The per-generation loss is Hinton's (`SelfDistillation`
is that method under its own name, with the paper's T = 1 by default); `born_again` runs
the generations through the ordinary training loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import tf_keras as keras

import tinykd  # noqa: F401

from ...errors import TinykdError
from .hinton import Hinton
from .recipe import BuildRecipe, numbered, stage_training


class SelfDistillation(Hinton):
    """Hinton's loss with the previous generation of the student's own architecture as teacher."""

    name = "self"
    needs_teacher = True

    def __init__(self, temperature: float = 1.0, alpha: float = 0.5):
        super().__init__(temperature, alpha)


@dataclass
class Generation:
    model: keras.Model
    history: dict = field(default_factory=dict)
    seconds: float = 0.0


def born_again(
    build_fn: Callable[[], keras.Model],
    generations: int,
    x_train,
    y_train,
    validation,
    *,
    checkpoint_dir: str | Path,
    seed: int,
    temperature: float = 1.0,
    alpha: float = 0.5,
    first: keras.Model | None = None,
    label: str = "born-again",
    **train_kwargs,
) -> list[Generation]:
    """Train `generations` students after generation 0 and return all of them, generation 0 first.

    `build_fn()` builds a fresh, untrained model of the architecture. `first`, if given, is an
    already trained generation 0 (e.g. the no-KD baseline) and is not retrained. `train_kwargs`
    go to `tinykd.distill.train` (epochs, batch_size, learning_rate, max_shift, ...). Each
    generation checkpoints in `checkpoint_dir/gen<k>` and gets seed `seed + k`, so a cut-short
    run resumes and the same seed gives the same models.
    """
    from ..hinton import Distiller
    from ..training import train

    if int(generations) < 1:
        raise TinykdError(f"born_again needs at least 1 generation after the first (got {generations}).")
    SelfDistillation(temperature, alpha)  # raises on a bad T or alpha before any training
    checkpoint_dir = Path(checkpoint_dir)
    out: list[Generation] = []
    if first is None:
        keras.utils.set_random_seed(seed)
        first = build_fn()
        result = train(
            Distiller(first, None),
            x_train,
            y_train,
            validation,
            seed=seed,
            checkpoint_dir=checkpoint_dir / "gen0",
            label=f"{label} gen0",
            **train_kwargs,
        )
        out.append(Generation(first, result.history, result.seconds))
    else:
        out.append(Generation(first))
    for k in range(1, int(generations) + 1):
        keras.utils.set_random_seed(seed + k)
        model = build_fn()
        if out[-1].model is model:
            raise TinykdError("born_again's build_fn must build a new model on every call.")
        wrapper = Distiller(model, out[-1].model, method=SelfDistillation(temperature, alpha))
        result = train(
            wrapper,
            x_train,
            y_train,
            validation,
            seed=seed + k,
            checkpoint_dir=checkpoint_dir / f"gen{k}",
            label=f"{label} gen{k}",
            **train_kwargs,
        )
        out.append(Generation(model, result.history, result.seconds))
    return out


class SelfRecipe(BuildRecipe):
    """Born-again in the build: generation 0 is the no-KD baseline, generations 1..N are trained
    in the distill stage (the last is the student, the ones between kept as generation<k>.keras);
    QAT learns from generation N - 1."""

    name = "self"
    method = SelfDistillation
    config_keys = ("generations",)

    def check(self, config) -> None:
        if config.distill.generations < 1:
            raise TinykdError(
                f"[distill] generations must be at least 1 (got {config.distill.generations}): born-again "
                "trains that many generations after the no-KD baseline."
            )

    def kd_pair(self, build, stage):
        kd = build.config.distill
        previous = "baseline" if kd.generations == 1 else f"generation{kd.generations - 1}"
        return self.make(kd), build.load_model(previous)

    def distill(self, build, baseline):
        from ..training import TrainResult

        c, kd = build.config.student, build.config.distill
        generations = born_again(
            lambda: build.new_model(c.arch),
            kd.generations,
            temperature=kd.numbers()[0],
            alpha=kd.numbers()[1],
            first=baseline,
            label="student",
            **stage_training(build, "distill", c),
        )
        kept = []
        for k, generation in enumerate(generations[1:-1], start=1):
            kept.append(build.save_model(generation.model, f"generation{k}"))
            build.save_history(f"generation{k}", generation)
        last = generations[-1]
        seconds = round(sum(g.seconds for g in generations[1:]), 2)
        return last.model, TrainResult(last.history, seconds, c.epochs), kept

    def evaluate_models(self, build):
        from ...evaluate import predict_logits

        x = build.dataset.x_test
        return {
            f"generation{k}": predict_logits(build.load_model(f"generation{k}"), x)
            for k in range(1, build.config.distill.generations)
        }, {}

    def model_label(self, name):
        number = numbered(name, "generation")
        return None if number is None else f"born-again generation {number} (float)"
