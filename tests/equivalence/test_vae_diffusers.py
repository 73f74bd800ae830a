"""Our AutoencoderKL equals diffusers' on the same weights, through files both ways: the
Gaussian's mean and log-variance, a reparameterised draw with the same generator, the decoder,
and the scaled latents of the diffusion model."""

import pytest
import torch

diffusers = pytest.importorskip("diffusers")
from diffusers import AutoencoderKL as TheirAutoencoderKL  # noqa: E402

from fromscratch.stable_diffusion.vae import AutoencoderKL  # noqa: E402

TOL = 1e-4
CONFIGS = {
    "two_levels": dict(block_out_channels=(4, 8), norm_num_groups=2, layers_per_block=1),
    "three_levels": dict(block_out_channels=(8, 8, 16), norm_num_groups=4, layers_per_block=2,
                         in_channels=1, out_channels=1, latent_channels=2, scaling_factor=0.5),
}


def random_vae(cfg: dict, seed: int = 0) -> TheirAutoencoderKL:
    torch.manual_seed(seed)
    levels = len(cfg["block_out_channels"])
    model = TheirAutoencoderKL(sample_size=16, down_block_types=("DownEncoderBlock2D",) * levels,
                               up_block_types=("UpDecoderBlock2D",) * levels, **cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def max_err(a, b):
    assert a.shape == b.shape
    return (a - b).abs().max().item()


@pytest.mark.parametrize("name", CONFIGS)
def test_vae_equals_diffusers_both_ways(name, tmp_path):
    theirs = random_vae(CONFIGS[name])
    theirs.save_pretrained(tmp_path / "theirs")
    ours = AutoencoderKL.from_diffusers(tmp_path / "theirs")
    x = torch.rand(2, theirs.config.in_channels, 16, 16, generator=torch.Generator().manual_seed(1))
    x = 2 * x - 1
    with torch.no_grad():
        posterior = theirs.encode(x).latent_dist
        mean, logvar = ours.encode(x)
        assert max_err(mean, posterior.mean) <= TOL
        assert max_err(logvar, posterior.logvar) <= TOL
        draw = posterior.sample(generator=torch.Generator().manual_seed(5))
        ours_draw = ours.sample(mean, logvar, generator=torch.Generator().manual_seed(5))
        assert max_err(ours_draw, draw) <= TOL
        assert max_err(ours_draw, mean) > 1e-3  # the draw is not the mean
        image = theirs.decode(draw).sample
        assert max_err(ours.decode(ours_draw), image) <= TOL
        assert max_err(ours(x), theirs(x).sample) <= TOL
        scaled = ours.encode_latents(x, sample_posterior=False)
        assert max_err(scaled, theirs.config.scaling_factor * posterior.mean) <= TOL
        assert max_err(ours.decode_latents(scaled), theirs.decode(posterior.mean).sample) <= TOL

    ours.save_diffusers(tmp_path / "ours")
    back = TheirAutoencoderKL.from_pretrained(tmp_path / "ours").eval()
    assert back.config.scaling_factor == theirs.config.scaling_factor
    with torch.no_grad():
        assert max_err(back.decode(draw).sample, image) <= TOL
