"""A synthetic keyword-spotting dataset in the Google Speech Commands layout.

    out_dir/
      yes/<speaker>_nohash_<n>.wav ... (one folder per word: the keywords + other words)
      _background_noise_/white_noise.wav pink_noise.wav brown_noise.wav mains_hum.wav
      validation_list.txt  testing_list.txt   (split by speaker hash, as the real dataset)
      .tinykd_synth.json                      (parameters; written last = complete)

Every clip is 1 s, 16 kHz, mono, int16. Two recipes:

- "mixed" (the default, `recipe`): espeak-ng, flite and festival voices (`engines`), each voice
  as several speakers with their own formant shift, pitch and pace, rooms, microphones and
  coloured noise or the given background recordings (`effects`).
- "espeak": the first recipe, espeak-ng alone (`espeak`): its voices, speeds, pitches, a
  speed/formant resampling and coloured noise. Kept byte for byte, to compare against.

Each clip's random numbers come from (seed, word, clip index) alone, so the same seed gives
identical WAV bytes whatever the number of workers. `cache_key` digests every parameter and
the recipe's own numbers: a changed recipe is a new cache folder.
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
    "RECIPES",
    "SAMPLE_RATE",
    "UNKNOWN_WORDS",
    "cache_key",
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

RECIPES = ("mixed", "espeak")


def other_words(keywords: tuple[str, ...]) -> tuple[str, ...]:
    """The words spoken for _unknown_: Speech Commands' other words and its keywords that are not
    keywords here."""
    return tuple(w for w in KEYWORDS + UNKNOWN_WORDS if w not in keywords)


def check_words(words, what: str = "Words") -> tuple[str, ...]:
    """Words as a tuple, each plain lowercase a-z and listed once (a TinykdError naming `what` if not)."""
    words = tuple(words.split(",") if isinstance(words, str) else words)
    if not words:
        raise TinykdError(f"{what}: the list is empty; name at least one word.")
    bad = [w for w in words if not w or not w.isascii() or not w.isalpha() or not w.islower()]
    if bad:
        raise TinykdError(
            f"{what} must be plain lowercase words of letters a-z (a folder each); got {bad}. "
            "Spell a keyword the way it is said, e.g. marvin,sheila."
        )
    if len(set(words)) != len(words):
        raise TinykdError(f"{what} are listed twice: {sorted(w for w in set(words) if words.count(w) > 1)}.")
    return words


def load_backgrounds(folder) -> dict[str, np.ndarray]:
    """float noise recordings (>= 1 s; any WAV, read as 16 kHz mono) of a _background_noise_ folder, by name."""
    from .speech_commands import read_wav

    out = {}
    for f in sorted(Path(folder).glob("*.wav")):
        x = read_wav(f)
        if len(x) >= CLIP_SAMPLES:
            out[f.name] = x.astype(np.float64) / 32768.0
    if not out:
        raise TinykdError(
            f"{folder} holds no 16 kHz WAV recording of at least 1 s; pass a Speech Commands "
            "_background_noise_ folder (or none: coloured noise is generated)."
        )
    return out


def cache_key(params: dict) -> str:
    """12 hex digits that change with any parameter of the set, the recipe's own numbers included."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


def synth_params(
    clips_per_word: int = 200,
    seed: int = 0,
    *,
    words=None,
    keywords=None,
    recipe: str = "mixed",
    backgrounds: dict[str, np.ndarray] | None = None,
    unknown_clips_per_word: int | None = None,
    noise_seconds: float = 60.0,
    validation_percentage: float = 10.0,
    testing_percentage: float = 10.0,
) -> dict:
    """The parameters that define a synthetic set (what its marker and cache key hold), checked."""
    from .recipe import MIXED

    if clips_per_word < 1:
        raise TinykdError(f"clips_per_word must be at least 1; got {clips_per_word}.")
    if recipe not in RECIPES:
        raise TinykdError(f"Unknown synthesis recipe '{recipe}'; use one of {', '.join(RECIPES)}.")
    keywords = check_words(keywords if keywords is not None else KEYWORDS, "Keywords")
    words = check_words(words if words is not None else keywords + other_words(keywords))
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
    if keywords != KEYWORDS:
        params["keywords"] = list(keywords)
    if recipe != "espeak":  # the espeak recipe keeps its first parameters (and so its folders)
        params["recipe"] = {"name": recipe, "key": MIXED.key()}
    if backgrounds:
        h = hashlib.sha256()
        for name in sorted(backgrounds):
            h.update(name.encode() + b"\0" + np.ascontiguousarray(backgrounds[name]).tobytes())
        params["backgrounds"] = {"files": sorted(backgrounds), "sha256": h.hexdigest()}
    return params


