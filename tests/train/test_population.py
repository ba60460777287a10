"""The vectorised population engine: each member computes what a single trial computes."""

from __future__ import annotations

import dataclasses
import math
import types

import pytest
import torch
import torch.nn as nn

from tunelab.config import ScheduleConfig, TrainConfig
from tunelab.data import DataBundle
from tunelab.models import ModelSpec, load_model, save_model
from tunelab.train import Trainer
from tunelab.train._population import (
    MemberSettings,
    Population,
    group_key,
    population_from_trials,
    supports,
)

TOL = 1e-5


@pytest.fixture(scope="module")
def digits(tiny_digits: DataBundle) -> DataBundle:
    return tiny_digits


@pytest.fixture(scope="module")
def digit_images(digits: DataBundle) -> DataBundle:
    return DataBundle.from_arrays(
        digits.X_train.reshape(-1, 1, 8, 8),
        digits.y_train,
        digits.X_val.reshape(-1, 1, 8, 8),
        digits.y_val,
    )


def mlp_spec(**params) -> ModelSpec:
    return ModelSpec("mlp", {"width": 16, **params}, input_shape=(64,), output_size=10)


def max_diff(a: nn.Module, b: nn.Module) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    assert [v.shape for v in sa.values()] == [v.shape for v in sb.values()]
    return max(
        (x.double() - y.double()).abs().max().item()
        for x, y in zip(sa.values(), sb.values(), strict=True)
    )


def reference(kind, s: MemberSettings, seed, bundle, *, spec, epochs, bs, nesterov=False):
    """One member trained alone with torch.optim, the same batch order and settings."""
    torch.manual_seed(seed)
    model = dataclasses.replace(spec, params={**spec.params, "dropout": 0.0}).build()
    params = list(model.parameters())
    common = {"lr": s.lr, "weight_decay": s.weight_decay, "foreach": False}
    if kind == "sgd":
        nesterov = nesterov and s.momentum > 0  # as the Trainer's build_optimizer
        opt = torch.optim.SGD(params, momentum=s.momentum, nesterov=nesterov, **common)
    elif kind in ("adam", "adamw"):
        cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
        opt = cls(params, betas=s.betas, eps=s.eps or 1e-8, **common)
    elif kind == "rmsprop":
        opt = torch.optim.RMSprop(params, alpha=s.alpha, eps=s.eps or 1e-8, **common)
    else:
        opt = torch.optim.Adagrad(params, eps=s.eps or 1e-10, **common)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=s.label_smoothing)
    gen = torch.Generator().manual_seed(seed)
    X, y = bundle.X_train, bundle.y_train
    for _ in range(epochs):
        order = torch.randperm(len(X), generator=gen)
        for i in range(0, len(X), bs):
            idx = order[i : i + bs]
            opt.zero_grad()
            loss = loss_fn(model(X[idx]), y[idx])
            if s.l1:
                loss = loss + s.l1 * sum(p.abs().sum() for p in params if p.ndim > 1)
            loss.backward()
            if s.clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(params, s.clip_grad_norm)
            elif s.clip_grad_value is not None:
                nn.utils.clip_grad_value_(params, s.clip_grad_value)
            opt.step()
    return model


def member_settings(kind: str) -> list[MemberSettings]:
    base = MemberSettings(epochs=2)
    r = dataclasses.replace
    if kind == "sgd":
        return [
            r(base, lr=0.05, momentum=0.0),
            r(base, lr=0.1, momentum=0.9, weight_decay=1e-3),
            r(base, lr=0.02, momentum=0.5, clip_grad_norm=0.5),
            r(base, lr=0.05, momentum=0.8, clip_grad_value=0.01, l1=1e-4),
        ]
    return [
        r(base, lr=1e-3),
        r(base, lr=3e-3, weight_decay=1e-2, betas=(0.8, 0.99), eps=1e-6, alpha=0.9),
        r(base, lr=2e-3, clip_grad_norm=0.3, label_smoothing=0.1),
        r(base, lr=5e-3, clip_grad_value=0.02, l1=1e-4, betas=(0.95, 0.9)),
    ]


