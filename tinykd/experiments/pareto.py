"""The Pareto front of (cost, accuracy) points: the models no other model beats on both."""

from __future__ import annotations

from collections.abc import Sequence


def pareto_front(costs: Sequence[float], accuracies: Sequence[float]) -> list[int]:
    """Indices of the points that no other point dominates (costs no more and is at least as
    accurate, better in one of the two), sorted by cost. Of exact duplicates the first is kept."""
    if len(costs) != len(accuracies):
        raise ValueError(f"{len(costs)} costs but {len(accuracies)} accuracies")
    # Cheapest first; among equal costs the most accurate first, then by position (stable).
    order = sorted(range(len(costs)), key=lambda i: (costs[i], -accuracies[i], i))
    front: list[int] = []
    best = float("-inf")
    for i in order:
        # Sorted by cost, a point is on the front exactly when it beats every cheaper point.
        if accuracies[i] > best:
            front.append(i)
            best = accuracies[i]
    return front
