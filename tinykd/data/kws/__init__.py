"""Keyword spotting: Speech Commands data, the espeak-ng synthetic set, the shared C frontend.

- `speech_commands`: the loader (splits, silence/unknown, augmentation) and
  `load_kws_features`, the int8 features the models train on; `layout` holds the folder
  layout and the 12 classes, `archive` finds the data or downloads and verifies it.
- `synth.synthesize_kws`: a dataset in the same layout spoken by espeak-ng (offline tests, demo).
- `frontend`: the firmware's fixed-point MFCC (firmware/frontend/) compiled for the host.
"""

from .speech_commands import CLASS_NAMES, KEYWORDS, load, load_audio, load_kws_features
from .synth import synthesize_kws

__all__ = ["CLASS_NAMES", "KEYWORDS", "load", "load_audio", "load_kws_features", "synthesize_kws"]
