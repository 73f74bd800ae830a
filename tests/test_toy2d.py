"""Toy 2-D data: seeded, the right shape, and each set where its definition puts it."""

import math

import pytest
import torch

from fromscratch.data.toy2d import MIXTURES, TOY_DATASETS, sample_toy, toy_mixture
from fromscratch.errors import UserError


@pytest.mark.parametrize("name", TOY_DATASETS)
def test_seeded_shape_and_scale(name):
    a = sample_toy(name, 2000, torch.Generator().manual_seed(3))
    b = sample_toy(name, 2000, torch.Generator().manual_seed(3))
    c = sample_toy(name, 2000, torch.Generator().manual_seed(4))
    assert a.shape == (2000, 2) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.mean(0).abs().max() < 0.35  # centred near 0
    assert 0.5 < a.std(0).min() and a.std(0).max() < 2.0  # one schedule suits them all


def test_moons_lie_on_their_arcs():
    x = sample_toy("moons", 5000, torch.Generator().manual_seed(0)) / 1.5 + torch.tensor([0.5,
                                                                                         0.25])
    upper = (x.norm(dim=1) - 1).abs()  # distance to the unit circle
    lower = ((x - torch.tensor([1.0, 0.5])).norm(dim=1) - 1).abs()
    distance = torch.minimum(upper, lower)
    assert distance.max() < 5 * 0.05 / 1.5 + 0.01  # within 5 noise standard deviations
    assert 0.45 < (upper < lower).float().mean() < 0.55  # half the points on each moon


def test_swiss_roll_follows_r_equals_theta():
    centre = torch.tensor([2.0, 2 / (3 * math.pi)])
    x = sample_toy("swiss_roll", 2000, torch.Generator().manual_seed(0)) * 5 + centre
    theta = torch.linspace(1.5 * math.pi, 4.5 * math.pi, 4000)
    curve = torch.stack([theta * theta.cos(), theta * theta.sin()], dim=1)  # r = θ
    distance = torch.cdist(x, curve).min(dim=1).values
    assert distance.max() < 5 * 0.05 * 5 * math.sqrt(2)  # 5 noise std (0.25 after scaling)
    assert distance.median() < 0.25


def test_checkerboard_fills_the_dark_squares_evenly():
    n = 16000
    x = sample_toy("checkerboard", n, torch.Generator().manual_seed(0))
    cells = torch.floor(x + 2).long()  # (col, row) of each point's square
    assert cells.min() >= 0 and cells.max() <= 3
    assert ((cells[:, 0] + cells[:, 1]) % 2 == 0).all()  # only dark squares
    counts = torch.bincount(cells[:, 1] * 4 + cells[:, 0], minlength=16)
    dark = counts[counts > 0].float()
    assert len(dark) == 8
    chi2 = ((dark - n / 8) ** 2 / (n / 8)).sum()
    assert chi2 < 24.3  # the 0.1 % tail of chi² with 7 degrees of freedom


@pytest.mark.parametrize("name", MIXTURES)
def test_mixture_samples_follow_their_mixture(name):
    gm = toy_mixture(name)
    x = sample_toy(name, 20000, torch.Generator().manual_seed(1)).double()
    torch.testing.assert_close(x.mean(0), gm.mean(), atol=0.05, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), gm.covariance(), atol=0.06, rtol=0.03)
    # the exact density is higher on its own samples than on shuffled-coordinate points
    shuffled = torch.stack([x[:, 0], x[torch.randperm(len(x)), 1]], dim=1)
    assert gm.log_prob(x).mean() > gm.log_prob(shuffled).mean() + 0.3


def test_unknown_names():
    with pytest.raises(UserError, match="unknown toy data set 'spiral'"):
        sample_toy("spiral", 10)
    with pytest.raises(UserError, match="not a mixture"):
        toy_mixture("moons")
