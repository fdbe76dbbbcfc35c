"""Keyword spotting: Speech Commands data, the espeak-ng synthetic set, the shared C frontend.

- `speech_commands`: the loader (12 classes, splits, silence/unknown, augmentation,
  verified download) and `load_kws_features`, the int8 features the models train on.
- `synth.synthesize_kws`: a dataset in the same layout spoken by espeak-ng (offline tests, demo).
- `frontend`: the firmware's fixed-point MFCC (firmware/frontend/) compiled for the host.
"""
from .speech_commands import CLASS_NAMES, KEYWORDS, load, load_audio, load_kws_features
from .synth import synthesize_kws

__all__ = ["CLASS_NAMES", "KEYWORDS", "load", "load_audio", "load_kws_features", "synthesize_kws"]
