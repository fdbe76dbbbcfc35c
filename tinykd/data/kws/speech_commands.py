"""Google Speech Commands (v0.01 / v0.02 layout) for 12-class keyword spotting.

The folder layout and the classes are in `layout`, finding or downloading the data in
`archive` (both re-exported here); this module reads the splits, the audio and the features.

Classes (Hello Edge / MLPerf Tiny): the ten keywords, `_silence_` and `_unknown_`. Training
files are all the word files listed in neither list. Per split, as in TensorFlow's
speech_commands example that Hello Edge used: `_unknown_` clips are sampled from the
non-keyword words, `unknown_percentage` % of the keyword clip count, and `_silence_` clips
are 1 s cuts of the noise files at a random volume in [0, 1], `silence_percentage` % of
it. Training clips can be augmented by a random time shift and background noise mixed in.
Only the training split depends on `seed`; validation and testing are fixed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import TinykdError
from ...fileio import atomic_path
from ..cache import cache_dir
from .archive import ARCHIVES, Archive, fetch_archive, locate  # noqa: F401  (re-exported: speech_commands.locate)
from .layout import (
    CLASS_NAMES,  # noqa: F401  (re-exported)
    CLIP_SAMPLES,
    KEYWORDS,
    NOISE_DIR,
    SAMPLE_RATE,
    SILENCE,
    UNKNOWN,
    check_layout,
    class_names,
    is_dataset_dir,  # noqa: F401  (re-exported)
)
from .wav import read_wav  # noqa: F401  (re-exported: speech_commands.read_wav)

SPLITS = ("train", "validation", "test")
_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "test": "test",
    "testing": "test",
}
EVAL_SEED = 0x5EED  # validation/test sampling does not move with the training seed


# ------------------------------------------------------------------------------ audio


def fit_length(x: np.ndarray, n: int = CLIP_SAMPLES) -> np.ndarray:
    """Zero-pad at the end or keep the first n samples."""
    x = np.asarray(x, dtype=np.int16)
    if len(x) >= n:
        return x[:n].copy()
    return np.concatenate([x, np.zeros(n - len(x), dtype=np.int16)])


# ------------------------------------------------------------------------------ splits


def canonical_split(split: str) -> str:
    try:
        return _SPLIT_ALIASES[split]
    except KeyError:
        raise TinykdError(f"Unknown split '{split}'; use train, validation or test.") from None


def _read_list(path: Path) -> set[str]:
    return {line.strip().replace("\\", "/") for line in path.read_text().splitlines() if line.strip()}


def split_files(root: Path, split: str) -> list[str]:
    """Relative paths "word/file.wav" of one split (sorted), noise folder excluded."""
    split = canonical_split(split)
    val = _read_list(root / "validation_list.txt")
    test = _read_list(root / "testing_list.txt")
    if split == "validation":
        chosen = val
    elif split == "test":
        chosen = test
    else:
        chosen = None
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and p.name != NOISE_DIR and not p.name.startswith(".")):
        for f in sorted(d.glob("*.wav")):
            rel = f"{d.name}/{f.name}"
            if chosen is None:
                if rel not in val and rel not in test:
                    out.append(rel)
            elif rel in chosen:
                out.append(rel)
    if chosen is not None:
        listed_missing = sorted(r for r in chosen if not (root / r).is_file())
        if listed_missing:
            raise TinykdError(
                f"{len(listed_missing)} file(s) named in the {split} list are missing under {root} "
                f"(e.g. {listed_missing[0]}). The dataset is incomplete: unpack the archive again."
            )
    return out


def label_of(word: str, keywords=KEYWORDS) -> int:
    """The class of a word folder: its keyword's position, or _unknown_ for any other word."""
    return keywords.index(word) if word in keywords else len(keywords) + 1


@dataclass(frozen=True)
class Item:
    """One example: a word file, or a silence cut of a noise file (start, gain)."""

    label: int
    path: str = ""  # "word/file.wav" for words
    noise: str = ""  # noise file name for silence
    start: int = 0
    gain: float = 0.0


def _rng(seed: int, split: str, purpose: str) -> np.random.Generator:
    tag = int.from_bytes(hashlib.sha256(f"{split}/{purpose}".encode()).digest()[:4], "little")
    return np.random.default_rng([seed & 0xFFFFFFFF, tag])


def noise_files(root: Path) -> dict[str, np.ndarray]:
    d = root / NOISE_DIR
    out = {}
    for f in sorted(d.glob("*.wav")) if d.is_dir() else []:
        x = read_wav(f)
        if len(x) >= CLIP_SAMPLES:
            out[f.name] = x
    if not out:
        raise TinykdError(
            f"No noise recording of at least 1 s in {d}; the _silence_ class and noise "
            "augmentation are cut from them. Restore the folder from the dataset archive."
        )
    return out


