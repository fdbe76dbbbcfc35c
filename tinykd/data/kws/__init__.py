"""Keyword spotting: Speech Commands data, the synthetic set, the shared C frontend.

- `speech_commands`: the loader (splits, silence/unknown, augmentation, any keywords) and
  `load_kws_features`, the int8 features the models train on; `layout` holds the folder
  layout and the classes, `archive` finds the data or downloads and verifies it.
- `synth.synthesize_kws`: a dataset in the same layout, spoken by espeak-ng, flite and festival
  (`engines`) as many speakers in rooms (`recipe`, `effects`), or by espeak-ng alone (`espeak`).
- `task`: the kws task's data: recordings or the synthetic set, the keywords, the data digest.
- `transfer`: a trained model scored on recordings it never saw (`tinykd data transfer`).
- `frontend`: the firmware's fixed-point MFCC (firmware/frontend/) compiled for the host.
"""

from .speech_commands import CLASS_NAMES, KEYWORDS, load, load_audio, load_kws_features
from .synth import synthesize_kws

__all__ = ["CLASS_NAMES", "KEYWORDS", "load", "load_audio", "load_kws_features", "synthesize_kws"]
