"""Packing: MLP members narrower than their population train exactly as at their own width."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tunelab.data import DataBundle
from tunelab.models import ModelSpec, load_model, save_model
from tunelab.train._population import MemberSettings, Population

TOL = 1e-5


@pytest.fixture(scope="module")
def digits(tiny_digits: DataBundle) -> DataBundle:
    return tiny_digits


def spec(width: int, *, depth: int = 2, activation: str = "relu", **params) -> ModelSpec:
    params = {"width": width, "depth": depth, "activation": activation, **params}
    return ModelSpec("mlp", params, input_shape=(64,), output_size=10)


def state_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    assert {n: v.shape for n, v in sa.items()} == {n: v.shape for n, v in sb.items()}
    return max((sa[n].double() - sb[n].double()).abs().max().item() for n in sa)


def padding_of(pop: Population, k: int) -> torch.Tensor:
    """Slot ``k``'s parameters outside its own blocks."""
    assert pop._own_mask is not None
    return pop.flat[k][pop._own_mask[k] == 0]


SETTINGS = {
    "sgd": [
        MemberSettings(epochs=2, lr=0.05, momentum=0.9, weight_decay=1e-3),
        MemberSettings(epochs=2, lr=0.1, momentum=0.5, dropout=0.2, clip_grad_norm=0.5),
        MemberSettings(epochs=2, lr=0.05, momentum=0.0, l1=1e-4),
    ],
    "adam": [
        MemberSettings(epochs=2, lr=3e-3, weight_decay=1e-2),
        MemberSettings(epochs=2, lr=1e-3, dropout=0.3, label_smoothing=0.1),
        MemberSettings(epochs=2, lr=2e-3, clip_grad_value=0.02, l1=1e-4),
    ],
    "adamw": [
        MemberSettings(epochs=2, lr=3e-3, weight_decay=5e-2),
        MemberSettings(epochs=2, lr=1e-3, weight_decay=1e-2, dropout=0.2),
        MemberSettings(epochs=2, lr=2e-3, weight_decay=1e-1, betas=(0.8, 0.99)),
    ],
}


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_a_packed_member_trains_as_its_own_width_does(digits, optimizer, activation):
    """Widths 8 and 16 packed into a width-32 population end (weights, every epoch's metrics)
    where each ends alone in a population of its own shape; weight decay, Adam's state, L1,
    clipping and dropout keep the padding exactly zero."""
    widths = [8, 16, 32]
    settings = SETTINGS[optimizer]
    pop = Population(spec(32, activation=activation), digits, 3, optimizer=optimizer, batch_size=32)
    for k, (width, s) in enumerate(zip(widths, settings, strict=True)):
        pop.replace_member(k, s, 20 + k, spec(width, activation=activation).params)
    pop.fit()
    for k, (width, s) in enumerate(zip(widths, settings, strict=True)):
        alone = Population(
            spec(width, activation=activation), digits, 1, optimizer=optimizer, batch_size=32
        )
        alone.replace_member(0, s, 20 + k)
        alone.fit()
        assert (
            state_diff(pop.member_module(k, best=False), alone.member_module(0, best=False)) <= TOL
        )
        for mine, theirs in zip(pop.members[k].history, alone.members[0].history, strict=True):
            assert mine["val_loss"] == pytest.approx(theirs["val_loss"], abs=TOL)
            assert mine["train_loss"] == pytest.approx(theirs["train_loss"], abs=TOL)
        if width < 32:
            assert torch.count_nonzero(padding_of(pop, k)) == 0
            state = pop.optimizer.state_dict()
            for name in ("buf", "exp_avg", "sq"):
                if name in state:
                    assert torch.count_nonzero(state[name][k][pop._own_mask[k] == 0]) == 0


def test_an_activation_without_a_zero_at_zero_masks_the_padding(digits):
    """Sigmoid(0) = 0.5: a padded unit's outgoing weights would get gradients; they are masked
    and stay exactly zero, and the member still trains as at its own width."""
    settings = MemberSettings(epochs=2, lr=0.1, momentum=0.9, weight_decay=1e-3, dropout=0.1)
    pop = Population(spec(32, activation="sigmoid"), digits, 2, optimizer="sgd", batch_size=32)
    pop.replace_member(0, settings, 3)
    pop.replace_member(1, settings, 4, spec(8, activation="sigmoid").params)
    pop.train_epoch()
    assert pop._mask_grads
    pop.fit()
    assert torch.count_nonzero(padding_of(pop, 1)) == 0
    alone = Population(spec(8, activation="sigmoid"), digits, 1, optimizer="sgd", batch_size=32)
    alone.replace_member(0, settings, 4)
    alone.fit()
    assert state_diff(pop.member_module(1, best=False), alone.member_module(0, best=False)) <= TOL


def test_a_packed_member_starts_with_its_own_width_init(digits):
    """The member's own sub-network holds exactly what its own-shape build holds (same seed:
    same weights); everything else in its row is zero."""
    pop = Population(spec(64, depth=3), digits, 2)
    pop.replace_member(1, MemberSettings(), 7, spec(16, depth=3).params)
    torch.manual_seed(7)
    built = spec(16, depth=3).build()
    assert state_diff(pop.member_module(1, best=False), built) == 0.0
    assert pop.member_spec(1).params["width"] == 16
    assert torch.count_nonzero(padding_of(pop, 1)) == 0


