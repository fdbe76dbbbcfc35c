"""MNIST: the four original idx .gz files, found locally or downloaded into a cache with md5 checks."""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TinykdError
from ..fileio import atomic_path
from .base import Dataset
from .cache import cache_dir, md5sum


@dataclass(frozen=True)
class IdxFile:
    name: str
    md5: str  # of the .gz as originally distributed
    magic: int
    count: int


FILES = {
    "train_images": IdxFile("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", 2051, 60000),
    "train_labels": IdxFile("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", 2049, 60000),
    "test_images": IdxFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", 2051, 10000),
    "test_labels": IdxFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", 2049, 10000),
}

# Mirrors of the original files, tried in order. The md5 sums above decide what is accepted.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

CLASS_NAMES = [str(d) for d in range(10)]


def candidate_dirs(data_dir: str | os.PathLike | None) -> list[Path]:
    """Folders searched for the idx files: --data-dir alone when given (a folder the user named is used
    or refused, never swapped for another); else $TINYKD_DATA, then the cache."""
    dirs: list[Path] = []
    if data_dir:
        dirs.append(Path(data_dir))
    else:
        if os.environ.get("TINYKD_DATA"):
            dirs.append(Path(os.environ["TINYKD_DATA"]))
        dirs.append(cache_dir() / "mnist")
    # A folder that holds the mnist/ folder (e.g. ../shared/data) works too.
    return [d for base in dirs for d in (base, base / "mnist")]


def locate(data_dir: str | os.PathLike | None = None, download: bool = True) -> Path:
    """Return a folder holding all four verified files, downloading into the cache if needed."""
    searched = candidate_dirs(data_dir)
    for folder in searched:
        if all((folder / f.name).is_file() for f in FILES.values()):
            verify(folder)
            return folder
    if data_dir:
        raise TinykdError(
            f"MNIST files not found in --data-dir {data_dir}. The folder must hold the four original "
            f"files ({', '.join(f.name for f in FILES.values())}). Point --data-dir (or $TINYKD_DATA) "
            "at the folder that has them, or leave both unset to download into the cache."
        )
    if not download:
        raise TinykdError(_not_found_message(searched))
    return download_to_cache(searched)


def _not_found_message(searched: list[Path]) -> str:
    where = ", ".join(str(p) for p in dict.fromkeys(searched))
    return (
        f"MNIST was not found (looked in: {where}) and could not be downloaded. Put the four original "
        f"files ({', '.join(f.name for f in FILES.values())}) in one folder and pass it with --data-dir "
        f"or $TINYKD_DATA, or copy them into {cache_dir() / 'mnist'}."
    )


def download_to_cache(searched: list[Path]) -> Path:
    target = cache_dir() / "mnist"
    target.mkdir(parents=True, exist_ok=True)
    for spec in FILES.values():
        dest = target / spec.name
        if dest.is_file() and md5sum(dest) == spec.md5:
            continue
        last_error: Exception | None = None
        for mirror in MIRRORS:
            try:
                with atomic_path(dest) as tmp:
                    with urllib.request.urlopen(mirror + spec.name, timeout=30) as resp, open(tmp, "wb") as out:
                        shutil.copyfileobj(resp, out)
                    if md5sum(tmp) != spec.md5:
                        raise ValueError(f"md5 mismatch for {spec.name} from {mirror}")
                last_error = None
                break
            except (urllib.error.URLError, OSError, ValueError) as exc:
                last_error = exc
        if last_error is not None:
            raise TinykdError(_not_found_message(searched) + f" (last download error: {last_error})")
    return target


def verify(folder: Path) -> None:
    """Check each file's md5 against the published sums; say which file is bad and why."""
    for spec in FILES.values():
        path = folder / spec.name
        actual = md5sum(path)
        if actual != spec.md5:
            raise TinykdError(
                f"{path} is corrupt or not the original MNIST file: its md5 is {actual}, expected "
                f"{spec.md5}. Delete it and copy (or download) the original file again."
            )


def read_idx(path: Path, spec: IdxFile) -> np.ndarray:
    """Decode one idx file (big-endian header: magic, dims; then uint8 data)."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise TinykdError(
            f"{path} cannot be decompressed ({exc}); the file is truncated or not gzip. "
            "Delete it and copy (or download) the original file again."
        ) from None
    ndim = 3 if spec.magic == 2051 else 1
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise TinykdError(f"{path} is too short to be an idx file; replace it with the original.")
    magic, *dims = struct.unpack(f">{1 + ndim}I", raw[:header])
    expected = spec.count * (784 if ndim == 3 else 1)
    if magic != spec.magic or dims[0] != spec.count or len(raw) - header != expected:
        raise TinykdError(
            f"{path} has an unexpected idx header or size (magic {magic}, dims {dims}, "
            f"{len(raw) - header} data bytes); replace it with the original file."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(spec.count, *dims[1:])


def load(
    data_dir: str | os.PathLike | None = None,
    val_size: int = 5000,
    seed: int = 0,
    train_limit: int = 0,
    test_limit: int = 0,
) -> Dataset:
    """MNIST as float32 images in [0, 1], shape (28, 28, 1); validation carved from train by seed."""
    folder = locate(data_dir)
    arrays = {key: read_idx(folder / spec.name, spec) for key, spec in FILES.items()}
    x, y = arrays["train_images"], arrays["train_labels"].astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    val_idx, train_idx = order[:val_size], order[val_size:]
    if train_limit:
        train_idx = train_idx[:train_limit]
    x_test, y_test = arrays["test_images"], arrays["test_labels"].astype(np.int64)
    if test_limit:
        x_test, y_test = x_test[:test_limit], y_test[:test_limit]
    return Dataset(
        x_train=to_float(x[train_idx]),
        y_train=y[train_idx],
        x_val=to_float(x[val_idx]),
        y_val=y[val_idx],
        x_test=to_float(x_test),
        y_test=y_test,
        class_names=CLASS_NAMES,
    )


def to_float(images: np.ndarray) -> np.ndarray:
    return (images.astype(np.float32) / 255.0)[..., None]
