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


class Scoreboard:
    """The held-out sets' scoring of a run against its label: the totals and the per-seed tally
    behind the summary lines, and the verdict printed for each run and seed."""

    def __init__(self) -> None:
        self.totals = {"faulty": 0, "found": 0, "first": 0, "healthy": 0, "clean": 0}
        self.tally = SeedTally()

    def verdict(
        self,
        seed: int,
        expect: str | tuple[str, ...] | None,
        problems: list[str],
        causes: list[str],
        doubt: str = "",
    ) -> str:
        """Score one run: ``LABEL?`` (not counted) when its outcome contradicts its label,
        else clean / NOT CLEAN for a healthy label, found / first for a faulty one (any of
        the kinds ``expect`` names counts)."""
        if doubt:
            return f"LABEL? ({doubt})"
        kinds = (expect,) if isinstance(expect, str) else expect
        if kinds is None:
            ok = not problems
            self.totals["healthy"] += 1
            self.totals["clean"] += ok
            self.tally.healthy(seed, ok)
            return "clean" if ok else "NOT CLEAN"
        found = any(kind in problems for kind in kinds)
        first = bool(causes) and causes[0] in kinds
        self.totals["faulty"] += 1
        self.totals["found"] += found
        self.totals["first"] += first
        self.tally.faulty(seed, found)
        return f"found={'yes' if found else 'NO'} first={'yes' if first else 'NO'}"

    def summary(self) -> str:
        """The totals line and the worst seed's line."""
        t = self.totals
        return (
            f"\nfaulty: right kind {t['found']}/{t['faulty']}, root cause first "
            f"{t['first']}/{t['faulty']}; healthy clean {t['clean']}/{t['healthy']}\n"
            + self.tally.worst()
        )
