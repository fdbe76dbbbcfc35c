"""The Speech Commands layout on disk and its classes (the archive's, and `synth.synthesize_kws`'s):

root/<word>/<speaker>_nohash_<n>.wav     1 s or shorter (the archive's: 16 kHz mono int16; any WAV
                                          is read, see wav.read_wav)
root/validation_list.txt  root/testing_list.txt   "word/file.wav" per line
root/_background_noise_/*.wav             long noise recordings
"""

from __future__ import annotations

from pathlib import Path

from ...errors import TinykdError

SAMPLE_RATE = 16000
CLIP_SAMPLES = 16000
KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE = "_silence_"
UNKNOWN = "_unknown_"
CLASS_NAMES = list(KEYWORDS) + [SILENCE, UNKNOWN]
NOISE_DIR = "_background_noise_"


def class_names(keywords=KEYWORDS) -> list[str]:
    """The classes of a keyword spotter: its keywords, then _silence_ and _unknown_."""
    return list(keywords) + [SILENCE, UNKNOWN]


def word_folders(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.is_dir() and p.name != NOISE_DIR and not p.name.startswith("."))


def is_dataset_dir(path: Path) -> bool:
    return (
        (path / "validation_list.txt").is_file() and (path / "testing_list.txt").is_file() and bool(word_folders(path))
    )


def check_layout(root: Path, keywords=KEYWORDS) -> None:
    """Raise TinykdError unless root has the Speech Commands layout with a folder per keyword."""
    if not root.is_dir():
        raise TinykdError(
            f"The Speech Commands folder {root} does not exist. Pass the folder that holds the "
            "word folders (yes/, no/, ...), validation_list.txt and testing_list.txt, or "
            "generate a synthetic one with tinykd.data.kws.synth.synthesize_kws."
        )
    missing = [n for n in ("validation_list.txt", "testing_list.txt") if not (root / n).is_file()]
    absent = [k for k in keywords if not (root / k).is_dir()]
    if not missing and absent and tuple(keywords) != KEYWORDS:
        raise TinykdError(
            f"{root} has no recordings of the keyword{'s' if len(absent) > 1 else ''} {', '.join(absent)}: "
            f"no folder {', '.join(k + '/' for k in absent)}. Its word folders are "
            f"{', '.join(word_folders(root)) or 'none'}. Record each keyword into <word>/<speaker>_nohash_<n>.wav, "
            "choose keywords it has (--keywords), or leave out --data-dir to synthesise them."
        )
    missing += [k + "/" for k in absent]
    if missing:
        raise TinykdError(
            f"{root} is not in the Speech Commands layout: missing {', '.join(missing)}. Expected "
            "<word>/<speaker>_nohash_<n>.wav for the ten keywords (yes, no, up, down, left, right, "
            "on, off, stop, go) and other words, validation_list.txt, testing_list.txt and "
            f"{NOISE_DIR}/ with long noise recordings. Unpack the official archive there (all of it)."
        )
    noise_dir = root / NOISE_DIR
    if not noise_dir.is_dir() or not any(noise_dir.glob("*.wav")):
        raise TinykdError(
            f"{root / NOISE_DIR} has no .wav files; tinykd cuts the _silence_ class and the "
            "background-noise augmentation from them. Restore that folder from the archive."
        )
