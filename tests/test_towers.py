"""Towers and SENet on hand-computable tensors."""

from __future__ import annotations

import torch

from training.senet import SENet
from training.towers import ModelSpec, TwoTowerModel


def _spec(**kw) -> ModelSpec:
    base = dict(num_users=4, num_items=5, user_cat_columns=("u_cat_a",), user_cat_sizes=(3,), user_num_columns=("u_num_x",),
                item_cat_columns=("i_cat_c",), item_cat_sizes=(2,), item_num_columns=(), history_length=3,
                dim=2, id_dim=2, feature_dim=2, hidden=())
    base.update(kw)
    return ModelSpec(**base)


def test_user_fields_by_hand():
    # hidden=() -> no MLP: encode() is the concatenation of the fields, easy to check by hand.
    model = TwoTowerModel(_spec())
    core = model.user.core
    with torch.no_grad():
        core.id_emb.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
        core.cat_embs[0].weight.copy_(torch.tensor([[0.0, 0.0], [7.0, 8.0], [9.0, 10.0]]))
        core.num_proj.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        core.num_proj.bias.zero_()
        model.item.core.id_emb.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0], [3.0, 5.0], [0.0, 0.0], [0.0, 0.0]]))
    x = core.encode(torch.tensor([2, 99]), torch.tensor([[1], [7]]), torch.tensor([[0.5], [2.0]]), torch.tensor([[1, 2, 0], [0, 0, 0]]))
    # row 0: user 2 -> [3, 4]; category 1 -> [7, 8]; num 0.5 -> [0.5, -0.5];
    #        history items 1, 2 (0 = padding) -> mean([1, 1], [3, 5]) = [2, 3]
    # row 1: user 99 and category 7 are beyond the tables -> OOV row 0 -> [0, 0]; num 2 -> [2, -2];
    #        empty history -> [0, 0]
    torch.testing.assert_close(x[0], torch.tensor([3.0, 4.0, 7.0, 8.0, 0.5, -0.5, 2.0, 3.0]))
    torch.testing.assert_close(x[1], torch.tensor([0.0, 0.0, 0.0, 0.0, 2.0, -2.0, 0.0, 0.0]))


def test_heads_are_l2_normalised_and_multi_objective():
    model = TwoTowerModel(_spec(hidden=(8,), dim=4, objectives=("click", "like")))
    u = model.user.forward_heads(torch.tensor([1, 2]), torch.tensor([[1], [2]]), torch.zeros(2, 1), torch.zeros(2, 3, dtype=torch.long))
    assert u.shape == (2, 2, 4)  # [K objectives, B, d]
    torch.testing.assert_close(u.norm(dim=-1), torch.ones(2, 2))
    # the serving forward is the first (click) head
    torch.testing.assert_close(model.user(torch.tensor([1, 2]), torch.tensor([[1], [2]]), torch.zeros(2, 1), torch.zeros(2, 3, dtype=torch.long)), u[0])


def test_senet_by_hand():
    se = SENet(2, reduction=2)  # bottleneck of 1
    with torch.no_grad():
        se.squeeze_to_hidden.weight.copy_(torch.tensor([[1.0, 0.0]]))
        se.squeeze_to_hidden.bias.zero_()
        se.hidden_to_gate.weight.copy_(torch.tensor([[0.0], [1.0]]))
        se.hidden_to_gate.bias.zero_()
    f1, f2 = torch.tensor([[2.0, 4.0]]), torch.tensor([[1.0, 1.0, 1.0]])
    # squeeze: z = [mean f1, mean f2] = [3, 1]; hidden = relu(1*3 + 0*1) = 3
    # gate = 2 * sigmoid([0*3, 1*3]) = [2*0.5, 2*sigmoid(3)] = [1.0, 1.905148]
    out = se([f1, f2])
    torch.testing.assert_close(out[0], f1)
    torch.testing.assert_close(out[1], f2 * 2 * torch.sigmoid(torch.tensor(3.0)))


def test_zero_id_init_scores_new_ids_by_features_only():
    model = TwoTowerModel(_spec(hidden=(4,)))
    model.reset_parameters(0.0)
    assert model.item.core.id_emb.weight.abs().sum() == 0
    assert model.item.core.cat_embs[0].weight.abs().sum() > 0
    # two never-trained items with the same features embed identically
    e = model.item(torch.tensor([3, 4]), torch.tensor([[1], [1]]), torch.zeros(2, 0))
    torch.testing.assert_close(e[0], e[1])
