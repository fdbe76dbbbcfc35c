"""One synthetic keyword clip, spoken by espeak-ng: the synthetic speakers, each clip's
parameters drawn from (seed, word, clip index) alone, the rendering to 1 s of 16 kHz int16
with its background noise. `synth.synthesize_kws` writes a whole dataset of them."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np

from ...errors import TinykdError
from .layout import CLIP_SAMPLES, SAMPLE_RATE
from .wav import parse_wav

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


def find_espeak() -> str:
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
    exe = espeak or find_espeak()
    cmd = [exe, "-v", spec.voice, "-s", str(spec.speed), "-p", str(spec.pitch), "--stdout", spec.text]
    r = subprocess.run(cmd, capture_output=True, timeout=60)
    if r.returncode != 0 or not r.stdout:
        raise TinykdError(
            f"espeak-ng failed for voice '{spec.voice}' ({' '.join(cmd)}): "
            f"{r.stderr.decode(errors='replace').strip() or 'no audio'}. Check that espeak-ng "
            "and its English voices (espeak-ng-data) are installed."
        )
    x, rate = parse_wav(r.stdout, "espeak-ng")
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
