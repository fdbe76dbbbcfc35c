"""--task image without training: every format read to the same arrays, resizing and channels,
class names, splits, checksums, the config keys, the models sized from the input shape, and a
clear error naming the file for each kind of broken idx file."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
from _cli import run
from _image_data import IDX_NAMES, NAMES, idx_bytes, make_images, write_folder, write_idx

from tinykd.config import resolve
from tinykd.data import data_digest, images, load_dataset
from tinykd.data.cache import md5sum, sha256sum
from tinykd.errors import TinykdError

ALL_GZ = dict.fromkeys(IDX_NAMES, True)
ALL_RAW = dict.fromkeys(IDX_NAMES, False)


@pytest.fixture(scope="module")
def grey(mnist_dir):
    return make_images(mnist_dir, 60, 20, (20, 20), 1, seed=3)


@pytest.fixture(scope="module")
def rgb(mnist_dir):
    return make_images(mnist_dir, 60, 20, (14, 18), 3, seed=4)


def _load(path, **options):
    return images.load(path, val_size=10, seed=0, **options)


def _same(a, b):
    for key in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert np.array_equal(getattr(a, key), getattr(b, key)), key
    assert a.class_names == b.class_names


def test_idx_gz_raw_npz_and_png_folders_read_the_same_images(grey, rgb, tmp_path):
    expected_x = grey["x_train"].astype(np.float32) / 255.0
    gz = _load(write_idx(tmp_path / "gz", grey, ALL_GZ)["train_images"].parent)
    assert gz.input_shape == (20, 20, 1) and gz.x_train.dtype == np.float32
    assert gz.class_names == ["0", "1", "2", "3", "4"]
    # validation carved by the seed, at most a fifth of the 60 training images
    assert (len(gz.y_train), len(gz.y_val), len(gz.y_test)) == (50, 10, 20)
    order = np.random.default_rng(0).permutation(60)
    assert np.array_equal(gz.x_val, expected_x[order[:10]]) and np.array_equal(gz.y_train, grey["y_train"][order[10:]])
    _same(gz, _load(write_idx(tmp_path / "raw", grey, ALL_RAW)["train_images"].parent))
    np.savez(tmp_path / "grey.npz", **grey)
    _same(gz, _load(tmp_path / "grey.npz"))
    # npz images as N x H x W (no channel axis) and float pixels in [0, 1] read the same
    np.savez(tmp_path / "flat.npz", **{**grey, "x_train": grey["x_train"][..., 0], "x_test": grey["x_test"] / 255.0})
    flat = _load(tmp_path / "flat.npz")
    assert np.array_equal(flat.x_train, gz.x_train) and np.allclose(flat.x_test, gz.x_test, atol=1e-7)
    # a folder of class folders (names from the folders, alphabetical), PNG is lossless
    write_folder(tmp_path / "png", grey, splits=True)
    png = _load(tmp_path / "png")
    alphabetical = sorted(NAMES)
    assert png.class_names == alphabetical and png.input_shape == (20, 20, 1)
    # the same images, in the folders' order: each class's images, classes alphabetically
    relabel = np.array([alphabetical.index(n) for n in NAMES])
    test_order = np.concatenate([np.flatnonzero(grey["y_test"] == NAMES.index(n)) for n in alphabetical])
    assert np.array_equal(png.y_test, relabel[grey["y_test"][test_order]])
    assert np.array_equal(png.x_test, gz.x_test[test_order])
    # class_names picks the folders' order (Keras' rule), and names idx/npz classes
    ordered = _load(tmp_path / "png", class_names=list(NAMES))
    assert ordered.class_names == list(NAMES) and np.array_equal(np.sort(ordered.y_test), np.sort(grey["y_test"]))
    assert _load(tmp_path / "gz", class_names=list(NAMES)).class_names == list(NAMES)
    with pytest.raises(TinykdError, match=r"test_split = 0.2 splits a folder.*holds idx files"):
        _load(tmp_path / "gz", test_split=0.2)


def test_rgb_folders_jpeg_resizing_channels_and_test_split(rgb, tmp_path):
    write_folder(tmp_path / "flat", rgb, splits=False, jpeg_every=5)
    with pytest.raises(TinykdError, match=r"has no test/ folder.*\[data\] test_split"):
        _load(tmp_path / "flat")
    d = _load(tmp_path / "flat", test_split=0.25)
    assert d.input_shape == (14, 18, 3) and d.class_names == sorted(NAMES)
    n = len(d.y_train) + len(d.y_val) + len(d.y_test)
    assert n == 80 and 10 <= len(d.y_test) <= 30
    # the split is by file name: the same whatever the seed, and a file added elsewhere moves nothing
    again = images.load(tmp_path / "flat", val_size=10, seed=7, test_split=0.25)
    assert np.array_equal(again.x_test, d.x_test)
    resized = _load(tmp_path / "flat", test_split=0.25, image_size=[21, 13], channels=1)
    assert resized.input_shape == (21, 13, 1) and resized.x_train.min() >= 0.0 and resized.x_train.max() <= 1.0
    # an RGB .npz: class names stored in it, converted to grey and resized like the folders
    np.savez(tmp_path / "rgb.npz", **rgb, class_names=np.array(NAMES))
    z = _load(tmp_path / "rgb.npz")
    assert z.input_shape == (14, 18, 3) and z.class_names == list(NAMES)
    assert np.array_equal(z.x_test, rgb["x_test"] / np.float32(255.0))
    small = _load(tmp_path / "rgb.npz", image_size=[7, 9], channels=1)
    assert small.input_shape == (7, 9, 1)
    # grey -> RGB repeats the channel
    g = _load(tmp_path / "rgb.npz", channels=1)
    c = images.convert_channels(g.x_test, 3)
    assert c.shape[3] == 3 and np.array_equal(c[..., 0], c[..., 2])


def test_folder_of_mixed_sizes_needs_image_size(rgb, tmp_path):
    write_folder(tmp_path / "f", rgb, splits=True)
    odd = next((tmp_path / "f" / "test" / "two").iterdir())
    from PIL import Image

    Image.new("RGB", (30, 30)).save(odd)
    with pytest.raises(TinykdError, match=r"different sizes.*\[data\] image_size"):
        _load(tmp_path / "f")
    assert _load(tmp_path / "f", image_size=[16, 16]).input_shape == (16, 16, 3)
    (tmp_path / "f" / "test" / "cat").mkdir()
    (tmp_path / "f" / "test" / "cat" / "x.png").write_bytes(b"not a png")
    with pytest.raises(TinykdError, match=r"test has class folders that training does not: cat"):
        _load(tmp_path / "f", image_size=[16, 16])
    shutil.rmtree(tmp_path / "f" / "test" / "cat")
    (tmp_path / "f" / "train" / "one" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(TinykdError, match=r"broken.png cannot be read as an image"):
        _load(tmp_path / "f", image_size=[16, 16])


def _broken(folder, role, data: bytes, gz=True):
    """Replace one of the four files with `data` (as .gz when `gz`)."""
    path = folder / (IDX_NAMES[role] + ".gz")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path.name


@pytest.mark.parametrize(
    "role, make, message",
    [
        ("train_images", lambda d: b"\x00\x00\x0a\x03" + idx_bytes(d["x_train"][..., 0])[4:], "not a valid idx file"),
        (
            "train_images",
            lambda d: b"\x12\x34\x08\x03" + idx_bytes(d["x_train"][..., 0])[4:],
            "magic number is 0x12340803",
        ),
        ("train_images", lambda d: idx_bytes(d["x_train"][..., 0])[:-7], "holds 24,009 bytes: the file is truncated"),
        ("train_images", lambda d: idx_bytes(d["x_train"][..., 0]) + b"\0", "longer than its header says"),
        ("test_labels", lambda d: idx_bytes(d["y_test"][:-1]), "holds 19 labels but .*t10k-images.* holds 20 images"),
        ("test_labels", lambda d: idx_bytes(np.where(np.arange(20) == 3, 9, d["y_test"])), r"label\(s\) out of range"),
        ("train_labels", lambda d: idx_bytes(d["x_train"][..., 0]), "is not a labels file"),
        ("train_images", lambda d: b"\x00\x00\x08", "shorter than the 4-byte magic number"),
    ],
)
def test_broken_idx_files_are_named_with_what_is_wrong(grey, tmp_path, role, make, message):
    folder = write_idx(tmp_path / "idx", grey, ALL_GZ)["train_images"].parent
    name = _broken(folder, role, make(grey))
    with pytest.raises(TinykdError, match=rf"{name}.*{message}"):
        # 5 classes named: label 9 in the test labels is out of range
        _load(folder, class_names=list(NAMES))


def test_broken_file_through_the_cli_is_one_paragraph_without_traceback(grey, tmp_path):
    folder = write_idx(tmp_path / "idx", grey, ALL_RAW)["train_images"].parent
    path = folder / IDX_NAMES["test_images"]
    path.write_bytes(path.read_bytes()[:1000])
    code, output = run("data", "--task", "image", "--data-dir", str(folder))
    assert code != 0 and "Traceback" not in output
    assert f"{path} is not a valid idx file" in output and "truncated" in output
    code, output = run("data", "--task", "image", "--data-dir", str(tmp_path / "nothing-here"))
    assert code != 0 and "does not exist" in output and "Traceback" not in output
    write_idx(folder, grey, ALL_RAW)
    code, output = run("data", "--task", "image", "--data-dir", str(folder))
    assert code == 0 and "[20, 20, 1]" in output, output


def test_checksums_and_data_digest(grey, tmp_path):
    paths = write_idx(tmp_path / "idx", grey, ALL_GZ)
    folder = paths["train_images"].parent
    right = {
        paths["train_images"].name: sha256sum(paths["train_images"]),
        paths["test_labels"].name: md5sum(paths["test_labels"]),
    }
    _load(folder, checksums=right)
    wrong = {**right, paths["test_labels"].name: "0" * 64}
    with pytest.raises(TinykdError, match=r"t10k-labels-idx1-ubyte.gz is not the file \[data\] checksums describes"):
        _load(folder, checksums=wrong)
    with pytest.raises(TinykdError, match=r"checksums names nope.gz, but .* does not exist"):
        _load(folder, checksums={"nope.gz": "0" * 64})
    # the digest a build's fingerprint holds: another dataset in the same folder is another digest
    config = resolve(task="image", overrides={"data": {"dir": str(folder), "checksums": right}})
    before = data_digest(config)
    assert load_dataset(config).input_shape == (20, 20, 1)
    write_idx(folder, {**grey, "y_train": (grey["y_train"] + 1) % 5}, ALL_GZ)
    assert data_digest(config) != before


def test_image_config_keys_in_a_file_and_their_errors(tmp_path):
    cfg = tmp_path / "image.toml"
    cfg.write_text(
        'task = "image"\n[data]\nimage_size = [32, 32]\nchannels = 3\nclass_names = ["a", "b"]\n'
        'test_split = 0.2\n[data.checksums]\n"train/a/1.png" = "' + "ab" * 32 + '"\n'
    )
    c = resolve(config_file=cfg)
    assert (c.task, c.data.image_size, c.data.channels, c.data.test_split) == ("image", [32, 32], 3, 0.2)
    assert c.data.checksums == {"train/a/1.png": "ab" * 32} and c.teacher.arch == "cnn" and c.student.arch == "cnn-s"
    again = tmp_path / "again.toml"
    again.write_text(c.to_toml())
    assert resolve(config_file=again) == c
    for bad, message in [
        ({"image_size": [32]}, "image_size must be"),
        ({"channels": 4}, "channels must be 1"),
        ({"format": "zip"}, "format must be one of"),
        ({"checksums": {"a": "123"}}, "neither an md5"),
        ({"checksums": ["a"]}, "must be a table of file names"),
    ]:
        with pytest.raises(TinykdError, match=message):
            resolve(task="image", overrides={"data": bad})
    with pytest.raises(TinykdError, match=r"image_size does not apply to task 'mnist'"):
        resolve(task="mnist", overrides={"data": {"image_size": [20, 20]}})
    with pytest.raises(TinykdError, match=r"image task needs your data"):
        images.data_path(None)


@pytest.mark.parametrize("shape", [(20, 20, 1), (32, 32, 3), (21, 13, 3), (5, 3, 1), (96, 96, 3)])
def test_models_are_sized_from_the_input_shape(shape):
    from tinykd.models import build_model, count_params

    sizes = {}
    for arch in ("cnn", "cnn-s", "cnn-m", "mlp-64"):
        model = build_model(arch, shape, 7)
        assert model.input_shape == (None, *shape) and model.output_shape == (None, 7), arch
        sizes[arch] = count_params(model)
        if arch.startswith("cnn"):  # the dense layer sees a small map: pools/strides until <= 8 pixels a side
            assert max(model.get_layer("flatten").input_shape[1:3]) <= 8, arch
    assert sizes["cnn-s"] < 12_000 and sizes["cnn-s"] < sizes["cnn"]


def test_phone_photos_and_16_bit_scans_read_as_they_look(tmp_path):
    """A portrait photo stored sideways with an EXIF orientation is read upright (and sized upright:
    no "different sizes" error beside upright images); a 16-bit grey PNG is scaled, not clipped white."""
    from PIL import Image

    rng = np.random.default_rng(5)
    upright = rng.integers(0, 256, (16, 10, 3), dtype=np.uint8)  # height 16, width 10
    upright[:8] //= 4  # a dark top half: upside down or sideways would not match
    root = tmp_path / "photos"
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.roll(upright, i, axis=1)).save(root / name / f"{i}.png")
    exif = Image.Exif()
    exif[images.EXIF_ORIENTATION] = 6  # "rotate 90 degrees clockwise to show"
    sideways = root / "dog" / "phone.jpg"
    Image.fromarray(np.rot90(upright, 1)).save(sideways, quality=100, subsampling=0, exif=exif)
    assert Image.open(sideways).size == (16, 10)  # stored 16 wide, 10 high
    read = images._read_image(sideways, "RGB", 10, 16)
    assert read.shape == (16, 10, 3) and np.abs(read.astype(int) - upright).mean() < 3
    d = _load(root, test_split=0.3)
    assert d.input_shape == (16, 10, 3) and len(d.y_train) + len(d.y_val) + len(d.y_test) == 9

    grey = rng.integers(0, 256, (12, 20), dtype=np.uint16)
    Image.fromarray(grey * 257).save(tmp_path / "scan.png")  # 16-bit: 0..65535
    assert Image.open(tmp_path / "scan.png").mode.startswith("I")
    assert np.array_equal(images._read_image(tmp_path / "scan.png", "L", 20, 12)[..., 0], grey)
    as_float = Image.fromarray(grey.astype(np.float32) / 255.0, "F")
    assert np.array_equal(np.asarray(images._eight_bit(as_float)), grey)
