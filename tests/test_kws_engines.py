"""The speech engines and what the mixed recipe does to their words: every engine .ci/setup
installs speaks, the speaker, room and noise variations change the audio the way they say, the
same seed gives the same bytes, and the synthetic set's cache key follows the recipe."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest

from tinykd.data.kws import effects, engines, recipe, synth, task
from tinykd.errors import TinykdError

RATE = 16000


@pytest.mark.parametrize("name", ["espeak", "flite", "festival"])
def test_each_engine_speaks_in_distinct_voices(name):
    engine = engines.get_engine(name)
    engine.check()  # fails loudly, naming the apt packages, when .ci/setup did not install it
    voices = engine.voices()
    requests = [("seven", voices[0], 1.0, 1.0), ("seven", voices[-1], 1.0, 1.0), ("seven", voices[0], 0.7, 1.0)]
    first, last, slow = engine.speak_many(requests)  # festival: one process for the three
    for x in (first, last):
        assert x.dtype == np.float64 and 0.25 * RATE < len(x) < 2.0 * RATE, len(x)
        assert np.abs(x).max() > 0.05  # a word, not silence
    assert len(first) != len(last) or not np.allclose(first, last)  # two voices, two sounds
    # The engine's own speed control: slower is longer.
    assert len(effects.trim(slow)) > 1.15 * len(effects.trim(first))
    assert np.array_equal(first, engine.speak("seven", voices[0]))


def test_festival_batches_are_the_single_requests_in_any_order():
    fest = engines.get_engine("festival")
    reqs = [
        ("yes", "kal_diphone", 1.2, 1.3),
        ("no?", "cmu_us_slt_arctic_hts", 1.0, 1.0),
        ("go", "ked_diphone", 0.9, 0.8),
        ("yes", "kal_diphone", 1.2, 1.0),
    ]
    forward = fest.speak_many(reqs)
    backward = fest.speak_many(reqs[::-1])[::-1]
    for a, b in zip(forward, backward, strict=True):
        assert np.array_equal(a, b)
    # The diphone voices take a pitch: a higher F0 target gives another sound.
    assert not np.array_equal(forward[3], forward[0])
    with pytest.raises(TinykdError, match="no voice"):
        fest.speak("yes", "nobody")


def _harmonic_vowel(f0: float = 150.0, formant: float = 1000.0, seconds: float = 0.5) -> np.ndarray:
    """A steady vowel: harmonics of f0 weighted by one resonance at `formant` Hz."""
    t = np.arange(int(seconds * RATE)) / RATE
    x = np.zeros_like(t)
    for k in range(1, int(7000 // f0)):
        f = k * f0
        x += np.sin(2 * np.pi * f * t) / (1.0 + ((f - formant) / 150.0) ** 2)
    return x / np.abs(x).max() * 0.5


def _spectrum(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mid = x[len(x) // 4 : 3 * len(x) // 4]
    return np.fft.rfftfreq(len(mid), 1 / RATE), np.abs(np.fft.rfft(mid * np.hanning(len(mid))))


def test_formant_shift_moves_the_envelope_not_the_harmonics():
    x = _harmonic_vowel()
    y = effects.formant_shift(x, 1.25)
    assert len(y) == len(x) and np.array_equal(y, effects.formant_shift(x, 1.25))
    f, sx = _spectrum(x)
    _, sy = _spectrum(y)
    assert abs(f[np.argmax(sx)] - 1050) < 60  # the harmonic nearest the formant
    assert 1200 <= f[np.argmax(sy)] <= 1400  # the envelope peak moved up by about a quarter
    centroid = [(f * s**2)[f < 4000].sum() / (s**2)[f < 4000].sum() for s in (sx, sy)]
    assert 1.2 < centroid[1] / centroid[0] < 1.32
    # The harmonics stay on multiples of 150 Hz: the strongest bins are still there.
    top = f[np.argsort(sy)[-5:]]
    assert np.all(np.abs(top / 150.0 - np.round(top / 150.0)) * 150.0 < 8.0), top
    # pitch_by_resampling moves everything: harmonics now on multiples of 180 Hz.
    z = effects.pitch_by_resampling(x, 1.2)
    assert abs(len(z) - len(x) / 1.2) <= 1
    fz, sz = _spectrum(z)
    top = fz[np.argsort(sz)[-3:]]
    assert np.all(np.abs(top / 180.0 - np.round(top / 180.0)) * 180.0 < 10.0), top


def test_room_reverberates_for_rt60_and_the_microphone_filters():
    rng = np.random.default_rng(0)
    h = effects.room_impulse(rng, rt60=0.5, drr_db=6.0)
    assert len(h) == RATE // 2 + 1 and h[0] == 1.0
    tail = np.sum(h[1:] ** 2)
    assert abs(10 * np.log10(1.0 / tail) - 6.0) < 1.0  # direct-to-reverberant ratio
    e = np.array([np.sum(h[i : i + 800] ** 2) for i in (800, 4800)])  # 50 ms and 300 ms in
    assert 10 * np.log10(e[0] / e[1]) > 20  # ~60 dB per 0.5 s: ~30 dB in 0.25 s
    burst = np.zeros(RATE // 2)
    burst[:800] = np.random.default_rng(1).standard_normal(800)
    wet = effects.convolve(burst, h)
    assert np.sum(wet[2000:8000] ** 2) > 100 * np.sum(burst[2000:8000] ** 2) + 1e-3  # the room rings on
    noise = np.random.default_rng(2).standard_normal(RATE)
    phone = effects.microphone(noise, highpass_hz=300.0, lowpass_hz=3400.0, tilt_db_per_octave=0.0)
    f, s = np.fft.rfftfreq(RATE, 1 / RATE), np.abs(np.fft.rfft(phone)) ** 2
    band = s[(f > 500) & (f < 3000)].mean()
    assert s[(f > 6000)].mean() < band / 100 and s[(f > 20) & (f < 100)].mean() < band / 10


def _plan(**changes) -> recipe.ClipPlan:
    base = recipe.clip_plan(4, "left", 0)
    base = dataclasses.replace(base, engine="espeak", voice="en-us", rt60=0.0, drr_db=0.0, snr_db=60.0)
    return dataclasses.replace(base, **changes)


def test_each_variation_changes_the_clip_deterministically():
    spoken = engines.get_engine("espeak").speak("left", "en-us")
    plain = _plan(formant=1.0, lowpass_hz=0.0, tilt_db=0.0, highpass_hz=40.0, offset=0.5, peak_db=-6.0)
    clip = recipe.render(plain, spoken)
    assert clip.dtype == np.int16 and clip.shape == (RATE,)
    assert np.array_equal(clip, recipe.render(plain, spoken))
    assert abs(20 * np.log10(np.abs(clip).max() / 32768) + 6.0) < 0.5  # the planned peak level
    variants = {
        "formant": dataclasses.replace(plain, formant=1.15),
        "room": dataclasses.replace(plain, rt60=0.6, drr_db=3.0),
        "microphone": dataclasses.replace(plain, lowpass_hz=3400.0),
        "noise": dataclasses.replace(plain, snr_db=10.0),
        "position": dataclasses.replace(plain, offset=0.0),
    }
    for what, plan in variants.items():
        other = recipe.render(plan, spoken)
        assert np.array_equal(other, recipe.render(plan, spoken)), what
        assert not np.array_equal(other, clip), what
    # 10 dB SNR: the quiet start of the clip (before the word) is noise about 10 dB under the word.
    noisy = recipe.render(variants["noise"], spoken).astype(np.float64)
    word = np.sqrt(np.mean(clip.astype(np.float64) ** 2))
    lead = np.sqrt(np.mean((noisy - clip)[:2000] ** 2))
    word_rms = word * np.sqrt(RATE / len(effects.trim(spoken)))
    assert 6.0 < 20 * np.log10(word_rms / lead) < 14.0
    # A pitch the voice cannot make itself is made by resampling: flite's rms voice.
    rms = engines.get_engine("flite").speak("left", "rms")
    high = recipe.render(_plan(engine="flite", voice="rms", pitch=1.3, formant=1.0), rms)
    low = recipe.render(_plan(engine="flite", voice="rms", pitch=1.0, formant=1.0), rms)
    assert not np.array_equal(high, low)


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_sha256_and_every_engine_in_the_set(tmp_path):
    """(Another seed, other audio: tests/test_kws_synth.py.)"""
    words = ("yes", "no", "sheila")
    kw = {"words": words, "noise_seconds": 1.0, "progress": False}
    a = synth.synthesize_kws(tmp_path / "a", 6, seed=7, workers=2, **kw)
    b = synth.synthesize_kws(tmp_path / "b", 6, seed=7, workers=1, **kw)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") and a == b
    assert set(a["engines"]) == {"espeak", "flite", "festival"}, a["engines"]
    assert a["clips"] == 6 + 6 + 2 and a["params"]["recipe"]["key"] == recipe.MIXED.key()


def test_cache_key_follows_the_recipe(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYKD_CACHE", str(tmp_path))
    folder, params = task.synth_folder(0, 200, synth.KEYWORDS)
    assert folder.name == f"kws-synth-0-200-{synth.cache_key(params)}"
    digest = task.data_digest(None)
    espeak_only = synth.synth_params(200, 0, recipe="espeak")
    assert synth.cache_key(espeak_only) != synth.cache_key(params)
    assert task.synth_folder(0, 200, ("marvin", "sheila"))[0] != folder  # other keywords, other set
    assert task.synth_folder(1, 200, synth.KEYWORDS)[0] != folder
    for change in ({"reverb": 0.4}, {"formant": (0.9, 1.2)}, {"engines": {"espeak": 1.0, "flite": 1.0}}):
        monkeypatch.setattr(recipe, "MIXED", dataclasses.replace(recipe.MIXED, **change))
        assert task.synth_folder(0, 200, synth.KEYWORDS)[0] != folder, change
        assert task.data_digest(None) != digest, change
    monkeypatch.setattr(recipe, "MIXED", recipe.Recipe())
    assert task.synth_folder(0, 200, synth.KEYWORDS)[0] == folder
    monkeypatch.setattr(recipe, "RENDER_VERSION", recipe.RENDER_VERSION + 1)
    assert task.synth_folder(0, 200, synth.KEYWORDS)[0] != folder


def test_a_missing_engine_fails_loudly(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    for name, package in (("flite", "flite"), ("festival", "festvox-kallpc16k")):
        with pytest.raises(TinykdError, match=f"apt-get install .*{package}"):
            engines.get_engine(name).check()
    with pytest.raises(TinykdError, match="not found on PATH"):
        synth.synthesize_kws(tmp_path / "out", 1, words=("go",), progress=False)
