"""The "mixed" synthesis recipe: several engines, speakers with their own vocal tract, pitch and
pace, rooms, microphones and backgrounds, so that a model trained on it meets real voices less
surprised than one trained on a single engine (benchmarks/kws.md measures by how much).

A speaker is an engine voice with a formant factor, a pitch factor and a speaking rate of its own
(drawn from the speaker's name, not the dataset's seed: the same speakers in every set). Each clip
draws a speaker, jitters the speaker's three factors a little, and draws a room (or none), a
microphone, a level, a position in the second, a background and an SNR, all from (seed, word,
clip index) alone. `Recipe.key()` covers every number here and the render version: change the
recipe and the synthetic set's cache folder changes with it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import numpy as np

from . import effects
from .engines import ENGINES, get_engine
from .espeak import NOISE_KINDS, make_noise
from .layout import CLIP_SAMPLES

RENDER_VERSION = 2  # bump when render() or an engine's use changes the audio for the same plan (2: formant envelope)


@dataclass(frozen=True)
class Recipe:
    engines: dict[str, float] = field(default_factory=lambda: {"espeak": 0.4, "flite": 0.3, "festival": 0.3})
    speakers_per_voice: int = 8
    formant: tuple[float, float] = (0.88, 1.18)  # speaker's formant factor, log-uniform
    pitch: tuple[float, float] = (0.75, 1.5)  # speaker's F0 factor, log-uniform
    rate: tuple[float, float] = (0.8, 1.25)  # speaker's pace, log-uniform
    jitter: tuple[float, float, float] = (0.03, 0.08, 0.12)  # per clip: formant, pitch, rate (+- fraction)
    reverb: float = 0.5  # share of clips in a room
    rt60: tuple[float, float] = (0.15, 0.8)  # seconds
    drr_db: tuple[float, float] = (0.0, 12.0)  # direct-to-reverberant ratio
    highpass_hz: tuple[float, float] = (40.0, 300.0)
    lowpass: float = 0.4  # share of clips through a band-limited channel
    lowpass_hz: tuple[float, float] = (3400.0, 7500.0)
    tilt_db: tuple[float, float] = (-3.0, 3.0)  # per octave around 1 kHz
    peak_db: tuple[float, float] = (-28.0, -2.0)
    snr_db: tuple[float, float] = (5.0, 40.0)
    quiet: float = 0.25  # share of clips with a quiet background instead: snr in quiet_snr_db
    quiet_snr_db: tuple[float, float] = (40.0, 60.0)

    def key(self) -> str:
        """A digest of everything that shapes the audio: the numbers, the voices, the render version."""
        what = {
            "recipe": asdict(self),
            "voices": {name: list(ENGINES[name].voices()) for name in sorted(self.engines)},
            "render": RENDER_VERSION,
            "noise": list(NOISE_KINDS),
        }
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()


MIXED = Recipe()


@dataclass(frozen=True)
class Speaker:
    id: str  # 8 hex digits: the file name prefix, and what the split hashes
    engine: str
    voice: str
    formant: float
    pitch: float
    rate: float


@dataclass(frozen=True)
class ClipPlan:
    word: str
    index: int
    speaker: str
    engine: str
    voice: str
    text: str
    formant: float
    pitch: float
    rate: float
    rt60: float  # 0: no room
    drr_db: float
    highpass_hz: float
    lowpass_hz: float  # 0: full band
    tilt_db: float
    peak_db: float
    offset: float  # where in the free time the word starts, 0..1
    noise: str  # a NOISE_KINDS name, or a background file's name
    snr_db: float
    seed: int


def _log_uniform(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(np.log(lo_hi[0]), np.log(lo_hi[1]))))


def speakers(recipe: Recipe = MIXED) -> dict[str, list[Speaker]]:
    """Every engine's speakers: each voice `speakers_per_voice` times, with its own factors."""
    out: dict[str, list[Speaker]] = {}
    for name in recipe.engines:
        engine = get_engine(name)
        out[name] = []
        for voice in engine.voices():
            for k in range(recipe.speakers_per_voice):
                tag = f"{name}/{voice}/{k}"
                digest = hashlib.sha1(tag.encode()).digest()
                rng = np.random.default_rng(list(digest[:8]))
                out[name].append(
                    Speaker(
                        id=digest.hex()[:8],
                        engine=name,
                        voice=voice,
                        formant=_log_uniform(rng, recipe.formant),
                        pitch=_log_uniform(rng, recipe.pitch),
                        rate=_log_uniform(rng, recipe.rate),
                    )
                )
    return out