@pytest.mark.parametrize(
    ("kind", "nesterov"),
    [
        ("sgd", False),
        ("sgd", True),
        ("adam", False),
        ("adamw", False),
        ("rmsprop", False),
        ("adagrad", False),
    ],
)
def test_optimiser_parity_per_member(digits, kind, nesterov):
    spec = mlp_spec()
    settings = member_settings(kind)
    pop = Population(spec, digits, len(settings), optimizer=kind, batch_size=32, nesterov=nesterov)
    for k, s in enumerate(settings):
        pop.replace_member(k, s, seed=10 + k)  # different seeds: different inits and batch orders
    pop.fit()
    for k, s in enumerate(settings):
        ref = reference(kind, s, 10 + k, digits, spec=spec, epochs=2, bs=32, nesterov=nesterov)
        assert max_diff(pop.member_module(k, best=False), ref) <= TOL, (kind, k)


def test_mixed_population_matches_each_members_own_optimiser(digits):
    """One population whose members use SGD (plain, momentum, Nesterov), Adam, AdamW, RMSprop
    and Adagrad: each member equals its own torch.optim run."""
    spec = mlp_spec()
    r = dataclasses.replace
    members = [
        ("sgd", False, r(member_settings("sgd")[1], optimizer="sgd")),
        ("sgd", True, r(member_settings("sgd")[2], optimizer="sgd", nesterov=True)),
        ("sgd", True, r(member_settings("sgd")[0], optimizer="sgd", nesterov=True)),  # mu 0
        ("adam", False, r(member_settings("adam")[1], optimizer="adam")),
        ("adamw", False, r(member_settings("adam")[1], optimizer="adamw")),
        ("rmsprop", False, r(member_settings("adam")[3], optimizer="rmsprop", weight_decay=1e-3)),
        ("adagrad", False, r(member_settings("adam")[2], optimizer="adagrad", lr=1e-2)),
        ("adam", False, r(member_settings("adam")[0], optimizer="adam")),
    ]
    pop = Population(spec, digits, len(members), optimizer="mixed", batch_size=32)
    for k, (_, _, s) in enumerate(members):
        pop.replace_member(k, s, seed=20 + k)
    pop.fit()
    for k, (kind, nesterov, s) in enumerate(members):
        ref = reference(kind, s, 20 + k, digits, spec=spec, epochs=2, bs=32, nesterov=nesterov)
        assert max_diff(pop.member_module(k, best=False), ref) <= TOL, (kind, k)


def test_mixed_population_needs_each_members_optimiser(digits):
    pop = Population(mlp_spec(), digits, 2, optimizer="mixed", batch_size=32)
    with pytest.raises(ValueError, match="needs each member's optimizer"):
        pop.replace_member(0, MemberSettings(epochs=1), seed=0)
    plain = Population(mlp_spec(), digits, 2, optimizer="adam", batch_size=32)
    with pytest.raises(ValueError, match="a sgd member in a adam population"):
        plain.replace_member(0, MemberSettings(epochs=1, optimizer="sgd"), seed=0)


def test_group_key_drops_the_optimiser_when_mixed():
    adam, sgd = TrainConfig(optimizer="adam"), TrainConfig(optimizer="sgd", nesterov=True)
    assert group_key(adam, {"width": 8}) != group_key(sgd, {"width": 8})
    assert group_key(adam, {"width": 8}, mixed=True) == group_key(sgd, {"width": 8}, mixed=True)
    assert group_key(adam, {"width": 8}, mixed=True) != group_key(
        TrainConfig(optimizer="sgd", batch_size=32), {"width": 8}, mixed=True
    )


def test_members_match_the_trainer_with_schedules(digits):
    """Population members end where the Trainer ends: init, batch order, fused Adam, per-member
    LR schedules, label smoothing, metrics."""
    spec = mlp_spec()
    base = TrainConfig(epochs=3, batch_size=32, progress="none", tensorboard=False)
    cfgs = [
        base.model_copy(
            update={"lr": 3e-3, "schedule": ScheduleConfig(name="cosine", warmup_epochs=1)}
        ),
        base.model_copy(
            update={"lr": 1e-2, "schedule": ScheduleConfig(name="step", step_size=1, gamma=0.5)}
        ),
        base.model_copy(update={"lr": 2e-3, "label_smoothing": 0.1, "weight_decay": 1e-3}),
    ]
    pop = population_from_trials(
        spec, digits, [(c, spec.params, 7 + k) for k, c in enumerate(cfgs)]
    )
    results = pop.fit()
    for k, cfg in enumerate(cfgs):
        torch.manual_seed(7 + k)
        model = spec.build()
        alone = Trainer(cfg, seed=7 + k).fit(model, digits)
        got = results[k]
        assert got.status == alone.status and got.best_epoch == alone.best_epoch
        for mine, theirs in zip(got.history, alone.history, strict=True):
            assert set(mine) == set(theirs)
            for key in ("train_loss", "val_loss", "val_accuracy", "val_f1_macro", "lr"):
                assert mine[key] == pytest.approx(theirs[key], abs=TOL), (k, key)
        assert max_diff(pop.member_module(k), model) <= TOL


