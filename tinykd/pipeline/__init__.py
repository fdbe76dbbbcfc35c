"""The build: stages that read and write files in one build directory.

    train-teacher   teacher.keras (trained, or loaded from [teacher] model)
    extra-teachers  the method's own models (ensemble members, specialists + specialists.json)
    distill         baseline.keras (labels only) and student.keras (+ peer, generations)
    qat             student_qat.h5, the student fine-tuned with fake quantisation
    convert         model_int8.tflite
    export          model_data.h / model_data.cc (the .tflite as a C array)
    firmware        firmware/ and firmware/firmware.json (the board's image and its sizes)
    evaluate        evaluation.json and host_int8_outputs.npy (the outputs the device must give)
    device          device.json (the int8 model on the board, against the host)
    report          report.json, report.md, plots/

Modules: `build` (the `Build`: bookkeeping, fingerprints, helpers the stages and method
recipes share), `stages` (the stage list, each stage's settings and upstream stages, seeds
and checkpoint names), `training_stages`, `model_stages` and `measure_stages` (the stages).
What a distillation method adds comes from its recipe (`tinykd.distill.methods.BuildRecipe`).
"""

from .build import Build, StageRecord, default_out_dir
from .stages import STAGES

__all__ = ["Build", "STAGES", "StageRecord", "default_out_dir"]
