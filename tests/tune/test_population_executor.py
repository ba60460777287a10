"""``tune.executor: population``: a study's trials trained as vectorised populations."""

from __future__ import annotations

import json

import pytest
import yaml

from tunelab.cli import main
from tunelab.models import load_model
from tunelab.rundir import RunDir
from tunelab.tune import run_study
from tunelab.tune._executor import make_executor
from tunelab.tune._population import PopulationExecutor, auto_population

from .conftest import tiny_config


def population_config(root, name="pop", *, trials=10, k=4, pruner="none", **train):
    train = {
        "epochs": 3,
        "batch_size": 32,
        "tensorboard": False,
        "early_stopping": {"enabled": False},
        "lr": {"low": 1e-3, "high": 1e-1, "log": True},
        **train,
    }
    tune = {
        "trials": trials,
        "progress": "none",
        "heartbeat_interval": 0,
        "executor": "population",
        "population": k,
        "pruner": pruner,
    }
    return tiny_config(root, name=name, train=train, tune=tune)


def test_make_executor_builds_the_population_executor():
    from tunelab.config import TuneConfig

    executor = make_executor(TuneConfig(executor="population", population=8))
    assert isinstance(executor, PopulationExecutor) and executor.population == 8
    assert auto_population(10_000, "cpu") == 16 and auto_population(10_000, "cuda:0") == 64
    assert auto_population(500_000, "cpu") == 8 and auto_population(5_000_000, "cpu") == 4


def test_every_trial_is_recorded_refill_keeps_the_population_full(tmp_path):
    result = run_study(population_config(tmp_path, trials=9, k=3))
    assert len(result.trials) == 9 and result.count("complete") == 9
    run = RunDir(tmp_path / "runs" / "pop")
    for t in result.trials:
        assert t.user_attrs["epochs"] == 3 and t.user_attrs["status"] == "completed"
        assert t.user_attrs["metrics"]["best_epoch"] is not None
        trial = run.trial(t.number)
        rows = [json.loads(line) for line in trial.metrics.read_text().splitlines()]
        assert [r["epoch"] for r in rows] == [1, 2, 3]
        assert json.loads(trial.result.read_text())["status"] == "completed"
        loaded = load_model(trial.best_model)
        assert loaded.spec.builder == "mlp"
        # the told value is the best epoch's val_loss (the monitor)
        best = t.user_attrs["metrics"]
        assert t.values[0] == pytest.approx(best["val_loss"])
    assert result.best_dir is not None and run.best_model.is_dir()
    assert run.best_config.is_file()
    assert "lr" in yaml.safe_load(run.best_config.read_text())["train"]


def test_asha_prunes_members(tmp_path):
    cfg = population_config(tmp_path, trials=12, k=4, pruner="asha", epochs=6)
    result = run_study(cfg)
    assert len(result.trials) == 12
    assert result.count("pruned") >= 1 and result.count("complete") >= 1
    pruned = [t for t in result.trials if t.state == "pruned"]
    assert all(t.user_attrs["epochs"] < 6 for t in pruned)
    assert all("pruned at epoch" in t.user_attrs["reason"] for t in pruned)


def test_a_nan_member_is_recorded_sick_and_spares_the_others(tmp_path):
    cfg = population_config(
        tmp_path, trials=3, k=3, optimizer="sgd", lr={"choice": [0.01, 0.05, 1.0e12]}
    )
    cfg["tune"]["sampler"] = "grid"
    result = run_study(cfg)
    by_lr = {t.params["train.lr"]: t for t in result.trials}
    sick = by_lr[1.0e12]
    assert sick.state == "pruned" and sick.user_attrs["sick"] is True
    assert sick.user_attrs["findings"] and sick.user_attrs["findings"][0]["severity"] == "error"
    assert sick.user_attrs["status"] in ("nan", "diverged")
    for lr in (0.01, 0.05):
        assert by_lr[lr].state == "complete" and by_lr[lr].user_attrs["epochs"] == 3