def test_a_packed_member_saves_a_model_of_its_own_width(digits, tmp_path):
    pop = Population(spec(32), digits, 2, batch_size=32)
    pop.replace_member(0, MemberSettings(epochs=2), 1)
    pop.replace_member(1, MemberSettings(epochs=2, dropout=0.2), 2, spec(8).params)
    pop.fit()
    member = pop.members[1]
    assert member.best_epoch is not None
    model = pop.member_module(1)
    folder = save_model(tmp_path / "best", model, pop.member_spec(1), metrics=member.best_metrics)
    loaded = load_model(folder)
    assert loaded.spec.params["width"] == 8 and loaded.spec.params["dropout"] == 0.2
    assert loaded.model.body[1].weight.shape == (8, 64)
    x = digits.X_val
    assert torch.equal(loaded.model(x), model.eval()(x))
    last = pop.member_module(1, best=False).eval()
    assert torch.allclose(last(x), pop.outputs(x)[1], atol=1e-6)


def test_fits_says_what_cannot_pack(digits):
    pop = Population(spec(32), digits, 2)
    assert pop.fits(spec(32).params) == "" and pop.fits(spec(8).params) == ""
    assert pop.fits({**spec(8).params, "widths": [32, 8]}) == ""
    assert "does not fit" in pop.fits(spec(64).params)
    assert "number of layers" in pop.fits(spec(8, depth=3).params)
    assert "different layers" in pop.fits(spec(8, activation="tanh").params)
    with pytest.raises(ValueError, match="cannot be packed"):
        pop.replace_member(0, MemberSettings(), 0, spec(64).params)
    bn = Population(spec(32, batch_norm=True), digits, 2)
    assert "dense path" in bn.fits(spec(8, batch_norm=True).params)


def test_packed_members_move_and_copy_only_between_equal_shapes(digits):
    """move_member carries a packed member whole (its padding mask too); copy_member (PBT)
    refuses to copy weights between members of different widths."""
    settings = MemberSettings(epochs=3, lr=1e-3, dropout=0.2)
    pop = Population(spec(32), digits, 3, batch_size=32)
    pop.replace_member(0, settings, 1)
    pop.replace_member(2, settings, 2, spec(8).params)
    pop.train_epoch()
    pop.move_member(2, 1)
    pop.fit()
    stay = Population(spec(32), digits, 3, batch_size=32)
    stay.replace_member(0, settings, 1)
    stay.replace_member(2, settings, 2, spec(8).params)
    stay.fit()
    assert state_diff(pop.member_module(1, best=False), stay.member_module(2, best=False)) == 0.0
    assert torch.count_nonzero(padding_of(pop, 1)) == 0
    fresh = Population(spec(32), digits, 2, batch_size=32)
    fresh.replace_member(0, settings, 1)
    fresh.replace_member(1, settings, 2, spec(8).params)
    with pytest.raises(ValueError, match="same shape"):
        fresh.copy_member(0, 1)
    same = dataclasses.replace(settings, lr=2e-3)
    fresh.replace_member(0, same, 3, spec(8).params)
    fresh.copy_member(0, 1)  # two members of width 8


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_an_adopted_member_goes_on_as_in_its_own_population(digits, optimizer):
    """adopt_member moves a member (full width in its population, or itself packed there) into
    a wider population after an epoch; it ends where it would have ended had it stayed, and
    its old slot is empty."""
    settings = [
        MemberSettings(epochs=3, lr=3e-3, weight_decay=1e-2, dropout=0.2, momentum=0.9),
        MemberSettings(epochs=3, lr=2e-3, label_smoothing=0.1, momentum=0.5),
    ]

    def narrow() -> Population:
        pop = Population(spec(16), digits, 2, optimizer=optimizer, batch_size=32)
        pop.replace_member(0, settings[0], 5)
        pop.replace_member(1, settings[1], 6, spec(8).params)
        return pop

    stay = narrow()
    stay.fit()
    moved = narrow()
    moved.train_epoch()
    wide = Population(spec(32), digits, 3, optimizer=optimizer, batch_size=32)
    wide.replace_member(0, MemberSettings(epochs=3, lr=1e-3), 7)
    wide.adopt_member(moved, 0, 1)
    wide.adopt_member(moved, 1, 2)
    assert moved.members == [None, None] and moved.running() == []
    assert [wide.member_spec(k).params["width"] for k in (1, 2)] == [16, 8]
    wide.fit()
    for k, s in ((1, 0), (2, 1)):
        assert (
            state_diff(wide.member_module(k, best=False), stay.member_module(s, best=False)) <= TOL
        )
        assert state_diff(wide.member_module(k), stay.member_module(s)) <= TOL
        assert wide.members[k].best_epoch == stay.members[s].best_epoch
        assert len(wide.members[k].history) == 3
        assert torch.count_nonzero(padding_of(wide, k)) == 0
    other = Population(spec(32), digits, 2, optimizer=optimizer, batch_size=64)
    with pytest.raises(ValueError, match="same optimiser, batch size"):
        other.adopt_member(wide, 0, 0)
