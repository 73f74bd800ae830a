"""Our DDPM, DDIM and DPM-Solver++(2M) walk the same trajectories as diffusers' schedulers.

Both sides get the same ε-prediction function, the same x_T, the same timesteps and, for the
stochastic samplers, the same noise: diffusers draws its step noise with
`randn_tensor(shape, generator=generator, dtype=...)`, i.e. one `torch.randn` call per noisy step
from the generator it is handed, exactly as our samplers do, so two generators seeded alike give
both sides the same z at every step. Every intermediate x_t must agree to 1e-5.
"""

import pytest
import torch

diffusers = pytest.importorskip("diffusers")
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler  # noqa: E402

from fromscratch.diffusion.samplers import (  # noqa: E402
    ddim,
    ddpm,
    discrete_timesteps,
    dpm_solver_2m,
)
from fromscratch.diffusion.sde import DiscreteSchedule, linear_betas  # noqa: E402

TOL = 1e-5
SHAPE = (3, 2, 4, 4)  # (B, C, H, W): any shape works, images are the common case
DATA_MEAN, DATA_STD = 0.3, 0.5  # ε-function: the exact noise predictor of N(0.3, 0.5²) data ...


def make_eps_model(alphas_cumprod: torch.Tensor):
    """ε̂(x_t, t) = σ (x_t − α μ)/(α² s² + σ²) + 0.1 tanh(x_t): the exact E[ε | x_t] for data
    N(μ, s²) per coordinate, plus a nonlinear term so no step can hide behind linearity.
    Takes t as an int tensor (B,) (ours) or a 0-d tensor (diffusers)."""

    def eps_model(x, t):
        alpha_bar = alphas_cumprod[t.long()].double()
        alpha_bar = alpha_bar.reshape(-1, *([1] * (x.dim() - 1))) if alpha_bar.dim() else alpha_bar
        a, s = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
        exact = s * (x.double() - a * DATA_MEAN) / (a**2 * DATA_STD**2 + s**2)
        return (exact + 0.1 * torch.tanh(x.double())).to(x.dtype)

    return eps_model


@pytest.fixture(scope="module")
def schedule():
    return DiscreteSchedule(linear_betas(1000))


def x_T(seed=0):
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed))


def diffusers_trajectory(scheduler, eps_model, x, generator=None, **step_kwargs):
    """diffusers' own sampling loop: model, then scheduler.step, at each of its timesteps."""
    trajectory = [x]
    for t in scheduler.timesteps:
        eps = eps_model(x, t)
        x = scheduler.step(eps, t, x, generator=generator, **step_kwargs).prev_sample
        trajectory.append(x)
    return torch.stack(trajectory)


def assert_same_trajectory(ours, theirs):
    assert ours.shape == theirs.shape
    err = (ours - theirs).abs().max().item()
    assert err <= TOL, f"max |ours - diffusers| = {err:.2e} over the trajectory"


def test_same_linear_schedule_as_diffusers(schedule):
    theirs = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    assert torch.allclose(schedule.alphas_cumprod, theirs.alphas_cumprod, rtol=1e-5, atol=0)


@pytest.mark.parametrize("steps", [2, 7, 50, 1000])
@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_timesteps_equal_diffusers(steps, spacing):
    scheduler = DDPMScheduler(num_train_timesteps=1000, timestep_spacing=spacing)
    scheduler.set_timesteps(steps)
    assert discrete_timesteps(1000, steps, spacing) == scheduler.timesteps.tolist()


@pytest.mark.parametrize("steps,spacing", [(50, "leading"), (13, "trailing")])
def test_ddpm_equals_diffusers(schedule, steps, spacing):
    eps_model = make_eps_model(schedule.alphas_cumprod)
    scheduler = DDPMScheduler(num_train_timesteps=1000, clip_sample=False)
    scheduler.set_timesteps(timesteps=discrete_timesteps(1000, steps, spacing))
    theirs = diffusers_trajectory(scheduler, eps_model, x_T(), torch.Generator().manual_seed(5))
    _, ours = ddpm(eps_model, x_T(), schedule, steps, spacing=spacing,
                   generator=torch.Generator().manual_seed(5), return_trajectory=True)
    assert_same_trajectory(ours, theirs)
    assert (ours[-1] - ours[-2]).abs().max() > 1e-3  # the chain moved on its last step