@pytest.mark.parametrize("builder", ["mlp_bn", "cnn"])
def test_batch_norm_and_cnn_match_the_trainer(digits, digit_images, builder):
    if builder == "cnn":
        bundle = digit_images
        spec = ModelSpec(
            "cnn", {"channels": [4, 8], "hidden": 16}, input_shape=(1, 8, 8), output_size=10
        )
    else:
        bundle, spec = digits, mlp_spec(batch_norm=True)
    cfgs = [
        TrainConfig(epochs=2, batch_size=32, lr=lr, progress="none", tensorboard=False)
        for lr in (1e-3, 5e-3)
    ]
    pop = population_from_trials(spec, bundle, [(c, spec.params, k) for k, c in enumerate(cfgs)])
    results = pop.fit()
    for k, cfg in enumerate(cfgs):
        torch.manual_seed(k)
        model = spec.build()
        alone = Trainer(cfg, seed=k).fit(model, bundle)
        assert results[k].history[-1]["val_loss"] == pytest.approx(
            alone.history[-1]["val_loss"], abs=TOL
        )
        assert max_diff(pop.member_module(k, best=False), model) <= TOL  # incl. running stats


def test_regression_metrics_match_the_trainer():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(120, 5, generator=g)
    y = X @ torch.randn(5, generator=g) + 0.1 * torch.randn(120, generator=g)
    bundle = DataBundle.from_arrays(X[:90], y[:90], X[90:], y[90:], task="regression")
    spec = ModelSpec("mlp", {"width": 8}, input_shape=(5,), output_size=1, task="regression")
    cfg = TrainConfig(epochs=2, batch_size=16, lr=1e-2, progress="none", tensorboard=False)
    pop = population_from_trials(spec, bundle, [(cfg, {}, 3), (cfg, {}, 4)])
    got = pop.fit()[0]
    torch.manual_seed(3)
    alone = Trainer(cfg, seed=3).fit(spec.build(), bundle)
    for key in ("val_loss", "val_mse", "val_mae", "val_r2"):
        assert got.history[-1][key] == pytest.approx(alone.history[-1][key], rel=TOL, abs=TOL)


def _three(digits, **kw) -> Population:
    pop = Population(mlp_spec(), digits, 3, optimizer="adam", batch_size=32, **kw)
    for k, (lr, p) in enumerate([(1e-3, 0.0), (3e-3, 0.3), (1e-2, 0.5)]):
        pop.replace_member(k, MemberSettings(lr=lr, dropout=p, epochs=3), seed=k)
    return pop


def test_a_nan_member_is_masked_and_never_touches_the_others(digits):
    clean, sick = _three(digits), _three(digits)
    clean.train_epoch()
    sick.train_epoch()
    with torch.no_grad():
        sick.flat[1, 0] = math.nan  # member 1's weights go bad
    frozen = sick.flat[1].clone()
    clean.fit()
    sick.fit()
    for k in (0, 2):
        assert torch.equal(clean.flat[k], sick.flat[k])
        assert clean.members[k].history == [
            {**h, "epoch_time_s": c["epoch_time_s"]}
            for h, c in zip(sick.members[k].history, clean.members[k].history, strict=True)
        ]
    member = sick.members[1]
    assert member.status == "nan" and member.sickness[0] == "nan" and member.epoch == 2
    assert torch.equal(sick.flat[1].nan_to_num(7.0), frozen.nan_to_num(7.0))  # never updated
    assert not sick.member_result(1).ok


def test_injected_judge_marks_divergence(digits):
    def judge(epoch, metrics, history):
        return ("diverged", "too high") if metrics["lr"] == pytest.approx(1e-2) else None

    pop = _three(digits, judge=judge)
    pop.train_epoch()
    statuses = [m.status for m in pop.members]
    assert "diverged" in statuses and "running" in statuses
    assert all(s.get("grad_norm", 0) > 0 for m in pop.members for s in m.signals)


