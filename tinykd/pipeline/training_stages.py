"""The training stages: teacher, the method's extra models, baseline + student, QAT.

Each takes the `Build` and returns (artifacts, info) for stages.json. What the distillation
method adds (extra models, the teacher per stage, how the student is made) comes from its
`BuildRecipe` (`build.recipe`); nothing here names a method.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import TinykdError


def train_teacher(build):
    """teacher.keras: trained with [teacher], or loaded from [teacher] model."""
    from ..models import count_params

    build.seed("train-teacher")
    c = build.config.teacher
    if c.model:
        return _load_teacher(build, Path(c.model))
    teacher = build.new_model(c.arch)
    result = build.train("train-teacher", teacher, c)
    build.save_model(teacher, "teacher")
    build.save_history("teacher", result)
    return ["teacher.keras"], {"params": count_params(teacher), "train_seconds": result.seconds}


def _load_teacher(build, path: Path):
    """--teacher-model: a saved teacher instead of training one (e.g. one shared by several builds)."""
    from ..models import count_params
    from ..models.store import load_model

    d = build.dataset
    teacher = load_model(path)
    inputs, outputs = tuple(teacher.inputs[0].shape[1:]), int(teacher.outputs[0].shape[-1])
    if inputs != tuple(d.input_shape) or outputs != d.num_classes:
        raise TinykdError(
            f"The teacher model {path} takes inputs of shape {inputs} and has {outputs} outputs, but task "
            f"'{build.config.task}' has inputs {tuple(d.input_shape)} and {d.num_classes} classes. Give a "
            "teacher trained for this task, or leave --teacher-model out to train one."
        )
    build.save_model(teacher, "teacher")
    # A teacher trained here before would leave its curves in the report.
    (build.out / "history" / "teacher.json").unlink(missing_ok=True)
    build.log(f"  teacher loaded from {path} ({count_params(teacher):,} parameters), not trained")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return ["teacher.keras"], {"params": count_params(teacher), "loaded_from": str(path), "sha256": digest}


def extra_teachers(build):
    """The models the method needs besides the build's teacher (none for most methods)."""
    return build.recipe.train_extra_models(build)


def distill(build):
    """baseline.keras (the student's architecture on the labels alone) and student.keras (as the
    method makes it), plus whatever else the method keeps."""
    from ..models import count_params

    c = build.config.student
    build.seed("baseline")
    baseline = build.new_model(c.arch)
    base_result = build.train("baseline", baseline, c)
    build.save_model(baseline, "baseline")
    build.save_history("baseline", base_result)
    build.seed("distill")
    student, kd_result, extra = build.recipe.distill(build, baseline)
    build.save_model(student, "student")
    build.save_history("student", kd_result)
    return ["baseline.keras", "student.keras"] + extra, {
        "params": count_params(student),
        "baseline_seconds": base_result.seconds,
        "student_seconds": kd_result.seconds,
    }


def qat(build):
    """student_qat.h5: the student with tfmot's fake quantisation, fine-tuned still distilling."""
    from ..quantize import quantize_student

    build.seed("qat")
    qat_student = quantize_student(build.load_model("student"))
    result = build.train("qat", qat_student, build.config.qat, build.recipe.kd_pair(build, "qat"))
    name = build.save_model(qat_student, "student_qat")
    build.save_history("student_qat", result)
    return [name], {"train_seconds": result.seconds}
