"""Generated models, by the hundred: random int8 .tflite models run on tinykd's runtime
(host build) and on the TFLite Micro interpreter, compared on every output byte.

    from tinykd.fuzz import run_fuzz
    report = run_fuzz(200, seed=1, inputs_per_model=8, out_dir="fuzz-out")
    print(report.summary())
"""

from tinykd.fuzz.compare import FuzzReport, ModelResult, check_model, model_seeds, run_fuzz
from tinykd.fuzz.random_models import ModelSpec, build_tflite, random_spec

__all__ = [
    "FuzzReport",
    "ModelResult",
    "ModelSpec",
    "build_tflite",
    "check_model",
    "model_seeds",
    "random_spec",
    "run_fuzz",
]
