"""Your own keywords (recorded in the Speech Commands layout, or synthesised) and the transfer
measurement: a KWS model scored on real Speech Commands clips it never saw, checked against a
count by hand."""

from __future__ import annotations

import shutil
import tomllib
import wave
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tinykd.cli import main
from tinykd.data.kws import frontend, task, transfer
from tinykd.data.kws import speech_commands as sc
from tinykd.errors import TinykdError

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech-commands-sample"
KEYWORDS = ("marvin", "sheila")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYKD_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TINYKD_DATA", raising=False)


def write_wav(path: Path, samples: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.asarray(samples, dtype="<i2").tobytes())


@pytest.fixture(scope="module")
def own_words(tmp_path_factory) -> Path:
    """marvin and sheila (the keywords) and cat, dog, yes (other words): 5 speakers each."""
    root = tmp_path_factory.mktemp("own")
    rng = np.random.default_rng(3)
    t = np.arange(16000) / 16000
    val, test = [], []
    for wi, word in enumerate(("marvin", "sheila", "cat", "dog", "yes")):
        for j in range(5):
            rel = f"{word}/{wi:02x}{j:02x}beef_nohash_0.wav"
            x = 4000 * np.sin(2 * np.pi * (300 + 200 * wi) * t) * np.exp(-3 * t) + rng.normal(0, 50, 16000)
            write_wav(root / rel, np.round(x).astype(np.int16))
            (val if j == 0 else test if j == 1 else []).append(rel)
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    write_wav(root / "_background_noise_" / "hiss.wav", rng.normal(0, 500, 32000).astype(np.int16))
    return root


def test_own_keywords_from_recordings(own_words):
    audio, labels, names = sc.load_audio(own_words, "train", keywords=KEYWORDS, progress=False)
    assert names == ["marvin", "sheila", "_silence_", "_unknown_"]
    # 3 training speakers per word: 6 keyword clips, ceil(10 % of 6) unknowns and silences
    assert sorted(labels.tolist()) == [0, 0, 0, 1, 1, 1, 2, 3]
    ds = sc.load(own_words, keywords=KEYWORDS)
    assert ds.class_names == names and ds.num_classes == 4 and set(ds.y_test.tolist()) == {0, 1, 2, 3}
    # The same through the configuration and the CLI.
    from tinykd.config import resolve
    from tinykd.data import load_dataset

    config = resolve(task="kws", overrides={"data": {"dir": str(own_words), "keywords": list(KEYWORDS)}})
    assert load_dataset(config).class_names == names
    result = CliRunner().invoke(
        main, ["data", "--task", "kws", "--data-dir", str(own_words), "--keywords", "marvin,sheila"]
    )
    assert result.exit_code == 0, result.output
    assert "['marvin', 'sheila', '_silence_', '_unknown_']" in result.output


def test_a_keyword_the_recordings_lack_is_a_clear_error(own_words):
    with pytest.raises(TinykdError, match=r"no recordings of the keyword visual: no folder visual/.*cat, dog"):
        sc.load_audio(own_words, "train", keywords=("marvin", "visual"), progress=False)
    result = CliRunner().invoke(main, ["data", "--task", "kws", "--data-dir", str(own_words), "--keywords", "house"])
    assert result.exit_code == 2 and "house" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(main, ["data", "--task", "mnist", "--keywords", "house"])
    assert result.exit_code == 2 and "only apply to the kws task" in result.output
    from tinykd.config import resolve

    with pytest.raises(TinykdError, match="lowercase"):
        resolve(task="kws", overrides={"data": {"keywords": ["Marvin"]}})


def test_own_keywords_synthesised(tmp_path):
    root = task.data_root(None, seed=2, synth_clips=2, keywords=KEYWORDS)
    assert root.parent == tmp_path / "cache" and root.name.startswith("kws-synth-2-2-")
    assert len(list((root / "marvin").glob("*.wav"))) == 2 and len(list((root / "sheila").glob("*.wav"))) == 2
    assert len(list((root / "yes").glob("*.wav"))) == 1  # the ten keywords are other words here
    audio, labels, names = sc.load_audio(root, "train", keywords=KEYWORDS, progress=False)
    assert names == ["marvin", "sheila", "_silence_", "_unknown_"] and set(labels.tolist()) <= {0, 1, 2, 3}
    assert task.synth_folder(2, 2, sc.KEYWORDS)[0] != root  # the ten keywords: another set


# ---- transfer ------------------------------------------------------------------------------------

# A handful of real clips: 5 keyword clips, 1 marvin, 1 sheila and 2 other words.
PICK = ("yes", "stop", "go", "left", "down", "marvin", "sheila", "cat", "two")


