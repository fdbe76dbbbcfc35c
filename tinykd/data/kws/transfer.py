"""How a trained KWS model does on a folder of recordings it never saw (`tinykd data transfer`).

The folder is in the Speech Commands layout, one folder per word (lists and noise not needed:
every clip is scored). A clip of a keyword should be called that keyword; a clip of any other
word should be rejected: called `_unknown_` (or `_silence_`, which is no keyword either). The
model is the int8 .tflite of a build, fed the same int8 features the device computes (the C
frontend compiled for the host), run in LiteRT.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import TinykdError
from .layout import KEYWORDS, NOISE_DIR, SILENCE, UNKNOWN


@dataclass
class TransferResult:
    clips_dir: str
    model: str
    class_names: list[str]
    files: list[str]  # "word/file.wav"
    labels: list[int]  # true class (an other word: _unknown_)
    predicted: list[int]

    @property
    def keywords(self) -> list[str]:
        return [c for c in self.class_names if c not in (SILENCE, UNKNOWN)]

    def _is_keyword(self) -> np.ndarray:
        return np.array([self.class_names[y] not in (SILENCE, UNKNOWN) for y in self.labels], dtype=bool)

    @property
    def keyword_clips(self) -> int:
        return int(self._is_keyword().sum())

    @property
    def keyword_correct(self) -> int:
        y, p = np.array(self.labels), np.array(self.predicted)
        return int(((y == p) & self._is_keyword()).sum())

    @property
    def other_clips(self) -> int:
        return len(self.labels) - self.keyword_clips

    @property
    def other_rejected(self) -> int:
        """Other-word clips called _unknown_ or _silence_: not taken for a keyword."""
        rejected = np.array([self.class_names[p] in (SILENCE, UNKNOWN) for p in self.predicted], dtype=bool)
        return int((rejected & ~self._is_keyword()).sum())

    @property
    def other_unknown(self) -> int:
        unknown = np.array([self.class_names[p] == UNKNOWN for p in self.predicted], dtype=bool)
        return int((unknown & ~self._is_keyword()).sum())

    @property
    def keyword_accuracy(self) -> float:
        return self.keyword_correct / self.keyword_clips if self.keyword_clips else 0.0

    @property
    def unknown_rejection(self) -> float:
        return self.other_rejected / self.other_clips if self.other_clips else 0.0

    def confusion(self) -> list[list[int]]:
        n = len(self.class_names)
        m = np.zeros((n, n), dtype=np.int64)
        np.add.at(m, (np.array(self.labels, dtype=int), np.array(self.predicted, dtype=int)), 1)
        return m.tolist()

    def to_dict(self) -> dict:
        return {
            "clips_dir": self.clips_dir,
            "model": self.model,
            "class_names": self.class_names,
            "keyword_clips": self.keyword_clips,
            "keyword_correct": self.keyword_correct,
            "keyword_accuracy": round(self.keyword_accuracy, 6),
            "other_clips": self.other_clips,
            "other_rejected": self.other_rejected,
            "other_called_unknown": self.other_unknown,
            "unknown_rejection": round(self.unknown_rejection, 6),
            "confusion": self.confusion(),
            "clips": [
                {"file": f, "true": self.class_names[y], "predicted": self.class_names[p]}
                for f, y, p in zip(self.files, self.labels, self.predicted, strict=True)
            ],
        }

    def summary(self) -> str:
        return (
            f"keywords: {self.keyword_correct} of {self.keyword_clips} clips recognised "
            f"({100 * self.keyword_accuracy:.1f} %); other words: {self.other_rejected} of {self.other_clips} "
            f"rejected ({100 * self.unknown_rejection:.1f} %; {self.other_unknown} called {UNKNOWN})"
        )


def model_and_keywords(model) -> tuple[Path, tuple[str, ...] | None]:
    """The .tflite to run and, for a build folder, the keywords its config.toml names."""
    path = Path(model)
    if path.is_dir():
        tflite, config = path / "model_int8.tflite", path / "config.toml"
        if not tflite.is_file():
            raise TinykdError(
                f"{path} holds no model_int8.tflite; pass a build folder of a KWS build that ran its "
                "convert stage (tinykd build --task kws ...), or the .tflite itself."
            )
        keywords = None
        if config.is_file():
            c = tomllib.loads(config.read_text())
            if c.get("task") not in (None, "kws"):
                raise TinykdError(f"{path} is a build of task '{c.get('task')}', not a keyword spotter (--task kws).")
            keywords = tuple(c.get("data", {}).get("keywords") or ()) or None
        return tflite, keywords
    if not path.is_file():
        raise TinykdError(f"The model {path} does not exist; pass a KWS build folder or its model_int8.tflite.")
    return path, None


def read_clips(clips_dir, keywords: tuple[str, ...]) -> tuple[np.ndarray, list[str], list[int]]:
    """Every clip under clips_dir/<word>/: int16 [N, 16000] (padded or cut), "word/file" names and
    class ids (keywords by position, other words _unknown_)."""
    from .speech_commands import fit_length, read_wav

    root = Path(clips_dir)
    if not root.is_dir():
        raise TinykdError(f"The clips folder {root} does not exist; pass a folder of word folders (yes/, no/, ...).")
    unknown = len(keywords) + 1
    files, labels, audio = [], [], []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and p.name != NOISE_DIR and not p.name.startswith(".")):
        for f in sorted(d.glob("*.wav")):
            files.append(f"{d.name}/{f.name}")
            labels.append(keywords.index(d.name) if d.name in keywords else unknown)
            audio.append(fit_length(read_wav(f)))
    if not files:
        raise TinykdError(
            f"{root} has no word folders with .wav clips; expected <word>/<name>.wav (any rate, "
            "channels and sample format), e.g. a Speech Commands copy or ../shared/data/speech-commands-sample."
        )
    missing = [k for k in keywords if not (root / k).is_dir()]
    if len(missing) == len(keywords):
        raise TinykdError(
            f"{root} has none of the model's keywords ({', '.join(keywords)}) among its word folders "
            f"({', '.join(sorted({f.split('/')[0] for f in files}))}); keyword accuracy cannot be measured. "
            "Pass the model's keywords with --keywords if they are not the ten Speech Commands ones."
        )
    return np.stack(audio), files, labels


def evaluate_clips(model, clips_dir, keywords=None, out=None, progress: bool = False) -> TransferResult:
    """Score a KWS model (a build folder or its int8 .tflite) on every clip of clips_dir.

    keywords: the model's keywords in class order (default: the build's [data] keywords, else
    the ten Speech Commands keywords); the model must have len(keywords) + 2 outputs. out: a
    folder to write transfer.json and the confusion matrix plot (transfer_confusion.png) to."""
    from ...evaluate.host import int8_outputs_litert, model_io
    from . import frontend

    tflite, build_keywords = model_and_keywords(model)
    keywords = tuple(keywords or build_keywords or KEYWORDS)
    names = list(keywords) + [SILENCE, UNKNOWN]
    io = model_io(tflite)
    if io.output_shape[-1] != len(names):
        raise TinykdError(
            f"{tflite.name} has {io.output_shape[-1]} outputs, but keywords {', '.join(keywords)} make "
            f"{len(names)} classes (with {SILENCE} and {UNKNOWN}). Pass the keywords the model was "
            "trained on with --keywords, in their order."
        )
    if io.float_input or abs(io.input_scale - frontend.SCALE) > 1e-9 or io.input_zero_point != frontend.ZERO_POINT:
        raise TinykdError(
            f"{tflite.name} does not take the KWS frontend's int8 features (scale {frontend.SCALE}, zero "
            f"point {frontend.ZERO_POINT}); it is not the int8 model of a tinykd KWS build."
        )
    audio, files, labels = read_clips(clips_dir, keywords)
    feats = frontend.features(audio)
    outputs = int8_outputs_litert(tflite, feats, label="real clips")
    predicted = np.argmax(outputs.reshape(len(outputs), -1), axis=1)
    result = TransferResult(str(clips_dir), str(tflite), names, files, labels, [int(p) for p in predicted])
    if out is not None:
        from ...fileio import write_text
        from ...report.plots import confusion_matrix

        folder = Path(out)
        write_text(folder / "transfer.json", json.dumps(result.to_dict(), indent=1) + "\n")
        title = (
            f"{Path(clips_dir).name}: keywords {100 * result.keyword_accuracy:.0f} %, "
            f"others rejected {100 * result.unknown_rejection:.0f} %"
        )
        confusion_matrix(result.confusion(), names, title, folder / "transfer_confusion.png")
    return result
