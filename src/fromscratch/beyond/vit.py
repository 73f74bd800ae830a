"""Vision transformer (ViT): an image cut into patches, read by the same blocks as GPT.

Notation: batch B, channels K, image side S, patch side P, N = (S / P)² patches, model width
C = n_embd, heads H, layers L, classes V. Images x (B, K, S, S).

    patches = patchify(x)                        (B, N, K·P·P): each patch flattened
    z_0 = [cls; patches W_E] + E_pos             (B, N+1, C): a learned class token in front,
                                                 plus a learned position embedding per token
    for each of the L blocks (pre-LayerNorm, exactly GPT's block minus the causal mask):
        z = z + Attention(LN_1(z))               every token sees every token
        z = z + MLP(LN_2(z))
    logits = LN_f(z)[:, 0] W_head                (B, V): read off the class token

`patchify` followed by a Linear layer is a Conv2d with kernel = stride = P (tested), which is how
the patch embedding is computed. A convolutional stem (`stem_channels`): a few 3×3 convolutions
before the patch embedding, each halving the side (by a stride of 2, or by a 2×2 max-pool after a
stride-1 conv, as in the CNN baseline), so that each token starts from local edge and stroke
features instead of raw pixels ("early convolutions help transformers see better"); the
transformer after it is unchanged.

The encoder block reuses `attention.MultiHeadAttention` and GPT's `MLP` with GPT's layout and
names (ln_1, attn, ln_2, mlp.c_fc, mlp.c_proj); `tests/test_vit.py` proves it equal to
`gpt.Block` when given a causal mask, and the whole model equal to `transformers`' ViT.
"""

import math
import os
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from fromscratch.attention import MultiHeadAttention
from fromscratch.data.images import check_images
from fromscratch.errors import UserError
from fromscratch.folders import load_model, save_model
from fromscratch.language.gpt import GPT, MLP, GPTConfig
from fromscratch.modes import evaluating
from fromscratch.training.recipes import Recipe


