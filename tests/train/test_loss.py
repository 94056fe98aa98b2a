import math

import pytest
import torch

from pinsage.train.loss import (
    in_batch_softmax_loss,
    max_margin_loss,
    sampled_softmax_loss,
)


def _data():
    torch.manual_seed(0)
    q = torch.randn(3, 4, dtype=torch.double, requires_grad=True)
    p = torch.randn(3, 4, dtype=torch.double, requires_grad=True)
    n = torch.randn(5, 4, dtype=torch.double, requires_grad=True)
    h = torch.randn(3, 2, 4, dtype=torch.double, requires_grad=True)
    return q, p, n, h


def _dot(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_max_margin_matches_hand_computation_values_and_grads():
    q, p, n, h = _data()
    hard_mask = torch.tensor([[True, False], [True, True], [False, False]])
    neg_mask = torch.ones(3, 5, dtype=torch.bool)
    neg_mask[1, 2] = False
    got = max_margin_loss(
        q, p, n, 0.3, hard=h, hard_mask=hard_mask, negative_mask=neg_mask
    )
    terms = []
    for b in range(3):
        pos = _dot(q[b], p[b])
        terms += [
            torch.relu(_dot(q[b], n[r]) - pos + 0.3) for r in range(5) if neg_mask[b, r]
        ]
        terms += [
            torch.relu(_dot(q[b], h[b, j]) - pos + 0.3)
            for j in range(2)
            if hard_mask[b, j]
        ]
    want = sum(terms) / len(terms)
    assert got.item() == pytest.approx(want.item(), rel=1e-12)
    g_got = torch.autograd.grad(got, (q, p, n, h))
    g_want = torch.autograd.grad(want, (q, p, n, h))
    for a, b in zip(g_got, g_want, strict=True):
        torch.testing.assert_close(a, b)


def test_sampled_softmax_matches_hand_computation_values_and_grads():
    q, p, n, h = _data()
    log_q = torch.log(torch.tensor([0.1, 0.2, 0.3, 0.2, 0.2], dtype=torch.double))
    hard_mask = torch.tensor([[True, False], [True, True], [False, True]])
    neg_mask = torch.ones(3, 5, dtype=torch.bool)
    neg_mask[0, 4] = False
    tau = 0.5
    got = sampled_softmax_loss(
        q, p, n, tau, log_q=log_q, hard=h, hard_mask=hard_mask, negative_mask=neg_mask
    )
    losses = []
    for b in range(3):
        pos = _dot(q[b], p[b]) / tau
        logits = [pos]
        logits += [
            _dot(q[b], n[r]) / tau - log_q[r] for r in range(5) if neg_mask[b, r]
        ]
        logits += [_dot(q[b], h[b, j]) / tau for j in range(2) if hard_mask[b, j]]
        losses.append(-pos + torch.logsumexp(torch.stack(logits), 0))
    want = sum(losses) / 3
    assert got.item() == pytest.approx(want.item(), rel=1e-12)
    for a, b in zip(
        torch.autograd.grad(got, (q, p, n, h)),
        torch.autograd.grad(want, (q, p, n, h)),
        strict=True,
    ):
        torch.testing.assert_close(a, b)


def test_margin_zero_when_positive_wins_by_margin():
    q = torch.tensor([[1.0, 0.0]])
    p = torch.tensor([[1.0, 0.0]])
    n = torch.tensor([[0.0, 1.0], [0.5, 0.5]])
    assert max_margin_loss(q, p, n, 0.4).item() == 0.0
    assert max_margin_loss(q, p, n, 0.6).item() == pytest.approx((0.1 + 0.0) / 2)
    assert sampled_softmax_loss(q, p, n[:1], 1.0).item() == pytest.approx(
        math.log(1 + math.exp(-1))
    )


def test_in_batch_softmax_matches_hand_computation_and_masks_repeats():
    gen = torch.Generator().manual_seed(3)
    q = torch.randn(4, 3, dtype=torch.double, generator=gen, requires_grad=True)
    p = torch.randn(4, 3, dtype=torch.double, generator=gen, requires_grad=True)
    items = torch.tensor([7, 2, 7, 5])  # pairs 0 and 2 engage the same item
    tau = 0.3
    got = in_batch_softmax_loss(q, p, items, tau)
    losses = []
    for b in range(4):
        # The other pairs' positives, less another copy of this pair's own item.
        cols = [j for j in range(4) if j == b or items[j] != items[b]]
        logits = torch.stack([_dot(q[b], p[j]) / tau for j in cols])
        losses.append(-_dot(q[b], p[b]) / tau + torch.logsumexp(logits, 0))
    want = sum(losses) / 4
    assert got.item() == pytest.approx(want.item(), rel=1e-12)
    for a, b in zip(
        torch.autograd.grad(got, (q, p)), torch.autograd.grad(want, (q, p)), strict=True
    ):
        torch.testing.assert_close(a, b)
