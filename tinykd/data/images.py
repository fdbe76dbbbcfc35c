"""Image datasets of any shape (`--task image`): idx files, a .npz file, or a folder of class
sub-folders of PNG/JPEG images.

Whatever the format, the model sees float32 images in [0, 1] (uint8 pixel / 255), shape
height x width x channels. The int8 model's input quantisation is derived from those values
by the converter (pixels 0..255 become int8 -128..127 when the images span the whole range),
and the host quantises the test images with it before they are sent to the device: training,
conversion and device see the same numbers.

Layouts (`[data] dir` or --data-dir; `[data] format` = auto, idx, npz or folder):

- idx: a folder with four idx files, `.gz` or raw, named like MNIST's (`train`/`t10k` or
  `test`, `images`/`labels`, e.g. train-images-idx3-ubyte.gz); checked by their structure.
- npz: a .npz file (`[data] dir`; --data-dir names the folder holding it) with x_train, y_train, x_test, y_test and,
  optionally, class_names. Images uint8 0..255 (or float in [0, 1]), N x H x W [x C].
- folder: train/ and test/ sub-folders, each holding one sub-folder of images per class
  (Keras' image_dataset_from_directory layout); or the class sub-folders directly, with
  `[data] test_split` saying what fraction of each class is held out for testing (by a hash of
  the file's name, so the split never changes with the seed or when files are added).
  Photos are turned upright by their EXIF orientation (as a phone shows them); 16-bit grey
  images (scans, PNG16) are scaled to 8 bits, not clipped.

Options: `image_size = [height, width]` resizes (bilinear) every image; `channels` = 1 (grey)
or 3 (RGB) converts them (0: as stored); `class_names` names the classes (a folder dataset:
the sub-folders to use, in that order).

Longer than 400 lines on purpose: the three formats are found, read and checked against one
`Source` / `Splits` pair with one error style; a fourth format is the point to split by format.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import TinykdError
from . import idx
from .base import Dataset
from .checksums import files_digest, verify_checksums

FORMATS = ("auto", "idx", "npz", "folder")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SPLITS = ("train", "test")
ROLES = ("train_images", "train_labels", "test_images", "test_labels")

LAYOUTS = (
    "a folder with idx files named like MNIST's (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
    "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]); a .npz file with x_train, y_train, x_test, "
    "y_test; or a folder of class sub-folders of PNG/JPEG images (inside train/ and test/, or with "
    "[data] test_split)"
)


@dataclass
class Source:
    """Where an image dataset is: its format, the files read, and the folder they are named from."""

    format: str
    base: Path  # the data folder (checksums name files relative to it)
    files: dict[str, Path] = field(default_factory=dict)  # idx roles, or "npz"
    # folder format: split -> class folder name -> image files
    images: dict[str, dict[str, list[Path]]] = field(default_factory=dict)

    def all_files(self) -> list[Path]:
        listed = list(self.files.values())
        for classes in self.images.values():
            for paths in classes.values():
                listed += paths
        return sorted(set(listed))


# ------------------------------------------------------------------------------ finding it


def data_path(data_dir: str | os.PathLike | None) -> Path:
    """--data-dir ([data] dir), else $TINYKD_DATA; the image task has no default dataset."""
    if data_dir:
        path = Path(data_dir)
    elif os.environ.get("TINYKD_DATA"):
        path = Path(os.environ["TINYKD_DATA"])
    else:
        raise TinykdError(
            "The image task needs your data: give --data-dir (or [data] dir, or $TINYKD_DATA) naming "
            f"{LAYOUTS}. For MNIST itself use --task mnist."
        )
    if not path.exists():
        raise TinykdError(f"The image data {path} does not exist. Check --data-dir ([data] dir, $TINYKD_DATA).")
    return path


def find_source(
    data_dir: str | os.PathLike | None, format: str = "auto", test_split: float = 0.0, class_names=()
) -> Source:
    path = data_path(data_dir)
    if format not in FORMATS:
        raise TinykdError(f"[data] format {format!r} is not one of {', '.join(FORMATS)}.")
    if path.is_file():
        if path.suffix.lower() == ".npz" and format in ("auto", "npz"):
            return Source("npz", path.parent, {"npz": path})
        raise TinykdError(
            f"{path} is a file, but the image task reads {LAYOUTS}. Point --data-dir at the folder (or [data] dir at "
            "a .npz file)."
        )
    if format in ("auto", "idx"):
        files = _find_idx(path, required=format == "idx")
        if files:
            return Source("idx", path, files)
    if format in ("auto", "npz"):
        npz = sorted(p for p in path.glob("*.npz") if not p.name.startswith("."))
        if len(npz) == 1:
            return Source("npz", path, {"npz": npz[0]})
        if len(npz) > 1 or format == "npz":
            found = ", ".join(p.name for p in npz) or "none"
            raise TinykdError(
                f"{path} must hold exactly one .npz file for [data] format {format} (found: {found}). "
                "Keep one .npz in the folder, or name the file itself in [data] dir."
            )
    if format in ("auto", "folder"):
        images = _find_folder(path, test_split, class_names, required=format == "folder")
        if images:
            return Source("folder", path, images=images)
    raise TinykdError(f"No image dataset found in {path}. The image task reads {LAYOUTS}.")


def _idx_role(name: str) -> str | None:
    n = name.lower()
    if n.startswith(".") or not ("idx" in n or "ubyte" in n):
        return None
    split = "train" if "train" in n else "test" if ("t10k" in n or "test" in n) else None
    kind = "images" if "image" in n else "labels" if "label" in n else None
    return f"{split}_{kind}" if split and kind else None


def _find_idx(folder: Path, required: bool) -> dict[str, Path]:
    found: dict[str, list[Path]] = {r: [] for r in ROLES}
    for p in sorted(folder.iterdir()):
        role = _idx_role(p.name)
        if role and p.is_file():
            found[role].append(p)
    if not any(found.values()):
        if required:
            raise TinykdError(f"{folder} holds no idx files; [data] format idx needs {LAYOUTS.split(';')[0]}.")
        return {}
    files = {}
    for role, paths in found.items():
        if len(paths) == 2 and {p.name for p in paths} in ({paths[0].name, paths[0].name + ".gz"},):
            paths = [paths[0]]  # X and X.gz (gunzip -k): the uncompressed copy
        if len(paths) != 1:
            what = "none" if not paths else ", ".join(p.name for p in paths)
            raise TinykdError(
                f"{folder} holds idx files, but not exactly one {role.replace('_', ' ')} file (found: {what}). "
                "The image task needs one file each for train images, train labels, test images and test "
                "labels, named with train or t10k/test and images or labels (as MNIST's are). Rename or "
                "remove the extra files."
            )
        files[role] = paths[0]
    return files


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _class_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _find_folder(root: Path, test_split: float, class_names, required: bool) -> dict[str, dict[str, list[Path]]]:
    has_splits = (root / "train").is_dir()
    if not has_splits and (root / "test").is_dir():
        raise TinykdError(
            f"{root} has a test/ folder but no train/ folder beside it. Add train/ with the same classes."
        )
    if has_splits:
        if (root / "test").is_dir():
            if test_split:
                raise TinykdError(
                    f"{root} has its own train/ and test/ folders, and [data] test_split = {test_split} would "
                    "split it again. Remove test_split (or the test/ folder)."
                )
            split_roots = {"train": root / "train", "test": root / "test"}
        else:
            split_roots = {"train": root / "train"}
    else:
        split_roots = {"train": root}
    per_split = {s: {c.name: _image_files(c) for c in _class_folders(folder)} for s, folder in split_roots.items()}
    train = per_split["train"]
    if not any(train.values()):
        if required or has_splits:
            raise TinykdError(
                f"{split_roots['train']} holds no class sub-folders with PNG/JPEG images. A folder dataset has "
                "one sub-folder per class (its name is the class name) holding that class's images."
            )
        return {}
    names = list(class_names) or sorted(train)
    if set(names) != set(train):
        raise TinykdError(
            f"[data] class_names ({', '.join(names)}) must name exactly the class sub-folders of "
            f"{split_roots['train']} ({', '.join(sorted(train))}). Fix the list, or leave it empty to use every "
            "sub-folder in alphabetical order."
        )
    for split, classes in per_split.items():
        for name in names:
            if not classes.get(name) and split == "train":
                raise TinykdError(
                    f"The class folder {split_roots[split] / name} holds no PNG/JPEG images "
                    f"({', '.join(IMAGE_SUFFIXES)}). Add its images or remove the folder."
                )
        extra = sorted(set(classes) - set(names))
        if extra:
            raise TinykdError(
                f"{split_roots[split]} has class folders that training does not: {', '.join(extra)}. Every test "
                "class must also be a training class; rename or remove them."
            )
    if "test" not in per_split:
        if not test_split:
            raise TinykdError(
                f"{root} has no test/ folder. Put the test images in test/<class>/ (and the training images in "
                "train/<class>/), or set [data] test_split (e.g. 0.2) to hold out that fraction of each class."
            )
        per_split = _hash_split(per_split["train"], test_split)
    return {s: {name: per_split[s].get(name, []) for name in names} for s in SPLITS}


def _hash_split(classes: dict[str, list[Path]], test_split: float) -> dict[str, dict[str, list[Path]]]:
    """Hold out files whose name hashes below `test_split` (per file: stable when files are added)."""
    split: dict[str, dict[str, list[Path]]] = {"train": {}, "test": {}}
    for name, paths in classes.items():
        for s in SPLITS:
            split[s][name] = []
        for p in paths:
            h = int.from_bytes(hashlib.sha256(f"{name}/{p.name}".encode()).digest()[:8], "big") / 2.0**64
            split["test" if h < test_split else "train"][name].append(p)
    return split


# ------------------------------------------------------------------------------ reading it


@dataclass
class Splits:
    """Train and test images as stored (uint8 0..255 or float32 0..1, N x H x W x C) and labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]


