"""`python benchmarks/methods_builds.py --task T --data-dir D --teacher-model M --out O`: the methods a
sweep cannot run (ensemble, specialists, online, self), over seeds, as whole builds.

`tinykd sweep --seeds` distils one student from one teacher per point; these methods need extra
teachers, peers or generations, which only a build trains (`--methods hinton` adds Hinton's, to
compare them with on the same baselines). So each (method, seed) here is one build,
through `tinykd.pipeline.Build` like `tinykd evaluate --host`, with the settings of the sweep in
benchmarks/methods.md: the teacher given (one for all), one validation split for every seed
(data_seed = 0), the student's epochs all run (patience 0, the last weights, as a sweep point),
and the KD student shipped into QAT and int8 whatever validation says (--ship kd), so that every
method has an int8 number. Every build also trains its no-KD baseline with the same seed: those
are the baseline's points (and a cross-check that they agree across methods).

Writes O/methods-builds.json (every build's results) and O/methods-builds.md (mean ± sd over the
seeds, float and int8, and the verdict against the baseline, as `sweep` does), plus
O/errors_over_seeds.png. Resumable: a finished build's stages are reused.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tinykd.config import resolve
from tinykd.experiments.seed_stats import over_seeds
from tinykd.experiments.sweep_report import paired_text
from tinykd.fileio import write_json, write_text
from tinykd.pipeline import Build
from tinykd.report import plots

# Each method at its own paper's setting where it has one (deep mutual learning and born-again
# networks: T = 1, alpha = 0.5), else Hinton's MNIST setting, as in the one-seed table.
METHOD_T_ALPHA = {
    "hinton": (20.0, 0.9),
    "ensemble": (20.0, 0.9),
    "specialists": (20.0, 0.9),
    "online": (1.0, 0.5),
    "self": (1.0, 0.5),
}


def build_config(args, method: str, seed: int):
    temperature, alpha = METHOD_T_ALPHA[method]
    return resolve(
        task=args.task,
        quick=args.quick,
        overrides={
            "seed": seed,
            "data_seed": 0,
            "data": {"dir": args.data_dir},
            "teacher": {"model": args.teacher_model},
            "student": {"arch": args.student, "epochs": args.epochs},
            "distill": {"method": method, "temperature": temperature, "alpha": alpha, "patience": 0, "ship": "kd"},
            "qat": {"epochs": args.qat_epochs},
        },
    )


def run_one(args, method: str, seed: int) -> dict:
    out = Path(args.out) / "builds" / f"{method}__s{seed}"
    build = Build(build_config(args, method, seed), out, log=lambda m: print(f"  {m}", flush=True))
    build.run("report")
    report = json.loads((out / "report.json").read_text())
    return {
        "method": method,
        "seed": seed,
        "temperature": report["distillation"]["temperature"],
        "alpha": report["distillation"]["alpha"],
        "results": {name: r["errors"] for name, r in report["results"].items()},
        "test_total": report["dataset"]["test"],
        "stage_seconds": report["stage_seconds"],
    }


def as_points(builds: list[dict], student: str) -> list[dict]:
    """The builds as sweep points (seed_stats.over_seeds' input): one baseline point per seed (the
    first build's of that seed), one KD point per build."""
    points, baseline_seeds = [], set()
    for b in builds:
        r = b["results"]
        if b["seed"] not in baseline_seeds:
            baseline_seeds.add(b["seed"])
            points.append(_point(student, "none", None, None, b["seed"], r["baseline"], None))
        points.append(
            _point(student, b["method"], b["temperature"], b["alpha"], b["seed"], r["student"], r["int8_tflm"])
        )
    return sorted(points, key=lambda p: p["method"] != "none")


def _point(student, method, temperature, alpha, seed, errors, int8_errors) -> dict:
    return {
        "student": student,
        "method": method,
        "temperature": temperature,
        "alpha": alpha,
        "settings": {"seed": seed},
        "test_errors": errors,
        "int8": None if int8_errors is None else {"test_errors": int8_errors},
    }


def baseline_disagreements(builds: list[dict]) -> list[str]:
    """Seeds whose builds trained baselines with different test errors (same seed, same data: they
    should be the same model)."""
    by_seed: dict[int, set[int]] = {}
    for b in builds:
        by_seed.setdefault(b["seed"], set()).add(b["results"]["baseline"])
    return [f"seed {s}: {sorted(v)}" for s, v in by_seed.items() if len(v) > 1]


def markdown(args, builds: list[dict], settings) -> str:
    total = builds[0]["test_total"]
    seeds = sorted({b["seed"] for b in builds})
    lines = [
        f"# Methods over seeds as whole builds: {args.task}, {args.data_dir}",
        "",
        f"Student `{args.student}`, {args.epochs} epochs + {args.qat_epochs} QAT epoch(s), teacher "
        f"`{args.teacher_model}`, seeds {', '.join(map(str, seeds))}, test errors of {total}.",
        "",
        "| method | T | α | float, per seed | **float mean ± sd** | int8 (TFLite Micro), per seed | "
        "**int8 mean ± sd** | vs no KD (float): spreads | paired difference (float) |",
        "|---|---:|---:|---|---|---|---|---|---|",
    ]
    for s in settings:
        kd = s.method != "none"
        lines.append(
            f"| {s.method if kd else 'none (no-KD baseline)'} | {s.temperature if kd else '—'} | "
            f"{s.alpha if kd else '—'} | {' / '.join(map(str, s.float_errors.values))} | {s.float_errors.text()} | "
            + (
                f"{' / '.join(map(str, s.int8_errors.values))} | {s.int8_errors.text()} | "
                if s.int8_errors
                else "— | — | "
            )
            + (f"{s.verdict} | {paired_text(s.paired.to_dict() if s.paired else None)}" if kd else "— | —")
            + " |"
        )
    mismatched = baseline_disagreements(builds)
    lines += [
        "",
        "Baselines of the same seed across builds: "
        + ("all the same." if not mismatched else "differ: " + "; ".join(mismatched)),
        "",
        "| build | teacher(s) and extra models (float test errors) | stage seconds |",
        "|---|---|---|",
    ]
    for b in builds:
        extra = {
            k: v
            for k, v in b["results"].items()
            if k not in ("baseline", "student", "student_qat", "int8_litert", "int8_tflm")
        }
        stages = ", ".join(f"{k} {v:.0f}" for k, v in b["stage_seconds"].items() if v >= 1)
        lines.append(f"| {b['method']} s{b['seed']} | {', '.join(f'{k} {v}' for k, v in extra.items())} | {stages} |")
    return "\n".join(lines) + "\n"


def _summarise(args, out: Path, builds: list[dict]):
    settings = over_seeds(as_points(builds, args.student))
    write_json(out / "methods-builds.json", {"builds": builds, "over_seeds": [s.to_dict() for s in settings]})
    write_text(out / "methods-builds.md", markdown(args, builds, settings))
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--task", default="mnist")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--teacher-model", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--methods", default="ensemble,specialists,online,self")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--student", default="mlp-300-300")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--qat-epochs", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="tiny data: a smoke run of the script")
    parser.add_argument("--summarise", action="store_true", help="only rewrite the summary of the builds done")
    args = parser.parse_args()
    args.data_dir = str(Path(args.data_dir).resolve())
    args.teacher_model = str(Path(args.teacher_model).resolve())
    methods = [] if args.summarise else args.methods.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out)
    # Builds of earlier runs into the same folder (other methods or seeds) stay in the summary.
    stored = out / "methods-builds.json"
    builds = json.loads(stored.read_text())["builds"] if stored.exists() else []
    for method in methods:
        for seed in seeds:
            print(f"== {method}, seed {seed}", flush=True)
            builds = [b for b in builds if (b["method"], b["seed"]) != (method, seed)] + [run_one(args, method, seed)]
            builds.sort(key=lambda b: (list(METHOD_T_ALPHA).index(b["method"]), b["seed"]))
            _summarise(args, out, builds)
    settings = _summarise(args, out, builds)
    rows = [(s.student, s.method, s.temperature, s.alpha, s.float_errors, s.int8_errors, s.verdict) for s in settings]
    seeds_done = ",".join(map(str, sorted({b["seed"] for b in builds})))
    title = f"{args.task}: methods over seeds {seeds_done} (whole builds)"
    plots.errors_over_seeds(rows, builds[0]["test_total"], title, out / "errors_over_seeds.png")


if __name__ == "__main__":
    main()
