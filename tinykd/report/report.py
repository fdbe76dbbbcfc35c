"""Assemble report.json and report.md from the build directory's records."""

from __future__ import annotations

import json
from pathlib import Path

from ..fileio import write_json, write_text
from . import plots
from .hinton2015 import HINTON_MNIST_ERRORS

MODEL_LABELS = {
    "teacher": "teacher (float)",
    "baseline": "student, no KD (float)",
    "student": "student, KD (float)",
    "student_qat": "student, KD + QAT (fake-quant float)",
    "int8_litert": "student int8 (LiteRT)",
    "int8_tflm": "student int8 (TFLite Micro)",
}


def write_report(build) -> list[Path]:
    out = build.out
    evaluation = json.loads((out / "evaluation.json").read_text())
    models = evaluation["models"]
    histories = {}
    for name in ("teacher", "baseline", "student", "student_qat"):
        path = out / "history" / f"{name}.json"
        if path.exists():
            histories[name] = json.loads(path.read_text())["history"]

    plot_dir = out / "plots"
    total = evaluation["test_examples"]
    written = [
        plots.training_curves(histories, plot_dir / "training_curves.png"),
        plots.confusion_matrix(
            models["int8_tflm"]["confusion"],
            evaluation["class_names"],
            f"int8 student (TFLite Micro), {models['int8_tflm']['errors']} errors / {total}",
            plot_dir / "confusion_int8.png",
        ),
        plots.error_bars(
            {n: models[n]["errors"] for n in sorted(models, key=_pipeline_order(build.config.distill.method))},
            total,
            HINTON_MNIST_ERRORS if build.config.task == "mnist" and total == 10000 else {},
            plot_dir / "errors.png",
        ),
    ]
    if build.task.load_test_audio is not None:
        written.append(_feature_examples(build, evaluation["class_names"], plot_dir / "mfcc_examples.png"))
    device = _read_json(out / "device.json")
    firmware = _read_json(out / "firmware" / "firmware.json")
    if device:
        written.append(
            plots.confusion_matrix(
                device["device"]["confusion"],
                evaluation["class_names"],
                f"on {device['board']}, {device['device']['errors']} errors / {device['examples']}",
                plot_dir / "confusion_device.png",
            )
        )
        if "layers" in device.get("layer_profile", {}):
            written.append(
                plots.layer_profile(
                    device["layer_profile"], f"{build.config.task} on {device['board']}", plot_dir / "layer_profile.png"
                )
            )
    records = {k: vars(v) for k, v in build.records.items()}
    tflite = out / "model_int8.tflite"
    report = {
        "tinykd_report": 1,
        "config": build.config.to_dict(),
        "dataset": build.dataset.summary(),
        "results": models,
        "int8_litert_vs_tflm_mismatches": evaluation["int8_litert_vs_tflm_mismatches"],
        "int8_litert_vs_tflm_max_difference": evaluation["int8_litert_vs_tflm_max_difference"],
        "int8_litert_vs_tflm_prediction_disagreements": evaluation["int8_litert_vs_tflm_prediction_disagreements"],
        "kd_gain_errors": models["baseline"]["errors"] - models["student"]["errors"],
        "specialists": [
            {**s, "class_names": [evaluation["class_names"][k] for k in s["classes"]]}
            for s in evaluation.get("specialists", [])
        ],
        "model": {
            "teacher_params": records.get("train-teacher", {}).get("info", {}).get("params"),
            "student_params": records.get("distill", {}).get("info", {}).get("params"),
            "tflite_bytes": tflite.stat().st_size if tflite.exists() else None,
            "tflite_sha256": records.get("convert", {}).get("info", {}).get("sha256"),
        },
        "firmware": firmware,
        "device": device,
        "stage_seconds": {k: v["seconds"] for k, v in records.items()},
        "reference": {"hinton_2015_mnist_errors": HINTON_MNIST_ERRORS} if build.config.task == "mnist" else {},
        "plots": [str(p.relative_to(out)) for p in written],
    }
    written.append(write_json(out / "report.json", report))
    written.append(write_text(out / "report.md", render_markdown(report)))
    return written