def _with_channel_axis(x: np.ndarray) -> np.ndarray:
    return x[..., None] if x.ndim == 3 else x


def read_idx_source(source: Source, class_names=()) -> Splits:
    num_classes = len(class_names) or None
    x_train, y_train = idx.read_pair(source.files["train_images"], source.files["train_labels"], num_classes)
    x_test, y_test = idx.read_pair(source.files["test_images"], source.files["test_labels"], num_classes)
    if num_classes is None:
        num_classes = int(y_train.max()) + 1
        idx.check_labels(y_test, source.files["test_labels"], num_classes)
    names = list(class_names) or [str(k) for k in range(num_classes)]
    return Splits(_with_channel_axis(x_train), y_train, _with_channel_axis(x_test), y_test, names)


def read_npz_source(source: Source, class_names=()) -> Splits:
    path = source.files["npz"]
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise TinykdError(f"{path} cannot be read as a .npz file ({exc}). Write it with numpy.savez.") from None
    except ValueError as exc:
        raise TinykdError(
            f"{path} holds pickled Python objects ({exc}); tinykd does not unpickle data. Save class names as "
            "a string array (np.array(names, dtype=str)) and images and labels as numeric arrays."
        ) from None
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if missing:
        raise TinykdError(
            f"{path} lacks {', '.join(missing)} (it holds: {', '.join(sorted(arrays)) or 'nothing'}). A .npz "
            "dataset has x_train, y_train, x_test, y_test (and optionally class_names)."
        )
    xs = {s: _npz_images(arrays[f"x_{s}"], path, f"x_{s}") for s in SPLITS}
    ys = {s: _npz_labels(arrays[f"y_{s}"], path, f"y_{s}", len(xs[s])) for s in SPLITS}
    names = list(class_names)
    if not names and "class_names" in arrays:
        stored = arrays["class_names"]
        if stored.ndim != 1 or stored.dtype.kind not in "US":
            raise TinykdError(
                f"{path}: class_names must be a 1-D array of strings (got {stored.dtype} {stored.shape})."
            )
        names = [str(n.decode() if isinstance(n, bytes) else n) for n in stored]
    num_classes = len(names) or int(ys["train"].max()) + 1
    for s in SPLITS:
        idx.check_labels(ys[s], f"{path} (y_{s})", num_classes)
    names = names or [str(k) for k in range(num_classes)]
    return Splits(xs["train"], ys["train"], xs["test"], ys["test"], names)