@dataclass
class ViTConfig:
    image_size: int = 28  # S: images are S × S
    num_channels: int = 1  # K: 1 for grayscale
    patch_size: int = 4  # P, on the stem's output: (S / 2^len(stem) / P)² tokens
    num_classes: int = 10
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True
    layer_norm_eps: float = 1e-5
    stem_channels: list[int] = field(default_factory=list)  # 3×3 convs; [] = plain ViT
    stem_downsample: str = "stride"  # each stem conv halves the side: "stride" 2, or "maxpool"
    label_smoothing: float = 0.0  # training target: 1 − ε on the label, ε spread over all classes

    def __post_init__(self):
        self.stem_channels = list(self.stem_channels)
        for name in ("image_size", "num_channels", "patch_size", "num_classes", "n_layer",
                     "n_head", "n_embd"):
            if getattr(self, name) < 1:
                raise UserError(f"ViTConfig.{name} must be a positive integer")
        if self.n_embd % self.n_head != 0:
            raise UserError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if self.stem_downsample not in ("stride", "maxpool"):
            raise UserError(f"stem_downsample must be 'stride' or 'maxpool', "
                            f"got {self.stem_downsample!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise UserError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        side = self.feature_side
        if side % self.patch_size != 0:
            raise UserError(
                f"patch_size {self.patch_size} does not divide the {side}×{side} map the stem "
                f"makes of {self.image_size}×{self.image_size} images"
            )

    @property
    def feature_side(self) -> int:
        """Side of the map the patches are cut from: each stem conv halves it, rounding up
        with a stride of 2 (the padded conv has a last window at the edge), down with a max-pool
        (which drops an odd last row and column)."""
        side = self.image_size
        for _ in self.stem_channels:
            side = (side + 1) // 2 if self.stem_downsample == "stride" else side // 2
        return side

    @property
    def num_patches(self) -> int:
        return (self.feature_side // self.patch_size) ** 2

    def block_config(self) -> GPTConfig:
        """The GPTConfig whose `gpt.Block` our encoder block equals (apart from the mask)."""
        return GPTConfig(vocab_size=self.num_classes, block_size=self.num_patches + 1,
                         n_layer=self.n_layer, n_head=self.n_head, n_embd=self.n_embd,
                         dropout=self.dropout, bias=self.bias, layer_norm_eps=self.layer_norm_eps)


def patchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images x (B, K, S, S) into (B, N, K·P·P) flattened patches, in raster order.

    Patch n = (row r, column c) of the (S/P) × (S/P) grid, n = r · S/P + c, holds pixels
    x[:, :, rP:(r+1)P, cP:(c+1)P], flattened channel-major (K, P, P) as a Conv2d weight is.
    """
    B, K, S, _ = x.shape
    P = patch_size
    G = S // P  # patches per side
    x = x.view(B, K, G, P, G, P)  # split each side into (grid position, offset in the patch)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, G_row, G_col, K, P, P)
    return x.reshape(B, G * G, K * P * P)  # (B, N, K·P·P)


class EncoderBlock(nn.Module):
    """GPT's pre-LN block (`gpt.Block`) with an attention that may see every token.

        z = z + Dropout(Attention(LN_1(z)))        z = z + MLP(LN_2(z))

    `causal=True` gives back exactly `gpt.Block` (tested): the only difference is the mask.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.attn = MultiHeadAttention(config.n_embd, config.n_head, bias=config.bias,
                                       dropout=config.dropout, fast=True)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.mlp = MLP(config)

    @torch.no_grad()
    def load_gpt_block(self, block: nn.Module) -> None:
        """Copy the weights of a `gpt.Block` of the same size into this block.

        The names match except in attention: GPT stacks W_q, W_k, W_v in one `c_attn` (3C, C)
        and calls the output projection `c_proj`.
        """
        state = dict(block.state_dict())
        for leaf in ("weight", "bias"):
            if f"attn.c_attn.{leaf}" in state:
                q, k, v = state.pop(f"attn.c_attn.{leaf}").chunk(3)  # each (C, C) or (C,)
                state |= {f"attn.q_proj.{leaf}": q, f"attn.k_proj.{leaf}": k,
                          f"attn.v_proj.{leaf}": v,
                          f"attn.out_proj.{leaf}": state.pop(f"attn.c_proj.{leaf}")}
        self.load_state_dict(state)

    def forward(self, z: torch.Tensor, *, causal: bool = False, need_weights: bool = False):
        """z (B, T, C) -> (B, T, C); with need_weights also the attention (B, H, T, T)."""
        attended = self.attn(self.ln_1(z), causal=causal, need_weights=need_weights)
        attended, weights = attended if need_weights else (attended, None)
        z = z + self.resid_dropout(attended)  # (B, T, C)
        z = z + self.mlp(self.ln_2(z))  # (B, T, C)
        return (z, weights) if need_weights else z


class ViT(nn.Module):
    def __init__(self, config: ViTConfig):
        super().__init__()
        self.config = config
        stem, channels = [], config.num_channels
        for width in config.stem_channels:  # each halves the side
            if config.stem_downsample == "stride":  # 3×3 conv of stride 2, GELU
                stem += [nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.GELU()]
            else:  # 3×3 conv, GELU, 2×2 max-pool: the CNN baseline's layers
                stem += conv_gelu_pool(channels, width)
            channels = width
        self.stem = nn.Sequential(*stem)
        # patchify + Linear(K·P·P -> C), computed as one convolution with kernel = stride = P
        self.patch_embed = nn.Conv2d(channels, config.n_embd, config.patch_size,
                                     stride=config.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.n_embd))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.num_patches + 1, config.n_embd))
        self.drop = nn.Dropout(config.dropout)
        block_config = config.block_config()
        self.h = nn.ModuleList(EncoderBlock(block_config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.head = nn.Linear(config.n_embd, config.num_classes)
        self.apply(GPT._init_weights)  # N(0, 0.02) for Linear layers, as in GPT
        nn.init.normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=0.02)
        for name, p in self.named_parameters():  # GPT's 1/√(2L) for the residual projections
            if name.endswith(("mlp.c_proj.weight", "attn.out_proj.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Images x (B, K, S, S) -> tokens z_0 (B, N+1, C): class token, patches, positions."""
        features = self.stem(x)  # (B, K', S', S')
        patches = self.patch_embed(features)  # (B, C, S'/P, S'/P): patch (r, c) at [:, :, r, c]
        patches = patches.flatten(2).transpose(1, 2)  # (B, N, C), raster order
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # (B, 1, C)
        return self.drop(torch.cat([cls, patches], dim=1) + self.pos_embed)  # (B, N+1, C)

    def forward(self, x: torch.Tensor, *, return_attentions: bool = False):
        """Class logits (B, V) for images x (B, K, S, S).

        return_attentions: also return each layer's attention weights, a list of L tensors
        (B, H, N+1, N+1) (row 0: what the class token looks at).
        """
        if x.dim() != 4 or tuple(x.shape[1:]) != (self.config.num_channels,
                                                   self.config.image_size,
                                                   self.config.image_size):
            side = self.config.image_size
            raise UserError(f"the ViT reads images ({self.config.num_channels}, {side}, {side}); "
                            f"got shape {tuple(x.shape)}")
        z = self.embed(x)  # (B, N+1, C)
        attentions = []
        for block in self.h:
            if return_attentions:
                z, weights = block(z, need_weights=True)
                attentions.append(weights)
            else:
                z = block(z)  # (B, N+1, C)
        logits = self.head(self.ln_f(z[:, 0]))  # (B, V): the class token's final state
        return (logits, attentions) if return_attentions else logits

    def loss(self, batch) -> torch.Tensor:
        """Mean cross-entropy of the labels: batch = (x (B, K, S, S), y (B,)). With label
        smoothing ε the target is (1 − ε) one-hot(y) + ε / V: a model is never pushed to
        infinitely confident logits on 4,000 images it could otherwise memorise."""
        x, y = batch
        return F.cross_entropy(self(x), y, label_smoothing=self.config.label_smoothing)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """Predicted classes (N,) for images (N, K, S, S) (or any layout `check_images` takes)."""
        if self.config.num_channels == 1:
            x = check_images(x, self.config.image_size)
        return predict_classes(self, x, batch_size)

    # -----------------------------------------------------------------------------------------
    # Checkpoints: config.json + model.safetensors
    # -----------------------------------------------------------------------------------------
    def save_pretrained(self, path: str | os.PathLike) -> None:
        save_model(path, self, "vit", asdict(self.config))

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> "ViT":
        return load_model(cls, ViTConfig, path, "vit")


# The settings `fromscratch vit train --recipe vit|cnn` and the benchmark use (docs/benchmarks.md:
# how they were chosen); extra holds the random shifts and rotations of `ImageBatches`. The
# convolutional stem (the CNN's own conv + max-pool layers) and the augmentation are what let a
# ViT trained on 4,000 digits match a CNN (98.5% against 98.3% in the benchmark, about 5 minutes
# on 2 cores): a plain ViT has to learn locality from the data.
RECIPES: dict[str, Recipe] = {
    "vit": Recipe(
        description="a ViT with a conv + max-pool stem: 98.5% on the 4k/1k MNIST split in ≈ 5 min",
        model=dict(stem_channels=[32, 64], stem_downsample="maxpool", patch_size=1, n_layer=2,
                   n_head=4, n_embd=64, label_smoothing=0.1),
        batch_size=64,
        train=dict(max_steps=2000, lr=3e-3, warmup_steps=100, weight_decay=0.05,
                   betas=(0.9, 0.99)),
        extra=dict(max_shift=2.0, max_degrees=10.0),
    ),
    "cnn": Recipe(
        description="the small CNN baseline: 98.3% on the 4k/1k MNIST split in ≈ 40 s",
        model=dict(width=32, hidden=128),
        batch_size=64,
        train=dict(max_steps=600, lr=2e-3, warmup_steps=50, weight_decay=0.05, betas=(0.9, 0.99)),
        extra=dict(max_shift=1.0, max_degrees=8.0),
    ),
}
# `Distilled(vit, cnn, **DISTILLATION)`: the benchmark's second ViT learns from the CNN as well.
DISTILLATION = dict(alpha=0.5, temperature=2.0)


# ---------------------------------------------------------------------------------------------
# Attention maps: what the class token looks at
# ---------------------------------------------------------------------------------------------
def cls_attention_map(attention: torch.Tensor) -> torch.Tensor:
    """One layer's attention (B, H, N+1, N+1) -> (B, G, G): the class token's weights on the
    N = G² patches, averaged over heads, laid out on the patch grid."""
    to_patches = attention[:, :, 0, 1:].mean(dim=1)  # (B, N)
    side = math.isqrt(to_patches.shape[-1])
    return to_patches.view(-1, side, side)  # (B, G, G)


def attention_rollout(attentions: list[torch.Tensor]) -> torch.Tensor:
    """How much each patch flows into the class token through all layers: (B, G, G).

    Attention rollout (Abnar & Zuidema, 2020): the residual connection keeps half of each token,
    so layer l mixes tokens by Â_l = ½ (mean over heads of A_l) + ½ I (rows renormalised);
    composing the layers gives R = Â_L ⋯ Â_2 Â_1, and R[cls, patch] is the patch's share.
    """
    rollout = None
    for attention in attentions:  # from the first layer up
        identity = torch.eye(attention.shape[-1], device=attention.device)  # (T, T)
        mixed = 0.5 * attention.mean(dim=1) + 0.5 * identity  # (B, T, T)
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        rollout = mixed if rollout is None else mixed @ rollout  # (B, T, T)
    to_patches = rollout[:, 0, 1:]  # (B, N)
    side = math.isqrt(to_patches.shape[-1])
    return (to_patches / to_patches.sum(-1, keepdim=True)).view(-1, side, side)


# ---------------------------------------------------------------------------------------------
# The baseline a ViT has to match: a small CNN
# ---------------------------------------------------------------------------------------------
@dataclass
class CNNConfig:
    image_size: int = 28
    num_channels: int = 1
    num_classes: int = 10
    width: int = 32  # channels of the first conv; the second has twice as many
    hidden: int = 128


def conv_gelu_pool(in_channels: int, out_channels: int) -> list[nn.Module]:
    """3×3 conv (side kept) → GELU → 2×2 max-pool (side halved): (B, in, S, S) -> (B, out, S/2,
    S/2). The CNN's feature layers, and the ViT's stem with stem_downsample="maxpool"."""
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.GELU(), nn.MaxPool2d(2)]


class SmallCNN(nn.Module):
    """conv 3×3 → GELU → 2×2 max-pool → conv 3×3 → GELU → max-pool → Linear → GELU → Linear.

    A classic LeNet-style network: weight sharing over positions and pooling build in what a
    ViT has to learn from data (that a stroke means the same anywhere).
    """

    def __init__(self, config: CNNConfig):
        super().__init__()
        self.config = config
        w, side = config.width, config.image_size // 4
        self.features = nn.Sequential(
            *conv_gelu_pool(config.num_channels, w), *conv_gelu_pool(w, 2 * w),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * w * side * side, config.hidden), nn.GELU(),
            nn.Linear(config.hidden, config.num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))  # (B, V)

    def loss(self, batch) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self(x), y)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        return predict_classes(self, check_images(x, self.config.image_size), batch_size)

    def save_pretrained(self, path: str | os.PathLike) -> None:
        save_model(path, self, "cnn", asdict(self.config))

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> "SmallCNN":
        return load_model(cls, CNNConfig, path, "cnn")


