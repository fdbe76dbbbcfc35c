"""Speech engines behind one small interface: which voices an engine has, and how it speaks a
word as 16 kHz float audio.

Three Debian packages, three kinds of synthesis, so the synthetic set is not one engine's voice:

- `espeak`: espeak-ng, formant synthesis; 7 English accents x 19 voice variants.
- `flite`: CMU Flite, a diphone voice (kal) and clustergen voices from CMU ARCTIC recordings
  (awb, rms, slt).
- `festival`: Festival with the diphone voices kal and ked (recorded diphones) and the HTS
  voice slt (festvox-kallpc16k, festvox-kdlpc16k, festvox-us-slt-hts).

`speak(word, voice, rate, pitch)`: rate 1 is the voice's own speed (1.2 = 20 % faster), pitch
1 its own F0 (1.2 = 20 % higher). A voice that cannot change its F0 says so in
`pitch_control(voice)`; the renderer then shifts pitch itself (tinykd.data.kws.effects).
Every engine here is deterministic: the same request gives the same samples.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ...errors import TinykdError
from .espeak import LANGUAGES, VARIANTS
from .layout import SAMPLE_RATE
from .wav import parse_wav


def resample(x: np.ndarray, n_out: int) -> np.ndarray:
    """Band-limited resampling to n_out samples by truncating/padding the spectrum (guard zeros
    around the signal keep the FFT's wrap-around quiet)."""
    guard = 256
    x = np.concatenate([np.zeros(guard), x, np.zeros(guard)])
    n_total = int(round((len(x)) * n_out / max(len(x) - 2 * guard, 1)))
    spec = np.fft.rfft(x)
    keep = min(len(spec), n_total // 2 + 1)
    out = np.zeros(n_total // 2 + 1, dtype=complex)
    out[:keep] = spec[:keep]
    y = np.fft.irfft(out, n_total) * (n_total / len(x))
    g = (n_total - n_out) // 2
    return y[g : g + n_out]


def to_16k(x: np.ndarray, rate: int) -> np.ndarray:
    return x if rate == SAMPLE_RATE else resample(x, int(round(len(x) * SAMPLE_RATE / rate)))


def _run(cmd: list[str], who: str, timeout: float = 120.0, **kw) -> subprocess.CompletedProcess:
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=timeout, **kw)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise TinykdError(f"{who} could not be run ({' '.join(cmd[:4])} ...): {e}. Reinstall it.") from None
    if r.returncode != 0:
        raise TinykdError(
            f"{who} failed ({' '.join(cmd[:6])} ...): {r.stderr.decode(errors='replace').strip() or 'no message'}. "
            "Check that it and its English voices are installed (see .ci/setup)."
        )
    return r


class Engine:
    """One speech engine. Subclasses set `name`, `program`, `package`, VOICES and `_speak`."""

    name = ""
    program = ""
    package = ""  # the Debian packages that install it, for the error message
    VOICES: tuple[str, ...] = ()

    def voices(self) -> tuple[str, ...]:
        return self.VOICES

    def pitch_control(self, voice: str) -> bool:
        return True

    def executable(self) -> str:
        exe = shutil.which(self.program)
        if not exe:
            raise TinykdError(
                f"{self.program} was not found on PATH; tinykd speaks part of its synthetic keyword "
                f"dataset with it ({self.name}). Install it (Debian/Ubuntu: apt-get install "
                f"{self.package}; or run .ci/setup), or use recorded data with --data-dir."
            )
        return exe

    def check(self) -> None:
        """Raise TinykdError unless the engine and all its voices can speak."""
        self.executable()

    def speak(self, word: str, voice: str, rate: float = 1.0, pitch: float = 1.0) -> np.ndarray:
        """float64 audio at 16 kHz (silence trimmed later by the renderer)."""
        if voice not in self.voices():
            raise TinykdError(f"{self.name} has no voice '{voice}'; it has {', '.join(self.voices())}.")
        x, rate_hz = self._speak(word, voice, rate, pitch)
        if not len(x) or not np.any(x):
            raise TinykdError(f"{self.name} produced silence for '{word}' with voice '{voice}'.")
        return to_16k(x, rate_hz)

    def speak_many(self, requests: list[tuple[str, str, float, float]]) -> list[np.ndarray]:
        """Several (word, voice, rate, pitch) requests; the same audio as one speak() each."""
        return [self.speak(*r) for r in requests]

    def _speak(self, word: str, voice: str, rate: float, pitch: float) -> tuple[np.ndarray, int]:
        raise NotImplementedError


class Espeak(Engine):
    name = "espeak"
    program = "espeak-ng"
    package = "espeak-ng"
    VOICES = tuple(lang + ("+" + v if v else "") for lang in LANGUAGES for v in VARIANTS)  # as the espeak recipe

    def _speak(self, word, voice, rate, pitch):
        speed = int(np.clip(round(175 * rate), 80, 450))  # words per minute; espeak's default is 175
        p = int(np.clip(round(50 * pitch), 0, 99))  # espeak's -p: 50 is the voice's own pitch
        cmd = [self.executable(), "-v", voice, "-s", str(speed), "-p", str(p), "--stdout", word]
        return parse_wav(_run(cmd, "espeak-ng").stdout, "espeak-ng")


class Flite(Engine):
    name = "flite"
    program = "flite"
    package = "flite"
    # awb_time is a talking clock (it only says times); kal is kal16 at 8 kHz: a telephone-band copy.
    VOICES = ("kal", "kal16", "awb", "rms", "slt")
    F0 = {"kal": 105.0, "kal16": 105.0, "awb": 110.0, "rms": 100.0, "slt": 170.0}  # their mean F0, Hz

    def pitch_control(self, voice):
        return voice != "rms"  # the rms clustergen voice ignores int_f0_target_mean

    def _speak(self, word, voice, rate, pitch):
        with tempfile.TemporaryDirectory(prefix="tinykd-flite-") as tmp:
            out = Path(tmp) / "w.wav"
            cmd = [self.executable(), "-voice", voice, "--setf", f"duration_stretch={1.0 / rate:.4f}"]
            if self.pitch_control(voice):
                cmd += ["--setf", f"int_f0_target_mean={self.F0[voice] * pitch:.2f}"]
            _run(cmd + ["-t", word, "-o", str(out)], "flite")
            return parse_wav(out.read_bytes(), "flite")


class Festival(Engine):
    name = "festival"
    program = "festival"
    package = "festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts"
    VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")
    # The diphone voices' intonation model (int_lr_params): their own mean and spread of F0.
    F0 = {"kal_diphone": (105.0, 14.0), "ked_diphone": (105.0, 14.0)}

    def pitch_control(self, voice):
        return voice in self.F0  # the HTS voice has no F0 target to move

    def check(self):
        exe = self.executable()
        with tempfile.TemporaryDirectory(prefix="tinykd-festival-") as tmp:
            script = Path(tmp) / "check.scm"
            script.write_text(
                "".join(f'(if (not (member \'{v} (voice.list))) (format t "missing {v}\\n"))\n' for v in self.VOICES)
            )
            r = _run([exe, "-b", str(script)], "festival")
        missing = [
            line.split()[1] for line in r.stdout.decode(errors="replace").splitlines() if line.startswith("missing")
        ]
        if missing:
            raise TinykdError(
                f"festival has no voice {', '.join(missing)}; tinykd speaks part of its synthetic "
                f"keyword dataset with it. Install the voices (apt-get install {self.package}; or run "
                ".ci/setup), or use recorded data with --data-dir."
            )

    def _commands(self, word, voice, rate, pitch, path: Path) -> str:
        lines = [f"(voice_{voice})", f"(Parameter.set 'Duration_Stretch {1.0 / rate:.4f})"]
        if voice in self.F0:
            mean, std = self.F0[voice]
            lines.append(
                f"(set! int_lr_params '((target_f0_mean {mean * pitch:.2f}) (target_f0_std {std * pitch:.2f}) "
                "(model_f0_mean 170) (model_f0_std 34)))"
            )
        lines.append(f'(utt.save.wave (utt.synth (Utterance Text "{word}")) "{path}" \'riff)')
        return "\n".join(lines) + "\n"

    def speak_many(self, requests):
        """One festival process for many words: its start-up (~0.3 s) would otherwise dominate. Each
        request selects its voice and sets every parameter again, so the order does not matter."""
        for word, voice, _, _ in requests:
            if voice not in self.voices():
                raise TinykdError(f"festival has no voice '{voice}'; it has {', '.join(self.voices())}.")
            if not word.replace("?", "").replace("!", "").replace(".", "").isalpha():
                raise TinykdError(f"festival is asked to speak '{word}'; only plain words can be spoken.")
        out = []
        with tempfile.TemporaryDirectory(prefix="tinykd-festival-") as tmp:
            script = Path(tmp) / "say.scm"
            paths = [Path(tmp) / f"{i}.wav" for i in range(len(requests))]
            script.write_text("".join(self._commands(*r, p) for r, p in zip(requests, paths, strict=True)))
            _run([self.executable(), "-b", str(script)], "festival", timeout=60.0 + 5.0 * len(requests))
            for (word, voice, _, _), p in zip(requests, paths, strict=True):
                if not p.is_file():
                    raise TinykdError(f"festival wrote no audio for '{word}' with voice '{voice}'.")
                x, rate_hz = parse_wav(p.read_bytes(), "festival")
                if not np.any(x):
                    raise TinykdError(f"festival produced silence for '{word}' with voice '{voice}'.")
                out.append(to_16k(x, rate_hz))
        return out

    def speak(self, word, voice, rate=1.0, pitch=1.0):
        return self.speak_many([(word, voice, rate, pitch)])[0]


ENGINES: dict[str, Engine] = {e.name: e for e in (Espeak(), Flite(), Festival())}


def get_engine(name: str) -> Engine:
    try:
        return ENGINES[name]
    except KeyError:
        raise TinykdError(f"Unknown speech engine '{name}'; tinykd has {', '.join(ENGINES)}.") from None