def _npz_images(x: np.ndarray, path: Path, key: str) -> np.ndarray:
    shape = " x ".join(map(str, x.shape))
    if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[3] not in (1, 3)) or min(x.shape) == 0:
        raise TinykdError(
            f"{path}: {key} has shape {shape}; images must be N x height x width (grey) or "
            "N x height x width x channels with 1 or 3 channels, N >= 1."
        )
    if x.dtype == np.uint8:
        return _with_channel_axis(x)
    if x.dtype.kind in "iu":
        if x.min() < 0 or x.max() > 255:
            raise TinykdError(
                f"{path}: {key} holds integers outside 0..255 ({x.min()}..{x.max()}); store pixels 0-255."
            )
        return _with_channel_axis(x.astype(np.uint8))
    if x.dtype.kind == "f":
        if not np.all(np.isfinite(x)) or x.min() < 0.0 or x.max() > 1.0:
            raise TinykdError(
                f"{path}: {key} holds floats outside [0, 1] (or NaN/inf). Store pixels as uint8 0-255, or as "
                "floats scaled to [0, 1]."
            )
        return _with_channel_axis(x.astype(np.float32))
    raise TinykdError(f"{path}: {key} holds {x.dtype} values; images must be uint8 (0-255) or float (0-1).")


def _npz_labels(y: np.ndarray, path: Path, key: str, count: int) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    integral = y.dtype.kind in "iu" or (y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)))
    if y.ndim != 1 or not integral:
        raise TinykdError(
            f"{path}: {key} must hold one integer class index per image (got {y.dtype} of shape "
            f"{' x '.join(map(str, y.shape))}); one-hot labels need argmax first."
        )
    if len(y) != count:
        raise TinykdError(
            f"{path}: {key} has {len(y)} labels but x_{key[2:]} has {count} images; the counts must agree."
        )
    return y.astype(np.int64)


