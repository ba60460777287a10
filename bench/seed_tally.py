"""Per-seed tallies for the doctor benches: the goals are "at every seed", so the worst seed is
the figure a verdict needs, next to the totals. Also the held-out sets' shared check of a
healthy label against the run's own outcome."""

from __future__ import annotations

import math
from collections import defaultdict


class SeedTally:
    """Counts, per seed, faulty runs found and healthy runs clean."""

    def __init__(self) -> None:
        self.found: dict[int, list[int]] = defaultdict(lambda: [0, 0])  # seed -> [found, faulty]
        self.clean: dict[int, list[int]] = defaultdict(lambda: [0, 0])  # seed -> [clean, healthy]

    def faulty(self, seed: int, found: bool) -> None:
        self.found[seed][0] += found
        self.found[seed][1] += 1

    def healthy(self, seed: int, clean: bool) -> None:
        self.clean[seed][0] += clean
        self.clean[seed][1] += 1

    def worst(self) -> str:
        """One line: the worst seed's right-kind share and healthy-clean share."""

        def lowest(table: dict[int, list[int]], what: str) -> str:
            if not table:
                return f"{what}: none"
            seed, (ok, n) = min(table.items(), key=lambda item: (item[1][0] / item[1][1], item[0]))
            return f"{what} {ok}/{n} ({ok / n:.1%}) at seed {seed}"

        return (
            "worst seed: "
            + lowest(self.found, "right kind")
            + "; "
            + lowest(self.clean, "healthy clean")
        )


def healthy_label_doubt(
    scores: list[float], train_score: float, base: float, n: int, *, regression: bool
) -> str:
    """Why a run labelled healthy is not ("" when nothing contradicts the label): its last
    validation score more than 2 standard errors below the quick baseline, or a train-val gap
    of ten points, or a clear gap while validation has fallen from its best (overfitting)."""
    last = scores[-1]
    se = math.sqrt(max(last * (1 - last), 0.01) / n) if not regression else 0.01
    if math.isfinite(base) and last < base - 2 * se:
        return f"below the baseline {base:.3f}"
    gap, fall = train_score - last, max(scores) - last
    if gap > 0.10 or (gap > 3 * se + 0.02 and fall > 2 * se):
        return f"train-val gap {gap:.3f}, {fall:.3f} below its best"
    return ""
