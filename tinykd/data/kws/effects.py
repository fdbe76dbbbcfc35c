"""What turns an engine's clean word into something closer to a recording: a speaker's vocal tract
(formant shift) and pitch, a room (reverberation), a microphone (band limits and tilt) and the
background. Pure numpy on float64 16 kHz audio; random choices come from the caller's generator,
so the same generator state gives the same samples."""

from __future__ import annotations

import numpy as np

from .engines import resample
from .layout import SAMPLE_RATE


def trim(x: np.ndarray, threshold: float = 0.02) -> np.ndarray:
    """Cut leading and trailing silence (below `threshold` of the peak), keeping 10 ms margins."""
    loud = np.flatnonzero(np.abs(x) > threshold * max(float(np.max(np.abs(x))), 1e-9))
    if not len(loud):
        return x
    margin = SAMPLE_RATE // 100
    return x[max(loud[0] - margin, 0) : loud[-1] + margin]


def _frames(n: int, size: int, hop: int) -> int:
    return 1 + max(0, -(-(n - size) // hop))


def formant_shift(x: np.ndarray, factor: float, n_fft: int = 512, hop: int = 128, n_cep: int = 24) -> np.ndarray:
    """Move the spectral envelope (formants: the vocal tract) by `factor` and keep the harmonics
    (pitch) where they are: per STFT frame, the cepstrally smoothed log spectrum is read at f / factor
    instead of f. factor > 1 sounds like a shorter vocal tract (a smaller speaker).

    The envelope is taken from the power spectrum smoothed over ~280 Hz first: the valleys between
    harmonics would otherwise drag the log spectrum down where harmonics are sparse, and the shift
    would overshoot (x1.35 instead of x1.25 on a steady vowel)."""
    if abs(factor - 1.0) < 1e-6 or len(x) == 0:
        return x.copy()
    win = np.hanning(n_fft + 1)[:-1]
    n = len(x)
    count = _frames(n + n_fft, n_fft, hop)
    padded = np.concatenate([np.zeros(n_fft // 2), x, np.zeros(count * hop + n_fft)])
    idx = np.arange(n_fft)[None, :] + hop * np.arange(count)[:, None]
    spec = np.fft.rfft(padded[idx] * win, axis=1)
    kernel = np.hanning(11)[1:-1]  # 9 bins of 31.25 Hz
    kernel /= kernel.sum()
    power = np.pad(np.abs(spec) ** 2, ((0, 0), (4, 4)), mode="reflect")
    smooth = sum(w * power[:, k : k + spec.shape[1]] for k, w in enumerate(kernel))
    log_mag = 0.5 * np.log(smooth + 1e-18)
    cep = np.fft.irfft(log_mag, n_fft, axis=1)
    cep[:, n_cep : n_fft - n_cep + 1] = 0.0  # lifter: keep the slowly varying envelope
    env = np.fft.rfft(cep, axis=1).real
    bins = np.arange(env.shape[1], dtype=np.float64)
    src = np.minimum(bins / factor, bins[-1])
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, len(bins) - 1)
    frac = src - lo
    warped = env[:, lo] * (1 - frac) + env[:, hi] * frac
    gain = np.exp(np.clip(warped - env, -4.6, 4.6))  # at most +-40 dB per bin
    y_frames = np.fft.irfft(spec * gain, n_fft, axis=1) * win
    y = np.zeros(len(padded))
    norm = np.zeros(len(padded))
    for i in range(count):
        y[i * hop : i * hop + n_fft] += y_frames[i]
        norm[i * hop : i * hop + n_fft] += win * win
    y = y / np.maximum(norm, 1e-3)
    return y[n_fft // 2 : n_fft // 2 + n]


def pitch_by_resampling(x: np.ndarray, factor: float) -> np.ndarray:
    """Pitch (and formants and speed) times `factor`, as a tape played faster; a formant shift by
    1 / factor afterwards leaves the formants where they were."""
    if abs(factor - 1.0) < 1e-6:
        return x.copy()
    return resample(x, max(int(round(len(x) / factor)), 1))


def room_impulse(rng: np.random.Generator, rt60: float, drr_db: float) -> np.ndarray:
    """A synthetic room: the direct sound, a few early reflections (2-20 ms) and a diffuse tail of
    noise decaying by 60 dB in rt60 seconds, low-passed as walls absorb highs; the tail carries
    `drr_db` less energy than the direct sound."""
    n = int(rt60 * SAMPLE_RATE) + 1
    t = np.arange(n) / SAMPLE_RATE
    start = int(rng.uniform(0.002, 0.008) * SAMPLE_RATE)
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    tail[:start] = 0.0
    kernel = np.array([0.25, 0.5, 0.25])
    tail = np.convolve(tail, kernel, mode="same")
    for _ in range(int(rng.integers(2, 6))):
        k = int(rng.uniform(0.002, 0.02) * SAMPLE_RATE)
        if k < n:
            tail[k] += rng.uniform(0.2, 0.7) * rng.choice((-1.0, 1.0)) * np.sqrt(np.sum(tail * tail) / n)
    tail *= 10.0 ** (-drr_db / 20.0) / max(np.sqrt(np.sum(tail * tail)), 1e-12)
    h = tail
    h[0] = 1.0
    return h


def convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """x * h by FFT, as long as x plus the tail."""
    n = len(x) + len(h) - 1
    size = 1 << (n - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)[:n]


def microphone(x: np.ndarray, highpass_hz: float, lowpass_hz: float, tilt_db_per_octave: float) -> np.ndarray:
    """A microphone and its channel, zero phase: a 2nd-order high-pass, an optional 4th-order
    low-pass (lowpass_hz 0: none) and a spectral tilt around 1 kHz."""
    size = 1 << (len(x) + 1024 - 1).bit_length()
    spec = np.fft.rfft(x, size)
    f = np.maximum(np.fft.rfftfreq(size, 1.0 / SAMPLE_RATE), 1.0)
    r = (f / highpass_hz) ** 2
    gain = r / np.sqrt(1.0 + r * r)
    if lowpass_hz:
        gain /= np.sqrt(1.0 + (f / lowpass_hz) ** 8)
    gain *= 10.0 ** (tilt_db_per_octave * np.log2(f / 1000.0) / 20.0)
    return np.fft.irfft(spec * gain, size)[: len(x)]
