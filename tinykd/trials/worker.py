"""Inside a trial: what every trial of a run shares (`TrialJob`, shipped to each node once
through Ray's object store), and the `Trial` handle a unit of work gets.

A unit of work is a module-level function `work(experiment, params, trial) -> metrics`: it
trains and measures one point (one student, one candidate, one T/alpha) with the data and the
teacher it is given, keeps its files through `trial.write` (they land in the driver's output
folder wherever the trial ran), reports intermediate results with `trial.report` (what ASHA
decides on) and returns its final metrics.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import BuildConfig
from ..errors import TinykdError
from ..fileio import write_bytes
from .store import FolderStore


@dataclass
class TrialJob:
    """What every trial of one run shares: settings, the data's arrays and the teacher's bytes."""

    config: BuildConfig
    out: Path  # the driver's output folder (absolute)
    dataset: Any  # tinykd.data.base.Dataset: arrays, read-only on the workers (object store)
    teacher_bytes: bytes
    teacher_id: str
    work: Callable[..., dict]
    cpus: int  # each trial's CPU share: TensorFlow's thread pools get as many threads
    driver_node: str | None = None  # Ray node of the driver (None: the plain loop)
    store: Any = None  # Ray actor handle of the driver's FolderStore (None: the plain loop)
    verbose: bool = False
    key: str = field(default="")

    def __post_init__(self):
        if not self.key:
            self.key = hashlib.sha256(self.teacher_id.encode() + str(self.out).encode()).hexdigest()[:12]


class Trial:
    """One trial's view of the run: where to keep files, how to report, which node it is on."""

    def __init__(self, job: TrialJob, name: str, node: str, report: Callable[[dict], None] | None):
        self.job, self.name, self.node = job, name, node
        self._report = report
        self.reports: list[dict] = []

    @property
    def tf_threads(self) -> int:
        """TensorFlow's intra-op threads in this process (0: its default, one per core)."""
        import tensorflow as tf

        return tf.config.threading.get_intra_op_parallelism_threads()

    def report(self, **metrics) -> None:
        """An intermediate result (e.g. validation errors after N epochs): a scheduler may stop
        the trial here."""
        self.reports.append(metrics)
        if self._report is not None:
            self._report(metrics)

    def write(self, relative: str, data: bytes | dict | list) -> None:
        """Keep a file under the driver's output folder (a point's JSON, its .tflite)."""
        if self.job.store is None:
            FolderStore(self.job.out).write(relative, data)
        else:
            import ray

            ray.get(self.job.store.write.remote(relative, data))

    def read_json(self, relative: str):
        """A JSON file from the driver's output folder, or None."""
        if self.job.store is None:
            return FolderStore(self.job.out).read_json(relative)
        import ray

        return ray.get(self.job.store.read_json.remote(relative))

    def scratch(self, name: str) -> Path:
        """A folder for checkpoints on this node: out/checkpoints/NAME on the driver's machine, the
        node's cache elsewhere (a rerun on the same node resumes from it)."""
        if self.job.driver_node is None or self.node == self.job.driver_node:
            return self.job.out / "checkpoints" / name
        from ..data.cache import cache_dir

        return cache_dir() / "trials" / self.job.key / "checkpoints" / name


_EXPERIMENTS: dict[str, Any] = {}  # per worker process: a reused actor builds each run's once


def experiment_for(job: TrialJob):
    """The run's Experiment on this worker: the shipped arrays, the teacher in the node's cache."""
    from ..data import get_task
    from ..data.cache import cache_dir
    from ..experiments.points import Experiment

    if job.key not in _EXPERIMENTS:
        teacher = cache_dir() / "trials" / "teachers" / f"{job.teacher_id}.keras"
        if not teacher.is_file() or teacher.stat().st_size != len(job.teacher_bytes):
            write_bytes(teacher, job.teacher_bytes)
        log = print if job.verbose else (lambda message: None)
        _EXPERIMENTS.clear()
        _EXPERIMENTS[job.key] = Experiment(
            job.config, job.out, job.dataset, get_task(job.config.task), teacher, job.teacher_id, log
        )
    return _EXPERIMENTS[job.key]


def use_cpus(cpus: int) -> None:
    """TensorFlow's intra- and inter-op thread pools sized to the trial's CPU share. Must run
    before TensorFlow's first op in the process (a reused worker asks for the same count again)."""
    import tensorflow as tf

    threading = tf.config.threading
    try:
        threading.set_intra_op_parallelism_threads(cpus)
        threading.set_inter_op_parallelism_threads(cpus)
    except RuntimeError:
        raise TinykdError(
            f"TensorFlow was started in this worker with {threading.get_intra_op_parallelism_threads()} threads "
            f"before the trial could set {cpus}; trials must run in fresh Ray workers."
        ) from None


def tune_trainable(config: dict, job: TrialJob) -> None:
    """The function Ray Tune runs for every trial: threads, experiment, the work, its report."""
    import ray
    from ray import tune

    use_cpus(job.cpus)
    params = config["params"]
    node = ray.get_runtime_context().get_node_id()
    trial = Trial(job, params.get("name") or tune.get_context().get_trial_id(), node, tune.report)
    metrics = job.work(experiment_for(job), params, trial)
    tune.report({**metrics, "finished": True, "node": node, "host": socket.gethostname(), "pid": os.getpid()})