def test_the_cli_tunes_and_compress_loads_the_best(tmp_path, capsys):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(population_config(tmp_path, name="popcli", trials=6, k=3)))
    with pytest.raises(SystemExit) as done:
        main(["tune", str(path), "--progress", "plain"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.count("complete  value=") == 6
    run = tmp_path / "runs" / "popcli"
    with pytest.raises(SystemExit) as done:
        main(["compress", str(run), "--methods", "quantize"])
    assert done.value.code == 0
    assert RunDir(run).compressed_table.is_file()


def test_unsupported_settings_fall_back_with_one_notice(tmp_path, capsys):
    cfg = population_config(tmp_path, name="fallback", trials=3, k=3, accumulate_steps=2)
    result = run_study(cfg)
    assert result.count("complete") == 3
    out = capsys.readouterr().out
    assert out.count("population: gradient accumulation") == 1
    assert "these trials run one at a time" in out
    assert RunDir(tmp_path / "runs" / "fallback").best_model.is_dir()


def test_cross_validation_falls_back_to_the_local_executor(tmp_path, capsys):
    cfg = population_config(tmp_path, name="cv", trials=2, k=2, epochs=2)
    cfg["tune"]["cv"] = {"folds": 2}
    result = run_study(cfg)
    assert result.count("complete") == 2
    assert "population: cross-validation" in capsys.readouterr().out


def test_two_workers_share_a_population_study(tmp_path):
    # The helper runs its share through the local loop (see the module doc of _population.py);
    # whether it starts in time to take trials depends on the machine, so only the study is
    # checked: every trial recorded once, nothing left running.
    cfg = population_config(tmp_path, name="popw", trials=6, k=2, epochs=20)
    result = run_study(cfg, workers=2)
    assert len(result.trials) == 6
    assert result.count("complete") + result.count("pruned") == 6


def test_pbt_records_exploit_events_and_the_study_finishes(tmp_path):
    cfg = population_config(tmp_path, "pbt", trials=6, k=4, epochs=4)
    cfg["tune"]["pbt"] = {"interval": 1, "quantile": 0.25, "perturb": 0.2}
    result = run_study(cfg)
    assert result.count("complete") == 6
    events = [e for t in result.trials for e in t.user_attrs.get("pbt_history", [])]
    assert events, "no member copied another"
    numbers = {t.number for t in result.trials}
    for e in events:
        assert set(e) == {"epoch", "copied_from_trial", "lr", "weight_decay"}
        assert e["copied_from_trial"] in numbers and 1 <= e["epoch"] < 4 and e["lr"] > 0


def test_pbt_needs_the_population_executor():
    from pydantic import ValidationError

    from tunelab.config import TuneConfig

    with pytest.raises(ValidationError, match=r"tune\.executor: population"):
        TuneConfig(pbt={"interval": 2})
    assert TuneConfig(executor="population", pbt={"interval": 2}).pbt.quantile == 0.25
    with pytest.raises(ValidationError):
        TuneConfig(executor="population", pbt={"interval": 2, "quantile": 0.5})


def test_groups_are_compacted_and_trained_oldest_first(tmp_path, monkeypatch):
    """Members that end leave gaps; the highest running members move down into them (the
    population trains its slots up to the highest running one), and each turn trains the
    group of the oldest running trial."""
    from tunelab.train import Population

    moves, widths = [], []
    move, epoch = Population.move_member, Population.train_epoch

    def spy_move(self, src, dst):
        moves.append((src, dst))
        return move(self, src, dst)

    def spy_epoch(self):
        out = epoch(self)
        widths.append((self.last_width, len(out)))
        return out

    monkeypatch.setattr(Population, "move_member", spy_move)
    monkeypatch.setattr(Population, "train_epoch", spy_epoch)
    cfg = population_config(tmp_path, trials=6, k=4, epochs={"choice": [1, 4]})
    result = run_study(cfg)
    assert result.count("complete") == 6
    for t in result.trials:
        rows = RunDir(tmp_path / "runs" / "pop").trial(t.number).metrics.read_text().splitlines()
        assert len(rows) == t.params["train.epochs"]
    assert all(width == live for width, live in widths)  # no gap is ever trained
    assert moves  # this seed ends low slots first, with no trial left to refill them


def test_packing_pays_follows_the_measured_rule():
    from tunelab.tune._population import packing_pays

    # tabular-mlp's widths (64 inputs): 8 -> 32 pays at every depth and batch; 8 -> 128 at
    # depth 2 with small batches only; 16 -> 256 never (bench/population.py --packing)
    assert packing_pays(2_410 - 610, 128) and packing_pays(26_122 - 682, 16)
    assert not packing_pays(26_122 - 682, 128) and not packing_pays(150_794 - 1_754, 16)
    assert packing_pays(0, 128)


def packing_config(root, name, *, pack_widths):
    cfg = population_config(root, name, trials=12, k=4, epochs=2, optimizer="sgd", momentum=0.9)
    cfg["model"]["params"] = {
        "depth": 2,
        "width": {"choice": pack_widths},
        "dropout": {"low": 0.0, "high": 0.3},
    }
    return cfg


def test_narrow_trials_join_a_running_wider_group_and_save_their_own_width(tmp_path, monkeypatch):
    """A study searching width packs its narrower trials into running wider populations (the
    padding pays for these small MLPs); every trial still trains its own width, records its
    epochs and saves a model of its own width in best/, which export loads and checks; with
    packing off, none is packed."""
    from tunelab.deploy._export import export_run
    from tunelab.train import Population

    packed, placed = [], []  # (group width, own width) of packed members; packed or not, in order
    replace = Population.replace_member

    def spy(self, k, settings, seed, model_params=None):
        member = replace(self, k, settings, seed, model_params)
        placed.append(member.model_params is not None)
        if member.model_params is not None:
            packed.append((self.spec.params["width"], member.model_params["width"]))
        return member

    monkeypatch.setattr(Population, "replace_member", spy)
    result = run_study(packing_config(tmp_path, "packed", pack_widths=[4, 8, 16]))
    assert result.count("complete") == 12
    assert packed and all(own < wide for wide, own in packed)
    run = RunDir(tmp_path / "runs" / "packed")
    for t in result.trials:
        trial = run.trial(t.number)
        assert len(trial.metrics.read_text().splitlines()) == 2
        loaded = load_model(trial.best_model)
        width = t.params["model.params.width"]
        assert loaded.spec.params["width"] == width
        assert loaded.model.body[1].weight.shape[0] == width
        saved = json.loads(trial.result.read_text())
        assert saved["model"]["params"]["width"] == width
    # trials are placed in the order they are asked: the first packed one exports
    number = placed.index(True)
    (exported,) = export_run(run.trial(number).path, ["torchscript"])
    assert exported.parity.passed

    packed.clear()
    monkeypatch.setattr(PopulationExecutor, "pack", False)
    result = run_study(packing_config(tmp_path, "separate", pack_widths=[4, 8, 16]))
    assert result.count("complete") == 12 and not packed


def _assert_pbt_copies_only_within(result, param: str, trials: int = 8) -> None:
    """Every trial completed, PBT copied at least once, and only between equal ``param``."""
    assert result.count("complete") == trials
    value = {t.number: t.params[param] for t in result.trials}
    events = [(t.number, e) for t in result.trials for e in t.user_attrs.get("pbt_history", [])]
    assert events
    for number, e in events:
        assert value[e["copied_from_trial"]] == value[number]


def test_pbt_in_a_packed_group_copies_only_between_equal_widths(tmp_path):
    cfg = packing_config(tmp_path, "pbt-packed", pack_widths=[4, 16])
    cfg["train"]["epochs"] = 4
    cfg["tune"].update(trials=8, pbt={"interval": 1, "quantile": 0.4, "perturb": 0.2})
    _assert_pbt_copies_only_within(run_study(cfg), "model.params.width")


def test_pbt_in_a_mixed_group_copies_only_between_equal_optimisers(tmp_path):
    """A member's optimiser state is its own optimiser's: PBT never copies across kinds."""
    cfg = population_config(
        tmp_path, "pbt-mixed", trials=8, k=6, epochs=4, optimizer={"choice": ["sgd", "adam"]}
    )
    cfg["tune"].update(sampler="random", pbt={"interval": 1, "quantile": 0.4, "perturb": 0.2})
    _assert_pbt_copies_only_within(run_study(cfg), "train.optimizer")


@pytest.mark.parametrize("mix", [True, False])
def test_a_trial_packs_only_with_its_own_batch_size_and_depth(tmp_path, monkeypatch, mix):
    """Packing relaxes the width only: a trial joins a population of its own batch size and
    depth (its group key without the width); a study that searches the optimiser mixes
    optimisers in one population (each member keeps its own), unless ``mix_optimizers`` is off."""
    from tunelab.train import Population

    monkeypatch.setattr(PopulationExecutor, "mix_optimizers", mix)
    placed = []  # (population batch size, optimiser, depth, own width), in trial order
    kinds = set()  # the populations' optimiser kinds
    replace = Population.replace_member

    def spy(self, k, settings, seed, model_params=None):
        member = replace(self, k, settings, seed, model_params)
        params = self.spec.params
        own = member.model_params or params
        kinds.add(self.optimizer.kind)
        placed.append((self.batch_size, settings.optimizer, params["depth"], own["width"]))
        if not mix:
            assert self.optimizer.kind == settings.optimizer
        return member

    monkeypatch.setattr(Population, "replace_member", spy)
    cfg = packing_config(tmp_path, "keys", pack_widths=[4, 8, 16])
    cfg["model"]["params"]["depth"] = {"choice": [1, 2]}
    cfg["train"].update(batch_size={"choice": [16, 32]}, optimizer={"choice": ["sgd", "adam"]})
    cfg["train"]["epochs"] = 1
    cfg["tune"].update(trials=16, sampler="random")
    result = run_study(cfg)
    assert result.count("complete") == 16
    trials = sorted(result.trials, key=lambda t: t.number)
    wanted = [
        (
            t.params["train.batch_size"],
            t.params["train.optimizer"],
            t.params["model.params.depth"],
            t.params["model.params.width"],
        )
        for t in trials
    ]
    assert placed == wanted
    assert kinds == ({"mixed"} if mix else {"sgd", "adam"})


def test_trials_of_different_optimisers_share_one_population(tmp_path, monkeypatch):
    """Same shape and batch size, optimiser searched: every trial trains in one population,
    and each member's result is its own optimiser's (the best val loss differs by kind)."""
    from tunelab.train import Population

    populations = []
    replace = Population.replace_member

    def spy(self, k, settings, seed, model_params=None):
        populations.append(id(self))
        return replace(self, k, settings, seed, model_params)

    monkeypatch.setattr(Population, "replace_member", spy)
    cfg = population_config(
        tmp_path,
        trials=6,
        k=6,
        optimizer={"choice": ["sgd", "adam", "rmsprop", "adamw"]},
        lr=0.01,
        momentum=0.9,
    )
    cfg["tune"]["sampler"] = "random"
    result = run_study(cfg)
    assert result.count("complete") == 6
    assert len(set(populations)) == 1
    assert len({t.params["train.optimizer"] for t in result.trials}) >= 2


def test_a_wider_trial_widens_a_running_narrower_group(tmp_path, monkeypatch):
    """A trial wider than every running group starts its own and takes in the narrower
    group's running members (adopt_member); they finish their epochs and save their own
    width."""
    from tunelab.train import Population

    adopted = []
    adopt = Population.adopt_member

    def spy(self, source, src, dst):
        member = adopt(self, source, src, dst)
        adopted.append((source.spec.params["width"], self.spec.params["width"]))
        return member

    monkeypatch.setattr(Population, "adopt_member", spy)
    cfg = packing_config(tmp_path, "widen", pack_widths=[4, 16])
    cfg["seed"] = 2  # its first three trials are 4 wide, the fourth 16
    cfg["train"]["epochs"] = 3
    cfg["tune"].update(trials=10, sampler="random")
    result = run_study(cfg)
    assert result.count("complete") == 10
    assert adopted and all(narrow < wide for narrow, wide in adopted)
    run = RunDir(tmp_path / "runs" / "widen")
    for t in result.trials:
        trial = run.trial(t.number)
        assert len(trial.metrics.read_text().splitlines()) == 3
        assert load_model(trial.best_model).spec.params["width"] == t.params["model.params.width"]
