"""`python benchmarks/rotated_mnist.py MNIST_DIR OUT.npz`: MNIST made harder, in another format.

Every image (train and test) rotated by an angle drawn uniformly from ±45° (bilinear, about the
centre) and given Gaussian pixel noise of sd 32 grey levels, then stored as a `.npz` with
`x_train, y_train, x_test, y_test, class_names` (uint8): the dataset `benchmarks/methods.md`
compares the distillation methods on beside MNIST itself. Fixed seed: the same bytes every run.
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from tinykd.data import idx
from tinykd.data.mnist import find_files

MAX_DEGREES = 45.0
NOISE_SD = 32.0
SEED = 2026


def harder(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    angles = rng.uniform(-MAX_DEGREES, MAX_DEGREES, len(images))
    rotated = np.stack(
        [np.asarray(Image.fromarray(im).rotate(a, resample=Image.BILINEAR)) for im, a in zip(images, angles)]
    )
    noisy = rotated.astype(np.float32) + rng.normal(0.0, NOISE_SD, rotated.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    files = find_files(Path(argv[1]))
    if files is None:
        print(f"No MNIST idx files in {argv[1]}.", file=sys.stderr)
        return 1
    rng = np.random.default_rng(SEED)
    x_train, y_train = idx.read_pair(files["train_images"], files["train_labels"], 10)
    x_test, y_test = idx.read_pair(files["test_images"], files["test_labels"], 10)
    out = Path(argv[2])
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        x_train=harder(x_train, rng),
        y_train=y_train,
        x_test=harder(x_test, rng),
        y_test=y_test,
        class_names=np.array([str(i) for i in range(10)]),
    )
    print(
        f"wrote {out}: {len(y_train)} training and {len(y_test)} test images, "
        f"rotated ±{MAX_DEGREES:g}°, noise sd {NOISE_SD:g}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
