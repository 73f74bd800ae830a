"""Sample distances against analytic values: W2 and sliced W2 between Gaussians, MMD of Gaussians
in closed form, and the exact 1-D W2 of unequal samples against a brute-force expansion."""

import math

import pytest
import torch

from fromscratch.diffusion.metrics import (
    mmd,
    random_directions,
    sliced_wasserstein2,
    wasserstein2_1d,
)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_w2_1d_of_shifted_copies_is_the_shift():
    x = torch.randn(1000, generator=gen(0), dtype=torch.float64)
    assert float(wasserstein2_1d(x, x + 0.7)) == pytest.approx(0.7, abs=1e-12)
    assert float(wasserstein2_1d(x, x[torch.randperm(1000, generator=gen(1))])) == 0.0


@pytest.mark.parametrize("n,m", [(6, 4), (7, 3), (1, 5), (12, 12)])
def test_w2_1d_of_unequal_sizes_equals_the_expanded_equal_size_problem(n, m):
    """Repeat each x m/g times and each y n/g times (g = gcd): two samples of equal size
    lcm(n, m) with the same empirical distributions, where W2² is the mean squared gap of the
    sorted values."""
    x = torch.randn(n, generator=gen(n), dtype=torch.float64)
    y = torch.randn(m, generator=gen(100 + m), dtype=torch.float64) * 2 + 1
    g = math.gcd(n, m)
    x_big = x.sort().values.repeat_interleave(m // g)
    y_big = y.sort().values.repeat_interleave(n // g)
    brute = (x_big - y_big).pow(2).mean().sqrt()
    assert float(wasserstein2_1d(x, y)) == pytest.approx(float(brute), rel=1e-12)


def test_w2_between_two_1d_gaussians():
    """W2(N(m1, s1²), N(m2, s2²))² = (m1 − m2)² + (s1 − s2)²."""
    x = 1.0 + 2.0 * torch.randn(40_000, generator=gen(2), dtype=torch.float64)
    y = -0.5 + 0.5 * torch.randn(30_000, generator=gen(3), dtype=torch.float64)
    exact = math.sqrt(1.5**2 + 1.5**2)
    assert float(wasserstein2_1d(x, y)) == pytest.approx(exact, rel=0.02)


def test_random_directions_are_unit_and_isotropic():
    theta = random_directions(20_000, 3, gen(4), dtype=torch.float64)
    assert torch.allclose(theta.norm(dim=1), torch.ones(20_000, dtype=torch.float64))
    # E[θ θᵀ] = I / D for θ uniform on the sphere
    assert torch.allclose(theta.T @ theta / 20_000, torch.eye(3, dtype=torch.float64) / 3,
                          atol=0.01)


def test_sliced_w2_between_isotropic_gaussians():
    """Every projection of N(m, s² I) is N(θᵀm, s²), so SW2² = E(θᵀΔm)² + (s1 − s2)² =
    |Δm|²/D + (s1 − s2)²."""
    D = 2
    dm = torch.tensor([1.0, -2.0], dtype=torch.float64)
    x = torch.randn(4000, D, generator=gen(5)) * 1.5
    y = dm.float() + torch.randn(4000, D, generator=gen(6)) * 0.5
    exact = math.sqrt(float(dm @ dm) / D + 1.0**2)
    assert sliced_wasserstein2(x, y, n_projections=1000) == pytest.approx(exact, rel=0.03)
    assert sliced_wasserstein2(x, x) == 0.0


def gaussian_kernel_mean(mean_gap: float, var_sum: float, dim: int, h: float) -> float:
    """E k(x, y) for x − y ~ N(Δm, v I), k = exp(−|x−y|²/(2h²)):
    (h²/(h² + v))^{D/2} exp(−|Δm|²/(2(h² + v)))."""
    return (h**2 / (h**2 + var_sum)) ** (dim / 2) * math.exp(-mean_gap**2 / (2 * (h**2 + var_sum)))


def test_mmd_of_two_gaussians_matches_the_closed_form():
    """For x ~ N(0, s1² I) and y ~ N(Δm, s2² I) every term of MMD² is a Gaussian integral; the
    V-statistic adds the diagonal k(x, x) = 1 with weight 1/n (its known bias)."""
    h, D, n, m = 0.7, 2, 3000, 2000
    s1, s2, gap = 1.0, 0.7, 0.8
    x = torch.randn(n, D, generator=gen(7), dtype=torch.float64) * s1
    y = torch.randn(m, D, generator=gen(8), dtype=torch.float64) * s2
    y[:, 0] += gap
    kxx = gaussian_kernel_mean(0.0, 2 * s1**2, D, h)
    kyy = gaussian_kernel_mean(0.0, 2 * s2**2, D, h)
    kxy = gaussian_kernel_mean(gap, s1**2 + s2**2, D, h)
    expected_sq = (1 / n + (1 - 1 / n) * kxx) + (1 / m + (1 - 1 / m) * kyy) - 2 * kxy
    assert mmd(x, y, h) ** 2 == pytest.approx(expected_sq, rel=0.05)
    assert expected_sq > 0.05  # far from the floor: the test can tell distributions apart


def test_mmd_of_identical_sets_is_zero_and_of_two_draws_is_small():
    x = torch.randn(2000, 2, generator=gen(9), dtype=torch.float64)
    assert mmd(x, x) == pytest.approx(0.0, abs=1e-6)
    same = mmd(x, torch.randn(2000, 2, generator=gen(10), dtype=torch.float64))
    shifted = mmd(x, torch.randn(2000, 2, generator=gen(10), dtype=torch.float64) + 0.3)
    assert same < 0.05 < shifted


def test_blocks_do_not_change_the_mmd():
    x = torch.randn(300, 2, generator=gen(11), dtype=torch.float64)
    y = torch.randn(200, 2, generator=gen(12), dtype=torch.float64) + 0.2
    assert mmd(x, y, block=64) == pytest.approx(mmd(x, y, block=10_000), rel=1e-10)
    assert mmd(x, x.clone(), block=64) == pytest.approx(0.0, abs=1e-6)  # the non-symmetric path


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="same dimension"):
        mmd(torch.zeros(3, 2), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="same dimension"):
        sliced_wasserstein2(torch.zeros(3), torch.zeros(3))