def synthesize_kws(
    out_dir,
    clips_per_word: int = 200,
    seed: int = 0,
    *,
    words: tuple[str, ...] | None = None,
    keywords: tuple[str, ...] | None = None,
    recipe: str = "mixed",
    backgrounds_dir=None,
    unknown_clips_per_word: int | None = None,
    noise_seconds: float = 60.0,
    workers: int | None = None,
    validation_percentage: float = 10.0,
    testing_percentage: float = 10.0,
    progress: bool = True,
) -> dict:
    """Write a Speech Commands-style dataset to out_dir (see the module doc); returns its manifest.

    keywords: the words that are classes (default the ten Speech Commands keywords); they get
    clips_per_word clips each. words: the folders to speak (default: the keywords + the other
    Speech Commands words, for _unknown_). unknown_clips_per_word: clips for each non-keyword.
    Default ceil(clips_per_word / 4): the loader samples _unknown_ at 10 % of the keyword count,
    so 25 words x 1/4 leaves a wide choice at a third of the synthesis time.
    recipe: "mixed" (several engines, speakers, rooms) or "espeak" (the espeak-ng-only set).
    backgrounds_dir: a folder of long noise recordings (Speech Commands' _background_noise_)
    mixed in besides the coloured noises (mixed recipe).
    A complete dataset with the same parameters is reused, not rewritten.
    """
    backgrounds = load_backgrounds(backgrounds_dir) if backgrounds_dir and recipe == "mixed" else None
    params = synth_params(
        clips_per_word,
        seed,
        words=words,
        keywords=keywords,
        recipe=recipe,
        backgrounds=backgrounds,
        unknown_clips_per_word=unknown_clips_per_word,
        noise_seconds=noise_seconds,
        validation_percentage=validation_percentage,
        testing_percentage=testing_percentage,
    )
    words, keywords = tuple(params["words"]), tuple(params.get("keywords", KEYWORDS))
    n_unknown = params["unknown_clips_per_word"]
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
    if recipe == "espeak":
        exe = find_espeak()
    else:
        from .engines import get_engine
        from .recipe import MIXED

        for name in MIXED.engines:
            get_engine(name).check()
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

    counts = [(w, clips_per_word if w in keywords else n_unknown) for w in words]
    if recipe == "espeak":
        specs = [clip_spec(seed, w, i) for w, n in counts for i in range(n)]
        jobs = [[i] for i in range(len(specs))]
    else:
        from .recipe import MIXED, clip_plan, speakers

        spk = speakers(MIXED)
        noises = NOISE_KINDS + tuple(sorted(backgrounds or ()))
        specs = [clip_plan(seed, w, i, MIXED, noises, _speakers=spk) for w, n in counts for i in range(n)]
        # Batches of one engine: festival speaks a batch in one process (its start-up is slow).
        jobs = []
        for name in sorted(MIXED.engines):
            idx = [i for i, s in enumerate(specs) if s.engine == name]
            size = 24 if name == "festival" else 8
            jobs += [idx[k : k + size] for k in range(0, len(idx), size)]
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

        bar = tqdm(total=len(specs), desc="synthetic clips", unit="clip", leave=False)

    def job(batch: list[int]) -> int:
        if recipe == "espeak":
            for i in batch:
                write_bytes(out / names[i], wav_bytes(speak(specs[i], exe)))
            return len(batch)
        from .engines import get_engine
        from .recipe import render, request

        spoken = get_engine(specs[batch[0]].engine).speak_many([request(specs[i]) for i in batch])
        for i, audio in zip(batch, spoken, strict=True):
            write_bytes(out / names[i], wav_bytes(render(specs[i], audio, backgrounds)))
        return len(batch)

    try:
        with ThreadPoolExecutor(workers) as pool:
            for done in pool.map(job, jobs):
                if bar is not None:
                    bar.update(done)
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

    engines_used = sorted({getattr(s, "engine", "espeak") for s in specs})
    manifest = {
        "params": params,
        "clips": len(names),
        "validation": len(lists["validation"]),
        "testing": len(lists["testing"]),
        "speakers": len({s.speaker for s in specs}),
        "engines": {e: sum(getattr(s, "engine", "espeak") == e for s in specs) for e in engines_used},
        "generator": f"tinykd.data.kws.synth ({recipe} recipe)",
    }
    write_text(marker, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    (out / PARTIAL).unlink()
    return manifest


def spec_table(seed: int, words=None, clips_per_word: int = 1) -> list[dict]:
    """The parameters each clip would be rendered with (for inspection and reports)."""
    words = tuple(words) if words is not None else KEYWORDS + UNKNOWN_WORDS
    return [asdict(clip_spec(seed, w, i)) for w in words for i in range(clips_per_word)]
