"""The kws task's data (tinykd.data.TASKS["kws"]): where the clips come from, the keywords, and
the digest that tells a build its data changed.

The clips are `data_dir` (Speech Commands layout), else Speech Commands under $TINYKD_DATA, else
a synthetic set (`synth`, mixed recipe) made once into $TINYKD_CACHE/kws-synth-...; its folder
name carries `synth.cache_key`, so a changed recipe, seed, size or keyword list is a new set."""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np

from ..base import Dataset
from .layout import KEYWORDS

SYNTH_CLIPS_PER_WORD = 200  # the full synthetic set: 200 clips per keyword, 50 per other word


def synth_clips_per_word(train_limit: int, synth_clips: int = 0) -> int:
    """Size of the synthetic set: `synth_clips` when given, else enough keyword clips for
    `train_limit` training examples (80 % of the clips train; _unknown_ and _silence_ add
    10 % each), the default set for 0."""
    if synth_clips:
        return synth_clips
    if not train_limit:
        return SYNTH_CLIPS_PER_WORD
    return max(8, min(SYNTH_CLIPS_PER_WORD, math.ceil(train_limit / (10 * 0.8 * 1.2))))


def keyword_tuple(keywords) -> tuple[str, ...]:
    from .synth import check_words

    return check_words(keywords, "Keywords") if keywords else KEYWORDS


def _speech_commands(data_dir, keywords: tuple[str, ...]) -> Path | None:
    from . import speech_commands

    if data_dir:
        return speech_commands.locate(data_dir, download=False, keywords=keywords)
    env = os.environ.get("TINYKD_DATA")
    if env:
        base = Path(env)
        for cand in (base / speech_commands.ARCHIVES["v0.02"].folder, base / "speech_commands", base):
            if speech_commands.is_dataset_dir(cand):
                speech_commands.check_layout(cand, keywords)
                return cand
    return None


def synth_folder(seed: int, size: int, keywords: tuple[str, ...]) -> tuple[Path, dict]:
    """The cache folder of the synthetic set, and its parameters."""
    from . import speech_commands, synth

    params = synth.synth_params(size, seed, keywords=keywords)
    return speech_commands.cache_dir() / f"kws-synth-{seed}-{size}-{synth.cache_key(params)}", params


def data_root(data_dir=None, seed: int = 0, train_limit: int = 0, synth_clips: int = 0, keywords=()) -> Path:
    """Where the KWS clips come from (see the module doc); synthesises the set when needed."""
    from . import synth

    keywords = keyword_tuple(keywords)
    root = _speech_commands(data_dir, keywords)
    if root is not None:
        return root
    size = synth_clips_per_word(train_limit, synth_clips)
    root, _ = synth_folder(seed, size, keywords)
    synth.synthesize_kws(root, clips_per_word=size, seed=seed, keywords=keywords, progress=True)
    return root


def load(
    data_dir=None,
    val_size: int = 0,
    seed: int = 0,
    train_limit: int = 0,
    test_limit: int = 0,
    augment: int = 0,
    synth_clips: int = 0,
    keywords=(),
) -> Dataset:
    from . import speech_commands

    root = data_root(data_dir, seed, train_limit, synth_clips, keywords)
    return speech_commands.load(
        root,
        val_size=val_size,
        seed=seed,
        train_limit=train_limit,
        test_limit=test_limit,
        augment=augment,
        keywords=keyword_tuple(keywords),
    )


def test_audio(
    data_dir=None,
    seed: int = 0,
    train_limit: int = 0,
    test_limit: int = 0,
    augment: int = 0,
    synth_clips: int = 0,
    keywords=(),
) -> np.ndarray:
    from . import speech_commands

    root = data_root(data_dir, seed, train_limit, synth_clips, keywords)
    audio, _, _ = speech_commands.load_audio(
        root, "test", seed, limit=test_limit, progress=False, keywords=keyword_tuple(keywords)
    )
    return audio


def data_digest(data_dir=None, keywords=(), **_) -> str:
    """What the clips are: the recorded files' names, sizes and times, or the synthesis recipe
    (seed and size are build settings already). A new recipe retrains the build's models."""
    from . import speech_commands
    from .recipe import MIXED, RENDER_VERSION
    from .synth import FORMAT_VERSION

    root = _speech_commands(data_dir, keyword_tuple(keywords))
    if root is not None:
        return "recorded:" + speech_commands._fingerprint(root)
    recipe = f"{MIXED.key()}/{RENDER_VERSION}/{FORMAT_VERSION}"
    return "synthetic:" + hashlib.sha256(recipe.encode()).hexdigest()
