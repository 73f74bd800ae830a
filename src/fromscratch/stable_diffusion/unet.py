"""The UNet of Stable Diffusion: a noise predictor ε̂(x_t, t, text) on images or latents.

    x_t ─ conv_in ─┬─ down 0 ─┬─ down 1 ─ ... ─ mid ─ ... ─ up 1 ─┬─ up 0 ─┬─ conv_out ─ ε̂
                   │          └────────── skips ──────────────────┘        │
                   └────────────────────── skips ──────────────────────────┘

A level is `layers_per_block` ResBlocks (each followed, on attention levels, by a
SpatialTransformer), then a stride-2 convolution to half the resolution (all but the deepest
level). Every block's output is kept as a skip connection; the up path mirrors the down path with
one more block per level, each taking the newest remaining skip concatenated on channels, and
upsamples by nearest-neighbour doubling and a convolution.

Three inputs steer the network:
  - the timestep t, as a sinusoidal embedding (`timestep_embedding`) passed through an MLP and
    added to the features inside every ResBlock;
  - the text, as token embeddings c (B, T, D_text) that every SpatialTransformer attends to
    (cross-attention: queries from pixels, keys and values from words);
  - x_t itself.

Parameter names follow diffusers' `UNet2DConditionModel`, so its state dict loads as is;
`UNet.from_diffusers` / `save_diffusers` read and write its folder (config.json +
diffusion_pytorch_model.safetensors). Derivations: notebooks/18_unet.py (ResBlock, time
embedding, skips) and notebooks/19_cross_attention.py (SpatialTransformer, cross-attention).
"""

import math
from dataclasses import asdict, dataclass, field
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


# ---------------------------------------------------------------------------------------------
# Time embedding
# ---------------------------------------------------------------------------------------------
def timestep_embedding(t: torch.Tensor, dim: int, *, max_period: float = 10000.0,
                       flip_sin_to_cos: bool = True, freq_shift: float = 0.0) -> torch.Tensor:
    """Sinusoidal embedding of timesteps t (B,) into (B, dim), as in the Transformer's positions.

    With half = dim // 2 frequencies ω_k = max_period^(−k / (half − freq_shift)), k < half,

        emb(t) = [cos(ω_0 t), ..., cos(ω_{half−1} t), sin(ω_0 t), ..., sin(ω_{half−1} t)]

    (sin first when `flip_sin_to_cos` is False; a zero column is appended when dim is odd).
    Nearby t get nearby vectors, and the fast frequencies tell apart neighbouring steps while the
    slow ones place t in [0, 1000) (notebooks/18_unet.py §2).
    """
    half = dim // 2
    k = torch.arange(half, dtype=torch.float32, device=t.device)
    omega = torch.exp(-math.log(max_period) * k / (half - freq_shift))  # (half,)
    angles = t.float()[:, None] * omega[None, :]  # (B, half)
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)  # (B, 2·half)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb  # (B, dim)


class TimestepEmbedding(nn.Module):
    """The MLP after the sinusoids: Linear → SiLU → Linear, to the width every ResBlock reads."""

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(emb)))  # (B, dim)


# ---------------------------------------------------------------------------------------------
# ResBlock, down- and upsampling
# ---------------------------------------------------------------------------------------------
class ResnetBlock2D(nn.Module):
    """h = conv(SiLU(GN(x))) + W_t SiLU(temb);  h = conv(SiLU(GN(h)));  out = shortcut(x) + h.

    The time embedding enters as one bias per channel, the same at every pixel. The shortcut is
    the identity, or a 1×1 convolution when the channel count changes.
    """

    def __init__(self, in_channels: int, out_channels: int, temb_channels: int | None,
                 groups: int, eps: float = 1e-6):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels) if temb_channels else None
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv_shortcut = (nn.Conv2d(in_channels, out_channels, 1)
                              if in_channels != out_channels else None)

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C_out, H, W)
        if self.time_emb_proj is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]  # + (B, C_out, 1, 1)
        h = self.conv2(F.silu(self.norm2(h)))
        shortcut = x if self.conv_shortcut is None else self.conv_shortcut(x)
        return shortcut + h


