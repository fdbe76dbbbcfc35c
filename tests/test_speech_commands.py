"""The Speech Commands loader on a tiny tree in the real layout (numpy audio, no espeak)."""

from __future__ import annotations

import hashlib
import io
import math
import tarfile
import wave
from pathlib import Path

import numpy as np
import pytest

from tinykd.data.kws import frontend as fe
from tinykd.data.kws import speech_commands as sc
from tinykd.errors import TinykdError

UNKNOWN_WORDS = ("bed", "cat", "happy")


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000, channels: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, dtype="<i2").tobytes())


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """10 keywords x 6 files + 3 other words x 6 files, 3 speakers per split role."""
    root = tmp_path_factory.mktemp("speech_commands")
    rng = np.random.default_rng(0)
    val, test = [], []
    t = np.arange(20000) / 16000
    for wi, word in enumerate(sc.KEYWORDS + UNKNOWN_WORDS):
        for j in range(6):
            speaker = f"{wi:02x}{j:02x}abcd"
            n = (8000, 16000, 12000, 16000, 20000, 16000)[j]  # short, exact, long
            x = 3000 * np.sin(2 * np.pi * (200 + 150 * wi) * t[:n] * (1 + 0.1 * j)) + rng.normal(0, 100, n)
            x[-1] = 1234  # a marker at the end, to see padding/trimming
            rel = f"{word}/{speaker}_nohash_0.wav"
            write_wav(root / rel, np.round(x).astype(np.int16))
            if j == 0:
                val.append(rel)
            elif j == 1:
                test.append(rel)
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    noise = root / "_background_noise_"
    write_wav(noise / "white_noise.wav", rng.normal(0, 2000, 40000).astype(np.int16))
    write_wav(noise / "hum.wav", (1000 * np.sin(2 * np.pi * 50 * np.arange(48000) / 16000)).astype(np.int16))
    (noise / "README.md").write_text("noise\n")
    return root


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYKD_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TINYKD_DATA", raising=False)


def test_splits_follow_the_lists(tree):
    train = sc.split_files(tree, "train")
    val = sc.split_files(tree, "validation")
    test = sc.split_files(tree, "test")
    assert len(val) == len(test) == 13 and len(train) == 13 * 4
    assert not (set(train) & set(val)) and not (set(train) & set(test)) and not (set(val) & set(test))
    assert all("_background_noise_" not in f for f in train)
    assert set(val) == set((tree / "validation_list.txt").read_text().split())


def test_label_mapping_unknown_sampling_and_silence(tree):
    audio, labels, names = sc.load_audio(tree, "train", seed=1, progress=False)
    assert names == ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "_silence_", "_unknown_"]
    assert audio.shape == (len(labels), 16000) and audio.dtype == np.int16 and labels.dtype == np.int64
    counts = np.bincount(labels, minlength=12)
    assert (counts[:10] == 4).all()  # every keyword clip of the split
    assert counts[10] == counts[11] == math.ceil(40 * 0.10)  # 10 % silence, 10 % unknown
    items = sc.build_index(tree, "train", seed=1)
    assert [it.label for it in items] == labels.tolist()
    unknown_words = {it.path.split("/")[0] for it in items if it.label == 11}
    assert unknown_words <= set(UNKNOWN_WORDS)
    for it in items:
        if it.path:
            assert it.label == sc.label_of(it.path.split("/")[0])
    # Silence is a cut of a noise file at a volume in [0, 1].
    noise = sc.noise_files(tree)
    assert set(noise) == {"white_noise.wav", "hum.wav"}
    for it, clip in zip(items, audio):
        if it.label == 10:
            seg = noise[it.noise][it.start : it.start + 16000].astype(np.float64)
            assert 0.0 <= it.gain <= 1.0
            assert np.abs(clip - np.round(seg * it.gain)).max() <= 1
    # Sampling is seeded: same seed same picks, training picks move with the seed, test does not.
    assert sc.build_index(tree, "train", seed=1) == items
    assert any(sc.build_index(tree, "train", seed=s) != items for s in (2, 3, 4))
    assert sc.build_index(tree, "test", seed=1) == sc.build_index(tree, "test", seed=2)


