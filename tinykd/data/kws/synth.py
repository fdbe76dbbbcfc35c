"""A synthetic keyword-spotting dataset in the Google Speech Commands layout, spoken by espeak-ng.

    out_dir/
      yes/<speaker>_nohash_<n>.wav ... (one folder per word: 10 keywords + other words)
      _background_noise_/white_noise.wav pink_noise.wav brown_noise.wav mains_hum.wav
      validation_list.txt  testing_list.txt   (split by speaker hash, as the real dataset)
      .tinykd_synth.json                      (parameters; written last = complete)

Every clip is 1 s, 16 kHz, mono, int16. A "speaker" is an espeak-ng voice (an English
accent plus a voice variant) in one pitch range; each clip draws a speaker, speed, pitch,
punctuation (intonation), a speed/formant perturbation by resampling, a level, a position in
the second and a background noise at some SNR. Each clip's random numbers come from
(seed, word, clip index) alone, so the same seed gives identical WAV bytes whatever the
number of workers. One clip's drawing and rendering are in `espeak`; this module writes the
dataset: the noise files, the clips, the split lists and the marker.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import wave
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ...errors import TinykdError
from ...fileio import write_bytes, write_text
from .espeak import FORMAT_VERSION, NOISE_KINDS, ClipSpec, clip_spec, find_espeak, make_noise, speak
from .layout import CLIP_SAMPLES, KEYWORDS, NOISE_DIR, SAMPLE_RATE

__all__ = [
    "CLIP_SAMPLES",
    "FORMAT_VERSION",
    "KEYWORDS",
    "NOISE_FILES",
    "NOISE_KINDS",
    "SAMPLE_RATE",
    "UNKNOWN_WORDS",
    "ClipSpec",
    "clip_spec",
    "spec_table",
    "speak",
    "synthesize_kws",
    "wav_bytes",
    "which_set",
]

# The other words of Speech Commands v0.02: the _unknown_ class.
UNKNOWN_WORDS = (
    "backward",
    "bed",
    "bird",
    "cat",
    "dog",
    "eight",
    "five",
    "follow",
    "forward",
    "four",
    "happy",
    "house",
    "learn",
    "marvin",
    "nine",
    "one",
    "seven",
    "sheila",
    "six",
    "three",
    "tree",
    "two",
    "visual",
    "wow",
    "zero",
)
NOISE_FILES = {"white": "white_noise.wav", "pink": "pink_noise.wav", "brown": "brown_noise.wav", "hum": "mains_hum.wav"}
MARKER = ".tinykd_synth.json"
PARTIAL = ".tinykd_synth.partial"


def wav_bytes(samples: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, dtype="<i2").tobytes())
    return buf.getvalue()


# ---------------------------------------------------------------------------------- split

MAX_NUM_WAVS_PER_CLASS = 2**27 - 1


def which_set(filename: str, validation_percentage: float = 10.0, testing_percentage: float = 10.0) -> str:
    """The Speech Commands rule: a speaker's clips all go to one split, by a hash of the
    part of the name before '_nohash_'."""
    base = os.path.basename(filename)
    speaker = base.split("_nohash_")[0]
    h = int(hashlib.sha1(speaker.encode()).hexdigest(), 16)
    pct = (h % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
    if pct < validation_percentage:
        return "validation"
    if pct < validation_percentage + testing_percentage:
        return "testing"
    return "training"


# ---------------------------------------------------------------------------------- driver


def synthesize_kws(
    out_dir,
    clips_per_word: int = 200,
    seed: int = 0,
    *,
    words: tuple[str, ...] | None = None,
    unknown_clips_per_word: int | None = None,
    noise_seconds: float = 60.0,
    workers: int | None = None,
    validation_percentage: float = 10.0,
    testing_percentage: float = 10.0,
    progress: bool = True,
) -> dict:
    """Write a Speech Commands-style dataset to out_dir (see the module doc); returns its manifest.

    words: the folders to speak (default: the 10 keywords + 25 other words for _unknown_).
    unknown_clips_per_word: clips for each non-keyword. Default ceil(clips_per_word / 4): the
    loader samples _unknown_ at 10 % of the keyword count, so 25 words x 1/4 leaves a wide
    choice at a third of the synthesis time.
    A complete dataset with the same parameters is reused, not rewritten.
    """
    if clips_per_word < 1:
        raise TinykdError(f"clips_per_word must be at least 1; got {clips_per_word}.")
    words = tuple(words) if words is not None else KEYWORDS + UNKNOWN_WORDS
    bad = [w for w in words if not w or not all(c.isalpha() or c == "_" for c in w) or w.startswith("_")]
    if bad:
        raise TinykdError(f"Words must be plain lowercase words (a folder each); got {bad}.")
    n_unknown = -(-clips_per_word // 4) if unknown_clips_per_word is None else unknown_clips_per_word
    if n_unknown < 1:
        raise TinykdError(f"unknown_clips_per_word must be at least 1; got {n_unknown}.")
    params = {
        "format_version": FORMAT_VERSION,
        "seed": int(seed),
        "clips_per_word": int(clips_per_word),
        "unknown_clips_per_word": int(n_unknown),
        "words": list(words),
        "noise_seconds": float(noise_seconds),
        "sample_rate": SAMPLE_RATE,
        "validation_percentage": validation_percentage,
        "testing_percentage": testing_percentage,
    }
    out = Path(out_dir)
    marker = out / MARKER
    if marker.is_file():
        try:
            old = json.loads(marker.read_text())
        except ValueError:
            old = {}
        if old.get("params") == params:
            return old
    if out.exists() and any(out.iterdir()) and not (out / PARTIAL).exists() and not marker.exists():
        raise TinykdError(
            f"{out} already holds files that tinykd did not synthesise; refusing to write the "
            "synthetic dataset into it. Choose an empty or new folder."
        )
    exe = find_espeak()
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / PARTIAL, json.dumps(params))
    if marker.exists():
        marker.unlink()

    # Background noise files (their own seed stream, independent of the clips).
    noise_dir = out / NOISE_DIR
    n_noise = int(round(noise_seconds * SAMPLE_RATE))
    for i, kind in enumerate(NOISE_KINDS):
        rng = np.random.default_rng([seed & 0xFFFFFFFF, 0x4E015E, i, FORMAT_VERSION])
        level = 10.0 ** (rng.uniform(-22.0, -14.0) / 20.0)  # RMS, dBFS
        x = np.clip(np.round(make_noise(kind, n_noise, rng) * level * 32768.0), -32768, 32767)
        write_bytes(noise_dir / NOISE_FILES[kind], wav_bytes(x.astype(np.int16)))

    specs = [clip_spec(seed, w, i) for w in words for i in range(clips_per_word if w in KEYWORDS else n_unknown)]
    names: list[str] = []
    per_speaker: dict[tuple[str, str], int] = {}
    for s in specs:
        k = per_speaker.get((s.word, s.speaker), 0)
        per_speaker[(s.word, s.speaker)] = k + 1
        names.append(f"{s.word}/{s.speaker}_nohash_{k}.wav")

    workers = max(1, workers or min(2, os.cpu_count() or 1))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(specs), desc="espeak-ng clips", unit="clip", leave=False)

    def job(i: int) -> None:
        write_bytes(out / names[i], wav_bytes(speak(specs[i], exe)))

    try:
        with ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(job, range(len(specs))):
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()

    lists = {"validation": [], "testing": []}
    for name in names:
        split = which_set(name, validation_percentage, testing_percentage)
        if split in lists:
            lists[split].append(name)
    write_text(out / "validation_list.txt", "".join(n + "\n" for n in sorted(lists["validation"])))
    write_text(out / "testing_list.txt", "".join(n + "\n" for n in sorted(lists["testing"])))

    manifest = {
        "params": params,
        "clips": len(names),
        "validation": len(lists["validation"]),
        "testing": len(lists["testing"]),
        "speakers": len({s.speaker for s in specs}),
        "generator": "tinykd.data.kws.synth (espeak-ng)",
    }
    write_text(marker, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    (out / PARTIAL).unlink()
    return manifest


def spec_table(seed: int, words=None, clips_per_word: int = 1) -> list[dict]:
    """The parameters each clip would be rendered with (for inspection and reports)."""
    words = tuple(words) if words is not None else KEYWORDS + UNKNOWN_WORDS
    return [asdict(clip_spec(seed, w, i)) for w in words for i in range(clips_per_word)]
