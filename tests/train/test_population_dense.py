"""The hand-written MLP step of a population: the gradients autograd computes, masks per member."""

from __future__ import annotations

import pytest
import torch

from tunelab.models import ModelSpec
from tunelab.train._population_dense import DenseStep, DropoutMasks, dense_supported
from tunelab.train._population_forward import compile_program
from tunelab.train._population_metrics import MemberLoss


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "sigmoid", "gelu"])
@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_dense_gradients_match_autograd(activation, loss):
    K, B = 3, 8
    C = 4 if loss == "cross_entropy" else 1
    spec = ModelSpec(
        "mlp",
        {"widths": [6, 5], "activation": activation, "dropout": 0.5},
        input_shape=(7,),
        output_size=C,
    )
    program = compile_program(spec.build())
    assert dense_supported(program)
    torch.manual_seed(0)
    shapes = {n: p.shape for n, p in spec.build().named_parameters()}
    params = {n: torch.randn(K, *s) for n, s in shapes.items()}
    grads = {n: torch.zeros(K, *s) for n, s in shapes.items()}
    scale = (torch.tensor([0.5] * C), torch.tensor([2.0] * C)) if loss == "mse" else None
    step = DenseStep(program, params, grads, scale)
    masks = DropoutMasks(step.mask_widths, K, B, torch.device("cpu"))
    gens = [torch.Generator().manual_seed(i) for i in (1, 2)]
    masks.set_members([0, 2], gens, [0.5, 0.8])
    drawn = masks.draw(B)
    assert all(torch.equal(m[1], torch.ones_like(m[1])) for m in drawn)  # no dropout in slot 1
    assert set(drawn[0][0].unique().tolist()) <= {0.0, 2.0}
    x = torch.randn(K, B, 7)
    y = torch.randint(0, C, (K, B)) if loss == "cross_entropy" else torch.randn(K, B)
    smoothing = torch.tensor([[0.0], [0.1], [0.2]])
    member_loss = MemberLoss(
        loss, "classification" if loss == "cross_entropy" else "regression", smoothing
    )
    member_loss.use_smoothing = True
    out, tape = step.forward(x, [m.clone() for m in drawn])
    value, dout = member_loss.value_and_grad(out, y)
    step.backward(dout, tape)

    leaves = {n: p.clone().requires_grad_() for n, p in params.items()}
    h, i = x, 0
    for s in program:
        if s.kind == "linear":
            w, b = leaves[s.params["weight"]], leaves.get(s.params.get("bias", ""))
            h = h @ w.transpose(1, 2) + (0 if b is None else b.unsqueeze(1))
        elif s.kind == "act":
            h = s.module(h)
        elif s.kind == "dropout":
            h = h * drawn[i]
            i += 1
    if scale is not None:
        h = h * scale[1] + scale[0]
    ref = member_loss(h, y)
    ref.sum().backward()
    assert torch.allclose(value, ref.detach(), atol=1e-6)
    for n in shapes:
        assert torch.allclose(grads[n], leaves[n].grad, atol=1e-5), n


def test_batch_norm_mlp_takes_the_autograd_path():
    spec = ModelSpec("mlp", {"width": 4, "batch_norm": True}, input_shape=(3,), output_size=2)
    assert not dense_supported(compile_program(spec.build()))


def _epoch_masks(masks: DropoutMasks, batches: list[int]) -> list[torch.Tensor]:
    masks.start_epoch(sum(batches))
    return [torch.cat([m.clone() for m in masks.draw(b)], -1) for b in batches]


def test_dropout_masks_drawn_in_blocks_equal_one_block_and_keep_their_rate():
    widths, K, B = [6, 4], 3, 8
    batches = [B] * 6 + [5]  # an epoch of 53 rows

    def masks(max_bytes: int) -> DropoutMasks:
        m = DropoutMasks(widths, K, B, torch.device("cpu"), max_bytes=max_bytes)
        gens = [torch.Generator().manual_seed(i) for i in (1, 2)]
        m.set_members([0, 2], gens, [0.5, 0.8])
        return m

    one_step, whole = masks(1), masks(2**20)  # a block of one step; the whole epoch
    assert one_step.capacity == B and whole.capacity >= sum(batches)
    for _ in range(2):  # two epochs: the streams continue
        a, b = _epoch_masks(one_step, batches), _epoch_masks(whole, batches)
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert all(torch.equal(x[1], torch.ones_like(x[1])) for x in a)
    # the keep rate over many epochs, per member
    drawn = torch.cat([torch.cat(_epoch_masks(whole, batches), 1) for _ in range(40)], 1)
    kept = (drawn > 0).double().mean((1, 2))
    assert abs(kept[0] - 0.5) < 0.02 and abs(kept[2] - 0.8) < 0.02
    assert set(drawn[2].unique().tolist()) == {0.0, 1.25}


def test_dropout_masks_of_a_member_do_not_depend_on_the_others():
    widths, B, batches = [6, 4], 8, [8, 8, 3]
    alone = DropoutMasks(widths, 1, B, torch.device("cpu"))
    alone.set_members([0], [torch.Generator().manual_seed(7)], [0.7])
    crowd = DropoutMasks(widths, 4, B, torch.device("cpu"))
    gens = [torch.Generator().manual_seed(s) for s in (3, 7, 9)]
    crowd.set_members([0, 1, 3], gens, [0.5, 0.7, 0.9])
    a, c = _epoch_masks(alone, batches), _epoch_masks(crowd, batches)
    assert all(torch.equal(x[0], y[1]) for x, y in zip(a, c, strict=True))
    # a member that stops dropping gets ones again, the others keep their streams
    crowd.set_members([1], [gens[1]], [0.7])
    a, c = _epoch_masks(alone, batches), _epoch_masks(crowd, batches)
    assert all(torch.equal(x[0], y[1]) for x, y in zip(a, c, strict=True))
    assert all(torch.equal(y[k], torch.ones_like(y[k])) for y in c for k in (0, 2, 3))