def test_replace_member_refills_one_slot_and_leaves_the_others(digits):
    spec = mlp_spec()
    kept, refilled = _three(digits), _three(digits)
    kept.train_epoch()
    refilled.train_epoch()
    new = MemberSettings(lr=4e-3, weight_decay=1e-3, epochs=2)
    refilled.replace_member(1, new, seed=42)
    kept.train_epoch()
    refilled.train_epoch()
    kept.train_epoch()
    refilled.train_epoch()
    for k in (0, 2):
        assert torch.equal(kept.flat[k], refilled.flat[k])
    assert [m.epoch for m in refilled.members] == [3, 2, 3]
    assert refilled.members[1].status == "completed" and len(refilled.members[1].history) == 2
    ref = reference("adam", new, 42, digits, spec=spec, epochs=2, bs=32)
    assert max_diff(refilled.member_module(1, best=False), ref) <= TOL


def test_per_member_dropout_rates(digits):
    pop = _three(digits)
    X = digits.X_train[:32].unsqueeze(0).expand(3, -1, -1)
    kw = {"training": True, "keep": pop._keep, "generator": pop._gen}
    a, b = (
        pop.forward(pop.params, pop.buffers, X, **kw),
        pop.forward(pop.params, pop.buffers, X, **kw),
    )
    assert torch.equal(a[0], b[0])  # rate 0: no dropout
    assert not torch.equal(a[1], b[1]) and not torch.equal(a[2], b[2])
    assert [pop.member_spec(k).params["dropout"] for k in range(3)] == [0.0, 0.3, 0.5]
    pop.fit()
    # the rate-0 member of a population with dropout members is the plain trial
    ref = reference("adam", MemberSettings(lr=1e-3), 0, digits, spec=mlp_spec(), epochs=3, bs=32)
    assert max_diff(pop.member_module(0, best=False), ref) <= TOL


def test_member_module_round_trips_through_save_and_load(digits, tmp_path):
    pop = _three(digits)
    pop.fit()
    for k in range(3):
        member = pop.members[k]
        assert member.best_epoch is not None
        model = pop.member_module(k)
        folder = save_model(
            tmp_path / str(k), model, pop.member_spec(k), metrics=member.best_metrics
        )
        loaded = load_model(folder)
        x = digits.X_val
        assert torch.equal(loaded.model(x), model.eval()(x))
        assert loaded.spec.params["dropout"] == member.settings.dropout
    last = pop.member_module(2, best=False).eval()
    assert torch.allclose(last(digits.X_val), pop.outputs(digits.X_val)[2], atol=1e-6)


def test_supports_and_group_key(digits):
    def build(builder, params, shape=(64,)):
        return ModelSpec(builder, params, input_shape=shape, output_size=10).build()

    assert supports(build("mlp", {})) == (True, "")
    assert supports(build("cnn", {}, (1, 8, 8)))[0]
    for model in (build("lstm", {}, (8, 8)), build("resnet", {}, (1, 8, 8))):
        ok, why = supports(model)
        assert not ok and why
    mlp = build("mlp", {})
    for cfg in (
        TrainConfig(accumulate_steps=2),
        TrainConfig(precision="bf16"),
        TrainConfig(class_weights="balanced"),
    ):
        ok, why = supports(mlp, cfg)
        assert not ok and why
    augmented = types.SimpleNamespace(augmenter=lambda x, g: x)  # supports() reads only this
    ok, why = supports(mlp, TrainConfig(), augmented)
    assert not ok and "augmentation" in why
    a = TrainConfig(lr=1e-3)
    assert group_key(a, {"width": 8, "dropout": 0.1}) == group_key(
        TrainConfig(lr=1e-2, weight_decay=1e-3), {"width": 8, "dropout": 0.4}
    )
    assert group_key(a, {"width": 8}) != group_key(TrainConfig(batch_size=32), {"width": 8})
    assert group_key(a, {"width": 8}) != group_key(TrainConfig(optimizer="sgd"), {"width": 8})
    assert group_key(a, {"width": 8}) != group_key(a, {"width": 16})
    with pytest.raises(ValueError, match="population"):
        Population(ModelSpec("lstm", {}, input_shape=(8, 8), output_size=10), digits, 2)


