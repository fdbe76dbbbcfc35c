"""Small image datasets the image-task tests make for themselves: MNIST digits rotated, resized,
made noisy and (for RGB) coloured, written as idx files, .npz or folders of PNG/JPEG.

The writers here are independent of tinykd's readers (the idx header is packed by hand), so a
reader that misreads the format cannot pass its own test."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = (0, 1, 2, 3, 4)
NAMES = ("zero", "one", "two", "three", "four")


def _mnist_test_digits(mnist_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's 10 000 test digits (uint8 N x 28 x 28) and labels, read here without tinykd."""
    with gzip.open(mnist_dir / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(mnist_dir / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return images, labels


def make_images(
    mnist_dir: Path, n_train: int, n_test: int, size: tuple[int, int], channels: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """x_train, y_train, x_test, y_test: uint8 N x H x W x C digits of CLASSES (labels 0..4),
    each rotated by up to 25 degrees, resized to `size`, with noise; RGB ones in a random colour
    on a random background."""
    digits, labels = _mnist_test_digits(mnist_dir)
    keep = np.flatnonzero(np.isin(labels, CLASSES))
    rng = np.random.default_rng(seed)
    chosen = keep[: n_train + n_test]
    height, width = size
    out = []
    for i in chosen:
        im = Image.fromarray(digits[i]).rotate(float(rng.uniform(-25, 25)), Image.Resampling.BILINEAR)
        im = im.resize((width, height), Image.Resampling.BILINEAR)
        alpha = np.asarray(im, np.float32) / 255.0
        if channels == 1:
            pixels = 255.0 * alpha[..., None]
        else:
            fg = rng.uniform(128, 255, 3)
            bg = rng.uniform(0, 90, 3)
            pixels = bg * (1 - alpha[..., None]) + fg * alpha[..., None]
        pixels = pixels + rng.normal(0, 10, pixels.shape)
        out.append(np.clip(np.round(pixels), 0, 255).astype(np.uint8))
    x = np.stack(out)
    x[0] = 0  # one all-black and one all-white image: the inputs span 0..255 exactly
    x[1] = 255
    y = labels[chosen].astype(np.int64)
    return {"x_train": x[:n_train], "y_train": y[:n_train], "x_test": x[n_train:], "y_test": y[n_train:]}


def idx_bytes(array: np.ndarray) -> bytes:
    """An idx file of uint8 values: two zero bytes, type 0x08, the dimension count, the dimensions."""
    array = np.ascontiguousarray(array, np.uint8)
    return struct.pack(f">BBBB{array.ndim}I", 0, 0, 0x08, array.ndim, *array.shape) + array.tobytes()


IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def write_idx(folder: Path, data: dict[str, np.ndarray], gz: dict[str, bool]) -> dict[str, Path]:
    """The four idx files (grey images as N x H x W), each .gz or raw as `gz` says."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_images": data["x_train"][..., 0],
        "train_labels": data["y_train"],
        "test_images": data["x_test"][..., 0],
        "test_labels": data["y_test"],
    }
    paths = {}
    for role, array in arrays.items():
        raw = idx_bytes(array)
        path = folder / (IDX_NAMES[role] + (".gz" if gz[role] else ""))
        path.write_bytes(gzip.compress(raw, mtime=0) if gz[role] else raw)
        paths[role] = path
    return paths


def write_folder(root: Path, data: dict[str, np.ndarray], splits: bool, jpeg_every: int = 0) -> None:
    """PNG files in <root>/[train|test/]<class name>/<n>.png (every `jpeg_every`-th a JPEG)."""
    for split in ("train", "test"):
        x, y = data[f"x_{split}"], data[f"y_{split}"]
        for i, (image, label) in enumerate(zip(x, y, strict=True)):
            folder = (root / split if splits else root) / NAMES[label]
            folder.mkdir(parents=True, exist_ok=True)
            im = Image.fromarray(image[..., 0] if image.shape[2] == 1 else image)
            if jpeg_every and i % jpeg_every == 0:
                im.save(folder / f"{split}-{i:04d}.jpg", quality=95)
            else:
                im.save(folder / f"{split}-{i:04d}.png")
