"""MNIST: the four original idx files (.gz, or decompressed), found locally or downloaded into a cache.

Files found locally are checked by their structure (tinykd.data.idx: magic numbers, dimensions,
counts, labels 0-9), so a recompressed copy of MNIST, or another dataset in MNIST's format and
names, is read too; the published md5 sums check downloads, and [data] checksums whatever
copy the user names.
"""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import TinykdError
from ..fileio import atomic_path
from . import idx
from .cache import cache_dir, md5sum
from .checksums import files_digest, verify_checksums
from .images import Splits, dataset_loader


@dataclass(frozen=True)
class IdxFile:
    name: str
    md5: str  # of the .gz as originally distributed (checks downloads)

    @property
    def raw_name(self) -> str:
        """The decompressed file's name (gunzip's)."""
        return self.name.removesuffix(".gz")


FILES = {
    "train_images": IdxFile("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train_labels": IdxFile("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    "test_images": IdxFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    "test_labels": IdxFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
}

# Mirrors of the original files, tried in order. The md5 sums above decide what download is accepted.
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


def find_files(folder: Path) -> dict[str, Path] | None:
    """The four files in `folder`, each as its .gz or its decompressed form (the latter when both
    are there); None unless all four are."""
    found = {}
    for key, spec in FILES.items():
        for name in (spec.raw_name, spec.name):
            if (folder / name).is_file():
                found[key] = folder / name
                break
        else:
            return None
    return found


def locate(data_dir: str | os.PathLike | None = None, download: bool = True) -> Path:
    """Return a folder holding all four files, downloading (md5-checked) into the cache if needed."""
    searched = candidate_dirs(data_dir)
    for folder in searched:
        if find_files(folder):
            return folder
    if data_dir:
        raise TinykdError(
            f"MNIST files not found in --data-dir {data_dir}. The folder must hold the four original "
            f"files ({', '.join(f.name for f in FILES.values())}, or them decompressed). Point --data-dir "
            "(or $TINYKD_DATA) at the folder that has them, or leave both unset to download into the cache."
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


def read_splits(data_dir: str | os.PathLike | None = None, checksums: dict[str, str] | None = None) -> Splits:
    """MNIST as float32 images in [0, 1], shape (28, 28, 1); validation carved from train by seed."""
    folder = locate(data_dir)
    verify_checksums(folder, checksums or {})
    files = find_files(folder)
    x, y = idx.read_pair(files["train_images"], files["train_labels"], num_classes=len(CLASS_NAMES))
    x_test, y_test = idx.read_pair(files["test_images"], files["test_labels"], num_classes=len(CLASS_NAMES))
    for key, images in (("train_images", x), ("test_images", x_test)):
        if images.ndim != 3:
            raise TinykdError(
                f"{files[key]} holds images of shape {' x '.join(map(str, images.shape[1:]))}; MNIST's are grey "
                "(N x height x width). For colour images use --task image."
            )
    return Splits(x[..., None], y, x_test[..., None], y_test, CLASS_NAMES)


load = dataset_loader(read_splits, val_cap=False)


def data_digest(data_dir: str | os.PathLike | None = None, **_) -> str:
    """sha256 of the four files a build reads (names and contents)."""
    folder = locate(data_dir)
    return files_digest(folder, sorted(find_files(folder).values()))