def test_more_unknowns_with_a_larger_share(tree):
    _, labels, _ = sc.load_audio(tree, "train", seed=0, unknown_percentage=25.0, silence_percentage=0.0, progress=False)
    counts = np.bincount(labels, minlength=12)
    assert counts[11] == 10 and counts[10] == 0


def test_pad_and_trim_to_one_second(tree):
    x = sc.read_wav(tree / "yes/0000abcd_nohash_0.wav")  # 8000 samples
    assert len(x) == 8000
    y = sc.fit_length(x)
    assert len(y) == 16000 and y[7999] == 1234 and not y[8000:].any()
    long = sc.read_wav(tree / "yes/0004abcd_nohash_0.wav")  # 20000 samples
    assert np.array_equal(sc.fit_length(long), long[:16000])


def test_augmentation_appends_seeded_copies_to_training_only(tree):
    plain, labels, _ = sc.load_audio(tree, "train", seed=3, progress=False)
    aug1, labels1, _ = sc.load_audio(tree, "train", seed=3, augment=2, progress=False)
    aug2, _, _ = sc.load_audio(tree, "train", seed=3, augment=2, progress=False)
    other, _, _ = sc.load_audio(tree, "train", seed=4, augment=2, progress=False)
    n = len(plain)
    assert len(aug1) == 3 * n and np.array_equal(labels1, np.tile(labels, 3)) and np.array_equal(aug1, aug2)
    assert np.array_equal(aug1[:n], plain)  # the clips themselves come first, untouched
    first, second = aug1[n : 2 * n], aug1[2 * n :]
    words = labels != 10
    assert not np.array_equal(first[words], plain[words])
    assert not np.array_equal(first[words], second[words])  # each copy draws its own shifts/noise
    assert np.array_equal(first[~words], plain[~words])  # silence clips untouched
    assert not np.array_equal(aug1, other)
    val, _, _ = sc.load_audio(tree, "validation", seed=3, progress=False)
    val_aug, _, _ = sc.load_audio(tree, "validation", seed=3, augment=2, progress=False)
    assert np.array_equal(val, val_aug)


def test_features_are_the_c_frontend_and_cached(tree, tmp_path):
    x, y, names = sc.load_kws_features(tree, "validation", seed=0, progress=False)
    audio, y2, _ = sc.load_audio(tree, "validation", seed=0, progress=False)
    assert x.shape == (len(y), 49, 10) and x.dtype == np.int8 and np.array_equal(y, y2)
    assert np.array_equal(x, fe.features(audio))
    cached = list((tmp_path / "cache" / "kws_features").glob("validation-*.npz"))
    assert len(cached) == 1
    with np.load(cached[0]) as z:  # the second call reads this file
        z_features = z["features"]
    assert np.array_equal(z_features, x)
    x_again, _, _ = sc.load_kws_features(tree, "validation", seed=0, progress=False)
    assert np.array_equal(x_again, x)
    # Different options, different cache entry.
    sc.load_kws_features(tree, "validation", seed=0, limit=5, progress=False)
    assert len(list((tmp_path / "cache" / "kws_features").glob("validation-*.npz"))) == 2


def test_task_interface_dequantises_exactly(tree):
    ds = sc.load(tree, seed=0, train_limit=20)
    assert ds.x_train.shape == (20, 49, 10, 1) and ds.x_train.dtype == np.float32
    assert ds.class_names == sc.CLASS_NAMES and ds.num_classes == 12
    q, _, _ = sc.load_kws_features(tree, "test", seed=0, progress=False)
    back = np.round(ds.x_test[..., 0] / fe.SCALE + fe.ZERO_POINT).astype(np.int8)
    assert np.array_equal(back, q)


