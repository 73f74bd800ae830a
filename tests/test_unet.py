"""The UNet's own contract, apart from diffusers: MNIST-size and SD-size configurations, per-level
heads, masked text tokens have no influence, the fused and written-out attention agree, time
changes the output, files round-trip, bad sizes and folders say what to do."""

import json

import pytest
import torch

from fromscratch.errors import UserError
from fromscratch.stable_diffusion.unet import UNet, UNetConfig

MNIST = UNetConfig(in_channels=1, out_channels=1, block_out_channels=(8, 16),
                   attention_levels=(False, True), layers_per_block=1, num_attention_heads=2,
                   cross_attention_dim=6, norm_num_groups=4, sample_size=28)


def test_mnist_size_shapes_and_time_dependence():
    unet = UNet(MNIST).eval()
    x, context = torch.randn(2, 1, 28, 28), torch.randn(2, 3, 6)
    with torch.no_grad():
        out = unet(x, torch.tensor([1, 1]), context)
        later = unet(x, torch.tensor([500, 500]), context)
        scalar_t = unet(x, torch.tensor(1), context)
    assert out.shape == x.shape
    assert torch.equal(out, scalar_t)  # a scalar timestep is broadcast over the batch
    assert (out - later).abs().max() > 1e-4


def test_sd_v1_parameter_count():
    with torch.device("meta"):
        unet = UNet(UNetConfig())
    assert sum(p.numel() for p in unet.parameters()) == 859_520_964  # SD v1.x's UNet


def test_masked_text_tokens_have_no_influence():
    unet = UNet(MNIST).eval()
    x, context = torch.randn(1, 1, 28, 28), torch.randn(1, 4, 6)
    mask = torch.tensor([[True, True, False, False]])[:, None, None, :]  # (B, 1, 1, T)
    changed = context.clone()
    changed[:, 2:] = 100.0  # only masked tokens change
    with torch.no_grad():
        a = unet(x, torch.tensor([3]), context, mask)
        b = unet(x, torch.tensor([3]), changed, mask)
        c = unet(x, torch.tensor([3]), changed)
    assert torch.allclose(a, b, atol=1e-5) and (a - c).abs().max() > 1e-3


def test_per_level_heads_and_file_round_trip(tmp_path):
    config = UNetConfig(in_channels=2, out_channels=2, block_out_channels=(8, 8, 16),
                        attention_levels=(True, False, True), layers_per_block=2,
                        num_attention_heads=(1, 2, 4), cross_attention_dim=5, norm_num_groups=4)
    unet = UNet(config).eval()
    assert unet.down_blocks[2].attentions[0].transformer_blocks[0].attn2.heads == 4
    assert unet.up_blocks[2].attentions[0].transformer_blocks[0].attn1.heads == 1
    unet.save_diffusers(tmp_path)
    back = UNet.from_diffusers(tmp_path)
    assert back.config == config
    x, context = torch.randn(1, 2, 8, 8), torch.randn(1, 3, 5)
    with torch.no_grad():
        assert torch.equal(back(x, torch.tensor([7]), context), unet(x, torch.tensor([7]), context))


def test_bad_sizes_and_folders(tmp_path):
    with pytest.raises(UserError, match="norm groups"):
        UNetConfig(block_out_channels=(6, 12), attention_levels=(False, True), norm_num_groups=4)
    with pytest.raises(UserError, match="attention_levels has 4 entries"):
        UNetConfig(block_out_channels=(8, 16))
    unet = UNet(MNIST)
    with pytest.raises(ValueError, match="must divide by") as wrong_input:  # a bug, not a setting
        unet(torch.randn(1, 1, 27, 27), torch.tensor([0]), torch.randn(1, 2, 6))
    assert not isinstance(wrong_input.value, UserError)
    unet.save_diffusers(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "class_embed_type": "timestep"}))
    with pytest.raises(UserError, match="class_embed_type"):
        UNet.from_diffusers(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "cross_attention_dim": 7}))
    with pytest.raises(UserError, match="do not match"):
        UNet.from_diffusers(tmp_path)