def build_index(
    root: Path,
    split: str,
    seed: int = 0,
    silence_percentage: float = 10.0,
    unknown_percentage: float = 10.0,
    noise: dict[str, np.ndarray] | None = None,
    keywords=KEYWORDS,
) -> list[Item]:
    """The examples of one split: all keyword clips, sampled unknowns, silence cuts."""
    split = canonical_split(split)
    seed = seed if split == "train" else EVAL_SEED
    keywords = tuple(keywords)
    names = class_names(keywords)
    files = split_files(root, split)
    known = [Item(label_of(f.split("/")[0], keywords), path=f) for f in files if f.split("/")[0] in keywords]
    pool = [f for f in files if f.split("/")[0] not in keywords]
    n_unknown = min(len(pool), int(math.ceil(len(known) * unknown_percentage / 100.0)))
    rng = _rng(seed, split, "unknown")
    picked = sorted(rng.choice(len(pool), size=n_unknown, replace=False)) if n_unknown else []
    unknown = [Item(names.index(UNKNOWN), path=pool[i]) for i in picked]
    n_silence = int(math.ceil(len(known) * silence_percentage / 100.0))
    silence = []
    if n_silence:
        noise = noise if noise is not None else noise_files(root)
        noise_names = sorted(noise)
        rng = _rng(seed, split, "silence")
        for _ in range(n_silence):
            name = noise_names[int(rng.integers(len(noise_names)))]
            start = int(rng.integers(len(noise[name]) - CLIP_SAMPLES + 1))
            silence.append(Item(names.index(SILENCE), noise=name, start=start, gain=float(rng.uniform(0.0, 1.0))))
    return known + unknown + silence