def test_copy_member_takes_weights_and_optimiser_state(digits):
    pop = _three(digits)
    pop.train_epoch()
    pop.copy_member(2, 0)
    assert torch.equal(pop.flat[0], pop.flat[2])
    for name in ("exp_avg", "sq"):
        state = getattr(pop.optimizer, name)
        assert torch.equal(state[0], state[2])
    assert pop.optimizer.steps[0] == pop.optimizer.steps[2]
    assert pop.members[0].settings.lr == 1e-3  # settings are not copied
    assert pop.members[0].epoch == 1 and len(pop.members[0].history) == 1
    pop.copy_member(1, 1)  # a no-op
    with pytest.raises(IndexError):
        Population(mlp_spec(), digits, 2, batch_size=32).copy_member(0, 1)


def test_update_member_changes_settings_in_place(digits):
    """A member given another lr/weight decay mid-run trains on as a torch.optim run whose
    param group changes at that moment; the other members are unaffected."""
    spec = mlp_spec()
    a = Population(spec, digits, 2, optimizer="adam", batch_size=32)
    b = Population(spec, digits, 2, optimizer="adam", batch_size=32)
    for pop in (a, b):
        for k in range(2):
            pop.replace_member(k, MemberSettings(lr=1e-3 * (k + 1), epochs=3), seed=k)
        pop.train_epoch()
    new = b.update_member(1, lr=5e-3, weight_decay=1e-3)
    assert new.lr == 5e-3 and b.members[1].settings.weight_decay == 1e-3
    assert b.members[1].history[-1]["lr"] == 2e-3
    assert float(b.optimizer.weight_decay[1]) == pytest.approx(1e-3)
    a.train_epoch()
    b.train_epoch()
    assert torch.equal(a.flat[0], b.flat[0])
    assert not torch.equal(a.flat[1], b.flat[1])
    assert b.members[1].history[-1]["lr"] == pytest.approx(5e-3)
    # the updated member equals a torch.optim Adam run whose group changes after epoch 1
    torch.manual_seed(1)
    model = dataclasses.replace(spec, params={**spec.params, "dropout": 0.0}).build()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(1)
    X, y = digits.X_train, digits.y_train
    for epoch in range(2):
        if epoch == 1:
            opt.param_groups[0].update(lr=5e-3, weight_decay=1e-3)
        order = torch.randperm(len(X), generator=gen)
        for i in range(0, len(X), 32):
            idx = order[i : i + 32]
            opt.zero_grad()
            nn.functional.cross_entropy(model(X[idx]), y[idx]).backward()
            opt.step()
    assert max_diff(b.member_module(1, best=False), model) <= TOL
    with pytest.raises(ValueError, match="cannot change"):
        b.update_member(0, epochs=5)


@pytest.mark.parametrize("builder", ["mlp", "cnn"])
def test_cost_follows_the_live_members_not_the_capacity(digits, digit_images, builder, monkeypatch):
    """One member in a capacity-16 population does the work of a capacity-1 population (the
    batched dimension every forward sees is 1) and computes the same numbers bit for bit."""
    from tunelab.train._population_dense import DenseStep
    from tunelab.train._population_forward import BatchedForward

    if builder == "cnn":  # autograd path, batch norm buffers
        bundle = digit_images
        spec = ModelSpec(
            "cnn",
            {"channels": [4, 8], "hidden": 16, "batch_norm": True},
            input_shape=(1, 8, 8),
            output_size=10,
        )
    else:  # hand-written dense path, dropout masks
        bundle, spec = digits, mlp_spec()
    widths: list[int] = []
    dense_forward, batched_forward = DenseStep.forward, BatchedForward.__call__

    def seen_dense(self, x, masks):
        widths.append(x.shape[0])
        return dense_forward(self, x, masks)

    def seen_batched(self, params, buffers, x, **kw):
        widths.append(next(iter(params.values())).shape[0])
        return batched_forward(self, params, buffers, x, **kw)

    monkeypatch.setattr(DenseStep, "forward", seen_dense)
    monkeypatch.setattr(BatchedForward, "__call__", seen_batched)
    settings = MemberSettings(lr=3e-3, dropout=0.3 if builder == "mlp" else 0.0, epochs=2)
    runs = []
    for size in (16, 1):
        widths.clear()
        pop = Population(spec, bundle, size, optimizer="adam", batch_size=32)
        pop.replace_member(0, settings, seed=7)
        result = pop.fit()[0]
        assert set(widths) == {1}, (size, set(widths))
        runs.append((result, pop.member_module(0, best=False)))
    (big, big_model), (small, small_model) = runs
    assert max_diff(big_model, small_model) == 0.0
    for mine, theirs in zip(big.history, small.history, strict=True):
        for key in ("train_loss", "val_loss", "val_accuracy"):
            assert mine[key] == theirs[key], key


