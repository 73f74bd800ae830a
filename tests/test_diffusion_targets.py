"""Conversions between score, eps, x0 and v: round trips through every pair, agreement with the
definitions on known (x0, eps), and the data convention."""

import itertools

import pytest
import torch

from fromscratch.diffusion.sde import VESDE, VPSDE, DiscreteSchedule, SubVPSDE, linear_betas
from fromscratch.diffusion.targets import (
    KINDS,
    SIGMA_DATA,
    convert,
    predict,
    to_model_range,
    to_pixel_range,
)
from fromscratch.errors import UserError

PROCESSES = [VESDE(), VPSDE(), SubVPSDE()]


def known_pair(process, t):
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(len(t), 3, 4, 4, generator=gen, dtype=torch.float64)
    eps = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    a = process.alpha(t).view(-1, 1, 1, 1).double()
    s = process.sigma(t).view(-1, 1, 1, 1).double()
    x_t = a * x0 + s * eps
    truth = {"x0": x0, "eps": eps, "score": -eps / s, "v": a * eps - s * x0}
    return x_t, truth


@pytest.mark.parametrize("process", PROCESSES, ids=repr)
@pytest.mark.parametrize("source,target", list(itertools.product(KINDS, KINDS)))
def test_every_conversion_gives_the_definition(process, source, target):
    """From the true value of `source`, convert gives the true value of `target`: so every
    round trip source → target → source is the identity too."""
    t = torch.tensor([0.01, 0.3, 0.7, 1.0], dtype=torch.float64)
    x_t, truth = known_pair(process, t)
    a, s = process.alpha(t), process.sigma(t)
    out = convert(truth[source], source, target, x_t, a, s)
    torch.testing.assert_close(out, truth[target], rtol=1e-9, atol=1e-9)
    back = convert(out, target, source, x_t, a, s)
    torch.testing.assert_close(back, truth[source], rtol=1e-9, atol=1e-9)


def test_discrete_schedule_and_predict():
    sched = DiscreteSchedule(linear_betas(), dtype=torch.float64)
    t = torch.tensor([0, 250, 999])
    x_t, truth = known_pair(sched, t)

    def model(x, t_index):  # an oracle that predicts v
        assert t_index.dtype == torch.int64
        return truth["v"]

    torch.testing.assert_close(predict(model, "v", "eps", x_t, t, sched), truth["eps"])
    torch.testing.assert_close(predict(model, "v", "score", x_t, t, sched), truth["score"])


def test_python_number_alpha_sigma():
    x_t = torch.tensor([[1.0, 2.0]])
    eps = convert(torch.tensor([[0.5, 0.5]]), "x0", "eps", x_t, 0.6, 0.8)
    torch.testing.assert_close(eps, (x_t - 0.6 * 0.5) / 0.8)


def test_unknown_kind():
    x = torch.zeros(1, 2)
    with pytest.raises(UserError, match="unknown prediction kind 'noise'"):
        convert(x, "noise", "eps", x, 1.0, 1.0)
    with pytest.raises(UserError, match="unknown prediction kind"):
        convert(x, "eps", "eps2", x, 1.0, 1.0)


def test_data_convention():
    """Pixels [0, 1] ↔ model space [-1, 1]; uniform pixels have std 1/√3 there, close to EDM's
    SIGMA_DATA = 0.5 (which is what their preconditioning assumes)."""
    p = torch.tensor([0.0, 0.25, 0.5, 1.0])
    torch.testing.assert_close(to_model_range(p), torch.tensor([-1.0, -0.5, 0.0, 1.0]))
    torch.testing.assert_close(to_pixel_range(to_model_range(p)), p)
    torch.testing.assert_close(to_pixel_range(torch.tensor([-1.5, 1.2])), torch.tensor([0.0, 1.0]))
    u = to_model_range(torch.rand(200000, generator=torch.Generator().manual_seed(0)))
    assert u.mean().item() == pytest.approx(0.0, abs=0.01)
    assert u.std().item() == pytest.approx(3**-0.5, rel=0.01)
    assert SIGMA_DATA == 0.5