def _feature_examples(build, class_names: list[str], path: Path, per_kind: int = 4) -> Path:
    """The first few correctly and wrongly classified test inputs (host int8 predictions), as
    the feature maps the model sees: what a confusion looks like, not only how often."""
    import numpy as np

    d = build.dataset
    predicted = np.load(build.out / "host_int8_outputs.npy").argmax(axis=1)
    right = np.flatnonzero(predicted == d.y_test)[:per_kind]
    wrong = np.flatnonzero(predicted != d.y_test)[:per_kind]
    chosen = list(right) + list(wrong)
    titles = [
        f"#{i}: {class_names[d.y_test[i]]}"
        + ("" if predicted[i] == d.y_test[i] else f" -> {class_names[predicted[i]]}")
        for i in chosen
    ]
    return plots.feature_images(d.x_test[chosen][..., 0], titles, [predicted[i] != d.y_test[i] for i in chosen], path)


def _method_label(name: str, method: str) -> str | None:
    """The label of a model the build's distillation method adds (None: not one of them)."""
    from ..distill.methods import RECIPES

    recipe = RECIPES.get(method)
    return recipe.model_label(name) if recipe is not None else None


def model_label(name: str, method: str = "hinton") -> str:
    return _method_label(name, method) or MODEL_LABELS.get(name, name)


def _pipeline_order(method: str):
    """Sort key of the result names: the build's models in pipeline order, a method's models
    right after the teacher (numbered ones in their order, then what combines them)."""

    def key(name: str) -> float:
        teacher = list(MODEL_LABELS).index("teacher")
        if _method_label(name, method) is not None:
            number = name.lstrip("abcdefghijklmnopqrstuvwxyz")
            return teacher + (0.1 + 1e-3 * int(number) if number.isdigit() else 0.5)
        return list(MODEL_LABELS).index(name) if name in MODEL_LABELS else len(MODEL_LABELS)

    return key


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def render_markdown(report: dict) -> str:
    c = report["config"]
    results = report["results"]
    total = report["dataset"]["test"]
    lines = [
        f"# tinykd report: {c['task']} for {c['board']}",
        "",
        (
            f"Teacher loaded from `{c['teacher']['model']}`"
            if c["teacher"].get("model")
            else f"Teacher `{c['teacher']['arch']}`"
        )
        + f" ({report['model']['teacher_params']:,} parameters) distilled into "
        f"student `{c['student']['arch']}` ({report['model']['student_params']:,} parameters) with "
        f"`{c['distill']['method']}` at T = {c['distill']['temperature']:g}, alpha = {c['distill']['alpha']:g}; "
        f"QAT for {c['qat']['epochs']} epochs; int8 model {report['model']['tflite_bytes']:,} bytes. "
        f"Seed {c['seed']}.",
        "",
    ]
    by_accuracy = c["task"] != "mnist"  # MNIST results are quoted as errors of 10 000, KWS as accuracy
    if by_accuracy:
        lines += [f"## Test accuracy ({total} examples)", "", "| model | accuracy | errors |", "|---|---:|---:|"]
    else:
        lines += [f"## Test errors (of {total})", "", "| model | errors | accuracy |", "|---|---:|---:|"]
    method = c["distill"]["method"]
    for name in sorted(results, key=_pipeline_order(method)):
        r = results[name]
        cells = [f"{r['errors']}", f"{100 * r['accuracy']:.2f} %"]
        lines.append(f"| {model_label(name, method)} | {' | '.join(cells[::-1] if by_accuracy else cells)} |")
    kd_sentence = kd_verdict(results, total, by_accuracy)
    if report.get("specialists"):
        lines += [
            "",
            "Specialist teachers, one per group of classes the teacher confused most on validation data "
            "(errors on each one's own task: one of its classes, or the dustbin for any other):",
            "",
        ]
        lines += [
            f"- {{{', '.join(s['class_names'])}}}: {s['errors']} errors / {s['total']}" for s in report["specialists"]
        ]
    lines += [
        "",
        kd_sentence,
        f"int8 outputs that differ between LiteRT and TFLite Micro: **{report['int8_litert_vs_tflm_mismatches']}** "
        f"(largest difference {report['int8_litert_vs_tflm_max_difference']} quantisation step, "
        f"{report['int8_litert_vs_tflm_prediction_disagreements']} different predictions). LiteRT's built-in "
        "kernels round requantisation differently from TFLite Micro's reference kernels; the device is "
        "compared with TFLite Micro.",
        "",
    ]
    lines += _device_section(report.get("device"), report.get("firmware"))
    ref = report["reference"].get("hinton_2015_mnist_errors")
    if ref:
        lines += ["Hinton et al. (2015), MNIST, errors of 10 000, for comparison:", ""]
        lines += [f"- {k}: {v}" for k, v in ref.items()]
        lines.append("")
    lines += ["## Time per stage", "", "| stage | seconds |", "|---|---:|"]
    from ..pipeline import STAGES

    stages = sorted(report["stage_seconds"], key=lambda s: STAGES.index(s) if s in STAGES else len(STAGES))
    lines += [f"| {k} | {report['stage_seconds'][k]:.0f} |" for k in stages]
    lines.append(f"| **total** | **{sum(report['stage_seconds'].values()):.0f}** |")
    lines += ["", "## Plots", ""]
    lines += [f"![{Path(p).stem}]({p})" for p in report["plots"]]
    lines.append("")
    return "\n".join(lines)


