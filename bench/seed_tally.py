"""Per-seed tallies for the doctor benches: the goals are "at every seed", so the worst seed is
the figure a verdict needs, next to the totals."""

from __future__ import annotations

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