def load_audio(
    data_dir,
    split: str,
    seed: int = 0,
    *,
    augment: int = 0,
    time_shift_ms: float = 100.0,
    background_frequency: float = 0.8,
    background_volume: float = 0.1,
    silence_percentage: float = 10.0,
    unknown_percentage: float = 10.0,
    limit: int = 0,
    progress: bool = True,
    version: str = "v0.02",
    keywords=KEYWORDS,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(audio int16 [N, 16000], labels int64 [N], class names) of one split.

    keywords: the word folders that are classes, in class order (then _silence_, _unknown_);
    every other word folder is _unknown_.

    augment (training only): the number of augmented copies appended after the clips. In a
    copy each word clip is shifted by up to +-time_shift_ms (zero fill) and, with probability
    background_frequency, gets a noise cut at volume U(0, background_volume) added; copy k is
    seeded by (`seed`, k). limit > 0 keeps a seeded random subset (before the copies).
    """
    keywords = tuple(keywords)
    root = locate(data_dir, version=version, keywords=keywords)
    check_layout(root, keywords)
    split = canonical_split(split)
    noise = noise_files(root)
    items = build_index(root, split, seed, silence_percentage, unknown_percentage, noise, keywords)
    if limit and limit < len(items):
        keep = np.sort(
            _rng(seed if split == "train" else EVAL_SEED, split, "limit").choice(len(items), limit, replace=False)
        )
        items = [items[i] for i in keep]
    audio = np.zeros((len(items), CLIP_SAMPLES), dtype=np.int16)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(items), desc=f"reading {split} audio", unit="clip", leave=False)
    for i, it in enumerate(items):
        if it.path:
            audio[i] = fit_length(read_wav(root / it.path))
        else:
            seg = noise[it.noise][it.start : it.start + CLIP_SAMPLES].astype(np.float64) * it.gain
            audio[i] = np.clip(np.round(seg), -32768, 32767).astype(np.int16)
        if bar is not None and (i % 256 == 255 or i == len(items) - 1):
            bar.update(i + 1 - bar.n)
    if bar is not None:
        bar.close()
    labels = np.array([it.label for it in items], dtype=np.int64)
    copies = int(augment) if split == "train" else 0
    if copies:
        audio = np.concatenate(
            [audio]
            + [
                augment_audio(audio, items, noise, seed, time_shift_ms, background_frequency, background_volume, copy=k)
                for k in range(1, copies + 1)
            ]
        )
        labels = np.tile(labels, copies + 1)
    return audio, labels, class_names(keywords)


def augment_audio(
    audio: np.ndarray,
    items: list[Item],
    noise: dict[str, np.ndarray],
    seed: int,
    time_shift_ms: float = 100.0,
    background_frequency: float = 0.8,
    background_volume: float = 0.1,
    copy: int = 1,
) -> np.ndarray:
    """Time shift and background noise for word clips (silence clips are left alone); each
    `copy` number draws its own shifts and noise."""
    rng = _rng(seed, "train", f"augment/{copy}")
    names = sorted(noise)
    max_shift = int(round(time_shift_ms * SAMPLE_RATE / 1000.0))
    out = audio.copy()
    for i, it in enumerate(items):
        shift = int(rng.integers(-max_shift, max_shift + 1)) if max_shift else 0
        mix = rng.uniform() < background_frequency
        name = names[int(rng.integers(len(names)))]
        start = int(rng.integers(len(noise[name]) - CLIP_SAMPLES + 1))
        vol = rng.uniform(0.0, background_volume)
        if not it.path:
            continue
        x = audio[i].astype(np.float64)
        if shift > 0:
            x = np.concatenate([np.zeros(shift), x[:-shift]])
        elif shift < 0:
            x = np.concatenate([x[-shift:], np.zeros(-shift)])
        if mix:
            x = x + noise[name][start : start + CLIP_SAMPLES].astype(np.float64) * vol
        out[i] = np.clip(np.round(x), -32768, 32767).astype(np.int16)
    return out


# ------------------------------------------------------------------------------ features


def _fingerprint(root: Path) -> str:
    """Names, sizes and modification times of every WAV and list: changes when the data does."""
    h = hashlib.sha256()
    for name in ("validation_list.txt", "testing_list.txt"):
        st = (root / name).stat()
        h.update(f"{name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        with os.scandir(d) as it:
            for e in sorted(it, key=lambda e: e.name):
                if e.name.endswith(".wav"):
                    st = e.stat()
                    h.update(f"{d.name}/{e.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def load_kws_features(
    data_dir,
    split: str,
    seed: int = 0,
    *,
    augment: int = 0,
    limit: int = 0,
    cache: bool = True,
    progress: bool = True,
    version: str = "v0.02",
    threads: int | None = None,
    keywords=KEYWORDS,
    **audio_options,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(int8 features [N, 49, 10] from the C frontend, int64 labels [N], class names).

    Features are cached as .npz under <cache>/kws_features, keyed by the data (names, sizes,
    times), the split options and the frontend's source hash.
    """
    from . import frontend

    keywords = tuple(keywords)
    root = locate(data_dir, version=version, keywords=keywords)
    check_layout(root, keywords)
    split = canonical_split(split)
    key_obj = {
        "root": str(root.resolve()),
        "data": _fingerprint(root),
        "split": split,
        "seed": seed if split == "train" else EVAL_SEED,
        "augment": int(augment) if split == "train" else 0,
        "limit": int(limit),
        "frontend": frontend.source_hash(),
        "options": sorted(audio_options.items()),
    }
    if keywords != KEYWORDS:  # the ten keywords keep their old cache entries
        key_obj["keywords"] = list(keywords)
    key = hashlib.sha256(json.dumps(key_obj, sort_keys=True, default=str).encode()).hexdigest()[:24]
    path = cache_dir() / "kws_features" / f"{split}-{key}.npz"
    if cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                return z["features"], z["labels"], [str(c) for c in z["class_names"]]
        except (OSError, ValueError, KeyError):
            pass  # unreadable cache: recompute
    audio, labels, names = load_audio(
        root,
        split,
        seed,
        augment=augment,
        limit=limit,
        progress=progress,
        version=version,
        keywords=keywords,
        **audio_options,
    )
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(audio), desc=f"{split} features", unit="clip", leave=False)
    try:
        feats = frontend.features(audio, threads=threads, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    if cache:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, features=feats, labels=labels, class_names=np.array(names))
    return feats, labels, names


def load(
    data_dir=None,
    val_size: int = 0,
    seed: int = 0,
    train_limit: int = 0,
    test_limit: int = 0,
    augment: int = 0,
    keywords=KEYWORDS,
):
    """The task interface: a Dataset of dequantised MFCC [N, 49, 10, 1] float32 (quantising
    with the frontend's scale/zero point gives back the exact int8 bytes) and class ids.
    val_size is ignored: Speech Commands has its own validation list. `augment` appends that
    many time-shifted, noise-mixed copies of the training clips (train_limit counts clips
    before the copies). keywords: the classes besides _silence_ and _unknown_."""
    from ..base import Dataset
    from . import frontend

    out = {}
    for split, limit in (("train", train_limit), ("validation", 0), ("test", test_limit)):
        x, y, names = load_kws_features(data_dir, split, seed, augment=augment, limit=limit, keywords=keywords)
        out[split] = (frontend.dequantize(x)[..., None], y)
    return Dataset(
        x_train=out["train"][0],
        y_train=out["train"][1],
        x_val=out["validation"][0],
        y_val=out["validation"][1],
        x_test=out["test"][0],
        y_test=out["test"][1],
        class_names=class_names(keywords),
    )
