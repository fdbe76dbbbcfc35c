"""A search over continuous temperature and alpha for one student, on validation errors: the
library call the per-dataset KD search builds on (no command yet).

Tune's `BasicVariantGenerator`, seeded, draws the samples (T log-uniform, alpha uniform): the
same seed draws the same (T, alpha) and, each point being deterministic, gives the same
errors. Each sample is one trial of the shared runner (tinykd.trials): the student distilled at
that (T, alpha) for the configured epochs, its float validation errors reported. A sample's
result is kept in out/kd_search/ by its settings: a rerun reports it again without training.
Test errors are never looked at while choosing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ..config import BuildConfig
from ..errors import TinykdError
from ..trials import EMBEDDED, RayOptions, Trial, run_trials
from . import points


def search_temperature_alpha(
    config: BuildConfig,
    out: str | Path,
    student: str,
    *,
    samples: int = 16,
    temperatures: tuple[float, float] = (1.0, 20.0),
    alphas: tuple[float, float] = (0.0, 1.0),
    ray: RayOptions = EMBEDDED,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Distil `student` at `samples` (T, alpha) drawn from the ranges; returns every sample as
    {"temperature", "alpha", "val_errors", "val_total"}, best (fewest validation errors) first."""
    from ray import tune
    from ray.tune.search import BasicVariantGenerator

    from ..models import check_model_name

    (t_low, t_high), (a_low, a_high) = temperatures, alphas
    if samples < 1:
        raise TinykdError(f"A T/alpha search needs at least one sample (got {samples}).")
    if not 0 < t_low <= t_high:
        raise TinykdError(f"Temperatures must be a range 0 < low <= high (got {t_low:g}..{t_high:g}), e.g. 1..20.")
    if not 0.0 <= a_low <= a_high <= 1.0:
        raise TinykdError(f"Alphas must be a range inside [0, 1] (got {a_low:g}..{a_high:g}), e.g. 0..1.")
    check_model_name(student)
    method = config.distill.method
    if method not in points.single_teacher_methods():
        raise TinykdError(
            f"A T/alpha search distils one student from one teacher; method {method!r} needs more. Use one of "
            f"{', '.join(points.single_teacher_methods())}."
        )
    experiment = points.open_experiment(config, out, log=log)
    space = {
        "arch": student,
        "method": method,
        "temperature": tune.loguniform(t_low, t_high) if t_low < t_high else t_low,
        "alpha": tune.uniform(a_low, a_high) if a_low < a_high else a_low,
    }
    outcomes = run_trials(
        experiment,
        distil_sample,
        space,
        options=ray,
        desc="T/alpha search",
        num_samples=samples,
        search_alg=BasicVariantGenerator(random_state=config.seed),
        metric="val_errors",
        mode="min",
    )
    found = [
        {k: o.metrics[k] for k in ("temperature", "alpha", "val_errors", "val_total")} | {"key": o.metrics["key"]}
        for o in outcomes
    ]
    return sorted(found, key=lambda r: (r["val_errors"], r["key"]))


def distil_sample(experiment: points.Experiment, params: dict, trial: Trial) -> dict:
    """One (T, alpha) sample as one trial: the student distilled there, its validation errors."""
    d, c = experiment.dataset, experiment.config
    spec = points.StudentSpec(params["arch"], params["method"], float(params["temperature"]), float(params["alpha"]))
    settings = experiment.student_settings(spec)
    settings = json.loads(json.dumps(settings, default=str))  # as it reads back from its file
    key = f"{spec.arch}-T{spec.temperature:.4g}-a{spec.alpha:.4g}-{points.settings_digest(settings)}"
    record = f"kd_search/{key}.json"
    saved = trial.read_json(record)
    if saved is None or saved.get("settings") != settings:
        work = trial.scratch(f"kd-search-{key}")
        student, _ = points.train_student(experiment, spec, c.student.epochs, work)
        val = points.float_errors(student, d.x_val, d.y_val, d.num_classes)
        saved = {"settings": settings, "val_errors": val.errors, "val_total": val.total}
        trial.write(record, saved)
        points.remove_tree(work)
    return {
        "key": key,
        "temperature": spec.temperature,
        "alpha": spec.alpha,
        "val_errors": saved["val_errors"],
        "val_total": saved["val_total"],
        "summary": f"T {spec.temperature:.3g}, alpha {spec.alpha:.3g}: {saved['val_errors']} validation errors",
    }
