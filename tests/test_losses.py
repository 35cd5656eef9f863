"""Loss values against hand computation (arithmetic in the comments)."""

from __future__ import annotations

import math

import pytest
import torch

from training.losses import (
    InBatchSoftmaxLoss,
    ListwiseSoftmaxLoss,
    PointwiseLoss,
    TripletHingeLoss,
    TripletLogisticLoss,
)

# Two examples, three negatives each (cosines).
POS = torch.tensor([0.5, 1.0])
NEG = torch.tensor([[0.0, -1.0, 0.5], [0.0, 0.9, 1.0]])


def softplus(x: float) -> float:
    return math.log(1.0 + math.exp(x))


def test_pointwise_by_hand():
    # row 0: (1-0.5)^2 = 0.25; negatives (1+0)^2 + (1-1)^2 + (1+0.5)^2 = 1 + 0 + 2.25 = 3.25
    #        -> (0.25 + 3.25) / (1 + 3) = 0.875
    # row 1: (1-1)^2 = 0; negatives 1 + 1.9^2 + 2^2 = 1 + 3.61 + 4 = 8.61 -> 8.61 / 4 = 2.1525
    assert PointwiseLoss()(POS, NEG).item() == pytest.approx((0.875 + 2.1525) / 2)
    # weights [2, 0]: (2 * 0.875 + 0) / B=2 = 0.875
    assert PointwiseLoss()(POS, NEG, torch.tensor([2.0, 0.0])).item() == pytest.approx(0.875)
    # mask out row 0's third negative: (0.25 + 1 + 0) / 3 = 0.41667; row 1 unchanged
    mask = torch.tensor([[True, True, False], [True, True, True]])
    assert PointwiseLoss()(POS, NEG, neg_mask=mask).item() == pytest.approx((1.25 / 3 + 2.1525) / 2)


def test_triplet_hinge_by_hand():
    # margin 0.2. row 0: max(0, 0+.2-.5)=0, max(0, -1+.2-.5)=0, max(0, .5+.2-.5)=0.2 -> mean 0.2/3
    # row 1: max(0, 0+.2-1)=0, max(0, .9+.2-1)=0.1, max(0, 1+.2-1)=0.2 -> mean 0.3/3 = 0.1
    expected = (0.2 / 3 + 0.1) / 2
    assert TripletHingeLoss(0.2)(POS, NEG).item() == pytest.approx(expected)


def test_triplet_logistic_by_hand():
    # sigma 1: softplus(neg - pos) per pair, mean over the 3 negatives, mean over the 2 rows
    r0 = (softplus(0.0 - 0.5) + softplus(-1.0 - 0.5) + softplus(0.5 - 0.5)) / 3  # 0.456212
    r1 = (softplus(0.0 - 1.0) + softplus(0.9 - 1.0) + softplus(1.0 - 1.0)) / 3  # 0.550269
    assert TripletLogisticLoss(1.0)(POS, NEG).item() == pytest.approx((r0 + r1) / 2, rel=1e-6)
    # sigma 10 sharpens: row 1's pair (0.9 vs 1.0) gives softplus(-1) = 0.313262
    r1_10 = (softplus(-10.0) + softplus(-1.0) + softplus(0.0)) / 3
    r0_10 = (softplus(-5.0) + softplus(-15.0) + softplus(0.0)) / 3
    assert TripletLogisticLoss(10.0)(POS, NEG).item() == pytest.approx((r0_10 + r1_10) / 2, rel=1e-6)


def test_listwise_softmax_by_hand():
    # T = 1: row 0 logits [0.5 | 0, -1, 0.5] -> -0.5 + log(e^.5 + e^0 + e^-1 + e^.5)
    r0 = -0.5 + math.log(math.exp(0.5) + 1.0 + math.exp(-1.0) + math.exp(0.5))
    r1 = -1.0 + math.log(math.exp(1.0) + 1.0 + math.exp(0.9) + math.exp(1.0))
    assert ListwiseSoftmaxLoss(1.0)(POS, NEG).item() == pytest.approx((r0 + r1) / 2, rel=1e-6)
    # T = 0.5 doubles every logit
    r0h = -1.0 + math.log(math.exp(1.0) + 1.0 + math.exp(-2.0) + math.exp(1.0))
    r1h = -2.0 + math.log(math.exp(2.0) + 1.0 + math.exp(1.8) + math.exp(2.0))
    assert ListwiseSoftmaxLoss(0.5)(POS, NEG).item() == pytest.approx((r0h + r1h) / 2, rel=1e-6)


Q = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
C = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.6, 0.8]])


def test_inbatch_softmax_plain():
    # T = 1, cosines q.c: row 0 [1, 0], row 1 [0, 0.6]; labels are the diagonal
    r0 = -1.0 + math.log(math.exp(1.0) + 1.0)  # 0.313262
    r1 = -0.6 + math.log(1.0 + math.exp(0.6))  # 0.437488
    loss = InBatchSoftmaxLoss(1.0)(Q, C, torch.tensor([7, 8]))
    assert loss.item() == pytest.approx((r0 + r1) / 2, rel=1e-6)