def _latency_line(what: str, lat: dict) -> str:
    return f"{what}: {lat['mean']:,.0f} {lat['unit']} per inference (min {lat['min']:,}, max {lat['max']:,})" + (
        f", {lat['mean_ms']} ms at the board's clock." if "mean_ms" in lat else f". {lat.get('note', '')}"
    )


def _device_section(device: dict | None, firmware: dict | None) -> list[str]:
    lines: list[str] = []
    if device:
        n, dev, host = device["examples"], device["device"], device["host_int8"]
        lat = device["latency"]
        lines += [
            f"## On the device: {device['board']} ({device['where']})",
            "",
            "| measured on | errors | accuracy |",
            "|---|---:|---:|",
            f"| **device** | **{dev['errors']}** / {n} | **{100 * dev['accuracy']:.2f} %** |",
            f"| host int8 (TFLite Micro), same examples | {host['errors']} / {n} | {100 * host['accuracy']:.2f} % |",
            "",
            "Examples whose int8 output differs between device and host: "
            f"**{device['host_vs_device']['mismatches']}**. "
            f"Streaming took {device['seconds']:.0f} s.",
            "",
            _latency_line("Model", lat),
            "",
        ]
        if device.get("layer_profile"):
            from ..device.profile import profile_markdown

            lines += ["### Per layer (measured on the device)", "", *profile_markdown(device["layer_profile"])]
        if device.get("frontend_latency"):
            lines += [
                f"Input: {device['input']}. Feature vectors that differ between device and host: "
                f"**{device['feature_mismatches']}**.",
                "",
                _latency_line("Feature extractor (frontend)", device["frontend_latency"]),
                "",
            ]
    if firmware:
        lines += [
            "## Firmware",
            "",
            f"- Flash: {firmware['flash_used']:,} of {firmware['flash_budget']:,} B "
            f"(weights {firmware['weight_bytes']:,} B)",
            f"- RAM: {firmware['ram_used']:,} of {firmware['ram_budget']:,} B; tensor arena "
            f"{firmware['arena_bytes']:,} B "
            f"(all activation tensors together: {firmware['activations_total_bytes']:,} B)",
            f"- {firmware['params']:,} parameters, {firmware['macs']:,} multiply-accumulates per inference; "
            f"ops: {', '.join(dict.fromkeys(firmware['ops']))}",
            "",
        ]
    return lines


def kd_verdict(results: dict, total: int, by_accuracy: bool) -> str:
    """What distillation did, said plainly: better, worse (by how much, beside the baseline) or no change."""
    base, kd = results["baseline"]["errors"], results["student"]["errors"]
    gain = base - kd
    same = "the same student trained on labels alone (same epochs, same data)"
    if by_accuracy:
        points = f"{100 * abs(gain) / total:.2f} percentage points ({abs(gain)} examples of {total})"
        if gain > 0:
            return f"Distillation **helped**: the distilled student is {points} more accurate than {same}."
        if gain < 0:
            return (
                f"Distillation **did not help** on this data: the distilled student is {points} less accurate "
                f"than {same} ({100 * (1 - kd / total):.2f} % against {100 * (1 - base / total):.2f} %)."
            )
        return f"Distillation made **no difference**: the distilled student is exactly as accurate as {same}."
    if gain > 0:
        return f"Distillation **helped**: {kd} errors against {base} for {same}, {gain} fewer."
    if gain < 0:
        return (
            f"Distillation **did not help** on this data: the distilled student made {kd} errors, "
            f"{-gain} more than the {base} of {same}."
        )
    return f"Distillation made **no difference**: {kd} errors, as many as {same}."
