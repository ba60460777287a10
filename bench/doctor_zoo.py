"""The doctor's zoo at several seeds: does its judgement hold on runs nobody tuned it on?

For every case of ``tests/diagnose/zoo.py`` (faulty and healthy) and each seed (the model's
initialisation and the batch order change; the data split does not), prints whether the
expected kind was found, whether it was ranked the root cause (first of ``report.causes``), and
whether the healthy runs stayed clean. ``--fix`` also runs the repair zoo
(``tests/diagnose/fix_zoo.py``): the target per case and the "never worse" check on the
doctor's own (short) rounds. ``--retrain`` then trains the config ``--fix`` returned, and the
starting config, in full as ``tunelab train`` does (their own epochs and early stopping), and
checks the returned one against the target and against the starting one.

    PYTHONPATH=src python bench/doctor_zoo.py [--seeds 0 1 2] [--fix [--retrain]] [--only SUBSTRING]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seed_tally import SeedTally  # bench/ is the script's folder, so on sys.path
from tests.diagnose.zoo import FAULTY, HEALTHY, train


def diagnosis_zoo(seeds: list[int], only: str | None) -> dict[str, int]:
    totals = {"faulty": 0, "found": 0, "first": 0, "healthy": 0, "clean": 0}
    tally = SeedTally()
    for case in FAULTY + HEALTHY:
        if only and only not in case.name:
            continue
        for seed in seeds:
            torch.manual_seed(seed)
            t0 = time.perf_counter()
            out = train(case.build(), seed=seed)
            report = out.report
            causes = [f.kind for f in getattr(report, "causes", report.problems)]
            problems = [f.kind for f in report.problems]
            if case.expect is None:
                ok = not problems
                totals["healthy"] += 1
                totals["clean"] += ok
                tally.healthy(seed, ok)
                verdict = "clean" if ok else "NOT CLEAN"
            else:
                found = case.expect in problems
                first = bool(causes) and causes[0] == case.expect
                totals["faulty"] += 1
                totals["found"] += found
                totals["first"] += first
                tally.faulty(seed, found)
                verdict = f"found={'yes' if found else 'NO'} first={'yes' if first else 'NO'}"
            print(
                f"{case.name[:58]:58s} seed {seed}: {verdict:22s} causes={causes} "
                f"all={problems} val={out.val_score:.3f} ({time.perf_counter() - t0:.1f}s)",
                flush=True,
            )
    totals["worst"] = tally.worst()
    return totals


def trained_in_full(cfg, metric: str, directory: Path) -> float:
    """The best monitored validation value of ``cfg`` trained as ``tunelab train`` trains it."""
    from tunelab.train import run_training

    run = run_training(cfg, run_dir=directory)
    value = run.result.best_metrics.get(metric)
    return float(value) if value is not None else float("nan")


def fix_zoo(seeds: list[int], only: str | None, retrain: bool = False) -> dict[str, int]:
    from tests.diagnose.fix_zoo import FIX_CASES

    from tunelab.config import parse_config
    from tunelab.diagnose._repair import diagnose_config

    totals = {
        "cases": 0,
        "diagnosed": 0,
        "met": 0,
        "never_worse": 0,
        "full_met": 0,
        "full_never_worse": 0,
    }
    root = Path(tempfile.mkdtemp(prefix="doctor_zoo_"))
    for case in FIX_CASES:
        if only and only not in case.name:
            continue
        for seed in seeds:
            cfg = parse_config({**case.config, "run_root": str(root), "seed": seed})
            t0 = time.perf_counter()
            run = diagnose_config(
                cfg, epochs=case.epochs, fix=True, directory=root / f"{case.name}_{seed}"
            )
            first = run.rounds[0]
            best = run.best
            diagnosed = case.expect in {f.kind for f in first.problems}
            value = best.value if best.value is not None else float("nan")
            met = best.value is not None and best.value >= case.metric_at_least
            start = first.value if first.value is not None else -float("inf")
            never_worse = best.value is None or best.value >= start
            totals["cases"] += 1
            totals["diagnosed"] += diagnosed
            totals["met"] += met
            totals["never_worse"] += never_worse
            full = ""
            if retrain:
                # The returned config and the starting one, each trained in full.
                after = trained_in_full(run.config, first.metric, root / f"full_{case.name}_{seed}")
                before = trained_in_full(cfg, first.metric, root / f"start_{case.name}_{seed}")
                full_met = after >= case.metric_at_least
                full_never_worse = not after < before  # NaN before: nothing to be worse than
                totals["full_met"] += full_met
                totals["full_never_worse"] += full_never_worse
                full = (
                    f" | in full: {before:.3f} -> {after:.3f} met={'yes' if full_met else 'NO'} "
                    f"never_worse={'yes' if full_never_worse else 'NO'}"
                )
            print(
                f"fix {case.name:14s} seed {seed}: diagnosed={'yes' if diagnosed else 'NO'} "
                f"{first.metric} {start:.3f} -> {value:.3f} (target {case.metric_at_least}) "
                f"met={'yes' if met else 'NO'} never_worse={'yes' if never_worse else 'NO'} "
                f"rounds={len(run.rounds)} stopped: {run.stopped_because}{full} "
                f"({time.perf_counter() - t0:.1f}s)",
                flush=True,
            )
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fix", action="store_true", help="also run the repair zoo")
    parser.add_argument(
        "--retrain",
        action="store_true",
        help="with --fix: train returned and starting configs in full",
    )
    parser.add_argument("--no-diagnosis", action="store_true", help="only the repair zoo")
    parser.add_argument("--only", default=None, help="cases whose name contains this")
    args = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    if not args.no_diagnosis:
        t = diagnosis_zoo(args.seeds, args.only)
        print(
            f"\nfaulty runs: right kind found {t['found']}/{t['faulty']}, root cause ranked "
            f"first {t['first']}/{t['faulty']}; healthy runs clean {t['clean']}/{t['healthy']}"
        )
        print(t["worst"])
    if args.fix:
        t = fix_zoo(args.seeds, args.only, retrain=args.retrain)
        print(
            f"repair zoo: diagnosed {t['diagnosed']}/{t['cases']}, target met {t['met']}/"
            f"{t['cases']}, never worse {t['never_worse']}/{t['cases']}"
        )
        if args.retrain:
            print(
                f"trained in full: target met {t['full_met']}/{t['cases']}, not worse than the "
                f"starting config trained in full {t['full_never_worse']}/{t['cases']}"
            )
    print(f"seeds {args.seeds}; {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
