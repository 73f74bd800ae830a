"""The VAE's pieces against written-out truths: KL to N(0, I), the reparameterisation's moments,
sizes, and bad folders."""

import json

import pytest
import torch

from fromscratch.errors import UserError
from fromscratch.stable_diffusion.vae import AutoencoderKL, VAEConfig

TINY = VAEConfig(in_channels=1, out_channels=1, block_out_channels=(4, 8), layers_per_block=1,
                 latent_channels=2, norm_num_groups=2)


def test_shapes_and_downsampling_factor():
    vae = AutoencoderKL(TINY)
    x = torch.randn(3, 1, 28, 28)
    mean, logvar = vae.encode(x)
    assert mean.shape == logvar.shape == (3, 2, 14, 14)
    assert vae.downsampling_factor == 2
    assert vae.decode(mean).shape == x.shape


def test_kl_against_torch_distributions():
    mean, logvar = torch.randn(4, 2, 3, 3), torch.randn(4, 2, 3, 3)
    q = torch.distributions.Normal(mean, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
    expected = torch.distributions.kl_divergence(q, p).flatten(1).sum(1)
    assert torch.allclose(AutoencoderKL.kl(mean, logvar), expected, atol=1e-5)


def test_reparameterised_draws_have_the_encoders_mean_and_std():
    mean = torch.full((20000, 1, 1, 1), 0.7)
    logvar = torch.full_like(mean, 2 * torch.log(torch.tensor(0.3)))
    z = AutoencoderKL.sample(mean, logvar, torch.Generator().manual_seed(0))
    assert abs(z.mean().item() - 0.7) < 0.01  # 4 standard errors: 0.3 / √20000 ≈ 0.002
    assert abs(z.std().item() - 0.3) < 0.01
    again = AutoencoderKL.sample(mean, logvar, torch.Generator().manual_seed(0))
    assert torch.equal(z, again)


def test_round_trip_through_files(tmp_path):
    vae = AutoencoderKL(TINY).eval()
    vae.save_diffusers(tmp_path)
    back = AutoencoderKL.from_diffusers(tmp_path)
    assert back.config == vae.config
    x = torch.randn(1, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(back(x), vae(x))


def test_bad_folders_say_what_to_do(tmp_path):
    with pytest.raises(UserError, match="no config.json"):
        AutoencoderKL.from_diffusers(tmp_path)
    AutoencoderKL(TINY).save_diffusers(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "latent_channels": 3}))
    with pytest.raises(UserError, match="do not match"):
        AutoencoderKL.from_diffusers(tmp_path)
