"""MNIST loading: the real files, recompressed copies, checksums, damaged files, the download path, the errors."""

import gzip
import shutil
import subprocess

import numpy as np
import pytest

from tinykd.data import idx, mnist
from tinykd.data.cache import sha256sum
from tinykd.errors import TinykdError


def test_loads_real_mnist_with_a_seeded_validation_split(mnist_dir):
    d = mnist.load(mnist_dir, val_size=5000, seed=3)
    assert d.x_train.shape == (55000, 28, 28, 1) and d.x_test.shape == (10000, 28, 28, 1)
    assert d.x_train.dtype == np.float32 and 0.0 <= d.x_train.min() and d.x_train.max() == 1.0
    # Train + validation are exactly the 60 000 training labels (counts from SOURCE.md).
    counts = np.bincount(np.concatenate([d.y_train, d.y_val]), minlength=10)
    assert counts.tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    again = mnist.load(mnist_dir, val_size=5000, seed=3)
    other = mnist.load(mnist_dir, val_size=5000, seed=4)
    assert np.array_equal(d.y_val, again.y_val) and not np.array_equal(d.y_val, other.y_val)


def test_limits_take_a_subset(mnist_dir):
    d = mnist.load(mnist_dir, val_size=100, train_limit=300, test_limit=50)
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (300, 100, 50)


def _copy(mnist_dir, tmp_path):
    folder = tmp_path / "mnist"
    shutil.copytree(mnist_dir, folder)
    for f in folder.iterdir():
        f.chmod(0o644)
    return folder


def test_damaged_gzip_is_a_clear_error(mnist_dir, tmp_path):
    folder = _copy(mnist_dir, tmp_path)
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(labels.read_bytes())
    data[-20] ^= 0xFF  # gzip's CRC-32 no longer matches
    labels.write_bytes(bytes(data))
    with pytest.raises(TinykdError, match=r"t10k-labels-idx1-ubyte.gz cannot be decompressed.*truncated or not gzip"):
        mnist.load(folder)


def test_truncated_gzip_is_a_clear_error(mnist_dir, tmp_path):
    folder = _copy(mnist_dir, tmp_path)
    path = folder / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(TinykdError, match=r"t10k-labels-idx1-ubyte.gz cannot be decompressed.*truncated or not gzip"):
        mnist.load(folder)


def test_wrong_header_is_a_clear_error(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"\x00\x00\x07\x03" + b"\x00" * 100)
    with pytest.raises(
        TinykdError, match=r"t10k-labels-idx1-ubyte.gz is not a valid idx file: its magic number is 0x00000703"
    ):
        idx.read(path)


def test_recompressed_and_decompressed_mnist_are_accepted(mnist_dir, tmp_path):
    """The md5 sums check downloads only: the decompressed originals recompressed (`gzip -9`; other
    bytes, same images) are MNIST, and so are the decompressed files themselves."""
    original = mnist.load(mnist_dir, val_size=100, train_limit=200, test_limit=50)
    raw, recompressed = tmp_path / "raw", tmp_path / "gzip9"
    raw.mkdir()
    recompressed.mkdir()
    for spec in mnist.FILES.values():
        data = gzip.decompress((mnist_dir / spec.name).read_bytes())
        (raw / spec.raw_name).write_bytes(data)
        (recompressed / spec.raw_name).write_bytes(data)
        # gzip -9 of the 47 MB training images takes ~20 s of CPU: -1 for that one (still other bytes)
        level = "-1" if spec.name.startswith("train-images") else "-9"
        subprocess.run(["gzip", level, "-n", str(recompressed / spec.raw_name)], check=True)
        assert mnist.md5sum(recompressed / spec.name) != spec.md5
    for folder in (raw, recompressed):
        d = mnist.load(folder, val_size=100, train_limit=200, test_limit=50)
        for key in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
            assert np.array_equal(getattr(d, key), getattr(original, key)), (folder.name, key)
    # A checksum the user gives is checked: md5 or sha256, by file name in the data folder.
    name = "t10k-labels-idx1-ubyte.gz"
    good = {
        name: sha256sum(recompressed / name),
        "train-labels-idx1-ubyte.gz": mnist.md5sum(recompressed / "train-labels-idx1-ubyte.gz"),
    }
    mnist.load(recompressed, val_size=100, train_limit=10, test_limit=10, checksums=good)
    with pytest.raises(TinykdError, match=rf"gzip9/{name} is not the file \[data\] checksums describes: its md5 is"):
        mnist.load(recompressed, val_size=100, checksums={name: mnist.FILES["test_labels"].md5})


