"""Trials on Ray: the one runner under `sweep`, `fit`, multi-seed runs and searches.

- `session`: Ray embedded on this machine, or a cluster joined by address (also the hook for
  Ray Core work such as the device farm's actors).
- `worker`: what a trial gets (the data's arrays and the teacher, once per node) and does.
- `store`: the output folder, written on the driver's node whichever node a trial ran on.
- `runner`: `run_trials`, Tune grid searches, searches and schedulers; the plain loop.
- `progress`: one progress bar for a whole run.
"""

from .runner import TrialOutcome, run_trials
from .session import EMBEDDED, RayOptions, ray_session
from .worker import Trial

__all__ = ["EMBEDDED", "RayOptions", "Trial", "TrialOutcome", "ray_session", "run_trials"]
