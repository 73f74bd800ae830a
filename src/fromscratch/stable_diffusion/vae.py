"""The variational autoencoder of Stable Diffusion: images ↔ a small latent space.

Diffusion in pixel space spends most of its work on detail the eye barely sees. Stable Diffusion
first compresses a (3, H, W) image into latents (4, H/8, W/8) with an autoencoder, runs the
diffusion there, and decodes at the end. The encoder is a VAE's (Kingma & Welling 2014): it gives
a diagonal Gaussian q(z | x) = N(μ(x), diag σ²(x)), and a latent is drawn by reparameterisation,

    z = μ + σ ⊙ ε,   ε ~ N(0, I),   σ = exp(½ log σ²)          (log σ² clamped to [−30, 20])

(training used a small KL penalty toward N(0, I), so the latent space is smooth but sharp).
Latents are multiplied by `scaling_factor` (0.18215 for SD v1) so they have about unit variance,
which the diffusion's noise schedule assumes; `decode_latents` divides it back out.

Both halves are ResBlocks (from unet.py, with no time input), stride-2 convolutions down,
nearest-neighbour doubling up, and one self-attention layer over all pixels at the lowest
resolution. Parameter names follow diffusers' `AutoencoderKL`.
"""

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fromscratch.attention import scaled_dot_product_attention
from fromscratch.errors import UserError
from fromscratch.folders import (
    CONFIG,
    DIFFUSERS_WEIGHTS,
    load_diffusers,
    write_json,
    write_tensors,
)
from fromscratch.stable_diffusion.unet import Downsample2D, ResnetBlock2D, Upsample2D

EPS = 1e-6  # GroupNorm's ε throughout the VAE


class PixelSelfAttention(nn.Module):
    """One head of self-attention over the H·W pixels, with a GroupNorm before and the input
    added back after: out = x + Attn(GN(x)) (diffusers' VAE `Attention`, named alike)."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, channels, eps=EPS)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels), nn.Dropout(0.0)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        h = self.group_norm(x).flatten(2).transpose(1, 2)  # pixels as tokens: (B, H·W, C)
        q, k, v = self.to_q(h), self.to_k(h), self.to_v(h)
        h = scaled_dot_product_attention(q, k, v, fast=True)  # (B, H·W, C)
        h = self.to_out[0](h).transpose(1, 2).reshape(batch, channels, height, width)
        return x + h


class VAEMidBlock(nn.Module):
    """ResBlock → pixel self-attention → ResBlock, at the lowest resolution."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(channels, channels, None, groups, EPS)
                                      for _ in range(2)])
        self.attentions = nn.ModuleList([PixelSelfAttention(channels, groups)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resnets[1](self.attentions[0](self.resnets[0](x)))


class EncoderLevel(nn.Module):
    def __init__(self, in_channels, out_channels, layers, groups, downsample):
        super().__init__()
        self.resnets = nn.ModuleList([
            ResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, None, groups, EPS)
            for i in range(layers)])
        self.downsamplers = nn.ModuleList([Downsample2D(out_channels, padding=0)]) if downsample \
            else None

    def forward(self, x):
        for resnet in self.resnets:
            x = resnet(x)
        return x if self.downsamplers is None else self.downsamplers[0](x)


class DecoderLevel(nn.Module):
    def __init__(self, in_channels, out_channels, layers, groups, upsample):
        super().__init__()
        self.resnets = nn.ModuleList([
            ResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, None, groups, EPS)
            for i in range(layers)])
        self.upsamplers = nn.ModuleList([Upsample2D(out_channels)]) if upsample else None

    def forward(self, x):
        for resnet in self.resnets:
            x = resnet(x)
        return x if self.upsamplers is None else self.upsamplers[0](x)