def test_missing_or_broken_dataset_raises(tree, tmp_path):
    with pytest.raises(TinykdError, match="does not exist"):
        sc.load_audio(tmp_path / "nowhere", "train", progress=False)
    broken = tmp_path / "broken"
    (broken / "yes").mkdir(parents=True)
    (broken / "validation_list.txt").write_text("")
    with pytest.raises(TinykdError, match="testing_list.txt"):
        sc.load_audio(broken, "train", progress=False)
    with pytest.raises(TinykdError, match="split"):
        sc.split_files(tree, "dev")
    low = tmp_path / "telephone.wav"  # another rate is converted, not refused (tests/test_wav_formats.py)
    write_wav(low, np.zeros(200, np.int16), rate=8000)
    assert sc.read_wav(low).shape == (400,)
    (tmp_path / "junk.wav").write_bytes(b"not a wav")
    with pytest.raises(TinykdError, match="not a readable"):
        sc.read_wav(tmp_path / "junk.wav")


def test_absent_offline_says_where_to_put_the_files(tmp_path, monkeypatch):
    with pytest.raises(TinykdError) as e:
        sc.locate(None, download=False)
    msg = str(e.value)
    assert "speech_commands_v0.02.tar.gz" in msg and str(tmp_path / "cache") in msg and "--data-dir" in msg
    # A download that cannot connect becomes the same advice, not a traceback.
    arch = sc.ARCHIVES["v0.02"]
    urls = ((tmp_path / "no" / "such.tar.gz").as_uri(), (tmp_path / "nor" / "this.tar.gz").as_uri())
    monkeypatch.setitem(sc.ARCHIVES, "v0.02", sc.Archive(urls, arch.sha256, 0, arch.folder))
    with pytest.raises(TinykdError, match="download failed") as e:
        sc.locate(None)
    assert "such.tar.gz" in str(e.value) and "this.tar.gz" in str(e.value)  # every mirror tried


def _archive(tmp_path: Path, tree: Path) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(tree, arcname="speech_commands_test")
    path = tmp_path / "served" / "speech_commands_v9.tar.gz"
    path.parent.mkdir()
    path.write_bytes(buf.getvalue())
    return path


def test_download_verifies_checksum(tree, tmp_path):
    archive = _archive(tmp_path, tree)
    target = tmp_path / "cache" / "sc"
    with pytest.raises(TinykdError, match="corrupt"):
        sc.fetch_archive(archive.as_uri(), "0" * 64, target, progress=False)
    assert not target.exists() and not (target.parent / archive.name).exists()
    with pytest.raises(TinykdError, match="corrupt"):
        sc.fetch_archive(archive.as_uri(), None, target, md5="0" * 32, progress=False)
    good = hashlib.sha256(archive.read_bytes()).hexdigest()
    got = sc.fetch_archive(archive.as_uri(), good, target, progress=False)
    assert got == target and sc.is_dataset_dir(target)
    assert sorted(sc.split_files(target, "test")) == sorted(sc.split_files(tree, "test"))
    # Found by locate through $TINYKD_DATA too.
    assert sc.locate(tmp_path / "cache" / "sc") == target


def test_archive_brought_by_hand_is_verified_and_unpacked(tree, tmp_path, monkeypatch):
    archive = _archive(tmp_path, tree)
    good = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(
        sc.ARCHIVES, "v0.02", sc.Archive(("https://example.invalid/" + archive.name,), good, 0, "speech_commands_v0.02")
    )
    cache = tmp_path / "cache"
    cache.mkdir(exist_ok=True)
    (cache / archive.name).write_bytes(archive.read_bytes()[:-10])  # truncated copy
    with pytest.raises(TinykdError, match="does not match its checksum"):
        sc.locate(None, download=False)
    (cache / archive.name).write_bytes(archive.read_bytes())
    root = sc.locate(None, download=False)
    assert root == cache / "speech_commands_v0.02" and sc.is_dataset_dir(root)
    assert not (cache / archive.name).exists()  # unpacked, archive removed
    assert sc.locate(None, download=False) == root
