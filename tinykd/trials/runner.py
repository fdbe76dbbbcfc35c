"""The one trial runner under `sweep`, `fit`, multi-seed runs and hyperparameter searches.

`run_trials` runs a unit of work (see tinykd.trials.worker) once per point as Ray Tune trials:
a list of points is a grid search, a dict of Tune domains a search with a Tune search algorithm,
and a Tune scheduler (ASHA for `fit`) may stop trials early on their intermediate reports. Each
trial declares its CPU share and trains with as many TensorFlow threads; the data's arrays and
the teacher's bytes go to the workers once through the object store; everything a trial keeps
is written to the driver's output folder by one actor there. Ray is embedded on this machine,
or a cluster is joined (tinykd.trials.session); the driver shows one progress bar.

Resuming is the callers' business and needs nothing from Tune: every finished point is a file
in the output folder keyed by the digest of its settings, and callers hand `run_trials` only
the points that have no such file. (Tune's experiment restore would know only its own
experiment folder: not the settings a point was trained with, not a point written by a run on
another cluster or by the plain loop, and nothing once .cache is cleaned.) A trial interrupted
midway resumes from its per-epoch checkpoints on the node that ran it.

`options=None` runs the same work in this process, one point after another, with no Ray: the
plain loop the Ray runs are measured and checked against (benchmarks/sweep.md, tests).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import TinykdError
from .progress import TrialProgress
from .session import RayOptions, ray_session
from .worker import Trial, TrialJob, tune_trainable


@dataclass
class TrialOutcome:
    params: dict  # the point: its "name" and whatever the work reads
    metrics: dict  # the last result: the work's final metrics, or the last report before a stop
    reports: list[dict]  # every result the trial reported, in order
    stopped: bool  # stopped early by the scheduler

    @property
    def node(self) -> str | None:
        return self.metrics.get("node")


def _job(experiment, work: Callable, cpus: int, verbose: bool) -> TrialJob:
    return TrialJob(
        experiment.config,
        experiment.out.resolve(),
        experiment.dataset,
        experiment.teacher_path.read_bytes(),
        experiment.teacher_id,
        work,
        cpus,
        verbose=verbose,
    )


def run_trials(
    experiment,
    work: Callable[..., dict],
    points: list[dict] | dict,
    *,
    options: RayOptions | None,
    desc: str,
    num_samples: int = 1,
    scheduler=None,
    search_alg=None,
    metric: str | None = None,
    mode: str | None = None,
    max_concurrent: int | None = None,
) -> list[TrialOutcome]:
    """Run `work` once per point (a list: a grid, each point with a unique "name") or per sample
    of a space (a dict with Tune domains, sampled `num_samples` times by `search_alg`). Outcomes come in
    the order of the points (samples: in the order they were drawn)."""
    if isinstance(points, list):
        names = [p["name"] for p in points]
        if len(set(names)) != len(names):
            raise ValueError(f"trial names must be unique: {names}")
        if not points:
            return []
    progress = TrialProgress(len(points) if isinstance(points, list) else num_samples, desc, experiment.log)
    try:
        if options is None:
            if scheduler is not None or search_alg is not None or not isinstance(points, list):
                raise ValueError("the plain loop runs a list of points only; schedulers and searches need Ray")
            return _plain_loop(experiment, work, points, progress)
        with ray_session(options, experiment.out):
            return _tune(
                experiment,
                work,
                points,
                options,
                progress,
                num_samples=num_samples,
                scheduler=scheduler,
                search_alg=search_alg,
                metric=metric,
                mode=mode,
                max_concurrent=max_concurrent,
            )
    finally:
        progress.close()


def _plain_loop(experiment, work, points: list[dict], progress: TrialProgress) -> list[TrialOutcome]:
    job = _job(experiment, work, cpus=os.cpu_count() or 1, verbose=True)
    outcomes = []
    for params in points:
        progress.started(params["name"])
        trial = Trial(job, params["name"], "local", None)
        metrics = {**work(experiment, params, trial), "finished": True, "node": "local"}
        progress.ended(params["name"], metrics)
        outcomes.append(TrialOutcome(params, metrics, trial.reports + [metrics], stopped=False))
    return outcomes


def _tune(experiment, work, points, options: RayOptions, progress: TrialProgress, **how) -> list[TrialOutcome]:
    import ray
    from ray import tune

    from .store import store_actor
    from .tune_progress import ProgressCallback, trial_name

    if not options.verbose:
        # Tune's newer console output prints an experiment banner even at verbose=0; the older
        # one is silent there. The progress bar is ours.
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    # Ctrl-C raises KeyboardInterrupt in the driver as everywhere else in tinykd (Tune's own
    # handler would end the run quietly and return partial results).
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    job = _job(experiment, work, options.cpus_per_trial, options.verbose)
    job.driver_node = ray.get_runtime_context().get_node_id()
    job.store = store_actor(job.out)
    trainable = tune.with_resources(tune.with_parameters(tune_trainable, job=job), {"cpu": options.cpus_per_trial})
    grid = isinstance(points, list)
    space = {"params": tune.grid_search(points) if grid else points}
    storage = job.out / ".cache" / "tune"
    name = f"{progress.bar.desc or 'trials'}-{uuid.uuid4().hex[:8]}".replace(" ", "-")
    tuner = tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(
            num_samples=how["num_samples"] if not grid else 1,
            scheduler=how["scheduler"],
            search_alg=how["search_alg"],
            metric=how["metric"],
            mode=how["mode"],
            max_concurrent_trials=how["max_concurrent"],
            reuse_actors=True,
            trial_name_creator=trial_name,
            trial_dirname_creator=lambda t: f"{t.trial_id}",
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(storage),
            verbose=1 if options.verbose else 0,
            callbacks=[ProgressCallback(progress)],
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )
    results = tuner.fit()
    outcomes, failed = [], []
    for result in results:
        params = result.config["params"]
        metrics = dict(result.metrics or {})
        name = params.get("name") or metrics.get("trial_id", "?")
        if result.error is not None:
            failed.append((name, result.error))
            continue
        reports = progress.reports.get(name, [])
        outcomes.append(TrialOutcome(params, metrics, reports, stopped=not metrics.get("finished")))
    if failed:
        raise _trial_error(failed, len(results))
    shutil.rmtree(storage / name, ignore_errors=True)
    if grid:
        order = {p["name"]: i for i, p in enumerate(points)}
        outcomes.sort(key=lambda o: order[o.params["name"]])
    else:
        outcomes.sort(key=lambda o: o.metrics.get("trial_id", ""))
    return outcomes


def _trial_error(failed: list[tuple[str, BaseException]], total: int) -> Exception:
    """The first failed trial's own error: a TinykdError's message as it is, anything else raised
    with its traceback (a bug, not bad input)."""
    name, error = failed[0]
    cause = error
    while getattr(cause, "cause", None) is not None and cause.cause is not cause:
        cause = cause.cause
    if isinstance(cause, TinykdError):
        others = f" ({len(failed) - 1} other trials failed too.)" if len(failed) > 1 else ""
        return TinykdError(f"Trial {name} failed: {cause}{others}")
    return RuntimeError(f"{len(failed)} of {total} trials failed; the first, {name}: {cause!r}")