def test_inbatch_softmax_logq_sign():
    # Q_j = [0.5, 0.25]: logits are s - log Q:
    # row 0 [1 - ln .5, 0 - ln .25] = [1.6931, 1.3863] -> -1.6931 + ln(2e + 4)       = 0.551445
    # row 1 [0 - ln .5, .6 - ln .25] = [0.6931, 1.9863] -> -1.9863 + ln(2 + 4e^0.6)  = 0.242488
    r0 = -(1.0 - math.log(0.5)) + math.log(2 * math.e + 4.0)
    r1 = -(0.6 - math.log(0.25)) + math.log(2.0 + 4.0 * math.exp(0.6))
    log_q = torch.log(torch.tensor([0.5, 0.25]))
    loss = InBatchSoftmaxLoss(1.0)(Q, C, torch.tensor([7, 8]), log_q=log_q)
    assert loss.item() == pytest.approx((r0 + r1) / 2, rel=1e-6)
    # The opposite sign (s + log Q) would give a different value: guard against a sign flip.
    r0_wrong = -(1.0 + math.log(0.5)) + math.log(math.exp(1.0 + math.log(0.5)) + math.exp(math.log(0.25)))
    assert loss.item() != pytest.approx((r0_wrong + r1) / 2, rel=1e-3)


def test_inbatch_softmax_masks_accidental_hits():
    # pool = [c0 (id 7), c1 (id 8), c2 = e3 (id 7)]: c2 is row 0's positive item again.
    pool = torch.cat([C, torch.tensor([[0.0, 0.0, 1.0]])])
    ids = torch.tensor([7, 8, 7])
    # row 0 logits [1, 0, masked] -> -1 + ln(e + 1) = 0.313262 (unmasked would be -1 + ln(e + 2) = 0.551445)
    # row 1 logits [0, 0.6, 0]    -> -0.6 + ln(2 + e^0.6) = 0.740802
    r0 = -1.0 + math.log(math.e + 1.0)
    r1 = -0.6 + math.log(2.0 + math.exp(0.6))
    loss = InBatchSoftmaxLoss(1.0)(Q, pool, ids)
    assert loss.item() == pytest.approx((r0 + r1) / 2, rel=1e-6)
    unmasked = InBatchSoftmaxLoss(1.0, remove_accidental_hits=False)(Q, pool, ids)
    assert unmasked.item() == pytest.approx((-1.0 + math.log(math.e + 2.0) + r1) / 2, rel=1e-6)
    # weights r = [2, 0]: (2 * r0 + 0) / B=2 = r0
    weighted = InBatchSoftmaxLoss(1.0)(Q, pool, ids, weights=torch.tensor([2.0, 0.0]))
    assert weighted.item() == pytest.approx(r0, rel=1e-6)


def test_inbatch_softmax_hard_negatives():
    # row 0 gets one hard negative h = e2 (cos 0) valid; row 1's hard slot is padding (masked).
    hard = torch.tensor([[[0.0, 1.0, 0.0]], [[0.0, 1.0, 0.0]]])
    mask = torch.tensor([[True], [False]])
    # row 0 logits [1, 0 | 0] -> -1 + ln(e + 2); row 1 [0, 0.6 | masked] -> 0.437488
    r0 = -1.0 + math.log(math.e + 2.0)
    r1 = -0.6 + math.log(1.0 + math.exp(0.6))
    loss = InBatchSoftmaxLoss(1.0)(Q, C, torch.tensor([7, 8]), hard=hard, hard_ids=torch.tensor([[9], [9]]), hard_mask=mask)
    assert loss.item() == pytest.approx((r0 + r1) / 2, rel=1e-6)


def test_losses_validate_arguments():
    with pytest.raises(ValueError, match="temperature must be > 0"):
        InBatchSoftmaxLoss(0.0)
    with pytest.raises(ValueError, match="margin must be >= 0"):
        TripletHingeLoss(-1.0)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        TripletLogisticLoss(0.0)
    with pytest.raises(ValueError, match=r"negative scores must be \[B, n\]"):
        PointwiseLoss()(POS, NEG[:1])
    with pytest.raises(ValueError, match="at least one negative"):
        ListwiseSoftmaxLoss()(POS, NEG[:, :0])
    with pytest.raises(ValueError, match=r"weights must be \[B\]"):
        TripletHingeLoss()(POS, NEG, torch.ones(3))
    with pytest.raises(ValueError, match="must share d"):
        InBatchSoftmaxLoss()(Q, C[:, :2], torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="log_q must be"):
        InBatchSoftmaxLoss()(Q, C, torch.tensor([1, 2]), log_q=torch.zeros(3))
    with pytest.raises(ValueError, match="non-finite"):
        InBatchSoftmaxLoss()(Q, C, torch.tensor([1, 2]), log_q=torch.tensor([0.0, -math.inf]))
