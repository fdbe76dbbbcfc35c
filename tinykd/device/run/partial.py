"""The verified results of a run, per input index, kept in a file (device_partial.npz) so that
the next run with the same inputs, model and firmware streams only what is missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import threading
import zipfile
from pathlib import Path

import numpy as np

from tinykd.device.run.jobs import Job
from tinykd.fileio import write_bytes


def inputs_digest(rows: np.ndarray) -> str:
    h = hashlib.sha256(f"{rows.dtype.str}{rows.shape}".encode())
    h.update(np.ascontiguousarray(rows).tobytes())
    return h.hexdigest()


def file_digest(path: str | os.PathLike | None) -> str | None:
    if path is None or not Path(path).is_file():
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class PartialResults:
    """The verified results of one run, per input index, kept in an .npz file.

    The file holds `key` (what the results depend on: the kind of run, the board, the model's
    SHA-256, the firmware image's, and the inputs' digest), `index` and one array per column.
    A file with another key is from another run: it is ignored (and replaced at the first
    save). Saves go through tinykd.fileio (a temporary file renamed over the old one), so an
    interruption at any moment leaves the previous checkpoint or the new one, never half."""

    def __init__(self, path: str | os.PathLike | None, key: dict):
        self.path = Path(path) if path is not None else None
        self.key = key
        self.rows: dict[int, tuple] = {}
        self.dirty = False
        self._lock = threading.Lock()  # workers put while the main thread saves
        if self.path is not None and self.path.is_file():
            self._load()
        self.resumed = len(self.rows)

    def _load(self) -> None:
        try:
            with np.load(self.path, allow_pickle=False) as z:
                if json.loads(str(z["key"])) != self.key:
                    return
                index = z["index"]
                cols = [z[f"c{j}"] for j in range(int(z["columns"]))]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            return  # unreadable: start over (the next save replaces it)
        for k, i in enumerate(index):
            self.rows[int(i)] = tuple(c[k] for c in cols)

    def __contains__(self, i: int) -> bool:
        return i in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def put(self, i: int, values: tuple) -> None:
        with self._lock:
            self.rows[i] = values
            self.dirty = True

    def save(self) -> None:
        with self._lock:
            if self.path is None or not self.dirty or not self.rows:
                return
            rows = dict(self.rows)
            self.dirty = False
        index = np.array(sorted(rows), dtype=np.int64)
        ncols = len(rows[int(index[0])])
        arrays = {f"c{j}": np.array([rows[int(i)][j] for i in index]) for j in range(ncols)}
        buf = io.BytesIO()
        np.savez(buf, key=np.array(json.dumps(self.key, sort_keys=True)), index=index, columns=ncols, **arrays)
        try:
            write_bytes(self.path, buf.getvalue())
        except BaseException:
            self.dirty = True  # not written: the next save tries again
            raise

    def remove(self) -> None:
        """The final results are written: the partial file is no longer needed."""
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def columns(self, job: Job) -> dict[str, np.ndarray]:
        n = len(job.rows)
        return {
            name: np.array([self.rows[i][j] for i in range(n)], dtype=dtype)
            for j, (name, dtype) in enumerate(job.columns)
        }