def test_labels_out_of_range_are_a_clear_error(mnist_dir, tmp_path):
    folder = _copy(mnist_dir, tmp_path)
    path = folder / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(gzip.decompress(path.read_bytes()))
    data[8 + 17] = 10  # MNIST has classes 0..9
    path.write_bytes(gzip.compress(bytes(data)))
    with pytest.raises(
        TinykdError, match=r"t10k-labels-idx1-ubyte.gz has 1 label\(s\) out of range \(e.g. 10\); labels must be 0 .. 9"
    ):
        mnist.load(folder)


def test_missing_data_dir_says_what_to_do(tmp_path):
    with pytest.raises(TinykdError, match="not found in --data-dir.*four original"):
        mnist.load(tmp_path / "nowhere")


def test_download_fills_the_cache_and_verifies(mnist_dir, tmp_path, monkeypatch):
    """The real download code, pointed at file:// mirrors: a bad mirror first, then a good one."""
    bad = tmp_path / "bad-mirror"
    bad.mkdir()
    for spec in mnist.FILES.values():
        (bad / spec.name).write_bytes(b"not mnist")
    monkeypatch.setattr(mnist, "MIRRORS", (bad.as_uri() + "/", mnist_dir.as_uri() + "/"))
    monkeypatch.setenv("TINYKD_CACHE", str(tmp_path / "cache"))
    folder = mnist.locate(None)
    assert folder == tmp_path / "cache" / "mnist"
    assert mnist.md5sum(folder / "train-labels-idx1-ubyte.gz") == mnist.FILES["train_labels"].md5
    assert not list(folder.glob(".*.tmp")), "no partial downloads are left behind"


def test_offline_and_absent_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "MIRRORS", ((tmp_path / "empty").as_uri() + "/",))
    monkeypatch.setenv("TINYKD_CACHE", str(tmp_path / "cache"))
    with pytest.raises(TinykdError, match="could not be downloaded.*--data-dir"):
        mnist.locate(None)


def test_tinykd_data_env_is_used(mnist_dir, monkeypatch):
    monkeypatch.setenv("TINYKD_DATA", str(mnist_dir.parent))  # a folder holding mnist/ works too
    assert mnist.locate(None) == mnist_dir


def test_data_seed_fixes_the_split_while_the_build_seed_varies(mnist_dir):
    """data_seed = -1 follows --seed; a fixed one keeps one validation split for every --seed
    (seed studies vary the training alone), and it is part of what the training stages hash, but
    only when set: builds made before it existed keep their fingerprints."""
    from tinykd.config import resolve
    from tinykd.data import load_dataset
    from tinykd.pipeline.stages import STAGE_SETTINGS

    def config(seed, data_seed):
        data = {"dir": str(mnist_dir), "val_size": 500, "train_limit": 2000, "test_limit": 10}
        return resolve(task="mnist", overrides={"seed": seed, "data_seed": data_seed, "data": data})

    follows = [load_dataset(config(s, -1)).y_val for s in (1, 2)]
    fixed = [load_dataset(config(s, 0)).y_val for s in (1, 2)]
    assert not np.array_equal(*follows) and np.array_equal(*fixed)
    assert np.array_equal(fixed[0], load_dataset(config(0, -1)).y_val)
    distill = STAGE_SETTINGS["distill"]
    assert distill(config(1, 0)) != distill(config(1, -1))
    assert distill(config(1, -1))[1] == 1  # unset: the seed alone, as before data_seed existed
    with pytest.raises(TinykdError, match=r"data_seed must be -1"):
        config(0, -2)
