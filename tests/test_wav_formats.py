"""Recordings as users bring them: 44.1/48/22.05/8 kHz, stereo, 8/16/24/32-bit integer and 32-bit
float WAV, WAVE_FORMAT_EXTENSIBLE headers and recorders' extra chunks are all read as 16 kHz mono
int16, close to the same sound recorded at 16 kHz; real Speech Commands clips converted to such files
give the KWS frontend (nearly) the features of the originals, in training data and in the transfer
measurement alike."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from tinykd.data.kws import frontend, transfer
from tinykd.data.kws import speech_commands as sc
from tinykd.data.kws.wav import read_wav
from tinykd.errors import TinykdError

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech-commands-sample"
EXTENSIBLE_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"  # KSDATAFORMAT_SUBTYPE_* after the tag


def wav_bytes(samples: np.ndarray, rate: int, kind: str, extensible: bool = False, extra_chunk: bool = False) -> bytes:
    """A WAV file of `samples` (float in [-1, 1], [n] or [n, channels]) as `kind`: u8, i16, i24, i32 or f32."""
    x = samples if samples.ndim == 2 else samples[:, None]
    channels = x.shape[1]
    if kind == "f32":
        body, bits, tag = x.astype("<f4").tobytes(), 32, 3
    elif kind == "u8":
        body, bits, tag = np.round(x * 127 + 128).astype(np.uint8).tobytes(), 8, 1
    else:
        bits = {"i16": 16, "i24": 24, "i32": 32}[kind]
        ints = np.round(x * (2 ** (bits - 1) - 1)).astype("<i4")
        raw = ints.reshape(-1).view(np.uint8).reshape(-1, 4)
        body, tag = raw[:, : bits // 8].tobytes(), 1
    align = channels * bits // 8
    if extensible:
        fmt = struct.pack("<HHIIHH", 0xFFFE, channels, rate, rate * align, align, bits)
        fmt += struct.pack("<HHI", 22, bits, (1 << channels) - 1) + struct.pack("<H", tag) + EXTENSIBLE_TAIL
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if extra_chunk:  # what a field recorder or a DAW adds before the audio
        info = b"INFOISFT\x0c\x00\x00\x00my recorder\x00"
        chunks += b"LIST" + struct.pack("<I", len(info)) + info
    chunks += b"data" + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) % 2 else b"")
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def tones(rate: int, seconds: float = 1.0, high: bool = True) -> np.ndarray:
    """440 Hz and 2.5 kHz (the latter only where the rate can hold it, i.e. not at 8 kHz)."""
    t = np.arange(int(rate * seconds)) / rate
    high = 0.2 * np.sin(2 * np.pi * 2500 * t) if high and rate > 8000 else 0.0
    return 0.3 * np.sin(2 * np.pi * 440 * t) + high


CASES = [
    (44100, 2, "i24", True, True),  # a phone or a field recorder
    (48000, 2, "f32", True, False),  # a DAW export
    (48000, 1, "i32", False, False),
    (22050, 1, "i16", False, True),
    (8000, 1, "i16", False, False),  # a telephone-band recording
    (16000, 2, "i16", False, False),
    (16000, 1, "u8", False, False),
]


@pytest.mark.parametrize("rate,channels,kind,extensible,extra_chunk", CASES)
def test_any_wav_reads_as_16k_mono(tmp_path, rate, channels, kind, extensible, extra_chunk):
    sound = tones(rate)
    if channels == 2:  # the same sound on both sides, the right one a little quieter
        sound = np.stack([sound, 0.8 * sound], axis=1)
    path = tmp_path / "clip.wav"
    path.write_bytes(wav_bytes(sound, rate, kind, extensible, extra_chunk))
    x = read_wav(path)
    assert x.dtype == np.int16 and x.ndim == 1 and len(x) == 16000
    expected = tones(16000, high=rate > 8000) * (0.9 if channels == 2 else 1.0) * 32768
    inner = slice(100, -100)  # the resampler's filter settles within a few ms at the ends
    tolerance = 300 if kind == "u8" else 60  # 8-bit quantisation; the resampler's ripple
    assert np.max(np.abs(x[inner] - expected[inner])) < tolerance


def test_16k_mono_16_bit_is_read_bit_for_bit(tmp_path):
    samples = np.random.default_rng(0).integers(-32768, 32768, 16000).astype(np.int16)
    path = tmp_path / "clip.wav"
    path.write_bytes(wav_bytes(samples / 32767.0, 16000, "i16"))
    expected = np.round(samples / 32767.0 * 32767).astype(np.int16)
    assert read_wav(path).tobytes() == expected.tobytes()


def test_a_file_that_is_not_a_wav_is_named(tmp_path):
    (tmp_path / "junk.wav").write_bytes(b"not a wav at all")
    with pytest.raises(TinykdError, match="junk.wav is not a readable WAV file"):
        read_wav(tmp_path / "junk.wav")
    good = wav_bytes(tones(16000), 16000, "i16")
    (tmp_path / "cut.wav").write_bytes(good[:30])  # the header stops inside the fmt chunk
    with pytest.raises(TinykdError, match="cut.wav is not a readable WAV file"):
        read_wav(tmp_path / "cut.wav")


def _as_phone_recordings(src: Path, dst: Path, words: list[str], per_word: int) -> list[str]:
    """The first clips of each word, resampled to 44.1 kHz stereo 24-bit (extensible header) for
    even clips and 48 kHz float for odd ones, with the originals' relative paths."""
    from scipy.signal import resample_poly

    names = []
    for word in words:
        for i, f in enumerate(sorted((src / word).glob("*.wav"))[:per_word]):
            x = read_wav(f) / 32768.0
            rate, kind = (44100, "i24") if i % 2 == 0 else (48000, "f32")
            up = resample_poly(x, 441, 160) if rate == 44100 else resample_poly(x, 3, 1)
            stereo = np.stack([up, up], axis=1)
            (dst / word).mkdir(parents=True, exist_ok=True)
            (dst / word / f.name).write_bytes(wav_bytes(np.clip(stereo, -1, 1), rate, kind, extensible=(i % 2 == 0)))
            names.append(f"{word}/{f.name}")
    return names