@pytest.fixture(scope="module")
def real_clips(tmp_path_factory) -> Path:
    assert REAL.is_dir(), f"the real Speech Commands sample is expected at {REAL}"
    root = tmp_path_factory.mktemp("real")
    for word in PICK:
        first = sorted((REAL / word).glob("*.wav"))[0]
        (root / word).mkdir()
        shutil.copy(first, root / word / first.name)
    return root


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[int, Path]:
    """An untrained but fixed int8 KWS model for the ten keywords (12 outputs) and for two (4)."""
    return {n: _model(tmp_path_factory.mktemp(f"model{n}"), n, seed=n) for n in (12, 4)}


def _model(tmp: Path, classes: int, seed: int) -> Path:
    """A small int8 KWS model (frontend features in, `classes` scores out), untrained but fixed."""
    import tf_keras as keras

    from tinykd.export.convert import convert_int8

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.layers.Input((49, 10, 1)),
            keras.layers.Conv2D(4, (5, 5), strides=(2, 2), activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(classes),
        ]
    )
    x = frontend.dequantize(np.random.default_rng(seed).integers(-128, 128, (32, 49, 10, 1))).astype(np.float32)
    return convert_int8(
        model, x, tmp / "model_int8.tflite", samples=32, input_quantization=(frontend.SCALE, frontend.ZERO_POINT)
    )


def _hand_count(tflite: Path, clips: Path, keywords: tuple[str, ...]) -> tuple[int, int, int, int]:
    """(keyword clips, recognised, other clips, rejected), counted clip by clip."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(tflite))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    kw = hit = other = rejected = 0
    for wav in sorted(clips.glob("*/*.wav")):
        word = wav.parent.name
        feats = frontend.features(sc.fit_length(sc.read_wav(wav))[None])
        interpreter.set_tensor(inp["index"], feats.reshape(inp["shape"]))
        interpreter.invoke()
        scores = interpreter.get_tensor(out["index"])[0]
        best = int(np.argmax(scores))
        if word in keywords:
            kw += 1
            hit += best == keywords.index(word)
        else:
            other += 1
            rejected += best >= len(keywords)  # _silence_ or _unknown_
    return kw, hit, other, rejected


@pytest.mark.parametrize("keywords", [sc.KEYWORDS, KEYWORDS], ids=["ten", "own"])
def test_transfer_on_real_clips_is_the_hand_count(real_clips, models, tmp_path, keywords):
    tflite = models[len(keywords) + 2]
    result = transfer.evaluate_clips(tflite, real_clips, keywords=keywords, out=tmp_path / "report")
    kw, hit, other, rejected = _hand_count(tflite, real_clips, keywords)
    assert (result.keyword_clips, result.keyword_correct, result.other_clips, result.other_rejected) == (
        kw,
        hit,
        other,
        rejected,
    )
    assert kw == (5 if keywords == sc.KEYWORDS else 2) and kw + other == len(PICK)
    assert result.keyword_accuracy == pytest.approx(hit / kw) and result.unknown_rejection == pytest.approx(
        rejected / other
    )
    m = np.array(result.confusion())
    assert m.shape == (len(keywords) + 2,) * 2 and m.sum() == len(PICK) and m[len(keywords)].sum() == 0
    assert m[: len(keywords)].sum() == kw and np.trace(m[: len(keywords)]) == hit
    assert (tmp_path / "report" / "transfer_confusion.png").stat().st_size > 1000
    # The CLI on a build folder: its model and its keywords from config.toml.
    build = tmp_path / "build"
    build.mkdir()
    shutil.copy(tflite, build / "model_int8.tflite")
    (build / "config.toml").write_text(
        f'task = "kws"\n[data]\nkeywords = {list(keywords) if keywords == KEYWORDS else []}\n'.replace("'", '"')
    )
    tomllib.loads((build / "config.toml").read_text())
    res = CliRunner().invoke(main, ["data", "transfer", "--model", str(build), "--real-clips", str(real_clips)])
    assert res.exit_code == 0, res.output
    assert f"keywords: {hit} of {kw} clips recognised" in res.output
    assert f"other words: {rejected} of {other} rejected" in res.output
    assert (build / "transfer.json").is_file()


def test_transfer_refuses_a_model_that_does_not_fit(real_clips, models, tmp_path):
    tflite = models[12]
    with pytest.raises(TinykdError, match="12 outputs, but keywords marvin, sheila make 4 classes"):
        transfer.evaluate_clips(tflite, real_clips, keywords=KEYWORDS)
    with pytest.raises(TinykdError, match="none of the model's keywords"):
        transfer.evaluate_clips(models[4], real_clips, keywords=("bed", "wow"))
    result = CliRunner().invoke(
        main, ["data", "transfer", "--model", str(tflite), "--real-clips", str(tmp_path / "nope")]
    )
    assert result.exit_code == 2 and "does not exist" in result.output