def read_folder_source(source: Source, image_size=(), channels: int = 0) -> Splits:
    from PIL import Image

    paths = source.all_files()
    modes, sizes = {}, {}
    for p in paths:  # headers only: the mode and size of every image
        try:
            with Image.open(p) as im:
                modes[p] = im.mode
                sizes.setdefault(_upright_size(im), p)
        except (OSError, Image.DecompressionBombError) as exc:
            raise TinykdError(f"{p} cannot be read as an image ({exc}). Replace or remove it.") from None
    if not channels:
        channels = 1 if all(m.startswith(("1", "L", "I", "F")) for m in modes.values()) else 3
    if image_size:
        height, width = image_size
    elif len(sizes) > 1:
        (s1, p1), (s2, p2) = list(sizes.items())[:2]
        raise TinykdError(
            f"The images have different sizes ({p1} is {s1[0]}x{s1[1]}, {p2} is {s2[0]}x{s2[1]}, width x "
            "height). Set [data] image_size = [height, width] to resize them all to one size."
        )
    else:
        width, height = next(iter(sizes))
    mode = "L" if channels == 1 else "RGB"
    names = list(source.images["train"])
    out = {}
    for split in SPLITS:
        xs, ys = [], []
        for label, name in enumerate(names):
            for p in source.images[split][name]:
                xs.append(_read_image(p, mode, width, height))
                ys.append(label)
        if not xs:
            raise TinykdError(f"The {split} split of {source.base} holds no images. Add some, or change test_split.")
        out[split] = (np.stack(xs), np.asarray(ys, dtype=np.int64))
    return Splits(out["train"][0], out["train"][1], out["test"][0], out["test"][1], names)


