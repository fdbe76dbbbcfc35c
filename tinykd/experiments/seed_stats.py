"""A sweep over seeds, summarised: each point's test errors as mean ± sd over the seeds (float
and int8), and whether it beats its student's no-KD baseline by more than the seeds' spread."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Spread:
    """Test errors of one setting over seeds."""

    values: tuple[int, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def sd(self) -> float:
        # Sample standard deviation (n - 1): the seeds are a sample of the ones a user might pick.
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    def text(self) -> str:
        return f"{self.mean:.1f} ± {self.sd:.1f}"

    def to_dict(self) -> dict:
        return {"values": list(self.values), "mean": round(self.mean, 3), "sd": round(self.sd, 3)}


@dataclass(frozen=True)
class SettingOverSeeds:
    student: str
    method: str  # "none": the no-KD baseline
    temperature: float | None
    alpha: float | None
    seeds: tuple[int, ...]
    float_errors: Spread
    int8_errors: Spread | None
    verdict: str  # against the baseline: "better", "worse", "within spread" ("" for a baseline)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["float_errors"] = self.float_errors.to_dict()
        out["int8_errors"] = self.int8_errors.to_dict() if self.int8_errors else None
        return out


def verdict(setting: Spread, baseline: Spread) -> str:
    """'better' when the setting's mean + sd is below the baseline's mean - sd (their ±1 sd ranges
    do not overlap), 'worse' the other way round, else 'within spread'."""
    if setting.mean + setting.sd < baseline.mean - baseline.sd:
        return "better"
    if setting.mean - setting.sd > baseline.mean + baseline.sd:
        return "worse"
    return "within spread"


def over_seeds(points: list[dict]) -> list[SettingOverSeeds]:
    """Group a sweep's points by everything but the seed, in the grid's order. KD settings are
    judged on float test errors against their student's baseline (float: the baselines are not
    quantised)."""
    groups: dict[tuple, list[dict]] = {}
    for p in points:
        kd = p["method"] != "none"
        key = (p["student"], p["method"], p["temperature"] if kd else None, p["alpha"] if kd else None)
        groups.setdefault(key, []).append(p)
    baselines = {key[0]: Spread(tuple(p["test_errors"] for p in ps)) for key, ps in groups.items() if key[1] == "none"}
    out = []
    for (student, method, t, a), ps in groups.items():
        floats = Spread(tuple(p["test_errors"] for p in ps))
        int8 = Spread(tuple(p["int8"]["test_errors"] for p in ps)) if all(p["int8"] for p in ps) else None
        base = baselines.get(student)
        judged = verdict(floats, base) if method != "none" and base is not None else ""
        seeds = tuple(p["settings"]["seed"] for p in ps)
        out.append(SettingOverSeeds(student, method, t, a, seeds, floats, int8, judged))
    return out