def test_real_clips_as_phone_recordings_give_the_originals_features(tmp_path):
    """Real voices at 16 kHz, converted up and read back down: the device's int8 features are (on this
    sample: 99 % of the values) unchanged, the rest a step off; the transfer measurement reads the folder."""
    words = ["yes", "no", "cat", "dog"]
    names = _as_phone_recordings(REAL, tmp_path / "phone", words, per_word=3)
    original = np.stack([sc.fit_length(read_wav(REAL / n)) for n in names])
    converted = np.stack([sc.fit_length(read_wav(tmp_path / "phone" / n)) for n in names])
    a = frontend.features(original).astype(int)
    b = frontend.features(converted).astype(int)
    assert np.abs(a - b).max() <= 2 and np.mean(a == b) > 0.95
    # The folder as `tinykd data transfer` reads it: every clip, in word order, scored.
    audio, files, labels = transfer.read_clips(tmp_path / "phone", sc.KEYWORDS)
    assert files == sorted(names) and audio.shape == (len(names), 16000)
    assert labels == [sc.KEYWORDS.index(n.split("/")[0]) if n.split("/")[0] in sc.KEYWORDS else 11 for n in files]


def test_own_recordings_at_44k_stereo_train(tmp_path):
    """A Speech Commands-layout folder of one's own 44.1 kHz stereo recordings loads for training."""
    root = tmp_path / "own"
    for word in ("marvin", "cat"):
        for j in range(3):
            sound = tones(44100) * (0.5 + 0.1 * j)
            (root / word).mkdir(parents=True, exist_ok=True)
            (root / word / f"{j:02x}beef_nohash_0.wav").write_bytes(
                wav_bytes(np.stack([sound, sound], axis=1), 44100, "i24", extensible=True)
            )
    noise = np.random.default_rng(0).normal(0, 0.05, (2 * 44100, 2))
    (root / "_background_noise_").mkdir()
    (root / "_background_noise_" / "room.wav").write_bytes(wav_bytes(noise, 44100, "f32", extensible=True))
    (root / "validation_list.txt").write_text("marvin/00beef_nohash_0.wav\ncat/00beef_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("marvin/01beef_nohash_0.wav\ncat/01beef_nohash_0.wav\n")
    audio, labels, names = sc.load_audio(root, "train", keywords=("marvin",), progress=False)
    marvin = names.index("marvin")
    assert audio.dtype == np.int16 and audio.shape[1] == 16000
    clips = audio[np.asarray(labels) == marvin]
    assert len(clips) == 1 and np.max(np.abs(clips[0][100:-100] - tones(16000)[100:-100] * 0.7 * 32768)) < 60
