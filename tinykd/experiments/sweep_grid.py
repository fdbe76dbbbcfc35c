"""`tinykd sweep`'s grid: the temperatures x alphas x students x methods it trains, parsed from
the command line's comma-separated lists with a message naming any bad value."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import TinykdError
from .points import StudentSpec, searchable_methods


@dataclass(frozen=True)
class SweepGrid:
    temperatures: tuple[float, ...]
    alphas: tuple[float, ...]
    students: tuple[str, ...]
    methods: tuple[str, ...]
    # Student seeds (initial weights and batch order; the teacher is the build seed's): () trains
    # each point once with the build's seed, several give each point's mean and spread.
    seeds: tuple[int, ...] = ()

    def specs(self, baselines: bool) -> list[StudentSpec]:
        """Every point of the grid (each seed in turn), each student's no-KD baseline first when asked for."""
        specs = []
        for seed in self.seeds or (None,):
            for arch in self.students:
                if baselines:
                    specs.append(StudentSpec(arch, None, 1.0, 0.0, seed))
                specs += [
                    StudentSpec(arch, method, t, a, seed)
                    for method in self.methods
                    for a in self.alphas
                    for t in self.temperatures
                ]
        return specs

    def to_dict(self) -> dict:
        return {
            "temperatures": list(self.temperatures),
            "alphas": list(self.alphas),
            "students": list(self.students),
            "methods": list(self.methods),
            "seeds": list(self.seeds),
        }


def _items(option: str, text: str, example: str) -> list[str]:
    items = [s.strip() for s in str(text).split(",")]
    if not text or any(not s for s in items):
        raise TinykdError(
            f"{option} {text!r} has an empty entry. Give a comma-separated list without "
            f"blanks, e.g. {option} {example}."
        )
    return list(dict.fromkeys(items))  # repeats would train the same point twice


def _numbers(option: str, text: str, example: str) -> list[float]:
    values = []
    for item in _items(option, text, example):
        try:
            values.append(float(item))
        except ValueError:
            raise TinykdError(
                f"{option}: {item!r} is not a number. Give a comma-separated list of numbers, e.g. {option} {example}."
            ) from None
    return values


def parse_grid(temperatures: str, alphas: str, students: str, methods: str, seeds: str | None = None) -> SweepGrid:
    """The grid from the command line's comma-separated lists; TinykdError naming the bad value."""
    from ..models import check_model_name

    ts = _numbers("--temperatures", temperatures, "1,2,4,8,20")
    bad = [t for t in ts if not t > 0]
    if bad:
        raise TinykdError(
            f"--temperatures: every temperature must be > 0 (got {', '.join(f'{t:g}' for t in bad)}). "
            "Distillation divides the logits by T; Hinton et al. used 1-20, e.g. "
            "--temperatures 1,2,4,8,20."
        )
    al = _numbers("--alphas", alphas, "0.5,0.9")
    bad = [a for a in al if not 0.0 <= a <= 1.0]
    if bad:
        raise TinykdError(
            f"--alphas: alpha is the weight of the soft (teacher) loss and must be in [0, 1] "
            f"(got {', '.join(f'{a:g}' for a in bad)}). Try --alphas 0.5,0.9."
        )
    archs = _items("--students", students, "mlp-30-30,mlp-300-300")
    for arch in archs:
        try:
            check_model_name(arch)
        except TinykdError as exc:
            raise TinykdError(f"--students: {exc}") from None
    ms = _items("--methods", methods, "hinton,rkd")
    sweepable = searchable_methods()
    bad = [m for m in ms if m not in sweepable]
    if bad:
        raise TinykdError(
            f"--methods: {', '.join(bad)} cannot be swept; a sweep distils each student at each (T, alpha) "
            f"from models trained before it, which {', '.join(sweepable)} do. The others train peers or "
            "generations with the student: compare them with `tinykd build --method NAME`."
        )
    return SweepGrid(tuple(ts), tuple(al), tuple(archs), tuple(ms), _seeds(seeds))


def _seeds(text: str | None) -> tuple[int, ...]:
    if text is None:
        return ()
    seeds = []
    for item in _items("--seeds", text, "0,1,2"):
        try:
            seeds.append(int(item))
        except ValueError:
            raise TinykdError(
                f"--seeds: {item!r} is not a whole number. Give a comma-separated list of seeds, e.g. --seeds 0,1,2."
            ) from None
    bad = [s for s in seeds if s < 0]
    if bad:
        raise TinykdError(
            f"--seeds: seeds are whole numbers from 0 (got {', '.join(map(str, bad))}), e.g. --seeds 0,1,2."
        )
    return tuple(seeds)