def test_ddpm_all_1000_steps_equal_diffusers_in_float64():
    """All 1000 steps, in float64 on both sides with one ᾱ table. (In float32, diffusers'
    β_t = 1 − ᾱ_t/ᾱ_{t−1} keeps only 3 of its digits where β ≈ 1e-4, and the two chains drift
    apart by ~9e-5 over the last steps; in float64 they agree to ~1e-12.)"""
    schedule = DiscreteSchedule(linear_betas(1000), dtype=torch.float64)
    eps_model = make_eps_model(schedule.alphas_cumprod)
    scheduler = DDPMScheduler(num_train_timesteps=1000, clip_sample=False)
    scheduler.alphas_cumprod = schedule.alphas_cumprod.clone()
    scheduler.set_timesteps(1000)
    x = x_T().double()
    theirs = diffusers_trajectory(scheduler, eps_model, x, torch.Generator().manual_seed(5))
    _, ours = ddpm(eps_model, x, schedule, 1000, generator=torch.Generator().manual_seed(5),
                   return_trajectory=True)
    assert_same_trajectory(ours, theirs)
    assert (ours[-1] - ours[-2]).abs().max() > 1e-3  # the chain moved on its last step


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("steps,spacing", [(50, "leading"), (10, "trailing"), (1, "leading")])
def test_ddim_equals_diffusers(schedule, eta, steps, spacing):
    eps_model = make_eps_model(schedule.alphas_cumprod)
    scheduler = DDIMScheduler(num_train_timesteps=1000, clip_sample=False, timestep_spacing=spacing)
    scheduler.set_timesteps(steps)
    assert scheduler.timesteps.tolist() == discrete_timesteps(1000, steps, spacing)
    theirs = diffusers_trajectory(scheduler, eps_model, x_T(1), torch.Generator().manual_seed(7),
                                  eta=eta)
    _, ours = ddim(eps_model, x_T(1), schedule, steps, eta=eta, spacing=spacing,
                   generator=torch.Generator().manual_seed(7), return_trajectory=True)
    assert_same_trajectory(ours, theirs)


def test_ddim_eta_one_is_stochastic_and_eta_zero_is_not(schedule):
    eps_model = make_eps_model(schedule.alphas_cumprod)
    runs = {
        (eta, seed): ddim(eps_model, x_T(), schedule, 20, eta=eta,
                          generator=torch.Generator().manual_seed(seed))
        for eta in (0.0, 1.0) for seed in (0, 1)
    }
    assert torch.equal(runs[0.0, 0], runs[0.0, 1])
    assert (runs[1.0, 0] - runs[1.0, 1]).abs().max() > 0.1


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # diffusers'
@pytest.mark.parametrize("steps,spacing", [(20, "leading"), (8, "linspace"), (25, "trailing")])
def test_dpm_solver_2m_equals_diffusers(schedule, steps, spacing):
    eps_model = make_eps_model(schedule.alphas_cumprod)
    scheduler = DPMSolverMultistepScheduler(
        num_train_timesteps=1000, algorithm_type="dpmsolver++", solver_order=2,
        solver_type="midpoint", final_sigmas_type="zero",
    )
    scheduler.set_timesteps(timesteps=discrete_timesteps(1000, steps, spacing))
    theirs = diffusers_trajectory(scheduler, eps_model, x_T(2))
    _, ours = dpm_solver_2m(eps_model, x_T(2), schedule, steps, spacing=spacing,
                            return_trajectory=True)
    assert_same_trajectory(ours, theirs)


def test_dpm_solver_2m_is_not_ddim(schedule):
    """The second-order correction matters: DPM-Solver++(2M) ≠ DDIM (its first-order method)."""
    eps_model = make_eps_model(schedule.alphas_cumprod)
    first_order = ddim(eps_model, x_T(), schedule, 10)
    second_order = dpm_solver_2m(eps_model, x_T(), schedule, 10)
    assert (first_order - second_order).abs().max() > 1e-3
    assert torch.allclose(dpm_solver_2m(eps_model, x_T(), schedule, 1),
                          ddim(eps_model, x_T(), schedule, 1), atol=1e-6)
