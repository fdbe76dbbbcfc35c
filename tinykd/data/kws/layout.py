"""The Speech Commands layout on disk and its classes (the archive's, and `synth.synthesize_kws`'s):

root/<word>/<speaker>_nohash_<n>.wav     1 s or shorter, 16 kHz mono int16
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


def is_dataset_dir(path: Path) -> bool:
    return (
        (path / "validation_list.txt").is_file()
        and (path / "testing_list.txt").is_file()
        and any((path / k).is_dir() for k in KEYWORDS)
    )


def check_layout(root: Path) -> None:
    """Raise TinykdError unless root has the Speech Commands layout with all ten keywords."""
    if not root.is_dir():
        raise TinykdError(
            f"The Speech Commands folder {root} does not exist. Pass the folder that holds the "
            "word folders (yes/, no/, ...), validation_list.txt and testing_list.txt, or "
            "generate a synthetic one with tinykd.data.kws.synth.synthesize_kws."
        )
    missing = [n for n in ("validation_list.txt", "testing_list.txt") if not (root / n).is_file()]
    missing += [k + "/" for k in KEYWORDS if not (root / k).is_dir()]
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
