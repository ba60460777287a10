"""``tunelab doctor --fix``: faulty configs are diagnosed, repaired, and the repair is written."""

from __future__ import annotations

import json

import pytest
import yaml

from tunelab.cli import main
from tunelab.config import load_config, parse_config
from tunelab.diagnose._repair import diagnose_config

from .fix_zoo import FIX_CASES as ALL_FIX_CASES

FIX_CASES = [c for c in ALL_FIX_CASES if c.in_suite]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("doctor")
    out = {}
    for case in FIX_CASES:
        cfg = parse_config({**case.config, "run_root": str(root)})
        out[case.name] = diagnose_config(cfg, epochs=case.epochs, fix=True, rounds=3)
    return out


# Session 6: overfitting on a gap only just beyond its noise now needs validation to have
# worsened beyond its own sampling error; this config's first round (seed 0) no longer shows
# that, so it is not diagnosed (its target is still met). Kept visible for the lead to judge.
_NOT_DIAGNOSED = {"overfitting"}


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            c,
            marks=pytest.mark.xfail(strict=True, reason="borderline gap, validation at its best"),
        )
        if c.name in _NOT_DIAGNOSED
        else c
        for c in FIX_CASES
    ],
    ids=[c.name for c in FIX_CASES],
)
def test_faulty_config_is_diagnosed_with_its_kind(runs, case):
    first = runs[case.name].rounds[0]
    assert case.expect in {f.kind for f in first.problems}, [f.kind for f in first.findings]


def test_fix_repairs_at_least_80_percent_of_the_faulty_configs(runs):
    repaired = []
    for case in FIX_CASES:
        run = runs[case.name]
        last = run.final
        # Repaired = the returned config meets the target (a warning may remain).
        if last.value is not None and last.value >= case.metric_at_least:
            repaired.append(case.name)
    assert len(repaired) >= 0.8 * len(FIX_CASES), repaired


def test_fix_never_returns_a_config_worse_than_the_start(runs):
    for case in FIX_CASES:
        run = runs[case.name]
        start, best = run.rounds[0].value, run.best.value
        if start is not None:
            assert best is not None and best >= start, (case.name, start, best)
        assert run.config is not None and run.stopped_because


def test_one_cause_per_round_and_a_worse_change_is_reverted(runs):
    for case in FIX_CASES:
        run = runs[case.name]
        for r in run.rounds[1:]:
            assert r.treated and r.verdict.startswith(("kept", "reverted")), (case.name, r)
            if r.verdict.startswith("reverted"):
                assert r.round != run.best_round
    # Unscaled inputs: the root cause's prescription alone (scaling), not six changes.
    first_change = runs["unscaled"].rounds[1].changes
    assert first_change == {"data.scale": "standard"}, first_change


def test_out_of_memory_halves_the_batch_and_keeps_the_effective_batch(runs):
    run = runs["out_of_memory"]
    assert run.rounds[0].status == "oom"
    sizes = [
        (r.changes.get("train.batch_size"), r.changes.get("train.accumulate_steps"))
        for r in run.rounds[1:]
    ]
    assert sizes[0] == (64, 2)
    final = run.config.train
    assert final.batch_size * final.accumulate_steps == 128
    assert run.final.status == "completed"


def test_fix_rounds_and_repaired_config_are_written(runs):
    run = runs["diverging"]
    rounds = json.loads((run.directory / "fix_rounds.json").read_text())
    assert rounds["repaired"] is True
    first = {f["kind"]: f for f in rounds["rounds"][0]["findings"]}
    assert first["diverging_loss"]["severity"] == "error"
    # The learning rate comes from the LR range test, not a 10x step; it is lower, and kept.
    lr = rounds["rounds"][1]["changes"]["train.lr"]
    assert 0 < lr < 5.0 and rounds["rounds"][1]["treated"] == "diverging_loss"
    repaired = load_config(run.directory / "config.yaml")
    best = rounds["rounds"][rounds["best_round"]]
    assert repaired.train.lr == pytest.approx(best["changes"].get("train.lr", lr))
    # The user's own epochs and early stopping are kept; only the diagnostic runs change them.
    assert repaired.train.epochs == 20 and repaired.train.early_stopping.enabled
    assert (run.directory / "round_1" / "findings.json").is_file()


def test_cli_prints_the_findings_table(tmp_path, capsys):
    config = tmp_path / "exp.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "cli",
                "run_root": str(tmp_path / "runs"),
                "data": {"source": "sklearn", "dataset": "digits", "max_rows": 500},
                "model": {"builder": "mlp", "params": {"depth": 1, "width": 32}},
                "train": {"optimizer": "sgd", "lr": 1e-4, "momentum": 0.0},
            }
        )
    )
    with pytest.raises(SystemExit) as done:
        main(["doctor", str(config), "--epochs", "3"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "slow_convergence" in out and "warning" in out and "remedy" in out
    assert (tmp_path / "runs" / "cli" / "doctor" / "fix_rounds.json").is_file()


def test_cli_reports_a_bad_config_in_one_line(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("train: {lr: -1}\n")
    with pytest.raises(SystemExit) as done:
        main(["doctor", str(config)])
    assert done.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("config error: train.lr") and "\n" not in err


def test_a_repair_is_confirmed_in_full_and_never_worse_there(runs):
    # Rounds are short (4 epochs here); the user trains 20. Every repair was retrained in full
    # beside the config as given, and the one handed back is never the worse of the two.
    confirmed = 0
    for case in FIX_CASES:
        run = runs[case.name]
        c = run.confirmation
        if c is None:
            assert run.best_round == 0, case.name  # nothing repaired: nothing to confirm
            continue
        confirmed += 1
        assert c["epochs"] == 20
        if c["kept"]:
            assert c["start"] is None or c["returned"] >= c["start"], (case.name, c)
            assert run.best_round != 0 and "confirmed in full" in run.stopped_because
        else:
            assert run.best_round == 0 and run.config.train == parse_config(case.config).train
            assert "the config as given is returned" in run.stopped_because
        written = json.loads((run.directory / "fix_rounds.json").read_text())
        assert written["confirmation"] == c
        assert (run.directory / "confirm_start" / "metrics.jsonl").exists()
        assert (run.directory / "confirm_returned" / "metrics.jsonl").exists()
    assert confirmed >= len(FIX_CASES) // 2


def test_confirmation_can_be_turned_off(tmp_path):
    case = next(c for c in FIX_CASES if c.name == "diverging")
    cfg = parse_config({**case.config, "run_root": str(tmp_path), "diagnose": {"confirm": False}})
    run = diagnose_config(cfg, epochs=case.epochs, fix=True, rounds=2)
    assert run.best_round != 0 and run.confirmation is None
    assert not (run.directory / "confirm_start").exists()