def clip_plan(
    seed: int, word: str, index: int, recipe: Recipe = MIXED, noises: tuple[str, ...] = NOISE_KINDS, _speakers=None
) -> ClipPlan:
    """Everything one clip is rendered with, from (seed, word, index) alone."""
    word_key = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little")
    rng = np.random.default_rng([seed & 0xFFFFFFFF, word_key, index, 0x3AED, RENDER_VERSION])
    spk = _speakers or speakers(recipe)
    names = sorted(recipe.engines)
    weights = np.array([recipe.engines[n] for n in names], dtype=np.float64)
    engine = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    s = spk[engine][int(rng.integers(len(spk[engine])))]
    jf, jp, jr = recipe.jitter
    room = rng.uniform() < recipe.reverb
    rt60, drr = float(rng.uniform(*recipe.rt60)), float(rng.uniform(*recipe.drr_db))
    band = rng.uniform() < recipe.lowpass
    lowpass = float(rng.uniform(*recipe.lowpass_hz))
    quiet = rng.uniform() < recipe.quiet
    snr = float(rng.uniform(*recipe.quiet_snr_db) if quiet else rng.uniform(*recipe.snr_db))
    return ClipPlan(
        word=word,
        index=index,
        speaker=s.id,
        engine=engine,
        voice=s.voice,
        text=word + ("", ".", "!", "?")[int(rng.integers(4))],
        formant=s.formant * float(rng.uniform(1 - jf, 1 + jf)),
        pitch=s.pitch * float(rng.uniform(1 - jp, 1 + jp)),
        rate=s.rate * float(rng.uniform(1 - jr, 1 + jr)),
        rt60=rt60 if room else 0.0,
        drr_db=drr if room else 0.0,
        highpass_hz=float(np.exp(rng.uniform(*np.log(recipe.highpass_hz)))),
        lowpass_hz=lowpass if band else 0.0,
        tilt_db=float(rng.uniform(*recipe.tilt_db)),
        peak_db=float(rng.uniform(*recipe.peak_db)),
        offset=float(rng.uniform(0.0, 1.0)),
        noise=noises[int(rng.integers(len(noises)))],
        snr_db=snr,
        seed=int(rng.integers(1 << 62)),
    )


def request(plan: ClipPlan) -> tuple[str, str, float, float]:
    """What the engine is asked for; a voice without its own pitch control is asked at pitch 1."""
    pitch = plan.pitch if get_engine(plan.engine).pitch_control(plan.voice) else 1.0
    return (plan.text, plan.voice, plan.rate, pitch)


def render(plan: ClipPlan, spoken: np.ndarray, backgrounds: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """One clip, int16 [16000], from the engine's 16 kHz audio for request(plan).

    backgrounds: float noise recordings by name (a Speech Commands _background_noise_ folder),
    for plans whose noise names one of them."""
    rng = np.random.default_rng(plan.seed)
    x = effects.trim(np.asarray(spoken, dtype=np.float64))
    formant = plan.formant
    if not get_engine(plan.engine).pitch_control(plan.voice):
        x = effects.pitch_by_resampling(x, plan.pitch)
        formant /= plan.pitch  # the resampling moved the formants too
    x = effects.formant_shift(x, formant)
    word_len = min(len(x), CLIP_SAMPLES)
    if len(x) > CLIP_SAMPLES:  # a slow long word: keep the middle second
        cut = (len(x) - CLIP_SAMPLES) // 2
        x = x[cut : cut + CLIP_SAMPLES]
    if plan.rt60:
        x = effects.convolve(x, effects.room_impulse(rng, plan.rt60, plan.drr_db))
    x = effects.microphone(x, plan.highpass_hz, plan.lowpass_hz, plan.tilt_db)
    speech = x[:word_len]
    x *= 10.0 ** (plan.peak_db / 20.0) / max(float(np.max(np.abs(speech))), 1e-9)
    speech_rms = float(np.sqrt(np.mean(x[:word_len] ** 2)))
    start = int(plan.offset * (CLIP_SAMPLES - word_len))
    clip = np.zeros(CLIP_SAMPLES)
    n = min(len(x), CLIP_SAMPLES - start)
    clip[start : start + n] = x[:n]  # the room's tail may run past the second
    if backgrounds and plan.noise in backgrounds:
        bg = backgrounds[plan.noise]
        at = int(rng.integers(len(bg) - CLIP_SAMPLES + 1))
        noise = bg[at : at + CLIP_SAMPLES]
        noise = noise / max(float(np.sqrt(np.mean(noise * noise))), 1e-9)
    else:
        noise = make_noise(plan.noise, CLIP_SAMPLES, rng)
    clip += noise * speech_rms * 10.0 ** (-plan.snr_db / 20.0)
    return np.clip(np.round(clip * 32768.0), -32768, 32767).astype(np.int16)
