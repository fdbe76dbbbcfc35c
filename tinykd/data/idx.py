"""idx files (LeCun's MNIST format), gzip-compressed or raw, checked by their structure.

An idx file is a big-endian header — two zero bytes, a type code, the number of dimensions,
then each dimension as a uint32 — followed by the product of the dimensions in that type.
A file is accepted when its header is well formed and its length is exactly the header plus
the data; which dataset it holds is not checked here (checksums do that, tinykd.data.checksums).
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import TinykdError

# type code -> big-endian dtype
DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
TYPE_NAMES = {
    0x08: "unsigned byte",
    0x09: "signed byte",
    0x0B: "int16",
    0x0C: "int32",
    0x0D: "float32",
    0x0E: "float64",
}
GZIP_MAGIC = b"\x1f\x8b"

_FIX = "Replace it with a correct copy, or write it again (tinykd reads idx files as MNIST defines them)."


def _bad(path: Path, what: str) -> TinykdError:
    return TinykdError(f"{path} is not a valid idx file: {what}. {_FIX}")


def read_bytes(path: str | os.PathLike) -> bytes:
    """The file's idx bytes: decompressed when it is gzip (by its content, whatever its name)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TinykdError(
            f"{path} cannot be read ({exc.strerror or exc}). Check the path and its permissions."
        ) from None
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise TinykdError(
            f"{path} cannot be decompressed ({exc}); the file is truncated or not gzip. "
            "Delete it and copy (or download) the original file again."
        ) from None


def parse(data: bytes, path: str | os.PathLike) -> np.ndarray:
    """Decode idx bytes into an array in native byte order; a TinykdError says what is wrong."""
    path = Path(path)
    if len(data) < 4:
        raise _bad(path, f"it is {len(data)} bytes long, shorter than the 4-byte magic number")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    magic = int.from_bytes(data[:4], "big")
    if zero != 0 or code not in DTYPES:
        raise _bad(
            path,
            f"its magic number is 0x{magic:08x}; an idx file starts with two zero bytes, a type code "
            f"({', '.join(f'0x{c:02x}' for c in DTYPES)}) and the number of dimensions (e.g. 0x00000803 "
            "for images, 0x00000801 for labels)",
        )
    if ndim == 0:
        raise _bad(path, "its header gives 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise _bad(path, f"it is {len(data)} bytes long, too short for the header of {ndim} dimensions")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = DTYPES[code]
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        shape = " x ".join(map(str, dims))
        how = "truncated" if len(data) < expected else "longer than its header says"
        raise _bad(
            path,
            f"its header says {shape} values of {TYPE_NAMES[code]} ({expected:,} bytes with the header), "
            f"but it holds {len(data):,} bytes: the file is {how}",
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def read(path: str | os.PathLike) -> np.ndarray:
    """One idx file, `.gz` or raw."""
    return parse(read_bytes(path), path)


def read_pair(images_path: Path, labels_path: Path, num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """An images file and its labels file, checked against each other.

    Images: unsigned bytes, N x H x W (grey) or N x H x W x C (C = 1 or 3). Labels: integers,
    N of them, each in 0 .. num_classes - 1 (when given; never negative)."""
    images, labels = read(images_path), read(labels_path)
    if images.dtype != np.uint8:
        raise TinykdError(
            f"{images_path} holds {images.dtype} values; tinykd reads idx images as unsigned bytes "
            "(type code 0x08, pixels 0-255). Write the images as uint8, or use a .npz file for float images."
        )
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (1, 3)):
        raise TinykdError(
            f"{images_path} has {images.ndim} dimensions ({' x '.join(map(str, images.shape))}); images "
            "must be N x height x width (grey) or N x height x width x channels with 1 or 3 channels."
        )
    if min(images.shape) == 0:
        raise TinykdError(f"{images_path} holds no images (shape {' x '.join(map(str, images.shape))}).")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise TinykdError(
            f"{labels_path} is not a labels file: it holds {labels.dtype} values of shape "
            f"{' x '.join(map(str, labels.shape))}, where one integer per image (1 dimension, e.g. type "
            "0x08) is needed. Check that the images and labels files are not swapped."
        )
    if len(labels) != len(images):
        raise TinykdError(
            f"{labels_path} holds {len(labels):,} labels but {images_path} holds {len(images):,} images; "
            "the counts must agree. The two files belong to different datasets or splits, or one is cut short."
        )
    check_labels(labels.astype(np.int64), labels_path, num_classes)
    return images, labels.astype(np.int64)


def check_labels(labels: np.ndarray, where: str | os.PathLike, num_classes: int | None) -> None:
    """Every label in 0 .. num_classes - 1 (only >= 0 when num_classes is None)."""
    low = int(labels.min()) if len(labels) else 0
    high = int(labels.max()) if len(labels) else 0
    if low < 0 or (num_classes is not None and high >= num_classes):
        bad = low if low < 0 else high
        count = int(np.sum((labels < 0) | (labels >= (num_classes or np.iinfo(np.int64).max))))
        allowed = f"0 .. {num_classes - 1}" if num_classes is not None else "0 or more"
        raise TinykdError(
            f"{where} has {count} label(s) out of range (e.g. {bad}); labels must be {allowed}"
            f"{f' for {num_classes} classes' if num_classes is not None else ''}. Fix the labels, or give "
            "the classes' names ([data] class_names) so that every label has one."
        )


def write(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write `array` as an idx file (gzip when `compress`, or when the name ends in .gz)."""
    path = Path(path)
    array = np.asarray(array)
    codes = {v.newbyteorder("="): k for k, v in DTYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise TinykdError(f"idx files cannot hold {array.dtype} values (only {', '.join(TYPE_NAMES.values())}).")
    header = struct.pack(f">HBB{array.ndim}I", 0, code, array.ndim, *array.shape)
    data = header + array.astype(DTYPES[code]).tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path
