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
    distillation = _read_json(out / "distillation.json")
    if distillation:
        distillation = _distillation_summary(distillation, models, evaluation["test_examples"])
        search = distillation["choice"]
        if search.get("searched"):
            written.append(
                plots.kd_search(
                    search["points"],
                    (search["temperature"], search["alpha"]),
                    distillation["models"]["baseline"]["val_errors"],
                    search["val_examples"],
                    plot_dir / "kd_search.png",
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
        # T and alpha as chosen (on validation for "auto"), the search, and the model shipped
        "distillation": distillation,
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


def _distillation_summary(record: dict, models: dict, total: int) -> dict:
    """distillation.json with the test errors beside the validation errors the choice was made on."""
    shipped, other = record["shipped"], "baseline" if record["shipped"] == "student" else "student"
    m = record["models"]
    return {
        **record,
        "not_shipped": other,
        "kd_helped_on_validation": m["student"]["val_errors"] < m["baseline"]["val_errors"],
        "won_on_validation_errors": m[other]["val_errors"] - m[shipped]["val_errors"],
        "won_on_test_errors": models[other]["errors"] - models[shipped]["errors"],
        "test": {name: models[name]["errors"] for name in ("baseline", "student")},
        "test_total": total,
    }


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


def _shipped_labels(report: dict) -> dict[str, str]:
    """The QAT and int8 rows say which model they came from when the baseline was shipped."""
    kd = report.get("distillation")
    if not kd or kd["shipped"] != "baseline":
        return {}
    return {
        "student_qat": "baseline (no KD) + QAT (fake-quant float), shipped",
        "int8_litert": "shipped int8, from the baseline (LiteRT)",
        "int8_tflm": "shipped int8, from the baseline (TFLite Micro)",
    }


def _t_alpha(report: dict) -> str:
    c, kd = report["config"]["distill"], report.get("distillation")
    if not kd:  # no distill stage record (a report of a build made elsewhere): the configuration

        def value(v) -> str:
            return f"{v:g}" if isinstance(v, int | float) else str(v)

        return f"T = {value(c['temperature'])}, alpha = {value(c['alpha'])}"
    how = "chosen on validation" if kd["choice"].get("searched") else "as configured"
    return f"T = {kd['temperature']:g}, alpha = {kd['alpha']:g} ({how})"


def render_markdown(report: dict) -> str:
    c = report["config"]
    results = report["results"]
    total = report["dataset"]["test"]
    labels = _shipped_labels(report)
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
        f"`{c['distill']['method']}` at {_t_alpha(report)}; "
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
        label = labels.get(name) or model_label(name, method)
        lines.append(f"| {label} | {' | '.join(cells[::-1] if by_accuracy else cells)} |")
    # With the choice made on validation (distillation.json), this is what test data say of it.
    kd_sentence = kd_verdict(results, total, by_accuracy, on_test=bool(report.get("distillation")))
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
    if report.get("distillation"):
        lines += distillation_section(report["distillation"], by_accuracy)
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
    """Cycles (hardware) with milliseconds at the board's clock; QEMU's instructions labelled as
    such, with the milliseconds they would take at one cycle each (a lower bound)."""
    line = f"{what}: {lat['mean']:,.0f} {lat['unit']} per inference (min {lat['min']:,}, max {lat['max']:,})"
    if "mean_ms" in lat:
        return line + f", {lat['mean_ms']} ms at the board's clock."
    bound = f", at least {lat['lower_bound_ms']} ms at the board's clock" if "lower_bound_ms" in lat else ""
    return line + f"{bound}. {lat.get('note', '')}"


def _device_section(device: dict | None, firmware: dict | None) -> list[str]:
    lines: list[str] = []
    if device:
        n, dev, host = device["examples"], device["device"], device["host_int8"]
        lat = device["latency"]
        lines += [
            f"## On the device: {device['board']}"
            + (f", emulated on QEMU {device['emulated_on']}" if device.get("emulated_on") else "")
            + f" ({device['where']})",
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


def kd_verdict(results: dict, total: int, by_accuracy: bool, on_test: bool = False) -> str:
    """What distillation did, said plainly: better, worse (by how much, beside the baseline) or no
    change; `on_test` says that these are the test set's numbers (the build chose on validation)."""
    text = _kd_verdict(results, total, by_accuracy)
    return f"On the test set: {text[0].lower()}{text[1:]}" if on_test else text


def _kd_verdict(results: dict, total: int, by_accuracy: bool) -> str:
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


def distillation_section(kd: dict, by_accuracy: bool) -> list[str]:
    """The T/alpha search (a table of validation errors, T by alpha), the early stopping, and
    which model was shipped, by how much it won on validation and on test."""
    choice = kd["choice"]
    lines = ["## Distillation: T and alpha, and the model shipped", ""]
    if choice.get("searched"):
        points = {(p["temperature"], p["alpha"]): p for p in choice["points"]}
        chosen = (choice["temperature"], choice["alpha"])
        lines += [
            f"T and alpha were chosen on the validation split: each point distilled for {choice['epochs']} "
            f"epoch(s) on {choice['train_examples']:,} training examples from the same initial weights, its "
            f"float errors counted on {choice['val_examples']:,} validation examples (fewest errors wins, then "
            "the lower validation loss). The test set played no part.",
            "",
            "| T \\ alpha | " + " | ".join(f"{a:g}" for a in choice["alphas"]) + " |",
            "|---:|" + "---:|" * len(choice["alphas"]),
        ]
        for t in choice["temperatures"]:
            cells = []
            for a in choice["alphas"]:
                errors = points[(t, a)]["val_errors"]
                cells.append(f"**{errors}** (chosen)" if (t, a) == chosen else f"{errors}")
            lines.append(f"| {t:g} | " + " | ".join(cells) + " |")
        lines += ["", f"Chosen: **T = {chosen[0]:g}, alpha = {chosen[1]:g}** (plot: plots/kd_search.png).", ""]
    else:
        lines += [f"T = {kd['temperature']:g}, alpha = {kd['alpha']:g}: {choice.get('reason', 'as configured')}.", ""]
    m = kd["models"]
    for name, what in (("baseline", "No-KD baseline"), ("student", "KD student")):
        r = m[name]
        if r.get("best_epoch"):
            stop = "stopped early" if r["epochs_run"] < kd["max_epochs"] else "ran every epoch"
            lines.append(
                f"- {what}: best validation epoch {r['best_epoch']} of {r['epochs_run']} trained "
                f"(at most {kd['max_epochs']}, patience {kd['patience']}; {stop}), its weights kept; "
                f"{r['val_errors']} validation errors of {r['val_total']}."
            )
        else:
            lines.append(f"- {what}: {r['val_errors']} validation errors of {r['val_total']}.")
    lines.append("")
    test, total = kd["test"], kd["test_total"]
    v_kd, v_base = m["student"]["val_errors"], m["baseline"]["val_errors"]

    def test_words(name: str) -> str:
        return f"{100 * (1 - test[name] / total):.2f} %" if by_accuracy else f"{test[name]} errors"

    if kd.get("ship", "better") != "better":
        what = {"student": "the KD student", "baseline": "the no-KD baseline"}
        shipped, other = kd["shipped"], kd["not_shipped"]
        verdict = (
            "distillation helped on validation"
            if v_kd < v_base
            else "distillation did not help on validation" + (" (a tie)" if v_kd == v_base else "")
        )
        lines.append(
            f"**Shipped: {what[shipped]}, as asked ([distill] ship = {kd['ship']}), not chosen on validation.** "
            f"Validation errors: KD student {v_kd}, no-KD baseline {v_base} ({verdict}). On test {what[shipped]} has "
            f"{test_words(shipped)} and {what[other]} {test_words(other)}."
        )
    elif kd["shipped"] == "student":
        lines.append(
            f"**Shipped: the KD student.** It won on validation by {v_base - v_kd} errors ({v_kd} against "
            f"{v_base} for the no-KD baseline), and on test it has {test_words('student')} against "
            f"{test_words('baseline')}"
            + (
                f" ({kd['won_on_test_errors']} fewer errors)."
                if kd["won_on_test_errors"] > 0
                else f" (on test it is {-kd['won_on_test_errors']} errors worse: the validation margin did not hold)."
                if kd["won_on_test_errors"] < 0
                else " (the same on test)."
            )
        )
    else:
        margin = f"{v_kd - v_base} more" if v_kd > v_base else "as many"
        lines.append(
            f"**Shipped: the no-KD baseline. Distillation did not help on this data:** the KD student made "
            f"{v_kd} validation errors, {margin} than the baseline's {v_base}, so the baseline was carried into "
            f"QAT, int8 and the firmware. On test the baseline has {test_words('baseline')} and the KD student "
            f"{test_words('student')}"
            + (
                f" (the baseline {kd['won_on_test_errors']} fewer errors)."
                if kd["won_on_test_errors"] > 0
                else f" (there the KD student would have made {-kd['won_on_test_errors']} fewer errors)."
                if kd["won_on_test_errors"] < 0
                else " (the same on test)."
            )
        )
    lines.append("")
    return lines
