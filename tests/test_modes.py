"""evaluating(model): eval mode and no gradients inside, the previous mode restored after."""

import pytest
import torch
from torch import nn

from fromscratch.modes import evaluating


def net():
    return nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))


def test_inside_dropout_is_off_and_no_graph_is_built():
    model = net().train()
    x = torch.ones(2, 4)
    with evaluating(model) as same:
        assert same is model and not model.training and not model[1].training
        y1, y2 = model(x), model(x)
        assert torch.equal(y1, y2) and not y1.requires_grad
    assert model.training and model[1].training
    assert model(x).requires_grad


def test_a_model_in_eval_mode_stays_in_eval_mode():
    model = net().eval()
    with evaluating(model):
        pass
    assert not model.training


def test_the_mode_comes_back_when_the_block_raises():
    model = net().train()
    with pytest.raises(RuntimeError, match="inside"), evaluating(model):
        raise RuntimeError("inside")
    assert model.training and torch.is_grad_enabled()