EXIF_ORIENTATION = 0x0112
SIDEWAYS = (5, 6, 7, 8)  # EXIF orientations whose upright image swaps width and height


def _upright_size(im) -> tuple[int, int]:
    """(width, height) as the image is shown: a phone stores a portrait photo sideways, with an
    EXIF orientation that viewers (and _read_image) apply."""
    width, height = im.size
    return (height, width) if im.getexif().get(EXIF_ORIENTATION) in SIDEWAYS else (width, height)


def _eight_bit(im):
    """16-bit grey (PNG, TIFF scans) and 32-bit integer images scaled from 0..65535 to 0..255, float
    images from 0..1: PIL's own convert("L") clips them instead, turning nearly every pixel white."""
    from PIL import Image

    if im.mode.startswith("I;16") or im.mode == "I":
        scaled = np.asarray(im, dtype=np.float64) / 257.0
    elif im.mode == "F":
        scaled = np.asarray(im, dtype=np.float64) * 255.0
    else:
        return im
    return Image.fromarray(np.clip(np.round(scaled), 0, 255).astype(np.uint8), "L")


def _read_image(path: Path, mode: str, width: int, height: int) -> np.ndarray:
    """One image file as uint8 height x width x channels: turned upright, brought to 8 bits,
    converted to `mode`, resized (bilinear)."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im = _eight_bit(ImageOps.exif_transpose(im))
            im = im.convert(mode)
            if im.size != (width, height):
                im = im.resize((width, height), Image.Resampling.BILINEAR)
            return np.asarray(im, dtype=np.uint8).reshape(height, width, 1 if mode == "L" else 3)
    except OSError as exc:
        raise TinykdError(f"{path} cannot be decoded ({exc}); the file is damaged. Replace or remove it.") from None


# ------------------------------------------------------------------------------ shaping it


def convert_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """N x H x W x C images to `channels` (1: ITU-R 601 luma, as PIL's "L"; 3: grey repeated)."""
    if not channels or x.shape[3] == channels:
        return x
    if channels == 3:
        return np.repeat(x, 3, axis=3)
    if x.dtype == np.uint8:
        from PIL import Image

        return np.stack([np.asarray(Image.fromarray(im, "RGB").convert("L"))[..., None] for im in x])
    return (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None].astype(np.float32)


def resize(x: np.ndarray, image_size) -> np.ndarray:
    """N x H x W x C images resized (bilinear, PIL) to image_size = (height, width)."""
    if not image_size or tuple(x.shape[1:3]) == tuple(image_size):
        return x
    from PIL import Image

    height, width = image_size
    if x.dtype == np.uint8:
        mode = "L" if x.shape[3] == 1 else "RGB"
        frames = [Image.fromarray(im[..., 0] if mode == "L" else im, mode) for im in x]
        return np.stack(
            [
                np.asarray(f.resize((width, height), Image.Resampling.BILINEAR)).reshape(height, width, -1)
                for f in frames
            ]
        )
    planes = [
        [
            np.asarray(Image.fromarray(im[..., c], "F").resize((width, height), Image.Resampling.BILINEAR))
            for c in range(x.shape[3])
        ]
        for im in x
    ]
    return np.clip(np.stack([np.stack(p, axis=-1) for p in planes]), 0.0, 1.0).astype(np.float32)


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 0..255 -> float32 0..1 (what every image model here is trained on); floats as they are."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    return images.astype(np.float32)


def make_dataset(
    splits: Splits, val_size: int, seed: int, train_limit: int, test_limit: int, val_cap: bool = True
) -> Dataset:
    """Validation carved from train by the seed (with `val_cap`, at most a fifth of it), then the limits."""
    if splits.x_train.shape[1:] != splits.x_test.shape[1:]:
        raise TinykdError(
            f"The training images are {_shape(splits.x_train)} but the test images {_shape(splits.x_test)}. "
            "Set [data] image_size and channels to bring both to one shape."
        )
    if len(splits.class_names) < 2:
        raise TinykdError(f"The dataset has {len(splits.class_names)} class; a classifier needs at least 2.")
    n = len(splits.y_train)
    val = min(val_size, n // 5) if val_cap else val_size
    if val < 1 or val >= n:
        raise TinykdError(
            f"The training split has {n} examples, too few to hold out {val_size} for validation and train on "
            "the rest. Give more training images, or a smaller [data] val_size."
        )
    order = np.random.default_rng(seed).permutation(n)
    val_idx, train_idx = order[:val], order[val:]
    if train_limit:
        train_idx = train_idx[:train_limit]
    x_test, y_test = splits.x_test, splits.y_test
    if test_limit:
        x_test, y_test = x_test[:test_limit], y_test[:test_limit]
    return Dataset(
        x_train=to_float(splits.x_train[train_idx]),
        y_train=splits.y_train[train_idx],
        x_val=to_float(splits.x_train[val_idx]),
        y_val=splits.y_train[val_idx],
        x_test=to_float(x_test),
        y_test=y_test,
        class_names=list(splits.class_names),
    )


def _shape(x: np.ndarray) -> str:
    return " x ".join(map(str, x.shape[1:]))


# ------------------------------------------------------------------------------ the task


def read_source(source: Source, image_size=(), channels: int = 0, class_names=()) -> Splits:
    if source.format == "folder":
        return read_folder_source(source, image_size, channels)
    splits = read_idx_source(source, class_names) if source.format == "idx" else read_npz_source(source, class_names)
    for s in SPLITS:
        x = resize(convert_channels(getattr(splits, f"x_{s}"), channels), image_size)
        setattr(splits, f"x_{s}", x)
    return splits


def dataset_loader(read_splits: Callable[..., Splits], val_cap: bool = True) -> Callable[..., Dataset]:
    """A task's `load(data_dir, val_size, seed, train_limit, test_limit, **options)` (see
    tinykd.data.Task): `read_splits(data_dir, **options)`, then `make_dataset`."""

    def load(
        data_dir: str | os.PathLike | None = None,
        val_size: int = 5000,
        seed: int = 0,
        train_limit: int = 0,
        test_limit: int = 0,
        **options,
    ) -> Dataset:
        return make_dataset(read_splits(data_dir, **options), val_size, seed, train_limit, test_limit, val_cap)

    load.__doc__ = read_splits.__doc__
    return load


def read_dataset(
    data_dir: str | os.PathLike | None = None,
    format: str = "auto",
    image_size=(),
    channels: int = 0,
    class_names=(),
    test_split: float = 0.0,
    checksums: dict[str, str] | None = None,
) -> Splits:
    """The image dataset at `data_dir` as float32 images in [0, 1], H x W x C."""
    source = find_source(data_dir, format, test_split, class_names)
    if test_split and source.format != "folder":
        raise TinykdError(
            f"[data] test_split = {test_split} splits a folder of class sub-folders, but {source.base} holds "
            f"{source.format} files, which have their own test split. Remove test_split."
        )
    verify_checksums(source.base, checksums or {})
    return read_source(source, tuple(image_size), channels, class_names)


load = dataset_loader(read_dataset)


_FOLDER_DIGESTS: dict[tuple, str] = {}


def data_digest(data_dir=None, format: str = "auto", test_split: float = 0.0, class_names=(), **_) -> str:
    """sha256 of every file the dataset is read from (names and contents). A folder of images is
    scanned once per process (build fingerprints ask for the digest many times)."""
    key = (str(data_path(data_dir).resolve()), format, test_split, tuple(class_names))
    if key in _FOLDER_DIGESTS:
        return _FOLDER_DIGESTS[key]
    source = find_source(data_dir, format, test_split, class_names)
    digest = files_digest(source.base, source.all_files())
    if source.format == "folder":
        _FOLDER_DIGESTS[key] = digest
    return digest