def test_the_trained_prefix_shrinks_when_high_slots_leave(digits):
    """Slots are trained up to the highest running one: when slot 1 finishes, slot 0 trains
    alone, and keeps computing what it computes beside a neighbour."""
    pop = Population(mlp_spec(), digits, 16, optimizer="adam", batch_size=32)
    pop.replace_member(0, MemberSettings(lr=3e-3, epochs=3), seed=1)
    pop.replace_member(1, MemberSettings(lr=1e-3, epochs=1), seed=2)
    pop.train_epoch()
    assert pop.last_width == 2
    pop.train_epoch()
    assert pop.last_width == 1
    pop.train_epoch()
    alone = Population(mlp_spec(), digits, 1, optimizer="adam", batch_size=32)
    alone.replace_member(0, MemberSettings(lr=3e-3, epochs=3), seed=1)
    alone.fit()
    assert max_diff(pop.member_module(0, best=False), alone.member_module(0, best=False)) <= TOL


def test_move_member_keeps_the_member_exact_and_shortens_the_prefix(digits):
    def two(size: int) -> Population:
        pop = Population(mlp_spec(), digits, size, optimizer="adam", batch_size=32)
        pop.replace_member(0, MemberSettings(lr=3e-3, epochs=3, dropout=0.2), seed=1)
        pop.replace_member(5, MemberSettings(lr=1e-3, epochs=3, dropout=0.4, l1=1e-4), seed=2)
        pop.train_epoch()
        return pop

    moved, kept = two(16), two(16)
    assert moved.last_width == 6
    moved.move_member(5, 1)
    assert moved.members[5] is None
    moved.fit()
    kept.fit()
    assert moved.last_width == 2
    for a, b in ((0, 0), (1, 5)):
        assert max_diff(moved.member_module(a), kept.member_module(b)) == 0.0
        assert max_diff(moved.member_module(a, best=False), kept.member_module(b, best=False)) == 0
        drop = lambda h: [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in h]  # noqa: E731
        assert drop(moved.members[a].history) == drop(kept.members[b].history)
    with pytest.raises(ValueError):
        moved.move_member(0, 0)


@pytest.mark.parametrize(
    ("params", "size"),
    [
        ({"channels": [4, 8], "hidden": 16}, 8),  # max pool before ReLU, identity adaptive pool
        ({"channels": [4, 8], "hidden": 0, "pooling": "avg", "batch_norm": False}, 8),
        ({"channels": [3, 5], "hidden": 8, "activation": "leaky_relu"}, 8),
        ({"channels": [2, 4, 4], "hidden": 8}, 40),  # a real adaptive pool (5x5 -> 4x4)
    ],
)
def test_batched_cnn_program_equals_each_module(params, size):
    """Outputs and gradients of the compiled CNN program (reordered pooling, in-place ReLUs,
    skipped identity pools, channels_last flatten) equal each member's module alone."""
    from torch.func import stack_module_state

    from tunelab.train._population_forward import BatchedForward, compile_program

    K, B = 3, 6
    spec = ModelSpec("cnn", params, input_shape=(1, size, size), output_size=5)
    models = []
    for k in range(K):
        torch.manual_seed(k)
        models.append(spec.build().train())
    p, b = stack_module_state(models)
    p = {n: t.detach().clone().requires_grad_() for n, t in p.items()}
    b = {n: t.clone() for n, t in b.items() if not n.startswith("output_")}
    x = torch.randn(K, B, 1, size, size, generator=torch.Generator().manual_seed(0))
    forward = BatchedForward(compile_program(models[0]), (1, size, size))
    out = forward(p, b, x, training=True)
    out.square().sum().backward()
    for k, m in enumerate(models):
        alone = m(x[k])
        alone.square().sum().backward()
        assert (out[k] - alone).abs().max() <= 1e-5
        for name, t in m.named_parameters():
            assert (p[name].grad[k] - t.grad).abs().max() <= 1e-5, name