class Downsample2D(nn.Module):
    """Half the resolution with a learned 3×3 convolution of stride 2."""

    def __init__(self, channels: int, padding: int = 1):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == 0:  # the VAE pads right and bottom only, so H/2 is exact
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample2D(nn.Module):
    """Double the resolution: copy each pixel to a 2×2 patch (nearest), then a 3×3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


# ---------------------------------------------------------------------------------------------
# Attention over pixels: self-attention, cross-attention to text, GEGLU
# ---------------------------------------------------------------------------------------------
class Attention(nn.Module):
    """Multi-head attention from `x` (B, N, C) to `context` (B, T, C_ctx) (itself if None).

        out = softmax(Q Kᵀ / √D) V W_o,   Q = x W_q,  K = context W_k,  V = context W_v

    Names (to_q, to_k, to_v, to_out.0) follow diffusers' `Attention`.
    """

    def __init__(self, dim: int, heads: int, context_dim: int | None = None,
                 qkv_bias: bool = False, fast: bool = True):
        super().__init__()
        if dim % heads != 0:
            raise UserError(f"{dim} channels do not split into {heads} heads")
        self.heads = heads
        self.fast = fast
        self.to_q = nn.Linear(dim, dim, bias=qkv_bias)
        self.to_k = nn.Linear(context_dim or dim, dim, bias=qkv_bias)
        self.to_v = nn.Linear(context_dim or dim, dim, bias=qkv_bias)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Dropout(0.0)])

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, channels = x.shape
        return x.view(batch, length, self.heads, channels // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        q = self.split_heads(self.to_q(x))  # (B, H, N, D)
        k = self.split_heads(self.to_k(context))  # (B, H, T, D)
        v = self.split_heads(self.to_v(context))  # (B, H, T, D)
        out = scaled_dot_product_attention(q, k, v, mask=mask, fast=self.fast)  # (B, H, N, D)
        out = out.transpose(1, 2).reshape(x.shape)  # concatenate the heads: (B, N, C)
        return self.to_out[0](out)


class GEGLU(nn.Module):
    """GEGLU(x) = (x W + b) ⊙ GELU(x V + c): a gated linear unit with a GELU gate (Shazeer 2020).
    W and V are stored stacked in one `proj` (2·inner, C), value half first."""

    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.proj = nn.Linear(dim, 2 * inner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU to 4C, then back to C. `net` indices match diffusers' (0 GEGLU, 1 dropout, 2 out)."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, mult * dim), nn.Dropout(0.0),
                                  nn.Linear(mult * dim, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net[2](self.net[0](x))


class BasicTransformerBlock(nn.Module):
    """Pre-norm transformer block on pixels as tokens, with a cross-attention sublayer:

        x = x + SelfAttn(LN(x));   x = x + CrossAttn(LN(x), text);   x = x + FF(LN(x))
    """

    def __init__(self, dim: int, heads: int, context_dim: int, fast: bool = True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, fast=fast)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, heads, context_dim=context_dim, fast=fast)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x))  # pixels look at pixels
        x = x + self.attn2(self.norm2(x), context, context_mask)  # pixels look at words
        return x + self.ff(self.norm3(x))


class SpatialTransformer(nn.Module):
    """Transformer blocks on an image: GroupNorm, project in, flatten H·W pixels into tokens,
    attend, unflatten, project out, add the input back (diffusers' `Transformer2DModel`).

    `use_linear_projection` (Stable Diffusion 2) projects with Linear layers after flattening;
    Stable Diffusion 1 uses 1×1 convolutions before it. The two are the same map.
    """

    def __init__(self, channels: int, heads: int, context_dim: int, groups: int,
                 depth: int = 1, use_linear_projection: bool = False, fast: bool = True):
        super().__init__()
        self.use_linear_projection = use_linear_projection
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        project = nn.Linear if use_linear_projection else nn.Conv2d
        extra = {} if use_linear_projection else {"kernel_size": 1}
        self.proj_in = project(channels, channels, **extra)
        self.transformer_blocks = nn.ModuleList(
            [BasicTransformerBlock(channels, heads, context_dim, fast) for _ in range(depth)])
        self.proj_out = project(channels, channels, **extra)

    def forward(self, x: torch.Tensor, context: torch.Tensor,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, channels, height, width = x.shape
        h = self.norm(x)
        if not self.use_linear_projection:
            h = self.proj_in(h)
        h = h.permute(0, 2, 3, 1).reshape(batch, height * width, channels)  # (B, H·W, C)
        if self.use_linear_projection:
            h = self.proj_in(h)
        for block in self.transformer_blocks:
            h = block(h, context, context_mask)
        if self.use_linear_projection:
            h = self.proj_out(h)
        h = h.reshape(batch, height, width, channels).permute(0, 3, 1, 2)  # (B, C, H, W)
        if not self.use_linear_projection:
            h = self.proj_out(h)
        return x + h


# ---------------------------------------------------------------------------------------------
# Levels
# ---------------------------------------------------------------------------------------------
class DownBlock(nn.Module):
    """One level of the down path: (ResBlock [→ SpatialTransformer]) × layers, then downsample.
    Returns the features and the skips: the output of every layer and of the downsampler."""

    def __init__(self, in_channels, out_channels, temb_channels, layers, attention, heads,
                 config, downsample):
        super().__init__()
        self.resnets = nn.ModuleList([
            ResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, temb_channels,
                          config.norm_num_groups, config.norm_eps) for i in range(layers)])
        if attention:
            self.attentions = nn.ModuleList([_spatial_transformer(out_channels, heads, config)
                                             for _ in range(layers)])
        self.downsamplers = nn.ModuleList([Downsample2D(out_channels)]) if downsample else None

    def forward(self, x, temb, context, context_mask=None):
        skips = []
        for i, resnet in enumerate(self.resnets):
            x = resnet(x, temb)
            if hasattr(self, "attentions"):
                x = self.attentions[i](x, context, context_mask)
            skips.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips


class UpBlock(nn.Module):
    """One level of the up path: (concat skip → ResBlock [→ SpatialTransformer]) × layers, then
    upsample. `skip_channels` lists the channels of the skips it takes, in the order taken."""

    def __init__(self, in_channels, out_channels, skip_channels, temb_channels, attention, heads,
                 config, upsample):
        super().__init__()
        self.resnets = nn.ModuleList([
            ResnetBlock2D((in_channels if i == 0 else out_channels) + skip, out_channels,
                          temb_channels, config.norm_num_groups, config.norm_eps)
            for i, skip in enumerate(skip_channels)])
        if attention:
            self.attentions = nn.ModuleList([_spatial_transformer(out_channels, heads, config)
                                             for _ in skip_channels])
        self.upsamplers = nn.ModuleList([Upsample2D(out_channels)]) if upsample else None

    def forward(self, x, skips, temb, context, context_mask=None):
        for i, resnet in enumerate(self.resnets):
            x = resnet(torch.cat([x, skips.pop()], dim=1), temb)  # newest skip first
            if hasattr(self, "attentions"):
                x = self.attentions[i](x, context, context_mask)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x)
        return x


class MidBlock(nn.Module):
    """At the lowest resolution: ResBlock → SpatialTransformer → ResBlock."""

    def __init__(self, channels, temb_channels, heads, config):
        super().__init__()
        self.resnets = nn.ModuleList([
            ResnetBlock2D(channels, channels, temb_channels, config.norm_num_groups,
                          config.norm_eps) for _ in range(2)])
        self.attentions = nn.ModuleList([_spatial_transformer(channels, heads, config)])

    def forward(self, x, temb, context, context_mask=None):
        x = self.resnets[0](x, temb)
        x = self.attentions[0](x, context, context_mask)
        return self.resnets[1](x, temb)


def _spatial_transformer(channels: int, heads: int, config: "UNetConfig") -> SpatialTransformer:
    return SpatialTransformer(channels, heads, config.cross_attention_dim, config.norm_num_groups,
                              config.transformer_layers_per_block, config.use_linear_projection,
                              config.fast_attention)


# ---------------------------------------------------------------------------------------------
# The UNet
# ---------------------------------------------------------------------------------------------
@dataclass
class UNetConfig:
    """Sizes of a UNet. The defaults are Stable Diffusion v1.x's; for 28×28 MNIST digits try
    `UNetConfig(in_channels=1, out_channels=1, block_out_channels=(32, 64),
    attention_levels=(False, True), num_attention_heads=4, cross_attention_dim=..., sample_size=28)`
    (28 → 14: every level but the deepest halves the resolution, so H must divide by 2^(levels−1)).

    attention_levels[i]: down level i (and its mirror on the up path) has SpatialTransformers.
    num_attention_heads: heads of every SpatialTransformer, or one count per level.
    """

    in_channels: int = 4
    out_channels: int = 4
    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    attention_levels: tuple[bool, ...] = (True, True, True, False)
    layers_per_block: int = 2
    num_attention_heads: int | tuple[int, ...] = 8
    cross_attention_dim: int = 768
    norm_num_groups: int = 32
    norm_eps: float = 1e-5
    transformer_layers_per_block: int = 1
    use_linear_projection: bool = False
    flip_sin_to_cos: bool = True
    freq_shift: int = 0
    sample_size: int = 64
    fast_attention: bool = field(default=True, compare=False)

    def __post_init__(self):
        self.block_out_channels = tuple(self.block_out_channels)
        self.attention_levels = tuple(bool(a) for a in self.attention_levels)
        if isinstance(self.num_attention_heads, list | tuple):
            self.num_attention_heads = tuple(self.num_attention_heads)
        levels = len(self.block_out_channels)
        if len(self.attention_levels) != levels:
            raise UserError(f"attention_levels has {len(self.attention_levels)} entries for "
                            f"{levels} levels")
        for channels in self.block_out_channels:
            if channels % self.norm_num_groups:
                raise UserError(f"{channels} channels do not split into "
                                f"{self.norm_num_groups} norm groups")

    def heads(self, level: int) -> int:
        if isinstance(self.num_attention_heads, tuple):
            return self.num_attention_heads[level]
        return self.num_attention_heads


class UNet(nn.Module):
    """ε̂ = UNet(x_t, t, text embeddings): the noise predictor of Stable Diffusion."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        channels = config.block_out_channels
        levels = len(channels)
        temb_channels = 4 * channels[0]
        self.conv_in = nn.Conv2d(config.in_channels, channels[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(channels[0], temb_channels)

        self.down_blocks = nn.ModuleList()
        skip_channels = [channels[0]]  # the skips, in the order the down path makes them
        for level in range(levels):
            last = level == levels - 1
            block_in = channels[max(level - 1, 0)]
            self.down_blocks.append(DownBlock(
                block_in, channels[level], temb_channels, config.layers_per_block,
                config.attention_levels[level], config.heads(level), config, not last))
            skip_channels += [channels[level]] * (config.layers_per_block + (not last))

        self.mid_block = MidBlock(channels[-1], temb_channels, config.heads(levels - 1), config)

        self.up_blocks = nn.ModuleList()
        block_in = channels[-1]
        for level in reversed(range(levels)):
            taken = [skip_channels.pop() for _ in range(config.layers_per_block + 1)]
            self.up_blocks.append(UpBlock(
                block_in, channels[level], taken, temb_channels, config.attention_levels[level],
                config.heads(level), config, upsample=level > 0))
            block_in = channels[level]

        self.conv_norm_out = nn.GroupNorm(config.norm_num_groups, channels[0], eps=config.norm_eps)
        self.conv_out = nn.Conv2d(channels[0], config.out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C_in, H, W), t timestep indices (B,) or a scalar, context (B, T, D_text)
        (context_mask: optional (B, 1, 1, T) boolean, True at tokens to attend). → (B, C_out, H, W)
        """
        levels = len(self.config.block_out_channels)
        if x.shape[-1] % 2 ** (levels - 1) or x.shape[-2] % 2 ** (levels - 1):
            raise ValueError(f"height and width {tuple(x.shape[-2:])} must divide by "
                             f"2^{levels - 1} = {2 ** (levels - 1)}")
        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(x.shape[0])  # (B,)
        emb = timestep_embedding(t, self.config.block_out_channels[0],
                                 flip_sin_to_cos=self.config.flip_sin_to_cos,
                                 freq_shift=self.config.freq_shift)
        temb = self.time_embedding(emb.to(x.dtype))  # (B, 4·C_0)

        h = self.conv_in(x)
        skips = [h]
        for block in self.down_blocks:
            h, block_skips = block(h, temb, context, context_mask)
            skips += block_skips
        h = self.mid_block(h, temb, context, context_mask)
        for block in self.up_blocks:
            h = block(h, skips, temb, context, context_mask)
        return self.conv_out(F.silu(self.conv_norm_out(h)))

    # -----------------------------------------------------------------------------------------
    # diffusers folders
    # -----------------------------------------------------------------------------------------
    @classmethod
    def from_diffusers(cls, path: str | Path) -> "UNet":
        """Read a diffusers `UNet2DConditionModel` folder (config.json + safetensors weights)."""
        return load_diffusers(cls, config_from_diffusers, path, "UNet")

    def save_diffusers(self, path: str | Path) -> None:
        """Write a folder that `UNet2DConditionModel.from_pretrained` reads (atomically per file:
        weights first, then config.json, so a folder with a config is complete)."""
        folder = Path(path)
        write_tensors(folder / DIFFUSERS_WEIGHTS, self.state_dict())
        write_json(folder / CONFIG, config_to_diffusers(self.config))


# ---------------------------------------------------------------------------------------------
# diffusers' config.json <-> UNetConfig
# ---------------------------------------------------------------------------------------------
ATTENTION_DOWN, PLAIN_DOWN = "CrossAttnDownBlock2D", "DownBlock2D"
ATTENTION_UP, PLAIN_UP = "CrossAttnUpBlock2D", "UpBlock2D"
# Keys of UNet2DConditionModel's config and the values we support (their defaults).
UNSUPPORTED_IF_SET = {
    "center_input_sample": False, "only_cross_attention": False, "dual_cross_attention": False,
    "class_embed_type": None, "addition_embed_type": None, "num_class_embeds": None,
    "time_cond_proj_dim": None, "encoder_hid_dim": None, "upcast_attention": False,
    "resnet_time_scale_shift": "default", "time_embedding_type": "positional",
    "mid_block_type": "UNetMidBlock2DCrossAttn", "act_fn": "silu", "downsample_padding": 1,
    "mid_block_scale_factor": 1, "resnet_out_scale_factor": 1.0, "conv_in_kernel": 3,
    "conv_out_kernel": 3, "time_embedding_dim": None, "timestep_post_act": None,
    "attention_type": "default",
}


def config_from_diffusers(cfg: dict) -> UNetConfig:
    for key, default in UNSUPPORTED_IF_SET.items():
        if cfg.get(key, default) != default:
            raise UserError(f"UNet config {key}={cfg[key]!r} is not supported (only {default!r})")
    down, up = cfg.get("down_block_types", []), cfg.get("up_block_types", [])
    if any(t not in (ATTENTION_DOWN, PLAIN_DOWN) for t in down):
        raise UserError(f"UNet down_block_types {down} not supported: use {ATTENTION_DOWN} or "
                        f"{PLAIN_DOWN}")
    attention_levels = tuple(t == ATTENTION_DOWN for t in down)
    mirrored = [ATTENTION_UP if a else PLAIN_UP for a in reversed(attention_levels)]
    if list(up) != mirrored:
        raise UserError(f"UNet up_block_types {up} must mirror down_block_types ({mirrored})")
    heads = cfg.get("num_attention_heads") or cfg.get("attention_head_dim", 8)
    depth = cfg.get("transformer_layers_per_block", 1)
    if not isinstance(depth, int):
        raise UserError("UNet transformer_layers_per_block must be one number for all levels")
    return UNetConfig(
        in_channels=cfg["in_channels"], out_channels=cfg["out_channels"],
        block_out_channels=tuple(cfg["block_out_channels"]), attention_levels=attention_levels,
        layers_per_block=cfg.get("layers_per_block", 2), num_attention_heads=heads,
        cross_attention_dim=cfg.get("cross_attention_dim", 1280),
        norm_num_groups=cfg.get("norm_num_groups", 32), norm_eps=cfg.get("norm_eps", 1e-5),
        transformer_layers_per_block=depth,
        use_linear_projection=cfg.get("use_linear_projection", False),
        flip_sin_to_cos=cfg.get("flip_sin_to_cos", True), freq_shift=cfg.get("freq_shift", 0),
        sample_size=cfg.get("sample_size", 64))


def config_to_diffusers(config: UNetConfig) -> dict:
    cfg = {k: v for k, v in asdict(config).items()
           if k not in ("attention_levels", "num_attention_heads", "fast_attention")}
    heads = config.num_attention_heads
    cfg.update(
        _class_name="UNet2DConditionModel",
        down_block_types=[ATTENTION_DOWN if a else PLAIN_DOWN for a in config.attention_levels],
        up_block_types=[ATTENTION_UP if a else PLAIN_UP for a in reversed(config.attention_levels)],
        # diffusers reads the head count from "attention_head_dim" (a historical misnomer)
        attention_head_dim=list(heads) if isinstance(heads, tuple) else heads,
        block_out_channels=list(config.block_out_channels))
    return cfg