class Encoder(nn.Module):
    """Image (B, C_img, H, W) → the Gaussian's [μ, log σ²] stacked: (B, 2·C_latent, H/f, W/f)."""

    def __init__(self, config: "VAEConfig"):
        super().__init__()
        channels, groups = config.block_out_channels, config.norm_num_groups
        self.conv_in = nn.Conv2d(config.in_channels, channels[0], 3, padding=1)
        self.down_blocks = nn.ModuleList([
            EncoderLevel(channels[max(i - 1, 0)], channels[i], config.layers_per_block, groups,
                         downsample=i < len(channels) - 1) for i in range(len(channels))])
        self.mid_block = VAEMidBlock(channels[-1], groups)
        self.conv_norm_out = nn.GroupNorm(groups, channels[-1], eps=EPS)
        self.conv_out = nn.Conv2d(channels[-1], 2 * config.latent_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for block in self.down_blocks:
            h = block(h)
        h = self.mid_block(h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


class Decoder(nn.Module):
    """Latent (B, C_latent, h, w) → image (B, C_img, h·f, w·f), one more ResBlock per level."""

    def __init__(self, config: "VAEConfig"):
        super().__init__()
        channels, groups = config.block_out_channels[::-1], config.norm_num_groups
        self.conv_in = nn.Conv2d(config.latent_channels, channels[0], 3, padding=1)
        self.mid_block = VAEMidBlock(channels[0], groups)
        self.up_blocks = nn.ModuleList([
            DecoderLevel(channels[max(i - 1, 0)], channels[i], config.layers_per_block + 1,
                         groups, upsample=i < len(channels) - 1) for i in range(len(channels))])
        self.conv_norm_out = nn.GroupNorm(groups, channels[-1], eps=EPS)
        self.conv_out = nn.Conv2d(channels[-1], config.out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid_block(self.conv_in(z))
        for block in self.up_blocks:
            h = block(h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


@dataclass
class VAEConfig:
    """Sizes of the autoencoder; the defaults are Stable Diffusion v1.x's (downsampling factor
    f = 2^(levels − 1) = 8). For MNIST try block_out_channels=(32, 64), in/out_channels=1,
    norm_num_groups=8, latent_channels=4: 28×28 → 4 × 14×14."""

    in_channels: int = 3
    out_channels: int = 3
    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    layers_per_block: int = 2
    latent_channels: int = 4
    norm_num_groups: int = 32
    sample_size: int = 512
    scaling_factor: float = 0.18215

    def __post_init__(self):
        self.block_out_channels = tuple(self.block_out_channels)


class AutoencoderKL(nn.Module):
    """Encoder, decoder and the two 1×1 convolutions around the latent (`quant_conv` on the
    Gaussian's parameters, `post_quant_conv` before decoding)."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quant_conv = nn.Conv2d(2 * config.latent_channels, 2 * config.latent_channels, 1)
        self.post_quant_conv = nn.Conv2d(config.latent_channels, config.latent_channels, 1)

    @property
    def downsampling_factor(self) -> int:
        return 2 ** (len(self.config.block_out_channels) - 1)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C_img, H, W) in [-1, 1] → (μ, log σ²), each (B, C_latent, H/f, W/f)."""
        mean, logvar = self.quant_conv(self.encoder(x)).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    @staticmethod
    def sample(mean: torch.Tensor, logvar: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """z = μ + σ ⊙ ε, ε ~ N(0, I): the reparameterisation trick (gradients flow to μ, σ)."""
        eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        return mean + torch.exp(0.5 * logvar) * eps

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Unscaled latent z (B, C_latent, h, w) → image (B, C_img, h·f, w·f), about [-1, 1]."""
        return self.decoder(self.post_quant_conv(z))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None,
                sample_posterior: bool = False) -> torch.Tensor:
        """Reconstruction: decode a draw of z (or its mean μ)."""
        mean, logvar = self.encode(x)
        z = self.sample(mean, logvar, generator) if sample_posterior else mean
        return self.decode(z)

    def encode_latents(self, x: torch.Tensor, generator: torch.Generator | None = None,
                       sample_posterior: bool = True) -> torch.Tensor:
        """The diffusion model's data: scaling_factor · z, about unit variance."""
        mean, logvar = self.encode(x)
        z = self.sample(mean, logvar, generator) if sample_posterior else mean
        return self.config.scaling_factor * z

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decode(latents / self.config.scaling_factor)

    @staticmethod
    def kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL(N(μ, σ²) ‖ N(0, 1)) = ½ Σ (μ² + σ² − 1 − log σ²), summed per example: (B,)."""
        return 0.5 * (mean**2 + logvar.exp() - 1.0 - logvar).flatten(1).sum(dim=1)

    # β of `loss`: a small KL weight keeps the latents near N(0, I) without blurring the images
    kl_weight: float = 1e-5

    def loss_terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction MSE per pixel, KL per example averaged over the batch) for images
        x (B, C, H, W) in [-1, 1], decoding one draw z ~ q(z | x)."""
        mean, logvar = self.encode(x)
        reconstruction = self.decode(self.sample(mean, logvar))
        return F.mse_loss(reconstruction, x), self.kl(mean, logvar).mean()

    def loss(self, batch) -> torch.Tensor:
        """The VAE objective the loop minimises, MSE + β·KL (β = kl_weight), a negative ELBO
        with a Gaussian decoder of fixed variance, up to scale. batch: images in [-1, 1], or
        a tuple whose first entry they are."""
        x = batch[0] if isinstance(batch, tuple | list) else batch
        mse, kl = self.loss_terms(x)
        return mse + self.kl_weight * kl

    @classmethod
    def from_diffusers(cls, path: str | Path) -> "AutoencoderKL":
        """Read a diffusers `AutoencoderKL` folder (config.json + safetensors weights)."""
        return load_diffusers(cls, config_from_diffusers, path, "AutoencoderKL")

    def save_diffusers(self, path: str | Path) -> None:
        """Write a folder `AutoencoderKL.from_pretrained` reads (weights first, then config)."""
        folder = Path(path)
        write_tensors(folder / DIFFUSERS_WEIGHTS, self.state_dict())
        levels = len(self.config.block_out_channels)
        write_json(folder / CONFIG, {"_class_name": "AutoencoderKL", **asdict(self.config),
                                     "block_out_channels": list(self.config.block_out_channels),
                                     "down_block_types": ["DownEncoderBlock2D"] * levels,
                                     "up_block_types": ["UpDecoderBlock2D"] * levels})


# The options of diffusers' AutoencoderKL we support, at their only supported value.
SUPPORTED = {"act_fn": "silu", "shift_factor": None, "use_quant_conv": True,
             "use_post_quant_conv": True, "mid_block_add_attention": True}


def config_from_diffusers(cfg: dict) -> VAEConfig:
    for key, value in SUPPORTED.items():
        if cfg.get(key, value) != value:
            raise UserError(f"VAE config {key}={cfg[key]!r} is not supported (only {value!r})")
    blocks = set(cfg.get("down_block_types", [])) | set(cfg.get("up_block_types", []))
    if not blocks <= {"DownEncoderBlock2D", "UpDecoderBlock2D"}:
        raise UserError(f"VAE block types {sorted(blocks)} are not supported")
    return VAEConfig(
        in_channels=cfg.get("in_channels", 3), out_channels=cfg.get("out_channels", 3),
        block_out_channels=tuple(cfg.get("block_out_channels", (64,))),
        layers_per_block=cfg.get("layers_per_block", 1),
        latent_channels=cfg.get("latent_channels", 4),
        norm_num_groups=cfg.get("norm_num_groups", 32), sample_size=cfg.get("sample_size", 32),
        scaling_factor=cfg.get("scaling_factor", 0.18215))
