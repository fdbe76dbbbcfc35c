"""The Ray Tune callback that feeds the driver's one progress bar (tinykd.trials.progress).

Tune pickles its callbacks with the experiment's state, and a bar (its terminal stream) cannot
be pickled: the callback, a module-level class, carries only the key of its bar in `_BARS`.
"""

from __future__ import annotations

from ray import tune

from .progress import TrialProgress

_BARS: dict[str, TrialProgress] = {}


def trial_name(trial) -> str:
    """A point's own name; a sampled point (a search) goes by its trial id."""
    return trial.config["params"].get("name") or trial.trial_id


class ProgressCallback(tune.Callback):
    def __init__(self, progress: TrialProgress):
        self.key = str(id(progress))
        _BARS[self.key] = progress

    def _progress(self) -> TrialProgress:
        return _BARS[self.key]

    def on_trial_start(self, iteration, trials, trial, **info):
        self._progress().started(trial_name(trial))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._progress().reports.setdefault(trial_name(trial), []).append(dict(result))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._progress().ended(trial_name(trial), trial.last_result or {})

    def on_trial_error(self, iteration, trials, trial, **info):
        self._progress().errored(trial_name(trial))

    def on_experiment_end(self, trials, **info):
        _BARS.pop(self.key, None)
