"""The output folder, reached from any node: trials never write the driver's files themselves.

On a cluster a trial may run on a machine that does not share the driver's disk, so what a
trial keeps (a point's JSON, its .tflite, a candidate's recorded validation errors) goes through
`FolderStore`: in the plain loop a thin wrapper over the folder, on Ray an actor pinned to the
driver's node (no CPU of its own) that writes there, each file atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..fileio import write_bytes, write_json


def _inside(root: Path, relative: str) -> Path:
    path = (root / relative).resolve()
    if root.resolve() not in path.parents:
        raise ValueError(f"{relative!r} is outside the output folder {root}")
    return path


class FolderStore:
    """Files under one output folder, by relative path: bytes or JSON."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def write(self, relative: str, data: bytes | dict | list) -> str:
        path = _inside(self.root, relative)
        if isinstance(data, bytes):
            write_bytes(path, data)
        else:
            write_json(path, data)
        return str(path)

    def read_json(self, relative: str):
        """The JSON at `relative`, or None when it is missing or unreadable (a crash mid-write
        cannot leave one half-written: writes are atomic)."""
        path = _inside(self.root, relative)
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None


def store_actor(root: Path):
    """A FolderStore as a Ray actor on this (the driver's) node, taking no CPU."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    actor = ray.remote(num_cpus=0)(FolderStore)
    return actor.options(scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)).remote(str(root))
