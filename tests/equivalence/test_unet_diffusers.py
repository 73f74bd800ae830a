"""Our UNet equals diffusers' UNet2DConditionModel on the same weights, through files both ways.

A random diffusers UNet is saved with `save_pretrained`, read by `UNet.from_diffusers`, and both
predict ε for the same (x_t, t, text); then ours is saved with `save_diffusers` and diffusers reads
it back. Configurations span diffusers' own tiny test UNet, three levels with attention on some
levels only, two layers per level, per-level head counts, and linear projections (SD 2 style).
"""

import pytest
import torch

diffusers = pytest.importorskip("diffusers")
from diffusers import UNet2DConditionModel  # noqa: E402

from fromscratch.stable_diffusion.unet import UNet, timestep_embedding  # noqa: E402

TOL = 1e-4
CA, D, CU, U = "CrossAttnDownBlock2D", "DownBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"

CONFIGS = {
    "diffusers_tiny": dict(block_out_channels=(4, 8), norm_num_groups=2, cross_attention_dim=8,
                           layers_per_block=1, attention_head_dim=2,
                           down_block_types=(CA, D), up_block_types=(U, CU)),
    "three_levels": dict(block_out_channels=(8, 16, 16), norm_num_groups=4,
                         cross_attention_dim=12, layers_per_block=2, attention_head_dim=(1, 2, 4),
                         down_block_types=(D, CA, CA), up_block_types=(CU, CU, U)),
    "linear_projection": dict(block_out_channels=(8, 16), norm_num_groups=8,
                              cross_attention_dim=6, layers_per_block=1, attention_head_dim=4,
                              use_linear_projection=True, transformer_layers_per_block=2,
                              in_channels=1, out_channels=2,
                              down_block_types=(CA, CA), up_block_types=(CU, CU)),
}


def random_unet(cfg: dict, seed: int = 0) -> UNet2DConditionModel:
    torch.manual_seed(seed)
    model = UNet2DConditionModel(sample_size=8, **{"in_channels": 4, "out_channels": 4, **cfg})
    with torch.no_grad():  # move every weight off its init so a mix-up cannot hide
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def inputs(model: UNet2DConditionModel, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, model.config.in_channels, 8, 8, generator=g)
    t = torch.tensor([3, 917])
    context = torch.randn(2, 5, model.config.cross_attention_dim, generator=g)
    return x, t, context


@pytest.mark.parametrize("name", CONFIGS)
def test_unet_equals_diffusers_both_ways(name, tmp_path):
    theirs = random_unet(CONFIGS[name])
    theirs.save_pretrained(tmp_path / "theirs")
    ours = UNet.from_diffusers(tmp_path / "theirs")
    x, t, context = inputs(theirs)
    with torch.no_grad():
        expected = theirs(x, t, encoder_hidden_states=context).sample
        got = ours(x, t, context)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= TOL
    assert expected.abs().max() > 0.1  # a real signal, not two zeros agreeing

    ours.save_diffusers(tmp_path / "ours")
    back = UNet2DConditionModel.from_pretrained(tmp_path / "ours").eval()
    with torch.no_grad():
        again = back(x, t, encoder_hidden_states=context).sample
    assert (again - expected).abs().max().item() <= TOL


def test_written_out_attention_equals_fused(tmp_path):
    theirs = random_unet(CONFIGS["diffusers_tiny"])
    theirs.save_pretrained(tmp_path)
    fused = UNet.from_diffusers(tmp_path)
    written = UNet.from_diffusers(tmp_path)
    for module in written.modules():
        if hasattr(module, "fast"):
            module.fast = False
    x, t, context = inputs(theirs)
    with torch.no_grad():
        assert torch.allclose(fused(x, t, context), written(x, t, context), atol=1e-5)


@pytest.mark.parametrize("dim", [4, 7, 320])
@pytest.mark.parametrize("flip,shift", [(True, 0), (False, 1)])
def test_timestep_embedding_equals_diffusers(dim, flip, shift):
    from diffusers.models.embeddings import get_timestep_embedding

    t = torch.tensor([0, 1, 17, 999])
    expected = get_timestep_embedding(t, dim, flip_sin_to_cos=flip, downscale_freq_shift=shift)
    got = timestep_embedding(t, dim, flip_sin_to_cos=flip, freq_shift=shift)
    assert torch.allclose(got, expected, atol=1e-6)
