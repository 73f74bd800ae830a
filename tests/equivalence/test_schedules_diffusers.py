"""Our discrete noise schedules = diffusers' DDPMScheduler: same betas and alphas_cumprod, and the
same noisy sample from `add_noise`."""

import pytest
import torch

diffusers = pytest.importorskip("diffusers")
from diffusers import DDPMScheduler  # noqa: E402

from fromscratch.diffusion.sde import (  # noqa: E402
    DiscreteSchedule,
    cosine_betas,
    linear_betas,
    scaled_linear_betas,
)

CASES = [  # (diffusers beta_schedule, our constructor, kwargs for both)
    ("linear", linear_betas, {}),
    ("linear", linear_betas, {"beta_start": 1e-3, "beta_end": 0.05}),
    ("scaled_linear", scaled_linear_betas, {"beta_start": 0.00085, "beta_end": 0.012}),
    ("squaredcos_cap_v2", cosine_betas, {}),
]


@pytest.mark.parametrize("N", [1000, 50])
@pytest.mark.parametrize("schedule,ours,kwargs", CASES)
def test_alphas_cumprod_equal_diffusers(N, schedule, ours, kwargs):
    ref = DDPMScheduler(num_train_timesteps=N, beta_schedule=schedule, **kwargs)
    sched = DiscreteSchedule(ours(N, **kwargs))  # float32 like diffusers
    # diffusers works in float32 throughout; ours takes the product in float64
    torch.testing.assert_close(sched.betas, ref.betas, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(sched.alphas_cumprod, ref.alphas_cumprod, rtol=1e-4, atol=1e-7)

    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(4, 3, 8, 8, generator=gen)
    t = torch.tensor([0, N // 3, N // 2, N - 1])
    x_t, eps = sched.perturb(x0, t, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(x_t, ref.add_noise(x0, eps, t), rtol=1e-4, atol=1e-5)