# ---------------------------------------------------------------------------------------------
# Distillation: a CNN teaches the ViT what it has built in
# ---------------------------------------------------------------------------------------------
def distillation_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, *,
    alpha: float = 0.5, temperature: float = 2.0, label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Knowledge distillation (Hinton, Vinyals & Dean, 2015), logits (B, V), labels (B,):

        L = (1 − α) CE(y, s) + α T² KL(softmax(t / T) ‖ softmax(s / T))

    The softened teacher says which wrong classes are *nearly* right (a 7 that looks like a 1):
    more information per image than the label alone. The gradient of the KL term scales as
    1 / T², so T² keeps the two terms comparable whatever T.
    """
    hard = F.cross_entropy(student_logits, labels, label_smoothing=label_smoothing)
    log_q = F.log_softmax(teacher_logits / temperature, dim=-1)  # (B, V) teacher
    log_p = F.log_softmax(student_logits / temperature, dim=-1)  # (B, V) student
    soft = (log_q.exp() * (log_q - log_p)).sum(-1).mean()  # KL(q ‖ p), mean over the batch
    return (1 - alpha) * hard + alpha * temperature**2 * soft


class Distilled(nn.Module):
    """A student trained on `distillation_loss` against a frozen teacher: `train` sees only the
    student's parameters (the teacher's are frozen), and the teacher stays in eval mode."""

    def __init__(self, student: nn.Module, teacher: nn.Module, alpha: float = 0.5,
                 temperature: float = 2.0):
        super().__init__()
        self.student, self.teacher = student, teacher.eval().requires_grad_(False)
        self.alpha, self.temperature = alpha, temperature

    def train(self, mode: bool = True) -> "Distilled":
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.student(x)

    def loss(self, batch) -> torch.Tensor:
        x, y = batch
        with torch.no_grad():
            teacher_logits = self.teacher(x)  # (B, V)
        smoothing = getattr(getattr(self.student, "config", None), "label_smoothing", 0.0)
        return distillation_loss(self.student(x), teacher_logits, y, alpha=self.alpha,
                                 temperature=self.temperature, label_smoothing=smoothing)


# ---------------------------------------------------------------------------------------------
# Shared by the classifiers
# ---------------------------------------------------------------------------------------------
def predict_classes(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """argmax of model(x) in chunks of batch_size, in eval mode (mode restored after)."""
    device = next(model.parameters()).device
    with evaluating(model):
        return torch.cat([model(x[i : i + batch_size].to(device)).argmax(-1).cpu()
                          for i in range(0, len(x), batch_size)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of images x (N, K, S, S) whose predicted class is y (N,)."""
    return (predict_classes(model, x) == y).float().mean().item()
