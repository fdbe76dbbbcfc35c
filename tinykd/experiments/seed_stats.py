"""A sweep over seeds, summarised: each point's test errors as mean ± sd over the seeds (float
and int8), whether it beats its student's no-KD baseline by more than the seeds' spread, and its
difference from that baseline seed by seed (paired: the same seed's baseline), with a 95 %
confidence interval."""

from __future__ import annotations

import math
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
class PairedDifference:
    """A setting's test errors minus its no-KD baseline's, seed by seed, and a Student-t interval
    of their mean: whether the setting helps beyond the seeds' noise. In a sweep a seed fixes what
    both start from (the same initial weights and batches), so the differences vary less than
    either side does; where the two are seeded apart (whole builds) the pairing costs nothing but
    degrees of freedom and the test stays valid."""

    seeds: tuple[int, ...]
    differences: tuple[int, ...]
    level: float = 0.95

    @property
    def mean(self) -> float:
        return statistics.fmean(self.differences)

    @property
    def sd(self) -> float:
        return statistics.stdev(self.differences)

    def interval(self) -> tuple[float, float]:
        from scipy import stats

        n = len(self.differences)
        half = stats.t.ppf((1 + self.level) / 2, n - 1) * self.sd / math.sqrt(n)
        return self.mean - half, self.mean + half

    @property
    def verdict(self) -> str:
        """'fewer errors' / 'more errors' when the interval excludes 0, else 'no difference shown'."""
        low, high = self.interval()
        if high < 0:
            return "fewer errors"
        if low > 0:
            return "more errors"
        return "no difference shown"

    def text(self) -> str:
        low, high = self.interval()
        return f"{self.mean:+.1f} ± {self.sd:.1f} ({self.level:.0%} CI {low:+.1f} to {high:+.1f})"

    def to_dict(self) -> dict:
        low, high = self.interval()
        return {
            "seeds": list(self.seeds),
            "differences": list(self.differences),
            "mean": round(self.mean, 3),
            "sd": round(self.sd, 3),
            "level": self.level,
            "interval": [round(low, 3), round(high, 3)],
            "verdict": self.verdict,
        }


def paired(points: list[dict], baseline_by_seed: dict[int, int]) -> PairedDifference | None:
    """The points' differences from the baseline of their own seed; None with fewer than two pairs."""
    pairs = [(p["settings"]["seed"], p["test_errors"]) for p in points if p["settings"]["seed"] in baseline_by_seed]
    if len(pairs) < 2:
        return None
    return PairedDifference(tuple(s for s, _ in pairs), tuple(e - baseline_by_seed[s] for s, e in pairs))


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
    paired: PairedDifference | None = None  # float errors minus the same seed's baseline's

    def to_dict(self) -> dict:
        out = asdict(self)
        out["float_errors"] = self.float_errors.to_dict()
        out["int8_errors"] = self.int8_errors.to_dict() if self.int8_errors else None
        out["paired"] = self.paired.to_dict() if self.paired else None
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
    baseline_points = {key[0]: ps for key, ps in groups.items() if key[1] == "none"}
    out = []
    for (student, method, t, a), ps in groups.items():
        floats = Spread(tuple(p["test_errors"] for p in ps))
        int8 = Spread(tuple(p["int8"]["test_errors"] for p in ps)) if all(p["int8"] for p in ps) else None
        judged, pairs = "", None
        if method != "none" and student in baseline_points:
            base = baseline_points[student]
            judged = verdict(floats, Spread(tuple(p["test_errors"] for p in base)))
            pairs = paired(ps, {p["settings"]["seed"]: p["test_errors"] for p in base})
        seeds = tuple(p["settings"]["seed"] for p in ps)
        out.append(SettingOverSeeds(student, method, t, a, seeds, floats, int8, judged, pairs))
    return out
