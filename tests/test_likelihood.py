"""Log-likelihood through the probability flow ODE: with the exact mixture score it recovers the
mixture's exact log density; the divergence estimators are right."""

import pytest
import torch

from fromscratch.data.toy2d import toy_mixture
from fromscratch.diffusion.likelihood import (
    divergence_exact,
    divergence_hutchinson,
    log_likelihood,
)
from fromscratch.diffusion.sde import VESDE, VPSDE, SubVPSDE
from fromscratch.errors import UserError


@pytest.mark.parametrize("sde", [VPSDE(), VESDE(), SubVPSDE()], ids=repr)
def test_exact_trace_recovers_the_mixture_log_density(sde):
    """Four 2-D points (two typical, two in the tails): |log p_ODE − log p_0| ≤ 0.01 nats per
    dimension with the exact score, exact trace and exact p_T, from ε = 1e-5."""
    gm = toy_mixture("mixture")
    x = torch.cat([gm.sample(2, torch.Generator().manual_seed(0)),
                   torch.tensor([[0.0, 0.0], [2.5, -2.5]], dtype=torch.float64)])
    T = torch.tensor(sde.T, dtype=torch.float64)
    ours = log_likelihood(x, lambda y, t: gm.score(y, t, sde), sde, t_start=1e-5,
                          prior_log_prob=lambda y: gm.log_prob(y, T, sde))
    exact = gm.log_prob(x)
    assert (ours - exact).abs().max() / 2 < 0.01, (ours, exact)
    # it is not loose: the density of a different mixture is off by far more
    assert (toy_mixture("eight_gaussians").log_prob(x) - ours).abs().max() > 1.0
    if isinstance(sde, VPSDE):  # VP's own N(0, I) prior is close enough to p_T here
        plain = log_likelihood(x, lambda y, t: gm.score(y, t, sde), sde, t_start=1e-5)
        assert (plain - exact).abs().max() / 2 < 0.01


def test_divergence_estimators():
    """Exact divergence = trace of the Jacobian (torch.func); Hutchinson's average over 4000
    Rademacher probes agrees within 5 standard errors."""
    A = torch.tensor([[1.0, 2.0], [-0.5, 3.0]], dtype=torch.float64)

    def fn(x):
        return torch.sin(x) @ A.T + x**2

    x = torch.randn(3, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    jac = torch.stack([torch.func.jacrev(lambda v: fn(v[None])[0])(xi) for xi in x])
    exact = jac.diagonal(dim1=1, dim2=2).sum(1)
    torch.testing.assert_close(divergence_exact(fn, x), exact)
    n = 4000
    xs = x.repeat(n, 1)
    z = torch.randint(0, 2, xs.shape, generator=torch.Generator().manual_seed(1)).double() * 2 - 1
    est = divergence_hutchinson(fn, xs, z).reshape(n, 3)
    assert ((est.mean(0) - exact).abs() < 5 * est.std(0) / n**0.5).all()


def test_hutchinson_likelihood_is_close():
    """One Hutchinson probe per path: noisy, but centred on the exact answer (0.5 nats here)."""
    gm = toy_mixture("mixture")
    sde = VPSDE()
    x = gm.sample(8, torch.Generator().manual_seed(3))
    ours = log_likelihood(x, lambda y, t: gm.score(y, t, sde), sde, trace="hutchinson",
                          generator=torch.Generator().manual_seed(0))
    assert (ours - gm.log_prob(x)).mean().abs() < 0.5
    with pytest.raises(UserError, match="trace must be"):
        log_likelihood(x, lambda y, t: y, sde, trace="skilling")
