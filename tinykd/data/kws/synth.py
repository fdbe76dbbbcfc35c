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
number of workers.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import wave
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ...errors import TinykdError
from ...fileio import write_bytes, write_text

SAMPLE_RATE = 16000
CLIP_SAMPLES = 16000
KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
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
# espeak-ng English voices (no MBROLA) and variants (voices/!v).
LANGUAGES = ("en", "en-us", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029")
VARIANTS = (
    "",
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "klatt",
    "klatt2",
    "klatt3",
    "klatt4",
    "croak",
    "whisper",
)
PITCH_RANGES = ((15, 35), (35, 50), (50, 65), (65, 85))  # espeak -p, one per "speaker"
NOISE_KINDS = ("white", "pink", "brown", "hum")
NOISE_FILES = {"white": "white_noise.wav", "pink": "pink_noise.wav", "brown": "brown_noise.wav", "hum": "mains_hum.wav"}
MARKER = ".tinykd_synth.json"
PARTIAL = ".tinykd_synth.partial"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ClipSpec:
    word: str
    index: int
    speaker: str  # 8 hex digits, the file name prefix
    voice: str  # espeak-ng -v
    speed: int  # -s, words per minute
    pitch: int  # -p
    text: str
    stretch: float  # resampling factor (>1: shorter and higher)
    peak_db: float  # peak level, dBFS
    offset: float  # where in the free time the word starts, 0..1
    noise: str
    snr_db: float
    seed: int


def _espeak() -> str:
    exe = shutil.which("espeak-ng")
    if not exe:
        raise TinykdError(
            "espeak-ng was not found on PATH; tinykd speaks its synthetic keyword dataset with "
            "it. Install it (Debian/Ubuntu: apt-get install espeak-ng; macOS: brew install "
            "espeak-ng) or use the real Speech Commands data with --data-dir."
        )
    return exe


def _clip_rng(seed: int, word: str, index: int) -> np.random.Generator:
    word_key = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little")
    return np.random.default_rng([seed & 0xFFFFFFFF, word_key, index, FORMAT_VERSION])


def speakers() -> list[tuple[str, str, tuple[int, int]]]:
    """(speaker id, espeak voice, pitch range) for every synthetic speaker."""
    out = []
    for lang in LANGUAGES:
        for var in VARIANTS:
            voice = lang + ("+" + var if var else "")
            for p in PITCH_RANGES:
                sid = hashlib.sha1(f"{voice}/{p[0]}-{p[1]}".encode()).hexdigest()[:8]
                out.append((sid, voice, p))
    return out


def clip_spec(seed: int, word: str, index: int) -> ClipSpec:
    rng = _clip_rng(seed, word, index)
    spk = speakers()
    sid, voice, (plo, phi) = spk[int(rng.integers(len(spk)))]
    return ClipSpec(
        word=word,
        index=index,
        speaker=sid,
        voice=voice,
        speed=int(rng.integers(110, 231)),
        pitch=int(rng.integers(plo, phi + 1)),
        text=word + ("", ".", "!", "?")[int(rng.integers(4))],
        stretch=float(rng.uniform(0.9, 1.1)),
        peak_db=float(rng.uniform(-28.0, -2.0)),
        offset=float(rng.uniform(0.0, 1.0)),
        noise=NOISE_KINDS[int(rng.integers(len(NOISE_KINDS)))],
        snr_db=float(rng.uniform(5.0, 40.0) if rng.uniform() < 0.85 else rng.uniform(40.0, 60.0)),
        seed=int(rng.integers(1 << 62)),
    )


# ---------------------------------------------------------------------------------- audio


def make_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS float64 noise of n samples at 16 kHz: white, pink (1/f power), brown
    (1/f^2 power, above 20 Hz) or mains hum (50/60 Hz and harmonics, with a little hiss)."""
    if kind == "white":
        x = rng.standard_normal(n)
    elif kind in ("pink", "brown"):
        spec = np.fft.rfft(rng.standard_normal(n))
        f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
        f = np.maximum(f, 20.0)
        spec *= f ** (-0.5 if kind == "pink" else -1.0)
        spec[0] = 0.0
        x = np.fft.irfft(spec, n)
    elif kind == "hum":
        t = np.arange(n) / SAMPLE_RATE
        base = (50.0, 60.0)[int(rng.integers(2))] * rng.uniform(0.995, 1.005)
        x = np.zeros(n)
        for h in range(1, 9):
            x += rng.uniform(0.2, 1.0) / h * np.sin(2 * np.pi * base * h * t + rng.uniform(0, 2 * np.pi))
        x /= np.sqrt(np.mean(x * x))
        x += 0.05 * rng.standard_normal(n)
    else:
        raise TinykdError(f"Unknown noise kind '{kind}'; use one of {', '.join(NOISE_KINDS)}.")
    return x / max(np.sqrt(np.mean(x * x)), 1e-12)


def _parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    """espeak-ng --stdout writes a RIFF header with placeholder sizes: walk the chunks."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise TinykdError("espeak-ng did not produce WAV audio; check `espeak-ng --stdout test | file -`.")
    pos, rate = 12, 0
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        if cid == b"fmt ":
            channels, rate = struct.unpack("<HI", data[pos + 10 : pos + 16])
            bits = struct.unpack("<H", data[pos + 22 : pos + 24])[0]
            if channels != 1 or bits != 16:
                raise TinykdError(f"espeak-ng produced {channels} channels of {bits} bits; expected mono 16-bit.")
        elif cid == b"data":
            body = data[pos + 8 :]
            body = body[: len(body) // 2 * 2]
            return np.frombuffer(body, dtype="<i2").astype(np.float64) / 32768.0, rate
        pos += 8 + size
    raise TinykdError("espeak-ng's WAV output has no data chunk; is the espeak-ng install broken?")


def resample(x: np.ndarray, n_out: int) -> np.ndarray:
    """Band-limited resampling to n_out samples by truncating/padding the spectrum."""
    n = len(x)
    spec = np.fft.rfft(x)
    keep = min(len(spec), n_out // 2 + 1)
    out = np.zeros(n_out // 2 + 1, dtype=complex)
    out[:keep] = spec[:keep]
    return np.fft.irfft(out, n_out) * (n_out / n)


def speak(spec: ClipSpec, espeak: str | None = None) -> np.ndarray:
    """Render one clip: int16 [16000]."""
    exe = espeak or _espeak()
    cmd = [exe, "-v", spec.voice, "-s", str(spec.speed), "-p", str(spec.pitch), "--stdout", spec.text]
    r = subprocess.run(cmd, capture_output=True, timeout=60)
    if r.returncode != 0 or not r.stdout:
        raise TinykdError(
            f"espeak-ng failed for voice '{spec.voice}' ({' '.join(cmd)}): "
            f"{r.stderr.decode(errors='replace').strip() or 'no audio'}. Check that espeak-ng "
            "and its English voices (espeak-ng-data) are installed."
        )
    x, rate = _parse_wav(r.stdout)
    rng = np.random.default_rng(spec.seed)
    # Trim leading/trailing silence.
    loud = np.flatnonzero(np.abs(x) > 0.02 * max(np.max(np.abs(x)), 1e-9))
    if len(loud) == 0:
        raise TinykdError(f"espeak-ng produced silence for '{spec.text}' with voice '{spec.voice}'.")
    margin = rate // 100
    x = x[max(loud[0] - margin, 0) : loud[-1] + margin]
    # To 16 kHz, with a speed/formant perturbation; guard samples keep the FFT's wrap quiet.
    guard = 256
    x = np.concatenate([np.zeros(guard), x, np.zeros(guard)])
    n_out = int(round(len(x) * SAMPLE_RATE / rate / spec.stretch))
    y = resample(x, n_out)
    g_out = int(round(guard * SAMPLE_RATE / rate / spec.stretch))
    y = y[g_out : len(y) - g_out]
    if len(y) > CLIP_SAMPLES:  # a slow long word: keep the middle second
        cut = (len(y) - CLIP_SAMPLES) // 2
        y = y[cut : cut + CLIP_SAMPLES]
    y *= 10.0 ** (spec.peak_db / 20.0) / max(np.max(np.abs(y)), 1e-9)
    speech_rms = np.sqrt(np.mean(y * y))
    start = int(spec.offset * (CLIP_SAMPLES - len(y)))
    clip = np.zeros(CLIP_SAMPLES)
    clip[start : start + len(y)] = y
    clip += make_noise(spec.noise, CLIP_SAMPLES, rng) * speech_rms * 10.0 ** (-spec.snr_db / 20.0)
    return np.clip(np.round(clip * 32768.0), -32768, 32767).astype(np.int16)


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
    exe = _espeak()
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / PARTIAL, json.dumps(params))
    if marker.exists():
        marker.unlink()

    # Background noise files (their own seed stream, independent of the clips).
    noise_dir = out / "_background_noise_"
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
